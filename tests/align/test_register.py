"""Registration primitives: upsampled phase correlation and similarity registration."""

import numpy as np
import pytest

from chemtomo.align import register_similarity, register_translation
from chemtomo.align.transform import displacement_px, inverse_params, warp
from chemtomo.core.errors import InputError


def _blobs(ny=40, nx=48, seed=0, n=10):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:ny, :nx]
    img = np.zeros((ny, nx))
    for _ in range(n):
        cy, cx = rng.uniform(12, ny - 12), rng.uniform(12, nx - 12)
        img += rng.uniform(0.5, 1) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / rng.uniform(4, 20))
    return img


def _fourier_shift(img, shift):
    ky = np.fft.fftfreq(img.shape[0])[:, None]
    kx = np.fft.fftfreq(img.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(img) * np.exp(-2j * np.pi * (ky * shift[0] + kx * shift[1]))).real


def test_translation_recovers_subpixel_shifts_of_a_stack():
    # exact (periodic, Fourier) shifts, so no window: the only error is the 1/upsample grid
    # (±0.5/50 px) and the blobs' slight aliasing
    img = _blobs()
    shifts = np.array([[2.37, -5.61], [-7.12, 3.05], [0.0, 0.48]])
    moved = np.stack([_fourier_shift(img, s) for s in shifts])
    est = register_translation(np.stack([img] * 3), moved, upsample=50, window=False)
    assert est.shape == (3, 2)
    np.testing.assert_allclose(est, shifts, atol=0.02)


def test_translation_integer_and_single_image():
    # upsample=1 gives the integer peak; a 2D pair returns a (2,) shift
    img = _blobs(seed=3)
    est = register_translation(img, np.roll(img, (3, -4), axis=(0, 1)), upsample=1, window=False)
    assert est.shape == (2,)
    np.testing.assert_array_equal(est, [3.0, -4.0])


def test_similarity_recovers_transform_despite_gain_offset_and_noise():
    # 1 % noise on blobs, gain 0.8–1.2 and an offset: the fitted transform moves field points by
    # < 0.05 px RMS from the truth (noise-limited; the error of a noise-free fit is < 0.005 px)
    rng = np.random.default_rng(4)
    img = _blobs(seed=4).astype(np.float32)
    n = 12
    t = rng.uniform(-4, 4, (n, 2))
    rot = rng.uniform(-1, 1, n)
    sc = 1 + rng.uniform(-0.01, 0.01, n)
    raw = warp(np.stack([img] * n), *inverse_params(t, rot, sc), order=3)
    raw = raw * rng.uniform(0.8, 1.2, n)[:, None, None] + rng.uniform(-0.1, 0.1, n)[:, None, None]
    raw += 0.01 * img.max() * rng.standard_normal(raw.shape)
    fit = register_similarity(np.stack([img] * n), raw)
    assert fit.converged.all()
    mask = img > 0.1 * img.max()
    err = displacement_px(img.shape, (fit.shifts_px, fit.rotation_deg, fit.scale), (t, rot, sc), mask=mask)
    assert np.sqrt(np.mean(err ** 2)) < 0.05
    assert np.all(fit.residual < 0.1)


def test_translation_only_similarity_keeps_rotation_and_scale():
    img = _blobs(seed=5).astype(np.float32)
    raw = np.roll(img, (2, 1), axis=(0, 1))[None]
    fit = register_similarity(img[None], raw, similarity=False)
    assert fit.rotation_deg[0] == 0.0 and fit.scale[0] == 1.0
    np.testing.assert_allclose(fit.shifts_px[0], [2.0, 1.0], atol=0.01)


def test_registration_errors():
    with pytest.raises(InputError, match="same shape"):
        register_translation(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(InputError, match="NaN"):
        register_translation(np.full((8, 8), np.nan), np.zeros((8, 8)))
    with pytest.raises(InputError, match="upsample"):
        register_translation(np.zeros((8, 8)), np.zeros((8, 8)), upsample=0)
    with pytest.raises(InputError, match="weight"):
        register_similarity(np.zeros((8, 8)), np.zeros((8, 8)), weight=np.ones((4, 4)))
