"""Compiled (numba) bilinear warp of image stacks, the inner loop of the alignment.

``scipy.ndimage.map_coordinates`` on an (n, ny, nx) stack interpolates in three dimensions (the
integer angle coordinate included, 8 neighbours instead of 4) and first copies the coordinate
list into one (3, n, ny, nx) float64 array; at the paper's size (158 × 170 × 274) that made the
warps of the similarity registration its largest cost. This kernel does the same pull,
``out[i, p] = image_i(q[:, i, p])``, with 2D bilinear weights, parallel over the images, with
``map_coordinates``' ``mode="constant"`` rule: a point outside ``[0, ny − 1] × [0, nx − 1]``
takes the fill value, a point inside interpolates between in-range pixels only.

``affine_warp`` is the same pull for the similarity transform of ``transform.py``, with each
pixel's raw coordinates computed in the loop from the transform's few numbers instead of read
from a (2, n, ny, nx) float64 coordinate array: at the paper's size that array is 118 MB per
warp, and building it (``transform.raw_coordinates``) cost five times the interpolation itself.
The coordinates are computed with the same float64 operations in the same order as
``raw_coordinates``, so both paths give the same bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["affine_warp", "affine_warp3", "bilinear_warp", "cubic_coefficients", "cubic_taps", "gain_offset_fit",
           "normal_equations", "pooled_phase_correlation", "separable_cubic"]


@njit(inline="always", cache=True)
def _bilinear(img, y, x):
    """``img`` at the in-range point ``(y, x)`` (``0 ≤ y ≤ ny − 1``, ``0 ≤ x ≤ nx − 1``), bilinearly
    between in-range pixels only; float64. The one interpolation of every warp in this module."""
    ny, nx = img.shape
    y0 = min(int(math.floor(y)), ny - 2) if ny > 1 else 0
    x0 = min(int(math.floor(x)), nx - 2) if nx > 1 else 0
    fy = y - y0
    fx = x - x0
    y1 = min(y0 + 1, ny - 1)
    x1 = min(x0 + 1, nx - 1)
    return ((1.0 - fy) * ((1.0 - fx) * img[y0, x0] + fx * img[y0, x1])
            + fy * ((1.0 - fx) * img[y1, x0] + fx * img[y1, x1]))


@njit(parallel=True, cache=True)
def _warp(imgs, qy, qx, fill, out):
    n, ny, nx = imgs.shape
    my, mx = qy.shape[1], qy.shape[2]
    for i in prange(n):
        img = imgs[i]
        for a in range(my):
            for b in range(mx):
                y = qy[i, a, b]
                x = qx[i, a, b]
                if not (y >= 0.0 and y <= ny - 1 and x >= 0.0 and x <= nx - 1):
                    out[i, a, b] = fill
                    continue
                out[i, a, b] = _bilinear(img, y, x)


@njit(parallel=True, cache=True)
def _affine(imgs, c0, c1, cosv, sinv, ty, tx, ratio, row0, fill, out):
    n, ny, nx = imgs.shape
    my, mx = out.shape[1], out.shape[2]
    for i in prange(n):
        img = imgs[i]
        ci, si, ti, ui = cosv[i], sinv[i], ty[i], tx[i]
        for a in range(my):
            vy = (a + row0) - c0
            for b in range(mx):
                vx = b - c1
                # the expression of transform._raw_at, term for term (same rounding)
                y = c0 + ci * vy - si * vx + ti
                x = c1 + si * vy + ci * vx + ui
                if ratio != 1.0:
                    y = c0 + ratio * (y - c0)
                    x = c1 + ratio * (x - c1)
                if not (y >= 0.0 and y <= ny - 1 and x >= 0.0 and x <= nx - 1):
                    out[i, a, b] = fill
                    continue
                out[i, a, b] = _bilinear(img, y, x)


def affine_warp(images: np.ndarray, shifts_px, rotation_deg, scale, fill: float = 0.0,
                ratio: float = 1.0, rows: tuple[int, int] | None = None) -> np.ndarray:
    """``out[i](p) = images[i](c + s_i R(φ_i)(p − c) + t_i)`` bilinearly, then, when ``ratio`` is
    not 1, about the centre scaled by ``ratio`` (``c + ratio (q − c)``, an energy's pixel ratio).

    images (n, ny, nx); shifts_px (n, 2); rotation_deg, scale (n,). Returns (n, ny, nx) float32,
    the same bits as ``bilinear_warp(images, raw_coordinates(...))``; with ``rows = (r0, r1)``
    only the aligned rows ``r0:r1`` (n, r1 − r0, nx), the same bits as those rows of the whole.
    """
    imgs = np.ascontiguousarray(images, dtype=np.float32)
    n, ny, nx = imgs.shape
    t = np.asarray(shifts_px, dtype=np.float64).reshape(-1, 2)
    phi = np.deg2rad(np.asarray(rotation_deg, dtype=np.float64)).reshape(-1)
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    cosv = np.ascontiguousarray(np.broadcast_to(s * np.cos(phi), (n,)))
    sinv = np.ascontiguousarray(np.broadcast_to(s * np.sin(phi), (n,)))
    ty = np.ascontiguousarray(np.broadcast_to(t[:, 0], (n,)))
    tx = np.ascontiguousarray(np.broadcast_to(t[:, 1], (n,)))
    r0, r1 = (0, ny) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= r0 <= r1 <= ny:
        raise ValueError(f"rows must lie within 0..{ny}, got {rows!r}")
    out = np.empty((n, r1 - r0, nx), np.float32)
    _affine(imgs, (ny - 1) / 2.0, (nx - 1) / 2.0, cosv, sinv, ty, tx, float(ratio), r0, np.float32(fill), out)
    return out


@njit(parallel=True, cache=True)
def _affine3(imgs, gys, gxs, idx, c0, c1, cosv, sinv, ty, tx, m, my, mx, inside):
    _, ny, nx = imgs.shape
    k, oy, ox = m.shape
    for j in prange(k):
        i = idx[j]
        img, gyi, gxi = imgs[i], gys[i], gxs[i]
        ci, si, ti, ui = cosv[j], sinv[j], ty[j], tx[j]
        for a in range(oy):
            vy = a - c0
            for b in range(ox):
                vx = b - c1
                y = c0 + ci * vy - si * vx + ti
                x = c1 + si * vy + ci * vx + ui
                if not (y >= 0.0 and y <= ny - 1 and x >= 0.0 and x <= nx - 1):
                    m[j, a, b] = 0.0
                    my[j, a, b] = 0.0
                    mx[j, a, b] = 0.0
                    inside[j, a, b] = False
                    continue
                inside[j, a, b] = True
                # rounded to float32 as bilinear_warp's output is, then widened (same bits)
                m[j, a, b] = np.float32(_bilinear(img, y, x))
                my[j, a, b] = np.float32(_bilinear(gyi, y, x))
                mx[j, a, b] = np.float32(_bilinear(gxi, y, x))


def affine_warp3(image, grad_y, grad_x, idx, shifts_px, rotation_rad, scale):
    """The similarity registration's pull: ``image``, ``grad_y`` and ``grad_x`` (each (n, ny, nx)
    float32) of the images ``idx`` warped with one transform each (``shifts_px`` (k, 2),
    ``rotation_rad``, ``scale`` (k,)), fill 0, as float64, and the (k, ny, nx) bool mask of the
    pixels whose source lies inside the raw field. ``idx``: indices or a slice. The same values as three ``bilinear_warp``
    calls on ``raw_coordinates`` (each rounded to float32) and the mask from those coordinates."""
    idx = np.arange(image.shape[0])[idx] if isinstance(idx, slice) else np.ascontiguousarray(idx, dtype=np.int64)
    k = idx.size
    _, ny, nx = image.shape
    t = np.asarray(shifts_px, dtype=np.float64).reshape(-1, 2)
    # radians to degrees and back, as the registration passed degrees to raw_coordinates: same bits
    phi = np.deg2rad(np.rad2deg(np.asarray(rotation_rad, dtype=np.float64))).reshape(-1)
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    cosv = np.ascontiguousarray(s * np.cos(phi))
    sinv = np.ascontiguousarray(s * np.sin(phi))
    m, my, mx = (np.empty((k, ny, nx)) for _ in range(3))
    inside = np.empty((k, ny, nx), np.bool_)
    _affine3(image, grad_y, grad_x, idx, (ny - 1) / 2.0, (nx - 1) / 2.0, cosv, sinv,
             np.ascontiguousarray(t[:, 0]), np.ascontiguousarray(t[:, 1]), m, my, mx, inside)
    return m, my, mx, inside


def bilinear_warp(images: np.ndarray, q: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``out[i] = images[i](q[:, i])`` bilinearly; images (n, ny, nx), q (2, n, my, mx) → float32."""
    imgs = np.ascontiguousarray(images, dtype=np.float32)
    qy = np.ascontiguousarray(q[0], dtype=np.float64)
    qx = np.ascontiguousarray(q[1], dtype=np.float64)
    out = np.empty(qy.shape, np.float32)
    _warp(imgs, qy, qx, np.float32(fill), out)
    return out


