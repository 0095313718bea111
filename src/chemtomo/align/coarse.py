"""Coarse alignment: integer-pixel translations with a capture range of the whole field.

Three measurements, each robust where the others are weak:

* **vertical mass profile** (dy): the projection's sum along x, ``P(y) = Σ_x OD(y, x)``, is the
  same at every angle when the whole sample is in the field (the rotation axis is along y, so
  tilting moves mass only along x). Each profile is cross-correlated with the mean profile, so a
  shift of any size within the field is found.
* **centre of mass** (dx, and the rotation centre): an object's centre of mass projects to
  ``x_cm(θ) = a cos θ + b sin θ + c``; the fit's ``c`` is the centre of rotation's offset from the
  array centre, and each projection's deviation from the fitted sinusoid is its horizontal shift.
  Any ``a cos θ + b sin θ`` is an equally valid choice (it only places the volume), so the fitted
  one is kept.
* **neighbour cross-correlation** (chained): where mass is not conserved (sample leaving the field
  at high tilt), the shift is carried from the nearest trusted projections along the chain of
  neighbour-to-neighbour phase correlations, anchored at both ends of each gap (the closure error
  is spread linearly over the gap: drift control).
"""

from __future__ import annotations

import logging

import numpy as np

from ..core.errors import InputError
from .alignment import Alignment, IterationRecord
from .register import register_translation

__all__ = ["coarse_align", "centre_of_rotation_px", "sample_mass"]

log = logging.getLogger(__name__)


def sample_mass(tilt) -> np.ndarray:
    """Background-free, noise-thresholded mass images, (n, ny, nx) float32.

    The background of each projection is the median of its one-pixel border; pixels less than
    3 noise sigmas (from the border's median absolute deviation) above it count as empty, so that
    neither an intensity offset nor noise biases centres of mass.
    """
    t = np.asarray(tilt, dtype=np.float32)
    border = np.concatenate([t[:, 0, :], t[:, -1, :], t[:, 1:-1, 0], t[:, 1:-1, -1]], axis=1)
    bg = np.median(border, axis=1)
    sigma = 1.4826 * np.median(np.abs(border - bg[:, None]), axis=1)
    m = t - bg[:, None, None]
    return np.where(m > 3.0 * sigma[:, None, None], m, 0.0).astype(np.float32)


def _fit_sinusoid(theta_rad, values, keep):
    """Least-squares ``a cos θ + b sin θ + c`` on ``keep``, with one 3-MAD outlier rejection."""
    a_mat = np.stack([np.cos(theta_rad), np.sin(theta_rad), np.ones_like(theta_rad)], axis=1)
    use = keep.copy()
    coef = np.zeros(3)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(a_mat[use], values[use], rcond=None)
        res = values - a_mat @ coef
        mad = 1.4826 * np.median(np.abs(res[use] - np.median(res[use]))) + 1e-9
        new = keep & (np.abs(res) < max(3.0 * mad, 1.0))
        if new.sum() < 3 or np.array_equal(new, use):
            break
        use = new
    return coef


def centre_of_rotation_px(tilt, angles_deg) -> float:
    """Offset of the rotation axis from the array centre along x, pixels, by the centre-of-mass
    sinusoid ``x_cm(θ) = a cos θ + b sin θ + c`` (returns ``c``).

    Valid when the sample stays in the field; projections that lose mass are left out of the fit.
    """
    m = sample_mass(tilt)
    theta = np.deg2rad(np.asarray(angles_deg, np.float64))
    x_cm, _, trusted = _centres(m)
    return float(_fit_sinusoid(theta, x_cm, trusted)[2])


def _centres(m):
    n, ny, nx = m.shape
    mass = m.sum(axis=(1, 2)).astype(np.float64)
    safe = np.maximum(mass, 1e-30)
    cx = (nx - 1) / 2.0
    x_cm = (m.sum(axis=1) @ np.arange(nx)) / safe - cx
    med = np.median(mass[mass > 0]) if np.any(mass > 0) else 0.0
    trusted = (mass > 0) & (np.abs(mass / max(med, 1e-30) - 1.0) < 0.1)
    return x_cm, mass, trusted


