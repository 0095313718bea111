"""Shared test data for chem: OD volumes of a simulated plate sample, with known truth.

The tomographic reconstructor is not part of these tests: the OD volume at energy E is built
from the simulator's truth as ``voxel_m · (μ_LFP(E) V_LFP + μ_FP(E) V_FP)`` plus independent
Gaussian noise of known σ per voxel, which is the noise model the unmixing and its
uncertainty propagation assume (reconstruction noise is spatially correlated but per voxel
Gaussian with a σ that ``estimate_noise`` measures).
"""

from __future__ import annotations

import numpy as np

from chemtomo.simulate import E1_EV, E2_EV, plate_sample, reference_spectra

VOXEL_M = 6.7e-9
ENERGIES = (E1_EV, E2_EV)


def references(energies=ENERGIES) -> np.ndarray:
    """(n_energies, 2) μ in 1/m of LiFePO4 and FePO4 from the simulator."""
    return reference_spectra(list(energies))[["LiFePO4", "FePO4"]].to_numpy()


def sample(shape=(24, 48, 48), seed=3, soc=0.4, n_particles=6):
    return plate_sample(shape, VOXEL_M, n_particles=n_particles, soc=soc, seed=seed)


def od_volumes(s, energies=ENERGIES, sigma=0.0, seed=0) -> np.ndarray:
    """(n_energies, ny, nz, nx) float32 OD per voxel of the sample, plus Gaussian noise σ."""
    lfp, fp = s.phase_volumes()
    r = references(energies) * s.voxel_m
    ods = np.einsum("ek,k...->e...", r.astype(np.float32), np.stack([lfp, fp]))
    if sigma > 0:
        ods = ods + np.random.default_rng(seed).normal(0.0, sigma, ods.shape).astype(np.float32)
    return ods.astype(np.float32)


def binomial_tolerance(p: float, n: int, k: float = 4.0) -> float:
    """k standard deviations of a share p estimated from n independent samples."""
    return k * float(np.sqrt(p * (1 - p) / n))
