"""SART and OS-SART: simultaneous algebraic reconstruction over ordered subsets of angles.

For each subset S of angles (in turn), every slice is updated with

    x ← x + λ · C_S⁻¹ A_Sᵀ W_S R_S⁻¹ (b_S − A_S x)

where R_S holds the row sums of A_S (ray lengths), C_S the column sums of A_S (how much of each
pixel the subset sees) and W_S is 1 for measured rays and 0 for missing ones. With one angle per
subset this is SART (Andersen & Kak 1984); with a few interleaved subsets, OS-SART; with a single
subset of all angles, SIRT (:mod:`.sirt`). One iteration is a full sweep over all subsets;
``nonneg`` clips after each subset update.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from .problem import Problem, check_choice, check_iterations, check_relaxation, prepare

__all__ = ["SART_RELAXATION", "os_iterate", "safe_inverse", "sart"]

SART_RELAXATION = 1.0
"""Default relaxation λ of SART (each angle's update is an average over the rays, so a full step
does not chase single noisy rays as ART's does)."""

ORDERS = ("sequential", "random")


def safe_inverse(a: np.ndarray) -> np.ndarray:
    """1 / a as float32, 0 where a ≤ 1e-6 (rays or pixels that see nothing)."""
    out = np.zeros(a.shape, np.float32)
    np.divide(1.0, a, out=out, where=a > 1e-6)
    return out


def os_iterate(p: Problem, subsets: list[np.ndarray], relaxation: float, iterations: int) -> np.ndarray:
    """Run ``iterations`` ordered-subset sweeps on the problem and return the volume."""
    row_inv = safe_inverse(p.op.rowsum)
    col_inv = safe_inverse(p.op.column_sums(subsets))

    def sweep(k: int) -> None:
        p.op.os_sweep(p.x, p.b, p.valid, subsets, row_inv, col_inv, relaxation, p.nonneg)

    return p.iterate(iterations, sweep)


def sart(tilt, angles_deg, *, iterations: int = 20, relaxation: float | None = None,
         subsets: int | None = None, order: str = "sequential", seed=None, **common) -> np.ndarray:
    """Simultaneous algebraic reconstruction technique, with optional ordered subsets.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Line integrals; rotation axis along y. NaN marks missing rays (weight zero).
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    iterations : int
        Full sweeps over all angles.
    relaxation : float in (0, 2), optional
        λ (default :data:`SART_RELAXATION`).
    subsets : int, optional
        Number of ordered subsets; default one angle per subset (SART). Subset k holds the
        angles k, k + subsets, k + 2·subsets, … of the visiting order.
    order : {"sequential", "random"}
        Angle visiting order: acquisition order, or one random permutation (from ``seed``).
    **common
        nonneg, x0, support, cor_offset_px, nz, callback, progress, tol, memory_limit_bytes
        (see :mod:`chemtomo.tomo.problem`).

    Returns
    -------
    volume : (ny, nz, nx) float32

    References
    ----------
    Andersen & Kak, Ultrason. Imaging 6, 81 (1984); Wang & Jiang, IEEE TMI 23, 1133 (2004)
    (OS-SART).
    """
    iterations = check_iterations(iterations, "sart")
    lam = check_relaxation(SART_RELAXATION if relaxation is None else relaxation, "sart")
    check_choice(order, ORDERS, "order", "sart")
    p = prepare(tilt, angles_deg, "sart", n_volumes=3, n_sinograms=2, **common)
    n_angles = p.geometry.n_angles
    n_sub = n_angles if subsets is None else subsets
    if isinstance(n_sub, bool) or not isinstance(n_sub, (int, np.integer)) or not 1 <= n_sub <= n_angles:
        raise InputError(f"sart: subsets must be an integer in [1, {n_angles}] (number of angles), "
                         f"got {subsets!r}")
    visit = np.random.default_rng(seed).permutation(n_angles) if order == "random" else np.arange(n_angles)
    groups = [visit[k::n_sub] for k in range(n_sub)]
    return os_iterate(p, groups, lam, iterations)
