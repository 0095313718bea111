"""Per-voxel unmixing of optical densities into phase concentrations (the paper's equation (1)).

In every voxel the optical density at energy e is a linear combination of the pure phases'
absorption, ``OD_e = Σ_k R[e, k] C_k`` (Beer–Lambert; the voxel size is constant in 3D, so no
thickness normalisation is needed). With the references in μ (1/m) and the ODs per voxel divided
by the voxel size (``voxel_m``), ``C_k`` is the volume fraction of phase k in the voxel; the
density is ``Σ_k C_k`` and the FePO4 fraction is the last phase over that sum.

Three solvers, chosen by name: ``"exact"`` (square system, the paper's 2×2 solve), ``"lstsq"``
(N energies, K phases, least squares) and ``"nnls"`` (least squares with C ≥ 0, exact active-set
enumeration vectorised over voxels). All are vectorised over voxels; voxels are processed in
chunks only to bound memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chemtomo.core import InputError, Volume, to_numpy

from ._otsu import otsu_thresholds
from .references import MAX_CONDITION, check_references, condition_number

__all__ = ["unmix", "fraction", "sample_mask", "UnmixInfo", "METHODS"]

log = logging.getLogger(__name__)

METHODS = ("exact", "lstsq", "nnls")
_CHUNK = 1 << 20          # voxels per solve chunk (bounds temporary memory to ~100 MB)
_MAX_NNLS_PHASES = 6      # active-set enumeration visits 2**K - 1 supports
_ENERGY_TOL_EV = 0.05     # volumes and references must agree to within this


@dataclass(frozen=True)
class UnmixInfo:
    """What :func:`unmix` found in its input (returned with ``return_info=True``, also logged).

    n_voxels         : voxels solved (inside the mask)
    n_nonfinite      : voxels with a NaN/inf OD at some energy: masked (NaN concentrations)
    n_negative       : voxels with a negative OD at some energy: counted and kept (noise in thin
                       or empty voxels is two-sided; dropping them would bias the mean), but
                       ``method="nnls"`` keeps the concentrations non-negative
    condition_number : of the (pre-edge corrected, voxel-scaled) reference matrix
    method           : solver used
    """

    n_voxels: int
    n_nonfinite: int
    n_negative: int
    condition_number: float
    method: str


def _check_energies(have, energies_ev) -> None:
    if energies_ev is None:
        return
    want = np.atleast_1d(np.asarray(energies_ev, dtype=np.float64))
    have = np.asarray(have, dtype=np.float64)
    if want.shape != have.shape or np.any(np.abs(want - have) > _ENERGY_TOL_EV):
        raise InputError(f"volumes are at energies {have.tolist()} eV but the references are for "
                         f"{want.tolist()} eV; build the reference matrix at the volumes' energies")


def _stack(ods, energies_ev) -> tuple[np.ndarray, float | None]:
    """ODs as one float32 array (n_energies, ...), checking shapes, voxel sizes and energies."""
    if isinstance(ods, Mapping):
        _check_energies(list(ods.keys()), energies_ev)
        ods = [to_numpy(v) if not isinstance(v, Volume) else v for v in ods.values()]
    elif not isinstance(ods, Sequence):
        arr = to_numpy(ods)
        if arr.ndim < 2:
            raise InputError(f"ods must have shape (n_energies, ...) with at least one spatial axis, got {arr.shape}")
        return arr.astype(np.float32, copy=False), None
    if len(ods) == 0:
        raise InputError("ods is empty; expected one OD array per energy")
    voxel_m = None
    if all(isinstance(v, Volume) for v in ods):
        sizes = [v.voxel_m for v in ods]
        if max(sizes) - min(sizes) > 1e-6 * max(sizes):
            raise InputError(f"volumes have different voxel sizes {sizes} m; resample them onto one grid first")
        voxel_m = float(sizes[0])
        _check_energies([v.energy_ev for v in ods], energies_ev)
        arrays = [v.array for v in ods]
    else:
        arrays = [to_numpy(v) for v in ods]
    shapes = [a.shape for a in arrays]
    if any(s != shapes[0] for s in shapes):
        raise InputError(f"ods have different shapes {shapes}; every energy's volume must be on the same grid")
    return np.stack(arrays).astype(np.float32, copy=False), voxel_m


def _design(references, n_energies: int, pre_edge, voxel_m: float | None):
    """Reference matrix as solved, and the linear map from measured ODs to the solved data.

    Returns ``(r_eff (n_used, K) float64, d (n_used, n_energies) float64, pre_index | None)``:
    the solve fits ``d @ OD ≈ r_eff @ C``. With ``pre_edge`` an energy index, that energy is
    subtracted from the others in both ODs and references (equation (1)).
    """
    r = check_references(references, n_energies, max_condition=np.inf)
    d = np.eye(n_energies)
    pre_index = None
    if pre_edge is not None and np.ndim(pre_edge) == 0:
        if not isinstance(pre_edge, (int, np.integer)) or not -n_energies <= pre_edge < n_energies:
            raise InputError(f"pre_edge must be an energy index in [0, {n_energies}) or an OD array, got {pre_edge!r}")
        pre_index = int(pre_edge) % n_energies
        keep = [i for i in range(n_energies) if i != pre_index]
        d = d[keep] - d[pre_index][None, :]
        r = r[keep] - r[pre_index][None, :]
    if voxel_m is not None:
        if not (np.isfinite(voxel_m) and voxel_m > 0):
            raise InputError(f"voxel_m must be a positive voxel size in metres, got {voxel_m!r}")
        r = r * voxel_m
    return r, d, pre_index


def _nnls(r: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares for every column of ``b`` by exact active-set enumeration.

    The NNLS optimum is the unconstrained least-squares solution on its own support, and every
    feasible support solution is a feasible point, so the feasible support solution with the
    smallest residual is the optimum. With K ≤ 6 phases the 2**K − 1 supports are few; each is
    one small matrix product over all voxels at once (closed form for K = 2: 3 supports).
    """
    k = r.shape[1]
    best = np.zeros((k, b.shape[1]), np.float32)
    best_res = np.sum(b.astype(np.float64) ** 2, axis=0)           # the empty support, C = 0
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            rs = r[:, support]
            c = (np.linalg.pinv(rs).astype(np.float32) @ b)
            feasible = np.all(c >= 0, axis=0)
            res = np.sum((b - rs.astype(np.float32) @ c).astype(np.float64) ** 2, axis=0)
            better = feasible & (res < best_res)
            full = np.zeros_like(best)
            full[list(support)] = c
            best = np.where(better[None, :], full, best)
            best_res = np.where(better, res, best_res)
    return best


