"""ptycho.detector: what real detectors write (NaN frames, negative counts after dark subtraction,
masked and saturated pixels) is masked, clipped and dropped, counted, and reconstructs like clean data."""

import dataclasses
import warnings

import numpy as np
import pytest

from chemtomo.core import InputError, Scan
from chemtomo.ptycho import reconstruct
from chemtomo.ptycho.detector import clean_scan

from .conftest import N, make_scan, object_error

HALF_BOX = 12  # the well-scanned field, as in test_reconstruct


def _scan(frames, mask=None):
    return Scan(frames, np.zeros((len(frames), 2)), 708.2, 0.1, 1e-5, mask=mask, source="det.cxi")


def test_each_defect_is_counted_and_handled():
    rng = np.random.default_rng(0)
    frames = rng.poisson(20, (40, 16, 16)).astype(np.float32)
    frames[:, 0, 0] = -3                      # dark-subtracted corner
    frames[5] = np.nan                        # a lost readout
    frames[9] = 0                             # an empty frame
    frames[11, 7, 7] = np.inf                 # one bad value: that pixel is masked for the scan
    frames[:20, 8, 8] = 70000                 # saturated in half the frames
    file_mask = np.ones((16, 16), bool)
    file_mask[15, :] = False                  # a module gap flagged by the file
    config_mask = np.ones((16, 16), bool)
    config_mask[:, 15] = False                # a column the user masks
    cleaned, r = clean_scan(_scan(frames, file_mask), saturation=65535, mask=config_mask)
    assert r.dropped_frames == {5: "lost", 9: "empty"}
    assert (r.masked_by_file, r.masked_by_config, r.masked_nonfinite, r.masked_saturated) == (16, 15, 1, 1)
    assert r.negative_clipped == 38 and r.most_negative == -3  # 38 kept frames × the corner pixel
    assert r.valid_pixels == 256 - 16 - 15 - 2
    assert cleaned.n_frames == 38 and cleaned.positions_m.shape == (38, 2)
    assert not cleaned.mask[7, 7] and not cleaned.mask[8, 8] and not cleaned.mask[15].any()
    assert np.isfinite(cleaned.frames).all() and cleaned.frames.min() == 0
    assert (cleaned.frames[:, ~cleaned.mask] == 0).all()
    kept = np.delete(np.arange(40), [5, 9])
    np.testing.assert_array_equal(cleaned.frames[:, 3, 3], frames[kept, 3, 3])  # good pixels untouched
    assert "2 of 40 frames dropped (5, 9)" in r.summary() and "38 negative counts clipped" in r.summary()


def test_a_clean_scan_is_returned_as_it_is():
    scan = _scan(np.ones((4, 8, 8), np.float32))
    cleaned, r = clean_scan(scan)
    assert cleaned is scan and r.clean and r.summary() == "clean"


@pytest.mark.parametrize("kwargs, message", [
    (dict(saturation=-1), "saturation must be a positive number"),
    (dict(mask=np.ones((3, 3), bool)), "mask has shape \\(3, 3\\); expected the frame shape \\(8, 8\\)"),
    (dict(mask=np.zeros((8, 8), bool)), "leave no valid pixel"),
    (dict(max_invalid_fraction=0), "max_invalid_fraction"),
])
def test_bad_parameters_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        clean_scan(_scan(np.ones((4, 8, 8), np.float32)), **kwargs)


def test_a_pixel_nan_in_every_frame_is_masked_not_every_frame_dropped():
    frames = np.ones((10, 8, 8), np.float32)
    frames[:, 2, 2] = np.nan  # a dead pixel the detector marks NaN
    cleaned, r = clean_scan(_scan(frames))
    assert cleaned.n_frames == 10 and r.masked_nonfinite == 1 and not cleaned.mask[2, 2]


def test_too_many_lost_frames_name_the_file():
    frames = np.ones((10, 8, 8), np.float32)
    frames[:3] = np.nan
    with pytest.raises(InputError, match=r"det.cxi: frames 0, 1, 2 \(3 of 10\) are lost"):
        clean_scan(_scan(frames))