def _profile_shifts(m, use, n_rounds: int = 3):
    """dy per projection by cross-correlating vertical mass profiles with their aligned mean."""
    n, ny, _ = m.shape
    prof = m.sum(axis=2).astype(np.float64)  # (n, ny)
    y = np.arange(ny)
    mass = np.maximum(prof.sum(axis=1), 1e-30)
    dy = prof @ y / mass
    dy = dy - np.median(dy[use])
    size = 2 * ny
    fp = np.fft.rfft(prof, size, axis=1)
    for _ in range(n_rounds):
        # mean profile in the aligned frame: shift each by −dy (Fourier shift, zero-padded)
        k = np.fft.rfftfreq(size)
        shifted = np.fft.irfft(fp * np.exp(2j * np.pi * k[None, :] * dy[:, None]), size, axis=1)
        ref = shifted[use].mean(axis=0)
        xc = np.fft.irfft(fp * np.conj(np.fft.rfft(ref, size))[None, :], size, axis=1)  # peak at +dy
        i = xc.argmax(axis=1)
        left, mid, right = xc[np.arange(n), i - 1], xc[np.arange(n), i], xc[np.arange(n), (i + 1) % size]
        denom = left - 2 * mid + right
        frac = np.where(np.abs(denom) > 1e-30, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
        lag = np.where(i > size // 2, i - size, i) + np.clip(frac, -0.5, 0.5)
        dy = lag - np.median(lag[use])
    return dy


def _bridge(shift, trusted, neighbour, order):
    """Fill untrusted projections by chaining neighbour shifts from the trusted ones around them.

    ``neighbour[k]`` is the shift of projection ``order[k]`` relative to ``order[k − 1]``.
    Each gap between trusted projections is walked from both ends and the two chains are blended
    linearly, which spreads the chain's closure error over the gap.
    """
    out = shift.copy()
    tr = trusted[order]
    n = len(order)
    anchors = np.flatnonzero(tr)
    if anchors.size == 0:
        k0 = int(np.argmin(np.abs(np.arange(n) - n // 2)))
        anchors = np.array([k0])
        out[order[k0]] = 0.0
    cum = np.concatenate([[np.zeros(2)], np.cumsum(neighbour[1:], axis=0)])  # chain position of each k
    for k in range(n):
        if tr[k] or (anchors.size == 1 and k == anchors[0]):
            continue
        left = anchors[anchors < k]
        right = anchors[anchors > k]
        ests, wts = [], []
        if left.size:
            j = left[-1]
            ests.append(out[order[j]] + cum[k] - cum[j])
            wts.append(1.0 / (k - j))
        if right.size:
            j = right[0]
            ests.append(out[order[j]] + cum[k] - cum[j])
            wts.append(1.0 / (j - k))
        out[order[k]] = np.average(np.array(ests), axis=0, weights=np.array(wts))
    return out


def coarse_align(tilt, angles_deg, *, integer: bool = True, exclude=None) -> Alignment:
    """Integer-pixel translations that bring a tilt series onto a common rotation axis.

    Parameters
    ----------
    tilt : (n_angles, ny, nx) float
        Raw projections (optical density or any other line integral: non-negative, background
        near a constant).
    angles_deg : (n_angles,) float
        Tilt angles, degrees, in acquisition order.
    integer : bool
        Round the shifts to whole pixels (the paper's coarse step); False keeps the sub-pixel
        estimates.
    exclude : iterable of int, optional
        Projections to ignore (blank, saturated); their shifts are interpolated in angle.

    Returns
    -------
    Alignment with ``shifts_px`` set (rotation 0, scale 1), ``method="coarse"``; the centre of
    rotation offset, pixels, is folded into the dx shifts (the aligned series rotates about the
    array centre).

    Notes
    -----
    Capture range: any shift that keeps the sample within the field (the mass measurements do not
    depend on how far the sample moved), so shifts of a fifth of the field and beyond are found.
    """
    t = np.asarray(tilt, dtype=np.float32)
    if t.ndim != 3:
        raise InputError(f"coarse_align: tilt must be (n_angles, ny, nx), got shape {t.shape}")
    theta_deg = np.asarray(angles_deg, dtype=np.float64)
    if theta_deg.shape != (t.shape[0],):
        raise InputError(f"coarse_align: {theta_deg.size} angles for {t.shape[0]} projections; "
                         "expected one angle per projection")
    n = t.shape[0]
    if n < 3:
        raise InputError(f"coarse_align: at least 3 projections are needed, got {n}")
    skip = np.zeros(n, bool)
    if exclude is not None:
        skip[np.asarray(list(exclude), dtype=int)] = True
    t = np.where(np.isfinite(t), t, 0.0).astype(np.float32)
    theta = np.deg2rad(theta_deg)
    m = sample_mass(t)
    x_cm, mass, trusted = _centres(m)
    trusted &= ~skip
    if trusted.sum() < 3:
        log.warning("coarse_align: fewer than 3 projections keep the sample's mass in the field; "
                    "aligning by neighbour cross-correlation alone")
    use = trusted if trusted.sum() >= 3 else ~skip
    coef = _fit_sinusoid(theta, x_cm, use)
    dx = x_cm - (coef[0] * np.cos(theta) + coef[1] * np.sin(theta))
    dy = _profile_shifts(m, use)
    shift = np.stack([dy, dx], axis=1)

    # neighbour phase correlation along the angle order, for projections that lose mass
    order = np.argsort(theta_deg, kind="stable")  # equal angles keep their index order
    if np.any(~trusted & ~skip):
        ok = order[~skip[order]]
        pairs = register_translation(t[ok[:-1]], t[ok[1:]], upsample=4)
        nb = np.zeros((ok.size, 2))
        nb[1:] = pairs
        trusted_ok = trusted[ok]
        filled = _bridge(shift[ok], trusted_ok if trusted.sum() >= 3 else np.zeros(ok.size, bool),
                         nb, np.arange(ok.size))
        shift[ok] = filled
    if skip.any():
        keep = np.flatnonzero(~skip)
        for axis in range(2):
            shift[skip, axis] = np.interp(theta_deg[skip], theta_deg[keep][np.argsort(theta_deg[keep], kind="stable")],
                                          shift[keep, axis][np.argsort(theta_deg[keep], kind="stable")])
    if integer:
        shift = np.round(shift)
    rec = IterationRecord(0, shift.copy(), np.zeros(n), np.ones(n), np.full(n, np.nan), 0.0)
    log.info("coarse_align: rotation centre %.2f px from the array centre; %d of %d projections "
             "keep their mass in the field", coef[2], int(trusted.sum()), n)
    return Alignment(shifts_px=shift, rotation_deg=np.zeros(n), scale=np.ones(n),
                     angles_deg=theta_deg.copy(), shape=tuple(t.shape[1:]), history=[rec],
                     method="coarse")
