"""ART: the algebraic reconstruction technique, row-action Kaczmarz (the paper's algorithm).

Every ray (angle i, detector bin j) is one equation ⟨a_ij, x⟩ = b_ij of every slice; ART visits
the rays one by one and projects the current slice onto each equation's hyperplane:

    x ← x + λ_k (b_ij − ⟨a_ij, x⟩) / ‖a_ij‖² · a_ij

One iteration is a full sweep over all rays of all angles, angle by angle, the bins of an angle in
order. With ``nonneg`` the voxels a ray touched are clipped at zero right after its update, so
the constraint holds after every row action, as in ASTRA's ART with MinConstraint. All slices are
swept at once by a compiled kernel (:func:`._kernels.art_sweep`), slices split between the cores.

Two choices set ART's accuracy after a fixed number of sweeps (measured in
``benchmarks/tomo.py --heldout``):

- **Angle order.** Consecutive projections at neighbouring angles are nearly parallel
  hyperplanes, so visiting the angles in acquisition order makes small steps. The default
  ``"spread"`` order visits them in a fixed golden-ratio sequence (the k-th visited angle is at
  the rank of frac(k·φ) in the sorted angles), so each next projection is far, in angle, from the
  last few: nearly orthogonal row blocks, as the multilevel access schemes of Guan & Gordon.
  Deterministic and the same in every sweep.
- **Relaxation schedule.** With noisy (inconsistent) data a constant λ leaves the iterate
  fitting the noise of the rays visited last; a λ decreasing towards zero converges to a
  weighted least-squares solution instead (Censor, Eggermont & Gordon 1983). The default is
  linear from :data:`ART_RELAXATION_START` in the first sweep to :data:`ART_RELAXATION_END` in
  the last: large steps early (fast progress), small late (noise averaged).
"""

from __future__ import annotations

import numpy as np

from .problem import check_choice, check_iterations, check_relaxation, prepare

__all__ = ["ART_RELAXATION", "ART_RELAXATION_END", "ART_RELAXATION_START", "art", "relaxation_schedule",
           "spread_order"]

ART_RELAXATION_START = 1.0
"""λ of the first sweep of the default schedule (a full Kaczmarz projection)."""

ART_RELAXATION_END = 0.1
"""λ of the last sweep of the default schedule. On held-out plate fields (64 slices of 64², 90
angles over −80..77°, OD noise 0.01, 20 sweeps, spread order) the schedule 1 → 0.1 reached
relative errors 0.121 and 0.135 (two samples) against 0.127 / 0.141 for the best constant λ (0.5)
and 0.144 / 0.172 for the former default 0.25; on the paper's 158 angles (OD noise 0.005) 0.122
against 0.130 (λ 0.5) and 0.181 (λ 0.25). Only on much noisier data (OD noise 0.03, about 3 % of
the largest projection) is a small constant λ better (0.197 at 0.25 against 0.231): pass
``relaxation=0.25`` there."""

ART_RELAXATION = 0.25
"""The constant λ of earlier versions (and of ASTRA comparisons at matched λ); no longer the
default, kept for reference."""

ORDERS = ("spread", "sequential", "random")

_PHI = (np.sqrt(5.0) - 1.0) / 2.0


def spread_order(angles_deg) -> np.ndarray:
    """Indices of ``angles_deg`` in golden-ratio visiting order (deterministic).

    The k-th visited angle is the one whose rank among the sorted angles equals the rank of
    frac(k·φ) among frac(0·φ), …, frac((n−1)·φ): consecutive visits are about 0.38 of the angular
    range apart and every stretch of the sequence covers the range evenly.
    """
    a = np.asarray(angles_deg, np.float64).reshape(-1)
    n = a.size
    by_angle = np.argsort(a, kind="stable")
    rank = np.argsort(np.argsort((np.arange(n) * _PHI) % 1.0, kind="stable"), kind="stable")
    return by_angle[rank].astype(np.int64)


def relaxation_schedule(iterations: int, relaxation=None) -> np.ndarray:
    """λ of every sweep: the default linear schedule, or a constant ``relaxation``."""
    if relaxation is None:
        if iterations == 1:
            return np.array([ART_RELAXATION_START])
        return np.linspace(ART_RELAXATION_START, ART_RELAXATION_END, iterations)
    return np.full(iterations, check_relaxation(relaxation, "art"))


def art(tilt, angles_deg, *, iterations: int = 20, relaxation: float | None = None,
        order: str = "spread", seed=None, **common) -> np.ndarray:
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
        A constant λ for every sweep. Default: λ decreasing linearly from
        :data:`ART_RELAXATION_START` to :data:`ART_RELAXATION_END` over the sweeps.
    order : {"spread", "sequential", "random"}
        Angle order within a sweep: golden-ratio spread (default, see :func:`spread_order`),
        acquisition order (as ASTRA's default ``RayOrder``), or a new random permutation per
        sweep (from ``seed``).
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
    Sci. Lett. A 35, 355 (1937); Censor, Eggermont & Gordon, Numer. Math. 41, 83 (1983) (strong
    underrelaxation for inconsistent systems); Guan & Gordon, Phys. Med. Biol. 39, 2005 (1994)
    (projection access order).

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
    lams = relaxation_schedule(iterations, relaxation)
    check_choice(order, ORDERS, "order", "art")
    p = prepare(tilt, angles_deg, "art", n_volumes=2, n_sinograms=2, **common)
    n_angles = p.geometry.n_angles
    rng = np.random.default_rng(seed)
    fixed = spread_order(p.geometry.angles_deg) if order == "spread" else np.arange(n_angles)

    def sweep(k: int) -> None:
        ang = rng.permutation(n_angles) if order == "random" else fixed
        p.op.art_sweep(p.x, p.b, p.valid, ang, float(lams[k]), p.nonneg)

    return p.iterate(iterations, sweep)
