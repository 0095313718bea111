"""SIRT: simultaneous iterative reconstruction, every angle in one update.

    x ← x + λ · C⁻¹ Aᵀ W R⁻¹ (b − A x)

with R the row sums (ray lengths), C the column sums of the whole system matrix and W the
measured-ray mask (0 for missing rays). This is the row- and column-sum normalised form (Gilbert
1972; the "SIRT" of ASTRA): it converges for 0 < λ < 2 to a weighted least-squares solution.
One iteration is one update (one projection and one back-projection of all angles).
"""

from __future__ import annotations

import numpy as np

from .problem import check_iterations, check_relaxation, prepare
from .sart import os_iterate

__all__ = ["SIRT_RELAXATION", "sirt"]

SIRT_RELAXATION = 1.0
"""Default relaxation λ (the classical SIRT step)."""


def sirt(tilt, angles_deg, *, iterations: int = 50, relaxation: float | None = None,
         **common) -> np.ndarray:
    """Simultaneous iterative reconstruction of a parallel-beam tilt series.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Line integrals (e.g. optical density); rotation axis along y. NaN marks missing rays.
    angles_deg : (n_angles,) float
        Tilt angles in degrees, in acquisition order.
    iterations : int
        Updates, each using all angles.
    relaxation : float in (0, 2), optional
        λ (default :data:`SIRT_RELAXATION`).
    **common
        nonneg, x0, support, cor_offset_px, nz, callback, progress, tol, memory_limit_bytes
        (see :mod:`chemtomo.tomo.problem`).

    Returns
    -------
    volume : (ny, nz, nx) float32, nz == nx unless ``nz`` is given

    References
    ----------
    Gilbert, J. Theor. Biol. 36, 105 (1972).

    Examples
    --------
    >>> from chemtomo.tomo import project
    >>> vol = np.zeros((2, 24, 24), np.float32); vol[:, 8:16, 6:18] = 1.0
    >>> angles = np.arange(-80, 78, 4.0)
    >>> sirt(project(vol, angles), angles, iterations=30).dtype
    dtype('float32')
    """
    iterations = check_iterations(iterations, "sirt")
    lam = check_relaxation(SIRT_RELAXATION if relaxation is None else relaxation, "sirt")
    p = prepare(tilt, angles_deg, "sirt", n_volumes=3, n_sinograms=3, **common)
    groups = [np.arange(p.geometry.n_angles)]
    return os_iterate(p, groups, lam, iterations)
