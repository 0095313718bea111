"""Shared test data for the tomography tests: a simulated plate sample and its OD tilt series."""

from functools import lru_cache

import numpy as np

from chemtomo.simulate import od_tilt_series, plate_sample, reference_spectra

PAPER_ANGLES = np.arange(-80.0, 78.0, 1.0)  # 158 projections, −80..77° (the paper's set)
ENERGY_EV = 708.2
NOISE_OD = 0.005  # OD noise σ: ~1 % of the largest projected OD (0.5) of this sample


@lru_cache(maxsize=4)
def plate_data(noise: float = NOISE_OD, shape=(16, 48, 48), seed: int = 3):
    """(truth OD volume (ny, nz, nx), tilt series (158, ny, nx), angles) of a simulated sample.

    The simulator projects on a 2× finer grid than the reconstruction grid, so the data are not
    produced by the very operator the reconstructions invert.
    """
    sample = plate_sample(shape, 6.7e-9, n_particles=3, soc=0.5, seed=seed)
    lfp, fp = sample.phase_volumes()
    refs = reference_spectra([ENERGY_EV])
    truth = ((refs.LiFePO4.iloc[0] * lfp + refs.FePO4.iloc[0] * fp) * sample.voxel_m).astype(np.float32)
    tilt = od_tilt_series(sample, [ENERGY_EV], PAPER_ANGLES, noise_sigma=noise, seed=seed)[ENERGY_EV]
    return truth, tilt, PAPER_ANGLES


def rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
