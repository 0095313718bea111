"""Tests of chemtomo.resolution.line_profile and edge_width."""

import numpy as np
import pytest
from scipy.special import erf

from chemtomo.core import InputError
from chemtomo.resolution import edge_width, line_profile

ERF_10_90 = 2 * 1.2815515655446004  # 2 Φ⁻¹(0.9): 10-90 % width of an erf edge, in units of σ


def _erf_edge(x, x0, sigma):
    return 0.5 * (1 + erf((x - x0) / (sigma * np.sqrt(2))))


@pytest.mark.parametrize("sigma_px,x0", [(3.0, 31.3), (1.5, 20.71), (6.0, 40.0)])
@pytest.mark.parametrize("direction", ["rising", "falling"])
def test_edge_width_of_gaussian_blurred_step_is_2_563_sigma(sigma_px, x0, direction):
    # Linear interpolation between samples (h = 1) misplaces each crossing of an erf edge by at
    # most h² |p''| / (8 p') = h² z / (8 σ) with z = 1.28, and both errors widen the edge:
    # tolerance h² × 1.28 / (4 σ) pixels (the bound the docstring states).
    x = np.arange(80.0)
    profile = 10.0 + 5.0 * _erf_edge(x, x0, sigma_px)  # offset and scale must not matter
    if direction == "falling":
        profile = profile[::-1]
    pixel_m = 6.7e-9
    width_px = edge_width(profile, pixel_m) / pixel_m
    assert width_px == pytest.approx(ERF_10_90 * sigma_px, abs=1.2816 / (4 * sigma_px))


def test_edge_width_with_noise_and_given_levels():
    # Additive noise of 1 % of the step moves each crossing by ~0.01 / p'(crossing) = 0.01 × σ /
    # φ(1.28) ≈ 0.06 σ px; a 4-sigma bound on the sum of two such errors is 0.35 σ.
    rng = np.random.default_rng(0)
    sigma = 4.0
    x = np.arange(100.0)
    profile = _erf_edge(x, 50.2, sigma) + 0.01 * rng.standard_normal(x.size)
    width = edge_width(profile, 1.0, levels=(0.0, 1.0))
    assert width == pytest.approx(ERF_10_90 * sigma, abs=0.35 * sigma)


def test_edge_width_other_fractions():
    # 20-80 % of an erf edge is 2 Φ⁻¹(0.8) σ = 1.683 σ; tolerance as above (z = 0.84).
    x = np.arange(64.0)
    width = edge_width(_erf_edge(x, 30.6, 3.0), 1.0, low=0.2, high=0.8)
    assert width == pytest.approx(2 * 0.8416212335729143 * 3.0, abs=0.85 / (4 * 3.0))


def test_line_profile_is_exact_for_linear_fields_in_2d_and_3d():
    # (Bi/tri)linear interpolation reproduces a linear function exactly (float32 rounding only).
    y, x = np.mgrid[0:20, 0:30].astype(np.float32)
    d, v = line_profile(3 * y - 2 * x + 1, (0.5, 28.25), (19, 0), n=11)
    t = np.linspace(0, 1, 11)
    yy, xx = 0.5 + 18.5 * t, 28.25 - 28.25 * t
    np.testing.assert_allclose(v, 3 * yy - 2 * xx + 1, atol=1e-4)
    np.testing.assert_allclose(d, t * np.hypot(18.5, 28.25), rtol=1e-12)
    assert v.dtype == np.float32

    vol = np.fromfunction(lambda a, b, c: 0.5 * a + 2 * b - c, (8, 9, 10), dtype=np.float32)
    d3, v3 = line_profile(vol, (7, 0, 9), (0, 8, 0))  # default n: round(L) + 1 samples
    length = np.sqrt(7**2 + 8**2 + 9**2)
    assert d3.size == round(length) + 1 and d3[-1] == pytest.approx(length)
    p = np.array([7, 0, 9]) + np.outer(d3 / length, [-7, 8, -9])
    np.testing.assert_allclose(v3, 0.5 * p[:, 0] + 2 * p[:, 1] - p[:, 2], atol=1e-4)


