"""Compiled (numba) kernels of the footprint projector and the row-action sweep.

Internal layouts, chosen so that the innermost loop runs over slices (contiguous, SIMD):

- slice stack ``x``: ``(npix, ny)`` float32, ``npix = nz·nx``, pixel ``p = iz·nx + ix``;
- sinogram stack ``s``: ``(n_angles, nu, ny)`` float32.

One angle's block of the system matrix is stored row-wise (one row per detector bin) in
``rowptr[i, j] : rowptr[i, j + 1]`` of ``pix[i]`` (pixel indices, increasing) and ``wt[i]``
(weights). The weights are computed exactly as :mod:`.geometry` builds its sparse matrix (same
float64 formulas, same 1e-7 cut-off), so both give the same projections.

Every kernel that touches slice stacks works on contiguous ranges of slices (``slice_plan``):
each thread takes one group of ranges and sweeps them one after the other. Slices are independent
problems, so no two threads ever write the same element, no atomics are needed, and a slice's
result does not depend on the ranges (the same bits for any plan or thread count).

A sweep streams the whole system matrix (``pix``, ``wt``: 190 MB for 158 angles of 274²) once per
range, so wide ranges pay for it over more slices; but a range's voxels along three neighbouring
rays must stay in the core's cache, so not too wide. Measured on one core (ART sweeps, 158 angles,
274² slices; ms per slice): 16 slices 14.1, 32 9.5, 64 7.2–7.7, 96 6.0–6.5, 128 7.7, 170 11.1.
Widths that are not a multiple of the compiled loop's 32 lanes run their last slices in scalar
code at every matrix entry (85 slices 11–13 ms per slice, 74 11.9), so the plan cuts ranges in
whole lanes and gives the leftover slices a range of their own.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

__all__ = [
    "art_sweep",
    "axpy",
    "backward",
    "build_blocks",
    "column_dot",
    "column_sums",
    "forward",
    "n_threads",
    "os_sweep",
    "residual",
    "slice_plan",
    "xpby",
    "zero_active",
]

_CUT = 1e-7  # weights below this are dropped (as in geometry._angle_block)


def n_threads() -> int:
    """Threads numba's parallel kernels use."""
    return int(numba.get_num_threads())


#: Slices in one step of the kernels' vectorised loops (16 float32 lanes, unrolled twice).
SLICE_LANE = 32
#: Widest range of slices a kernel sweeps at once (module docstring: 96 measured best of 16–170).
SLICE_RANGE = 96


