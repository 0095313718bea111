"""Tests of chemtomo.resolution.frc / fsc: shells, counts, correlation values, resolution."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from chemtomo.core import Curve, InputError
from chemtomo.resolution import frc, fsc, half_bit_threshold
from chemtomo.resolution.apodize import DEFAULT_TAPER, tukey_1d
from chemtomo.resolution.frc import crossing_frequency, shell_frequencies


def _gaussian_sq_mtf(f_per_m, sigma_m):
    """|MTF|² of a Gaussian blur of standard deviation sigma_m at frequency f (cycles/m)."""
    return np.exp(-4.0 * np.pi**2 * sigma_m**2 * f_per_m**2)


def _brute_force_shell_index(shape, spacing_m, delta_f):
    grids = np.meshgrid(*[np.fft.fftfreq(n, d) for n, d in zip(shape, spacing_m)], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids)) / delta_f
    return np.floor(radius + 0.5).astype(int)


@pytest.mark.parametrize("apodize", [False, True])
@pytest.mark.parametrize("blurred", ["both", "one"])
def test_fsc_of_gaussian_blurred_noisy_copies_matches_theory_within_one_shell(apodize, blurred):
    # White signal s (unit power per Fourier sample), blurred by a Gaussian of sigma = 1.5
    # voxels, seen twice with independent white noise of variance 1/snr. Theory (Frank & Al-Ali):
    #   both blurred:  FSC(f) = snr G²(f) / (snr G²(f) + 1)
    #   one blurred:   FSC(f) = G(f) / sqrt((1 + 1/snr) (G²(f) + 1/snr)),  G(f) = exp(-2π²σ²f²),
    # and the expected resolution is where that curve meets the ½-bit threshold of the same shells.
    n, voxel_m, sigma_px, snr = 64, 6.7e-9, 1.5, 1000.0
    rng = np.random.default_rng(11)
    s = rng.standard_normal((n, n, n)).astype(np.float32)
    gs = gaussian_filter(s, sigma_px, mode="wrap")
    noise = rng.standard_normal((2, n, n, n)).astype(np.float32) / np.sqrt(snr)
    a = (gs if blurred == "both" else s) + noise[0]
    b = gs + noise[1]

    curve = fsc(a, b, voxel_m, apodize=apodize)

    g2 = _gaussian_sq_mtf(curve.frequency_per_m, sigma_px * voxel_m)
    if blurred == "both":
        theory = snr * g2 / (snr * g2 + 1.0)
    else:
        theory = np.sqrt(g2) / np.sqrt((1.0 + 1.0 / snr) * (g2 + 1.0 / snr))
    f_expected = crossing_frequency(curve.frequency_per_m, theory, curve.threshold)
    f_measured = 1.0 / (2.0 * curve.resolution_m)
    shell = curve.frequency_per_m[0]
    assert 10 * shell < f_expected < 25 * shell  # the crossing is well inside the band
    # Near the crossing (shell 20-22, ~5000 voxels/shell) the FSC scatters by ~(1 - C²)/sqrt(n)
    # ≈ 0.015 (×1.2 for the window) while the theory falls ~0.1 per shell: ~0.2 shell of noise.
    # The Tukey window's spectral leakage lifts the steep Gaussian tail by a further ~0.1-0.2
    # shell. Over seeds 0-9 the deviation stayed within -0.26..0.43 shell (default window), so
    # the one-shell tolerance the issue asks for holds with a wide margin.
    assert abs(f_measured - f_expected) <= shell
    assert curve.resolution_m == pytest.approx(1.0 / (2.0 * f_measured))


def test_fsc_uses_physical_frequency_per_axis_for_anisotropic_voxels():
    # A blur of 9 nm in physical units on voxels of (6, 8, 5) nm is a different number of voxels
    # along each axis; only if shells use physical frequencies does the measured crossing match
    # the isotropic theory in cycles per metre. Tolerance one shell, as above.
    shape, voxel_m, sigma_m, noise_var = (48, 40, 64), (6e-9, 8e-9, 5e-9), 9e-9, 0.03**2
    rng = np.random.default_rng(5)
    s = rng.standard_normal(shape).astype(np.float32)
    gs = gaussian_filter(s, sigma_m / np.array(voxel_m), mode="wrap")
    a = s + np.sqrt(noise_var) * rng.standard_normal(shape).astype(np.float32)
    b = gs + np.sqrt(noise_var) * rng.standard_normal(shape).astype(np.float32)

    curve = fsc(a, b, voxel_m)

    g = np.sqrt(_gaussian_sq_mtf(curve.frequency_per_m, sigma_m))
    theory = g / np.sqrt((1.0 + noise_var) * (g**2 + noise_var))
    f_expected = crossing_frequency(curve.frequency_per_m, theory, curve.threshold)
    shell = 1.0 / (48 * 6e-9)  # the widest Fourier pixel, 1 / (N d) of the shortest field of view (y)
    assert curve.frequency_per_m[0] == pytest.approx(shell)
    assert abs(1.0 / (2.0 * curve.resolution_m) - f_expected) <= shell


def test_frc_of_gaussian_blurred_noisy_copies_matches_theory_within_one_shell():
    # 2D version with a complex-valued pair (ptychography transmissions are complex): complex
    # white signal, both copies blurred (sigma 2 px), complex noise; FRC = snr G² / (snr G² + 1),
    # crossing near ring 16. Rings hold only ~100 pixels there, so the FRC scatters more than the
    # FSC: over seeds 0-29 the measured minus expected crossing was 0.21 ± 0.29 ring (max 0.93),
    # so one ring is a ~3-sigma bound for a single fixed seed.
    n, pixel_m, sigma_px, snr = 64, 10e-9, 2.0, 1e4
    rng = np.random.default_rng(3)
    s = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.sqrt(2)
    gs = gaussian_filter(s.real, sigma_px, mode="wrap") + 1j * gaussian_filter(s.imag, sigma_px, mode="wrap")
    noise = (rng.standard_normal((2, n, n)) + 1j * rng.standard_normal((2, n, n))) / np.sqrt(2 * snr)
    a, b = (gs + noise[0]).astype(np.complex64), (gs + noise[1]).astype(np.complex64)

    curve = frc(a, b, pixel_m)

    g2 = _gaussian_sq_mtf(curve.frequency_per_m, sigma_px * pixel_m)
    f_expected = crossing_frequency(curve.frequency_per_m, snr * g2 / (snr * g2 + 1), curve.threshold)
    assert abs(1.0 / (2.0 * curve.resolution_m) - f_expected) <= curve.frequency_per_m[0]


def test_apodisation_stops_a_non_periodic_background_from_faking_resolution():
    # A smooth ramp shared by both volumes is not periodic: the FFT sees a jump at the faces,
    # whose power (~1/k²) along the axes is common to both volumes and exceeds the blurred
    # signal at high frequency. Without the window the FSC never falls below ½ bit (a false
    # "Nyquist-limited" result); with the default Tukey window it crosses where the theory says.
    # Over seeds 0-9 the windowed crossing deviated 0.21 ± 0.13 shell (max 0.46): tolerance 1.
    n, voxel_m, sigma_px, snr = 48, 10e-9, 1.5, 1e3
    rng = np.random.default_rng(0)
    gs = gaussian_filter(rng.standard_normal((n, n, n)).astype(np.float32), sigma_px, mode="wrap")
    y, z, x = np.mgrid[0:n, 0:n, 0:n] / n
    ramp = (0.3 * (x + 0.5 * y - 0.7 * z)).astype(np.float32)
    noise = rng.standard_normal((2, n, n, n)).astype(np.float32) / np.sqrt(snr)
    a, b = gs + ramp + noise[0], gs + ramp + noise[1]

    assert np.isnan(fsc(a, b, voxel_m, apodize=False).resolution_m)
    curve = fsc(a, b, voxel_m)
    g2 = _gaussian_sq_mtf(curve.frequency_per_m, sigma_px * voxel_m)
    f_expected = crossing_frequency(curve.frequency_per_m, snr * g2 / (snr * g2 + 1), curve.threshold)
    assert abs(1.0 / (2.0 * curve.resolution_m) - f_expected) <= curve.frequency_per_m[0]


@pytest.mark.parametrize("ndim", [2, 3])
def test_independent_noise_crosses_threshold_at_low_frequency(ndim):
    # Two independent noise arrays share no signal: every shell's correlation is chance. Over n
    # samples (n/2 independent complex pairs) its standard deviation is 1/sqrt(n); the window
    # correlates neighbouring samples, raising it by at most 1/sqrt(keep), keep = Π_axes
    # (mean w²)² / mean w⁴ (0.73 per axis at the default taper; measured rise ×1.13 in 2D and
    # ×1.2 in 3D). The ½-bit curve sits 1.4-1.7 (2D) and 1.6-2.5 (3D) measured standard
    # deviations above zero in shells 1-3, so all three stay above it with probability
    # < 3e-4: the crossing comes in the first three shells.
    shape = (64,) * ndim
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2,) + shape).astype(np.float32)
    curve = (frc if ndim == 2 else fsc)(a, b, 5e-9)
    shell = curve.frequency_per_m[0]
    assert np.isfinite(curve.resolution_m)
    assert 1.0 / (2.0 * curve.resolution_m) <= 3 * shell
    # Over all 32 shells the chance correlation stays within 4 bounding standard deviations
    # (≥ 4.8 measured ones: expected number of shells beyond ~32 × 2e-6).
    w = tukey_1d(64, DEFAULT_TAPER).astype(np.float64)
    keep = ((w**2).mean() ** 2 / (w**4).mean()) ** ndim
    sigma_bound = 1.0 / np.sqrt(curve.n_per_shell * keep)
    assert np.all(np.abs(curve.correlation) < 4.0 * sigma_bound)


@pytest.mark.parametrize("shape,voxel_m", [((32, 48, 64), (5e-9, 4e-9, 3e-9)),
                                           ((33, 32, 31), (6.7e-9,) * 3),
                                           ((40, 50), (1e-9, 1e-9)),
                                           ((37, 64), (3e-9, 2e-9))])
@pytest.mark.parametrize("kind", ["real", "complex"])
def test_shell_counts_sum_to_fourier_samples_inside_the_sphere(shape, voxel_m, kind):
    # Counts must be those of the full transform (the rfft path weighs Hermitian partners),
    # checked against an independent count over a full fftfreq grid: exact integers.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2,) + shape)
    if kind == "complex":
        a = a + 1j * rng.standard_normal(shape)
    curve = (frc if len(shape) == 2 else fsc)(a, b, voxel_m)
    delta_f, r_max = shell_frequencies(shape, voxel_m)
    index = _brute_force_shell_index(shape, voxel_m, delta_f)
    assert curve.n_per_shell.sum() == np.count_nonzero((index >= 1) & (index <= r_max))
    np.testing.assert_array_equal(curve.n_per_shell, np.bincount(index.ravel())[1:r_max + 1])
    np.testing.assert_allclose(curve.frequency_per_m, delta_f * np.arange(1, r_max + 1), rtol=1e-12)
    np.testing.assert_allclose(curve.threshold, half_bit_threshold(curve.n_per_shell), rtol=1e-12)


def test_real_and_complex_paths_agree():
    # A real pair correlated through the rfft (weighted half spectrum) and through the full
    # complex FFT must give the same curve: the only difference is float32 rounding (~1e-6).
    rng = np.random.default_rng(4)
    a = gaussian_filter(rng.standard_normal((40, 36, 44)), 1.0)
    b = a + 0.05 * rng.standard_normal(a.shape)
    real, cplx = fsc(a, b, 1e-9), fsc(a.astype(np.complex64), b.astype(np.complex64), 1e-9)
    np.testing.assert_allclose(real.correlation, cplx.correlation, atol=1e-5)
    np.testing.assert_array_equal(real.n_per_shell, cplx.n_per_shell)


@pytest.mark.parametrize("ndim", [2, 3])
def test_identical_inputs_correlate_perfectly_and_resolution_is_nan(ndim):
    # C = Σ|A|² / sqrt(Σ|A|² Σ|A|²) = 1 in every shell up to float rounding; never crossing the
    # threshold is documented as resolution NaN (resolution at least the Nyquist half-period).
    a = np.random.default_rng(7).standard_normal((32,) * ndim).astype(np.float32)
    curve = (frc if ndim == 2 else fsc)(a, a, 8e-9)
    assert isinstance(curve, Curve)
    np.testing.assert_allclose(curve.correlation, 1.0, atol=1e-6)
    assert np.isnan(curve.resolution_m)
    assert curve.frequency_per_m[-1] == pytest.approx(1.0 / (2 * 8e-9))  # the last shell is Nyquist


def test_scale_and_offset_do_not_change_the_curve_and_sign_flip_negates_it():
    # The mean is removed and C is normalised, so b -> 3 b + 5 changes nothing (float32 rounding);
    # b -> -a gives C = -1 everywhere and a crossing at the first shell: resolution = 1/(2 Δf).
    rng = np.random.default_rng(8)
    a = gaussian_filter(rng.standard_normal((48, 48)), 1.5)
    b = a + 0.1 * rng.standard_normal(a.shape)
    ref, scaled = frc(a, b, 1e-8), frc(a, 3 * b + 5, 1e-8)
    np.testing.assert_allclose(scaled.correlation, ref.correlation, atol=1e-5)
    flipped = frc(a, -a, 1e-8)
    np.testing.assert_allclose(flipped.correlation, -1.0, atol=1e-6)
    assert flipped.resolution_m == pytest.approx(1.0 / (2 * flipped.frequency_per_m[0]))


def test_global_phase_offset_scales_complex_correlation_by_its_cosine():
    # Re Σ A (A e^{iφ})* = cos φ Σ|A|²: the documented reason to remove a global phase first.
    # complex64 FFT rounding (~1e-7 of the total power) is ~1e-5 of the weak outermost ring.
    rng = np.random.default_rng(9)
    a = np.exp(1j * gaussian_filter(rng.standard_normal((48, 48)), 2.0)).astype(np.complex64)
    curve = frc(a, a * np.exp(0.7j), 1e-8)
    np.testing.assert_allclose(curve.correlation, np.cos(0.7), atol=1e-4)


def test_one_seventh_threshold_is_constant_and_crosses_later_than_half_bit_for_large_shells():
    # 1/7 = 0.143 < 0.172 (the ½-bit limit), so on a smoothly falling curve its crossing is at
    # a higher frequency (finer resolution) than the ½-bit one.
    rng = np.random.default_rng(10)
    s = gaussian_filter(rng.standard_normal((64, 64, 64)), 2.0, mode="wrap")
    a, b = s + 0.01 * rng.standard_normal((2, 64, 64, 64))
    half, seventh = fsc(a, b, 1e-9), fsc(a, b, 1e-9, threshold="1/7")
    assert seventh.threshold_name == "1/7"
    np.testing.assert_allclose(seventh.threshold, 1 / 7)
    assert seventh.resolution_m < half.resolution_m


def test_crossing_interpolates_linearly_and_handles_edge_cases():
    f = np.array([1.0, 2.0, 3.0, 4.0])
    t = np.full(4, 0.5)
    # C - T goes 0.4, 0.2, -0.2: the zero lies half way between shells 2 and 3.
    assert crossing_frequency(f, np.array([0.9, 0.7, 0.3, 0.1]), t) == pytest.approx(2.5)
    assert crossing_frequency(f, np.array([0.2, 0.9, 0.9, 0.9]), t) == 1.0  # below at once
    assert np.isnan(crossing_frequency(f, np.full(4, 0.9), t))  # never below
    assert crossing_frequency(f, np.array([0.9, np.nan, 0.9, 0.9]), t) == 2.0  # no power counts as below


def test_output_types_and_dtypes():
    rng = np.random.default_rng(12)
    curve = fsc(rng.standard_normal((16, 16, 16)), rng.standard_normal((16, 16, 16)), 1e-9)
    for name in ("frequency_per_m", "correlation", "threshold"):
        assert getattr(curve, name).dtype == np.float64 and getattr(curve, name).shape == (8,)
    assert curve.n_per_shell.dtype == np.int64
    assert isinstance(curve.resolution_m, float)


@pytest.mark.parametrize("call,match", [
    (lambda: frc(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), 1e-9), r"frc: a must be a 2D image \(ny, nx\), got shape \(8, 8, 8\)"),
    (lambda: fsc(np.ones((8, 8)), np.ones((8, 8)), 1e-9), r"fsc: a must be a 3D volume \(ny, nz, nx\), got shape \(8, 8\)"),
    (lambda: frc(np.ones((8, 8)), np.ones((8, 9)), 1e-9), r"same shape, got \(8, 8\) and \(8, 9\)"),
    (lambda: frc(np.ones((3, 8)), np.ones((3, 8)), 1e-9), r"at least 4 samples"),
    (lambda: frc(np.full((8, 8), np.nan), np.ones((8, 8)), 1e-9), r"frc: a contains NaN"),
    (lambda: frc(np.eye(8), np.full((8, 8), np.inf), 1e-9), r"frc: b contains NaN or infinite"),
    (lambda: frc(np.eye(8), np.eye(8), 0.0), r"frc: pixel_m must be positive and finite"),
    (lambda: fsc(np.eye(8) * np.ones((8, 1, 1)), np.eye(8) * np.ones((8, 1, 1)), (1e-9, 1e-9)), r"fsc: voxel_m must be one positive number of metres or 3"),
    (lambda: frc(np.eye(8), np.eye(8), 1e-9, threshold="fsc=0.5"), r"threshold must be one of 'half-bit', '1/7', got 'fsc=0.5'"),
    (lambda: frc(np.eye(8), np.eye(8), 1e-9, apodize=0.7), r"apodize must be True, False or a taper fraction"),
    (lambda: frc(np.ones((8, 8)), np.eye(8), 1e-9), r"frc: a is constant"),
    (lambda: frc(np.eye(8, dtype=bool), np.eye(8), 1e-9), r"frc: a must hold numbers, got dtype bool"),
    (lambda: frc(np.eye(64), np.eye(64), (1e-9, 40e-9)), r"complete shell"),
])
def test_bad_input_raises_input_error_naming_the_field(call, match):
    with pytest.raises(InputError, match=match):
        call()
