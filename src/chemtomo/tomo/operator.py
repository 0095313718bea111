"""The footprint projector of :mod:`.geometry` as an operator on stacks of slices.

:class:`RayOperator` holds one geometry's system matrix in row-wise blocks, one per angle (about 3
weights per pixel per angle, 8 bytes each), and applies it to all slices at once with the compiled
kernels of :mod:`._kernels`. Solvers work in its internal layouts (see :mod:`._kernels`):

- slice stack ``(nz·nx, ny)`` float32 (:func:`volume_to_stack` / :func:`stack_to_volume`),
- sinogram stack ``(n_angles, nu, ny)`` float32 (:func:`tilt_to_stack` / :func:`stack_to_tilt`).

When the blocks of all angles would exceed ``max_block_bytes`` they are rebuilt, a chunk of
angles at a time, on every use, so the memory stays bounded for any number of angles.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import _kernels as K
from ._memory import check_memory, memory_limit_bytes  # re-exported: the callers import them from here
from .geometry import TiltGeometry

__all__ = [
    "RayOperator",
    "block_bytes",
    "check_memory",
    "memory_limit_bytes",
    "operator_for",
    "slice_blocks",
    "slice_plan",
    "stack_to_tilt",
    "stack_to_volume",
    "tilt_to_stack",
    "volume_to_stack",
]

DEFAULT_MAX_BLOCK_BYTES = 2 << 30  # cache all angles' weights up to 2 GiB


def block_bytes(n_angles: int, nz: int, nx: int) -> int:
    """Bytes of the row-wise weights of ``n_angles`` angles: 3 weights per pixel, int32 + float32."""
    return int(n_angles) * 3 * int(nz) * int(nx) * 8


def volume_to_stack(volume: np.ndarray) -> np.ndarray:
    """(ny, nz, nx) → (nz·nx, ny) float32, C-contiguous."""
    ny, nz, nx = volume.shape
    return np.ascontiguousarray(np.asarray(volume, np.float32).reshape(ny, nz * nx).T)


def stack_to_volume(x: np.ndarray, nz: int, nx: int) -> np.ndarray:
    """(nz·nx, ny) → (ny, nz, nx) float32, C-contiguous."""
    return np.ascontiguousarray(x.T.reshape(x.shape[1], nz, nx), dtype=np.float32)


def tilt_to_stack(tilt: np.ndarray) -> np.ndarray:
    """(n_angles, ny, nu) → (n_angles, nu, ny) float32, C-contiguous."""
    return np.ascontiguousarray(np.asarray(tilt, np.float32).transpose(0, 2, 1))


def stack_to_tilt(s: np.ndarray) -> np.ndarray:
    """(n_angles, nu, ny) → (n_angles, ny, nu) float32, C-contiguous."""
    return np.ascontiguousarray(s.transpose(0, 2, 1), dtype=np.float32)


class RayOperator:
    """System matrix ``A`` of one :class:`TiltGeometry`, applied to slice stacks.

    Parameters
    ----------
    geometry : TiltGeometry
    max_block_bytes : int, optional
        Largest memory for the cached weights (default 2 GiB). Above it, weights are rebuilt per
        chunk of angles on every call: slower, bounded memory.

    Notes
    -----
    ``forward`` is ``A x`` and ``backward`` its exact transpose ``Aᵀ s`` (same weights). Row norms
    ``Σ w²`` and row sums ``Σ w`` of every (angle, bin) are kept in ``rownorm`` and ``rowsum``,
    both ``(n_angles, nu)``; the column sums of one angle's block are 1 (the footprint has unit
    area) except for pixels whose footprint leaves the detector.
    """

    def __init__(self, geometry: TiltGeometry, *, max_block_bytes: int | None = None):
        self.geometry = geometry
        g = geometry
        self.npix = g.nz * g.nx
        rad = [math.radians(a) for a in g.angles_deg]
        self._cos = np.array([math.cos(r) for r in rad], np.float64)
        self._sin = np.array([math.sin(r) for r in rad], np.float64)
        budget = DEFAULT_MAX_BLOCK_BYTES if max_block_bytes is None else int(max_block_bytes)
        per_angle = block_bytes(1, g.nz, g.nx)
        self.chunk = max(1, min(g.n_angles, budget // per_angle))
        self.rownorm = np.empty((g.n_angles, g.nu), np.float32)
        self.rowsum = np.empty((g.n_angles, g.nu), np.float32)
        self._cached = None
        if self.chunk >= g.n_angles:
            self._cached = self._build(np.arange(g.n_angles))
            self.rownorm[:], self.rowsum[:] = self._cached[3], self._cached[4]
        else:
            for start in range(0, g.n_angles, self.chunk):
                sel = np.arange(start, min(g.n_angles, start + self.chunk))
                b = self._build(sel)
                self.rownorm[sel], self.rowsum[sel] = b[3], b[4]

    @property
    def shape(self) -> tuple[int, int]:
        """(n_angles·nu, nz·nx): rows and columns of the system matrix of one slice."""
        return (self.geometry.n_angles * self.geometry.nu, self.npix)

    def _build(self, sel: np.ndarray):
        g = self.geometry
        n = sel.size
        rowptr = np.empty((n, g.nu + 1), np.int32)
        pix = np.empty((n, 3 * self.npix), np.int32)
        wt = np.empty((n, 3 * self.npix), np.float32)
        rownorm = np.empty((n, g.nu), np.float32)
        rowsum = np.empty((n, g.nu), np.float32)
        K.build_blocks(self._cos[sel], self._sin[sel], g.nz, g.nx, g.nu, g.cor_offset_px,
                       rowptr, pix, wt, rownorm, rowsum)
        return rowptr, pix, wt, rownorm, rowsum

    def _pieces(self, idx: np.ndarray):
        """Yield (blocks, local indices, positions in idx) covering the angles idx in order."""
        if self._cached is not None:
            yield self._cached, idx, slice(0, idx.size)
            return
        for start in range(0, idx.size, self.chunk):
            sel = idx[start:start + self.chunk]
            yield self._build(sel), np.arange(sel.size), slice(start, start + sel.size)

    def _idx(self, angles) -> np.ndarray:
        if angles is None:
            return np.arange(self.geometry.n_angles)
        return np.ascontiguousarray(angles, dtype=np.int64).reshape(-1)

    def forward(self, x: np.ndarray, angles=None, out: np.ndarray | None = None) -> np.ndarray:
        """``A x`` for the angle indices ``angles`` (default all): (len, nu, ny) float32."""
        idx = self._idx(angles)
        if out is None:
            out = np.empty((idx.size, self.geometry.nu, x.shape[1]), np.float32)
        plan = slice_plan(x.shape[1])
        for (rowptr, pix, wt, _, _), local, pos in self._pieces(idx):
            K.forward(rowptr, pix, wt, local, x, out[pos], *plan)
        return out

    def backward(self, s: np.ndarray, angles=None, out: np.ndarray | None = None) -> np.ndarray:
        """``Aᵀ s`` for sinogram rows of the angle indices ``angles``: (nz·nx, ny) float32.

        With ``out`` given, the back-projection is added to it.
        """
        idx = self._idx(angles)
        if out is None:
            out = np.zeros((self.npix, s.shape[2]), np.float32)
        plan = slice_plan(out.shape[1])
        for (rowptr, pix, wt, _, _), local, pos in self._pieces(idx):
            K.backward(rowptr, pix, wt, local, s[pos], out, *plan)
        return out

    def art_sweep(self, x: np.ndarray, b: np.ndarray, valid: np.ndarray, order: np.ndarray,
                  relaxation: float, nonneg: bool) -> None:
        """One Kaczmarz sweep, in place on ``x``, over the rows of the angles ``order``."""
        order = self._idx(order)
        plan = slice_plan(x.shape[1])
        for (rowptr, pix, wt, rownorm, _), local, pos in self._pieces(order):
            rows = order[pos]
            if self._cached is None:  # local blocks: bring the data rows along
                bb, vv = np.ascontiguousarray(b[rows]), np.ascontiguousarray(valid[rows])
                K.art_sweep(rowptr, pix, wt, rownorm, local, bb, vv, x, float(relaxation),
                            bool(nonneg), *plan)
            else:
                K.art_sweep(rowptr, pix, wt, rownorm, local, b, valid, x, float(relaxation),
                            bool(nonneg), *plan)

    def os_sweep(self, x: np.ndarray, b: np.ndarray, valid: np.ndarray, subsets: list[np.ndarray],
                 row_inv: np.ndarray, col_inv: np.ndarray, relaxation: float, nonneg: bool) -> None:
        """One sweep of ordered-subset updates (see :func:`._kernels.os_sweep`), in place on ``x``.

        subsets : angle indices per subset, in visiting order
        row_inv : (n_angles, nu) float32, 1 / row sums (0 for empty rays)
        col_inv : (n_subsets, nz·nx) float32, 1 / column sums of each subset (0 where unseen)
        """
        ptr = np.zeros(len(subsets) + 1, np.int64)
        ptr[1:] = np.cumsum([s.size for s in subsets])
        if self._cached is not None:
            rowptr, pix, wt, _, _ = self._cached
            plan = slice_plan(x.shape[1])
            K.os_sweep(rowptr, pix, wt, np.concatenate(subsets).astype(np.int64), ptr, b, valid,
                       row_inv, col_inv, x, float(relaxation), bool(nonneg), *plan)
            return
        for s, idx in enumerate(subsets):  # weights rebuilt per chunk: plain products
            r = self.forward(x, idx)
            np.subtract(b[idx], r, out=r)
            r *= valid[idx]
            r *= row_inv[idx][:, :, None]
            upd = self.backward(r, idx)
            upd *= np.float32(relaxation) * col_inv[s][:, None]
            x += upd
            if nonneg:
                np.maximum(x, 0.0, out=x)

    def column_sums(self, subsets: list[np.ndarray] | None = None) -> np.ndarray:
        """Column sums ``A_Sᵀ 1`` of each subset of angles (default: one subset of all angles).

        Returns
        -------
        (n_subsets, nz·nx) float32
        """
        if subsets is None:
            subsets = [np.arange(self.geometry.n_angles)]
        idx = np.concatenate(subsets).astype(np.int64)
        target = np.concatenate([np.full(s.size, k, np.int64) for k, s in enumerate(subsets)])
        out = np.zeros((len(subsets), self.npix), np.float32)
        for (rowptr, pix, wt, _, _), local, pos in self._pieces(idx):
            K.column_sums(rowptr, pix, wt, local, target[pos], out)
        return out


def slice_plan(ny: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' split of ``ny`` slices between numba's threads now (``_kernels.slice_plan``)."""
    return K.slice_plan(ny, K.n_threads())