def slice_plan(ny: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """How the kernels split ``ny`` slices between ``threads`` threads.

    Returns ``(starts, groups)``: range ``c`` holds slices ``starts[c]:starts[c + 1]``; thread ``g``
    sweeps ranges ``groups[g]:groups[g + 1]`` one after the other. Each thread gets whole lanes
    of ``SLICE_LANE`` slices (as evenly as they go; the last thread also the leftover slices, in a
    range of their own), cut into ranges of at most ``SLICE_RANGE``. With fewer lanes than
    threads the slices are split evenly. Any plan gives the same bits.

    Examples
    --------
    >>> [a.tolist() for a in slice_plan(170, 2)]
    [[0, 96, 160, 170], [0, 1, 3]]
    >>> [a.tolist() for a in slice_plan(170, 1)]
    [[0, 96, 160, 170], [0, 3]]
    >>> [a.tolist() for a in slice_plan(16, 2)]
    [[0, 8, 16], [0, 1, 2]]
    """
    ny = int(ny)
    threads = max(1, min(int(threads), ny)) if ny > 0 else 1
    lanes, rest = divmod(ny, SLICE_LANE)
    if lanes < threads:
        bounds = [ny * k // threads for k in range(threads + 1)]
        return np.asarray(bounds, np.int64), np.arange(threads + 1, dtype=np.int64)
    most = SLICE_RANGE // SLICE_LANE
    starts, groups = [0], [0]
    for g in range(threads):
        own = lanes // threads + (1 if g < lanes % threads else 0)
        pieces = -(-own // most)
        for k in range(pieces):
            starts.append(starts[-1] + SLICE_LANE * (own // pieces + (1 if k < own % pieces else 0)))
        if g == threads - 1 and rest:
            starts.append(starts[-1] + rest)
        groups.append(len(starts) - 1)
    return np.asarray(starts, np.int64), np.asarray(groups, np.int64)


@njit(cache=True, inline="always")
def _q(s):
    return 0.5 * s * s if s > 0.0 else 0.0


@njit(cache=True, inline="always")
def _cdf(t, a, b):
    h1 = 0.5 * (a + b)
    h2 = 0.5 * (a - b)
    return (_q(t + h1) - _q(t + h2) - _q(t - h2) + _q(t - h1)) / (a * b)


@njit(cache=True)
def _angle_table(c, s, nz, nx, nu, cor, first, w):
    """Footprint of every pixel at one angle: first bin and the weights of bins first..first+2."""
    a = max(abs(c), 1e-3)
    b = max(abs(s), 1e-3)
    half = 0.5 * (a + b)
    for iz in range(nz):
        z = iz - (nz - 1) / 2.0
        for ix in range(nx):
            x = ix - (nx - 1) / 2.0
            u = x * c + z * s + cor + (nu - 1) / 2.0
            f = math.floor(u - half + 0.5)
            p = iz * nx + ix
            first[p] = f
            lo = _cdf(f - 0.5 - u, a, b)
            for k in range(3):
                hi = _cdf(f + k + 0.5 - u, a, b)
                wk = hi - lo
                lo = hi
                if wk > _CUT and 0 <= f + k < nu:
                    w[p, k] = wk
                else:
                    w[p, k] = 0.0


@njit(parallel=True, cache=True)
def build_blocks(cos_t, sin_t, nz, nx, nu, cor, rowptr, pix, wt, rownorm, rowsum):
    """Fill the row-wise blocks of all angles (parallel over angles).

    rowptr (n, nu+1) int32, pix (n, 3·npix) int32, wt (n, 3·npix) float32,
    rownorm (n, nu) float32 = Σ w², rowsum (n, nu) float32 = Σ w.
    """
    n = cos_t.size
    npix = nz * nx
    for i in prange(n):
        first = np.empty(npix, np.int64)
        w = np.empty((npix, 3), np.float64)
        _angle_table(cos_t[i], sin_t[i], nz, nx, nu, cor, first, w)
        count = np.zeros(nu + 1, np.int64)
        for p in range(npix):
            for k in range(3):
                if w[p, k] != 0.0:
                    count[first[p] + k + 1] += 1
        for j in range(nu):
            count[j + 1] += count[j]
        for j in range(nu + 1):
            rowptr[i, j] = count[j]
        norm = np.zeros(nu, np.float64)
        tot = np.zeros(nu, np.float64)
        for p in range(npix):  # pixels in increasing order: rows come out sorted by pixel
            for k in range(3):
                wk = w[p, k]
                if wk != 0.0:
                    j = first[p] + k
                    e = count[j]
                    pix[i, e] = p
                    w32 = np.float32(wk)
                    wt[i, e] = w32
                    norm[j] += float(w32) * float(w32)
                    tot[j] += float(w32)
                    count[j] = e + 1
        for j in range(nu):
            rownorm[i, j] = norm[j]
            rowsum[i, j] = tot[j]


@njit(parallel=True, cache=True)
def forward(rowptr, pix, wt, idx, x, out, starts, groups):
    """out[k, j, y] = Σ_e wt[i, e] · x[pix[i, e], y] over row j of angle i = idx[k] (overwrites)."""
    n = idx.size
    nu1 = rowptr.shape[1]
    for g in prange(groups.size - 1):  # one group of slice ranges per thread
        for c in range(groups[g], groups[g + 1]):
            y0 = starts[c]
            y1 = starts[c + 1]
            m = y1 - y0
            if m <= 0:
                continue
            acc = np.empty(m, np.float32)
            for k in range(n):
                i = idx[k]
                for j in range(nu1 - 1):
                    acc[:] = 0.0
                    for e in range(rowptr[i, j], rowptr[i, j + 1]):
                        w = wt[i, e]
                        xr = x[pix[i, e], y0:y1]
                        for t in range(m):
                            acc[t] += w * xr[t]
                    orow = out[k, j, y0:y1]
                    for t in range(m):
                        orow[t] = acc[t]


@njit(parallel=True, cache=True)
def backward(rowptr, pix, wt, idx, s, out, starts, groups):
    """out[p, y] += Σ wt[i, e] · s[k, j, y], i = idx[k], over all rows touching p (accumulates)."""
    n = idx.size
    nu1 = rowptr.shape[1]
    for g in prange(groups.size - 1):  # one group of slice ranges per thread
        for c in range(groups[g], groups[g + 1]):
            y0 = starts[c]
            y1 = starts[c + 1]
            m = y1 - y0
            if m <= 0:
                continue
            val = np.empty(m, np.float32)
            for k in range(n):
                i = idx[k]
                for j in range(nu1 - 1):
                    srow = s[k, j, y0:y1]
                    for t in range(m):
                        val[t] = srow[t]
                    for e in range(rowptr[i, j], rowptr[i, j + 1]):
                        w = wt[i, e]
                        xr = out[pix[i, e], y0:y1]
                        for t in range(m):
                            xr[t] += w * val[t]


@njit(parallel=True, cache=True)
def art_sweep(rowptr, pix, wt, rownorm, idx, b, valid, x, relaxation, nonneg, starts, groups):
    """One Kaczmarz sweep over every row of the angles idx (in that order), bins in order.

    For each row (angle i, bin j) and each slice y:
        r = relaxation · valid[i, j, y] · (b[i, j, y] − ⟨a_ij, x[:, y]⟩) / ‖a_ij‖²
        x[:, y] += r · a_ij            (then clipped at 0 when nonneg)
    b holds 0 where valid is 0 (missing data), so masked rays change nothing.
    """
    n = idx.size
    nu1 = rowptr.shape[1]
    for g in prange(groups.size - 1):  # one group of slice ranges per thread
        for c in range(groups[g], groups[g + 1]):
            y0 = starts[c]
            y1 = starts[c + 1]
            m = y1 - y0
            if m <= 0:
                continue
            acc = np.empty(m, np.float32)
            # a range narrower than the stack is swept in a contiguous copy of its own: in place,
            # each pixel's slices would lie one stack row apart, each row's cache lines shared with
            # the neighbouring ranges (79 angles of 170 slices of 274²: 0.55 s a sweep on two
            # threads, one 0.79-0.90)
            part = m < x.shape[1]
            xs = x[:, y0:y1].copy() if part else x
            for k in range(n):
                i = idx[k]
                for j in range(nu1 - 1):
                    nrm = rownorm[i, j]
                    if nrm <= 0.0:
                        continue
                    scale = np.float32(relaxation / nrm)
                    e0 = rowptr[i, j]
                    e1 = rowptr[i, j + 1]
                    acc[:] = 0.0
                    for e in range(e0, e1):
                        w = wt[i, e]
                        xr = xs[pix[i, e]]
                        for t in range(m):
                            acc[t] += w * xr[t]
                    brow = b[i, j, y0:y1]
                    vrow = valid[i, j, y0:y1]
                    for t in range(m):
                        acc[t] = scale * vrow[t] * (brow[t] - acc[t])
                    if nonneg:
                        for e in range(e0, e1):
                            w = wt[i, e]
                            xr = xs[pix[i, e]]
                            for t in range(m):
                                v = xr[t] + w * acc[t]
                                xr[t] = v if v > 0.0 else np.float32(0.0)
                    else:
                        for e in range(e0, e1):
                            w = wt[i, e]
                            xr = xs[pix[i, e]]
                            for t in range(m):
                                xr[t] += w * acc[t]
            if part:
                x[:, y0:y1] = xs


@njit(cache=True)
def _scatter_angle(rowptr, pix, wt, i, res, cinv, x, y0, y1, relaxation, nonneg):
    """x[p, y0:y1] += relaxation · cinv[p] · Σ_j w_jp · res[j] for one angle, bins in order.

    A pixel's footprint spans at most 3 consecutive bins, so once bin j is added the pixels of
    row j − 2 are complete and are clipped then (when nonneg), before the next bins touch others.
    """
    nu = rowptr.shape[1] - 1
    m = y1 - y0
    for j in range(nu + 2):
        if j < nu:
            rrow = res[j]
            for e in range(rowptr[i, j], rowptr[i, j + 1]):
                p = pix[i, e]
                c = np.float32(relaxation * cinv[p]) * wt[i, e]
                xr = x[p, y0:y1]
                for t in range(m):
                    xr[t] += c * rrow[t]
        if nonneg and j >= 2:
            for e in range(rowptr[i, j - 2], rowptr[i, j - 1]):
                xr = x[pix[i, e], y0:y1]
                for t in range(m):
                    xr[t] = max(xr[t], 0.0)


@njit(parallel=True, cache=True)
def os_sweep(rowptr, pix, wt, order, sub_ptr, b, valid, rowinv, colinv, x, relaxation, nonneg,
             starts, groups):
    """One sweep of ordered-subset (SART / OS-SART / SIRT) updates over all slices.

    The angles of subset s are ``order[sub_ptr[s]:sub_ptr[s + 1]]``. For each subset, in turn:
        r   = rowinv · valid · (b − A_S x)          (per ray)
        x  += relaxation · colinv[s] · A_Sᵀ r       (per pixel; then clipped at 0 when nonneg)
    rowinv (n_angles, nu) = 1 / row sums; colinv (n_subsets, npix) = 1 / column sums of A_S.
    """
    n_sub = sub_ptr.size - 1
    nu = rowptr.shape[1] - 1
    npix = x.shape[0]
    biggest = 0
    for s in range(n_sub):
        biggest = max(biggest, sub_ptr[s + 1] - sub_ptr[s])
    for g in prange(groups.size - 1):  # one group of slice ranges per thread
        for c in range(groups[g], groups[g + 1]):
            y0 = starts[c]
            y1 = starts[c + 1]
            m = y1 - y0
            if m <= 0:
                continue
            acc = np.empty(m, np.float32)
            res = np.empty((biggest, nu, m), np.float32)
            upd = np.empty((npix if biggest > 1 else 1, m), np.float32)
            for s in range(n_sub):
                k0 = sub_ptr[s]
                k1 = sub_ptr[s + 1]
                for kk in range(k0, k1):
                    i = order[kk]
                    for j in range(nu):
                        acc[:] = 0.0
                        for e in range(rowptr[i, j], rowptr[i, j + 1]):
                            w = wt[i, e]
                            xr = x[pix[i, e], y0:y1]
                            for t in range(m):
                                acc[t] += w * xr[t]
                        sc = rowinv[i, j]
                        brow = b[i, j, y0:y1]
                        vrow = valid[i, j, y0:y1]
                        rrow = res[kk - k0, j]
                        for t in range(m):
                            rrow[t] = sc * vrow[t] * (brow[t] - acc[t])
                if k1 - k0 == 1:  # one angle (SART): scatter straight into x, no update buffer
                    _scatter_angle(rowptr, pix, wt, order[k0], res[0], colinv[s], x, y0, y1,
                                   relaxation, nonneg)
                    continue
                upd[:, :] = 0.0
                for kk in range(k0, k1):
                    i = order[kk]
                    for j in range(nu):
                        rrow = res[kk - k0, j]
                        for e in range(rowptr[i, j], rowptr[i, j + 1]):
                            w = wt[i, e]
                            ur = upd[pix[i, e]]
                            for t in range(m):
                                ur[t] += w * rrow[t]
                for p in range(npix):
                    c = np.float32(relaxation * colinv[s, p])
                    if c == 0.0:
                        continue
                    xr = x[p, y0:y1]
                    ur = upd[p]
                    if nonneg:
                        for t in range(m):
                            v = xr[t] + c * ur[t]
                            xr[t] = v if v > 0.0 else np.float32(0.0)
                    else:
                        for t in range(m):
                            xr[t] += c * ur[t]


@njit(parallel=True, cache=True)
def column_sums(rowptr, pix, wt, idx, target, out):
    """out[target[k], p] += Σ_j w over the entries of pixel p in angle idx[k] (column sums of A_i).

    Parallel over output rows: angles with the same target are handled by one thread.
    """
    n_out = out.shape[0]
    nu = rowptr.shape[1] - 1
    for o in prange(n_out):
        for k in range(idx.size):
            if target[k] != o:
                continue
            i = idx[k]
            for e in range(rowptr[i, 0], rowptr[i, nu]):
                out[o, pix[i, e]] += wt[i, e]


# --- element-wise helpers of CGLS on (rows, ny) stacks, parallel over rows ------------------------

@njit(parallel=True, cache=True)
def axpy(y, alpha, x):
    """y[r, t] += alpha[t] · x[r, t]."""
    for r in prange(y.shape[0]):
        yr = y[r]
        xr = x[r]
        for t in range(y.shape[1]):
            yr[t] += alpha[t] * xr[t]


@njit(parallel=True, cache=True)
def xpby(x, beta, y):
    """y[r, t] = x[r, t] + beta[t] · y[r, t]."""
    for r in prange(y.shape[0]):
        yr = y[r]
        xr = x[r]
        for t in range(y.shape[1]):
            yr[t] = xr[t] + beta[t] * yr[t]


@njit(parallel=True, cache=True)
def residual(b, valid, ax, masked):
    """ax[r, t] = valid[r, t] · (b[r, t] − ax[r, t]) (valid only when masked)."""
    for r in prange(ax.shape[0]):
        ar = ax[r]
        br = b[r]
        vr = valid[r]
        for t in range(ax.shape[1]):
            v = br[t] - ar[t]
            ar[t] = v * vr[t] if masked else v


@njit(parallel=True, cache=True)
def zero_active(x, v):
    """v[r, t] = 0 where x[r, t] ≤ 0 and v[r, t] < 0 (directions that would leave x ≥ 0)."""
    for r in prange(v.shape[0]):
        xr = x[r]
        vr = v[r]
        for t in range(v.shape[1]):
            if xr[t] <= 0.0 and vr[t] < 0.0:
                vr[t] = 0.0


@njit(parallel=True, cache=True)
def column_dot(a, b, n_blocks):
    """Σ_r a[r, t] · b[r, t] per column t, float64 (ny,)."""
    n, m = a.shape
    part = np.zeros((n_blocks, m), np.float64)
    size = (n + n_blocks - 1) // n_blocks
    for k in prange(n_blocks):
        acc = part[k]
        for r in range(k * size, min(n, (k + 1) * size)):
            ar = a[r]
            br = b[r]
            for t in range(m):
                acc[t] += float(ar[t]) * float(br[t])
    return part.sum(axis=0)
