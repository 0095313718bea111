"""Tests of the resolution thresholds and of the edge apodisation."""

import numpy as np
import pytest

from chemtomo.core import InputError
from chemtomo.resolution import half_bit_threshold, one_seventh_threshold
from chemtomo.resolution.apodize import DEFAULT_TAPER, apodize, taper_fraction, tukey_1d


def test_half_bit_threshold_matches_the_general_information_formula():
    # van Heel & Schatz: T(n) = (ε + 2√ε/√n + 1/√n) / (ε + 1 + 2√ε/√n) with ε = (√2 − 1)/2 for
    # ½ bit in half data sets; the published 4-digit coefficients agree to ~1e-4.
    n = np.array([1, 2, 10, 100, 1000, 10**6])
    eps = (np.sqrt(2) - 1) / 2
    general = (eps + 2 * np.sqrt(eps / n) + 1 / np.sqrt(n)) / (eps + 1 + 2 * np.sqrt(eps / n))
    np.testing.assert_allclose(half_bit_threshold(n), general, atol=2e-4)
    assert half_bit_threshold(1) == pytest.approx(1.0)  # (0.2071 + 1.9102) / (1.2071 + 0.9102)
    assert np.all(np.diff(half_bit_threshold(n)) < 0)  # more samples, less chance correlation
    assert half_bit_threshold(10**12) == pytest.approx(0.2071 / 1.2071, abs=1e-5)


def test_one_seventh_is_constant_with_the_shape_of_the_counts():
    t = one_seventh_threshold(np.array([[3, 30], [300, 3000]]))
    assert t.shape == (2, 2)
    np.testing.assert_array_equal(t, 1.0 / 7.0)


@pytest.mark.parametrize("bad", [0, -3, np.nan])
def test_thresholds_refuse_counts_below_one(bad):
    with pytest.raises(InputError, match=r"n_per_shell must hold counts >= 1"):
        half_bit_threshold([5, bad])


def test_tukey_window_shape_values_and_limits():
    w = tukey_1d(101, 0.1)
    assert w.dtype == np.float32 and w[0] == 0 and w[-1] == 0
    np.testing.assert_allclose(w, w[::-1])  # symmetric
    np.testing.assert_array_equal(w[10:91], 1.0)  # flat over the central 80 %
    assert np.all(np.diff(w[:11]) > 0)  # a monotone cosine ramp over the first 10 %
    np.testing.assert_allclose(tukey_1d(9, 0.5), 0.5 * (1 - np.cos(2 * np.pi * np.arange(9) / 8)), atol=1e-7)  # Hann
    np.testing.assert_array_equal(tukey_1d(7, 0.0), 1.0)


def test_apodize_removes_weighted_mean_and_applies_separable_window():
    # (a − m) W with m = Σ W a / Σ W: the result sums to zero (float32 rounding ~1e-5 of Σ|a|)
    # and equals an explicit full-window computation.
    rng = np.random.default_rng(0)
    a = (5 + rng.standard_normal((12, 10, 14))).astype(np.float32)
    out = apodize(a, 0.25)
    w = tukey_1d(12, 0.25)[:, None, None] * tukey_1d(10, 0.25)[None, :, None] * tukey_1d(14, 0.25)
    m = (w * a).sum() / w.sum()
    np.testing.assert_allclose(out, (a - m) * w, atol=1e-5)
    assert abs(float(out.sum())) < 1e-5 * float(np.abs(a).sum())
    assert out.dtype == np.float32
    c = apodize((a + 1j * a[::-1]).astype(np.complex64), 0.1)
    assert c.dtype == np.complex64 and abs(complex(c.sum())) < 1e-3


def test_taper_fraction_meanings():
    assert taper_fraction(True) == DEFAULT_TAPER and taper_fraction(False) == 0.0
    assert taper_fraction(0.3) == 0.3
    with pytest.raises(InputError, match=r"apodize must be True, False or a taper fraction per side in \[0, 0.5\], got 'yes'"):
        taper_fraction("yes")
    with pytest.raises(InputError, match=r"taper must be a fraction per side in \[0, 0.5\], got 0.6"):
        tukey_1d(8, 0.6)
