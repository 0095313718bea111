"""ART: the algebraic reconstruction technique, row-action Kaczmarz (the paper's algorithm).

Every ray (angle i, detector bin j) is one equation ⟨a_ij, x⟩ = b_ij of every slice; ART visits
the rays one by one and projects the current slice onto each equation's hyperplane:

    x ← x + λ (b_ij − ⟨a_ij, x⟩) / ‖a_ij‖² · a_ij

One iteration is a full sweep over all rays of all angles (angle by angle, bins in order). With
``nonneg`` the voxels a ray touched are clipped at zero right after its update, so the constraint
holds after every row action, as in ASTRA's ART with MinConstraint. All slices are swept at once
by a compiled kernel (:func:`._kernels.art_sweep`), slices split between the cores.
"""

from __future__ import annotations

import numpy as np

from .problem import check_choice, check_iterations, check_relaxation, prepare

__all__ = ["ART_RELAXATION", "art"]

ART_RELAXATION = 0.25
"""Default relaxation λ. On the paper's −80..77° set with Gaussian noise of 2 % of the largest
projection, 20 sweeps reach relative errors 0.13 (λ = 0.1), 0.17 (0.25), 0.22 (0.5), 0.31 (1.0):
a full step fits the noise of the last rays visited. 0.25 keeps most of that gain while still
converging within 20 sweeps on cleaner data."""

ORDERS = ("sequential", "random")


def art(tilt, angles_deg, *, iterations: int = 20, relaxation: float | None = None,
        order: str = "sequential", seed=None, **common) -> np.ndarray:
    """Algebraic reconstruction technique (Kaczmarz) of a parallel-beam tilt series.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Line integrals (e.g. optical density); rotation axis along y. NaN marks missing rays.
    angles_deg : (n_angles,) float
        Tilt angles in degrees, in acquisition order.
    iterations : int
        Full sweeps over all rays (the paper: 20).
    relaxation : float in (0, 2), optional
        λ of the row action (default :data:`ART_RELAXATION`).
    order : {"sequential", "random"}
        Angle order within a sweep: acquisition order, or a new random permutation per sweep
        (from ``seed``).
    seed : int or numpy.random.Generator, optional
        For ``order="random"``.
    **common
        nonneg, x0, support, cor_offset_px, nz, callback, progress, tol, memory_limit_bytes
        (see :mod:`chemtomo.tomo.problem`).

    Returns
    -------
    volume : (ny, nz, nx) float32

    References
    ----------
    Gordon, Bender & Herman, J. Theor. Biol. 29, 471 (1970); Kaczmarz, Bull. Int. Acad. Pol.
    Sci. Lett. A 35, 355 (1937).

    Examples
    --------
    >>> from chemtomo.tomo import project
    >>> vol = np.zeros((2, 24, 24), np.float32); vol[:, 8:16, 6:18] = 1.0
    >>> angles = np.arange(-80, 78, 4.0)
    >>> rec = art(project(vol, angles), angles, iterations=10)
    >>> rec.shape
    (2, 24, 24)
    """
    iterations = check_iterations(iterations, "art")
    lam = check_relaxation(ART_RELAXATION if relaxation is None else relaxation, "art")
    check_choice(order, ORDERS, "order", "art")
    p = prepare(tilt, angles_deg, "art", n_volumes=2, n_sinograms=2, **common)
    n_angles = p.geometry.n_angles
    rng = np.random.default_rng(seed)

    def sweep(k: int) -> None:
        ang = rng.permutation(n_angles) if order == "random" else np.arange(n_angles)
        p.op.art_sweep(p.x, p.b, p.valid, ang, lam, p.nonneg)

    return p.iterate(iterations, sweep)
