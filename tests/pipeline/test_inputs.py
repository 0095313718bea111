"""Bring your own data: runs from reconstructed CXI images, Data Exchange and TIFF files, OD images.

The tiny experiment of conftest.py is written as a user would bring it (own_data.py) and run
through `chemtomo run`; ptychography is skipped with the reason and everything downstream is the
same flow. Then every documented bad input is refused with the file and the field named.
"""

import h5py
import numpy as np
import pytest
import tifffile

from chemtomo.core import InputError
from chemtomo.io.store import RunStore
from chemtomo.pipeline import config_for_manifest, run_pipeline

from own_data import write_cxi_images, write_data_exchange
from runcli import run_cli

RUN_TOML = """
[input]
manifest = "manifest.csv"
[align]
method = "coarse"
[tomo]
algorithm = "sirt"
iterations = 200
block_slices = 8
"""

#: The demo's own ptychographic reconstructions (RAAR:200) have an air OD noise σ of 0.0072
#: (measured on two scans); complex noise of σ per component gives OD noise 2σ, so 0.0036.
PTYCHO_LIKE_NOISE = 0.0036


def check_against_truth(store: RunStore, ds, soc_tol: float):
    chem = store.group_attrs("chem")
    assert abs(chem["soc"] - ds.sample.soc) < soc_tol, (chem["soc"], ds.sample.soc)
    n_true = int(ds.sample.labels.max())
    assert abs(store.group_attrs("particles")["n_particles"] - n_true) <= 1


def test_projections_input_runs_skips_ptychography_and_resumes(tiny_sim, tmp_path):
    write_cxi_images(tiny_sim, tmp_path, noise=PTYCHO_LIKE_NOISE)
    (tmp_path / "run.toml").write_text(RUN_TOML)
    args = ["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run.zarr"), "--no-report"]
    r = run_cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "detected input kind 'projections'" in " ".join(r.stdout.split())
    store = RunStore(tmp_path / "run.zarr", create=False)
    summary = store.stage_record("ptycho")["summary"]
    assert summary["input"] == "projections" and summary["ptychography"].startswith("skipped: the input is")
    # per-energy pixel sizes (λ z / (n p): 6.7 nm and 6.681 nm) kept, then one grid downstream
    for e in tiny_sim.energies_ev:
        assert store.array_attrs(f"projections/{e:g}")["pixel_m"] == pytest.approx(tiny_sim.pixel_m[float(e)])
    # 9 angles, 3 plates in a field ~96 % empty: the SOC (over every voxel) is 0.485 from noise-free
    # images and 0.439 with this noise, whose clipped (non-negative) residue in the empty voxels
    # biases it; the demo-size test (tests/e2e/test_own_data.py) holds it to 0.03
    check_against_truth(store, tiny_sim, soc_tol=0.08)
    # resume: nothing changed, nothing redone; a changed image redoes the first stage and downstream
    r = run_cli(args)
    assert r.returncode == 0 and "ptycho      up to date (skipped)" in r.stdout, r.stdout
    first = min(tmp_path.glob("image_*.cxi"))
    with h5py.File(first, "a") as f:
        f["entry_1/image_1/data"][0, 0] = 1.0
    r = run_cli(args)
    assert r.returncode == 0 and "ptycho      up to date" not in r.stdout and "recon " in r.stdout


