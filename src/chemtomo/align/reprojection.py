"""Iterative reprojection alignment with similarity transforms (the paper's second alignment).

Repeat until self-consistent:

1. warp the raw projections with the current transforms (bilinear, :func:`~.transform.warp`);
   rays that come from outside the measured field are *missing* (NaN), not zero, so material
   that a shift pushed out of the field does not vanish from the volume;
2. reconstruct a volume from them with ``chemtomo.tomo.reconstruct`` (SIRT by default, 30
   iterations, non-negative, warm-started from the previous outer iteration's volume), leaving
   out excluded projections;
3. reproject the volume at *every* measured angle (``chemtomo.tomo.project``): the missing wedge
   needs no special care, since projections are only ever compared at angles that were measured;
4. register each raw projection onto its reprojection under a similarity transform with a fitted
   gain and offset (:func:`~.register.register_similarity`, robust to intensity drift), with a
   smooth window that fades rows and columns near the field's edges and zero weight where the
   transform reaches outside the raw field; registrations whose residual stands out from their
   neighbours' are restarted from phase correlation (a Levenberg–Marquardt fit can settle in a
   local minimum);
5. remove the gauge part of the change (what a rigid move, magnification or small affine
   deformation of the whole volume produces, which the data cannot see; see
   :func:`~.transform.gauge_basis`) so the volume stays where the coarse alignment put it;
6. flag projections whose residual is an outlier against their neighbours in angle and leave
   them out of later reconstructions (reported in ``Alignment.excluded``);
7. stop when no projection moved the sample's points by more than ``tol_px`` (RMS over the
   support of its reprojection).

Optionally the first iterations run on 2×2-binned projections (4× fewer pixels, 8× fewer
voxels), which removes the bulk of the misalignment cheaply on large projections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .. import tomo
from ..core.errors import InputError
from .alignment import Alignment, IterationRecord
from .angles import angle_derivative, estimate_angle_corrections
from .cluster import ClusterLevel
from .register import SimilarityFit, edge_window, register_similarity, register_translation
from .transform import grid, remove_gauge, warp

__all__ = ["reprojection_align", "ReprojectionOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReprojectionOptions:
    """Settings of :func:`reprojection_align`.

    iterations        : most outer iterations (reconstruct → reproject → register) at full
                        resolution
    algorithm         : name passed to ``chemtomo.tomo.reconstruct`` ("sirt", "art", ...)
    recon_iterations  : iterations of that algorithm per outer iteration
    tol_px            : stop when the largest RMS displacement of field points in one
                        iteration is below this, pixels
    similarity        : fit rotation and scale as well as translation (False: translation only)
    binned_iterations : most outer iterations on 2×2-binned data first (0: none); they stop
                        early once the update is below 0.1 binned pixel. Meant for large
                        projections; at 32×48 px it saves nothing (measured 0.03–0.06 px after
                        3 binned + 5 full iterations, 0.03–0.05 px after 5 full ones)
    outlier_mads      : a projection whose residual is this many median absolute deviations
                        above the median is excluded as bad
    outlier_ratio     : ... and more than this many times the neighbours' residual
    outlier_min_residual : ... and above this relative residual (a projection that matches its
                        reprojection to better than this is never called bad; unrelated content
                        gives ≈ 0.5–1)
    max_excluded      : largest fraction of projections that may be excluded as outliers
    edge_fraction     : fraction of each axis faded by the registration window on each side
    register_iter     : most Levenberg–Marquardt iterations per registration
    residual_rtol     : also stop when an iteration lowered the mean residual of the kept
                        projections by less than this fraction while its largest update was
                        under ten times ``tol_px`` (0: never). The update of a noisy series
                        can stay above ``tol_px`` while nothing improves any more: on the
                        paper preset the last four of twelve iterations moved the mean residual
                        by under 1 % in all and the error against the true misalignment by
                        0.002 px (``benchmarks/RESULTS.md``)
    warm_start        : start each reconstruction from the previous outer iteration's volume
                        (``x0`` of ``tomo.reconstruct``), so references sharpen as the alignment
                        settles
    refine_angles     : "off", "per_view" or "scale": from the second outer iteration of each
                        resolution on, also correct the tilt angles by projection matching
                        (:mod:`~.angles`): "per_view" gives every view its own correction
                        (Gaussian prior of width ``angle_prior_deg``, common offset removed: a
                        gauge); "scale" fits one common angular scale (``θ → θ + β(θ − θ̄)``, a
                        goniometer whose steps are off by a fixed fraction). Not with a client
                        or ``split``
    angle_prior_deg   : width of the prior on each view's angle correction, degrees
    split             : register each half of the projections (alternate angles) to the
                        reprojection of a volume made from the other half (see ``_reference``).
                        Measured worse (0.09–0.16 px against 0.03–0.05 px on the benchmark data):
                        the half-angle volumes are too poor a reference
    """

    iterations: int = 20
    algorithm: str = "sirt"
    recon_iterations: int = 30
    tol_px: float = 0.01
    similarity: bool = True
    binned_iterations: int = 0
    outlier_mads: float = 5.0
    outlier_ratio: float = 3.0
    outlier_min_residual: float = 0.25
    max_excluded: float = 0.2
    edge_fraction: float = 0.15
    register_iter: int = 30
    split: bool = False
    warm_start: bool = True
    residual_rtol: float = 0.0
    refine_angles: str = "off"
    angle_prior_deg: float = 0.5

    def check(self) -> None:
        if int(self.iterations) < 1:
            raise InputError(f"iterations must be at least 1, got {self.iterations!r}")
        if int(self.recon_iterations) < 1:
            raise InputError(f"recon_iterations must be at least 1, got {self.recon_iterations!r}")
        if not (self.tol_px > 0):
            raise InputError(f"tol_px must be positive, got {self.tol_px!r}")
        if int(self.binned_iterations) < 0:
            raise InputError(f"binned_iterations must be ≥ 0, got {self.binned_iterations!r}")
        if not (self.outlier_mads > 0):
            raise InputError(f"outlier_mads must be positive, got {self.outlier_mads!r}")
        if not (0 <= self.max_excluded < 1):
            raise InputError(f"max_excluded must be in [0, 1), got {self.max_excluded!r}")
        if not (0 <= self.residual_rtol < 1):
            raise InputError(f"residual_rtol must be in [0, 1), got {self.residual_rtol!r}")
        if self.refine_angles not in ("off", "per_view", "scale"):
            raise InputError(f"refine_angles must be 'off', 'per_view' or 'scale', got {self.refine_angles!r}")
        if not (self.angle_prior_deg > 0):
            raise InputError(f"angle_prior_deg must be positive, got {self.angle_prior_deg!r}")
        if self.refine_angles != "off" and self.split:
            raise InputError("refine_angles needs one volume from all projections; not with split=True")
        if not (0 <= self.edge_fraction < 0.5):
            raise InputError(f"edge_fraction must be in [0, 0.5), got {self.edge_fraction!r}")


def _bin2(tilt):
    n, ny, nx = tilt.shape
    t = tilt[:, : ny // 2 * 2, : nx // 2 * 2]
    return t.reshape(n, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4), dtype=np.float32)


def _interpolate_excluded(params, angles_deg, excluded):
    """Parameters of excluded projections interpolated in angle from the kept ones."""
    t, r, s = (p.copy() for p in params)
    bad = np.zeros(len(angles_deg), bool)
    bad[list(excluded)] = True
    if not bad.any() or bad.all():
        return t, r, s
    good = np.flatnonzero(~bad)
    order = good[np.argsort(angles_deg[good], kind="stable")]
    xa = angles_deg[order]
    for k in range(2):
        t[bad, k] = np.interp(angles_deg[bad], xa, t[order, k])
    r[bad] = np.interp(angles_deg[bad], xa, r[order])
    s[bad] = np.interp(angles_deg[bad], xa, s[order])
    return t, r, s


_REGISTER_BLOCK_BYTES = 256 << 20  # bound on the Jacobian of one registration call


def _register_chunked(reproj, tilt, params, window, opts):
    """:func:`~.register.register_similarity` over blocks of angles, so that its float64
    Jacobian (6 values per pixel per projection) stays under 256 MiB whatever the field size
    (each projection's fit is independent, so the result is the same as one call)."""
    n, ny, nx = tilt.shape
    size = max(1, int(_REGISTER_BLOCK_BYTES // (6 * 8 * ny * nx)))
    if size >= n:
        return register_similarity(reproj, tilt, init=params, weight=window, similarity=opts.similarity,
                                   max_iter=opts.register_iter)
    fits = [register_similarity(reproj[i0:i0 + size], tilt[i0:i0 + size],
                                init=tuple(p[i0:i0 + size] for p in params), weight=window,
                                similarity=opts.similarity, max_iter=opts.register_iter)
            for i0 in range(0, n, size)]
    cat = {name: np.concatenate([getattr(f, name) for f in fits])
           for name in ("shifts_px", "rotation_deg", "scale", "gain", "offset", "residual", "converged")}
    return SimilarityFit(**cat, iterations=max(f.iterations for f in fits))


def _reference(aligned, angles_deg, keep, opts, nx, volumes):
    """Reprojections to register against, one per measured angle.

    With ``opts.split`` the projections are split into two interleaved halves (alternate angles)
    and each half is compared with the reprojection of a volume reconstructed from the *other*
    half, so that no projection is compared with a reference it helped to make. With
    ``opts.warm_start`` each reconstruction starts from the previous outer iteration's volume
    (``volumes``, updated in place), so the references sharpen as the alignment converges.
    """
    n = aligned.shape[0]
    if opts.split:
        order = np.argsort(angles_deg, kind="stable")  # ties by index, on every CPU
        half = np.zeros(n, bool)
        half[order[::2]] = True
        parts = [(half, ~half & keep), (~half, half & keep)]
    else:
        parts = [(np.ones(n, bool), keep)]
    out = np.empty(aligned.shape, np.float32)
    for k, (target, use) in enumerate(parts):
        extra = {"x0": volumes[k]} if opts.warm_start and k in volumes else {}
        volume = tomo.reconstruct(aligned[use], angles_deg[use], algorithm=opts.algorithm,
                                  iterations=opts.recon_iterations, nonneg=True, **extra)
        volumes[k] = volume
        out[target] = tomo.project(volume, angles_deg[target], nu=nx)
    return out


def _support_update(shape, new, old, reproj):
    """Per angle, RMS displacement between two transforms over the sample's support (pixels
    where the reprojection exceeds a tenth of its maximum): how far the *content* moved. Over the
    whole field, rotation about the centre and translation trade off where there is nothing to
    see, and the field's empty corners would dominate.

    Both transforms are affine in the pixel offset ``v`` from the centre (``q = c + M v + t``),
    so the displacement is ``d(v) = D v + e`` with ``D = M_new − M_old`` and ``e = t_new − t_old``,
    and its mean square over the support follows exactly from the support's mean ``m`` and
    covariance ``C``: ``tr(D C Dᵀ) + |D m + e|²`` (two non-negative terms, no cancellation). This
    needs only the support's first and second moments, not the (2, n, ny, nx) coordinate arrays
    of both transforms: on the paper preset it was about 1 s of the client's serial time per outer
    iteration.

    Returns (n,) float64, pixels; 0 for an angle whose support is empty.
    """
    a = np.abs(reproj)
    support = a > 0.1 * a.max(axis=(1, 2), keepdims=True)
    vy, vx = grid(shape)
    count = support.sum(axis=(1, 2)).astype(np.float64)
    ys = support.sum(axis=2).astype(np.float64)  # (n, ny) support pixels per row
    xs = support.sum(axis=1).astype(np.float64)  # (n, nx) per column
    cy, cx = vy[:, 0], vx[0]
    safe = np.maximum(count, 1.0)
    my = ys @ cy / safe
    mx = xs @ cx / safe
    # second moments about the mean (float64; the offsets are at most half the field)
    syy = ys @ (cy * cy) / safe - my * my
    sxx = xs @ (cx * cx) / safe - mx * mx

    def matrix(params):
        phi = np.deg2rad(np.asarray(params[1], np.float64).reshape(-1))
        s = np.asarray(params[2], np.float64).reshape(-1)
        return s * np.cos(phi), s * np.sin(phi), np.asarray(params[0], np.float64).reshape(-1, 2)

    ca, sa, ta = matrix(new)
    cb, sb, tb = matrix(old)
    dc, ds = ca - cb, sa - sb
    e = ta - tb
    # D = [[dc, −ds], [ds, dc]] on (vy, vx) has DᵀD = (dc² + ds²)·I, so tr(D C Dᵀ) = (dc² + ds²)·tr(C)
    # (the covariance's off-diagonal term drops out)
    trace = (dc * dc + ds * ds) * (syy + sxx)
    mean_y = dc * my - ds * mx + e[:, 0]
    mean_x = ds * my + dc * mx + e[:, 1]
    ms = trace + mean_y * mean_y + mean_x * mean_x
    return np.where(count > 0, np.sqrt(np.maximum(ms, 0.0)), 0.0)


def _neighbour_scores(residual, angles_deg, keep):
    """For every kept projection: its residual's robust z-score against the median of its (up to
    6) nearest kept neighbours in angle, the ratio to that median, and the median itself.
    Entries of projections not kept are 0, 1 and their residual."""
    n = residual.size
    z, ratio, local_all = np.zeros(n), np.ones(n), residual.astype(np.float64).copy()
    kept = np.flatnonzero(keep)
    if kept.size < 3:
        return z, ratio, local_all
    order = kept[np.argsort(angles_deg[kept], kind="stable")]
    r = residual[order]
    m = len(order)
    local = np.array([np.median(np.delete(r[max(0, k - 3):min(m, k + 4)], min(k, 3))) for k in range(m)])
    dev = r - local
    mad = 1.4826 * np.median(np.abs(dev - np.median(dev))) + 1e-12
    z[order] = dev / mad
    ratio[order] = r / np.maximum(local, 1e-12)
    local_all[order] = local
    return z, ratio, local_all


def _restart_stuck(tilt, reproj, angles_deg, keep, fit, window, opts):
    """Register again, from a fresh start, the projections whose registration looks stuck.

    A Levenberg–Marquardt fit that starts from a poor transform can settle in a local minimum
    (typically a wrong rotation of a few degrees); its residual then stands out from its
    neighbours' (``outlier_mads`` MADs and 1.5 times). Those projections are registered again from
    the phase-correlation translation with no rotation and unit scale, and the result with the
    lower residual is kept.
    """
    z, ratio, _ = _neighbour_scores(fit.residual, angles_deg, keep)
    stuck = np.flatnonzero(keep & (z > opts.outlier_mads) & (ratio > 1.5))
    if stuck.size == 0:
        return fit
    k = stuck.size
    start = (register_translation(reproj[stuck], tilt[stuck], upsample=20).reshape(k, 2),
             np.zeros(k), np.ones(k))
    again = register_similarity(reproj[stuck], tilt[stuck], init=start, weight=window,
                                similarity=opts.similarity, max_iter=opts.register_iter)
    better = again.residual < fit.residual[stuck]
    log.info("restarted the registration of projections %s; %d improved", stuck.tolist(), int(better.sum()))
    fields = {}
    for name in ("shifts_px", "rotation_deg", "scale", "gain", "offset", "residual", "converged"):
        arr = getattr(fit, name).copy()
        arr[stuck[better]] = getattr(again, name)[better]
        fields[name] = arr
    return replace(fit, **fields)


def _flag_outliers(residual, angles_deg, keep, excluded, opts, step):
    """Exclude projections whose residual stands out from their neighbours' in angle.

    The residual grows smoothly with tilt (thicker sample, the missing wedge), so each residual is
    compared with the median of its (up to 6) nearest kept neighbours in angle; it is an outlier
    when it exceeds that by ``outlier_mads`` median absolute deviations of these differences, is
    more than ``outlier_ratio`` times it and is above ``outlier_min_residual``. (The extreme
    angles legitimately reach about twice their neighbours' residual: the reconstruction
    constrains them least.)
    """
    z, ratio, local = _neighbour_scores(residual, angles_deg, keep)
    room = int(opts.max_excluded * len(angles_deg)) - sum(
        1 for v in excluded.values() if v.startswith("residual"))
    cand = [i for i in np.argsort(-z, kind="stable") if keep[i] and z[i] > opts.outlier_mads
            and ratio[i] > opts.outlier_ratio and residual[i] > opts.outlier_min_residual]
    for i in cand[:max(room, 0)]:
        excluded[int(i)] = (f"residual {residual[i]:.3g} is {z[i]:.1f} MADs and {ratio[i]:.1f}x above "
                            f"its neighbours' {local[i]:.3g} (iteration {step})")


def _angle_step(tilt, fit, reproj, volume, angles_eff, keep, window, opts, current):
    """Tilt-angle corrections (degrees, per view) from the volume the registration used, and the
    RMS displacement (pixels) each correction moves the sample's points by.

    The registered projections (the fit's transform, gain and offset) are compared with the
    reprojection and its angle derivative (:func:`~.angles.estimate_angle_corrections`). A
    correction δ moves a point at depth v along the ray by ``v δ`` across the detector; the
    displacement reported is ``|δ|`` (radians) times the RMS distance from the axis of the
    support of the view's reprojection (the sample's extent)."""
    nx = tilt.shape[2]
    registered = warp(tilt, fit.shifts_px, fit.rotation_deg, fit.scale, fill=np.nan)
    matched = fit.gain[:, None, None] * registered + fit.offset[:, None, None]
    deriv = angle_derivative(volume, angles_eff, nu=nx)
    prior = opts.angle_prior_deg if opts.refine_angles == "per_view" else 1e3
    delta, se = estimate_angle_corrections(matched, reproj, deriv, weight=window, prior_deg=prior, keep=keep,
                                           current=current)
    if opts.refine_angles == "scale":
        th = angles_eff - np.average(angles_eff[keep], weights=1.0 / se[keep] ** 2)
        wk = np.where(keep, 1.0 / se ** 2, 0.0)
        beta = float((wk * th * delta).sum() / max((wk * th * th).sum(), 1e-30))
        delta = np.where(keep, beta * th, 0.0)
    a = np.abs(reproj)
    support = a > 0.1 * a.max(axis=(1, 2), keepdims=True)
    u = np.arange(nx) - (nx - 1) / 2.0
    cnt = np.maximum(support.sum(axis=(1, 2)), 1)
    radius = np.sqrt((support * u[None, None, :] ** 2).sum(axis=(1, 2)) / cnt)
    return delta, np.abs(np.deg2rad(delta)) * radius


def _run_level(tilt, angles_deg, params, reference, opts, excluded, history, binning,
               n_iter, tol_px, progress, step0, total, client=None, block_slices=None, corrections=None):
    """Outer iterations at one resolution; returns params, fit of the last iteration, steps,
    why it stopped ("tolerance", "residual" or "iterations") and the angle corrections (degrees,
    or None when the angles are not refined). Reconstructions and reprojections use
    ``angles_deg + corrections``."""
    n, ny, nx = tilt.shape
    refine = opts.refine_angles != "off"
    if refine and corrections is None:
        corrections = np.zeros(n)
    window = edge_window((ny, nx), fraction=opts.edge_fraction)
    volumes = {}
    # on a cluster: the raw projections and the window scattered once, the volume kept on the workers
    level = ClusterLevel(client, tilt, window, block_slices) if client is not None and not opts.split else None
    fit = None
    step = step0
    previous_residual = np.inf
    reason = "iterations"
    nominal = angles_deg
    for it in range(1, n_iter + 1):
        angles_deg = nominal + corrections if corrections is not None else nominal
        keep = np.ones(n, bool)
        keep[list(excluded)] = False
        # rays from outside the measured field are missing (NaN), not empty: the reconstruction
        # gives them no weight, so material pushed out of the field does not vanish from the volume
        if level is not None:  # the workers warp the rows they reconstruct
            reproj, fit = level.iterate(angles_deg, keep, params, opts, nx)
        else:
            aligned = warp(tilt, *params, fill=np.nan)
            reproj = _reference(aligned, angles_deg, keep, opts, nx, volumes)
            fit = _register_chunked(reproj, tilt, params, window, opts)
        fit = _restart_stuck(tilt, reproj, angles_deg, keep, fit, window, opts)
        new = (fit.shifts_px, fit.rotation_deg, fit.scale)
        new = remove_gauge((ny, nx), angles_deg, new, reference, similarity=opts.similarity,
                           common_rotation=opts.similarity,
                           weights=keep.astype(float))
        update = _support_update((ny, nx), new, params, reproj)
        if refine and (it >= 2 or binning == 1 and step0 > 0):
            delta, moved = _angle_step(tilt, fit, reproj, volumes[0], angles_deg, keep, window, opts,
                                       corrections)
            corrections = corrections + delta
            update = np.maximum(update, moved)
            log.info("tilt angles: corrections moved by up to %.3f° (now %+.3f … %+.3f°)",
                     float(np.abs(delta).max()), float(corrections.min()), float(corrections.max()))
        max_update = float(update[keep].max())
        params = new
        # bad projections: residual outliers (from the second iteration on, once the volume is
        # good enough for the residuals to mean something)
        if it >= 2 or binning == 1 and step0 > 0:
            _flag_outliers(fit.residual, angles_deg, keep, excluded, opts, step + 1)
        step += 1
        history.append(IterationRecord(step, params[0] * binning, params[1].copy(), params[2].copy(),
                                       fit.residual.copy(), max_update * binning, binning,
                                       None if corrections is None else corrections.copy()))
        log.info("reprojection alignment iteration %d (bin %d): largest update %.4f px, median "
                 "residual %.4f", step, binning, max_update * binning, float(np.median(fit.residual)))
        if progress is not None:
            progress(step, total)
        if max_update < tol_px:
            reason = "tolerance"
            break
        mean_residual = float(np.mean(fit.residual[keep]))
        if (opts.residual_rtol > 0 and it >= 2 and max_update < 10 * tol_px
                and previous_residual - mean_residual < opts.residual_rtol * previous_residual):
            log.info("reprojection alignment: the mean residual fell by less than %.2g %% (%.5f -> %.5f); "
                     "stopping at bin %d", 100 * opts.residual_rtol, previous_residual, mean_residual, binning)
            reason = "residual"
            break
        previous_residual = mean_residual
    return params, fit, step, reason, corrections


def reprojection_align(tilt, angles_deg, *, init: Alignment | None = None,
                       options: ReprojectionOptions | None = None, exclude=None,
                       progress: Callable[[int, int], None] | None = None, client=None,
                       block_slices: int | None = None) -> Alignment:
    """Align a tilt series by iterative reconstruction, reprojection and similarity registration.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Raw projections (line integrals, e.g. optical density), rotation axis along y.
    angles_deg : (n_angles,) float
        Tilt angles, degrees, in acquisition order.
    init : Alignment, optional
        Starting transforms, e.g. from :func:`~.coarse.coarse_align` (default: identity). The
        result keeps the volume position and size this start implies (gauge).
    options : ReprojectionOptions, optional
    exclude : {index: reason}, optional
        Projections known to be bad (blank, saturated); left out of every reconstruction.
    progress : callable(iteration, total), optional
        Called after every outer iteration.
    client : distributed.Client, optional
        Run each outer iteration's reconstruction and reprojection as Dask tasks over blocks of
        slices (``block_slices`` each; default ``tomo.operator.slice_blocks``: up to 96, at least
        one per worker thread) and the registrations as tasks over blocks of angles, on whatever
        cluster the client is connected
        to (a ``LocalCluster`` or a scheduler address). Same results as without a client, up to
        float32 rounding. Not with ``options.split``.

    Returns
    -------
    Alignment (method "reprojection"), with ``history`` holding the start and every iteration's
    parameters, residuals and largest update; ``excluded`` the projections left out and why;
    ``unconverged`` the projections whose last registration did not converge (their best
    transform so far was kept).

    References
    ----------
    D. Gürsoy et al., "Rapid alignment of nanotomography data using joint iterative
    reconstruction and reprojection", Sci. Rep. 7, 11818 (2017) (translation-only variant).
    """
    opts = options or ReprojectionOptions()
    opts.check()
    t = np.asarray(tilt, dtype=np.float32)
    if t.ndim != 3:
        raise InputError(f"reprojection_align: tilt must be (n_angles, ny, nx), got shape {t.shape}")
    n, ny, nx = t.shape
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.shape != (n,):
        raise InputError(f"reprojection_align: {angles.size} angles for {n} projections; "
                         "expected one angle per projection")
    excluded = dict(exclude or {})
    given = dict(excluded)
    if n - len(excluded) < 3:
        raise InputError(f"reprojection_align: {n - len(excluded)} usable projections of {n}; "
                         "at least 3 are needed to reconstruct and align")
    if not np.all(np.isfinite(t[[i for i in range(n) if i not in excluded]])):
        raise InputError("reprojection_align: tilt holds NaN or infinite values in projections "
                         "that are not excluded")
    t = np.where(np.isfinite(t), t, 0.0).astype(np.float32)
    if init is None:
        init = Alignment.identity(n)
    if init.n_angles != n:
        raise InputError(f"reprojection_align: init has {init.n_angles} angles, the tilt series {n}")
    params = init.params
    reference = params
    if opts.refine_angles != "off" and client is not None:
        raise InputError("reprojection_align: refine_angles needs the volume on the client; "
                         "run it without a client")
    corrections = None
    if init.angle_corrections_deg is not None:
        corrections = np.asarray(init.angle_corrections_deg, np.float64).reshape(n).copy()
    history = [IterationRecord(0, params[0].copy(), params[1].copy(), params[2].copy(),
                               np.full(n, np.nan), 0.0, 1)]
    total = int(opts.binned_iterations) + int(opts.iterations)
    step = 0
    if opts.binned_iterations > 0 and min(ny, nx) >= 16:
        tb = _bin2(t)
        # binning by 2 about the centre of an even-sized array maps shifts t → t/2 exactly
        pb = (params[0] / 2.0, params[1], params[2])
        rb = (reference[0] / 2.0, reference[1], reference[2])
        pb, _, step, _, corrections = _run_level(tb, angles, pb, rb, opts, excluded, history, 2,
                                                 int(opts.binned_iterations), 0.1, progress, 0, total,
                                                 client, block_slices, corrections)
        params = (pb[0] * 2.0, pb[1], pb[2])
    params, fit, step, reason, corrections = _run_level(t, angles, params, reference, opts, excluded, history, 1,
                                                        int(opts.iterations), float(opts.tol_px), progress,
                                                        step, total, client, block_slices, corrections)
    unconverged = {}
    for i in np.flatnonzero(~fit.converged):
        if int(i) not in excluded:
            unconverged[int(i)] = (f"similarity registration did not converge within "
                                   f"{opts.register_iter} iterations in the last pass; kept the "
                                   f"transform of lowest residual ({fit.residual[i]:.3g})")
    if reason == "iterations":
        log.warning("reprojection alignment stopped after %d iterations with a largest update of "
                    "%.3g px (tolerance %.3g px)", step, history[-1].max_update_px, opts.tol_px)
    # blank or saturated projections (given in ``exclude``) cannot be registered: interpolate;
    # residual outliers keep their own registration, the best estimate there is
    params = _interpolate_excluded(params, angles, given)
    return replace(init, shifts_px=params[0], rotation_deg=params[1], scale=params[2],
                   angles_deg=angles.copy(), shape=(ny, nx), excluded=excluded,
                   angle_corrections_deg=corrections,
                   unconverged=unconverged, history=history, method="reprojection")
