"""OME-Zarr (NGFF 0.5) export, read back with the reference reader ngff-zarr (schema + structural
validation): axes, units, voxel size, pyramid levels, label images and their colours."""

import json
import warnings

import ngff_zarr
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from chemtomo.align import Alignment, apply
from chemtomo.chem.figures import CLASS_COLOURS
from chemtomo.core import StoreError
from chemtomo.io.export import export
from chemtomo.io.ome_zarr import downsample_mean, downsample_mode, pyramid_shapes
from chemtomo.io.store import RunStore

VOXEL_M = 6.7e-9
SHAPE = (40, 70, 66)  # store order (ny, nz, nx); nz = 70 > 64 makes one pyramid level below level 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ome")  # one export shared by the read-only tests below
    s = RunStore(tmp_path / "r.zarr")
    rng = np.random.default_rng(1)
    mu = (rng.random(SHAPE) * 1e7).astype(np.float32)
    fraction = rng.random(SHAPE).astype(np.float32)
    fraction[:, :5] = np.nan  # outside the sample
    classes = np.digitize(np.nan_to_num(fraction, nan=-1), [0.0, 0.3, 0.7]).astype(np.uint8)
    s.write_group("volumes", {"708.2": mu, "710.2": mu * 0.5},
                  attrs={"voxel_m": VOXEL_M, "energies_eV": [708.2, 710.2]})
    s.write_group("chem", {"fraction": fraction, "density": mu / 1e7, "polar": fraction * 90, "labels": classes},
                  attrs={"voxel_m": VOXEL_M})
    labels = np.zeros(SHAPE, np.int32)
    labels[2:9, 10:30, 10:20] = 1
    labels[20:25, 40:60, 30:50] = 2
    table = pd.DataFrame({"label": [1.0, 2.0], "volume_nm3": [7.2e3, 5.4e3], "active_15": [True, False]})
    s.write_group("particles", {"labels": labels, **{f"table_{c}": table[c].to_numpy() for c in table}},
                  attrs={"columns": list(table.columns), "voxel_m": VOXEL_M, "n_particles": 2})
    angles = np.linspace(-60, 60, 5)
    tilt = rng.random((5, 40, 66)).astype(np.float32)
    s.write_group("tiltseries", {"708.2": tilt, "710.2": tilt * 2},
                  attrs={"energies_eV": [708.2, 710.2], "reference_energy_eV": 708.2, "pixel_m": VOXEL_M})
    shifts = rng.normal(0, 2, (5, 2))
    s.write_group("alignment", {"shifts_px": shifts, "rotation_deg": np.full(5, 1.5), "scale": np.ones(5)},
                  attrs={"method": "reprojection", "energy_offsets_px": {"708.2": [0, 0], "710.2": [1.0, -2.0]},
                         "angles_deg": angles.tolist(), "reference_energy_eV": 708.2})
    out = tmp_path / "ome"
    paths = export(s.path, "ome-zarr", out)
    al = Alignment(shifts, np.full(5, 1.5), np.ones(5), energy_offsets_px={708.2: np.zeros(2),
                                                                           710.2: np.array([1.0, -2.0])})
    return dict(store=s, out=out, paths=paths, mu=mu, fraction=fraction, classes=classes, labels=labels,
                tilt=tilt, alignment=al, angles=angles)


def _read(path):
    # validate=True: the bundled NGFF 0.5 JSON schema plus the reader's structural rules
    return ngff_zarr.from_ngff_zarr(str(path), validate=True)


def _attrs(path):
    return json.loads((path / "zarr.json").read_text())["attributes"]


def test_every_image_is_written_and_validates(run):
    names = sorted(p.name for p in run["paths"])
    assert names == sorted(["mu_708.2eV.ome.zarr", "mu_710.2eV.ome.zarr", "fraction.ome.zarr", "density.ome.zarr",
                            "polar.ome.zarr", "tiltseries_708.2eV.ome.zarr", "tiltseries_710.2eV.ome.zarr"])
    for p in run["paths"]:
        assert _attrs(p)["ome"]["version"] == "0.5"
        _read(p)


def test_volume_axes_scale_and_level_zero(run):
    ms = _read(run["out"] / "mu_708.2eV.ome.zarr")
    assert [(a.name, a.type, a.unit) for a in ms.metadata.axes] == [("z", "space", "nanometer"),
                                                                      ("y", "space", "nanometer"),
                                                                      ("x", "space", "nanometer")]
    level0 = np.asarray(ms.images[0].data)
    # the store's (y, z, x) becomes NGFF (z, y, x): z the beam, y the rotation axis
    np.testing.assert_array_equal(level0, np.transpose(run["mu"], (1, 0, 2)))
    assert ms.images[0].scale == pytest.approx({"z": 6.7, "y": 6.7, "x": 6.7})
    assert ms.images[0].translation == pytest.approx({"z": 0, "y": 0, "x": 0})


