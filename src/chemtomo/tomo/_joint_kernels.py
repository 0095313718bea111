"""Compiled (numba) kernels of the joint spectral reconstruction (:mod:`.joint`).

Layouts (the slice-stack layouts of :mod:`._kernels`, with a leading component or energy axis):

- components ``x``: ``(n_components, npix, ny)`` float32, ``npix = nz·nx``;
- data ``b`` and ray mask ``valid``: ``(n_energies, n_angles, nu, ny)`` float32.

The system-matrix blocks (``rowptr``, ``pix``, ``wt``) are those of
:class:`.operator.RayOperator`: the same weights as every other projector of chemtomo. Slices
are independent, so each thread owns a contiguous range of slices and no two threads write the
same element.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["joint_os_sweep", "project_capped_simplex"]


@njit(cache=True, inline="always")
def _project_voxel(c, cap, nonneg, srt):
    """Euclidean projection of the K-vector c (in place) onto {c ≥ 0} or {c ≥ 0, Σ c ≤ cap}.

    ``cap <= 0`` means no sum bound. The capped simplex: clip at 0; if the sum still exceeds the
    cap, project onto the simplex Σ c = cap (Held, Wolfe & Crowder 1974; sort and threshold).
    """
    k = c.size
    if not nonneg:
        return
    total = 0.0
    for i in range(k):
        c[i] = max(c[i], 0.0)
        total += c[i]
    if cap <= 0.0 or total <= cap:
        return
    for i in range(k):  # insertion sort, descending (K is a handful)
        v = c[i]
        j = i
        while j > 0 and srt[j - 1] < v:
            srt[j] = srt[j - 1]
            j -= 1
        srt[j] = v
    run = 0.0
    theta = 0.0
    for i in range(k):
        run += srt[i]
        t = (run - cap) / (i + 1)
        if srt[i] - t > 0.0:
            theta = t
    for i in range(k):
        v = c[i] - theta
        c[i] = max(v, 0.0)


@njit(parallel=True, cache=True)
def project_capped_simplex(x, cap, nonneg):
    """Apply :func:`_project_voxel` to every voxel of x (K, npix, ny), in place."""
    k, npix, ny = x.shape
    for p in prange(npix):
        c = np.empty(k, np.float32)
        srt = np.empty(k, np.float32)
        for t in range(ny):
            for i in range(k):
                c[i] = x[i, p, t]
            _project_voxel(c, cap, nonneg, srt)
            for i in range(k):
                x[i, p, t] = c[i]


@njit(parallel=True, cache=True)
def joint_os_sweep(rowptr, pix, wt, order, sub_ptr, b, valid, rowinv, colinv, mix, unmix, x,
                   relaxation, cap, nonneg, starts, groups):
    """One sweep of ordered-subset updates of the stacked component volumes.

    For each subset S of angles (``order[sub_ptr[s]:sub_ptr[s + 1]]``), in turn, and every slice:

        r_e   = rowinv · valid_e · (b_e − Σ_k mix[e, k] · A_S x_k)     per energy e, per ray
        x_k  += relaxation · colinv[s] · A_Sᵀ (Σ_e unmix[k, e] · r_e)   per component k, per pixel
        x     = projection of each voxel's K-vector onto the constraint set (see _project_voxel)

    ``mix`` (n_energies, K) is the mixing matrix M and ``unmix`` (K, n_energies) its
    pseudo-inverse (MᵀM)⁻¹Mᵀ: the update is the SART update of every energy's volume, unmixed.
    """
    n_sub = sub_ptr.size - 1
    nu = rowptr.shape[1] - 1
    n_e, n_k = mix.shape
    npix = x.shape[1]
    biggest = 0
    for s in range(n_sub):
        biggest = max(biggest, sub_ptr[s + 1] - sub_ptr[s])
    coupled = nonneg and cap > 0.0
    for g in prange(groups.size - 1):  # one group of slice ranges per thread
        for c in range(groups[g], groups[g + 1]):
            y0 = starts[c]
            y1 = starts[c + 1]
            m = y1 - y0
            if m <= 0:
                continue
            acc = np.empty((n_k, m), np.float32)
            re = np.empty((n_e, m), np.float32)
            res = np.empty((biggest, nu, n_k, m), np.float32)
            upd = np.empty((n_k, npix, m), np.float32)
            c = np.empty(n_k, np.float32)
            srt = np.empty(n_k, np.float32)
            for s in range(n_sub):
                k0 = sub_ptr[s]
                k1 = sub_ptr[s + 1]
                for kk in range(k0, k1):
                    i = order[kk]
                    for j in range(nu):
                        for q in range(n_k):
                            for t in range(m):
                                acc[q, t] = 0.0
                        for e in range(rowptr[i, j], rowptr[i, j + 1]):
                            w = wt[i, e]
                            p = pix[i, e]
                            for q in range(n_k):
                                xr = x[q, p, y0:y1]
                                ar = acc[q]
                                for t in range(m):
                                    ar[t] += w * xr[t]
                        sc = rowinv[i, j]
                        for en in range(n_e):
                            for t in range(m):
                                pred = np.float32(0.0)
                                for q in range(n_k):
                                    pred += mix[en, q] * acc[q, t]
                                re[en, t] = sc * valid[en, i, j, y0 + t] * (b[en, i, j, y0 + t] - pred)
                        for q in range(n_k):
                            for t in range(m):
                                res[kk - k0, j, q, t] = 0.0
                            for en in range(n_e):
                                u = unmix[q, en]
                                for t in range(m):
                                    res[kk - k0, j, q, t] += u * re[en, t]
                upd[:, :, :] = 0.0
                for kk in range(k0, k1):
                    i = order[kk]
                    for j in range(nu):
                        for e in range(rowptr[i, j], rowptr[i, j + 1]):
                            w = wt[i, e]
                            p = pix[i, e]
                            for q in range(n_k):
                                ur = upd[q, p]
                                rr = res[kk - k0, j, q]
                                for t in range(m):
                                    ur[t] += w * rr[t]
                for p in range(npix):
                    cp = np.float32(relaxation * colinv[s, p])
                    if cp == 0.0:
                        continue
                    if not coupled:  # separable constraint: clip each component on its own
                        for q in range(n_k):
                            xr = x[q, p, y0:y1]
                            ur = upd[q, p]
                            if nonneg:
                                for t in range(m):
                                    v = xr[t] + cp * ur[t]
                                    xr[t] = v if v > 0.0 else np.float32(0.0)
                            else:
                                for t in range(m):
                                    xr[t] += cp * ur[t]
                        continue
                    for t in range(m):
                        for q in range(n_k):
                            c[q] = x[q, p, y0 + t] + cp * upd[q, p, t]
                        _project_voxel(c, cap, nonneg, srt)
                        for q in range(n_k):
                            x[q, p, y0 + t] = c[q]