def test_data_exchange_intensity_input_against_truth(tiny_sim, tmp_path):
    manifest = write_data_exchange(tiny_sim, tmp_path)
    (tmp_path / "run.toml").write_text(RUN_TOML)
    r = run_cli(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run.zarr"), "--no-report"])
    assert r.returncode == 0, r.stderr[-3000:]
    store = RunStore(tmp_path / "run.zarr", create=False)
    assert store.stage_record("ptycho")["summary"]["input"] == "intensity"
    assert store.group_attrs("projections")["quantity"] == "od"
    assert "path,energy_eV" in manifest.read_text()
    for e in tiny_sim.energies_ev:  # the pixel from the file's objective/resolution, in nm there
        assert store.array_attrs(f"projections/{e:g}")["pixel_m"] == pytest.approx(tiny_sim.pixel_m[float(e)])
    # flat 2e4 counts: OD noise ~1/√(2e4) = 0.007 per pixel, like the ptychographic case (same bound)
    check_against_truth(store, tiny_sim, soc_tol=0.08)


def gaussian_blob(shape, pixel_m, sigma_m=60e-9, od=0.5):
    y, x = np.indices(shape, dtype=np.float64)
    r2 = ((y - (shape[0] - 1) / 2) ** 2 + (x - (shape[1] - 1) / 2) ** 2) * pixel_m ** 2
    return (od * np.exp(-r2 / (2 * sigma_m ** 2))).astype(np.float32)


def write_refs(folder, lo=8000.0, hi=8700.0):
    # rows 1 eV apart (chem.max_reference_gap_ev), on the straight line between the two end rows
    rows = [f"{e:g},{1e6 * (1 + t):g},{1e6 * (2 - t):g}" for e, t in
            ((e, (e - lo) / (hi - lo)) for e in np.arange(lo, hi + 0.5, 1.0))]
    (folder / "references.csv").write_text("energy_eV,LiFePO4,FePO4\n" + "\n".join(rows) + "\n")


def test_od_tiff_input_with_per_energy_pixel(tmp_path):
    # the same blob imaged at 20 nm and 25 nm pixels (zone-plate magnification changes with energy):
    # after the tilt-series stage both energies sit on the 20 nm grid, where the blobs agree to the
    # cubic interpolation error of a 3-pixel-σ Gaussian (< 1 % of its peak)
    angles = [-60.0, -30.0, 0.0, 30.0, 60.0]
    for name, pixel, shape in (("a", 20e-9, (48, 48)), ("b", 25e-9, (40, 40))):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.stack([gaussian_blob(shape, pixel)] * len(angles)),
                         photometric="minisblack")
    (tmp_path / "angles.csv").write_text("angle_deg\n" + "\n".join(map(str, angles)) + "\n")
    (tmp_path / "manifest.csv").write_text("path,energy_eV,pixel_m\na.tif,8333,2e-8\nb.tif,8350,2.5e-8\n")
    write_refs(tmp_path)
    cfg = config_for_manifest(tmp_path / "manifest.csv", {"input": {"kind": "od"}})
    store = run_pipeline(cfg, tmp_path / "run.zarr", only=("ptycho", "tiltseries"))
    a, b = store.read("tiltseries/8333"), store.read("tiltseries/8350")
    assert a.shape == b.shape and store.group_attrs("tiltseries")["pixel_m"] == pytest.approx(20e-9)
    assert np.max(np.abs(a - b)) < 0.01 * 0.5
    assert "ptychography" in store.stage_record("ptycho")["summary"]


# --- bad input: each refused before any reconstruction, naming the file and the field ----------

def dx(path, *, n=4, shape=(16, 16), theta=None, units="deg", flat_shape=None, energy_ev=8333.0):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["exchange/data"] = rng.integers(1000, 2000, (n, *shape)).astype(np.uint16)
        f["exchange/data_white"] = np.full((2, *(flat_shape or shape)), 3000, np.uint16)
        th = f.create_dataset("exchange/theta", data=np.linspace(-60, 60, n) if theta is None else theta)
        if units:
            th.attrs["units"] = units
        e = f.create_dataset("measurement/instrument/monochromator/energy", data=energy_ev)
        e.attrs["units"] = "eV"
        p = f.create_dataset("measurement/instrument/detection_system/objective/resolution", data=30.0)
        p.attrs["units"] = "nm"
    return path


def run_only_first_stage(folder, manifest_text, **input_cfg):
    (folder / "manifest.csv").write_text(manifest_text)
    cfg = config_for_manifest(folder / "manifest.csv", {"input": input_cfg} if input_cfg else None)
    return run_pipeline(cfg, folder / "run.zarr", only=("ptycho",))


