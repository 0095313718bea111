"""Tests of the far-field model (chemtomo.ptycho.operators and its numba kernels)."""

import numpy as np
import pytest

from chemtomo.core import fft2
from chemtomo.ptycho.operators import (
    FarFieldModel,
    object_shape_for,
    orthogonalize_modes,
)

RNG = np.random.default_rng(0)


def _crandn(*shape):
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)


def _model(n_frames=7, h=16, n_modes=2, subpixel=4):
    positions = RNG.uniform(-6, 6, (n_frames, 2))
    shape = object_shape_for(positions, (h, h), 3)
    intensity = RNG.uniform(0, 10, (n_frames, h, h)).astype(np.float32)
    model = FarFieldModel(intensity, np.ones((h, h), bool), shape, n_modes=n_modes, subpixel=subpixel)
    model.set_positions(positions)
    return model, positions


def test_exit_waves_are_fourier_shifted_probe_times_object_patch():
    model, positions = _model(subpixel=4)
    obj, probe = _crandn(*model.object_shape), _crandn(2, 16, 16)
    out = np.empty((model.n_frames, 2, 16, 16), np.complex64)
    model.exit_waves(out, obj, model.shifted_probes(probe), model.all_frames)
    oy, ox = model.object_shape
    f = np.fft.fftfreq(16)
    for j, (py, px) in enumerate(positions):
        # independent construction: patch corner from the centre convention, probe shifted by the
        # quantised remainder with its own Fourier phase ramp
        cy, cx = oy // 2 - 8 + py, ox // 2 - 8 + px
        qy, qx = np.round(cy * 4) / 4, np.round(cx * 4) / 4
        iy, ix = int(np.round(qy)), int(np.round(qx))
        sy, sx = qy - iy, qx - ix
        ramp = np.exp(-2j * np.pi * (f[:, None] * sy + f[None, :] * sx))
        shifted = np.fft.ifft2(np.fft.fft2(probe) * ramp)
        expected = shifted * obj[iy:iy + 16, ix:ix + 16]
        # complex64 products: relative rounding ~1e-6
        np.testing.assert_allclose(out[j], expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_object_sums_are_the_adjoint_of_the_exit_waves():
    model, _ = _model()
    obj, probes = _crandn(*model.object_shape), model.shifted_probes(_crandn(2, 16, 16))
    v = _crandn(model.n_frames, 2, 16, 16)
    out = np.empty_like(v)
    model.exit_waves(out, obj, probes, model.all_frames)
    num, _, _, _ = model.accumulate(v, obj, probes, model.all_frames)
    lhs, rhs = np.vdot(v, out), np.vdot(num, obj)
    # <A O, v> = <O, A^H v>; single-precision sums of ~4000 terms: relative error ~1e-5
    assert abs(lhs - rhs) < 1e-4 * abs(lhs)


def test_probe_sums_are_the_adjoint_of_the_exit_waves_in_the_probe():
    model, _ = _model()
    obj, probe = _crandn(*model.object_shape), _crandn(2, 16, 16)
    v = _crandn(model.n_frames, 2, 16, 16)
    out = np.empty_like(v)
    model.exit_waves(out, obj, model.shifted_probes(probe), model.all_frames)
    _, _, num, den = model.accumulate(v, obj, model.shifted_probes(probe), model.all_frames,
                                      do_object=False, do_probe=True)
    adjoint = model.unshift_sum(num)  # shift bins back (adjoint of the per-bin Fourier shifts)
    lhs, rhs = np.vdot(v, out), np.vdot(adjoint, probe)
    assert abs(lhs - rhs) < 1e-4 * abs(lhs)
    assert den.shape == (model.n_bins, 16, 16) and np.all(den >= 0)


def test_probe_shift_bins_are_inverted_exactly():
    model, _ = _model()
    probe = _crandn(1, 16, 16)
    shifted = model.shifted_probes(probe)
    for k in model.used_bins:
        weights = np.zeros(model.n_bins)
        weights[k] = 1.0
        back = model.unshift_sum(shifted, weights)
        # a Fourier shift is unitary; float32 FFT round trip error ~1e-6
        np.testing.assert_allclose(back, probe, atol=1e-5)
    # bins that no frame uses are not computed (and weigh nothing)
    unused = np.setdiff1d(np.arange(model.n_bins), model.used_bins)
    assert len(unused) and not np.any(shifted[unused])


def test_whole_pixel_positions_use_the_probe_itself():
    model, _ = _model(n_frames=5)
    model.set_positions(np.array([[0, 0], [3, -2], [-4, 5], [1, 1], [2, -6]], float))
    probe = _crandn(2, 16, 16)
    shifted = model.shifted_probes(probe)
    assert list(model.used_bins) == [model.n_bins // 2 + model.subpixel // 2]  # the zero-shift bin
    np.testing.assert_array_equal(shifted[model.used_bins[0]], probe)  # no FFT round trip at all
    np.testing.assert_array_equal(model.unshift_sum(shifted), probe)


def test_position_zero_sits_at_the_object_centre_with_no_sub_pixel_shift():
    model, _ = _model(h=16)
    cy, cx, kb = model.corners(np.zeros((1, 2)))
    assert (cy[0], cx[0]) == (model.object_shape[0] // 2 - 8, model.object_shape[1] // 2 - 8)
    assert np.all(model.bin_shifts[kb[0]] == 0)


def _projection_case(n_modes, h=16):
    """Random counts on 3 frames of h² with pixel (2, 3) masked, their model, random waves, a
    copy of them and a flat background of 0.5."""
    intensity = RNG.uniform(0, 10, (3, h, h)).astype(np.float32)
    valid = np.ones((h, h), bool)
    valid[2, 3] = False
    model = FarFieldModel(intensity, valid, (40, 40), n_modes=n_modes)
    waves = _crandn(3, n_modes, h, h)
    return intensity, valid, model, waves, waves.copy(), np.full((h, h), 0.5, np.float32)


@pytest.mark.parametrize("n_modes", [1, 2])
def test_modulus_projection_matches_data_and_leaves_masked_pixels(n_modes):
    intensity, valid, model, waves, before, background = _projection_case(n_modes)
    model.modulus_project(waves, model.all_frames, background, model.chunks)
    # the background is subtracted from the counts: the modes keep their ratios and their summed
    # intensity becomes max(I − b, 0) on valid pixels (float32: relative error ~1e-6)
    s_before = np.sum(np.abs(before) ** 2, axis=1)
    s_after = np.sum(np.abs(waves) ** 2, axis=1)
    expected = np.maximum(intensity - background, 0)
    np.testing.assert_allclose(s_after[:, valid], expected[:, valid], rtol=1e-4, atol=1e-5)
    ratio = np.abs(waves[:, 0]) ** 2 / np.maximum(s_after, 1e-30)
    lit = expected > 0.1
    np.testing.assert_allclose(ratio[lit], (np.abs(before[:, 0]) ** 2 / s_before)[lit], rtol=1e-3)
    np.testing.assert_array_equal(waves[:, :, 2, 3], before[:, :, 2, 3])
    again = waves.copy()
    model.modulus_project(again, model.all_frames, np.zeros_like(background), model.chunks)
    model.modulus_project(waves, model.all_frames, np.zeros_like(background), model.chunks)
    again2 = again.copy()
    model.modulus_project(again2, model.all_frames, np.zeros_like(background), model.chunks)
    np.testing.assert_allclose(again2, again, rtol=1e-4, atol=1e-5)  # a projection is idempotent


def test_fft_order_model_intensity_equals_the_centred_detector_intensity():
    # the solvers keep data in FFT order and skip every fftshift: |fft2(ψ)| must equal
    # ifftshift(|fft2c(ψ)|) exactly, for odd and even sizes
    from chemtomo.core import fft2c
    for n in (16, 15):
        psi = _crandn(n, n)
        np.testing.assert_allclose(np.abs(fft2(psi)), np.fft.ifftshift(np.abs(fft2c(psi))), atol=1e-5)


def test_orthogonalized_modes_are_orthogonal_and_keep_the_coherence_function():
    probe = _crandn(3, 8, 8)
    modes, mix = orthogonalize_modes(probe)
    flat = modes.reshape(3, -1)
    gram = flat @ flat.conj().T
    assert np.all(np.abs(gram - np.diag(np.diag(gram))) < 1e-4 * np.abs(gram).max())
    power = np.real(np.diag(gram))
    assert np.all(np.diff(power) <= 0)
    # Σ_m |P_m|² (the incoherent intensity) is invariant under the unitary mixing
    np.testing.assert_allclose(np.sum(np.abs(modes) ** 2, 0), np.sum(np.abs(probe) ** 2, 0), rtol=1e-4)
    np.testing.assert_allclose(mix @ mix.conj().T, np.eye(3), atol=1e-5)


def test_position_steps_measure_a_known_shift_and_the_one_mode_kernel_matches_the_general_one():
    from scipy import ndimage

    from chemtomo.ptycho import _kernels as K

    model, positions = _model(n_modes=1, h=24)
    # a smooth object (features ~4 px wide), so that central differences are its gradient to ~1 %
    raw = RNG.standard_normal(model.object_shape) + 1j * RNG.standard_normal(model.object_shape)
    obj = (1 + 0.3 * ndimage.gaussian_filter(raw.real, 4) + 0.3j * ndimage.gaussian_filter(raw.imag, 4))
    obj = obj.astype(np.complex64)
    probes = model.shifted_probes(_crandn(1, 24, 24))
    delta = np.array([0.08, -0.05])  # a small shift: the linearisation's error is O(δ²)
    moved = (ndimage.shift(obj.real, -delta, order=3, mode="nearest")
             + 1j * ndimage.shift(obj.imag, -delta, order=3, mode="nearest"))
    target = np.empty((model.n_frames, 1, 24, 24), np.complex64)
    model.exit_waves(target, moved.astype(np.complex64), probes, model.all_frames)  # P·O(r + δ)
    steps = model.position_steps(target, obj, probes, model.all_frames)
    # each frame's least-squares step is the shift, to the few per cent that the cubic
    # interpolation of the shifted object and the O(δ²) term leave (measured ≤ 1.5 %). Solved axis
    # by axis, without the 2×2 system's cross term, it was 0.095–0.106 and −0.069 to −0.082: the
    # y shift leaks into x through the patch's correlated gradients.
    np.testing.assert_allclose(steps, np.broadcast_to(delta, steps.shape), rtol=0.05)
    # the float-view single-mode kernel (row sums in float32) against the complex one (float64)
    general = np.zeros_like(steps)
    K.position_gradient(target, obj, probes, model.cy, model.cx, model.kb, model.all_frames, general)
    np.testing.assert_allclose(steps, general, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("n_modes", [1, 2])
def test_modulus_projection_that_shares_gives_the_waves_their_expected_share_of_the_counts(n_modes):
    intensity, valid, model, waves, before, background = _projection_case(n_modes)
    model.background_share = True
    model.modulus_project(waves, model.all_frames, background, model.chunks)
    # the expectation step of coherent + background: the modes' summed intensity becomes
    # I·s/(s + b), s their intensity before (so a pixel where s ≪ b hands its counts to b)
    s_before = np.sum(np.abs(before) ** 2, axis=1)
    s_after = np.sum(np.abs(waves) ** 2, axis=1)
    expected = intensity * s_before / (s_before + background)
    np.testing.assert_allclose(s_after[:, valid], expected[:, valid], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(waves[:, :, 2, 3], before[:, :, 2, 3])
    # without a background the two rules are the same projection
    a, b = before.copy(), before.copy()
    model.modulus_project(a, model.all_frames, np.zeros_like(background), model.chunks)
    model.background_share = False
    model.modulus_project(b, model.all_frames, np.zeros_like(background), model.chunks)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _dim_pixel_case(lam: float, n_frames: int = 64, h: int = 32):
    """Frames of Poisson counts with mean ``lam`` in every pixel, and model waves whose intensity is
    that mean (the truth): one real wave √lam per pixel."""
    rng = np.random.default_rng(7)
    counts = rng.poisson(lam, (n_frames, h, h)).astype(np.float32)
    positions = np.zeros((n_frames, 2))
    shape = object_shape_for(positions, (h, h), 3)
    model = FarFieldModel(counts, np.ones((h, h), bool), shape, n_modes=1, subpixel=1)
    model.set_positions(positions)
    waves = np.full((n_frames, 1, h, h), np.sqrt(lam), np.complex64)
    return counts, model, waves


@pytest.mark.parametrize("lam", [0.5, 3.0])
def test_the_poisson_update_is_unbiased_where_the_amplitude_projection_shrinks_dim_pixels(lam):
    # With the model at the true mean μ = λ, an unbiased update leaves the waves unchanged on
    # average over frames: E[f] = 1. The Poisson step f = min((1 + I/μ)/2, cap) has
    # E[f] = (1 + E[I]/μ)/2 = 1 but for the cap, whose share is computed exactly below; the
    # amplitude projection has E[f] = E[√I]/√λ (0.62 at λ = 0.5, 0.93 at 3: it pulls dim pixels'
    # model intensity below their mean). The tolerance is 5 standard errors of the mean factor
    # over the 65,536 pixel draws (f's standard deviation is at most 1.3 at these λ).
    from scipy.stats import poisson

    from chemtomo.ptycho import _kernels as K
    counts, model, waves = _dim_pixel_case(lam)
    k = np.arange(60)
    pk = poisson.pmf(k, lam)
    expect_poisson = float(np.sum(pk * np.minimum((1 + k / lam) / 2, K.POISSON_STEP_CAP)))
    expect_amplitude = float(np.sum(pk * np.sqrt(k))) / np.sqrt(lam)
    tolerance = 5 * 1.3 / np.sqrt(counts.size)
    background = np.zeros(counts.shape[1:], np.float32)

    amp = waves.copy()
    model.modulus_project(amp, model.all_frames, background, model.chunks)
    model.poisson = True
    poi = waves.copy()
    model.modulus_project(poi, model.all_frames, background, model.chunks)
    f_amp = float(np.mean(amp.real) / np.sqrt(lam))
    f_poi = float(np.mean(poi.real) / np.sqrt(lam))
    assert abs(f_poi - expect_poisson) < tolerance
    assert abs(f_amp - expect_amplitude) < tolerance
    assert abs(expect_poisson - 1) < 0.01  # the cap's share: 0.009 at λ = 0.5 (I ≥ 3), nil at 3
    assert f_amp < 1 - 0.05  # the amplitude's bias is far outside the tolerance
    # near the fit (I ≈ μ) the two updates agree to first order: a pixel measured 5 % brighter
    near = waves.copy()
    model.amplitude[:] = np.sqrt(lam * 1.05)
    model.modulus_project(near, model.all_frames, background, model.chunks)
    np.testing.assert_allclose(near.real / np.sqrt(lam), 1.025, rtol=1e-5)  # √1.05 = 1.0247


def test_the_poisson_update_keeps_the_amplitude_misfit_and_masked_pixels():
    _, _, model, waves, before, background = _projection_case(1)
    e1, t1, r1 = model.modulus_project(waves.copy(), model.all_frames, background, model.chunks)
    model.poisson = True
    out = waves.copy()
    e2, t2, r2 = model.modulus_project(out, model.all_frames, background, model.chunks)
    assert e2 == pytest.approx(e1, rel=1e-6) and t2 == pytest.approx(t1, rel=1e-6)
    np.testing.assert_allclose(r2, r1, rtol=1e-6)
    np.testing.assert_array_equal(out[:, :, 2, 3], before[:, :, 2, 3])
