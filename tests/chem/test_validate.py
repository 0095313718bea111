"""2D XAS validation: per-pixel LCF on simulated spectral images vs the projected 3D map."""

import numpy as np
import pytest
from chem_sim import VOXEL_M, od_volumes, references, sample

from chemtomo.chem import compare_2d, fraction, lcf_2d, project_fraction, sample_mask, unmix, validate_2d
from chemtomo.core import InputError
from chemtomo.simulate import od_tilt_series, reference_spectra

XAS_ENERGIES = np.round(np.arange(705.0, 714.01, 0.5), 2)          # 19 energies across Fe L3
TABLE = reference_spectra(np.round(np.arange(700.0, 716.001, 0.05), 3))   # a fine references.csv


def _xas_stack(s, noise_sigma, seed=0):
    ods = od_tilt_series(s, XAS_ENERGIES, [0.0], noise_sigma=noise_sigma, seed=seed)
    return np.stack([ods[float(e)][0] for e in XAS_ENERGIES])


def test_lcf_on_noise_free_xas_equals_projected_truth():
    # OD is linear in the phase thicknesses, so the LCF fraction of a 0-degree image is exactly
    # the density-weighted z-projection of the true 3D fraction (float32 round-off; the table
    # is interpolated at its own grid energies, so the references are exact)
    s = sample()
    stack = _xas_stack(s, 0.0)
    frac_2d, conc, r = lcf_2d(stack, XAS_ENERGIES, TABLE)
    truth = project_fraction(s.fraction, s.occupancy, axis=1)
    thick = s.occupancy.sum(axis=1) > 1.0                  # at least one voxel of material
    assert frac_2d.dtype == np.float32 and conc.shape == (2,) + stack.shape[1:]
    assert np.nanmax(np.abs(frac_2d[thick] - truth[thick])) < 1e-3
    assert np.nanmax(r[thick]) < 1e-6
    # thickness of each phase in metres: the projected phase volumes times the voxel size
    _, fp = s.phase_volumes()
    assert np.allclose(conc[1][thick], fp.sum(axis=1)[thick] * VOXEL_M, rtol=1e-3, atol=1e-11)
    # a spectrum the references cannot represent (a foreign peak at 712 eV as strong as the
    # white lines) gives R > 0.15 where it sits, and only there
    foreign = np.exp(-0.5 * ((XAS_ENERGIES - 712.0) / 0.7) ** 2)[:, None, None]
    patch = np.zeros(stack.shape[1:], bool)
    patch[2:6, 2:6] = True
    _, _, r_bad = lcf_2d(stack + 0.2 * foreign * patch, XAS_ENERGIES, TABLE)
    assert np.all(r_bad[patch] > 0.15) and np.nanmax(r_bad[thick & ~patch]) < 1e-6


