"""Polar angle, mixture fit, classes and histograms."""

import numpy as np
import pytest
from chem_sim import VOXEL_M, od_volumes, references, sample

from chemtomo.chem import (
    class_fractions,
    classify,
    composition_histogram,
    estimate_noise,
    fit_bimodal,
    fraction,
    polar_angle,
    polar_to_fraction,
    reference_angles,
    sample_mask,
    uncertainty,
    unmix,
)
from chemtomo.core import InputError
from chemtomo.simulate import reference_spectra


def test_polar_angle_and_linear_solve_agree():
    # the polar-angle composition is the linear solve written in polar form: on noisy
    # simulated volumes they must agree to float32 round-off (~1e-6 on values in [0, 1],
    # amplified by 1/density for partly filled voxels; 1e-4 bounds it)
    s = sample()
    ods = od_volumes(s, sigma=0.003, seed=3)
    r = references()
    conc = unmix(ods, r, voxel_m=VOXEL_M)
    mask = sample_mask(conc.sum(0))
    f_lin = fraction(conc, mask=mask)
    angle = polar_angle(ods[0], ods[1])
    f_pol = polar_to_fraction(angle, r)
    assert angle.dtype == np.float32 and f_pol.dtype == np.float32
    assert np.nanmax(np.abs(f_pol[mask] - f_lin[mask])) < 1e-4
    # pure phases lie on the reference directions
    a_lfp, a_fp = reference_angles(r)
    assert polar_to_fraction(a_lfp, r) == pytest.approx(0.0, abs=1e-6)
    assert polar_to_fraction(a_fp, r) == pytest.approx(1.0, abs=1e-6)
    assert polar_to_fraction(0.5 * (a_lfp + a_fp), r) == pytest.approx(
        float(fraction(unmix(np.array([[np.cos(np.radians(0.5 * (a_lfp + a_fp)))],
                                       [np.sin(np.radians(0.5 * (a_lfp + a_fp)))]]), r),
                       mask=np.ones(1, bool))[0]), abs=1e-6)
    with pytest.raises(InputError, match=r"polar_to_fraction needs a \(2, 2\) reference matrix"):
        polar_to_fraction(angle, np.vstack([r, r[:1] * 0.5]))


def test_fit_bimodal_recovers_the_papers_distribution_through_unmixing():
    # truth: per-voxel x_FP from the paper's two Gaussians (centres 0.07 and 0.98, RMS widths
    # 0.113 and 0.139, weights 0.8/0.2 ~ SOC 16 %); ODs from the simulator's references plus
    # noise; unmixed, clipped to [0, 1] by fraction(); fitted with censoring at the bounds.
    # The fitted width is the truth's width and the measurement's in quadrature.
    rng = np.random.default_rng(11)
    n = 40000
    comp = rng.random(n) < 0.8
    x = np.where(comp, rng.normal(0.07, 0.113, n), rng.normal(0.98, 0.139, n)).astype(np.float32)
    c_true = np.stack([1 - x, x])                     # full voxels, x may leave [0, 1] (as a
    r = references()                                  # Gaussian model does), density is 1
    sigma_od = 0.001
    ods = ((r * VOXEL_M) @ c_true + rng.normal(0, sigma_od, (2, n))).astype(np.float32)
    conc = unmix(ods, r, voxel_m=VOXEL_M)
    f = fraction(conc, mask=np.ones(n, bool))
    _, sx = uncertainty(sigma_od, r, conc, voxel_m=VOXEL_M)
    fit = fit_bimodal(f, seed=0)
    assert fit.converged and fit.n_censored[0] > 0.2 * n    # a quarter of the voxels at 0
    meas = float(np.median(sx))
    want_w = np.sqrt(np.array([0.113, 0.139]) ** 2 + meas ** 2)
    # centres: 5 standard errors; widths: relative standard error ~1/sqrt(2 n_k), inflated
    # ~1.5x by censoring of up to half a component -> 5 x 1.5 / sqrt(2 n_k)
    assert np.all(np.abs(fit.centres - [0.07, 0.98]) < 5 * fit.centre_sigmas)
    nk = fit.weights * n
    assert np.all(np.abs(fit.rms_widths / want_w - 1) < 7.5 / np.sqrt(2 * nk))
    assert np.all(np.abs(fit.weights - [0.8, 0.2]) < 5 * np.sqrt(0.16 / n))
    # the clipped data's plain moments would be far off: the low mode's spread shrinks
    assert np.std(f[f < 0.5]) < 0.85 * fit.rms_widths[0]
    assert fit.pdf(np.array([0.07])) > fit.pdf(np.array([0.5]))


