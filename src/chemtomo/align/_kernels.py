"""Compiled (numba) bilinear warp of image stacks, the inner loop of the alignment.

``scipy.ndimage.map_coordinates`` on an (n, ny, nx) stack interpolates in three dimensions (the
integer angle coordinate included, 8 neighbours instead of 4) and first copies the coordinate
list into one (3, n, ny, nx) float64 array; at the paper's size (158 × 170 × 274) that made the
warps of the similarity registration its largest cost. This kernel does the same pull,
``out[i, p] = image_i(q[:, i, p])``, with 2D bilinear weights, parallel over the images, with
``map_coordinates``' ``mode="constant"`` rule: a point outside ``[0, ny − 1] × [0, nx − 1]``
takes the fill value, a point inside interpolates between in-range pixels only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["bilinear_warp"]


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
                y0 = min(int(math.floor(y)), ny - 2) if ny > 1 else 0
                x0 = min(int(math.floor(x)), nx - 2) if nx > 1 else 0
                fy = y - y0
                fx = x - x0
                y1 = min(y0 + 1, ny - 1)
                x1 = min(x0 + 1, nx - 1)
                v = ((1.0 - fy) * ((1.0 - fx) * img[y0, x0] + fx * img[y0, x1])
                     + fy * ((1.0 - fx) * img[y1, x0] + fx * img[y1, x1]))
                out[i, a, b] = v


def bilinear_warp(images: np.ndarray, q: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``out[i] = images[i](q[:, i])`` bilinearly; images (n, ny, nx), q (2, n, my, mx) → float32."""
    imgs = np.ascontiguousarray(images, dtype=np.float32)
    qy = np.ascontiguousarray(q[0], dtype=np.float64)
    qx = np.ascontiguousarray(q[1], dtype=np.float64)
    out = np.empty(qy.shape, np.float32)
    _warp(imgs, qy, qx, np.float32(fill), out)
    return out