def unmix(ods, references, *, method: str = "exact", pre_edge=None, mask=None,
          voxel_m: float | None = None, energies_ev=None, return_info: bool = False):
    """Concentration of each phase in every voxel (or pixel) from its optical densities.

    Parameters
    ----------
    ods : (n_energies, ...) float, a list of same-shape arrays or of :class:`~chemtomo.core.Volume`,
        or a dict {energy_eV: array or Volume} (in reference-row order)
        Optical density per voxel at each energy (volumes or images). Volumes must share one voxel
        size; their energies (the ``Volume``'s or the dict's keys) are checked against
        ``energies_ev`` when given. CuPy arrays are copied to the host.
    references : (n_energies, n_phases) float
        Absorption of each pure phase at each energy, one common scale, LiFePO4 first and FePO4
        last (e.g. from :func:`references_from_table`).
    method : {"exact", "lstsq", "nnls"}
        ``"exact"``: the square solve of equation (1) (n_energies == n_phases after pre-edge
        removal); ``"lstsq"``: least squares over N ≥ K energies; ``"nnls"``: least squares with
        non-negative concentrations.
    pre_edge : int or array, optional
        Pre-edge correction of equation (1). An int is the index of the pre-edge energy among
        ``ods``: it is subtracted from the other energies, in the ODs and in the references alike.
        An array (shape of one OD image/volume) is subtracted from every energy's OD only; the
        references must then already be pre-edge subtracted.
    mask : bool array (shape of one volume), optional
        Voxels to solve; others get NaN.
    voxel_m : float, optional
        Voxel size in metres. When given (or taken from ``Volume`` inputs) the ODs per voxel are
        divided by it, so references in μ (1/m) give volume fractions.
    energies_ev : (n_energies,) float, optional
        Energies (eV) of the reference rows, checked against ``Volume`` inputs.
    return_info : bool
        Also return an :class:`UnmixInfo`.

    Returns
    -------
    concentrations : (n_phases, ...) float32
        NaN outside ``mask`` and where any OD is non-finite.
    info : UnmixInfo, only with ``return_info=True``

    Raises
    ------
    InputError
        Unknown method; references whose rows do not match the energies; a singular or
        ill-conditioned reference matrix (the message gives its condition number, limit
        ``MAX_CONDITION``); volumes of different shapes, voxel sizes or energies; a mask of the
        wrong shape; ``"exact"`` with a non-square system.

    Notes
    -----
    Equation (1) of Yu et al. (2018):
    ``[OD_E1 − OD_pre, OD_E2 − OD_pre]ᵀ = [[I_E1,LFP, I_E1,FP], [I_E2,LFP, I_E2,FP]] [C_LFP, C_FP]ᵀ``.
    ``"lstsq"`` applies the pseudo-inverse ``(RᵀR)⁻¹Rᵀ``, the minimum-variance unbiased estimate
    for equal, independent noise at every energy.

    Examples
    --------
    >>> r = np.array([[1.6, 0.6], [0.7, 1.5]])
    >>> np.round(unmix(np.array([[2.2], [2.2]]), r)[:, 0], 5)
    array([1., 1.], dtype=float32)
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    stack, vol_voxel_m = _stack(ods, energies_ev)
    if voxel_m is None:
        voxel_m = vol_voxel_m
    n_e = stack.shape[0]
    spatial = stack.shape[1:]
    r, d, pre_index = _design(references, n_e, pre_edge, voxel_m)
    cond = condition_number(r)
    if not cond <= MAX_CONDITION:
        raise InputError(f"reference matrix is singular or ill-conditioned: condition number {cond:.3g} "
                         f"exceeds {MAX_CONDITION:.3g}; the phases' spectra are (nearly) proportional "
                         "at these energies, choose energies where they differ")
    if method == "exact" and r.shape[0] != r.shape[1]:
        raise InputError(f"method 'exact' needs as many energies as phases, got {r.shape[0]} energies "
                         f"(after pre-edge removal) for {r.shape[1]} phases; use 'lstsq' or 'nnls'")
    if method == "nnls" and r.shape[1] > _MAX_NNLS_PHASES:
        raise InputError(f"method 'nnls' supports at most {_MAX_NNLS_PHASES} phases, got {r.shape[1]}")
    if pre_edge is not None and pre_index is None:
        pre = np.asarray(pre_edge, dtype=np.float32)
        if pre.shape != spatial:
            raise InputError(f"pre_edge array has shape {pre.shape} but each OD has shape {spatial}")
        stack = stack - pre[None]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != spatial:
            raise InputError(f"mask has shape {mask.shape} but each OD has shape {spatial}")

    flat = stack.reshape(n_e, -1)
    finite = np.all(np.isfinite(flat), axis=0)
    inside = finite if mask is None else finite & mask.reshape(-1)
    selected = np.ones_like(finite) if mask is None else mask.reshape(-1)
    n_nonfinite = int(np.count_nonzero(selected & ~finite))
    n_negative = int(np.count_nonzero(inside & np.any(flat < 0, axis=0)))

    k = r.shape[1]
    out = np.full((k, flat.shape[1]), np.nan, np.float32)
    idx = np.flatnonzero(inside)
    d32 = d.astype(np.float32)
    solve = np.linalg.pinv(r).astype(np.float32)     # inverse for "exact", pseudo-inverse for "lstsq"
    for start in range(0, idx.size, _CHUNK):
        sel = idx[start:start + _CHUNK]
        b = d32 @ flat[:, sel]
        out[:, sel] = _nnls(r, b) if method == "nnls" else solve @ b

    info = UnmixInfo(int(idx.size), n_nonfinite, n_negative, cond, method)
    if n_nonfinite:
        log.warning("unmix: %d voxels have non-finite optical densities; their concentrations are NaN", n_nonfinite)
    if n_negative:
        log.info("unmix: %d of %d voxels have a negative OD at some energy (kept)", n_negative, idx.size)
    conc = out.reshape((k,) + spatial)
    return (conc, info) if return_info else conc


def sample_mask(density, *, threshold: float | None = None, return_threshold: bool = False):
    """Voxels that hold sample: density above a threshold (Otsu's by default).

    Parameters
    ----------
    density : array float
        ``Σ_k C_k`` per voxel (e.g. ``concentrations.sum(0)``), any shape.
    threshold : float, optional
        Density above which a voxel is sample. Default: Otsu's threshold on the finite density
        values (256-bin histogram), which separates the empty (noise around 0) and filled voxels
        when both are present. Override it when the sample fills nearly all or none of the volume.
    return_threshold : bool
        Also return the threshold used.

    Returns
    -------
    mask : bool array, shape of ``density`` (False where density is non-finite)
    threshold : float, only with ``return_threshold=True``
    """
    rho = np.asarray(density, dtype=np.float32)
    finite = np.isfinite(rho)
    if not np.any(finite):
        raise InputError("density has no finite values; cannot derive a sample mask")
    if threshold is None:
        threshold = float(otsu_thresholds(rho[finite].reshape(1, -1))[0])
    elif not np.isfinite(threshold):
        raise InputError(f"threshold must be a finite density, got {threshold!r}")
    mask = finite & (rho > threshold)
    return (mask, float(threshold)) if return_threshold else mask


def fraction(concentrations, *, mask=None, density_threshold: float | None = None) -> np.ndarray:
    """FePO4 fraction x_FP = C_last / Σ_k C_k per voxel, clipped to [0, 1], NaN outside the sample.

    Parameters
    ----------
    concentrations : (n_phases, ...) float
        From :func:`unmix`; the last phase is FePO4.
    mask : bool array (shape of one volume), optional
        The sample. When neither ``mask`` nor ``density_threshold`` is given, the sample is
        :func:`sample_mask` of the density (Otsu's threshold).
    density_threshold : float, optional
        The sample is where the density exceeds this.

    Returns
    -------
    fraction : float32, shape ``concentrations.shape[1:]``; NaN outside the sample, where the
        density is not positive, and where a concentration is NaN.
    """
    c = np.asarray(concentrations, dtype=np.float32)
    if c.ndim < 2 or c.shape[0] < 2:
        raise InputError(f"concentrations must have shape (n_phases >= 2, ...), got {c.shape}")
    density = np.sum(c, axis=0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != density.shape:
            raise InputError(f"mask has shape {mask.shape} but the concentrations' volumes have {density.shape}")
    elif density_threshold is not None:
        mask = np.isfinite(density) & (density > density_threshold)
    else:
        mask = sample_mask(density)
    keep = mask & np.isfinite(density) & (density > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.clip(c[-1] / density, 0.0, 1.0)
    return np.where(keep, x, np.float32(np.nan)).astype(np.float32)
