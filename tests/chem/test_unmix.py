"""Unmixing (exact, least squares, NNLS), fraction, sample mask, and their input errors."""

import logging

import numpy as np
import pytest
from chem_sim import VOXEL_M, od_volumes, references, sample
from scipy.optimize import nnls as scipy_nnls

from chemtomo.chem import fraction, references_from_table, sample_mask, unmix
from chemtomo.core import InputError, Volume
from chemtomo.simulate import reference_spectra

# illustrative magnitudes of the brief (1/m)
R2 = np.array([[1.6e6, 0.6e6], [0.7e6, 1.5e6]])


def test_exact_solve_recovers_simulated_phase_volumes():
    # noise-free ODs: the 2x2 solve must return the simulator's phase volumes to float32
    # round-off (ODs ~0.06, relative eps 1e-7, condition number ~3 -> errors < 1e-5)
    s = sample()
    conc = unmix(od_volumes(s), references(), voxel_m=VOXEL_M)
    lfp, fp = s.phase_volumes()
    assert conc.dtype == np.float32 and conc.shape == (2,) + s.shape
    assert np.max(np.abs(conc[0] - lfp)) < 1e-5
    assert np.max(np.abs(conc[1] - fp)) < 1e-5


def test_lstsq_and_nnls_recover_three_phases_from_six_energies():
    # a third (flat) phase, six energies: noise-free data are fitted exactly by both solvers
    rng = np.random.default_rng(1)
    e = [707.5, 708.2, 709.0, 710.2, 711.0, 713.0]
    r = np.column_stack([references(e), np.full(6, 3e6)])
    c_true = rng.uniform(0, 1, (3, 20, 20)).astype(np.float32)
    ods = np.einsum("ek,kyx->eyx", r * VOXEL_M, c_true).astype(np.float32)
    for method in ("lstsq", "nnls"):
        c = unmix(ods, r, method=method, voxel_m=VOXEL_M)
        # float32 data, condition number ~30: errors ~30 x 1e-7 relative
        assert np.max(np.abs(c - c_true)) < 2e-4, method


def test_nnls_matches_scipy_on_every_voxel():
    # the vectorised active-set enumeration must give the NNLS optimum; scipy's Lawson-Hanson
    # solver is the reference; noise makes many voxels sit on the bound (some C = 0)
    rng = np.random.default_rng(2)
    r = np.column_stack([references([707.5, 708.2, 709.0, 710.2, 711.0]), np.full(5, 3e6)]) * VOXEL_M
    c_true = rng.uniform(0, 0.3, (3, 300))
    ods = (r @ c_true + rng.normal(0, 0.01, (5, 300))).astype(np.float32)
    c = unmix(ods, r / VOXEL_M, method="nnls", voxel_m=VOXEL_M)
    ref = np.stack([scipy_nnls(r, ods[:, i].astype(np.float64))[0] for i in range(300)], axis=1)
    assert np.any(ref == 0), "the test needs voxels at the bound"
    assert np.all(c >= 0)
    # float32 solve of a problem with condition number ~30 and concentrations ~0.3
    assert np.max(np.abs(c - ref)) < 1e-4


def test_pre_edge_index_subtracts_in_data_and_references():
    # equation (1) with a pre-edge energy: a common, energy-independent offset in the ODs
    # (e.g. a thickness term the references also carry at the pre-edge) cancels exactly
    e = [700.0, 708.2, 710.2]
    r = references(e)
    s = sample()
    ods = od_volumes(s, e)
    conc_pre = unmix(ods, r, pre_edge=0, voxel_m=VOXEL_M)
    lfp, fp = s.phase_volumes()
    # differences of ODs lose relative precision: pre-edge OD ~0.015 of 0.06 -> errors < 3e-5
    assert np.max(np.abs(conc_pre[0] - lfp)) < 3e-5
    assert np.max(np.abs(conc_pre[1] - fp)) < 3e-5
    # an array pre-edge is subtracted from the data only
    offset = np.full(s.shape, 0.01, np.float32)
    refs_pre = r[1:] - r[:1]
    conc_arr = unmix(ods[1:] - ods[:1] + offset, refs_pre, pre_edge=offset, voxel_m=VOXEL_M)
    assert np.max(np.abs(conc_arr - conc_pre)) < 3e-5