def test_flats_of_another_shape(tmp_path):
    write_refs(tmp_path)
    tifffile.imwrite(tmp_path / "s.tif", np.ones((4, 16, 16), np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "flat.tif", np.ones((2, 16, 12), np.uint16), photometric="minisblack")
    (tmp_path / "angles.csv").write_text("0\n10\n20\n30\n")
    with pytest.raises(InputError, match=r"flat.tif \(flat column\): flat fields of shape \(16, 12\) but the "
                                         r"images of .*s.tif have shape \(16, 16\)"):
        run_only_first_stage(tmp_path, "path,energy_eV,pixel_m,flat\ns.tif,8333,3e-8,flat.tif\n")
    dx(tmp_path / "e.h5", flat_shape=(16, 15))
    with pytest.raises(InputError, match=r"e.h5: /exchange/data_white \(flat fields\) has images of shape"):
        run_only_first_stage(tmp_path, "path,energy_eV\ne.h5,8333\n")


def test_angles_missing_for_one_energy(tmp_path):
    write_refs(tmp_path)
    dx(tmp_path / "a.h5", n=5, theta=[-60, -30, 0, 30, 60])
    dx(tmp_path / "b.h5", n=4, theta=[-60, -30, 30, 60], energy_ev=8350.0)
    with pytest.raises(InputError, match=r"b.h5: 8350 eV has 4 angles but 8333 eV \(.*a.h5\) has 5; angles "
                                         r"missing at 8350 eV: \[0.0\]"):
        run_only_first_stage(tmp_path, "path,energy_eV\na.h5,8333\nb.h5,8350\n")


def test_theta_in_an_unknown_unit(tmp_path):
    write_refs(tmp_path)
    dx(tmp_path / "g.h5", units="gon")
    with pytest.raises(InputError, match=r"g.h5: /exchange/theta has units 'gon'; expected one of deg"):
        run_only_first_stage(tmp_path, "path,energy_eV\ng.h5,8333\n")
    dx(tmp_path / "u.h5", theta=np.radians([-60, -20, 20, 60]), units=None)
    with pytest.raises(InputError, match=r"u.h5: /exchange/theta has no units attribute"):
        run_only_first_stage(tmp_path, "path,energy_eV\nu.h5,8333\n")
    store = run_only_first_stage(tmp_path, "path,energy_eV\nu.h5,8333\n", theta_unit="rad")
    np.testing.assert_allclose(store.array_attrs("projections/8333")["angles_deg"], [-60, -20, 20, 60])


def test_mixed_kinds_in_one_manifest(tmp_path):
    from chemtomo.core import Projection
    from chemtomo.io import write_projection

    write_refs(tmp_path)
    dx(tmp_path / "e.h5")
    write_projection(tmp_path / "img.cxi", Projection(np.ones((16, 16), np.complex64), 3e-8, 8350.0, 0.0))
    with pytest.raises(InputError, match=r"mixes kinds of input: .*img.cxi is a CXI reconstructed image .* but "
                                         r".*e.h5 is a Data Exchange file"):
        run_only_first_stage(tmp_path, "path,angle_deg,energy_eV\nimg.cxi,0,8350\ne.h5,,8333\n")


def test_energies_outside_the_references(tmp_path):
    write_refs(tmp_path, 700.0, 720.0)
    dx(tmp_path / "a.h5")
    dx(tmp_path / "b.h5", energy_ev=8350.0)
    with pytest.raises(InputError, match=r"references.csv: the reference spectra cover 700–720 eV but the run has "
                                         r"2 energies outside: 8333, 8350 eV"):
        run_only_first_stage(tmp_path, "path,energy_eV\na.h5,8333\nb.h5,8350\n")


def test_tiff_page_count_does_not_match_the_angles(tmp_path):
    write_refs(tmp_path)
    tifffile.imwrite(tmp_path / "s.tif", np.ones((4, 16, 16), np.float32), photometric="minisblack")
    (tmp_path / "angles.csv").write_text("0\n10\n20\n30\n40\n")
    with pytest.raises(InputError, match=r"s.tif: 4 pages but .*angles.csv lists 5 angles; expected one angle per "
                                         "page"):
        run_only_first_stage(tmp_path, "path,energy_eV,pixel_m\ns.tif,8333,3e-8\n", kind="od")
    (tmp_path / "angles.csv").unlink()
    with pytest.raises(InputError, match=r"s.tif: no tilt angles: .*no angles.csv beside the manifest"):
        run_only_first_stage(tmp_path, "path,energy_eV,pixel_m\ns.tif,8333,3e-8\n", kind="od")


def test_other_refusals_name_file_and_field(tmp_path):
    write_refs(tmp_path)
    tifffile.imwrite(tmp_path / "s.tif", np.ones((4, 16, 16), np.float32), photometric="minisblack")
    (tmp_path / "angles.csv").write_text("0\n10\n20\n30\n")
    with pytest.raises(InputError, match=r"s.tif: no pixel size: none in the TIFF and no pixel_m in the manifest"):
        run_only_first_stage(tmp_path, "path,energy_eV\ns.tif,8333\n", kind="od")
    with pytest.raises(InputError, match=r"s.tif: no /exchange/data_white and no flat column.*kind = \"od\""):
        run_only_first_stage(tmp_path, "path,energy_eV,pixel_m\ns.tif,8333,3e-8\n")
    dx(tmp_path / "a.h5", energy_ev=8333.0)
    with pytest.raises(InputError, match=r"a.h5: /measurement/instrument/monochromator/energy is 8333 eV but the "
                                         "manifest gives 8400 eV"):
        run_only_first_stage(tmp_path, "path,energy_eV\na.h5,8400\n")


def test_kind_on_the_command_line_and_folder_input(tmp_path):
    write_refs(tmp_path)
    dx(tmp_path / "a.h5")
    dx(tmp_path / "b.h5", energy_ev=8350.0)
    (tmp_path / "manifest.csv").write_text("path,energy_eV\na.h5,8333\nb.h5,8350\n")
    r = run_cli(["run", str(tmp_path / "manifest.csv"), "--kind", "bogus"])
    assert r.returncode == 1 and "input.kind = 'bogus' is not allowed" in r.stderr, r.stderr
    r = run_cli(["run", str(tmp_path / "manifest.csv"), "--kind", "od", "--out", str(tmp_path / "od.zarr")])
    assert r.returncode == 1 and "a.h5: /exchange/data_white: flat fields given but input.kind is 'od'" in r.stderr
    # a folder of Data Exchange files stands in for the manifest: energies from the monochromator
    store = run_pipeline(config_for_manifest(tmp_path), tmp_path / "folder.zarr", only=("ptycho",))
    assert store.group_attrs("projections")["energies_eV"] == [8333.0, 8350.0]
    assert store.stage_record("ptycho")["summary"]["input"] == "intensity"


def test_one_file_per_projection_tiff_and_data_exchange(tmp_path):
    # 708.2-like energy as single-page TIFFs with flat/dark TIFFs, the other as one Data Exchange file
    # per projection; noise-free counts I = D + (F − D)·exp(−OD), so the stored OD is the written
    # one to float32 rounding of the counts' ratio (1e-4)
    write_refs(tmp_path)
    angles = [-40.0, 0.0, 40.0]
    od = {a: gaussian_blob((24, 20), 30e-9, od=0.2 + 0.01 * k) for k, a in enumerate(angles)}
    flat, dark = 3000.0, 100.0
    tifffile.imwrite(tmp_path / "flat.tif", np.full((2, 24, 20), flat, np.float32), photometric="minisblack")
    tifffile.imwrite(tmp_path / "dark.tif", np.full((24, 20), dark, np.float32))
    rows = ["path,angle_deg,energy_eV,pixel_m,flat,dark"]
    for k, a in enumerate(angles):
        img = dark + (flat - dark) * np.exp(-od[a])
        tifffile.imwrite(tmp_path / f"t{k}.tif", img.astype(np.float32))
        rows.append(f"t{k}.tif,{a},8333,3e-8,flat.tif,dark.tif")
        with h5py.File(tmp_path / f"d{k}.h5", "w") as f:
            f["exchange/data"] = img[None].astype(np.float32)
            f["exchange/data_white"] = np.full((1, 24, 20), flat, np.float32)
            f["exchange/data_dark"] = np.full((1, 24, 20), dark, np.float32)
        rows.append(f"d{k}.h5,{a},8350,3e-8,,")
    store = run_only_first_stage(tmp_path, "\n".join(rows) + "\n")
    assert store.stage_record("ptycho")["summary"]["input"] == "intensity"
    for e in (8333, 8350):
        stack = store.read(f"projections/{e}")
        assert store.array_attrs(f"projections/{e}")["angles_deg"] == angles
        np.testing.assert_allclose(stack, np.stack([od[a] for a in angles]), atol=1e-4)
