"""Tests of the optical constants and OD tilt series (chemtomo.simulate.optics)."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
import xraydb

from chemtomo.core import InputError, energy_to_wavelength
from chemtomo.simulate import (
    Sample,
    absorption_coefficient,
    od_tilt_series,
    plate_sample,
    reference_spectra,
    refractive_index,
)
from chemtomo.tomo import project


def _slab_sample(thickness_vox: int, x_fp: float, shape=(16, 24, 32)) -> Sample:
    occ = np.zeros(shape, np.float32)
    z0 = shape[1] // 2 - thickness_vox // 2
    occ[4:12, z0:z0 + thickness_vox, 8:24] = 1.0
    frac = np.where(occ > 0, np.float32(x_fp), np.float32(np.nan)).astype(np.float32)
    return Sample(occ, frac, (occ > 0).astype(np.int32), pd.DataFrame(), 6.7e-9)


def test_edge_maxima_at_paper_energies():
    # the brief fixes the Fe2+ maximum at 708.2 eV and the Fe3+ maximum at 710.2 eV; the grid
    # step is 0.01 eV and the line centres are calibrated to ±0.01 eV
    e = np.arange(700.0, 720.0, 0.01)
    assert abs(e[np.argmax(absorption_coefficient("LiFePO4", e))] - 708.2) <= 0.02
    assert abs(e[np.argmax(absorption_coefficient("FePO4", e))] - 710.2) <= 0.02
    # chemical contrast: each phase dominates at its own energy
    mu = reference_spectra([708.2, 710.2])
    assert mu.LiFePO4[0] > 2 * mu.FePO4[0] and mu.FePO4[1] > 1.3 * mu.LiFePO4[1]


def test_off_resonance_matches_tabulated_atomic_factors():
    # 20 eV below the edge the white lines add only their Lorentzian tails; δ and β must agree
    # with xraydb's own tabulation (Chantler f1, f2 for δ, the Elam cross sections for β, which
    # differ from Chantler by a few %) within 10 %
    for phase, rho in [("LiFePO4", 3.6), ("FePO4", 2.9)]:
        d_ref, b_ref, _ = xraydb.xray_delta_beta(phase, rho, 690.0)
        d, b = refractive_index(phase, 690.0)
        assert d == pytest.approx(d_ref, rel=0.10)
        assert b == pytest.approx(b_ref, rel=0.10)


def test_delta_is_kramers_kronig_partner_of_beta():
    # the resonant part of f1 must be the Hilbert transform of the resonant part of f2; computed
    # numerically on a ±2 keV grid (discretisation and truncation error < 2 % of the peak)
    from chemtomo.simulate.optics import _white_lines
    de = 0.01
    e = np.arange(-2000.0, 2000.0, de) + 710.0
    f = _white_lines("LiFePO4", e)
    h = np.real(np.fft.ifft(np.fft.fft(f.imag) * -1j * np.sign(np.fft.fftfreq(e.size))))
    # Hilbert transform convention: H[γ/(x²+γ²)] = x/(x²+γ²)
    near = (e > 700) & (e < 720)
    assert np.max(np.abs(h[near] - f.real[near])) < 0.02 * np.max(np.abs(f.imag))


def test_mu_is_4pi_beta_over_lambda_and_magnitude():
    _, beta = refractive_index("LiFePO4", 708.2)
    mu = absorption_coefficient("LiFePO4", 708.2)
    assert mu == pytest.approx(4 * math.pi * beta / energy_to_wavelength(708.2), rel=1e-12)
    # Fe L3 white line of LiFePO4: several /µm (OD ≈ 0.1–0.2 for a 20 nm plate)
    assert 5e6 < mu < 1.2e7


def test_plate_od_is_beer_lambert():
    # a flat slab t voxels thick seen face-on: OD = μ t exactly (the footprint projector is exact
    # for axis-aligned voxels; float32 rounding 1e-6)
    t = 3
    s = _slab_sample(t, 0.25)
    ods = od_tilt_series(s, [708.2, 710.2], [0.0])
    for e, od in ods.items():
        mu = 0.75 * absorption_coefficient("LiFePO4", e) + 0.25 * absorption_coefficient("FePO4", e)
        np.testing.assert_allclose(od[0, 6, 12:20], mu * t * 6.7e-9, rtol=1e-5)
        assert od.dtype == np.float32
        assert od[0, 0, 0] == 0


def test_zero_degree_projection_sums_along_z():
    # at 0° the (2× supersampled, binned) projection equals the plain sum over z; the footprint's
    # 1e-3 minimum width and float32 sums leave ~1e-5 of the peak
    s = plate_sample((24, 24, 32), 6.7e-9, n_particles=3, soc=0.5, seed=4)
    od = od_tilt_series(s, [708.2], [0.0])[708.2][0]
    lfp, fp = s.phase_volumes()
    mu_l, mu_f = absorption_coefficient("LiFePO4", 708.2), absorption_coefficient("FePO4", 708.2)
    expected = (mu_l * lfp.sum(axis=1) + mu_f * fp.sum(axis=1)) * s.voxel_m
    np.testing.assert_allclose(od, expected, rtol=1e-4, atol=5e-5 * expected.max())


def test_projection_at_theta_equals_rotated_volume():
    # projection at θ == 0° projection of the volume rotated by θ about y (scipy.ndimage.rotate,
    # cubic); the two interpolations differ by ~4 % of the peak at plate edges (measured 0.21 of
    # 5.5), so the comparison is on the total (mass, exact to 1 %) and on a 3-pixel smoothed
    # profile (5 % of the peak; measured 1.3 %, while the wrong rotation sense gives 63 %)
    s = plate_sample((16, 32, 32), 6.7e-9, n_particles=2, soc=0.0, seed=1)
    theta = 30.0
    lfp, _ = s.phase_volumes()
    proj = project(lfp, [theta])[0]
    # the detector coordinate is u = x cos θ + z sin θ: rotate the (z, x) plane so that the ray
    # direction becomes z; scipy's rotate in axes (1, 2) (z, x) with angle +θ does that here
    rot = ndi.rotate(lfp, theta, axes=(1, 2), reshape=False, order=3, mode="constant")
    ref = rot.sum(axis=1)
    assert proj.sum() == pytest.approx(ref.sum(), rel=0.01)
    err = ndi.uniform_filter(proj - ref, 3)
    assert np.max(np.abs(err)) < 0.05 * proj.max()


def test_noise_and_seed():
    s = _slab_sample(2, 0.0)
    a = od_tilt_series(s, [708.2], [0.0, 10.0], noise_sigma=0.01, seed=3)[708.2]
    b = od_tilt_series(s, [708.2], [0.0, 10.0], noise_sigma=0.01, seed=3)[708.2]
    c = od_tilt_series(s, [708.2], [0.0, 10.0])[708.2]
    np.testing.assert_array_equal(a, b)
    # the std of the difference estimates σ = 0.01 from 2·16·32 samples (±5 % at 3σ)
    assert np.std(a - c) == pytest.approx(0.01, rel=0.1)


@pytest.mark.parametrize("call, message", [
    (lambda: refractive_index("Fe2O3", 708.2), "phase must be one of"),
    (lambda: absorption_coefficient("LFP", 50.0), "energy_ev must be finite photon energies"),
    (lambda: reference_spectra([np.nan]), "energies_ev must be finite"),
    (lambda: od_tilt_series(_slab_sample(2, 0), [708.2], [0.0], noise_sigma=-1), "noise_sigma"),
    (lambda: od_tilt_series(_slab_sample(2, 0), [708.2, 708.2], [0.0]), "must not repeat"),
])
def test_bad_parameters_raise(call, message):
    with pytest.raises(InputError, match=message):
        call()