def test_validation_agrees_on_noisy_simulated_xas():
    # the paper's check: 3D map (from noisy 2-energy volumes) projected along z vs the LCF of
    # noisy 2D XAS. Noise 0.003 OD per image pixel, 19 energies: sigma(x) of a 1-voxel-thick
    # ray ~ 0.05, falling with thickness; plates are ~3 voxels thick. Expected: small mean
    # difference, RMS < 0.1, R < 0.15 nearly everywhere on the sample, classes agree mostly.
    s = sample(shape=(24, 48, 48), n_particles=6, soc=0.4, seed=5)
    conc3d = unmix(od_volumes(s, sigma=0.003, seed=1), references(), voxel_m=VOXEL_M)
    mask3d = sample_mask(conc3d.sum(0))
    f3d = fraction(conc3d, mask=mask3d)
    proj = project_fraction(f3d, conc3d.sum(0), axis=1)
    frac_2d, _, r = lcf_2d(_xas_stack(s, 0.003, seed=2), XAS_ENERGIES, TABLE)
    mask2d = s.occupancy.sum(axis=1) > 2.0                  # rays through > 2 voxels of material
    stats = compare_2d(proj, frac_2d, mask2d, r_factor=r)
    assert stats["n_pixels"] > 200
    # mean difference: both maps are unbiased up to the clipping of voxel fractions at 0/1,
    # which pulls the 3D projection inwards by ~0.4 sigma_x x share at bounds (~0.02)
    assert abs(stats["mean_difference"]) < 0.03
    assert stats["rms_difference"] < 0.07                   # measured 0.04
    assert stats["share_r_below_0.15"] > 0.9
    assert stats["class_agreement"] > 0.85
    assert stats["correlation"] > 0.9
    # the one-call version: same maps, and the two SOCs (the paper: 16.2 % vs 16.8 %) agree
    v = validate_2d(_xas_stack(s, 0.003, seed=2), XAS_ENERGIES, TABLE, f3d, conc3d.sum(0))
    assert np.array_equal(v.fraction_2d, frac_2d, equal_nan=True)
    assert np.array_equal(v.projected_3d, proj, equal_nan=True)
    assert abs(v.statistics["soc_2d"] - v.statistics["soc_3d"]) < 0.03     # clipping bias, as above
    # the 2D SOC over the compared pixels equals the truth over those pixels: noise 0.003 on
    # ~200 pixels x 19 energies gives sigma ~ 1e-3; 0.005 is 5 sigma
    use = np.isfinite(v.fraction_2d) & np.isfinite(v.projected_3d)
    lfp, fp = s.phase_volumes()
    truth = fp.sum(1)[use].sum(dtype=np.float64) / (lfp.sum(1) + fp.sum(1))[use].sum(dtype=np.float64)
    assert abs(v.statistics["soc_2d"] - truth) < 0.005


def test_project_fraction_weights_by_density():
    f = np.array([[[0.0, 1.0, np.nan]]], np.float32).transpose(0, 2, 1)   # (1, 3, 1): along z
    rho = np.array([[[3.0, 1.0, 5.0]]], np.float32).transpose(0, 2, 1)
    out = project_fraction(f, rho, axis=1)
    assert out.shape == (1, 1) and out[0, 0] == pytest.approx(0.25)      # (3*0 + 1*1) / 4
    assert np.isnan(project_fraction(np.full((1, 2, 1), np.nan), np.ones((1, 2, 1)))[0, 0])


def test_compare_2d_statistics_and_errors():
    a = np.array([[0.1, 0.5], [0.9, np.nan]])
    b = np.array([[0.2, 0.5], [0.6, 0.3]])
    st = compare_2d(a, b, r_factor=np.array([[0.1, 0.2], [0.05, 0.1]]))
    assert st["n_pixels"] == 3
    assert st["mean_difference"] == pytest.approx((-0.1 + 0 + 0.3) / 3)
    assert st["rms_difference"] == pytest.approx(np.sqrt((0.01 + 0.09) / 3))
    assert st["class_agreement"] == pytest.approx(2 / 3)               # 0.9 FP-rich vs 0.6 mixed
    assert st["share_r_below_0.15"] == pytest.approx(2 / 3)
    with pytest.raises(InputError, match=r"map_a has shape \(2, 2\) but map_b has \(2, 3\)"):
        compare_2d(a, np.zeros((2, 3)))
    with pytest.raises(InputError, match="no pixel is finite in both maps"):
        compare_2d(a, np.full((2, 2), np.nan))


def test_lcf_input_errors():
    stack = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(InputError, match=r"stack has 3 energies but energies_ev has shape \(2,\)"):
        lcf_2d(stack, [708.0, 709.0], TABLE)
    with pytest.raises(InputError, match=r"at_energies_ev \[720.0\] eV lie outside the reference table's range"):
        lcf_2d(stack, [708.0, 709.0, 720.0], TABLE)
    with pytest.raises(InputError, match="needs an 'energy_eV' column"):
        lcf_2d(stack, [708.0, 709.0, 710.0], {"LiFePO4": [1, 2], "FePO4": [2, 1]})