def test_volumes_are_accepted_and_checked():
    s = sample()
    ods = od_volumes(s)
    vols = [Volume(ods[i], VOXEL_M, e) for i, e in enumerate((708.2, 710.2))]
    conc = unmix(vols, references(), energies_ev=[708.2, 710.2])
    assert np.allclose(conc, unmix(ods, references(), voxel_m=VOXEL_M), atol=1e-6)
    with pytest.raises(InputError, match=r"volumes are at energies \[708.2, 710.2\] eV but the references are for \[708.2, 711.0\]"):
        unmix(vols, references(), energies_ev=[708.2, 711.0])
    # a dict {energy: OD volume}, as the pipeline holds them, is checked the same way
    by_energy = {708.2: ods[0], 710.2: ods[1]}
    assert np.array_equal(unmix(by_energy, references(), voxel_m=VOXEL_M, energies_ev=[708.2, 710.2]),
                          unmix(ods, references(), voxel_m=VOXEL_M))
    with pytest.raises(InputError, match=r"volumes are at energies \[708.2, 710.2\] eV but the references are for \[708.2\]"):
        unmix(by_energy, references(), energies_ev=[708.2])
    vols_bad = [vols[0], Volume(ods[1], 2 * VOXEL_M, 710.2)]
    with pytest.raises(InputError, match="different voxel sizes"):
        unmix(vols_bad, references())
    with pytest.raises(InputError, match="different shapes"):
        unmix([ods[0], ods[1][:, :, :-1]], references())


def test_singular_and_ill_conditioned_references_report_condition_number():
    ods = np.ones((2, 4, 4), np.float32)
    with pytest.raises(InputError, match=r"condition number inf"):
        unmix(ods, [[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(InputError, match=r"condition number 4(\.\d+)?e\+04 exceeds 1e\+03"):
        unmix(ods, [[1.0, 1.0], [1.0, 1.0001]])


def test_energy_and_shape_mismatch_errors():
    ods = np.ones((3, 4, 4), np.float32)
    with pytest.raises(InputError, match="references have 2 energies .rows. but the optical densities have 3"):
        unmix(ods, R2)
    with pytest.raises(InputError, match="method 'exact' needs as many energies as phases"):
        unmix(ods, np.vstack([R2, [[1e6, 1e6]]]))
    with pytest.raises(InputError, match="method must be one of"):
        unmix(ods[:2], R2, method="svd")
    with pytest.raises(InputError, match=r"mask has shape \(3, 3\) but each OD has shape \(4, 4\)"):
        unmix(ods[:2], R2, mask=np.ones((3, 3), bool))
    with pytest.raises(InputError, match="outside the reference table's range"):
        e = np.array([705.0, 706.0, 707.0])
        references_from_table(e, {"LiFePO4": e, "FePO4": e}, [708.2])


def test_nonfinite_ods_are_masked_and_counted(caplog):
    ods = np.tile(np.array([2.2, 2.2], np.float32)[:, None, None], (1, 8, 8))
    ods[0, 1, 1] = np.nan
    ods[1, 2, 3] = np.inf
    ods[0, 4, 4] = -1.0
    with caplog.at_level(logging.WARNING, logger="chemtomo.chem.unmix"):
        conc, info = unmix(ods, R2, return_info=True)
    assert info.n_nonfinite == 2 and info.n_negative == 1 and info.n_voxels == 62
    assert np.isnan(conc[:, 1, 1]).all() and np.isnan(conc[:, 2, 3]).all()
    assert np.isfinite(conc[:, 4, 4]).all()          # negative OD kept (noise is two-sided)
    assert "2 voxels have non-finite optical densities" in caplog.text


def test_references_from_table_interpolates_the_simulator_spectra():
    # on a 0.1 eV grid, linear interpolation of the smooth spectra away from the white-line
    # peaks is accurate to < 1 %; at grid energies it is exact
    grid = np.round(np.arange(700.0, 716.0001, 0.1), 6)
    table = reference_spectra(grid)
    at = [705.0, 708.2, 710.2]
    m = references_from_table(grid, table, at)
    assert m.shape == (3, 2)
    assert np.allclose(m, reference_spectra(at)[["LiFePO4", "FePO4"]].to_numpy(), rtol=1e-9)
    off = references_from_table(grid, table, [712.55])
    assert np.allclose(off, reference_spectra([712.55])[["LiFePO4", "FePO4"]].to_numpy(), rtol=1e-2)


def test_fraction_and_sample_mask_on_simulated_volume():
    # noise-free: fraction equals the truth where the voxel is mostly filled; the Otsu mask
    # keeps every voxel at least half full and no empty voxel
    s = sample()
    conc = unmix(od_volumes(s), references(), voxel_m=VOXEL_M)
    density = conc.sum(0)
    mask, t = sample_mask(density, return_threshold=True)
    assert 0.0 < t < 0.6
    assert mask[s.occupancy >= 0.6].all() and not mask[s.occupancy == 0].any()
    f = fraction(conc)
    assert f.dtype == np.float32
    full = s.occupancy > 0.9
    # float32 ratio of concentrations accurate to 1e-5, see test_exact_solve...
    assert np.nanmax(np.abs(f[full] - s.fraction[full])) < 1e-4
    assert np.isnan(f[~mask]).all()
    assert np.array_equal(np.isnan(fraction(conc, density_threshold=0.5)), ~(density > 0.5))
    with pytest.raises(InputError, match=r"concentrations must have shape \(n_phases >= 2"):
        fraction(conc[:1])
