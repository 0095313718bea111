"""What every iterative reconstruction shares: validated data, constraints and the iteration loop.

:func:`prepare` checks the common keyword arguments of all algorithms (listed in ``COMMON``),
puts the tilt series and the volume into the operator's internal layouts (:mod:`.operator`),
marks missing data, and returns a :class:`Problem`. :meth:`Problem.iterate` runs an algorithm's
update ``iterations`` times with the constraints, the per-iteration callback, the progress
callback and the stopping rule applied the same way for every algorithm.

Common keyword arguments
------------------------
nonneg : bool, default True
    Clip the volume at zero after each update (optical density cannot be negative).
x0 : (ny, nz, nx) array, optional
    Initial volume (default zeros).
support : bool array (nz, nx) or (ny, nz, nx), optional
    Voxels allowed to be non-zero; the others are set to zero at the start and after every
    iteration (every sweep for ART and SART).
cor_offset_px : float, default 0
    Centre-of-rotation offset on the detector, pixels (see :mod:`.geometry`).
nz : int, optional
    Slice depth, pixels (default: the detector width nx).
callback : callable(iteration, volume), optional
    Called after every iteration with the 1-based iteration number and the current
    (ny, nz, nx) float32 volume (a copy).
progress : callable(done, total), optional
    Called after every iteration, e.g. to advance a progress bar.
tol : float, optional
    Stopping rule: stop when ‖x_k − x_{k−1}‖ / ‖x_k‖ < tol (relative update of the volume).
memory_limit_bytes : int, optional
    Refuse problems that need more (default 80 % of physical memory).

Missing data: non-finite values (NaN, inf) in the tilt series mark missing rays. They get weight
zero in every iterative algorithm (the rays are left out of the fit; logged as a warning) and are
refused by FBP, which cannot leave rays out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.backend import to_numpy
from ..core.errors import ConvergenceError, InputError
from .geometry import TiltGeometry, check_angles
from .operator import (
    DEFAULT_MAX_BLOCK_BYTES,
    RayOperator,
    block_bytes,
    check_memory,
    operator_for,
    stack_to_volume,
    tilt_to_stack,
    volume_to_stack,
)
from .operator import (
    memory_limit_bytes as memory_limit,
)

__all__ = [
    "COMMON",
    "Problem",
    "check_choice",
    "check_iterations",
    "check_relaxation",
    "check_tilt",
    "prepare",
]

log = logging.getLogger(__name__)

COMMON = ("nonneg", "x0", "support", "cor_offset_px", "nz", "callback", "progress", "tol",
          "memory_limit_bytes")


def check_tilt(tilt, angles_deg, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Tilt series as (n_angles, ny, nx) float32 and its angles, validated against each other."""
    t = np.asarray(to_numpy(tilt))
    if t.ndim != 3:
        raise InputError(f"{owner}: tilt must be a (n_angles, ny, nx) array, got shape {t.shape}")
    if min(t.shape) == 0:
        raise InputError(f"{owner}: tilt has an empty axis, shape {t.shape}")
    if not (np.issubdtype(t.dtype, np.floating) or np.issubdtype(t.dtype, np.integer)):
        raise InputError(f"{owner}: tilt must be real numbers, got dtype {t.dtype}")
    n_ang = np.size(angles_deg)
    if np.ndim(angles_deg) == 1 and n_ang != t.shape[0]:
        raise InputError(f"{owner}: tilt has {t.shape[0]} projections but angles_deg has {n_ang} "
                         "angles; expected one angle per projection")
    angles = check_angles(angles_deg, t.shape[0], owner=f"{owner}: angles_deg")
    return t.astype(np.float32, copy=False), angles


def check_iterations(iterations, owner: str, minimum: int = 1) -> int:
    """An integer iteration count ≥ minimum."""
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
        raise InputError(f"{owner}: iterations must be an integer ≥ {minimum}, got {iterations!r}")
    if iterations < minimum:
        raise InputError(f"{owner}: iterations must be ≥ {minimum}, got {iterations}")
    return int(iterations)


def check_relaxation(relaxation, owner: str, upper: float = 2) -> float:
    """A relaxation factor in the open interval (0, upper) (convergence needs it)."""
    try:
        r = float(relaxation)
    except (TypeError, ValueError):
        raise InputError(f"{owner}: relaxation must be a number in (0, {upper}), got {relaxation!r}") from None
    if not (math.isfinite(r) and 0.0 < r < upper):
        raise InputError(f"{owner}: relaxation must be in (0, {upper}) for convergence, got {r}")
    return r


def check_choice(value, choices, field: str, owner: str):
    """``value`` if it is one of ``choices``, else an InputError listing them."""
    if value not in choices:
        raise InputError(f"{owner}: unknown {field} {value!r}; valid: {', '.join(map(str, choices))}")
    return value


