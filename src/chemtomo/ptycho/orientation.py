"""Which scan-position convention fits the data: a short reconstruction under each of eight.

Beamlines write scan positions in their own conventions: x and y exchanged, either axis
negated. Under the wrong convention the frames are placed at the wrong points of the object,
overlapping frames contradict each other and no object and probe reproduce them: the data
error of a short reconstruction stays high. :func:`guess_orientation` reconstructs the central
part of a scan under each of the eight conventions (``swap_xy`` × ``flip_x`` × ``flip_y``, the
``[input]`` flags of a run) and ranks them by their final data error.

Twin pairs. Far-field data cannot tell a convention from the one with both axes negated: the
exit wave ψ(r) = P(r) O(r + p) and its twin ψ*(−r) = P*(−r) O*(−r + p) have the same
diffraction magnitudes, and the twin is the exit wave of object O*(−r), probe P*(−r) at
positions −p. So the eight conventions fall into four pairs of equal error (up to iteration
noise), each pair's two members giving the same image rotated by 180° with the phase negated.
The pair with the lowest error is the answer of the data; within it the member whose
reconstructed phase (air-referenced) is on average negative over the scanned field is chosen,
since the X-ray refractive index decrement δ is positive away from absorption edges (a sample
measured just below a resonance, where δ < 0, would pick the twin: check the image then).
A probe guess from the file (not itself twin-symmetric) breaks the degeneracy: when the twin's
error exceeds the best's by more than ``TWIN_TOLERANCE``, the lowest error alone decides.

The error is the amplitude misfit of ``engine.py``; positions are read without any flag
(the CXI default) before the flags are applied, exactly as ``io.read_scan`` applies them. The
initial probe is the scan's own guess when it has one (a defocused zone-plate beam must start
near its true size: started from the mean diffraction pattern, which is a focused spot, the
probe stays small, frames hardly overlap, and every convention fits equally badly), else the
mean diffraction pattern.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.fft import fft2, fftshift, ifft2, ifftshift

from ..core.containers import Scan
from ..core.errors import InputError
from .reconstruct import reconstruct

__all__ = ["CONVENTIONS", "OrientationGuess", "OrientationTrial", "apply_convention", "guess_orientation"]

#: A twin whose error is within this factor of the best is taken as degenerate with it (the
#: reconstructions' spread at equal data, measured 1.00-1.09, see tests/ptycho/test_orientation.py).
TWIN_TOLERANCE = 1.15

#: The eight conventions as (swap_xy, flip_x, flip_y), the ``[input]`` flags of a run.
CONVENTIONS: tuple[tuple[bool, bool, bool], ...] = tuple(
    (s, fx, fy) for s in (False, True) for fx in (False, True) for fy in (False, True))


@dataclass(frozen=True)
class OrientationTrial:
    """One convention's short reconstruction.

    swap_xy, flip_x, flip_y : the convention (``[input]`` flags)
    error                   : final data error (normalised amplitude misfit, ``engine.py``)
    mean_phase_rad          : mean phase of the air-referenced transmission over the scanned field
    """

    swap_xy: bool
    flip_x: bool
    flip_y: bool
    error: float
    mean_phase_rad: float

    @property
    def flags(self) -> tuple[bool, bool, bool]:
        return (self.swap_xy, self.flip_x, self.flip_y)

    @property
    def twin(self) -> tuple[bool, bool, bool]:
        """The convention with both axes negated: same data error, image rotated 180°, phase negated."""
        return (self.swap_xy, not self.flip_x, not self.flip_y)


@dataclass(frozen=True)
class OrientationGuess:
    """Result of :func:`guess_orientation`.

    trials      : the eight trials, lowest error first
    best        : the chosen convention (lowest error; in a degenerate twin pair, negative mean phase)
    margin      : lowest error of the conventions that are not the best (nor its degenerate twin)
                  ÷ the lowest error (> 1; the larger, the clearer the answer)
    twin_ratio  : error of the best's twin ÷ the best's error (≈ 1: the pair is degenerate)
    frames_used : number of central frames reconstructed
    frame_px    : side of the (cropped) frames used
    """

    trials: tuple[OrientationTrial, ...]
    best: OrientationTrial
    margin: float
    twin_ratio: float
    frames_used: int
    frame_px: int


def apply_convention(positions_yx: np.ndarray, *, swap_xy: bool, flip_x: bool, flip_y: bool) -> np.ndarray:
    """Positions (y, x) read in the CXI default convention, re-read under other ``[input]`` flags.

    Same rule as ``io.read_scan``: the translation (x, y) = (p_x, p_y) has its columns
    exchanged (``swap_xy``), then y and/or x negated.
    """
    p = np.asarray(positions_yx, dtype=np.float64)
    y, x = (p[:, 1], p[:, 0]) if swap_xy else (p[:, 0], p[:, 1])
    return np.stack([-y if flip_y else y, -x if flip_x else x], axis=1)


def _central(scan: Scan, n_frames: int, frame_px: int | None) -> Scan:
    """The ``n_frames`` frames nearest the scan's median position, cropped to ``frame_px``."""
    centre = np.median(scan.positions_m, axis=0)
    order = np.argsort(np.hypot(*(scan.positions_m - centre).T), kind="stable")
    rows = np.sort(order[:n_frames])
    h, w = scan.frame_shape
    frames, mask, probe = scan.frames[rows], scan.mask, scan.probe
    if frame_px is not None and frame_px < min(h, w):
        # a central crop keeps the probe window (λz/p) and coarsens the object pixel by h/frame_px
        sy, sx = slice(h // 2 - frame_px // 2, h // 2 - frame_px // 2 + frame_px), \
            slice(w // 2 - frame_px // 2, w // 2 - frame_px // 2 + frame_px)
        frames = frames[:, sy, sx]
        mask = None if mask is None else mask[sy, sx]
        if probe is not None:  # the same crop of the probe's far field: the probe on the coarser grid
            far = fftshift(fft2(ifftshift(probe, axes=(-2, -1))), axes=(-2, -1))[:, sy, sx]
            probe = (fftshift(ifft2(ifftshift(far, axes=(-2, -1))), axes=(-2, -1))
                     * (frame_px * frame_px / (h * w))).astype(np.complex64)
    return dataclasses.replace(scan, frames=np.ascontiguousarray(frames), positions_m=scan.positions_m[rows],
                               mask=mask, probe=probe, detector_pixel_yx_m=scan.detector_pixel_yx_m)


def _mean_phase(transmission: np.ndarray, positions_px: np.ndarray) -> float:
    """Mean phase over the box spanned by the scan positions about the array centre."""
    oy, ox = transmission.shape
    span = positions_px.max(axis=0) - positions_px.min(axis=0)
    hy, hx = max(1, int(span[0] / 2)), max(1, int(span[1] / 2))
    box = transmission[oy // 2 - hy: oy // 2 + hy + 1, ox // 2 - hx: ox // 2 + hx + 1]
    return float(np.mean(np.angle(box)))


def guess_orientation(scan: Scan, *, n_frames: int = 49, frame_px: int | None = 64,
                      algorithm: str = "RAAR:40", seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> OrientationGuess:
    """Rank the eight scan-position conventions by the data error of a short reconstruction.

    Parameters
    ----------
    scan : Scan
        Read with no ``swap_xy``/``flip_*`` flags (the CXI default mapping).
    n_frames : int
        Frames nearest the scan centre to use (all if fewer); at least 9, so frames overlap in
        both directions.
    frame_px : int or None
        Crop frames to their central ``frame_px`` × ``frame_px`` pixels (coarser object pixel,
        same probe window, faster; the scan's probe guess is cropped alike in its far field);
        None keeps them whole.
    algorithm : str
        Solver chain of each short reconstruction (``reconstruct``), the same for all eight.
    seed : int
        Seed of the reconstructions (the same for all eight).
    progress : callable(done, total) or None
        Called after each convention.

    Returns
    -------
    OrientationGuess
        The eight trials ranked by error, the chosen convention and its margin.

    Raises
    ------
    InputError
        Fewer than 9 frames, a non-positive ``frame_px``, or what ``reconstruct`` refuses.
    """
    if not isinstance(scan, Scan):
        raise InputError(f"scan must be a chemtomo.core.Scan, got {type(scan).__name__}")
    n = min(int(n_frames), scan.n_frames)
    if n < 9:
        raise InputError(f"{scan.source or 'scan'}: guessing the orientation needs at least 9 overlapping "
                         f"frames, got {n}")
    if frame_px is not None and int(frame_px) < 8:
        raise InputError(f"frame_px must be at least 8 pixels or None, got {frame_px!r}")
    sub = _central(scan, n, None if frame_px is None else int(frame_px))
    base = sub.positions_m - sub.positions_m.mean(axis=0)
    pixel_yx = np.asarray(sub.pixel_yx_m)
    trials = []
    for k, (swap, fx, fy) in enumerate(CONVENTIONS):
        positions = apply_convention(base, swap_xy=swap, flip_x=fx, flip_y=fy)
        trial_scan = dataclasses.replace(sub, positions_m=positions)
        proj = reconstruct(trial_scan, algorithm, probe="file" if sub.probe is not None else "diffraction",
                           background=False, frc=False, seed=seed)
        errors = np.asarray(proj.errors, np.float64)
        error = float(errors[-1]) if errors.size and np.isfinite(errors[-1]) else float("inf")
        trials.append(OrientationTrial(swap, fx, fy, error,
                                       _mean_phase(proj.transmission, positions / pixel_yx)))
        if progress is not None:
            progress(k + 1, len(CONVENTIONS))
    trials.sort(key=lambda t: t.error)
    first = trials[0]
    twin = next(t for t in trials if t.flags == first.twin)
    if twin.error <= TWIN_TOLERANCE * first.error:  # degenerate pair: the phase sign decides
        best, other = sorted((first, twin), key=lambda t: t.mean_phase_rad)
        rest = [t.error for t in trials if t.flags not in (first.flags, first.twin)]
    else:  # a given probe guess broke the symmetry: the error alone decides
        best, other = first, twin
        rest = [t.error for t in trials[1:]]
    return OrientationGuess(trials=tuple(trials), best=best, margin=min(rest) / first.error,
                            twin_ratio=other.error / best.error, frames_used=n, frame_px=sub.frame_shape[0])
