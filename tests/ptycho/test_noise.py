"""The Poisson floor of the error metric (``ptycho.noise``) and the stopping rule built on it."""

import logging

import numpy as np
import pytest

from chemtomo.ptycho import ConvergenceOptions, PtychoOptions, reconstruct
from chemtomo.ptycho.noise import amplitude_floor, dim_background, poisson_amplitude_moments
from chemtomo.simulate.ptychography import diffraction_frames

from .conftest import make_scan, object_error


def test_the_moments_match_their_limits_and_a_monte_carlo():
    f, v = poisson_amplitude_moments(np.array([1e-3, 1.0, 1e4]))
    # large λ: √N ≈ √λ + Z/2, so (√N − √λ)² ≈ Z²/4: mean 1/4, variance 2/16 (delta method);
    # the next term of the mean is 7/(64 λ) ≈ 1e-5 here
    assert f[2] == pytest.approx(0.25, abs=2e-5) and v[2] == pytest.approx(0.125, rel=1e-3)
    # small λ: N = 0 (cost λ) or 1 (cost ≈ 1) with probability ≈ λ: f ≈ 2λ
    assert f[0] == pytest.approx(2e-3, rel=0.05)
    # λ = 1 against 10⁶ draws: the Monte-Carlo mean's standard error is √(v/10⁶) ≈ 5e-4; 5 of them
    draws = np.random.default_rng(0).poisson(1.0, 10 ** 6)
    d2 = (np.sqrt(draws) - 1.0) ** 2
    assert f[1] == pytest.approx(d2.mean(), abs=5 * np.sqrt(v[1] / 1e6))
    assert v[1] == pytest.approx(d2.var(), rel=0.02)


@pytest.mark.parametrize("dose", [1e3, 1e4, 1e5, 1e7])
def test_the_metric_at_the_truth_equals_the_floor_within_its_uncertainty(dose):
    # conftest.make_scan: 36 frames of 32², zone-plate probe; Truth.floor is the engine's metric
    # Σ(√I − √λ)² / Σ I evaluated at the true model λ (the noise-free frames). The floor is
    # estimated from the noisy counts alone; its uncertainty is the metric's own Poisson standard
    # deviation σ combined with the estimate's systematic one (empirical Bayes for the pixels
    # below 64 counts, ``NoiseFloor.systematic``). Measured on seeds 0–2: |z| ≤ 1.1 in those units.
    for seed in (0, 1):
        t = make_scan(dose=dose, seed=seed)
        floor = amplitude_floor(np.sqrt(t.scan.frames))
        total_sd = np.hypot(floor.sigma, floor.systematic * floor.relative)
        assert abs(t.floor - floor.relative) < 3 * total_sd, (dose, seed, t.floor, floor)
        # the exact expectation from the true λ (unknown in practice) lies within the systematic
        # uncertainty of the estimate (plus 3σ of the count noise)
        expected = diffraction_frames(t.obj, t.probe / np.sqrt(dose), t.positions_px, dose_photons=dose, noise=False)
        lam = np.round(expected.ravel(), 4)
        grid, inverse = np.unique(lam, return_inverse=True)
        f, _ = poisson_amplitude_moments(grid)
        exact = float(f[inverse].sum() / t.scan.frames.sum())
        assert abs(exact - floor.relative) < floor.systematic * floor.relative + 3 * floor.sigma


def test_the_floor_is_a_quarter_per_pixel_at_high_counts_and_absent_for_non_counts():
    rng = np.random.default_rng(1)
    counts = rng.poisson(500.0, size=(8, 32, 32)).astype(np.float32)
    floor = amplitude_floor(np.sqrt(counts))
    # 1/4 + 7/(64·500) = 0.2502 per pixel; the estimate's relative error here is < 1e-3
    assert floor.per_pixel == pytest.approx(0.2502, abs=1e-3)
    assert floor.relative == pytest.approx(0.2502 / 500, rel=0.01)
    # gain-scaled (not photon-counting) data have no known floor: the rule falls back
    assert amplitude_floor(np.sqrt(counts * np.float32(0.37))) is None
    # masked pixels do not count
    valid = np.zeros((32, 32), bool)
    valid[:16] = True
    assert amplitude_floor(np.sqrt(counts), valid).n_pixels == 8 * 16 * 32