# ------------------------------------------------------------------------------------------------
# The similarity registration's sums over pixels (``register.register_similarity``), one image per
# thread, each image's sums in pixel order (float64): the same values whatever the thread count.
# They replace NumPy passes over (images, pixels) arrays, and, for the normal equations, the
# (images, 6, pixels) float64 Jacobian (353 MB at the paper's 158 × 170 × 274) and its batched
# products: the 6 × 6 sums are accumulated pixel by pixel without the Jacobian in memory.
# ------------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def gain_offset_fit(m, rw, idx, w, inside, ww, r, a, b, cost):  # pragma: no cover - compiled
    """For image ``j`` (reference ``rw[idx[j]]``): ``ww = w · inside``; the weighted linear fit
    ``a · m + b ≈ rw`` (a = cov/var, 1 where var ≤ 1e-30); ``r = a · m + b − rw`` and
    ``cost = Σ ww · r²``. m, ww, r (k, ny, nx) float64; inside bool; w (ny, nx)."""
    k, ny, nx = m.shape
    for j in prange(k):
        i = idx[j]
        sw = 0.0
        sm = 0.0
        sr = 0.0
        for y in range(ny):
            for x in range(nx):
                v = w[y, x] if inside[j, y, x] else 0.0
                ww[j, y, x] = v
                sw += v
                sm += v * m[j, y, x]
                sr += v * rw[i, y, x]
        sw += 1e-30
        mm = sm / sw
        rm = sr / sw
        cov = 0.0
        var = 0.0
        for y in range(ny):
            for x in range(nx):
                v = ww[j, y, x]
                dm = m[j, y, x] - mm
                cov += v * dm * (rw[i, y, x] - rm)
                var += v * dm * dm
        aj = cov / max(var, 1e-30) if var > 1e-30 else 1.0
        bj = rm - aj * mm
        c = 0.0
        for y in range(ny):
            for x in range(nx):
                rr = aj * m[j, y, x] + bj - rw[i, y, x]
                r[j, y, x] = rr
                c += ww[j, y, x] * rr * rr
        a[j] = aj
        b[j] = bj
        cost[j] = c