def test_pyramid_levels_agree_with_mean_pooling(run):
    ms = _read(run["out"] / "fraction.ome.zarr")
    assert [im.data.shape for im in ms.images] == [(70, 40, 66), (35, 20, 33)]  # 70 > 64, 35 ≤ 64: stop
    # level 1: twice the voxel, its centre half a level-0 voxel in (3.35 nm)
    assert ms.images[1].scale == pytest.approx({"z": 13.4, "y": 13.4, "x": 13.4})
    assert ms.images[1].translation == pytest.approx({"z": 3.35, "y": 3.35, "x": 3.35})
    level0, level1 = (np.asarray(im.data, np.float64) for im in ms.images)
    pooled = level0.reshape(35, 2, 20, 2, 33, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks: compared separately below
        expected = np.nanmean(np.nanmean(np.nanmean(pooled, axis=5), axis=3), axis=1)
    full = np.isfinite(pooled).all(axis=(1, 3, 5))
    # float32 storage of a mean of 8 values in [0, 1]: agreement to a few float32 ulps
    np.testing.assert_allclose(level1[full], expected[full], rtol=0, atol=1e-6)
    # blocks entirely outside the sample stay NaN, not 0
    assert np.isnan(level1[~np.isfinite(pooled).any(axis=(1, 3, 5))]).all()


def test_class_label_image_has_report_colours_and_mode_pyramid(run):
    img = run["out"] / "fraction.ome.zarr"
    assert _attrs(img / "labels")["ome"]["labels"] == ["classes"]
    la = _attrs(img / "labels" / "classes")
    ngff_zarr.validate(la, version="0.5", model="label")  # the NGFF image-label schema
    colours = {c["label-value"]: c["rgba"] for c in la["ome"]["image-label"]["colors"]}
    for value, name in zip((1, 2, 3), CLASS_COLOURS):
        assert colours[value] == [round(255 * c) for c in to_rgba(name)]
    assert colours[0][3] == 0  # outside the sample: transparent
    assert la["ome"]["image-label"]["source"] == {"image": "../../"}
    ms = _read(img / "labels" / "classes")
    level0, level1 = (np.asarray(im.data) for im in ms.images)
    assert level0.dtype == np.uint8
    np.testing.assert_array_equal(level0, np.transpose(run["classes"], (1, 0, 2)))
    # every level-1 label is one that occurs most often in its 2×2×2 block (exact: counting)
    blocks = level0.reshape(35, 2, 20, 2, 33, 2).transpose(0, 2, 4, 1, 3, 5).reshape(35, 20, 33, 8)
    counts = (blocks == level1[..., None]).sum(-1)
    most = np.max([(blocks == v).sum(-1) for v in range(4)], axis=0)
    np.testing.assert_array_equal(counts, most)


def test_particle_labels_carry_the_table(run):
    p = run["out"] / "density.ome.zarr" / "labels" / "particles"
    la = _attrs(p)
    ngff_zarr.validate(la, version="0.5", model="label")
    props = {d["label-value"]: d for d in la["ome"]["image-label"]["properties"]}
    assert props[1]["volume_nm3"] == 7.2e3 and props[1]["active_15"] is True and props[2]["active_15"] is False
    np.testing.assert_array_equal(np.asarray(_read(p).images[0].data), np.transpose(run["labels"], (1, 0, 2)))


def test_tilt_series_are_aligned_with_the_stored_alignment(run):
    ms = _read(run["out"] / "tiltseries_710.2eV.ome.zarr")
    assert [(a.name, a.unit) for a in ms.metadata.axes] == [("angle", "degree"), ("y", "nanometer"),
                                                            ("x", "nanometer")]
    assert ms.images[0].scale["angle"] == pytest.approx(30.0) and ms.images[0].translation["angle"] == -60
    np.testing.assert_allclose(np.asarray(ms.images[0].data),
                               apply(run["tilt"] * 2, run["alignment"], 710.2), rtol=0, atol=1e-6)
    assert ms.images[-1].data.shape[0] == 5  # the angle axis is never pooled


def test_downsampling_rules():
    # the mode's tie goes to the larger label, so a plate half-filling a block survives
    a = np.zeros((2, 2, 2), np.int32)
    a[0] = 7
    assert downsample_mode(a, (0, 1, 2)).tolist() == [[[7]]]
    # an odd side: the last output voxel is the mean of the voxels that exist
    assert downsample_mean(np.array([1.0, 3.0, 5.0]), (0,)).tolist() == [2.0, 5.0]
    assert pyramid_shapes((300, 20, 20), (0, 1, 2)) == [(300, 20, 20), (150, 10, 10), (75, 5, 5), (38, 3, 3)]


def test_export_without_volumes_is_an_error(tmp_path):
    s = RunStore(tmp_path / "empty.zarr")
    with pytest.raises(StoreError, match="run the reconstruction first"):
        export(s.path, "ome-zarr", tmp_path / "o")


def test_omero_window_names_the_channel(run):
    omero = _attrs(run["out"] / "mu_708.2eV.ome.zarr")["ome"]["omero"]
    (ch,) = omero["channels"]
    assert ch["label"] == "mu_708.2eV"
    assert ch["window"]["min"] == pytest.approx(float(run["mu"].min()))
    assert ch["window"]["min"] <= ch["window"]["start"] < ch["window"]["end"] <= ch["window"]["max"]


def test_ome_zarr_py_reads_images_and_labels(run):
    # ome-zarr-py, the OME reference implementation, where installed (its current releases need
    # Python 3.12 and pin pydantic, so it is not in the dev extra; ngff-zarr above always runs)
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    nodes = list(Reader(parse_url(str(run["out"] / "fraction.ome.zarr")))())
    image = next(n for n in nodes if any(isinstance(s, Multiscales) for s in n.specs)
                 and not any(isinstance(s, Label) for s in n.specs))
    label = next(n for n in nodes if any(isinstance(s, Label) for s in n.specs))
    assert [tuple(d.shape) for d in image.data] == [(70, 40, 66), (35, 20, 33)]
    assert image.metadata["coordinateTransformations"][1][0]["scale"] == pytest.approx([13.4] * 3)
    assert label.metadata["color"][1] == pytest.approx([c for c in to_rgba(CLASS_COLOURS[0])], abs=1 / 255)
