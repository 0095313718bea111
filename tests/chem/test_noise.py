"""Noise estimation, uncertainty propagation (coverage), SOC, and the energy/dose trade-off."""

import numpy as np
import pytest
from chem_sim import VOXEL_M, binomial_tolerance, od_volumes, references, sample

from chemtomo.chem import estimate_noise, fraction, sample_mask, state_of_charge, uncertainty, unmix
from chemtomo.core import InputError

SIGMA_OD = 0.003   # per-voxel OD noise: ~5 % of a full voxel's OD at 708.2 eV (0.059)


def test_estimate_noise_from_air_and_from_split_halves():
    s = sample()
    a = od_volumes(s, sigma=SIGMA_OD, seed=1)[0]
    b = od_volumes(s, sigma=SIGMA_OD, seed=2)[0]
    n_air = int((s.occupancy == 0).sum())
    # MAD estimate of sigma has relative standard error ~1.17/sqrt(2 n); 5 of those
    tol = 5 * 1.17 / np.sqrt(2 * n_air)
    assert abs(estimate_noise(a, s.occupancy == 0) / SIGMA_OD - 1) < tol
    # automatic air (Otsu, lower half only): half the samples, so sqrt(2) x the tolerance
    assert abs(estimate_noise(a) / SIGMA_OD - 1) < np.sqrt(2) * tol
    # split halves: each half has SIGMA_OD, their mean SIGMA_OD / sqrt(2) = std((a - b) / 2);
    # the std over n = 55k voxels has relative error 1/sqrt(2n) = 0.3 %; 5 of those
    n = a.size
    assert abs(estimate_noise(a, other_half=b) / (SIGMA_OD / np.sqrt(2)) - 1) < 5 / np.sqrt(2 * n)
    with pytest.raises(InputError, match=r"other_half has shape \(24, 48, 47\) but volume has \(24, 48, 48\)"):
        estimate_noise(a, other_half=b[..., :-1])


def test_propagated_uncertainty_has_the_right_coverage():
    # the error of each voxel's composition must fall within its propagated 1-sigma in 68.27 %
    # of voxels; sigma comes from the data (air MAD), not from the truth. The unclipped ratio
    # C_FP / (C_LFP + C_FP) is used: clipping to [0, 1] would pile errors at the bounds, where
    # most of these (single-phase) voxels sit. Only nearly full voxels (occupancy > 0.9): the
    # first-order propagation needs sigma(density) << density.
    s = sample(shape=(32, 64, 64), n_particles=10)
    ods = od_volumes(s, sigma=SIGMA_OD, seed=4)
    sig = [estimate_noise(od, s.occupancy == 0) for od in ods]
    conc = unmix(ods, references(), voxel_m=VOXEL_M)
    sigma_c, sigma_x = uncertainty(sig, references(), conc, voxel_m=VOXEL_M)
    full = s.occupancy > 0.9
    x = conc[1] / conc.sum(0)
    z = (x - s.fraction)[full] / sigma_x[full]
    n = int(full.sum())
    p = 0.6827
    tol = binomial_tolerance(p, n)            # 4 binomial sigma (n ~ 5000: +-2.6 %)
    assert abs(np.mean(np.abs(z) < 1) - p) < tol, (np.mean(np.abs(z) < 1), tol, n)
    assert abs(np.mean(np.abs(z) < 2) - 0.9545) < binomial_tolerance(0.9545, n)
    lfp, _fp = s.phase_volumes()
    zc = (conc[0] - lfp)[full] / sigma_c[0][full]
    assert abs(np.mean(np.abs(zc) < 1) - p) < tol
    assert sigma_x.dtype == np.float32 and sigma_c.shape == conc.shape


