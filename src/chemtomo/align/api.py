"""``align``: the one entry point that aligns a (multi-energy) tilt series (DESIGN.md flow).

register_energies → combine the energies on the reference grid → coarse_align →
reprojection_align, all on the sum of the energies' optical densities (a valid tilt series of the
summed volume, with the dose of every energy), so one set of per-angle transforms serves all
energies and each energy adds only its offset.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

import numpy as np

from ..core.errors import InputError
from .alignment import Alignment
from .apply import apply
from .coarse import coarse_align
from .energies import (_pick_reference, check_tilts, keep_significant_scale, pixel_ratios, register_energies,
                       register_energies_similarity)
from .reprojection import ReprojectionOptions, reprojection_align
from .tilt_axis import estimate_tilt_axis

__all__ = ["align", "screen_projections"]

log = logging.getLogger(__name__)

_METHODS = ("reprojection", "coarse")


def screen_projections(tilt) -> dict:
    """Blank and saturated projections of a tilt series: ``{index: reason}``.

    * non-finite values (an optical density of a pixel that transmitted nothing);
    * blank: the projection's peak-to-peak range is below 1e-3 of the series' median range
      (no sample, a shutter that stayed closed, a failed reconstruction);
    * saturated: more than 5 % of the projection's pixels sit at its maximum value (a clipped
      detector or a clipped optical density).
    """
    t = np.asarray(tilt, np.float32)
    n = t.shape[0]
    out = {}
    flat = t.reshape(n, -1)
    finite = np.isfinite(flat)
    lo = np.where(finite, flat, np.inf).min(axis=1)
    hi = np.where(finite, flat, -np.inf).max(axis=1)
    ptp = np.where(finite.any(axis=1), hi - lo, 0.0)
    med = np.median(ptp)
    at_max = (np.where(finite, flat, -np.inf) >= hi[:, None]).sum(axis=1) / flat.shape[1]
    mx = hi
    for i in range(n):
        if not finite[i].all():
            out[i] = f"saturated: {int((~finite[i]).sum())} non-finite pixels"
        elif ptp[i] <= 1e-3 * med or ptp[i] == 0:
            out[i] = f"blank: range {ptp[i]:.3g} against the series' median {med:.3g}"
        elif at_max[i] > 0.05:
            out[i] = f"saturated: {100 * at_max[i]:.0f} % of pixels at the maximum {mx[i]:.3g}"
    return out


def align(tilts, angles_deg, *, pixel_m=None, reference_energy=None, method: str = "reprojection",
          iterations: int = 20, algorithm: str = "sirt", tol_px: float = 0.01,
          similarity: bool = True, options: ReprojectionOptions | None = None,
          progress: Callable[[int, int], None] | None = None, client=None,
          estimate_energy_scale: bool | str = False, tilt_axis: bool = False) -> Alignment:
    """Align a spectro-tomographic tilt series: per-angle similarity transforms + energy offsets.

    Parameters
    ----------
    tilts : {energy_eV: (n_angles, ny, nx) float}
        Raw projections (optical density) per energy, same angles and shape. A dict with one
        energy is an ordinary tilt series.
    angles_deg : (n_angles,) float, or {energy_eV: angles}
        Tilt angles, degrees, in acquisition order; must agree between energies.
    pixel_m : {energy_eV: float}, optional
        Pixel size per energy, metres; energies are resampled onto the reference energy's grid.
    reference_energy : float, optional
        The energy whose grid and frame the alignment uses (default: the lowest).
    method : "reprojection" or "coarse"
        "coarse" stops after the integer-pixel coarse alignment.
    iterations, algorithm, tol_px, similarity
        Most outer iterations, reconstruction algorithm for ``chemtomo.tomo.reconstruct``,
        convergence tolerance (pixels) and whether to fit rotation and scale; they override the
        same fields of ``options``.
    options : ReprojectionOptions, optional
        The remaining settings of the reprojection alignment, e.g. ``refine_angles`` ("per_view"
        or "scale": also correct the tilt angles by projection matching; the corrections are in
        ``Alignment.angle_corrections_deg``, reconstruct at ``Alignment.refined_angles_deg``).
    progress : callable(iteration, total), optional
    estimate_energy_scale : bool or "auto"
        True: estimate each energy's pixel-size ratio to the reference as well as its offset
        (:func:`~.energies.register_energies_similarity`; ``pixel_m``, if given, is the nominal
        size it corrects). For optics whose magnification changes with energy; on the held-out
        series of ``benchmarks/energy_registration.py`` (0.6–1.5 % pixel-size changes) it cuts the
        registration error from 0.27 px to ≤ 0.05 px. "auto": estimate it, and keep an energy's
        estimated ratio only where it differs from the nominal by more than 3 standard errors
        (else the nominal ratio is kept and the offset is estimated alone). The estimate is in
        ``Alignment.energy_registration`` and logged at INFO level (logger ``chemtomo.align.api``).
    tilt_axis : bool
        Estimate the in-plane angle of the rotation axis after the coarse alignment
        (:func:`~.tilt_axis.estimate_tilt_axis`) and start the reprojection alignment from it;
        then estimate it again with the refined shifts and, if it moved by more than 0.1°,
        run the reprojection alignment once more from there.
        The reprojection alignment keeps the common rotation of all projections where its start
        put it (near 0° the data fix it only weakly), so without this an axis that is a few
        degrees off the detector's y axis stays off. On etspy's measured HAADF-STEM series (axis
        ≈ 2.4° off) it takes chemtomo's residual from 1.06× to 0.98× etspy's
        (``benchmarks/stem_measured.py``).
    client : distributed.Client, optional
        Run the reconstructions and registrations of the reprojection alignment as Dask tasks
        (over blocks of slices and of angles) on the client's cluster; see
        :func:`~.reprojection.reprojection_align`. The energy registration with the scale
        estimated runs one task per energy (:func:`~.energies.register_energies_similarity`).

    Returns
    -------
    Alignment with ``energy_offsets_px`` for every energy (zero for the reference),
    ``energy_pixel_ratio``, ``excluded`` (blank, saturated and outlier projections, with the
    reason), ``unconverged`` and the iteration ``history``. Apply it with
    :func:`chemtomo.align.apply`.

    Raises
    ------
    InputError
        Energies whose tilt series differ in angles or shape, fewer than 3 angles (or fewer than
        3 usable projections), unknown method or reference energy.
    """
    energies, angles = check_tilts(tilts, angles_deg)
    if method not in _METHODS:
        raise InputError(f"method must be one of {_METHODS}, got {method!r}")
    opts = replace(options or ReprojectionOptions(), iterations=int(iterations), algorithm=algorithm,
                   tol_px=float(tol_px), similarity=bool(similarity))
    opts.check()
    ref_e = _pick_reference(energies, reference_energy)
    ratios = pixel_ratios(energies, ref_e, pixel_m)
    n, ny, nx = np.shape(tilts[ref_e])

    excluded = {}
    for e in energies:
        for i, why in screen_projections(tilts[e]).items():
            excluded.setdefault(i, f"{why} at {float(e)} eV")
    usable = n - len(excluded)
    if usable < 3:
        raise InputError(f"tilts: only {usable} of {n} projections are usable (excluded: "
                         f"{dict(sorted(excluded.items()))}); at least 3 are needed to align")

    if estimate_energy_scale not in (True, False, "auto"):
        raise InputError(f"estimate_energy_scale must be True, False or 'auto', got {estimate_energy_scale!r}")
    reg = None
    if len(energies) > 1 and estimate_energy_scale:
        try:
            reg = register_energies_similarity(tilts, angles, reference_energy=ref_e, pixel_m=pixel_m,
                                               exclude=excluded.keys(), n_groups=min(6, usable), client=client)
            if estimate_energy_scale == "auto":
                reg = keep_significant_scale(reg, tilts, angles, pixel_m=pixel_m, exclude=excluded.keys(),
                                             n_groups=min(6, usable))
        except InputError as exc:
            if estimate_energy_scale is True:
                raise
            # "auto": a field the scale cannot be measured on (a few rows, no common structure)
            # falls back to the offsets alone
            log.info("energy scale not estimated (%s); registering offsets only", exc)
            reg = None
    if reg is not None:
        log.info("%s", reg.summary())
        offsets, ratios = reg.offsets_px, reg.pixel_ratio
    elif len(energies) > 1:
        offsets = register_energies(tilts, angles, reference_energy=ref_e, pixel_m=pixel_m,
                                    exclude=excluded.keys())
    else:
        offsets = {ref_e: np.zeros(2)}
    # the energies' sum on the reference grid and frame: combined(x) = Σ_E raw_E(c + k_E(x − c + o_E))
    shifted = Alignment.identity(n, energy_offsets_px=offsets, energy_pixel_ratio=ratios,
                                 shape=(ny, nx))
    combined = np.zeros((n, ny, nx), np.float32)
    for e in energies:
        raw = np.nan_to_num(np.asarray(tilts[e], np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        combined += apply(raw, shifted, e)
    bad = sorted(excluded)
    combined[bad] = 0.0

    coarse = coarse_align(combined, angles, exclude=bad)
    coarse = replace(coarse, energy_offsets_px=offsets, energy_pixel_ratio=ratios,
                     reference_energy=float(ref_e), excluded=dict(excluded), energy_registration=reg)
    if tilt_axis:
        phi, _ = estimate_tilt_axis(combined, angles, coarse.shifts_px, exclude=bad,
                                    binning=2 if min(ny, nx) >= 64 else 1)
        coarse = replace(coarse, rotation_deg=np.full(n, phi))
    if method == "coarse":
        return coarse
    result = reprojection_align(combined, angles, init=coarse, options=opts, exclude=excluded,
                                progress=progress, client=client)
    if tilt_axis:
        # the first estimate rests on the coarse, whole-pixel shifts; with the refined ones the
        # residual's minimum is sharper: estimate again near it and, if it moved, align again.
        # Trials 1° apart (±2°): with 0.5° steps the three points of the parabola differ by
        # less than the residual's noise on a small series (tests/align/test_tilt_axis.py: 36
        # angles of 48 × 40 px, the estimate went from 3.02° to 2.55° against a true 3.0°)
        phi0 = float(np.median(result.rotation_deg))
        ang = angles if result.angle_corrections_deg is None else angles + result.angle_corrections_deg
        phi, _ = estimate_tilt_axis(combined, ang, result.shifts_px, exclude=sorted(result.excluded),
                                    centre_deg=phi0, span_deg=2.0, step_deg=1.0,
                                    binning=2 if min(ny, nx) >= 64 else 1)
        if abs(phi - phi0) > 0.1:
            start = replace(result, rotation_deg=result.rotation_deg + (phi - phi0))
            result = reprojection_align(combined, angles, init=start, options=opts,
                                        exclude=excluded, progress=progress, client=client)
    return replace(result, energy_offsets_px=offsets, energy_pixel_ratio=ratios,
                   reference_energy=float(ref_e), energy_registration=reg)
