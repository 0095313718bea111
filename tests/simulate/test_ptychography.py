"""Tests of the simulated ptychographic measurement (chemtomo.simulate.ptychography)."""

import numpy as np
import pytest

from chemtomo.core import InputError
from chemtomo.ptycho import zone_plate_probe
from chemtomo.simulate import (
    detector_background,
    detector_mask,
    diffraction_frames,
    raster_positions,
)


def _probe():
    return zone_plate_probe((32, 32), 6.7e-9, 708.2, defocus_m=8e-6)


def test_empty_object_frames_count_the_dose():
    # through an empty object every frame holds Poisson(dose) photons in total (Parseval of the
    # orthonormal FFT); 20 frames at 1e6 photons: each total within 5 sqrt(dose)
    dose = 1e6
    pos = np.random.default_rng(0).uniform(-6, 6, (20, 2))
    obj = np.ones((64, 64), np.complex64)
    frames = diffraction_frames(obj, _probe(), pos, dose_photons=dose, seed=1)
    assert frames.dtype == np.float32 and frames.shape == (20, 32, 32)
    np.testing.assert_allclose(frames.sum(axis=(1, 2)), dose, atol=5 * np.sqrt(dose))
    # the mean total estimates the dose to sqrt(dose / 20)
    assert abs(frames.sum(axis=(1, 2)).mean() - dose) < 5 * np.sqrt(dose / 20)


def test_absorbing_object_counts_and_background():
    # uniform transmission |T|² = 0.6: totals are 0.6 dose + Σ background (Poisson, 5σ)
    dose, bg = 2e5, 0.5
    obj = np.full((64, 64), np.sqrt(0.6) * np.exp(0.3j), np.complex64)
    b = detector_background((32, 32), bg)
    pos = np.zeros((10, 2)) + [[0.3, -0.4]]
    frames = diffraction_frames(obj, _probe(), pos, dose_photons=dose, background=b, seed=2)
    expected = 0.6 * dose + b.sum()
    np.testing.assert_allclose(frames.sum(axis=(1, 2)), expected, atol=5 * np.sqrt(expected))
    # without noise the counts are the expectation exactly (float32 rounding)
    exact = diffraction_frames(obj, _probe(), pos, dose_photons=dose, background=b, noise=False)
    np.testing.assert_allclose(exact.sum(axis=(1, 2)), expected, rtol=1e-5)


def test_zero_frequency_at_centre_and_subpixel_shift_invisible_to_intensity_of_empty_object():
    # |FFT| of a shifted probe is the same as of the unshifted one: for an empty object a
    # sub-pixel position changes nothing (float32 rounding), and the bright field is centred
    obj = np.ones((48, 48), np.complex64)
    a = diffraction_frames(obj, _probe(), np.array([[0.0, 0.0]]), dose_photons=1e6, noise=False)
    b = diffraction_frames(obj, _probe(), np.array([[0.37, -0.21]]), dose_photons=1e6, noise=False)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-2)
    cy, cx = np.unravel_index(np.argmax(a[0]), a[0].shape)
    assert abs(cy - 16) <= 2 and abs(cx - 16) <= 2


def test_mask_zeroes_dead_pixels():
    m = detector_mask((32, 32), dead_fraction=0.01, seed=3)
    assert m.dtype == bool and 0 < (~m).sum() < 0.1 * m.size and m[16, 16]
    frames = diffraction_frames(np.ones((48, 48), np.complex64), _probe(), np.zeros((2, 2)),
                                dose_photons=1e6, background=detector_background((32, 32), 1.0), mask=m)
    assert np.all(frames[:, ~m] == 0)


def test_raster_covers_field_with_step():
    nominal, actual = raster_positions((270e-9, 430e-9), 70e-9, jitter_m=2e-9, seed=0)
    assert nominal.shape == (5 * 8, 2)
    np.testing.assert_allclose(np.diff(np.unique(nominal[:, 1])), 70e-9)
    np.testing.assert_allclose(nominal.mean(axis=0), 0, atol=1e-20)
    # jitter of 2 nm: its std from 80 samples is within ±25 %
    assert np.std(actual - nominal) == pytest.approx(2e-9, rel=0.25)


def test_bad_parameters_raise():
    with pytest.raises(InputError, match="dose_photons must be a positive"):
        diffraction_frames(np.ones((48, 48), np.complex64), _probe(), np.zeros((1, 2)), dose_photons=0)
    with pytest.raises(InputError, match="leaves the object array"):
        diffraction_frames(np.ones((40, 40), np.complex64), _probe(), np.array([[10.0, 0]]), dose_photons=1)
    with pytest.raises(InputError, match="step_m must be"):
        raster_positions((1e-7, 1e-7), -1.0)
    with pytest.raises(InputError, match="counts_per_pixel"):
        detector_background((8, 8), -1.0)