def test_fit_bimodal_on_simulated_plates_finds_the_end_members():
    # simulated plates are pure LiFePO4 or FePO4 except ~5 % of voxels on phase boundaries;
    # on the pure voxels the fit must find centres 0 and 1 and, as widths, the measurement's
    # propagated sigma of each mode (sigma estimated from the data). Boundary voxels are left
    # out: with them, 5 % of intermediate values widen the modes by 30-50 %.
    s = sample(shape=(32, 64, 64), n_particles=10, soc=0.4)
    ods = od_volumes(s, sigma=0.003, seed=9)
    r = references()
    conc = unmix(ods, r, voxel_m=VOXEL_M)
    pure = (s.occupancy > 0.95) & ((s.fraction == 0) | (s.fraction == 1))
    f = fraction(conc, mask=pure)
    sig = [estimate_noise(od) for od in ods]
    _, sx = uncertainty(sig, r, conc, voxel_m=VOXEL_M)
    fit = fit_bimodal(f[pure], seed=1)
    nk = fit.weights * pure.sum()
    # centres: 5 standard errors; widths: 7.5 / sqrt(2 n_k) as in the test above
    assert np.all(np.abs(fit.centres - [0.0, 1.0]) < 5 * fit.centre_sigmas)
    want = np.array([np.median(sx[pure & (s.fraction == t)]) for t in (0, 1)])
    assert np.all(np.abs(fit.rms_widths / want - 1) < 7.5 / np.sqrt(2 * nk))
    share_fp = float(np.mean(s.fraction[pure] == 1))
    assert abs(fit.weights[1] - share_fp) < 5 * np.sqrt(share_fp * (1 - share_fp) / pure.sum())


def test_fit_bimodal_input_errors():
    with pytest.raises(InputError, match="at least 10 finite values"):
        fit_bimodal([0.1, 0.2, np.nan])
    with pytest.raises(InputError, match=r"must lie in \[0.0, 1.0\], found \[-0.5"):
        fit_bimodal(np.linspace(-0.5, 1, 20))


def test_classify_and_class_fractions():
    f = np.array([np.nan, 0.0, 0.29, 0.3, 0.5, 0.7, 0.71, 1.0], np.float32)
    labels = classify(f, thresholds=(0.3, 0.7))
    assert labels.dtype == np.uint8
    assert labels.tolist() == [0, 1, 1, 2, 2, 2, 3, 3]
    shares = class_fractions(labels)
    assert shares == {"LFP-rich": 2 / 7, "mixed": 3 / 7, "FP-rich": 2 / 7}
    assert classify(f, (0.2, 0.4)).tolist() == [0, 1, 2, 2, 3, 3, 3, 3]
    with pytest.raises(InputError, match=r"0 <= lfp_rich_max < fp_rich_min <= 1, got \(0.7, 0.3\)"):
        classify(f, (0.7, 0.3))
    with pytest.raises(InputError, match="labels must be 0 .outside. to 3"):
        class_fractions(np.array([0, 5]))


def test_class_fractions_match_simulated_truth():
    # noise-free unmixing: classes equal the classes of the true fraction on full voxels
    s = sample()
    conc = unmix(od_volumes(s), references(), voxel_m=VOXEL_M)
    full = s.occupancy > 0.9
    got = class_fractions(classify(fraction(conc, mask=full)))
    want = class_fractions(classify(np.where(full, s.fraction, np.nan)))
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-3)   # a voxel exactly at 0.3/0.7 may flip


def test_composition_histogram_counts_finite_values():
    f = np.array([np.nan, 0.0, 0.25, 0.5, 1.0])
    counts, edges = composition_histogram(f, bins=4)
    assert counts.tolist() == [1, 1, 1, 1] and edges[0] == 0 and edges[-1] == 1
    w_counts, _ = composition_histogram(f, bins=4, weights=np.array([1, 2, 3, 4, 5.0]))
    assert w_counts.tolist() == [2, 3, 4, 5]


def test_reference_spectra_peaks_give_well_separated_directions():
    # the two reference directions must differ enough for the polar angle to resolve x:
    # the simulator's maxima at 708.2/710.2 eV give directions > 15 degrees apart
    r = reference_spectra([708.2, 710.2])[["LiFePO4", "FePO4"]].to_numpy()
    a = reference_angles(r)
    assert a[1] - a[0] > 15
