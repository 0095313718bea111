"""Tilt-axis angle: the in-plane direction of the rotation axis, by reprojection consistency.

A rotation axis that is not parallel to the detector's y axis by an angle φ cannot be corrected by
per-projection shifts: a point at height ``y`` above the field's centre is displaced across the
axis by about ``y φ (1 − cos θ)`` relative to where a vertical axis puts it, a different amount at
every tilt θ (4.9 px at 76° for 128 px and 3°). It is also not a gauge freedom of the alignment
(no change of the volume produces it), but the iterative reprojection alignment pins the common
in-plane rotation of all projections to its starting value, because near θ = 0 the data fix it
only weakly. :func:`estimate_tilt_axis` measures it directly: for trial angles it rotates every
projection by φ about the frame centre, reconstructs (SIRT, non-negative) and scores the
reprojection residual over a fixed central region; a parabola through the best trial and its
neighbours gives φ. Electron-microscope tilt series are routinely off by a few degrees (the
tilt-axis angle in the acquisition log is a nominal value).
"""

from __future__ import annotations

import logging

import numpy as np

from .. import tomo
from ..core.errors import InputError
from .transform import warp

__all__ = ["estimate_tilt_axis"]

log = logging.getLogger(__name__)


def _bin(t, b):
    n, ny, nx = t.shape
    return t[:, : ny // b * b, : nx // b * b].reshape(n, ny // b, b, nx // b, b).mean(axis=(2, 4))


def estimate_tilt_axis(tilt, angles_deg, shifts_px=None, *, centre_deg: float = 0.0, span_deg: float = 6.0,
                       step_deg: float = 1.0, binning: int = 2, recon_iterations: int = 20,
                       exclude=()) -> tuple[float, dict]:
    """In-plane rotation (degrees) that makes the tilt series' rotation axis parallel to y.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Raw projections (line integrals, background near zero), rotation axis near y.
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    shifts_px : (n_angles, 2) float, optional
        Per-projection shifts (the DESIGN convention, e.g. a coarse alignment's); zero if None.
    centre_deg, span_deg, step_deg : float
        Trial angles ``centre − span … centre + span`` in steps of ``step``; the answer is refined between trials
        by a parabola, so ``step`` need not be fine.
    binning : int
        Score on ``binning``×``binning``-binned projections (the angle is a global parameter;
        its effect grows with the field, not with the pixel count).
    recon_iterations : int
        SIRT iterations per trial.
    exclude : iterable of int
        Projections left out of every reconstruction and score.

    Returns
    -------
    (rotation_deg, scores) with ``scores`` = {trial angle: relative residual}. The rotation is
    the ``rotation_deg`` to give every projection (:class:`~.alignment.Alignment` convention).

    Raises
    ------
    InputError
        Shapes that do not agree, a non-positive span or step, or a best trial at the end of the
        span (the axis is further off than ``span_deg``: widen it).
    """
    t = np.nan_to_num(np.asarray(tilt, np.float32), nan=0.0)
    if t.ndim != 3:
        raise InputError(f"estimate_tilt_axis: tilt must be (n_angles, ny, nx), got shape {t.shape}")
    n = t.shape[0]
    angles = np.asarray(angles_deg, np.float64)
    if angles.shape != (n,):
        raise InputError(f"estimate_tilt_axis: {angles.size} angles for {n} projections")
    if not (span_deg > 0 and step_deg > 0 and step_deg <= span_deg):
        raise InputError(f"estimate_tilt_axis: need 0 < step_deg ≤ span_deg, got {step_deg}, {span_deg}")
    shifts = np.zeros((n, 2)) if shifts_px is None else np.asarray(shifts_px, np.float64).reshape(n, 2)
    b = max(1, int(binning))
    tb = _bin(t, b) if b > 1 else t
    sb = shifts / b
    keep = np.ones(n, bool)
    keep[list(exclude)] = False
    ones = np.ones(n)
    trials = float(centre_deg) + np.arange(-span_deg, span_deg + 1e-9, step_deg)
    # one region for every trial: pixels whose source is inside the raw field at every trial
    valid = np.ones(tb.shape, bool)
    for phi in trials:
        valid &= np.isfinite(warp(np.ones_like(tb), sb, phi * ones, ones, fill=np.nan))
    valid = valid[keep]
    scores = {}
    for phi in trials:
        aligned = warp(tb, sb, phi * ones, ones, fill=np.nan)[keep]
        rec = tomo.reconstruct(aligned, angles[keep], "sirt", int(recon_iterations), nonneg=True)
        rep = tomo.project(rec, angles[keep], nu=tb.shape[2])
        diff = np.where(valid, rep - aligned, 0.0)
        ref = np.where(valid, aligned, 0.0)
        scores[float(phi)] = float(np.sqrt((diff ** 2).sum() / max((ref ** 2).sum(), 1e-30)))
    r = np.array([scores[float(p)] for p in trials])
    k = int(np.argmin(r))
    if k == 0 or k == trials.size - 1:
        raise InputError(f"estimate_tilt_axis: the best trial angle {trials[k]:+.2f}° is at the end "
                         f"of the span ±{span_deg}°; widen span_deg")
    denom = r[k - 1] - 2 * r[k] + r[k + 1]
    frac = 0.5 * (r[k - 1] - r[k + 1]) / denom if denom > 0 else 0.0
    phi = float(trials[k] + np.clip(frac, -0.5, 0.5) * step_deg)
    log.info("tilt axis: in-plane rotation %+.2f° (residual %.4f at %+.2f°, %.4f at %+.2f°)", phi,
             r[k], trials[k], r[trials.size // 2], trials[trials.size // 2])
    return phi, scores
