"""A run on what real detectors write gives the chemistry of the clean data (issue 23): negative
counts after dark subtraction, NaN frames, a module gap and dead pixels given as a config mask, a
saturated pixel.

The config mask here is a gap column and dead pixels, not a central beamstop: the tiny dataset's
32² frames put 99.9 % of the photons in the central 3 × 3 pixels, so a beamstop there would leave
almost nothing to reconstruct. A beamstop over a spread-out bright field is tested on a single
scan in tests/ptycho/test_detector.py."""

import shutil

import h5py
import numpy as np

from chemtomo.io.store import RunStore

from runcli import run_cli

FRAMES = "entry_1/data_1/data"


def _corrupt(folder, rng):
    """Dark-subtracted read noise (σ = 1 count) on every scan, one NaN frame in every third scan,
    a hot pixel at 70000 counts in every fifth; returns the number of scans of each kind."""
    scans = sorted(folder.rglob("*.cxi"))
    for i, path in enumerate(scans):
        with h5py.File(path, "r+") as f:
            key = FRAMES if FRAMES in f else "entry_1/instrument_1/detector_1/data"
            data = f[key][()].astype(np.float32)
            data += rng.normal(0.0, 1.0, data.shape).astype(np.float32)
            if i % 3 == 0:
                data[len(data) // 2] = np.nan
            if i % 5 == 0:
                data[:, 1, 2] = 5e6  # a hot pixel above the saturation level (the bright field peaks at 1.2e6)
            del f[key]
            f[key] = data
    return len(scans)


def test_defective_detector_data_gives_the_clean_chemistry(tiny_dataset, reference_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    n = _corrupt(data, np.random.default_rng(7))
    gaps = np.zeros((32, 32), np.uint8)
    gaps[:, 24] = 1               # NeXus pixel_mask bits: non-zero = masked (a module gap)
    gaps[[3, 9, 28], [20, 5, 11]] = 2  # dead pixels
    np.save(data / "gaps.npy", gaps)
    (data / "run.toml").write_text((tiny_dataset / "run.toml").read_text().replace(
        "[ptycho]\n", '[ptycho]\nmask = "gaps.npy"\nsaturation = 2e6\n'))
    out = tmp_path / "run.zarr"
    r = run_cli(["run", str(data / "run.toml"), "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "RuntimeWarning" not in r.stderr  # reported, not warned by workers
    store = RunStore(out, create=False)
    summary = store.stage_record("ptycho")["summary"]["detector"]
    assert summary["frames_dropped"] == len(range(0, n, 3))          # one NaN frame per third scan
    assert summary["pixels_masked_saturated"] == len(range(0, n, 5))  # the hot pixel, once per scan
    assert summary["negative_counts_clipped"] > 0 and summary["scans_with_defects"] == n
    attrs = store.array_attrs("projections/708.2")
    # the config's 35 pixels with the file's own mask (8 pixels, one of them in the gap column)
    assert {d["masked_by_file"] for d in attrs["detector"]} == {35 + 8}
    # each projection records how far position refinement moved its scan's frames: none here,
    # where the tiny config runs RAAR:30 (RAAR keeps the positions, ptycho.PositionOptions)
    assert attrs["position_changes"] == [None] * len(attrs["angles_deg"])
    # and whether its object is the average of its last iterates (a converged RAAR is): one flag per scan
    assert len(attrs["object_averaged"]) == len(attrs["angles_deg"])
    assert all(isinstance(flag, bool) for flag in attrs["object_averaged"])
    # and whether it was weighted by its split-half FRC: never for a chain given by name (RAAR:30)
    assert attrs["frc_weighted"] == [False] * len(attrs["angles_deg"])
    html = (tmp_path / "run_report.html").read_text()
    assert f"Detector: {n} of {n} scans needed cleaning" in html
    # The chemistry: the state of charge of both runs, each with its one-sigma error from the
    # volumes' noise. Read noise adds variance, the beamstop and dropped frames remove a little data:
    # the two SOCs must agree within three combined sigmas (a bias, e.g. from unclipped negative
    # counts or an unmasked saturated pixel, would show as a larger difference).
    a, b = reference_run.group_attrs("chem"), store.group_attrs("chem")
    tol = 3 * np.hypot(a["soc_sigma"], b["soc_sigma"])
    assert abs(a["soc"] - b["soc"]) < tol, (a["soc"], b["soc"], tol)
    # the same amount of sample (the grids may differ by a few voxels: the lit field is cropped
    # from each run's own probe); a mask lost to the defects would show here
    na, nb = np.isfinite(reference_run.read("chem/fraction")).sum(), np.isfinite(store.read("chem/fraction")).sum()
    assert abs(int(na) - int(nb)) < 0.2 * na, (na, nb)


def test_a_mask_of_the_wrong_shape_fails_before_any_reconstruction(tiny_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    np.save(data / "small.npy", np.zeros((16, 16), np.uint8))
    (data / "run.toml").write_text((tiny_dataset / "run.toml").read_text().replace(
        "[ptycho]\n", '[ptycho]\nmask = "small.npy"\n'))
    r = run_cli(["run", str(data / "run.toml"), "--out", str(tmp_path / "run.zarr"), "--no-report"])
    assert r.returncode == 1
    assert "small.npy: the detector mask has shape (16, 16); expected the frame shape (32, 32)" in r.stderr
    assert "Traceback" not in r.stderr
