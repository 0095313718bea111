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

Defaults since issue 24 (part 4), docs/howto/joint_tomography.md: a TV weight chosen from the
noise of a pilot solve, a density-weighted TV fraction map, and the state of charge from the
baseline-corrected projection totals (linear in the data, so the c ≥ 0 clipping cannot bias it).
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

__all__ = ["FRACTION_TV", "TV_KAPPA", "JointResult", "component_noise", "fraction_noise", "joint_reconstruct",
           "regularise_fraction"]

_ENERGY_TOL_EV = 0.05
# projection totals constant with angle to this (their smooth trend, see _totals_conserved): the
# sample stays in the field. Mass missing at some angles biases the SOC by at most this fraction
# of the difference between the missing part's fraction and the SOC.
_CONSERVED_REL = 0.01
_MIN_AIR = 32         # rays that miss the sample, per projection, to estimate its OD baseline
# Chambolle–Pock iterations of the fraction regulariser: on a held-out series at σ = 0.011 OD the
# map after 150 is within 0.0015 (max) and 1.4e-4 (RMS) of the map after 600
_TV_ITERATIONS = 150

TV_KAPPA = 0.5
"""Factor of the automatic TV weight (``tv="auto"``): weight = κ · σ̂ of the phase volumes. On the
development seeds 0-2 of tests/chem/heldout_spheres.py, κ = 0.25 / 0.5 / 1.0 gave 0.69 / 0.66 /
0.76 of the two-step RMS error at σ = 0.0035 OD and 0.55 / 0.52 / 0.60 at 0.011 (excess noise
0.42 / 0.35 / 0.28 and 0.44 / 0.36 / 0.28): 0.5 minimises the error, not only the noise."""
FRACTION_TV = 2.0
"""κ of the fraction regulariser (TV weight = κ · σ̂ of the fraction at unit density). Chosen
once on development seeds 0-2 of tests/chem/heldout_spheres.py at two noise levels (κ = 1: 0.82×
and 0.69× the two-step error, κ = 2: 0.80× and 0.66×); reported on held-out seeds."""


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
    soc, soc_sigma       : state of charge Σ c_FP / Σ c and its σ: ``soc_projections`` when it
                           is defined (the default; unbiased, see there), else ``soc_volumes``
                           (NaN when no sample is found). ``soc_source`` says which.
    soc_projections      : the SOC from the projection totals, which are the same at every angle
                           when the sample stays in the field (footprint weights conserve mass):
                           the phases' totals are M⁺ times the mean totals over angles, summed
                           over the rays through the grown sample mask after each projection's
                           OD baseline (median over the rays that miss it) is subtracted.
                           Linear in the data and independent of the reconstruction, so the
                           c ≥ 0 clipping cannot bias it; its σ is the spread of the per-angle
                           estimates / √n_angles. NaN when the totals' smooth trend with
                           angle (a quadratic fit, so that their noise averages out) departs
                           from their mean by more than 1 % beyond three of its standard
                           errors, or fewer than two projections are complete.
    soc_volumes          : Σ c_FP / Σ c of the volumes over the sample mask grown by 3 voxels.
                           The non-negativity makes the noise of pure-phase voxels one-sided and
                           biases this (−0.005…+0.001 on the cases of benchmarks/joint.py at a
                           tenth of the dose and over ±60°): a diagnostic, not the default.
    fraction_noise       : σ̂ of the unregularised FePO4 fraction at unit density (robust, from
                           neighbour differences inside the sample), the scale of the fraction
                           regulariser (see ``fraction_tv`` of :func:`joint_reconstruct`)
    fraction_weight      : the TV weight the fraction regulariser used (κ σ̂; 0: none)
    tv_weight            : the TV weight per sweep the solve used (``tv``, or chosen by "auto")
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
    soc_volumes: float = math.nan
    soc_source: str = "volumes"
    fraction_noise: float = math.nan
    fraction_weight: float = 0.0
    tv_weight: float = 0.0


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
                      tv: float | str = "auto", occupancy: bool = False, voxel_m: float | None = None,
                      energies_ev=None, pixel_ratio=None, thresholds=(0.3, 0.7),
                      density_threshold: float | None = None, fraction_tv: float = FRACTION_TV,
                      fraction_weight: float | None = None, **solver) -> JointResult:
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
    tv : "auto" or float ≥ 0
        TV proximal weight per sweep on each phase volume, in volume-fraction units (0: none).
        "auto" (default): a pilot solve of ``iterations // 2`` sweeps without TV gives the
        per-voxel noise σ̂ of the phase volumes inside the sample (:func:`component_noise`), and
        the weight is ``TV_KAPPA`` · σ̂ (0.5: chosen once on development seeds, see
        docs/howto/joint_tomography.md; it follows the noise, ~0 on noise-free data). The
        weight used is ``JointResult.tv_weight``. Costs the pilot's sweeps and the TV steps
        (2.1-3.3× the two-step method's time at the demo's size; benchmarks/RESULTS.md).
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
    fraction_tv : float ≥ 0
        κ of the fraction regulariser (0: none). The FePO4 fraction map is
        ``argmin_x ½ Σ_mask ρ² (x − x̂)² + κ σ̂ TV(x)``, 0 ≤ x ≤ 1, with x̂ the per-voxel fraction
        of the fitted volumes, ρ their total density (the fraction's variance goes as 1/ρ², so
        this is its likelihood: rims and thin parts, where the total is low, borrow from their
        neighbours; the total's edges are kept because the weight drops there) and σ̂
        ``fraction_noise``, measured on the data. So the strength follows the noise by a fixed
        rule, κ = 2 (the TV weight is two noise σ at unit density), set once on development
        seeds and not tuned per dataset (benchmarks/joint_heldout.py). ``concentrations``,
        ``density`` and the SOC are not regularised.
    fraction_weight : float ≥ 0, optional
        The TV weight of the fraction regulariser itself, instead of κ σ̂ (e.g. the
        ``fraction_weight`` of another result, to apply the same estimator to noise-free data).
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
    if not (isinstance(fraction_tv, (int, float)) and math.isfinite(fraction_tv) and fraction_tv >= 0):
        raise InputError(f"joint_reconstruct: fraction_tv must be a finite number ≥ 0 (κ of the fraction "
                         f"regulariser; 0: none), got {fraction_tv!r}")
    if fraction_weight is not None and not (isinstance(fraction_weight, (int, float))
                                            and math.isfinite(fraction_weight) and fraction_weight >= 0):
        raise InputError(f"joint_reconstruct: fraction_weight must be a finite number ≥ 0, got {fraction_weight!r}")
    tv_weight = tv
    if isinstance(tv, str):
        if tv != "auto":
            raise InputError(f"joint_reconstruct: tv must be 'auto' or a finite number ≥ 0, got {tv!r}")
        quiet = {k: v for k, v in solver.items() if k not in ("callback", "progress")}
        pilot = solve(tilts, angles_deg, r, iterations=max(1, iterations // 2), nonneg=nonneg,
                      occupancy=1.0 if occupancy else None, max_condition=MAX_CONDITION, **quiet)
        sigma_c = component_noise(pilot, density_threshold)
        tv_weight = TV_KAPPA * sigma_c if math.isfinite(sigma_c) else 0.0
    elif not (isinstance(tv, (int, float)) and math.isfinite(tv) and tv >= 0):
        raise InputError(f"joint_reconstruct: tv must be 'auto' or a finite number ≥ 0, got {tv!r}")
    conc, info = solve(tilts, angles_deg, r, iterations=iterations, nonneg=nonneg, tv=float(tv_weight),
                       occupancy=1.0 if occupancy else None, max_condition=MAX_CONDITION, return_info=True,
                       **solver)
    density = conc.sum(axis=0).astype(np.float32)
    mask = sample_mask(density, threshold=density_threshold)
    frac = fraction_map(conc, mask=mask)
    noise = fraction_noise(frac, density, mask)
    if fraction_weight is not None:
        weight = float(fraction_weight)
    else:
        weight = float(fraction_tv) * noise if math.isfinite(noise) and noise > 0 else 0.0
    if weight > 0:
        frac = regularise_fraction(frac, density, mask, weight)
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
    if np.any(density[region] > 0):
        soc_vol, sigma_vol = state_of_charge(conc, mask=region)
    else:  # no sample found: no state of charge to report
        soc_vol, sigma_vol = math.nan, math.nan
    air = None
    if np.any(region):
        from ..tomo import project
        cover = project(region.astype(np.float32), angles_deg, cor_offset_px=float(solver.get("cor_offset_px", 0.0)),
                        nu=tilts.shape[-1])
        air = cover <= 0.0
    soc_proj, sigma_proj = _soc_from_projections(tilts, r, air, angles_deg)
    if math.isfinite(soc_proj):
        soc, soc_sigma, source = soc_proj, sigma_proj, "projections"
    else:
        soc, soc_sigma, source = soc_vol, sigma_vol, "volumes"
    return JointResult(conc, density, mask, frac, labels, info.sigma.astype(np.float32), sigma_x,
                       float(soc), float(soc_sigma), np.asarray(info.residual_rms), info, float(soc_proj),
                       float(soc_vol), source, float(noise), weight, float(tv_weight))


def _totals_conserved(totals: np.ndarray, angles_deg) -> bool:
    """Whether projection totals (n_energies, n_angles) are constant with angle: the sample stays in the field.

    A sample that leaves the field loses mass smoothly with angle (its projected extent grows
    as it turns); the noise of the totals is independent between angles. So the test is on the
    smooth part: a least-squares quadratic in the angle of each energy's totals / their mean.
    The totals are not conserved when that trend departs from 1 by more than ``_CONSERVED_REL``
    plus three standard errors of the fit at some measured angle (the standard error from the
    fit's residuals and the angle's leverage), i.e. when a trend beyond 1 % is resolved.
    A plain spread test takes the noise for a trend: on the demo pipeline's series at a quarter
    of the demo dose the per-angle totals scatter by 0.7–1.1 % (RMS) with no trend
    (benchmarks/joint_pipeline_noise.py --dose 0.25), and the SOC fell back to the volumes',
    which carries the clipping bias (+0.007 there).
    """
    mean = totals.mean(axis=1, keepdims=True)
    if np.any(mean <= 0):
        return False
    rel = totals / mean - 1.0                                               # (n_energies, n)
    theta = np.radians(np.asarray(angles_deg, np.float64))
    n = theta.size
    degree = min(2, n - 1)
    basis = np.vander(theta - theta.mean(), degree + 1)                     # (n, p)
    coef, *_ = np.linalg.lstsq(basis, rel.T, rcond=None)
    fit = (basis @ coef).T                                                  # (n_energies, n)
    if n > degree + 1:
        dof = n - degree - 1
        s = np.sqrt(np.sum((rel - fit) ** 2, axis=1, keepdims=True) / dof)
        leverage = np.einsum("ij,jk,ik->i", basis, np.linalg.pinv(basis.T @ basis), basis)
        margin = 3.0 * s * np.sqrt(np.clip(leverage, 0.0, None))[None]
    else:
        margin = 0.0
    return bool(np.all(np.abs(fit) - margin <= _CONSERVED_REL))


def _soc_from_projections(tilts: np.ndarray, mix: np.ndarray, air=None,
                          angles_deg=None) -> tuple[float, float]:
    """SOC and its σ from the projection totals (see :class:`JointResult`); NaN when not conserved.

    ``air`` (n_angles, ny, nx) bool marks the rays that miss the sample (the grown mask): the
    median OD over them is each projection's baseline (per energy and angle), subtracted, and
    only the rays through the sample are summed, so neither an OD offset nor the artefacts of the
    far field are multiplied by the size of the field. Projections with fewer than ``_MIN_AIR``
    air rays are summed whole.
    """
    complete = np.all(np.isfinite(tilts), axis=(0, 2, 3))
    if complete.sum() < 2:
        return math.nan, math.nan
    t = tilts[:, complete].astype(np.float64)                              # (n_e, n_complete, ny, nx)
    if air is not None:
        a = np.asarray(air, bool)[complete]
        for i in range(t.shape[1]):
            if a[i].sum() >= _MIN_AIR:
                t[:, i] -= np.median(t[:, i][:, a[i]], axis=1)[:, None, None]
                t[:, i][:, a[i]] = 0.0
    totals = t.sum(axis=(2, 3))                                             # (n_energies, n_complete)
    mean = totals.mean(axis=1)
    angles = (np.arange(tilts.shape[1], dtype=np.float64) if angles_deg is None
              else np.asarray(angles_deg, np.float64))[complete]
    if not _totals_conserved(totals, angles):
        return math.nan, math.nan
    pinv = np.linalg.pinv(mix)
    whole = pinv @ mean                                                     # (K,) amounts of the phases
    if whole.sum() <= 0:
        return math.nan, math.nan
    per_angle = pinv @ totals                                               # (K, n_complete)
    with np.errstate(invalid="ignore", divide="ignore"):
        soc_i = per_angle[-1] / per_angle.sum(axis=0)
    sigma = float(np.nanstd(soc_i, ddof=1) / math.sqrt(np.isfinite(soc_i).sum()))
    return float(whole[-1] / whole.sum()), sigma


def component_noise(conc: np.ndarray, density_threshold: float | None = None) -> float:
    """Robust per-voxel noise σ of the component volumes inside the sample (volume-fraction units).

    The sample is :func:`sample_mask` of Σ_k c_k, eroded once; over pairs of face neighbours both
    inside it, σ_k = 1.4826 · median|c_k(i) − c_k(j)| / √2 (the MAD estimate, which ignores the
    few pairs across an edge); the largest over k. NaN with fewer than 50 pairs.
    """
    c = np.asarray(conc, np.float32)
    mask = sample_mask(c.sum(axis=0), threshold=density_threshold)
    core = ndimage.binary_erosion(mask)
    sigmas = [_mad_sigma(np.concatenate([(ck[a] - ck[b])[core[a] & core[b]] for a, b in _FACE_PAIRS]))
              for ck in c]
    finite = [s for s in sigmas if math.isfinite(s)]
    return max(finite) if finite else math.nan


#: (later, earlier) slices of every pair of face neighbours of a 3D array, one per axis
_FACE_PAIRS = tuple((tuple(slice(1, None) if i == ax else slice(None) for i in range(3)),
                     tuple(slice(None, -1) if i == ax else slice(None) for i in range(3))) for ax in range(3))


def _mad_sigma(d: np.ndarray, min_pairs: int = 50) -> float:
    """σ from neighbour differences d: 1.4826 · median|d| / √2 (MAD); NaN with fewer than ``min_pairs``."""
    if d.size < min_pairs:
        return math.nan
    return float(1.4826 * np.median(np.abs(d)) / math.sqrt(2.0))


def fraction_noise(frac: np.ndarray, density: np.ndarray, mask: np.ndarray) -> float:
    """Robust σ of a fraction map at unit density, from neighbour differences inside the sample.

    Over pairs of face neighbours both inside the once-eroded mask, d = (x_i − x_j) · (ρ_i + ρ_j)/2
    (the fraction's noise scales as 1/ρ); σ̂ = 1.4826 · median|d| / √2, the MAD estimate, which
    ignores the few pairs across a phase boundary. NaN with fewer than 50 pairs.

    Parameters
    ----------
    frac, density : (ny, nz, nx) float, the fraction (NaN outside) and Σ_k c_k
    mask : (ny, nz, nx) bool, the sample
    """
    core = ndimage.binary_erosion(np.asarray(mask, bool)) & np.isfinite(frac)
    x = np.nan_to_num(frac.astype(np.float64))
    rho = np.clip(density.astype(np.float64), 0.0, None)
    return _mad_sigma(np.concatenate([((x[a] - x[b]) * 0.5 * (rho[a] + rho[b]))[core[a] & core[b]]
                                      for a, b in _FACE_PAIRS]))


def _grad(u: np.ndarray) -> np.ndarray:
    g = np.zeros((3,) + u.shape, u.dtype)
    g[0, :-1] = u[1:] - u[:-1]
    g[1, :, :-1] = u[:, 1:] - u[:, :-1]
    g[2, :, :, :-1] = u[:, :, 1:] - u[:, :, :-1]
    return g


def _div(p: np.ndarray) -> np.ndarray:
    """−∇ᵀ (the negative adjoint of :func:`_grad`)."""
    d = np.zeros(p.shape[1:], p.dtype)
    d[:-1] += p[0, :-1]
    d[1:] -= p[0, :-1]
    d[:, :-1] += p[1, :, :-1]
    d[:, 1:] -= p[1, :, :-1]
    d[:, :, :-1] += p[2, :, :, :-1]
    d[:, :, 1:] -= p[2, :, :, :-1]
    return d


def regularise_fraction(frac: np.ndarray, density: np.ndarray, mask: np.ndarray, weight: float, *,
                        iterations: int = _TV_ITERATIONS) -> np.ndarray:
    """Density-weighted TV estimate of a fraction map: argmin ½ Σ_mask ρ² (x − x̂)² + weight · TV(x), x ∈ [0, 1].

    Parameters
    ----------
    frac : (ny, nz, nx) float, x̂ (NaN outside the sample)
    density : (ny, nz, nx) float, ρ = Σ_k c_k (negative values count as 0)
    mask : (ny, nz, nx) bool, the sample; outside it the data weight is 0
    weight : float > 0, the TV weight (fraction × density² units per voxel face)
    iterations : Chambolle–Pock iterations (step sizes τ = σ = 1/√12, ‖∇‖² ≤ 12 in 3D)

    Returns
    -------
    (ny, nz, nx) float32, NaN outside ``mask``
    """
    m = np.asarray(mask, bool)
    f = np.where(m, np.nan_to_num(frac), 0.0).astype(np.float32)
    w = np.where(m, np.clip(density, 0.0, None), 0.0).astype(np.float32) ** 2
    tau = sigma = np.float32(1.0 / math.sqrt(12.0))
    x = f.copy()
    xb = x.copy()
    p = np.zeros((3,) + f.shape, np.float32)
    lam = np.float32(weight)
    denom = 1.0 + tau * w
    for _ in range(int(iterations)):
        p += sigma * _grad(xb)
        p /= np.maximum(np.sqrt(np.sum(p * p, axis=0)) / lam, np.float32(1.0))
        prev = x
        x = np.clip((x + tau * _div(p) + tau * w * f) / denom, 0.0, 1.0).astype(np.float32)
        xb = 2.0 * x - prev
    return np.where(m, x, np.float32(np.nan)).astype(np.float32)