@dataclass
class Problem:
    """Validated reconstruction problem in the operator's layouts (see :mod:`.operator`).

    op      : RayOperator of the geometry
    b       : (n_angles, nu, ny) float32 data, 0 where missing
    valid   : (n_angles, nu, ny) float32, 1 for measured rays, 0 for missing ones
    x       : (nz·nx, ny) float32 current estimate (updated in place)
    support : (nz·nx, 1) or (nz·nx, ny) bool, or None
    """

    op: RayOperator
    b: np.ndarray
    valid: np.ndarray
    n_missing: int
    x: np.ndarray
    support: np.ndarray | None
    nonneg: bool
    callback: Callable | None
    progress: Callable | None
    tol: float | None

    @property
    def geometry(self) -> TiltGeometry:
        return self.op.geometry

    def constrain(self, x: np.ndarray) -> None:
        """Apply non-negativity and the support, in place."""
        if self.nonneg:
            np.maximum(x, 0.0, out=x)
        if self.support is not None:
            np.multiply(x, self.support, out=x)

    def volume(self, x: np.ndarray | None = None) -> np.ndarray:
        """The estimate as a (ny, nz, nx) float32 volume."""
        g = self.geometry
        return stack_to_volume(self.x if x is None else x, g.nz, g.nx)

    def iterate(self, iterations: int, update: Callable[[int], None]) -> np.ndarray:
        """Run ``update(k)`` (in place on ``self.x``) for k = 0..iterations−1 with the shared rules.

        After each update: constraints, callback, progress, then the stopping rule.
        Returns the final (ny, nz, nx) volume.
        """
        for k in range(iterations):
            prev = self.x.copy() if self.tol is not None else None
            update(k)
            self.constrain(self.x)
            if not np.all(np.isfinite(self.x)):
                raise ConvergenceError(f"iteration {k + 1} produced non-finite values; the data hold "
                                       "values too large for float32 or the relaxation is too large")
            if self.callback is not None:
                self.callback(k + 1, self.volume())
            if self.progress is not None:
                self.progress(k + 1, iterations)
            if prev is not None:
                norm = float(np.linalg.norm(self.x))
                change = float(np.linalg.norm(self.x - prev))
                if norm == 0.0 or change / norm < self.tol:
                    log.info("stopping after %d of %d iterations: relative update %.3g < tol %.3g",
                             k + 1, iterations, change / norm if norm else 0.0, self.tol)
                    break
        return self.volume()


def _support(support, ny: int, nz: int, nx: int) -> np.ndarray | None:
    if support is None:
        return None
    s = np.asarray(to_numpy(support))
    if s.dtype != bool:
        raise InputError(f"support: expected a boolean mask, got dtype {s.dtype}")
    if s.shape == (nz, nx):
        return s.reshape(nz * nx, 1)
    if s.shape == (ny, nz, nx):
        return volume_to_stack(s).astype(bool)
    raise InputError(f"support: expected shape {(nz, nx)} or {(ny, nz, nx)}, got {s.shape}")


def prepare(tilt, angles_deg, owner: str, *, n_volumes: int = 3, n_sinograms: int = 3,
            allow_missing: bool = True, nonneg: bool = True, x0=None, support=None,
            cor_offset_px: float = 0.0, nz: int | None = None, callback=None, progress=None,
            tol: float | None = None, memory_limit_bytes: int | None = None) -> Problem:
    """Validate the inputs shared by all algorithms and build the :class:`Problem`.

    ``n_volumes`` and ``n_sinograms`` are how many slice stacks and sinogram stacks the algorithm
    holds at once; with the operator's weights they give the memory check.
    """
    t, angles = check_tilt(tilt, angles_deg, owner)
    n_angles, ny, nu = t.shape
    nz = nu if nz is None else nz
    if isinstance(nz, bool) or not isinstance(nz, (int, np.integer)) or nz <= 0:
        raise InputError(f"{owner}: nz must be a positive integer (slice depth, pixels), got {nz!r}")
    nx = nu
    if not isinstance(nonneg, (bool, np.bool_)):
        raise InputError(f"{owner}: nonneg must be True or False, got {nonneg!r}")
    if tol is not None and not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise InputError(f"{owner}: tol must be a positive number (relative update), got {tol!r}")
    for name, f in (("callback", callback), ("progress", progress)):
        if f is not None and not callable(f):
            raise InputError(f"{owner}: {name} must be callable, got {type(f).__name__}")
    per_slice = n_volumes * 4 * nz * nx + n_sinograms * 4 * n_angles * nu
    weights = min(block_bytes(n_angles, nz, nx), DEFAULT_MAX_BLOCK_BYTES)
    limit = memory_limit() if memory_limit_bytes is None else int(memory_limit_bytes)
    fits = max(1, (limit - weights) // per_slice)
    check_memory(weights + ny * per_slice,
                 f"{owner}: reconstructing {ny} slices of {nz}×{nx} from {n_angles} angles",
                 f"slices are independent: reconstruct at most {fits} at a time "
                 f"(tilt[:, i:i + {fits}]) and stack the results along y", limit)
    geom = TiltGeometry.create(angles, nz, nx, nu, float(cor_offset_px))
    finite = np.isfinite(t)
    n_missing = int(finite.size - np.count_nonzero(finite))
    if n_missing and not allow_missing:
        raise InputError(f"{owner}: tilt holds {n_missing} non-finite values (NaN/inf); this "
                         "algorithm cannot leave rays out: fill them, or use an iterative algorithm, "
                         "which gives missing rays weight zero")
    if n_missing:
        # logged, not warned: marking rays missing with NaN is the documented way to leave them out
        # (the alignment does so for every ray a shift brought in from outside the field)
        log.info("%s: %d non-finite values in the tilt series are treated as missing rays "
                 "(weight zero)", owner, n_missing)
        t = np.where(finite, t, np.float32(0.0))
    b = tilt_to_stack(t)
    valid = tilt_to_stack(finite.astype(np.float32))
    sup = _support(support, ny, nz, nx)
    if x0 is None:
        x = np.zeros((nz * nx, ny), np.float32)
    else:
        v = np.asarray(to_numpy(x0))
        if v.shape != (ny, nz, nx):
            raise InputError(f"{owner}: x0 must have shape {(ny, nz, nx)} (ny, nz, nx), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise InputError(f"{owner}: x0 holds non-finite values")
        x = volume_to_stack(v)
    op = operator_for(geom)
    p = Problem(op, b, valid, n_missing, x, sup, bool(nonneg), callback, progress,
                None if tol is None else float(tol))
    p.constrain(p.x)
    return p
