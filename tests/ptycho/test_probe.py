"""Tests of chemtomo.ptycho.probe: zone-plate illumination and the mean-pattern probe."""

import numpy as np
import pytest

from chemtomo.core import InputError, energy_to_wavelength, fft2c
from chemtomo.ptycho import probe_from_diffraction, zone_plate_probe
from chemtomo.ptycho.probe import fit_probe_defocus, propagate_probe


def test_zone_plate_probe_is_unit_intensity_complex64_and_centred():
    p = zone_plate_probe((64, 64), 10e-9, 708.2, defocus_m=5e-6)
    assert p.dtype == np.complex64 and p.shape == (64, 64)
    # single-precision sum of 4096 values: relative rounding ~1e-6
    assert abs(float(np.sum(np.abs(p) ** 2)) - 1.0) < 1e-5
    intensity = np.abs(p) ** 2
    y, x = np.indices(p.shape)
    # symmetric pupil: the intensity centroid sits on the FFT centre pixel (32, 32) to rounding
    assert abs(float((intensity * y).sum()) - 32) < 0.05
    assert abs(float((intensity * x).sum()) - 32) < 0.05


def test_zone_plate_far_field_is_the_annular_pupil():
    pixel_m, outer = 10e-9, 100e-9
    p = zone_plate_probe((128, 128), pixel_m, 708.2, outer_zone_m=outer, central_stop=0.4, defocus_m=8e-6)
    far = np.abs(fft2c(p)) ** 2
    q = np.hypot(*np.meshgrid(np.fft.fftshift(np.fft.fftfreq(128, pixel_m)),
                              np.fft.fftshift(np.fft.fftfreq(128, pixel_m)), indexing="ij"))
    q_outer = 1 / (2 * outer)
    # the propagator is a pure phase, so |far field| is the pupil: no power outside the annulus
    # beyond the one-sample anti-aliased edge (dq = 1 / (128 * 10 nm))
    dq = 1 / (128 * pixel_m)
    outside = (q > q_outer + dq) | (q < 0.4 * q_outer - dq)
    assert far[outside].sum() < 1e-6
    inside = (q < q_outer - dq) & (q > 0.4 * q_outer + dq)
    assert np.ptp(far[inside]) < 1e-3 * far[inside].max()


def test_defocus_widens_the_beam_as_geometric_optics_predicts():
    pixel_m, outer, energy = 10e-9, 100e-9, 708.2
    z = 50e-6  # Fresnel number R²/(λz) ≈ 2: geometric optics roughly holds
    p = zone_plate_probe((128, 128), pixel_m, energy, outer_zone_m=outer, central_stop=0.0, defocus_m=z)
    intensity = np.abs(p) ** 2
    y, x = np.indices(p.shape)
    r = np.hypot(y - 64, x - 64) * pixel_m
    expected_radius = energy_to_wavelength(energy) * z / outer / 2
    # a uniform disk of that radius holds all power inside it and 25 % inside half of it; edge
    # diffraction at Fresnel number ~2 spills ~10 % beyond and brightens the centre a little
    assert intensity[r < 1.15 * expected_radius].sum() > 0.9
    assert intensity[r < 0.5 * expected_radius].sum() < 0.4


def test_propagation_carries_a_zone_plate_probe_from_one_defocus_to_another():
    pixel_m, energy, z1, z2 = 10e-9, 708.2, 4e-6, 9e-6
    p1 = zone_plate_probe((128, 128), pixel_m, energy, outer_zone_m=60e-9, defocus_m=z1)
    p2 = zone_plate_probe((128, 128), pixel_m, energy, outer_zone_m=60e-9, defocus_m=z2)
    lambda_z = energy_to_wavelength(energy) * (z2 - z1) / pixel_m ** 2
    carried = propagate_probe(p1, lambda_z)
    # the zone plate is made with the exact angular-spectrum propagator, propagate_probe is its
    # paraxial form: they differ by the phase k·Δz·(λq)⁴/8 ≤ 3.6e4 · 1.5e-8 ≈ 5e-4 rad at the
    # outer zone (λq = λ / 2Δr = 0.0146), so the fields agree to ~1e-3 (complex64 rounding 1e-6)
    assert np.linalg.norm(carried - p2) < 1e-3 * np.linalg.norm(p2)
    assert abs(float(np.sum(np.abs(carried) ** 2)) - 1.0) < 1e-5  # a pure phase in Fourier space
    # there and back is the identity
    assert np.allclose(propagate_probe(carried, -lambda_z), p1, atol=1e-5)


def test_defocus_fit_finds_the_distance_and_exactly_zero_for_a_focused_guess():
    probe = zone_plate_probe((64, 64), 10e-9, 708.2, outer_zone_m=60e-9, defocus_m=3e-6)
    target = propagate_probe(probe, -37.0)

    def misfit(p):
        return float(np.sum(np.abs(p - target) ** 2))

    lz, values = fit_probe_defocus(probe, misfit)
    # the grid brackets −37 between −d²/2ᵏ and −d²/2ᵏ⁺¹ (a factor 2 apart); 12 golden-section steps
    # shrink that bracket by 0.618¹² ≈ 3e-3: within 1 % of the distance
    assert abs(lz + 37.0) < 0.37
    assert values[0.0] > values[lz]
    lz0, values0 = fit_probe_defocus(probe, lambda p: float(np.sum(np.abs(p - probe) ** 2)))
    assert lz0 == 0.0 and values0[0.0] == 0.0  # nothing fits better than the probe itself
    assert len(values) <= 1 + 22 + 13  # the grid, the two first golden points, one per further step


