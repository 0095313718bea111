"""TV: total-variation regularised reconstruction (Chambolle–Pock primal–dual), for missing wedges.

Solves, for all slices at once (the TV couples neighbouring slices: it is 3D),

    min_x  ½ ‖W (A x − b)‖² + weight · TV(x)   subject to x ≥ 0 (nonneg) and the support,

with TV(x) = Σ_voxels |∇x| (isotropic, forward differences along y, z and x) and W the
measured-ray mask. The missing wedge of a −80..77° tilt series smears edges along the beam;
TV favours piecewise-constant volumes and so suppresses those streaks.

The primal–dual iteration uses the diagonal preconditioning of Pock & Chambolle (2011, α = 1),
so no operator norm is needed and it converges for any data scale:

    σ_ray = 1 / (row sum of A),  σ_grad = 1/2,  τ = 1 / (column sum of A + 6)
    y  ← W (y + σ_ray (A x̄ − b)) / (1 + σ_ray)
    g  ← clip_{|g| ≤ weight}(g + σ_grad ∇x̄)
    x' ← proj_C(x − τ (Aᵀ y − div g)),  x̄ ← 2x' − x

One iteration is one update (one projection and one back-projection of all angles).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from .problem import check_iterations, prepare

__all__ = ["TV_WEIGHT", "tv"]

TV_WEIGHT = 0.05
"""Default TV weight, in the units of the data per voxel (optical density per voxel): edges of
contrast much larger than this survive, fluctuations much smaller are flattened."""


def _grad(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Forward differences of x (nz, nx, ny) along z, x, y into out (3, nz, nx, ny), Neumann edge."""
    out[...] = 0.0
    np.subtract(x[1:], x[:-1], out=out[0, :-1])
    np.subtract(x[:, 1:], x[:, :-1], out=out[1, :, :-1])
    np.subtract(x[:, :, 1:], x[:, :, :-1], out=out[2, :, :, :-1])
    return out


def _div(g: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Divergence, the negative adjoint of :func:`_grad`: ⟨∇x, g⟩ = −⟨x, div g⟩."""
    out[...] = 0.0
    for axis in range(3):
        gi = g[axis]
        sl_last = [slice(None)] * 3
        sl_last[axis] = slice(0, -1)
        sl_next = [slice(None)] * 3
        sl_next[axis] = slice(1, None)
        out[tuple(sl_last)] += gi[tuple(sl_last)]
        out[tuple(sl_next)] -= gi[tuple(sl_last)]
    return out


def tv(tilt, angles_deg, *, iterations: int = 100, weight: float | None = None,
       **common) -> np.ndarray:
    """Total-variation regularised reconstruction by the Chambolle–Pock primal–dual method.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Line integrals; rotation axis along y. NaN marks missing rays (weight zero).
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    iterations : int
        Primal–dual updates.
    weight : float ≥ 0, optional
        TV weight (default :data:`TV_WEIGHT`); 0 gives a preconditioned least-squares solver.
    **common
        nonneg, x0, support, cor_offset_px, nz, callback, progress, tol, memory_limit_bytes
        (see :mod:`chemtomo.tomo.problem`).

    Returns
    -------
    volume : (ny, nz, nx) float32

    References
    ----------
    Chambolle & Pock, J. Math. Imaging Vis. 40, 120 (2011); Pock & Chambolle, ICCV 2011
    (diagonal preconditioning); Sidky, Jørgensen & Pan, Phys. Med. Biol. 57, 3065 (2012).
    """
    iterations = check_iterations(iterations, "tv")
    mu = TV_WEIGHT if weight is None else weight
    try:
        mu = float(mu)
    except (TypeError, ValueError):
        raise InputError(f"tv: weight must be a number ≥ 0, got {weight!r}") from None
    if not (np.isfinite(mu) and mu >= 0):
        raise InputError(f"tv: weight must be a finite number ≥ 0, got {mu}")
    p = prepare(tilt, angles_deg, "tv", n_volumes=7, n_sinograms=4, **common)
    g = p.geometry
    ny = p.x.shape[1]
    rs = p.op.rowsum[:, :, None]
    sigma = np.zeros_like(rs)
    np.divide(1.0, rs, out=sigma, where=rs > 1e-6)
    tau = (1.0 / (p.op.column_sums()[0] + 6.0)).astype(np.float32)[:, None]
    shape3 = (g.nz, g.nx, ny)
    y = np.zeros_like(p.b)
    dual = np.zeros((3,) + shape3, np.float32)
    grad = np.empty_like(dual)
    div = np.empty(shape3, np.float32)
    state = {"xbar": p.x.copy()}

    def update(k: int) -> None:
        nonlocal y, dual
        xbar = state["xbar"]
        ax = p.op.forward(xbar)
        ax -= p.b
        ax *= sigma
        y += ax
        y /= 1.0 + sigma
        y *= p.valid
        if mu > 0:
            dual += 0.5 * _grad(xbar.reshape(shape3), grad)
            mag = np.sqrt(np.sum(dual * dual, axis=0))
            np.maximum(mag / mu, 1.0, out=mag)
            dual /= mag
        step = p.op.backward(y)
        if mu > 0:
            step -= _div(dual, div).reshape(step.shape)
        x_old = p.x.copy()
        p.x -= tau * step
        p.constrain(p.x)
        np.subtract(2.0 * p.x, x_old, out=xbar)

    return p.iterate(iterations, update)