def test_the_floor_of_bright_data_needs_no_histogram_as_long_as_the_brightest_count():
    # 10⁸ counts in a pixel (a 10⁹-photon frame's central peak): a histogram of every count value
    # took 4.1 GB and 3.8 s before the first iteration; the pixels above 64 counts are summed as
    # they are. The floor is the same: 1/4 + 7/(64 N) per pixel.
    import tracemalloc

    rng = np.random.default_rng(2)
    counts = np.rint(rng.uniform(1e3, 1e8, size=(4, 32, 32))).astype(np.float32)
    tracemalloc.start()
    floor = amplitude_floor(np.sqrt(counts))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, peak  # the data are 16 kB; 20 MB leaves room for the 64-count EM's tables
    expected = np.sum(0.25 + 7.0 / (64.0 * counts.astype(np.float64))) / counts.sum(dtype=np.float64)
    assert floor.relative == pytest.approx(expected, rel=1e-6) and floor.systematic == 0.0


def test_the_stopping_rule_stops_early_on_a_converged_low_dose_scan(caplog):
    # 10⁴ photons per frame on 36 frames of 32² (~10 counts per pixel), LSQML (the default's
    # low-dose chain). With the discrepancy principle (stop where the misfit reaches the floor F)
    # the run stops once the model explains the data as well as the truth does; by default it
    # waits for the best fit's level F·(1 − p/n) and, not reaching it, for a flat error.
    # Measured on seeds 0 and 1 at 10³ and 10⁴ photons: 17–45 iterations against 96–163, at an
    # object error 1.02–1.11× the longer run's (the last per cent of fit is mostly noise).
    # The positions are exact and held, so that the two runs differ only in where they stop (with
    # refinement on, the early run stops 17 position updates into it: 0.072 against 0.063 on seed 0).
    t = make_scan(dose=1e4)
    early = PtychoOptions(convergence=ConvergenceOptions(discrepancy_counts=50.0))
    with caplog.at_level(logging.INFO, logger="chemtomo.ptycho"):
        p = reconstruct(t.scan, "LSQML:300", frc=False, options=early, refine_positions=False)
    q = reconstruct(t.scan, "LSQML:300", frc=False, refine_positions=False)
    assert p.info["stop_reason"] == "converged" and not p.info["diverged"]
    assert p.info["convergence_rule"] == "noise floor" and q.info["convergence_rule"] == "relative fall"
    assert p.info["noise_floor"] == pytest.approx(t.floor, rel=0.05)  # the estimate, within its systematic 4 %
    assert p.info["floor_target"] == p.info["noise_floor"] > q.info["floor_target"]
    assert 2 * p.info["iterations"] < q.info["iterations"], (p.info["iterations"], q.info["iterations"])
    assert any("rule: noise floor" in r.getMessage() for r in caplog.records)
    # stopped at the floor: the last window's misfit is within the rule's margin (the floor's 4 %
    # systematic uncertainty) of it, where the long run went on to fit ~10 % of the noise
    assert p.errors[-10:].mean() < 1.06 * p.info["noise_floor"]
    assert q.errors[-10:].mean() < 0.95 * q.info["noise_floor"]
    e_early = object_error(p.transmission, t.obj, 12)
    e_long = object_error(q.transmission, t.obj, 12)
    assert e_early < 1.15 * e_long, (e_early, e_long)


def test_dim_background_tells_a_detector_background_from_diffraction():
    # 36 frames of 32²: with 0.5 photons per pixel of background the dimmest quarter holds
    # ~0.27 counts per frame, all of it background (a constant count: variance = mean), and the
    # two extremes are ~18 standard errors apart (√(⟨mean²⟩ n P / 2) with n = 36, P = 256)
    with_bg = make_scan(background_counts=0.5)
    m, fraction, separation = dim_background(np.sqrt(with_bg.scan.frames))
    assert m == pytest.approx(0.27, rel=0.2)
    assert fraction > 0.5 and separation > 3
    # without it the quarter holds ~0.01 counts: too few to tell (separation < 1), whatever the
    # fraction says
    assert dim_background(np.sqrt(make_scan().scan.frames))[2] < 3
    # a bright scan without background: the dim pixels hold diffraction, which changes from frame
    # to frame (variance above the mean)
    bright = make_scan(dose=1e8)
    m, fraction, separation = dim_background(np.sqrt(bright.scan.frames))
    assert separation > 3 and fraction < 0.5
