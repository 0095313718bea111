"""Many-energy unmixing (16 Fe K-edge energies × 2 phases) of TXM volumes against the simulator's truth."""

import math

import numpy as np
import pytest
from scipy import ndimage

from chemtomo import chem, tomo
from chemtomo.simulate import simulate_txm

PHOTONS = 3.0e4


@pytest.fixture(scope="module")
def txm():
    ds = simulate_txm("txm", seed=11, soc=0.45, shape=(25, 33, 33), voxel_m=100e-9, n_particles=3,
                      angles_deg=np.linspace(-90.0, 90.0, 21, endpoint=False) + 180.0 / 42)
    refs = ds.references[["LiFePO4", "FePO4"]].to_numpy()
    rng = np.random.default_rng(0)
    clean, noisy = [], []
    for i in range(len(ds.energies_ev)):
        od = ds.od_truth(i)
        # the TXM's photon noise on OD: σ = 1/sqrt(N e^−OD) (Poisson), N at the beam's 85 % level
        sigma = 1.0 / np.sqrt(0.85 * PHOTONS * np.exp(-od))
        for series, target in ((od, clean), (od + rng.normal(size=od.shape) * sigma, noisy)):
            vol = tomo.reconstruct(series.astype(np.float32), ds.angles_deg, algorithm="sirt", iterations=25,
                                   nonneg=False)
            target.append(vol)
    return ds, refs, np.stack(clean), np.stack(noisy)


def test_state_of_charge_from_the_whole_volume(txm):
    # reconstruction (SIRT without clipping) and least-squares unmixing are linear, and SIRT
    # keeps each energy's total OD, so the concentrations summed over the whole volume give the
    # truth's SOC: to float32 rounding without noise, and within 0.005 with it (the photon noise's
    # sum over 27,000 voxels: measured 6e-4)
    ds, refs, clean, noisy = txm
    for vols, tol in ((clean, 1e-3), (noisy, 5e-3)):
        c = chem.unmix(vols, refs, method="lstsq", voxel_m=ds.voxel_m)
        assert c[1].sum() / c.sum() == pytest.approx(ds.sample.soc, abs=tol)
        assert c.sum() * ds.voxel_m ** 3 == pytest.approx(ds.sample.occupancy.sum() * ds.voxel_m ** 3, rel=0.01)


def _core(ds, radius=1):
    """Voxels inside homogeneous domains: every voxel within ``radius`` filled, one composition."""
    occ, truth = ds.sample.occupancy, np.nan_to_num(ds.sample.fraction, nan=-1.0)
    ball = ndimage.iterate_structure(ndimage.generate_binary_structure(3, 1), radius)
    full = ndimage.minimum_filter(occ, footprint=ball) > 0.99
    same = (ndimage.maximum_filter(truth, footprint=ball) - ndimage.minimum_filter(truth, footprint=ball)) < 1e-3
    return full & same, truth


def test_per_voxel_fraction_within_the_propagated_noise(txm):
    # inside homogeneous domains the noise-free fraction is the truth's to 0.05 (25 SIRT sweeps blur and
    # streaks from the other plates); with noise, the least-squares fraction scatters as the
    # reconstruction noise (σ_μ per energy, measured in those voxels) propagated through the
    # pseudo-inverse: σ_x² = Σ_E σ_μ,E² ((1 − x) P[FP, E] − x P[LFP, E])², P = pinv(R · voxel);
    # 25 % for the few hundred spatially correlated voxels
    ds, refs, clean, noisy = txm
    core, truth = _core(ds)
    assert core.sum() > 150
    x_clean = chem.fraction(chem.unmix(clean, refs, method="lstsq", voxel_m=ds.voxel_m), mask=core)
    assert np.abs(x_clean[core] - truth[core]).max() < 0.05
    c = chem.unmix(noisy, refs, method="lstsq", voxel_m=ds.voxel_m)
    x = c[1] / c.sum(axis=0)      # unclipped: chem.fraction clips to [0, 1], halving the error at x = 0 and 1
    sigma_mu = np.std((noisy - clean)[:, core], axis=1)          # (n_energies,) OD per voxel
    p = np.linalg.pinv(refs * ds.voxel_m)
    t = truth[core]
    pred = np.sqrt(np.mean(np.sum((sigma_mu[None] * ((1 - t)[:, None] * p[1][None] - t[:, None] * p[0][None])) ** 2,
                                  axis=1)))
    err = x[core] - x_clean[core]
    assert math.sqrt(np.mean(err ** 2)) == pytest.approx(pred, rel=0.25)
    assert pred < 0.15          # at this dose and voxel the per-voxel chemistry is resolved


def test_nnls_equals_lstsq_where_the_least_squares_solution_is_feasible(txm):
    # NNLS is the constrained optimum; where the unconstrained least-squares concentrations are
    # both clearly positive they are feasible, hence also the NNLS solution (to float32 rounding)
    ds, refs, _, noisy = txm
    ls = chem.unmix(noisy, refs, method="lstsq", voxel_m=ds.voxel_m)
    nn = chem.unmix(noisy, refs, method="nnls", voxel_m=ds.voxel_m)
    feasible = np.all(ls > 0.05, axis=0)
    assert feasible.sum() > 500
    np.testing.assert_allclose(nn[:, feasible], ls[:, feasible], atol=1e-4)
    assert np.all(nn >= 0)