@njit(parallel=True, cache=True)
def normal_equations(m, my, mx, ww, r, a, rows, phi, s, vy, vx, cols, jtj, jtr):  # pragma: no cover
    """Levenberg–Marquardt's normal equations of the images ``rows`` (q-th output for image
    ``rows[q]``): ``jtj[q] = Σ_p w Jᵀ J`` and ``jtr[q] = Σ_p w Jᵀ r``, J's six columns
    ``(a ∂M/∂y, a ∂M/∂x, ∂/∂φ, ∂/∂s, M, 1)`` at every pixel (``register_similarity``'s Notes), of
    which ``cols`` are kept (all six, or 0, 1, 4, 5 for the translation); ``phi``, ``s`` per
    output row; jtj (q, k, k), jtr (q, k) float64, k = len(cols)."""
    ny, nx = vy.shape
    k = cols.size
    for q in prange(rows.size):
        i = rows[q]
        ai = a[i]
        cs = math.cos(phi[q])
        sn = math.sin(phi[q])
        sc = s[q]
        s00 = s01 = s02 = s03 = s04 = s05 = 0.0
        s11 = s12 = s13 = s14 = s15 = 0.0
        s22 = s23 = s24 = s25 = 0.0
        s33 = s34 = s35 = 0.0
        s44 = s45 = s55 = 0.0
        t0 = t1 = t2 = t3 = t4 = t5 = 0.0
        for y in range(ny):
            for x in range(nx):
                v = ww[i, y, x]
                j0 = ai * my[i, y, x]
                j1 = ai * mx[i, y, x]
                gy = vy[y, x]
                gx = vx[y, x]
                j2 = j0 * (sc * (-sn * gy - cs * gx)) + j1 * (sc * (cs * gy - sn * gx))
                j3 = j0 * (cs * gy - sn * gx) + j1 * (sn * gy + cs * gx)
                j4 = m[i, y, x]
                vr = v * r[i, y, x]
                v0 = v * j0
                v1 = v * j1
                v2 = v * j2
                v3 = v * j3
                v4 = v * j4
                s00 += v0 * j0
                s01 += v0 * j1
                s02 += v0 * j2
                s03 += v0 * j3
                s04 += v0 * j4
                s05 += v0
                s11 += v1 * j1
                s12 += v1 * j2
                s13 += v1 * j3
                s14 += v1 * j4
                s15 += v1
                s22 += v2 * j2
                s23 += v2 * j3
                s24 += v2 * j4
                s25 += v2
                s33 += v3 * j3
                s34 += v3 * j4
                s35 += v3
                s44 += v4 * j4
                s45 += v4
                s55 += v
                t0 += vr * j0
                t1 += vr * j1
                t2 += vr * j2
                t3 += vr * j3
                t4 += vr * j4
                t5 += vr
        full = np.array([[s00, s01, s02, s03, s04, s05], [s01, s11, s12, s13, s14, s15],
                         [s02, s12, s22, s23, s24, s25], [s03, s13, s23, s33, s34, s35],
                         [s04, s14, s24, s34, s44, s45], [s05, s15, s25, s35, s45, s55]])
        rhs = np.array([t0, t1, t2, t3, t4, t5])
        for u in range(k):
            for t in range(k):
                jtj[q, u, t] = full[cols[u], cols[t]]
            jtr[q, u] = rhs[cols[u]]


