"""Tilt-angle refinement by projection matching: per-view corrections to the nominal tilt angles.

A goniometer's nominal tilt angles can be off by a few tenths of a degree (backlash, a stage that
settles after the move, a tilt scheme recorded rather than measured). A projection recorded at
θ + δ but reconstructed as θ is inconsistent with the others in a way no in-plane transform can
remove: material at distance r from the axis lands ``r δ`` away from where the volume puts it,
with a sign that depends on its depth. With a volume ``V`` reconstructed from the current
alignment, each view's correction follows from a Gauss–Newton step on

    Σ_p w(p) [A_i(p) − P_{θ_i + δ_i} V(p)]²,

``A_i`` the aligned projection (gain and offset matched to the reprojection), linearised in δ:
``P_{θ+δ} V ≈ P_θ V + δ ∂_θ P_θ V``. The derivative is exact for the projector's geometry
(DESIGN.md: a point (z, x) lands at ``u = x cos θ + z sin θ``):

    ∂_θ P_θ V (u) = −∂_u P_θ [v V] (u),   v = z cos θ − x sin θ  (the point's depth along the ray)

so ``∂_θ P_θ V = −∂_u (cos θ P_θ[zV] − sin θ P_θ[xV])``: two more projections at the *same*
angles (the projector's cached weights serve them) and a finite difference along u.

Gauge: a common offset of every angle is a rotation of the volume about the axis, which the data
cannot see; it is removed (weighted mean zero). A common *scale* of the angles is not a gauge and
is kept. Each view's estimate is shrunk towards zero by a Gaussian prior of width ``prior_deg``
(a ridge term), so views whose projections hardly change with angle (a cylinder seen along its
axis, the low-contrast views) stay where they are instead of following the noise.
"""

from __future__ import annotations

import numpy as np

from .. import tomo
from ..core.errors import InputError

__all__ = ["angle_derivative", "estimate_angle_corrections"]


def angle_derivative(volume, angles_deg, *, nu: int | None = None) -> np.ndarray:
    """``∂ P_θ V / ∂θ`` at every angle, per degree: (n_angles, ny, nu) float32.

    Parameters
    ----------
    volume : (ny, nz, nx) float
        The volume (DESIGN.md layout; axis along y, z the beam direction at 0°).
    angles_deg : (n_angles,) float
        Tilt angles, degrees.
    nu : int, optional
        Detector width (default nx), as in :func:`chemtomo.tomo.project`.

    Notes
    -----
    ``∂_θ P_θ V = −∂_u (cos θ P_θ[zV] − sin θ P_θ[xV])`` with x, z the voxel offsets from the
    volume's centre in pixels; the u-derivative is a central difference (one-sided at the
    detector's ends). Checked against a finite difference of :func:`chemtomo.tomo.project` in
    ``tests/align/test_angles.py``.
    """
    v = np.asarray(volume, np.float32)
    if v.ndim != 3:
        raise InputError(f"angle_derivative: volume must be (ny, nz, nx), got shape {v.shape}")
    _, nz, nx = v.shape
    th = np.deg2rad(np.asarray(angles_deg, np.float64)).reshape(-1, 1, 1)
    z = (np.arange(nz, dtype=np.float32) - (nz - 1) / 2.0)[None, :, None]
    x = (np.arange(nx, dtype=np.float32) - (nx - 1) / 2.0)[None, None, :]
    pz = tomo.project(v * z, angles_deg, nu=nu)
    px = tomo.project(v * x, angles_deg, nu=nu)
    depth = np.cos(th) * pz - np.sin(th) * px
    return (-np.gradient(depth, axis=2) * (np.pi / 180.0)).astype(np.float32)


def estimate_angle_corrections(aligned, reprojection, derivative, *, weight=None, prior_deg: float = 0.5,
                               keep=None, current=None) -> tuple[np.ndarray, np.ndarray]:
    """One Gauss–Newton step for per-view tilt-angle corrections, gauge (mean) removed.

    Parameters
    ----------
    aligned : (n, ny, nx) float
        Aligned projections, gain and offset matched to ``reprojection``; NaN where missing.
    reprojection : (n, ny, nx) float
        ``P_θ V`` at the current angles.
    derivative : (n, ny, nx) float
        ``∂_θ P_θ V`` per degree (:func:`angle_derivative`).
    weight : (ny, nx) float, optional
        Per-pixel weight (e.g. the registration's edge window); NaN pixels of ``aligned`` get 0.
    prior_deg : float
        Width of the Gaussian prior on each view's correction, degrees (the ridge term
        ``σ_i² / prior²``, σ_i² the view's residual variance per pixel).
    keep : (n,) bool, optional
        Views that take part (others get 0 and an infinite standard error).
    current : (n,) float, optional
        Corrections already applied (degrees): the prior holds the *total* ``current + δ`` near
        zero, so repeated steps on the same data do not random-walk.

    Returns
    -------
    (delta_deg (n,), stderr_deg (n,)): the step to add to the corrections (the weighted mean of
    ``current + δ`` over the kept views is zero) and each one's standard error from its residual
    variance.
    """
    a = np.asarray(aligned, np.float64)
    p = np.asarray(reprojection, np.float64)
    d = np.asarray(derivative, np.float64)
    if not (a.shape == p.shape == d.shape) or a.ndim != 3:
        raise InputError(f"estimate_angle_corrections: aligned {a.shape}, reprojection {p.shape} and "
                         f"derivative {d.shape} must be the same (n, ny, nx)")
    if not (prior_deg > 0):
        raise InputError(f"estimate_angle_corrections: prior_deg must be positive, got {prior_deg!r}")
    n = a.shape[0]
    w = np.ones(a.shape[1:]) if weight is None else np.asarray(weight, np.float64)
    ww = np.where(np.isfinite(a), w[None], 0.0)
    r = np.where(ww > 0, a - p, 0.0)
    sw = ww.sum(axis=(1, 2)) + 1e-30
    var = (ww * r * r).sum(axis=(1, 2)) / sw  # residual variance per pixel (model error + noise)
    dd = (ww * d * d).sum(axis=(1, 2))
    dr = (ww * d * r).sum(axis=(1, 2))
    var = np.maximum(var, 1e-30)
    info = dd / var + 1.0 / prior_deg ** 2
    c = np.zeros(n) if current is None else np.asarray(current, np.float64).reshape(n)
    delta = (dr / var - c / prior_deg ** 2) / info
    se = 1.0 / np.sqrt(info)
    k = np.ones(n, bool) if keep is None else np.asarray(keep, bool)
    delta = np.where(k, delta, 0.0)
    if k.any():
        wk = 1.0 / se[k] ** 2
        delta[k] -= (wk * (c[k] + delta[k])).sum() / wk.sum()
    return delta, np.where(k, se, np.inf)
