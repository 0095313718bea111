"""The entry point (tomo/reconstruct.py) and the rules all algorithms share (tomo/problem.py)."""

import numpy as np
import pytest
from tomo_data import plate_data, rel_err

from chemtomo.core.errors import InputError
from chemtomo.tomo import ALGORITHMS, reconstruct

ITERATIVE = ["art", "sart", "sirt", "cgls", "tv"]


@pytest.fixture(scope="module")
def data():
    truth, tilt, angles = plate_data()
    return truth[4:8], tilt[:, 4:8], angles  # 4 slices are enough for the shared rules


def test_every_algorithm_by_name(data):
    truth, tilt, angles = data
    assert set(ALGORITHMS) == {"art", "sart", "sirt", "cgls", "fbp", "tv"}
    for name in ALGORITHMS:
        rec = reconstruct(tilt, angles, name, 3)
        assert rec.shape == truth.shape and rec.dtype == np.float32 and rec.min() >= 0, name


def test_callback_progress_and_tol(data):
    truth, tilt, angles = data
    seen, ticks = [], []
    reconstruct(tilt, angles, "sirt", 4, callback=lambda k, v: seen.append((k, v.shape)),
                progress=lambda d, t: ticks.append((d, t)))
    assert seen == [(k, truth.shape) for k in (1, 2, 3, 4)]
    assert ticks == [(1, 4), (2, 4), (3, 4), (4, 4)]
    # SIRT's relative update shrinks below 5 % within a few tens of iterations, long before 500
    ticks.clear()
    reconstruct(tilt, angles, "sirt", 500, tol=0.05, progress=lambda d, t: ticks.append(d))
    assert 1 < len(ticks) < 100


def test_x0_and_support(data):
    truth, tilt, angles = data
    # starting at the truth, ART stays near it (the data are noisy, so it moves a little):
    # error after one sweep ≤ half the error of a cold start
    warm = reconstruct(tilt, angles, "art", 1, x0=truth)
    cold = reconstruct(tilt, angles, "art", 1)
    assert rel_err(warm, truth) < 0.5 * rel_err(cold, truth)
    support = np.zeros(truth.shape[1:], bool)
    support[10:30, 5:40] = True
    for name in ITERATIVE + ["fbp"]:
        rec = reconstruct(tilt, angles, name, 2, support=support)
        assert np.all(rec[:, ~support] == 0), name


def test_missing_rays_are_masked(data):
    # NaN rays get weight zero: 10 % of the rays missing at random barely changes ART-20
    # (measured ~1 % relative change) and nothing non-finite leaks into the volume
    _truth, tilt, angles = data
    rng = np.random.default_rng(0)
    holes = tilt.copy()
    holes[rng.random(tilt.shape) < 0.1] = np.nan
    full = reconstruct(tilt, angles, "art", 20)
    for name in ITERATIVE:
        rec = reconstruct(holes, angles, name, 20)
        assert np.all(np.isfinite(rec)), name
    rec = reconstruct(holes, angles, "art", 20)
    assert rel_err(rec, full) < 0.1


def test_bad_input_messages(data):
    truth, tilt, angles = data
    cases = [
        ({"tilt": tilt[:-1]}, "tilt has 157 projections but angles_deg has 158 angles"),
        ({"angles_deg": np.r_[angles[:-1], angles[0]]}, r"duplicate angles \[-80.0\]"),
        ({"angles_deg": np.r_[angles[:-1], np.inf]}, "angles must be finite; non-finite at positions \\[157\\]"),
        ({"tilt": tilt[0]}, r"tilt must be a \(n_angles, ny, nx\) array, got shape \(4, 48\)"),
        ({"algorithm": "mlem"}, "unknown algorithm 'mlem'; valid: art, sart, sirt, cgls, fbp, tv"),
        ({"iterations": 0}, "iterations must be ≥ 1, got 0"),
        ({"iterations": 2.5}, "iterations must be an integer ≥ 1, got 2.5"),
        ({"relaxation": 2.5}, r"relaxation must be in \(0, 2\) for convergence, got 2.5"),
        ({"relaxation": 0.0}, r"relaxation must be in \(0, 2\) for convergence, got 0.0"),
        ({"algorithm": "cgls", "relaxation": 0.5}, "algorithm 'cgls' has no relaxation"),
        ({"filter": "hann"}, "unknown option\\(s\\) filter for algorithm 'art'; valid: "),
        ({"x0": truth[0]}, r"x0 must have shape \(4, 48, 48\)"),
        ({"support": np.ones((3, 3), bool)}, r"support: expected shape \(48, 48\) or \(4, 48, 48\)"),
        ({"tol": -1.0}, "tol must be a positive number"),
        ({"nz": 0}, "nz must be a positive integer"),
        ({"algorithm": "art", "order": "backwards"}, "unknown order 'backwards'; valid: spread, sequential, random"),
    ]
    for change, message in cases:
        args = {"tilt": tilt, "angles_deg": angles, "algorithm": "art", "iterations": 1} | change
        with pytest.raises(InputError, match=message):
            reconstruct(**args)