def test_line_profile_hits_samples_exactly_and_handles_complex():
    a = (np.arange(16.0).reshape(4, 4) * (1 + 2j)).astype(np.complex64)
    _, v = line_profile(a, (0, 0), (3, 3), n=4)  # along the diagonal, on samples
    np.testing.assert_array_equal(v, a[np.arange(4), np.arange(4)])
    assert v.dtype == np.complex64


def test_edge_width_through_line_profile_of_a_blurred_edge_in_an_image():
    # An erf edge of σ = 2.5 px at 30° to the columns, cut along its normal: bilinear sampling of
    # the image adds at most ~|p''|/8 ≈ 0.01 of the step per crossing (~0.1 px) on top of the
    # 1-D interpolation bound 1.28/(4σ) ≈ 0.13 px; tolerance 0.3 px.
    sigma, theta = 2.5, np.deg2rad(30)
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    normal = np.array([np.sin(theta), np.cos(theta)])
    dist = (y - 31.7) * normal[0] + (x - 32.2) * normal[1]
    image = _erf_edge(dist, 0.0, sigma).astype(np.float32)
    start = np.array([31.7, 32.2]) - 20 * normal
    end = np.array([31.7, 32.2]) + 20 * normal
    d, v = line_profile(image, start, end, n=161)  # quarter-pixel spacing
    spacing_m = 5e-9 * (d[1] - d[0])
    width_px = edge_width(v, spacing_m) / 5e-9
    assert width_px == pytest.approx(ERF_10_90 * sigma, abs=0.3)


@pytest.mark.parametrize("call,match", [
    (lambda: edge_width(np.ones((4, 4)), 1e-9), r"edge_width: profile must be 1D with at least 4 samples, got shape \(4, 4\)"),
    (lambda: edge_width(np.array([0, 0, np.nan, 1, 1.0]), 1e-9), r"edge_width: profile contains NaN"),
    (lambda: edge_width(np.array([0, 0, 1, 1.0]), -1e-9), r"edge_width: pixel_m must be a positive number"),
    (lambda: edge_width(np.array([0, 0, 1, 1.0]), 1e-9, low=0.9, high=0.1), r"need 0 < low < high < 1, got low=0.9, high=0.1"),
    (lambda: edge_width(np.ones(10), 1e-9), r"no step to measure"),
    (lambda: edge_width(np.linspace(0, 1, 10), 1e-9, levels=(0.0, 2.0)), r"never crosses 90% of the step"),
    (lambda: edge_width(np.linspace(0.3, 1, 10), 1e-9, levels=(0.0, 1.0)), r"no 10% crossing before its 90% crossing"),
    (lambda: edge_width(np.array([0, 0, 1, 1j]), 1e-9), r"profile must be real numbers"),
    (lambda: line_profile(np.ones(5), (0,), (4,)), r"line_profile: image_or_volume must be 2D"),
    (lambda: line_profile(np.ones((5, 5)), (0, 0, 0), (4, 4)), r"line_profile: start must be 2 finite index coordinates"),
    (lambda: line_profile(np.ones((5, 5)), (0, 0), (4, 5)), r"line_profile: end \[4.0, 5.0\] lies outside the array of shape \(5, 5\)"),
    (lambda: line_profile(np.ones((5, 5)), (1, 1), (1, 1)), r"start and end are the same point"),
    (lambda: line_profile(np.ones((5, 5)), (0, 0), (4, 4), n=1), r"n must be an integer >= 2, got 1"),
    (lambda: line_profile(np.full((5, 5), np.nan), (0, 0), (4, 4)), r"contains NaN or infinite"),
    (lambda: line_profile(np.ones((1, 5, 5)), (0, 0, 0), (0, 4, 4)), r"every axis needs at least 2 samples"),
])
def test_bad_input_raises_input_error(call, match):
    with pytest.raises(InputError, match=match):
        call()