def test_defective_frames_reconstruct_like_clean_ones():
    # Read noise of σ = 1 count after dark subtraction (negative counts, clipped), a NaN frame, a
    # 3 × 3 beamstop and a saturated hot pixel. They remove 1 frame of 36 and 10 of 1024 pixels and
    # add about 1 count² of variance to each pixel, so the error against the truth may grow only a
    # little: on seeds 0–2 the ratio to the clean scan's error was 1.04–1.11 (the read noise alone,
    # clipped, gives 0.96–1.07). The bound of 1.25× leaves room for that seed-to-seed scatter.
    t = make_scan(seed=0)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = reconstruct(t.scan, "RAAR:60", frc=False, background=False)
    frames = t.scan.frames + rng.normal(0, 1.0, t.scan.frames.shape).astype(np.float32)
    frames[5] = np.nan
    mask = np.ones((N, N), bool)
    mask[N // 2 - 1:N // 2 + 2, N // 2 - 1:N // 2 + 2] = False
    frames[:, ~mask] = 0
    frames[:, 2, 3] = 70000
    scan = dataclasses.replace(t.scan, frames=frames, mask=mask)
    with pytest.warns(RuntimeWarning, match="test_scan.cxi: 1 of 36 frames dropped"):
        rec = reconstruct(scan, "RAAR:60", frc=False, background=False, saturation=65535)
    d = rec.info["detector"]
    assert d["dropped_frames"] == {"5": "lost"} and d["masked_saturated"] == 1 and d["negative_clipped"] > 0
    e_clean = object_error(clean.transmission, t.obj, HALF_BOX)
    e_rec = object_error(rec.transmission, t.obj, HALF_BOX)
    assert e_rec < 1.25 * e_clean, (e_rec, e_clean)


def test_the_ptycho_command_masks_and_reports(tmp_path):
    from typer.testing import CliRunner

    from chemtomo.cli import app
    from chemtomo.io import write_scan

    t = make_scan(seed=1)
    frames = t.scan.frames.copy()
    frames[4] = np.nan
    frames[:, 0, 0] -= 2.0  # after dark subtraction
    path = write_scan(tmp_path / "raw.cxi", dataclasses.replace(t.scan, frames=frames))
    gap = np.zeros((N, N), np.uint8)
    gap[:, 5] = 1
    np.save(tmp_path / "gap.npy", gap)
    r = CliRunner().invoke(app, ["ptycho", str(path), "-o", str(tmp_path / "out.cxi"), "--algorithm", "RAAR:5",
                                 "--no-frc", "--mask", str(tmp_path / "gap.npy"), "--saturation", "1e9"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # the console wraps long lines
    assert "raw.cxi: detector: 1 of 36 frames dropped (4); pixels masked: 32 by the file's mask" in text, text
    bad = CliRunner().invoke(app, ["ptycho", str(path), "-o", str(tmp_path / "o2.cxi"), "--mask",
                                   str(tmp_path / "nope.npy")])
    assert bad.exit_code == 1 and "nope.npy: detector mask file not found" in bad.output


@pytest.mark.parametrize("defect", [None, "nan", "inf", "negative", "saturated", "empty"])
def test_the_fast_path_reports_what_the_full_path_reports(defect):
    """A clean float32 scan without masks takes a two-pass fast path; it must agree with the full
    path (taken here by float64 frames, which the fast path leaves alone) on every defect it
    must hand over."""
    scan = make_scan(grid=4).scan
    frames = scan.frames.astype(np.float32).copy()
    if defect == "nan":
        frames[2, 3, 4] = np.nan
    elif defect == "inf":
        frames[1, 0, 0] = -np.inf
    elif defect == "negative":
        frames[0, 5, 5] = -1.5
    elif defect == "saturated":
        frames[3, 7, 7] = 1e9
    elif defect == "empty":
        frames[4] = 0
    fast_scan, fast = clean_scan(dataclasses.replace(scan, frames=frames), saturation=1e8)
    full_scan, full = clean_scan(dataclasses.replace(scan, frames=frames.astype(np.float64)), saturation=1e8)
    assert fast == full
    assert fast.clean == (defect is None)
    assert np.array_equal(fast_scan.frames, full_scan.frames)
