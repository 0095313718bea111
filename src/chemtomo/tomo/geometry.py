"""The one parallel-beam tilt geometry of chemtomo (DESIGN.md, "Conventions").

Volumes are ``(ny, nz, nx)``: y along the rotation axis, x the detector's horizontal at 0°, z the
beam at 0°. A point (z, x) of a slice, in pixels from the array centre, lands at the detector
coordinate

    u = x cos θ + z sin θ + cor_offset_px

also in pixels from the detector centre. At θ = 0 the projection is the sum over z.

The projector is a *footprint* model: a square pixel of unit side projects onto the detector as a
trapezoid (the convolution of two boxes of widths |cos θ| and |sin θ|) of unit area, and each
detector bin receives the exact integral of that trapezoid over its width. The weights of one
slice are shared by every slice: :func:`system_matrix` gives them as a SciPy sparse matrix (the
reference the tests check the solvers against), and the compiled kernels of :mod:`.operator`
apply the same weights to all slices at once, forward and as the exact transpose. The simulator,
the projectors, the reconstructors and the alignment all use this geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from ..core.errors import InputError
from ._memory import check_memory

__all__ = ["TiltGeometry", "check_angles", "matrix_bytes", "system_matrix"]


def check_angles(angles_deg, n_expected: int | None = None, *, owner: str = "angles_deg") -> np.ndarray:
    """Validate tilt angles: 1D, finite, no duplicates; return them as float64 degrees."""
    a = np.asarray(angles_deg, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"{owner}: expected a non-empty 1D array of angles in degrees, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.isfinite(a))
        raise InputError(f"{owner}: angles must be finite; non-finite at positions {bad.tolist()[:10]}")
    if n_expected is not None and a.size != n_expected:
        raise InputError(f"{owner}: {a.size} angles for a tilt series of {n_expected} projections; "
                         "expected one angle per projection")
    uniq, counts = np.unique(np.round(a, 9), return_counts=True)
    if np.any(counts > 1):
        raise InputError(f"{owner}: duplicate angles {uniq[counts > 1].tolist()[:10]} degrees; "
                         "each projection needs its own angle")
    return a


@dataclass(frozen=True)
class TiltGeometry:
    """Geometry of one slice: angles, slice size and detector width, all in pixels.

    angles_deg    : tilt angles, degrees
    nz, nx        : slice shape (beam direction at 0°, detector direction at 0°)
    nu            : detector width in pixels (default nx)
    cor_offset_px : centre-of-rotation offset: the detector coordinate, relative to the detector
                    centre, onto which the volume's centre projects
    """

    angles_deg: tuple[float, ...]
    nz: int
    nx: int
    nu: int
    cor_offset_px: float = 0.0

    @classmethod
    def create(cls, angles_deg, nz: int, nx: int, nu: int | None = None, cor_offset_px: float = 0.0):
        a = check_angles(angles_deg)
        if nz <= 0 or nx <= 0 or (nu is not None and nu <= 0):
            raise InputError(f"slice shape must be positive, got nz={nz}, nx={nx}, nu={nu}")
        if not math.isfinite(cor_offset_px):
            raise InputError(f"cor_offset_px must be finite, got {cor_offset_px!r}")
        return cls(tuple(float(x) for x in a), int(nz), int(nx), int(nu if nu is not None else nx),
                   float(cor_offset_px))

    @property
    def n_angles(self) -> int:
        return len(self.angles_deg)

    def matrix(self) -> sp.csr_matrix:
        """Sparse (n_angles·nu, nz·nx) float32 system matrix (cached)."""
        return _matrix(self)


def _box_conv_cdf(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """CDF of the sum of uniform variables on (−a/2, a/2) and (−b/2, b/2), at t."""

    def q(s):
        s = np.maximum(s, 0.0)
        return 0.5 * s * s

    h1, h2 = 0.5 * (a + b), 0.5 * (a - b)
    return (q(t + h1) - q(t + h2) - q(t - h2) + q(t - h1)) / (a * b)


def _angle_block(theta_rad: float, nz: int, nx: int, nu: int, cor: float):
    """Rows, columns and weights of one angle's block of the system matrix."""
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    a, b = max(abs(c), 1e-3), max(abs(s), 1e-3)
    z = np.arange(nz, dtype=np.float64) - (nz - 1) / 2.0
    x = np.arange(nx, dtype=np.float64) - (nx - 1) / 2.0
    # detector coordinate of each pixel centre, in bin index units
    u = (x[None, :] * c + z[:, None] * s + cor + (nu - 1) / 2.0).ravel()
    col = np.arange(nz * nx, dtype=np.int64)
    rows, cols, vals = [], [], []
    first = np.floor(u - 0.5 * (a + b) + 0.5).astype(np.int64)  # first bin the footprint touches
    for k in range(3):  # a footprint of width ≤ √2 touches at most 3 bins
        b_idx = first + k
        lo = _box_conv_cdf(b_idx - 0.5 - u, a, b)
        hi = _box_conv_cdf(b_idx + 0.5 - u, a, b)
        w = hi - lo
        keep = (w > 1e-7) & (b_idx >= 0) & (b_idx < nu)
        rows.append(b_idx[keep])
        cols.append(col[keep])
        vals.append(w[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def matrix_bytes(n_angles: int, nz: int, nx: int) -> int:
    """Peak bytes to build the sparse matrix: ≈3 weights per pixel per angle, 24 bytes each while
    assembling (int64 row and column, float64 value) plus the 8-byte CSR copy."""
    return 3 * int(n_angles) * int(nz) * int(nx) * 32


@lru_cache(maxsize=8)
def _matrix(geom: TiltGeometry) -> sp.csr_matrix:
    check_memory(matrix_bytes(geom.n_angles, geom.nz, geom.nx),
                 f"system_matrix: the sparse matrix of {geom.n_angles} angles on {geom.nz}×{geom.nx} slices",
                 "use chemtomo.tomo.project / backproject / reconstruct, which never build it "
                 "(their weights are computed per chunk of angles), or pass fewer angles at a time")
    rows, cols, vals = [], [], []
    for i, ang in enumerate(geom.angles_deg):
        r, c, v = _angle_block(math.radians(ang), geom.nz, geom.nx, geom.nu, geom.cor_offset_px)
        rows.append(r + i * geom.nu)
        cols.append(c)
        vals.append(v.astype(np.float32))
    shape = (geom.n_angles * geom.nu, geom.nz * geom.nx)
    m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    m.sum_duplicates()
    return m


def system_matrix(angles_deg, nz: int, nx: int, nu: int | None = None, cor_offset_px: float = 0.0) -> sp.csr_matrix:
    """The sparse system matrix of one slice for the given angles (see module docstring).

    Returns
    -------
    (n_angles·nu, nz·nx) scipy.sparse.csr_matrix, float32. Row ``i·nu + j`` is detector bin ``j``
    at angle ``i``; column ``iz·nx + ix`` is slice pixel (iz, ix).
    """
    return TiltGeometry.create(angles_deg, nz, nx, nu, cor_offset_px).matrix()
