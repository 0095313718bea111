"""The per-projection similarity transform of DESIGN.md and the bilinear warp it drives.

Convention (DESIGN.md, ``align.align``): the content at index position ``p = (y, x)`` of the
*aligned* projection sits in the *raw* one at

    q(p) = c + s·R(φ)·(p − c) + t (+ the energy's offset),     R(φ) = [[cos φ, −sin φ],
                                                                        [sin φ,  cos φ]]

with ``c = ((ny − 1)/2, (nx − 1)/2)`` the array centre, ``s`` the scale, ``φ`` the rotation and
``t = (dy, dx)`` the shift, all acting on (y, x) index vectors in pixels. Aligning a projection
is a *pull*: ``aligned(p) = raw(q(p))`` by bilinear interpolation (order 1), as in the paper.
Points whose ``q`` falls outside the raw array take a fill value (0 by default, right for optical
density: no sample outside the field).

Everything here is vectorised over the angles: the coordinates of a whole tilt series are built
at once and one ``scipy.ndimage.map_coordinates`` call warps the stack.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._kernels import affine_warp, bilinear_warp

__all__ = [
    "centre", "grid", "raw_coordinates", "warp", "warp_stack", "displacement_px",
    "inverse_params", "gauge_basis", "remove_gauge", "alignment_error_px",
]


def centre(shape) -> np.ndarray:
    """The array centre ``((ny − 1)/2, (nx − 1)/2)`` of an image of ``shape[-2:]``, pixels."""
    ny, nx = shape[-2:]
    return np.array([(ny - 1) / 2.0, (nx - 1) / 2.0])


def grid(shape) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets from the centre, ``(vy, vx)``, each (ny, nx) float64."""
    ny, nx = shape[-2:]
    c = centre(shape)
    vy, vx = np.meshgrid(np.arange(ny) - c[0], np.arange(nx) - c[1], indexing="ij")
    return vy, vx


def raw_coordinates(shape, shifts_px, rotation_deg, scale) -> np.ndarray:
    """Raw-array coordinates ``q(p)`` of every aligned pixel ``p``, for every angle.

    Parameters
    ----------
    shape : (ny, nx) of one projection
    shifts_px : (n, 2) float, (dy, dx) in pixels (an energy offset, if any, added in already)
    rotation_deg : (n,) float, degrees
    scale : (n,) float

    Returns
    -------
    q : (2, n, ny, nx) float64, row then column index into the raw projection
    """
    return _raw_at(shape, (shifts_px, rotation_deg, scale), *grid(shape))


def _raw_at(shape, params, vy, vx) -> np.ndarray:
    """``raw_coordinates`` at the points ``(vy, vx)`` (offsets from the centre): (2, n) + shape."""
    t = np.asarray(params[0], dtype=np.float64).reshape(-1, 2)
    phi = np.deg2rad(np.asarray(params[1], dtype=np.float64)).reshape(-1)
    s = np.asarray(params[2], dtype=np.float64).reshape(-1)
    extra = (1,) * np.ndim(vy)
    c = centre(shape)
    cos = (s * np.cos(phi)).reshape((-1,) + extra)
    sin = (s * np.sin(phi)).reshape((-1,) + extra)
    vy, vx = np.asarray(vy)[None], np.asarray(vx)[None]
    qy = c[0] + cos * vy - sin * vx + t[:, 0].reshape((-1,) + extra)
    qx = c[1] + sin * vy + cos * vx + t[:, 1].reshape((-1,) + extra)
    return np.stack([qy, qx])