def test_state_of_charge_matches_truth_within_its_sigma():
    s = sample(shape=(32, 64, 64), n_particles=10, soc=0.3)
    # noise-free: the density-weighted mean fraction over all material is the sample's SOC
    conc = unmix(od_volumes(s), references(), voxel_m=VOXEL_M)
    soc, _ = state_of_charge(conc, mask=s.occupancy > 0)
    assert abs(soc - s.soc) < 1e-4                        # float32 sums over ~10^4 voxels
    # noisy: inside the automatic sample mask, |SOC - truth| within 4 propagated sigma
    ods = od_volumes(s, sigma=SIGMA_OD, seed=5)
    conc = unmix(ods, references(), voxel_m=VOXEL_M)
    mask = sample_mask(conc.sum(0))
    f = fraction(conc, mask=mask)
    _, sigma_x = uncertainty(SIGMA_OD, references(), conc, voxel_m=VOXEL_M)
    lfp, fp = s.phase_volumes()
    truth = fp[mask].sum(dtype=np.float64) / (lfp[mask] + fp[mask]).sum(dtype=np.float64)
    soc, err = state_of_charge(conc, sigma=sigma_x, mask=mask)
    assert 0 < err < 0.01
    # from the concentrations (ratio of sums, no clipping): within 4 propagated sigma
    assert abs(soc - truth) < 4 * err
    # from the clipped fractions: voxels at x = 0 or 1 can only err inwards, which biases the
    # SOC towards 0.5 (here 70 % of material at x = 0); the function does not hide that
    soc_f, err_f = state_of_charge(f, conc.sum(0), sigma_x, mask=mask)
    assert err_f == pytest.approx(err, rel=1e-6)
    assert soc_f - truth > 4 * err


def test_n_energy_vs_two_energy_at_equal_total_dose():
    # Dose D split evenly: per-energy OD variance grows as n_energies (sigma^2 ~ 1/dose).
    # Fisher information predicts var(x) for each design; the empirical variance must match
    # it (relative standard error of a variance from n samples: sqrt(2/n), 5 of those).
    # The paper's pair (708.2, 710.2) sits on both white-line maxima, which is close to the
    # optimal design for x (two support points suffice, Elfving); spreading the same dose over
    # six energies around the maxima does NOT gain precision: it loses ~24 %. With equal dose
    # *per energy* (three times the total dose) the six-energy least squares is more precise.
    rng = np.random.default_rng(7)
    n = 20000
    x_true = np.full(n, 0.5, np.float32)
    c_true = np.stack([1 - x_true, x_true])
    designs = {"pair": [708.2, 710.2], "six": [708.0, 708.2, 708.5, 710.0, 710.2, 710.5]}
    sigma_full = 0.002           # OD noise at the whole dose in one energy

    def spread(energies, sigma):
        r = references(energies)
        ods = (r * VOXEL_M) @ c_true + rng.normal(0, sigma, (len(energies), n))
        c = unmix(ods.astype(np.float32), r, method="lstsq", voxel_m=VOXEL_M)
        _, sx = uncertainty(sigma, r, c, voxel_m=VOXEL_M)
        return np.var(c[1] / c.sum(0), dtype=np.float64), float(np.mean(sx.astype(np.float64) ** 2))

    var_pair, pred_pair = spread(designs["pair"], sigma_full * np.sqrt(2))
    var_six, pred_six = spread(designs["six"], sigma_full * np.sqrt(6))
    tol = 5 * np.sqrt(2 / n)
    assert abs(var_pair / pred_pair - 1) < tol and abs(var_six / pred_six - 1) < tol
    assert 1.1 < var_six / var_pair < 1.4            # equal total dose: predicted 1.24
    var_six_same, _ = spread(designs["six"], sigma_full * np.sqrt(2))
    assert var_six_same / var_pair < 0.5             # equal dose per energy: predicted 0.41


def test_uncertainty_input_errors():
    conc = np.ones((2, 4, 4), np.float32)
    with pytest.raises(InputError, match=r"ods_sigma must be a number, \(2,\) or \(2, \*\(4, 4\)\); got shape \(3,\)"):
        uncertainty([0.1, 0.1, 0.1], references(), conc)
    with pytest.raises(InputError, match="references have 2 phases but concentrations have 3"):
        uncertainty(0.1, references(), np.ones((3, 4, 4)))
    with pytest.raises(InputError, match="no voxel with a finite fraction"):
        state_of_charge(np.full((4, 4), np.nan), np.ones((4, 4)))
