"""Joint spectral tomography: phase volumes fitted directly to every energy's OD tilt series.

The two-step method of the paper reconstructs one OD volume per energy and unmixes each voxel
(:func:`.unmix`); each energy's volume carries its own noise and streaks, and the per-voxel
2×2 inverse amplifies their differences. Here the phase concentrations c_k(r) are the unknowns
of one tomographic problem,

    OD_e(θ) = P_θ Σ_k μ_k(e) · voxel_m · c_k,

solved by :func:`chemtomo.tomo.joint_reconstruct` (spectrally preconditioned OS-SART with
c_k ≥ 0, optionally Σ_k c_k ≤ 1, after every subset; see that module for the choice of solver).
This module is the chemistry interface: reference spectra in, concentrations and the derived
maps of the two-step flow out (fraction, density, classes, uncertainty, state of charge).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from chemtomo.core import InputError, to_numpy

from .references import MAX_CONDITION, check_references
from .statistics import classify, soc_region, state_of_charge
from .unmix import fraction as fraction_map
from .unmix import sample_mask

__all__ = ["JointResult", "joint_reconstruct"]

_ENERGY_TOL_EV = 0.05
_CONSERVED_REL = 0.01  # projection totals constant with angle to this: the sample stays in the field


@dataclass(frozen=True)
class JointResult:
    """What :func:`joint_reconstruct` returns.

    concentrations       : (K, ny, nz, nx) float32, volume fraction of each phase per voxel
                           (references in μ, 1/m, and ``voxel_m`` given), LiFePO4 first, FePO4 last
    density              : (ny, nz, nx) float32, Σ_k c_k
    mask                 : (ny, nz, nx) bool, the sample (density above ``density_threshold``)
    fraction             : (ny, nz, nx) float32, FePO4 fraction in [0, 1], NaN outside the mask
    labels               : (ny, nz, nx) uint8, 0 outside, 1 LFP-rich, 2 mixed, 3 FP-rich
    sigma_concentrations : (K, ny, nz, nx) float32, local σ of each concentration (see
                           :func:`chemtomo.tomo.joint_reconstruct`, Notes: optimistic)
    sigma_fraction       : (ny, nz, nx) float32, first-order σ of the fraction from the same
                           covariance; NaN outside the mask
    soc, soc_sigma       : state of charge Σ c_FP / Σ c over the sample mask grown by 3 voxels
                           (it holds the blurred rims; the whole volume would add the clipped,
                           one-sided noise of every empty voxel), and its σ. The non-negativity
                           makes the noise of pure-phase voxels one-sided, which biases this by
                           about 0.1 % absolute at the demo's noise (benchmarks/joint.py). NaN
                           when no sample is found.
    soc_projections      : the SOC from the projection totals, which are the same at every angle
                           when the sample stays in the field (footprint weights conserve mass):
                           the phases' totals are M⁺ times the mean totals, a linear estimate
                           independent of the reconstruction and unbiased for ideal data, but
                           any OD baseline offset is summed over the whole field (on the demo
                           pipeline's series it is off by 0.2 %); NaN when the totals vary by
                           more than 1 % with angle or fewer than two projections are complete.
    residual_rms         : (n_energies,) OD residual RMS over measured rays
    info                 : the :class:`chemtomo.tomo.JointInfo` of the solve
    """

    concentrations: np.ndarray
    density: np.ndarray
    mask: np.ndarray
    fraction: np.ndarray
    labels: np.ndarray
    sigma_concentrations: np.ndarray
    sigma_fraction: np.ndarray
    soc: float
    soc_sigma: float
    residual_rms: np.ndarray
    info: object
    soc_projections: float = math.nan


def _stack(od_by_energy, energies_ev) -> tuple[np.ndarray, list[float] | None]:
    if isinstance(od_by_energy, Mapping):
        keys = [float(k) for k in od_by_energy]
        if energies_ev is not None:
            want = np.atleast_1d(np.asarray(energies_ev, np.float64))
            if want.size != len(keys) or np.any(np.abs(want - np.asarray(keys)) > _ENERGY_TOL_EV):
                raise InputError(f"joint_reconstruct: tilt series are at energies {keys} eV but the references "
                                 f"are for {want.tolist()} eV; give them in the same order")
        arrays = [np.asarray(to_numpy(v), np.float32) for v in od_by_energy.values()]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise InputError(f"joint_reconstruct: tilt series have different shapes {[a.shape for a in arrays]}; "
                             "every energy's aligned series must be on one grid with the same angles")
        return np.stack(arrays), keys
    a = np.asarray(to_numpy(od_by_energy), np.float32)
    if a.ndim != 4:
        raise InputError(f"joint_reconstruct: od_by_energy must be a dict {{energy_eV: (n_angles, ny, nx)}} or a "
                         f"(n_energies, n_angles, ny, nx) array, got shape {a.shape}")
    return a, None


def _resample(tilt: np.ndarray, ratio: float) -> np.ndarray:
    """Tilt series of pixel p_E onto the reference grid (pixel p_ref = ratio · p_E), about the centre.

    The same mapping as :func:`chemtomo.align.energies.resample_to_reference` (cubic); missing
    rays stay missing: the valid mask is resampled with it and pixels it does not fully cover are NaN.
    """
    n, ny, nx = tilt.shape
    finite = np.isfinite(tilt)
    yy = (ny - 1) / 2 + (np.arange(ny) - (ny - 1) / 2) * ratio
    xx = (nx - 1) / 2 + (np.arange(nx) - (nx - 1) / 2) * ratio
    k, qy, qx = np.meshgrid(np.arange(n), yy, xx, indexing="ij")
    out = ndimage.map_coordinates(np.where(finite, tilt, 0.0), [k, qy, qx], order=3, mode="constant",
                                  cval=0.0, output=np.float32)
    ok = ndimage.map_coordinates(finite.astype(np.float32), [k, qy, qx], order=1, mode="constant", cval=1.0)
    return np.where(ok > 0.999, out, np.float32(np.nan)).astype(np.float32)


def joint_reconstruct(od_by_energy, angles_deg, references, *, iterations: int = 10, nonneg: bool = True,
                      tv: float = 0.0, occupancy: bool = False, voxel_m: float | None = None,
                      energies_ev=None, pixel_ratio=None, thresholds=(0.3, 0.7),
                      density_threshold: float | None = None, **solver) -> JointResult:
    """Phase concentrations fitted jointly to the aligned OD tilt series of every energy.

    Parameters
    ----------
    od_by_energy : dict {energy_eV: (n_angles, ny, nx)} or (n_energies, n_angles, ny, nx) float
        Aligned OD tilt series on one grid, rows in the order of ``references``. NaN marks
        missing rays (left out at that energy).
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    references : (n_energies, K) float, K ≤ n_energies
        Absorption of each pure phase at each energy (μ in 1/m with ``voxel_m``; else OD per voxel
        length of a unit concentration), LiFePO4 first and FePO4 last.
    iterations : int
        Sweeps of the joint solver (10 with two energies cost ~0.6× the paper's ART-20 per energy
        and give 0.4× its fraction error on the demo phantom; benchmarks/joint.py).
    nonneg : bool
        Concentrations ≥ 0.
    tv : float ≥ 0
        TV proximal weight per sweep, in volume-fraction units (0: none).
    occupancy : bool
        Bound Σ_k c_k ≤ 1 per voxel (references per unit volume: μ with ``voxel_m``).
    voxel_m : float, optional
        Voxel size in metres: references in μ (1/m) then give volume fractions.
    energies_ev : (n_energies,) float, optional
        Energies of the reference rows, checked against a dict's keys.
    pixel_ratio : dict {energy_eV: p_ref / p_E} or (n_energies,) float, optional
        Only for series *not* already on the reference grid (``chemtomo.align.apply`` and the
        pipeline's tiltseries stage resample every energy already; then leave it out): each
        energy is resampled about the centre onto the reference pixel before the solve.
    thresholds : (lfp_rich_max, fp_rich_min)
        Class limits of :func:`chemtomo.chem.classify`.
    density_threshold : float, optional
        Sample-mask density; default Otsu's (:func:`chemtomo.chem.sample_mask`).
    **solver
        relaxation, subsets, x0, nz, cor_offset_px, callback, progress, tv_iterations of
        :func:`chemtomo.tomo.joint_reconstruct`.

    Returns
    -------
    JointResult

    Raises
    ------
    InputError
        Tilt series of different shapes or energies, references with fewer rows than energies or
        more phases than energies, a rank-deficient or ill-conditioned reference set (the message
        names its singular values and condition number), ``occupancy`` without ``voxel_m``.

    Examples
    --------
    >>> from chemtomo.tomo import project
    >>> refs = np.array([[8.8e6, 3.3e6], [5.4e6, 7.8e6]])         # μ (1/m) at 708.2, 710.2 eV
    >>> c = np.zeros((2, 2, 24, 24), np.float32); c[0, :, 9:13, 4:20] = 0.8; c[1, :, 9:13, 4:20] = 0.2
    >>> angles = np.arange(-80, 78, 4.0)
    >>> ods = {e: project(np.tensordot(r * 6.7e-9, c, 1), angles) for e, r in zip((708.2, 710.2), refs)}
    >>> res = joint_reconstruct(ods, angles, refs, voxel_m=6.7e-9, iterations=30)
    >>> round(float(np.nanmedian(res.fraction)), 2)
    0.2
    """
    # chem → tomo: the one projector of chemtomo (DESIGN.md: the algorithm lives in tomo)
    from ..tomo import joint_reconstruct as solve

    tilts, keys = _stack(od_by_energy, energies_ev)
    n_e = tilts.shape[0]
    r = check_references(references, n_e, max_condition=np.inf)
    if voxel_m is not None:
        if not (isinstance(voxel_m, (int, float)) and math.isfinite(voxel_m) and voxel_m > 0):
            raise InputError(f"joint_reconstruct: voxel_m must be a positive voxel size in metres, got {voxel_m!r}")
        r = r * float(voxel_m)
    elif occupancy:
        raise InputError("joint_reconstruct: occupancy (Σ c ≤ 1) needs voxel_m, so that the references in μ (1/m) "
                         "make the concentrations volume fractions")
    if pixel_ratio is not None:
        ratios = ([float(pixel_ratio.get(k, pixel_ratio.get(str(k), 1.0))) for k in keys] if isinstance(
            pixel_ratio, Mapping) and keys is not None else np.atleast_1d(np.asarray(pixel_ratio, np.float64)).tolist())
        if len(ratios) != n_e or not all(math.isfinite(q) and q > 0 for q in ratios):
            raise InputError(f"joint_reconstruct: pixel_ratio must give one positive ratio p_ref / p_E per energy "
                             f"({n_e}), got {pixel_ratio!r}")
        tilts = np.stack([t if abs(q - 1.0) < 1e-9 else _resample(t, q) for t, q in zip(tilts, ratios)])
    conc, info = solve(tilts, angles_deg, r, iterations=iterations, nonneg=nonneg, tv=tv,
                       occupancy=1.0 if occupancy else None, max_condition=MAX_CONDITION, return_info=True,
                       **solver)
    density = conc.sum(axis=0).astype(np.float32)
    mask = sample_mask(density, threshold=density_threshold)
    frac = fraction_map(conc, mask=mask)
    labels = classify(frac, thresholds=tuple(thresholds))
    g = info.spectral_inverse
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # empty voxels: masked below
        x = conc[-1] / density
        h = -x[None] / density[None] * np.ones((conc.shape[0],) + (1,) * 3, np.float32)
        h[-1] += 1.0 / density
        quad = np.einsum("k...,kl,l...->...", h, g.astype(np.float32), h)
        sigma_x = np.sqrt(info.variance_scale * quad).astype(np.float32)
    sigma_x = np.where(mask, sigma_x, np.float32(np.nan)).astype(np.float32)
    region = soc_region(mask)
    soc_proj = _soc_from_projections(tilts, r)
    if np.any(density[region] > 0):
        soc, soc_sigma = state_of_charge(conc, mask=region)
    else:  # no sample found: no state of charge to report
        soc, soc_sigma = math.nan, math.nan
    return JointResult(conc, density, mask, frac, labels, info.sigma.astype(np.float32), sigma_x,
                       float(soc), float(soc_sigma), np.asarray(info.residual_rms), info, soc_proj)


def _soc_from_projections(tilts: np.ndarray, mix: np.ndarray) -> float:
    """SOC from the projection totals (see :class:`JointResult`); NaN when they are not conserved."""
    complete = np.all(np.isfinite(tilts), axis=(0, 2, 3))
    if complete.sum() < 2:
        return math.nan
    totals = tilts[:, complete].sum(axis=(2, 3), dtype=np.float64)        # (n_energies, n_complete)
    mean = totals.mean(axis=1)
    if np.any(mean <= 0) or np.any(totals.std(axis=1) > _CONSERVED_REL * mean):
        return math.nan
    whole = np.linalg.pinv(mix) @ mean                                      # (K,) amounts of the phases
    return float(whole[-1] / whole.sum()) if whole.sum() > 0 else math.nan