def slice_blocks(ny: int, n_volumes: int, tasks: int, size: int = 0) -> list[tuple[int, int]]:
    """Blocks ``(y0, y1)`` of each of ``n_volumes`` volumes' ``ny`` slices, one task each, for
    ``tasks`` worker threads (the pipeline's reconstruction, the alignment's Dask tasks).

    ``size`` > 0: blocks of that many slices. 0: as wide as the kernels sweep at once
    (``_kernels.SLICE_RANGE``, 96): a sweep streams the whole system matrix once per range, so
    narrow blocks pay for it over few slices (per slice, ART on 274² slices: 6–6.5 ms in ranges of
    96, 14 ms in ranges of 16; the paper preset's recon stage took 49.5–56.5 s against 107.5 s
    with blocks of 16, the same bits). Narrower, in whole lanes of ``_kernels.SLICE_LANE`` (32),
    where blocks of 96 would give fewer blocks than ``tasks``; if even lanes would, one block per
    task.

    Examples
    --------
    >>> slice_blocks(170, 2, 2)
    [(0, 96), (96, 170)]
    >>> slice_blocks(170, 2, 8)
    [(0, 32), (32, 64), (64, 96), (96, 128), (128, 160), (160, 170)]
    >>> slice_blocks(20, 1, 4, size=8)
    [(0, 8), (8, 16), (16, 20)]
    """
    size = int(size)
    if size <= 0:
        size = K.SLICE_RANGE
        while size > K.SLICE_LANE and n_volumes * -(-ny // size) < tasks:
            size -= K.SLICE_LANE
        if n_volumes * -(-ny // size) < tasks:
            size = max(1, ny * n_volumes // tasks)
    return [(y0, min(ny, y0 + size)) for y0 in range(0, ny, size)]


@lru_cache(maxsize=2)
def operator_for(geometry: TiltGeometry) -> RayOperator:
    """The :class:`RayOperator` of a geometry, kept for the next call (two geometries at most), so
    projections, back-projections and reconstructions on one geometry share one set of weights."""
    return RayOperator(geometry)
