"""CGLS: conjugate gradients on the normal equations AᵀW A x = AᵀW b, one system per slice.

Each slice (y) is its own least-squares problem, so the step lengths α and β are computed per
slice, as a 2D solver run slice by slice would (ASTRA's CGLS), but all slices advance together:

    r = W(b − A x),  s = Aᵀ r,  d = s,  γ = ‖s‖²
    repeat:  q = W A d;  α = γ / ‖q‖²;  x += α d;  r −= α q
             s = Aᵀ r;  γ' = ‖s‖²;  d = s + (γ'/γ) d;  γ = γ'

W is the measured-ray mask (0 for missing rays). One iteration is one update (one projection and
one back-projection). With ``nonneg`` (or a support) it becomes an *active-set projected CG*:
after each step the iterate is projected onto the constraint set (clipped at 0, zero outside the
support) and the residual recomputed from it (one more projection per iteration); the gradient
and the search direction are zeroed on the active set (voxels at 0 that the gradient would push
negative) and α = ⟨s, d⟩/‖q‖², so the conjugate directions live in the free voxels. This is a
heuristic without CG's optimality guarantees; on the −80..77° plate phantom with 1 % noise it
reaches a relative error of 0.094 in 20 iterations, against 0.27 for projecting without the
active set and 0.16 for unconstrained CGLS clipped at the end. ``nonneg=False`` and no support
give textbook CGLS.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from .problem import check_iterations, prepare

__all__ = ["cgls"]


def _rows(a: np.ndarray) -> np.ndarray:
    """A stack as (rows, ny), a view (slice stacks and sinogram stacks are C-contiguous)."""
    return a.reshape(-1, a.shape[-1])


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-slice inner products Σ a·b over everything but the last axis, float64 (ny,)."""
    return K.column_dot(_rows(a), _rows(b), K.n_threads())


def cgls(tilt, angles_deg, *, iterations: int = 20, **common) -> np.ndarray:
    """Conjugate-gradient least-squares reconstruction of a parallel-beam tilt series.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Line integrals; rotation axis along y. NaN marks missing rays (weight zero).
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    iterations : int
        CG updates.
    **common
        nonneg, x0, support, cor_offset_px, nz, callback, progress, tol, memory_limit_bytes
        (see :mod:`chemtomo.tomo.problem`). ``nonneg`` makes it an active-set projected CG (module notes).

    Returns
    -------
    volume : (ny, nz, nx) float32

    References
    ----------
    Hestenes & Stiefel, J. Res. Natl. Bur. Stand. 49, 409 (1952); Björck, Numerical Methods for
    Least Squares Problems (SIAM, 1996), §7.4.
    """
    iterations = check_iterations(iterations, "cgls")
    p = prepare(tilt, angles_deg, "cgls", n_volumes=4, n_sinograms=4, **common)
    projected = p.nonneg or p.support is not None
    masked = p.n_missing > 0

    def residual() -> np.ndarray:
        r = p.op.forward(p.x)
        K.residual(_rows(p.b), _rows(p.valid), _rows(r), masked)
        return r

    def free(v: np.ndarray) -> np.ndarray:
        """Zero ``v`` on the active set (in place): voxels at 0 it would push negative, or outside
        the support."""
        if p.nonneg:
            K.zero_active(p.x, v)
        if p.support is not None:
            v *= p.support
        return v

    r = residual()
    s = p.op.backward(r)
    if projected:
        free(s)
    state = {"r": r, "s": s, "d": s.copy(), "gamma": _dot(s, s)}

    def update(k: int) -> None:
        d, s, gamma = state["d"], state["s"], state["gamma"]
        q = p.op.forward(d)
        if masked:
            q *= p.valid
        qq = _dot(q, q)
        sd = _dot(s, d)
        alpha = np.where(qq > 0, sd / np.where(qq > 0, qq, 1.0), 0.0).astype(np.float32)
        K.axpy(p.x, alpha, d)
        if projected:
            p.constrain(p.x)
            state["r"] = residual()
        else:
            K.axpy(_rows(state["r"]), -alpha, _rows(q))
        s = p.op.backward(state["r"])
        if projected:
            free(s)
        gamma_new = _dot(s, s)
        beta = np.where(gamma > 0, gamma_new / np.where(gamma > 0, gamma, 1.0), 0.0).astype(np.float32)
        K.xpby(s, beta, d)
        if projected:
            free(d)
        state["s"], state["gamma"] = s, gamma_new

    return p.iterate(iterations, update)