def warp_stack(images, q, *, order: int = 1, fill: float = 0.0) -> np.ndarray:
    """Pull ``images[i](q[:, i])`` for every ``i`` in one interpolation call.

    images : (n, ny, nx) float; q : (2, n, ny_out, nx_out) raw coordinates (see
    :func:`raw_coordinates`). Returns (n, ny_out, nx_out) float32. The angle coordinate is an exact
    integer, so interpolation happens only within each image.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if order == 1:  # the alignment's warp: a compiled 2D bilinear pull (see ._kernels)
        return bilinear_warp(imgs, q, fill)
    n = imgs.shape[0]
    k = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], q.shape[1:])
    out = ndimage.map_coordinates(imgs, [k, q[0], q[1]], order=order, mode="constant",
                                  cval=fill, prefilter=order > 1, output=np.float32)
    return out


def warp(images, shifts_px, rotation_deg, scale, *, order: int = 1, fill: float = 0.0) -> np.ndarray:
    """Aligned stack ``aligned[i](p) = images[i](c + s_i R(φ_i)(p − c) + t_i)`` (bilinear)."""
    imgs = np.asarray(images, dtype=np.float32)
    if order == 1 and imgs.ndim == 3:  # the coordinates computed in the kernel (same bits, no (2, n, ny, nx) array)
        return affine_warp(imgs, shifts_px, rotation_deg, scale, fill)
    return warp_stack(imgs, raw_coordinates(imgs.shape[-2:], shifts_px, rotation_deg, scale),
                      order=order, fill=fill)


def inverse_params(shifts_px, rotation_deg, scale):
    """Parameters of the inverse transform: ``q⁻¹(x) = c + (1/s) R(−φ)(x − c − t)``.

    Returns (shifts_px (n, 2), rotation_deg (n,), scale (n,)). Warping a perfect projection with
    the inverse parameters produces the raw one that the forward parameters align.
    """
    t = np.asarray(shifts_px, dtype=np.float64).reshape(-1, 2)
    phi = np.deg2rad(np.asarray(rotation_deg, dtype=np.float64)).reshape(-1)
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    cos, sin = np.cos(phi), np.sin(phi)
    # −(1/s) Rᵀ t
    ty = -(cos * t[:, 0] + sin * t[:, 1]) / s
    tx = -(-sin * t[:, 0] + cos * t[:, 1]) / s
    return np.stack([ty, tx], axis=1), -np.rad2deg(phi), 1.0 / s


def displacement_px(shape, params_a, params_b, *, mask=None) -> np.ndarray:
    """RMS over the field of ``|q_a(p) − q_b(p)|`` per angle, pixels.

    ``params_*`` are (shifts_px, rotation_deg, scale) tuples. ``mask`` (ny, nx) bool limits the
    points that count (default: every pixel). This is how far each pixel's content moves between
    the two transforms, the quantity that matters for a reconstruction, in one unit for
    translation, rotation and scale alike.
    """
    qa = raw_coordinates(shape, *params_a)
    qb = raw_coordinates(shape, *params_b)
    d2 = ((qa - qb) ** 2).sum(axis=0)  # (n, ny, nx)
    if mask is not None:
        d2 = d2[:, np.asarray(mask, bool)]
    return np.sqrt(d2.reshape(d2.shape[0], -1).mean(axis=1))


def _gauge_fields(angles_deg, similarity: bool, common_rotation: bool, vy, vx):
    """Aligned-frame displacement fields (hy, hx) of the gauge freedoms at the points
    ``(vy, vx)`` (offsets from the centre, any shape), each (n,) + that shape."""
    vy, vx = np.asarray(vy, np.float64)[None], np.asarray(vx, np.float64)[None]
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64)).reshape((-1,) + (1,) * (vy.ndim - 1))
    one = np.ones_like(th) * np.ones_like(vy)
    zero = np.zeros_like(one)
    fields = [
        (one, zero),                                  # volume shift along the axis
        (zero, np.cos(th) * one),                     # volume shift along x
        (zero, np.sin(th) * one),                     # volume shift along z
        (vy * one, vx * one),                         # uniform magnification of the volume
    ]
    if similarity:
        fields += [
            (np.cos(2 * th) * vy, np.cos(2 * th) * vx),   # stretch x against z
            (np.sin(2 * th) * vy, np.sin(2 * th) * vx),   # shear x–z
            (-np.cos(th) * vx, np.cos(th) * vy),          # tilt of the volume about z
            (-np.sin(th) * vx, np.sin(th) * vy),          # tilt of the volume about x
        ]
    if common_rotation:
        fields.append((-vx * one, vy * one))              # one in-plane rotation for all angles
    return fields


def _basis_at(angles_deg, params, similarity, common_rotation, vy, vx) -> np.ndarray:
    """Raw-frame gauge fields at the points ``(vy, vx)``: (k, 2, n) + their shape."""
    _, rot, s = params
    extra = (1,) * np.ndim(vy)
    phi = np.deg2rad(np.asarray(rot, dtype=np.float64)).reshape((-1,) + extra)
    sc = np.asarray(s, dtype=np.float64).reshape((-1,) + extra)
    out = []
    for hy, hx in _gauge_fields(angles_deg, similarity, common_rotation, vy, vx):
        out.append(np.stack([sc * (np.cos(phi) * hy - np.sin(phi) * hx),
                             sc * (np.sin(phi) * hy + np.cos(phi) * hx)]))
    return np.stack(out)


def gauge_basis(shape, angles_deg, params, *, similarity: bool = True,
                common_rotation: bool = False) -> np.ndarray:
    """Raw-frame displacement fields of the alignment's gauge freedoms, (k, 2, n, ny, nx).

    A tilt series aligned to a common axis explains the data equally well when every projection
    is moved, in its aligned frame, by what a change of the *volume* produces:

    * a rigid shift: dy the same at every angle, dx = a cos θ + b sin θ;
    * a uniform magnification κ (p − c) (with a fitted intensity gain);
    * with similarity transforms, the similarity part of an affine volume deformation: a scale
      varying as cos 2θ and sin 2θ (stretch and shear in the slice) and an in-plane rotation
      varying as cos θ and sin θ (tilts of the volume about z and x). Their remaining,
      depth-dependent parts constrain them only weakly, so they are pinned rather than fitted.

    ``common_rotation`` adds one in-plane rotation shared by all angles (a tilted rotation axis),
    which the data fix only weakly. In the raw frame each field moves by ``s R(φ)`` times its
    aligned-frame displacement; ``q`` is affine in p, so this is exact for the shifts and first
    order for the rest.
    """
    vy, vx = grid(shape)
    return _basis_at(angles_deg, params, similarity, common_rotation, vy, vx)


#: Three points that fix an affine function of (vy, vx): its value at 0 and its two slopes.
_AFFINE_POINTS = (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))


def _affine(values: np.ndarray) -> np.ndarray:
    """Coefficients (c0, ∂/∂vy, ∂/∂vx) along a new last axis of an affine function sampled at
    ``_AFFINE_POINTS`` (last axis of ``values``)."""
    return np.stack([values[..., 0], values[..., 1] - values[..., 0], values[..., 2] - values[..., 0]], axis=-1)


def remove_gauge(shape, angles_deg, params, reference_params, *, similarity: bool = True,
                 common_rotation: bool = False, weights=None):
    """``params`` with the gauge part of their difference from ``reference_params`` removed.

    Fits the raw-frame displacement ``q(p) − q_ref(p)`` by the gauge fields of
    :func:`gauge_basis` (least squares over all pixels and angles, each angle weighted by
    ``weights``) and composes each projection's transform with the opposite aligned-frame motion,
    ``q(p) → q(p − h(p))``, so that the volume keeps the position, size and shape the reference
    gave it. Returns (shifts_px, rotation_deg, scale).

    Every field and the displacement are affine in the pixel position, so the sums over pixels
    of the normal equations are exact in the grid's moments (Σ1, Σvy, Σvx, Σvy², Σvy·vx, Σvx²):
    nothing is evaluated per pixel (on the paper's 158 projections of 170×274 px the dense
    least-squares fit took 11 s per call, this takes milliseconds).
    """
    t, rot, s = (np.array(params[0], np.float64).reshape(-1, 2), np.array(params[1], np.float64),
                 np.array(params[2], np.float64))
    py, px = _AFFINE_POINTS
    basis = _affine(_basis_at(angles_deg, (t, rot, s), similarity, common_rotation, py, px))  # (k, 2, n, 3)
    d = _affine(_raw_at(shape, (t, rot, s), py, px) - _raw_at(shape, reference_params, py, px))  # (2, n, 3)
    vy, vx = grid(shape)
    mom = np.array([[vy.size, vy.sum(), vx.sum()],
                    [vy.sum(), (vy * vy).sum(), (vy * vx).sum()],
                    [vx.sum(), (vy * vx).sum(), (vx * vx).sum()]])
    w = np.ones(basis.shape[2]) if weights is None else np.asarray(weights, np.float64)
    # Σ_angles w Σ_components Σ_pixels f_a f_b = Σ w · coef_aᵀ M coef_b
    bm = np.einsum("acnu,uv->acnv", basis, mom)
    normal = np.einsum("acnv,bcnv,n->ab", bm, basis, w)
    rhs = np.einsum("acnv,cnv,n->a", bm, d, w)
    coef, *_ = np.linalg.lstsq(normal, rhs, rcond=None)
    # h(p) is affine in p per angle: h = g + κ (p − c) + α J (p − c); read g, κ, α off it
    fields = _gauge_fields(angles_deg, similarity, common_rotation, py, px)
    hy = _affine(sum(c * f[0] for c, f in zip(coef, fields)))  # (n, 3): value at the centre, slopes
    hx = _affine(sum(c * f[1] for c, f in zip(coef, fields)))
    kappa = 0.5 * (hy[:, 1] + hx[:, 2])  # ∂hy/∂y and ∂hx/∂x
    alpha = hx[:, 1]                     # ∂hx/∂y
    gy, gx = hy[:, 0], hx[:, 0]
    phi = np.deg2rad(rot)
    # q(c + (1 − κ) R(−α)(p − c) − g) = c + s(1 − κ) R(φ − α)(p − c) + t − s R(φ) g
    t_new = t.copy()
    t_new[:, 0] -= s * (np.cos(phi) * gy - np.sin(phi) * gx)
    t_new[:, 1] -= s * (np.sin(phi) * gy + np.cos(phi) * gx)
    return t_new, rot - np.rad2deg(alpha), s * (1.0 - kappa)


def alignment_error_px(shape, angles_deg, estimate, truth, *, similarity: bool = True,
                       common_rotation: bool = True, mask=None) -> float:
    """RMS displacement error of an alignment against the truth, gauge removed, pixels.

    ``estimate`` and ``truth`` are (shifts_px, rotation_deg, scale) tuples. The estimate is first
    moved along the gauge freedoms (:func:`gauge_basis`; ``similarity`` adds the similarity part
    of affine volume deformations, ``common_rotation`` one rotation shared by all angles) that best match it to the truth; what is left is measured as the RMS over
    all angles and all points of the field (``mask``) of ``|q_est(p) − q_true(p)|``. Displacement
    of points is the right measure: it puts translation, rotation and scale errors in one unit
    (pixels), weighs a rotation error by how far from the centre the sample reaches, and is
    invariant to how the parameters trade off (a rotation about the centre versus a shift).
    """
    fixed = remove_gauge(shape, angles_deg, estimate, truth, similarity=similarity,
                         common_rotation=common_rotation)
    d = displacement_px(shape, fixed, truth, mask=mask)
    return float(np.sqrt(np.mean(d ** 2)))
