"""Joint spectral reconstruction: component volumes fitted to every energy's tilt series at once.

The forward model of spectro-tomography is linear in the component volumes c_k (ny, nz, nx):

    b_e(θ) = A_θ Σ_k M[e, k] c_k          e = 1..N energies, k = 1..K ≤ N components

with A_θ the footprint projector of :mod:`.geometry` (the one of :func:`.project`) and
M (N × K) the mixing matrix: the line integral of a unit amount of component k per voxel length
at energy e (for OD data and references μ in 1/m, ``M = μ · voxel_m``).

Solver: ordered-subset SART on the stacked unknown, preconditioned by the spectral pseudo-inverse,
with the constraints projected per voxel after every subset,

    r_e  = W_e R⁻¹ (b_e − A_S Σ_k M[e, k] c_k)
    c   ← P_C( c + λ · C_S⁻¹ A_Sᵀ (MᵀM)⁻¹Mᵀ r )

(R row sums, C_S column sums of the subset, W_e the measured-ray mask of energy e, P_C the
per-voxel Euclidean projection onto {c ≥ 0} or the capped simplex {c ≥ 0, Σ_k c_k ≤ cap}).

Why this solver:

- The spectral and spatial parts of the normal matrix factor, ``MᵀM ⊗ AᵀA``. Preconditioning
  with ``(MᵀM)⁻¹`` per voxel whitens the spectral coupling exactly, so the update of the
  component volumes is the SART update of every energy's volume, unmixed; its convergence is
  SART's (the same relaxation, the same number of sweeps), whatever the condition of M. Without
  it a gradient step mixes the components and its safe step size shrinks with cond(M)².
- SART sweeps over angles converge in ~20 sweeps where SIRT/Chambolle–Pock need hundreds
  (:mod:`.sart`, benchmarks/RESULTS.md "Tomography"), and one sweep costs one projection and one
  back-projection of the K component volumes: the time of K per-energy SART sweeps, so a joint
  run of N energies costs K/N of N separate reconstructions per sweep.
- What the joint fit buys over reconstruct-then-unmix: the constraint acts on the components
  (c_k ≥ 0, optionally Σ c_k ≤ 1), a much smaller set than per-energy OD ≥ 0, and is applied
  inside every update, so the noise and streaks it removes are not fitted back in. With N = K
  and no constraint the least-squares solution is exactly the two-step one (M is invertible);
  the gain comes from the constraints (and the optional TV), and with N > K also from fitting
  all energies with one set of volumes.
- An optional isotropic TV term per component (``tv`` > 0) is applied as a proximal step
  (Chambolle's dual projection, warm-started) after every sweep, as in ASD-POCS (Sidky & Pan
  2008); it is a heuristic splitting, not a converged minimiser of a TV-penalised objective.

Missing rays (NaN) get weight zero at their energy only. All energies share one grid: pass
tilt series resampled to the reference energy's pixel size (:func:`chemtomo.align.apply` does
so with the alignment's ``energy_pixel_ratio``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..core.backend import to_numpy
from ..core.errors import ConvergenceError, InputError
from . import _joint_kernels as J
from . import _kernels as K
from .geometry import TiltGeometry, check_angles
from .operator import (
    DEFAULT_MAX_BLOCK_BYTES,
    block_bytes,
    check_memory,
    operator_for,
    slice_plan,
    stack_to_volume,
    tilt_to_stack,
    volume_to_stack,
)
from .problem import check_iterations, check_relaxation
from .sart import safe_inverse
from .tv import _div, _grad

__all__ = ["JOINT_RELAXATION", "JointInfo", "check_mixing", "joint_reconstruct"]

log = logging.getLogger(__name__)

JOINT_RELAXATION = 1.8
"""Default relaxation λ (SART converges for 0 < λ < 2). At 10 sweeps on the demo phantom
(benchmarks/joint.py, 3 seeds) the FePO4-fraction RMS on the plates is 0.037 (λ = 1.0), 0.028
(1.5), 0.024 (1.8) at the demo's noise and 0.040, 0.034, 0.034 at a tenth of the dose: at the
cost of the two-step method the error is still mostly unconverged edges, not fitted noise."""

DEFAULT_MAX_CONDITION = 1.0e3
"""Largest accepted condition number of the mixing matrix (as chemtomo.chem.MAX_CONDITION)."""


@dataclass(frozen=True)
class JointInfo:
    """What :func:`joint_reconstruct` did (returned with ``return_info=True``).

    iterations       : sweeps run
    residual_rms     : (n_energies,) RMS of the final data residual b_e − A M c over measured rays
                       (≥ the noise: SART with constant λ cycles instead of settling)
    n_missing        : rays left out (non-finite data)
    singular_values  : of the mixing matrix, largest first
    condition_number : largest over smallest singular value
    noise_variance   : s², the data-noise variance per ray estimated from the residual
    variance_scale   : (ny, nz, nx) float32, s² / Σ_rays w_p²: with ``spectral_inverse`` G, the
                       covariance of voxel p's components is ``variance_scale[p] · G`` (see
                       Notes of :func:`joint_reconstruct`)
    spectral_inverse : (K, K) float64, (MᵀM)⁻¹
    """

    iterations: int
    residual_rms: np.ndarray
    n_missing: int
    singular_values: np.ndarray
    condition_number: float
    noise_variance: float
    variance_scale: np.ndarray
    spectral_inverse: np.ndarray

    @property
    def sigma(self) -> np.ndarray:
        """(K, ny, nz, nx) float32: per-voxel σ of each component, sqrt(variance_scale · G_kk)."""
        g = np.diag(self.spectral_inverse).astype(np.float32)
        return np.sqrt(self.variance_scale[None] * g[:, None, None, None])


def check_mixing(mixing, n_energies: int, *, max_condition: float = DEFAULT_MAX_CONDITION,
                 owner: str = "joint_reconstruct") -> tuple[np.ndarray, np.ndarray, float]:
    """Validate the (n_energies, K) mixing matrix; return it (float64), its singular values and
    condition number. Refuses K > N and rank-deficient or ill-conditioned matrices."""
    m = np.asarray(to_numpy(mixing), dtype=np.float64)
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise InputError(f"{owner}: mixing must be a 2D (n_energies, n_components) matrix, got shape {m.shape}")
    if m.shape[0] != n_energies:
        raise InputError(f"{owner}: mixing has {m.shape[0]} rows but there are {n_energies} energies' tilt "
                         "series; expected one row per energy, in the same order")
    if m.shape[1] > m.shape[0]:
        raise InputError(f"{owner}: {m.shape[1]} components from {m.shape[0]} energies; a joint fit needs at "
                         "least as many energies as components")
    if not np.all(np.isfinite(m)):
        raise InputError(f"{owner}: mixing holds non-finite values")
    s = np.linalg.svd(m, compute_uv=False)
    singular = s[-1] <= s[0] * max(m.shape) * np.finfo(np.float64).eps
    cond = math.inf if singular or s[-1] == 0 else float(s[0] / s[-1])
    if not cond <= max_condition:
        raise InputError(f"{owner}: the mixing (reference) matrix is rank-deficient or ill-conditioned: "
                         f"singular values {np.array2string(s, precision=4)}, condition number {cond:.3g} "
                         f"(limit {max_condition:.3g}); the components' spectra are (nearly) linearly "
                         "dependent at these energies: drop a component or measure where they differ")
    return m, s, cond


def _check_tilts(tilts, angles_deg, owner: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(to_numpy(tilts))
    if t.ndim != 4 or min(t.shape) == 0:
        raise InputError(f"{owner}: tilts must be a (n_energies, n_angles, ny, nx) array, got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.floating):
        t = t.astype(np.float32)
    angles = check_angles(angles_deg, t.shape[1], owner=f"{owner}: angles_deg")
    return t.astype(np.float32, copy=False), angles


def _tv_prox(x: np.ndarray, weight: float, dual: np.ndarray, iterations: int) -> None:
    """In place: x ← argmin_u ½‖u − x‖² + weight·TV(u), by Chambolle's (2004) dual projection.

    ``x`` (nz, nx, ny) float32; ``dual`` (3, nz, nx, ny) float32 is warm-started and updated.
    Projected-gradient form: p ← clip_{|p| ≤ 1}(p + τ ∇(div p − x/weight)), u = x − weight · div p,
    with τ = 1/8 < 2/‖∇‖² (‖∇‖² ≤ 12 in 3D).
    """
    f = x.copy()
    grad = np.empty_like(dual)
    div = np.empty_like(x)
    tau = np.float32(1.0 / 8.0)
    for _ in range(iterations):
        _div(dual, div)
        u = div * np.float32(weight) - f
        _grad(u, grad)
        grad *= tau / np.float32(weight)
        dual += grad
        mag = np.sqrt(np.sum(dual * dual, axis=0))
        np.maximum(mag, 1.0, out=mag)
        dual /= mag
    _div(dual, div)
    np.subtract(f, np.float32(weight) * div, out=x)


def joint_reconstruct(tilts, angles_deg, mixing, *, iterations: int = 20, relaxation: float | None = None,
                      subsets: int | None = None, nonneg: bool = True, occupancy: float | None = None,
                      tv: float = 0.0, tv_iterations: int = 10, x0=None, nz: int | None = None,
                      cor_offset_px: float = 0.0,
                      max_condition: float = DEFAULT_MAX_CONDITION, callback=None, progress=None,
                      return_info: bool = False):
    """Component volumes fitted jointly to the tilt series of every energy.

    Parameters
    ----------
    tilts : (n_energies, n_angles, ny, nx) float
        Aligned line integrals (e.g. OD) of every energy on one grid, same angles. NaN marks
        missing rays (weight zero at that energy).
    angles_deg : (n_angles,) float
        Tilt angles, degrees (finite, no duplicates).
    mixing : (n_energies, K) float, K ≤ n_energies
        Line integral per voxel length of a unit amount of each component at each energy.
    iterations : int
        Full sweeps over all subsets (all angles).
    relaxation : float in (0, 2), optional
        λ (default :data:`JOINT_RELAXATION`).
    subsets : int, optional
        Ordered subsets per sweep; default one angle per subset (SART). Subset k holds the angles
        k, k + subsets, … in acquisition order.
    nonneg : bool
        Components ≥ 0 after every subset update.
    occupancy : float, optional
        Upper bound on Σ_k c_k per voxel (1 when the components are volume fractions, the
        references μ per unit volume); needs ``nonneg``. Applied as the Euclidean projection onto
        the capped simplex.
    tv : float ≥ 0
        Weight of an isotropic 3D TV proximal step applied to each component after every sweep,
        in component units (e.g. volume fraction); 0: none.
    tv_iterations : int
        Dual iterations of each TV proximal step.
    x0 : (K, ny, nz, nx) float, optional
        Start (e.g. the two-step result); default zeros.
    nz : int, optional
        Slice depth, pixels (default: the detector width nx).
    cor_offset_px : float
        Centre-of-rotation offset on the detector, pixels.
    max_condition : float
        Largest accepted condition number of ``mixing``.
    callback : callable(iteration, components), optional
        After every sweep, with a (K, ny, nz, nx) float32 copy.
    progress : callable(done, total), optional
    return_info : bool
        Also return a :class:`JointInfo`.

    Returns
    -------
    components : (K, ny, nz, nx) float32
    info : JointInfo, with ``return_info=True``

    Raises
    ------
    InputError
        Shapes that disagree, K > n_energies, a rank-deficient or ill-conditioned ``mixing``
        (the message gives its singular values and condition number), bad options.

    Notes
    -----
    The uncertainty in ``info.sigma`` (``info.variance_scale`` · (MᵀM)⁻¹ for the covariance) is ``σ_k(p)² = s² · [(MᵀM)⁻¹]_kk / Σ_rays w_p²``: the
    variance of voxel p's least-squares estimate if every other voxel were known, with the noise
    variance s² estimated from the residual over measured rays. It ignores the tomographic
    coupling of neighbouring voxels and the constraints, so it is a local scale, not a confidence
    interval. Two biases pull in opposite directions: ignoring the coupling makes it optimistic,
    and s² is inflated by SART's cycle on inconsistent data (with the noise σ of the tests the
    residual RMS is 1.6-1.8 σ at λ = 1 and 2.6-2.9 σ at λ = 1.8), which makes it conservative.

    References
    ----------
    Andersen & Kak, Ultrason. Imaging 6, 81 (1984) (SART); Chambolle, J. Math. Imaging Vis. 20,
    89 (2004) (TV prox); Sidky & Pan, Phys. Med. Biol. 53, 4777 (2008) (ASD-POCS).

    Examples
    --------
    >>> from chemtomo.tomo import project
    >>> c = np.zeros((2, 2, 24, 24), np.float32); c[0, :, 8:16, 6:12] = 1; c[1, :, 8:16, 12:18] = 1
    >>> mix = np.array([[1.0, 0.4], [0.5, 1.0]], np.float32)
    >>> angles = np.arange(-80, 78, 4.0)
    >>> tilts = np.stack([project(np.tensordot(m, c, 1), angles) for m in mix])
    >>> rec = joint_reconstruct(tilts, angles, mix, iterations=30)
    >>> bool(np.abs(rec - c).mean() < 0.02)
    True
    """
    owner = "joint_reconstruct"
    iterations = check_iterations(iterations, owner)
    lam = check_relaxation(JOINT_RELAXATION if relaxation is None else relaxation, owner)
    t, angles = _check_tilts(tilts, angles_deg, owner)
    n_e, n_angles, ny, nu = t.shape
    m, s, cond = check_mixing(mixing, n_e, max_condition=max_condition, owner=owner)
    n_k = m.shape[1]
    if not isinstance(nonneg, (bool, np.bool_)):
        raise InputError(f"{owner}: nonneg must be True or False, got {nonneg!r}")
    cap = 0.0
    if occupancy is not None:
        if not nonneg:
            raise InputError(f"{owner}: occupancy (Σ c ≤ {occupancy}) needs nonneg=True")
        if not (isinstance(occupancy, (int, float)) and math.isfinite(occupancy) and occupancy > 0):
            raise InputError(f"{owner}: occupancy must be a positive number (bound on Σ_k c_k), got {occupancy!r}")
        cap = float(occupancy)
    if not (isinstance(tv, (int, float)) and math.isfinite(tv) and tv >= 0):
        raise InputError(f"{owner}: tv must be a finite number ≥ 0, got {tv!r}")
    tv_iterations = check_iterations(tv_iterations, owner)
    n_sub = n_angles if subsets is None else subsets
    if isinstance(n_sub, bool) or not isinstance(n_sub, (int, np.integer)) or not 1 <= n_sub <= n_angles:
        raise InputError(f"{owner}: subsets must be an integer in [1, {n_angles}] (number of angles), got {subsets!r}")
    for name, f in (("callback", callback), ("progress", progress)):
        if f is not None and not callable(f):
            raise InputError(f"{owner}: {name} must be callable, got {type(f).__name__}")
    nx = nu
    nz = nu if nz is None else nz
    if isinstance(nz, bool) or not isinstance(nz, (int, np.integer)) or nz <= 0:
        raise InputError(f"{owner}: nz must be a positive integer (slice depth, pixels), got {nz!r}")
    per_slice = 4 * (3 * n_k * nz * nx + 2 * n_e * n_angles * nu)
    weights = min(block_bytes(n_angles, nz, nx), DEFAULT_MAX_BLOCK_BYTES)
    check_memory(weights + ny * per_slice, f"{owner}: {n_k} components of {ny} slices of {nz}×{nx} from "
                 f"{n_e} energies × {n_angles} angles", "slices are independent: reconstruct fewer at a "
                 "time (tilts[:, :, i:j]) and stack the results along y")
    geom = TiltGeometry.create(angles, nz, nx, nu, float(cor_offset_px))
    op = operator_for(geom)
    if op._cached is None:
        raise InputError(f"{owner}: the projector weights of {n_angles} angles on {nz}×{nx} slices exceed the "
                         f"{DEFAULT_MAX_BLOCK_BYTES / 2**30:.0f} GiB cache; bin the data or split the angles")

    finite = np.isfinite(t)
    n_missing = int(finite.size - np.count_nonzero(finite))
    if n_missing:
        log.info("%s: %d non-finite values are treated as missing rays (weight zero)", owner, n_missing)
    b = np.stack([tilt_to_stack(np.where(finite[e], t[e], np.float32(0.0))) for e in range(n_e)])
    valid = np.stack([tilt_to_stack(finite[e].astype(np.float32)) for e in range(n_e)])

    if x0 is None:
        x = np.zeros((n_k, nz * nx, ny), np.float32)
    else:
        v = np.asarray(to_numpy(x0), dtype=np.float32)
        if v.shape != (n_k, ny, nz, nx):
            raise InputError(f"{owner}: x0 must have shape {(n_k, ny, nz, nx)} (K, ny, nz, nx), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise InputError(f"{owner}: x0 holds non-finite values")
        x = np.stack([volume_to_stack(c) for c in v])
    J.project_capped_simplex(x, np.float32(cap), bool(nonneg))

    mix32 = np.ascontiguousarray(m, dtype=np.float32)
    unmix32 = np.ascontiguousarray(np.linalg.pinv(m), dtype=np.float32)
    order = np.arange(n_angles)
    groups = [order[k::n_sub] for k in range(n_sub)]
    sub_order = np.concatenate(groups).astype(np.int64)
    sub_ptr = np.zeros(n_sub + 1, np.int64)
    sub_ptr[1:] = np.cumsum([g.size for g in groups])
    row_inv = safe_inverse(op.rowsum)
    col_inv = safe_inverse(op.column_sums(groups))
    rowptr, pix, wt, _, _ = op._cached
    duals = [np.zeros((3, nz, nx, ny), np.float32) for _ in range(n_k)] if tv > 0 else None

    plan = slice_plan(x.shape[2])
    done = 0
    for it in range(iterations):
        J.joint_os_sweep(rowptr, pix, wt, sub_order, sub_ptr, b, valid, row_inv, col_inv, mix32, unmix32, x,
                         np.float32(lam), np.float32(cap), bool(nonneg), *plan)
        if duals is not None:
            for k in range(n_k):
                _tv_prox(x[k].reshape(nz, nx, ny), float(tv), duals[k], tv_iterations)
            J.project_capped_simplex(x, np.float32(cap), bool(nonneg))
        if not np.all(np.isfinite(x)):
            raise ConvergenceError(f"{owner}: sweep {it + 1} produced non-finite values; the data hold values "
                                   "too large for float32 or the relaxation is too large")
        done = it + 1
        if callback is not None:
            callback(done, _volumes(x, nz, nx))
        if progress is not None:
            progress(done, iterations)
    out = _volumes(x, nz, nx)
    if not return_info:
        return out
    rms, s2, scale = _residual_and_scale(op, x, b, valid, m, n_k, nz, nx)
    return out, JointInfo(done, rms, n_missing, s, cond, s2, scale, np.linalg.inv(m.T @ m))


def _volumes(x: np.ndarray, nz: int, nx: int) -> np.ndarray:
    return np.stack([stack_to_volume(c, nz, nx) for c in x])


def _residual_and_scale(op, x, b, valid, m, n_k, nz, nx) -> tuple[np.ndarray, float, np.ndarray]:
    """Per-energy residual RMS over measured rays, the noise variance s² and s² / Σ_rays w_p²."""
    n_e = b.shape[0]
    ny = x.shape[2]
    proj = op.forward(np.ascontiguousarray(x.transpose(1, 0, 2).reshape(x.shape[1], n_k * ny)))
    proj = proj.reshape(proj.shape[0], proj.shape[1], n_k, ny)
    rms = np.empty(n_e, np.float64)
    n_rays = 0.0
    total = 0.0
    for e in range(n_e):
        pred = np.einsum("k,aukt->aut", m[e].astype(np.float32), proj)
        r = (b[e] - pred) * valid[e]
        n = float(valid[e].sum())
        ss = float(np.sum(r.astype(np.float64) ** 2))
        rms[e] = math.sqrt(ss / max(n, 1.0))
        total += ss
        n_rays += n
    # per measured ray: a tomographic problem has as many unknowns as rays or more, so "rays less
    # unknowns" (the former denominator) was ≤ 0 on most grids and left s² the sum of squares
    s2 = total / max(n_rays, 1.0)
    inv_w = safe_inverse(_column_square_sums(op)) * np.float32(s2)
    scale = stack_to_volume(np.repeat(inv_w[:, None], ny, axis=1), nz, nx)
    return rms, float(s2), scale


def _column_square_sums(op) -> np.ndarray:
    """Σ over all rays of w² for every pixel: the diagonal of AᵀA, (npix,) float32."""
    rowptr, pix, wt, _, _ = op._cached
    n_angles = rowptr.shape[0]
    out = np.zeros((1, op.npix), np.float32)
    used = np.arange(wt.shape[1])[None, :] < rowptr[:, -1:]   # entries past a block's end are unset
    wsq = np.where(used, wt, np.float32(0.0))
    wsq *= wsq
    K.column_sums(rowptr, pix, wsq, np.arange(n_angles, dtype=np.int64), np.zeros(n_angles, np.int64), out)
    return out[0]