# ------------------------------------------------------------------------------------------------
# Separable cubic B-spline warp (the energy registration's scale-and-shift warp)
# ------------------------------------------------------------------------------------------------


def cubic_coefficients(stack: np.ndarray) -> np.ndarray:
    """The cubic B-spline coefficients (n, ny, nx) float64 of every image of ``stack``: what
    ``scipy.ndimage.map_coordinates(image, ..., order=3, mode="constant")`` prefilters each image
    into (``spline_filter`` along y, then x, float64, mode "constant"), the same values."""
    from scipy import ndimage

    coef = ndimage.spline_filter1d(np.asarray(stack), 3, axis=1, output=np.float64, mode="constant")
    return ndimage.spline_filter1d(coef, 3, axis=2, output=np.float64, mode="constant")


def cubic_taps(coord: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The four cubic B-spline taps of each sample position ``coord`` (m,) along an axis of ``n``
    pixels, as ``map_coordinates(order=3, mode="constant")`` reads them: indices (m, 4) int64 into
    coefficients extended by mirroring about the first and last pixel, weights (m, 4) float64,
    and ``inside`` (m,) bool, 0 ≤ coord ≤ n − 1 (outside, the warp gives 0).

    >>> idx, w, inside = cubic_taps(np.array([0.0, 2.5, 4.0, 4.5]), 5)
    >>> idx[0].tolist(), w[0].round(4).tolist(), inside.tolist()
    ([1, 0, 1, 2], [0.1667, 0.6667, 0.1667, 0.0], [True, True, True, False])
    """
    coord = np.asarray(coord, np.float64)
    i0 = np.floor(coord)
    f = coord - i0
    g = 1.0 - f
    w = np.stack([g * g * g / 6.0, 2.0 / 3.0 - f * f + 0.5 * f * f * f,
                  2.0 / 3.0 - g * g + 0.5 * g * g * g, f * f * f / 6.0], axis=1)
    idx = i0.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
    if n == 1:
        idx[:] = 0
    else:
        period = 2 * (n - 1)
        idx = np.mod(idx, period)
        idx = np.where(idx >= n, period - idx, idx)
    return idx, w, (coord >= 0.0) & (coord <= n - 1)


@njit(parallel=True, cache=True)
def separable_cubic(coef, images, iy, wy, in_y, ix, wx, in_x, out):  # pragma: no cover - compiled
    """out[i, y, x] = Σ_a wy[y, a] Σ_b wx[x, b] coef[images[i], iy[y, a], ix[x, b]] where both
    ``in_y[y]`` and ``in_x[x]``, else 0: the cubic spline at a grid of sample positions that is
    separable (each output row samples one input row position, each column one column
    position), in two 1D passes (8 taps a pixel instead of 16), parallel over the images.
    coef (m, ny, nx) float64; images (n,) int64, the coefficients' image of each output image (a
    subset read in place); iy, wy (my, 4); ix, wx (mx, 4); out (n, my, mx) float32."""
    n, ny = images.shape[0], coef.shape[1]
    my, mx = out.shape[1], out.shape[2]
    for i in prange(n):
        k = images[i]
        rows = np.empty((ny, mx))
        for r in range(ny):
            c = coef[k, r]
            for x in range(mx):
                rows[r, x] = (wx[x, 0] * c[ix[x, 0]] + wx[x, 1] * c[ix[x, 1]]
                              + wx[x, 2] * c[ix[x, 2]] + wx[x, 3] * c[ix[x, 3]])
        for y in range(my):
            if not in_y[y]:
                for x in range(mx):
                    out[i, y, x] = 0.0
                continue
            r0, r1, r2, r3 = iy[y, 0], iy[y, 1], iy[y, 2], iy[y, 3]
            a0, a1, a2, a3 = wy[y, 0], wy[y, 1], wy[y, 2], wy[y, 3]
            for x in range(mx):
                v = a0 * rows[r0, x] + a1 * rows[r1, x] + a2 * rows[r2, x] + a3 * rows[r3, x]
                out[i, y, x] = v if in_x[x] else 0.0


@njit(inline="always", cache=True)
def _product(a, b):  # pragma: no cover - compiled
    """(re, im) of the complex64 product a·b in float32."""
    return a.real * b.real - a.imag * b.imag, a.real * b.imag + a.imag * b.real


@njit(parallel=True, cache=True)
def pooled_phase_correlation(spec, ref_conj, rows, out):  # pragma: no cover - compiled
    """out (ny, nx) complex64 = Σ_i X_i / max(|X_i|, 10⁻¹² max|X_i| + 10⁻³⁰), X_i = spec[i]·ref_conj[rows[i]]:
    the pooled phase-normalised cross-power spectrum of n pairs (``register._cross_power(...,
    "phase").sum(axis=0)``), the images' terms added in image order in float32, in one read of
    the spectra instead of the (n, ny, nx) intermediates NumPy makes (product, modulus,
    quotient, sum). |X| is √(re² + im²) in float32 (NumPy's is ``hypotf``: an ulp apart at
    most). spec (n, ny, nx), ref_conj (m, ny, nx) complex64; rows (n,) int64, the reference's
    image paired with each of ``spec``'s (a subset read in place)."""
    n, ny, nx = spec.shape
    tiny = np.empty(n, np.float32)
    for i in prange(n):
        top = np.float32(0.0)
        for y in range(ny):
            s = spec[i, y]
            r = ref_conj[rows[i], y]
            for x in range(nx):
                pr, pi = _product(s[x], r[x])
                top = max(top, pr * pr + pi * pi)
        tiny[i] = np.float32(1e-12) * np.sqrt(top) + np.float32(1e-30)
    for y in prange(ny):
        re = np.zeros(nx, np.float32)
        im = np.zeros(nx, np.float32)
        for i in range(n):
            t = tiny[i]
            s = spec[i, y]
            r = ref_conj[rows[i], y]
            for x in range(nx):
                pr, pi = _product(s[x], r[x])
                d = max(np.sqrt(pr * pr + pi * pi), t)
                re[x] += pr / d
                im[x] += pi / d
        for x in range(nx):
            out[y, x] = re[x] + 1j * im[x]