def test_defocus_fit_refines_a_second_minimum_and_counts_twins_once():
    # A real probe (flat far-field phase, as probe_from_diffraction makes) carried by ±λz gives
    # complex conjugates: a misfit of the intensity alone has equal minima at ±64 px². A deeper
    # minimum at 230 px² sits in a dip narrower than the grid's factor-2 steps (its grid point
    # 256 scores more than the twins' 1.0), as the held-out misfit did on regime cell 15.
    # One minimum refined finds a twin; two, with the twins counted once, find the dip.
    n = 64
    y, x = np.indices((n, n)) - n // 2
    r = np.exp(-(x ** 2 + y ** 2) / (2 * 4.0 ** 2)).astype(np.complex64)[None]
    target = propagate_probe(r, 230.0)

    def width(p):
        i = np.abs(p[0]) ** 2
        return float(np.sqrt(np.sum(i * (x ** 2 + y ** 2)) / np.sum(i)))

    w64 = width(propagate_probe(r, 64.0))

    def misfit(p):
        twins = 1.0 + 50 * (width(p) / w64 - 1) ** 2
        dip = 0.5 + 100 * float(np.sum(np.abs(p - target) ** 2) / np.sum(np.abs(target) ** 2))
        return min(twins, dip)

    lz1, _ = fit_probe_defocus(r, misfit, scale=1024, refinements=4)
    lz2, values = fit_probe_defocus(r, misfit, scale=1024, refinements=4, minima=2)
    assert abs(abs(lz1) - 64.0) < 1.0
    # the dip is the one minimum between the grid points 128 and 512; four golden-section steps
    # leave a bracket of 384 · 0.618⁴ = 56 px² around it, and the best point tried lies in it
    assert abs(lz2 - 230.0) < 56.0 and misfit(propagate_probe(r, lz2)) < 1.0, lz2
    assert len(values) <= 23 + 2 * 5


@pytest.mark.parametrize("kwargs, message", [
    ({"central_stop": 1.0}, "central_stop"),
    ({"outer_zone_m": 5e-9}, "pixel_m"),
    ({"defocus_m": 1e-3}, "reduce the defocus"),
    ({"diameter_m": -1.0}, "diameter_m"),
])
def test_zone_plate_probe_rejects_bad_parameters(kwargs, message):
    with pytest.raises(InputError, match=message):
        zone_plate_probe((64, 64), 10e-9, 708.2, **kwargs)


def test_probe_from_diffraction_matches_the_probe_far_field_modulus():
    p = zone_plate_probe((64, 64), 10e-9, 708.2, defocus_m=5e-6) * np.sqrt(1e5)
    frames = np.repeat((np.abs(fft2c(p)) ** 2)[None], 3, axis=0).astype(np.float32)
    mask = np.ones((64, 64), bool)
    mask[30, 40] = False  # its mirror (34, 24) is valid, so its value is recovered exactly
    est = probe_from_diffraction(frames, mask=mask)
    assert est.dtype == np.complex64
    # same far-field modulus, float32 rounding of the counts only
    np.testing.assert_allclose(np.abs(fft2c(est)), np.abs(fft2c(p)), atol=1e-2 * np.abs(fft2c(p)).max())
    assert abs(float(np.sum(np.abs(est) ** 2)) / 1e5 - 1) < 1e-4


def test_probe_from_diffraction_rejects_wrong_mask_shape():
    with pytest.raises(InputError, match="mask must have the frame shape"):
        probe_from_diffraction(np.ones((2, 8, 8)), mask=np.ones((4, 4), bool))


@pytest.mark.parametrize("shape", [(32, 32), (33, 48)])
def test_zoom_is_map_coordinates_bit_for_bit(shape):
    # the probe-size match's bilinear zoom is written in NumPy (no scipy.ndimage on the way to
    # the first iteration) with scipy's operations in scipy's order: exactly the same values,
    # +0.0 outside the input's extent, for the 33 sizes the match tries (strides < 1 and > 1,
    # samples beyond both edges)
    from scipy import ndimage

    from chemtomo.ptycho.probe import _zoom

    rng = np.random.default_rng(1)
    probe = (rng.standard_normal((2,) + shape) + 1j * rng.standard_normal((2,) + shape)).astype(np.complex64)
    h, w = shape
    y, x = np.indices(shape, dtype=np.float64)
    for scale in 2.0 ** np.linspace(-2, 2, 33):
        coords = np.stack([h // 2 + (y - h // 2) / scale, w // 2 + (x - w // 2) / scale])
        ref = np.empty(probe.shape, np.complex64)
        for k in range(2):
            ref[k] = (ndimage.map_coordinates(probe[k].real.astype(np.float64), coords, order=1)
                      + 1j * ndimage.map_coordinates(probe[k].imag.astype(np.float64), coords, order=1))
        got = _zoom(probe, scale)
        assert got.dtype == np.complex64
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)), scale
