"""ART (tomo/art.py): exact Kaczmarz row actions, and the paper's set-up on simulated data."""

from functools import lru_cache

import numpy as np
from tomo_data import ENERGY_EV, plate_data, rel_err

from chemtomo.simulate import od_tilt_series, plate_sample, reference_spectra
from chemtomo.tomo import art, project, system_matrix
from chemtomo.tomo.art import relaxation_schedule, spread_order


def _kaczmarz_reference(a, b, x, sweeps, lam, nonneg, rows=None):
    """Textbook Kaczmarz on one slice, row by row (in the order ``rows``), with the sparse matrix
    of the geometry; ``lam`` is a number or one λ per sweep."""
    a = a.tocsr()
    rows = range(a.shape[0]) if rows is None else rows
    lams = np.broadcast_to(np.asarray(lam, np.float64), (sweeps,))
    for k in range(sweeps):
        lam = lams[k]
        for i in rows:
            cols, w = a.indices[a.indptr[i]:a.indptr[i + 1]], a.data[a.indptr[i]:a.indptr[i + 1]].astype(np.float64)
            nrm = float(w @ w)
            if nrm == 0:
                continue
            r = lam * (b[i] - w @ x[cols]) / nrm
            x[cols] += r * w
            if nonneg:
                x[cols] = np.maximum(x[cols], 0)
    return x


def test_equals_textbook_kaczmarz():
    # the compiled sweep is row-action Kaczmarz in angle-then-bin order, with clipping of the
    # touched voxels after each row: equal to the float64 reference up to float32 rounding
    rng = np.random.default_rng(0)
    angles = np.array([-70.0, -20.0, 15.0, 60.0])
    vol = rng.random((2, 10, 12), dtype=np.float32)
    tilt = project(vol, angles) + rng.normal(0, 0.3, (4, 2, 12)).astype(np.float32)
    a = system_matrix(angles, 10, 12)
    for nonneg in (False, True):
        got = art(tilt, angles, iterations=2, relaxation=0.7, nonneg=nonneg, nz=10, order="sequential")
        for y in range(2):
            ref = _kaczmarz_reference(a, tilt[:, y, :].ravel().astype(np.float64), np.zeros(120), 2, 0.7, nonneg)
            np.testing.assert_allclose(got[y].ravel(), ref, atol=2e-5 * np.abs(ref).max())


def test_default_is_spread_order_with_decreasing_relaxation():
    # the default sweep visits the angles in spread order with λ from 1 down to 0.1: the same
    # row actions as the textbook reference run in that order with that schedule
    rng = np.random.default_rng(1)
    angles = np.array([-70.0, -45.0, -20.0, 15.0, 40.0, 60.0])
    vol = rng.random((1, 10, 12), dtype=np.float32)
    tilt = project(vol, angles) + rng.normal(0, 0.3, (6, 1, 12)).astype(np.float32)
    a = system_matrix(angles, 10, 12)
    nu = 12
    rows = [i * nu + j for i in spread_order(angles) for j in range(nu)]
    lams = relaxation_schedule(3)
    np.testing.assert_allclose(lams, [1.0, 0.55, 0.1])
    got = art(tilt, angles, iterations=3, nz=10)
    ref = _kaczmarz_reference(a, tilt[:, 0, :].ravel().astype(np.float64), np.zeros(120), 3, lams, True, rows)
    np.testing.assert_allclose(got[0].ravel(), ref, atol=2e-5 * np.abs(ref).max())


def test_spread_order_is_a_fixed_permutation_far_between_visits():
    # 90 angles over −80..77° given in a shuffled acquisition order: the visiting order is a
    # permutation, the same on every call, and two consecutive visits are never closer than a
    # fifth of the range (golden-ratio steps are 0.382 or 0.618 of it, minus the wrap-around, so
    # the smallest gap is 1 − 2·0.382 = 0.236 of the range, less one angular step)
    angles = np.linspace(-80, 77, 90)
    shuffled = np.random.default_rng(2).permutation(angles)
    order = spread_order(shuffled)
    assert sorted(order.tolist()) == list(range(90))
    np.testing.assert_array_equal(order, spread_order(shuffled))
    gaps = np.abs(np.diff(shuffled[order]))
    assert gaps.min() > 0.2 * 157


@lru_cache(maxsize=1)
def _heldout_field():
    # a plate field the defaults were not tuned on (seed 21), 90 angles over −80..77°, OD noise
    # 0.01 (about the noise of the ptychographic OD the pipeline reconstructs)
    angles = np.linspace(-80.0, 77.0, 90)
    sample = plate_sample((24, 64, 64), 6.7e-9, n_particles=4, soc=0.5, seed=21)
    lfp, fp = sample.phase_volumes()
    refs = reference_spectra([ENERGY_EV])
    truth = ((refs.LiFePO4.iloc[0] * lfp + refs.FePO4.iloc[0] * fp) * sample.voxel_m).astype(np.float32)
    tilt = od_tilt_series(sample, [ENERGY_EV], angles, noise_sigma=0.01, seed=21)[ENERGY_EV]
    return truth, tilt, angles


def test_default_beats_acquisition_order_and_constant_relaxation_on_heldout_field():
    # 20 sweeps on a held-out field: acquisition order at the former constant λ 0.25 (ASTRA's
    # algorithm at matched λ) is still converging (measured 0.264 here); at λ 0.5 it is 0.208;
    # the spread order with the 1 → 0.1 schedule reaches 0.183 (24 thin slices: the missing wedge
    # and the noise dominate). Bounds: the default must beat both by at least 5 % (a regression to
    # either the order or a constant λ fails) and stay under 0.20 (measured + 10 %)
    truth, tilt, angles = _heldout_field()
    default = rel_err(art(tilt, angles, iterations=20), truth)
    seq_025 = rel_err(art(tilt, angles, iterations=20, relaxation=0.25, order="sequential"), truth)
    seq_05 = rel_err(art(tilt, angles, iterations=20, relaxation=0.5, order="sequential"), truth)
    assert default < 0.95 * min(seq_025, seq_05), (default, seq_025, seq_05)
    assert default < 0.20


def test_paper_setup_20_iterations():
    # the paper: ART, 20 iterations, 158 projections over −80..77°. The 23° missing wedge smears
    # the 3-voxel-thin plates along z and the OD noise (σ 0.005, ~1 % of the largest projection)
    # is averaged out by the decreasing relaxation; measured 0.070 on this sample (0.106 with the
    # former constant λ 0.25 in acquisition order), bound 0.09 (FBP reaches 0.43, unconstrained
    # ART 0.33, so a broken geometry, order or constraint fails it)
    truth, tilt, angles = plate_data()
    rec = art(tilt, angles, iterations=20)
    assert rec.dtype == np.float32 and rec.shape == truth.shape
    assert rel_err(rec, truth) < 0.09
    assert rec.min() >= 0.0


def test_random_order_is_seeded():
    _truth, tilt, angles = plate_data()
    a = art(tilt[:, :4], angles, iterations=2, order="random", seed=5)
    b = art(tilt[:, :4], angles, iterations=2, order="random", seed=5)
    np.testing.assert_array_equal(a, b)
