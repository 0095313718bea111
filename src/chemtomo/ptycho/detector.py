"""Detector realities before ptychography: bad pixels masked, negative counts clipped, lost frames dropped.

A beamline's frames are not clean (DESIGN.md, "Input"): after dark subtraction counts go
negative; a readout error leaves a frame of NaN; hot, dead and saturated pixels, a beamstop and
the gaps between detector modules are flagged. None of these is an input error. This module turns
them into what the solvers take: one per-pixel validity mask ``(ny, nx)`` (masked pixels float
free in every modulus and likelihood update), non-negative finite counts, and the frames worth
using, and says what it did (:class:`DetectorReport`).

Rules, in order:

1. The valid pixels start from the scan's mask (the CXI ``detector_1/mask``, NeXus pixel_mask
   bits, 0 = good) and an extra mask (the config's ``[ptycho] mask``).
2. A pixel value is invalid where it is not finite, or at or above ``saturation`` counts
   (a saturated pixel's count is a lower bound, not a measurement).
3. A frame with more than ``max_invalid_fraction`` of its valid pixels invalid is dropped (a
   lost readout), and so is a frame with no counts at all on the valid pixels.
4. A pixel invalid in any kept frame is masked for the whole scan. The solvers take one mask per
   scan; masking a pixel that failed once costs that pixel's data in the other frames, which
   the overlap of neighbouring frames recovers, while keeping a value that is a lower bound
   (saturation) or meaningless (NaN) would bias every update that touches it. Saturation
   usually hits the same central pixels in many frames, where a per-scan mask is what SHARP,
   PtyLab and pty-chi do as well.
5. Negative counts on valid pixels (normal after dark subtraction: Poisson noise around a
   subtracted mean) are clipped to zero and counted; invalid pixels are set to zero.

Too much loss is still an error (naming the file): more than ``max_dropped_fraction`` of the
frames dropped, or no valid pixel left.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..core.containers import Scan
from ..core.errors import InputError

__all__ = ["DetectorReport", "clean_scan", "MAX_DROPPED_FRACTION", "MAX_INVALID_FRACTION"]

#: a frame with more than this share of its valid pixels invalid is dropped
MAX_INVALID_FRACTION = 0.5
#: more than this share of a scan's frames dropped is an input error (the scan is broken)
MAX_DROPPED_FRACTION = 0.1


@dataclass(frozen=True)
class DetectorReport:
    """What :func:`clean_scan` did to one scan.

    n_frames           : frames in the scan as read
    dropped_frames     : indices (as read) of the frames left out, and why ("lost": mostly
                         invalid, "empty": no counts on valid pixels)
    masked_by_file     : pixels flagged by the scan's own mask (the file's ``detector_1/mask``, and
                         the config's mask where the reader applied it)
    masked_by_config   : further pixels flagged by the extra (config) mask
    masked_nonfinite   : further pixels masked for NaN/inf values in kept frames
    masked_saturated   : further pixels masked for values ≥ the saturation level in kept frames
    negative_clipped   : count of negative pixel values (valid pixels, kept frames) set to 0
    most_negative      : the lowest such value (0 when none)
    valid_pixels       : pixels left valid, of ``n_pixels``
    """

    n_frames: int
    n_pixels: int
    dropped_frames: dict[int, str] = field(default_factory=dict)
    masked_by_file: int = 0
    masked_by_config: int = 0
    masked_nonfinite: int = 0
    masked_saturated: int = 0
    negative_clipped: int = 0
    most_negative: float = 0.0
    valid_pixels: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing was dropped, masked beyond the file's mask, or clipped."""
        return not (self.dropped_frames or self.masked_by_config or self.masked_nonfinite
                    or self.masked_saturated or self.negative_clipped)

    def as_dict(self) -> dict:
        """Plain numbers for JSON (the store's attributes and the report)."""
        d = dataclasses.asdict(self)
        d["dropped_frames"] = {str(k): v for k, v in self.dropped_frames.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DetectorReport:
        """The report back from :meth:`as_dict` (e.g. from the store's attributes)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        kw["dropped_frames"] = {int(k): v for k, v in (d.get("dropped_frames") or {}).items()}
        return cls(**kw)

    def summary(self) -> str:
        """One line: what was masked, clipped and dropped."""
        parts = []
        if self.dropped_frames:
            lost = sorted(self.dropped_frames)
            listed = ", ".join(map(str, lost[:10])) + (", ..." if len(lost) > 10 else "")
            parts.append(f"{len(lost)} of {self.n_frames} frames dropped ({listed})")
        masked = [(self.masked_by_file, "by the file's mask"), (self.masked_by_config, "by the config's mask"),
                  (self.masked_nonfinite, "non-finite"), (self.masked_saturated, "saturated")]
        m = [f"{n} {why}" for n, why in masked if n]
        if m:
            parts.append("pixels masked: " + ", ".join(m))
        if self.negative_clipped:
            parts.append(f"{self.negative_clipped} negative counts clipped to 0 (lowest {self.most_negative:g})")
        return "; ".join(parts) if parts else "clean"


def clean_scan(scan: Scan, *, saturation: float | None = None, mask: np.ndarray | None = None,
               max_invalid_fraction: float = MAX_INVALID_FRACTION,
               max_dropped_fraction: float = MAX_DROPPED_FRACTION) -> tuple[Scan, DetectorReport]:
    """Mask bad pixels, clip negative counts and drop lost frames of one scan.

    Parameters
    ----------
    scan : Scan
        Frames ``(n_frames, ny, nx)`` in photon counts (may hold NaN, inf, negative values),
        positions, and the scan's own validity mask (True = valid) or None.
    saturation : float or None
        Counts at or above which a pixel value is saturated (e.g. 65535 for a 16-bit counter);
        None: no saturation check.
    mask : (ny, nx) bool or None
        Extra validity mask (True = valid), e.g. the config's ``[ptycho] mask``, in the frames'
        orientation (as the scan's frames are held: after the reader's orientation).
    max_invalid_fraction : float in (0, 1]
        A frame with more than this share of its valid pixels invalid is dropped.
    max_dropped_fraction : float in [0, 1)
        More dropped frames than this share of the scan is an InputError.

    Returns
    -------
    (Scan, DetectorReport)
        The cleaned scan (float32 frames, finite and ≥ 0, the kept frames and their positions,
        the combined mask; the input scan itself when nothing needed changing) and what was done.

    Raises
    ------
    InputError
        Bad parameters (naming them), a mask of the wrong shape, too many frames lost, or no
        valid pixel left; messages name the scan's file.

    Examples
    --------
    >>> import numpy as np
    >>> from chemtomo.core import Scan
    >>> f = np.ones((20, 8, 8), np.float32); f[3] = np.nan; f[:, 0, 0] = -2
    >>> s = Scan(f, np.zeros((20, 2)), 708.2, 1.0, 1e-5)
    >>> cleaned, report = clean_scan(s)
    >>> cleaned.n_frames, report.negative_clipped, report.summary()
    (19, 19, '1 of 20 frames dropped (3); 19 negative counts clipped to 0 (lowest -2)')
    """
    owner = scan.source or "Scan"
    if saturation is not None and not (np.isfinite(saturation) and saturation > 0):
        raise InputError(f"{owner}: saturation must be a positive number of counts or None, got {saturation!r}")
    if not 0 < max_invalid_fraction <= 1:
        raise InputError(f"max_invalid_fraction must be in (0, 1], got {max_invalid_fraction!r}")
    if not 0 <= max_dropped_fraction < 1:
        raise InputError(f"max_dropped_fraction must be in [0, 1), got {max_dropped_fraction!r}")
    n, h, w = scan.frames.shape
    file_valid = np.ones((h, w), bool) if scan.mask is None else np.asarray(scan.mask, bool)
    valid = file_valid.copy()
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (h, w):
            raise InputError(f"{owner}: the detector mask has shape {mask.shape}; expected the frame shape {(h, w)}")
        valid &= mask.astype(bool)
    masked_by_config = int(file_valid.sum() - valid.sum())
    if not valid.any():
        raise InputError(f"{owner}: the detector masks leave no valid pixel")

    frames = scan.frames
    if frames.dtype == np.float32 and valid.all():
        # Fast path, two passes and no copies (1 s of the measured star's start otherwise): NaN
        # makes the minimum NaN and ±inf shows in the extremes, so finite, non-negative extremes
        # below the saturation level leave nothing to mask or clip; a frame whose maximum is 0 is
        # empty (the full path below handles that and everything else).
        frame_max = frames.reshape(n, -1).max(axis=1)
        lowest, highest = float(frames.min()), float(frame_max.max())
        if (np.isfinite(lowest) and np.isfinite(highest) and lowest >= 0 and (frame_max > 0).all()
                and (saturation is None or highest < saturation)):
            return scan, DetectorReport(n_frames=n, n_pixels=h * w, valid_pixels=h * w)
    on_valid = frames[:, valid]                                  # (n, n_valid) copy
    nonfinite = ~np.isfinite(on_valid)
    saturated = (on_valid >= saturation) if saturation is not None else np.zeros_like(nonfinite)
    saturated &= ~nonfinite
    invalid = nonfinite | saturated
    invalid_share = invalid.mean(axis=1)
    safe = np.where(invalid, 0, on_valid)
    empty = ~np.any(safe > 0, axis=1)
    dropped: dict[int, str] = {}
    for j in np.flatnonzero(invalid_share > max_invalid_fraction):
        dropped[int(j)] = "lost"
    for j in np.flatnonzero(empty):
        dropped.setdefault(int(j), "empty")
    if len(dropped) == n or len(dropped) > max_dropped_fraction * n:
        listed = ", ".join(map(str, sorted(dropped)[:20])) + (", ..." if len(dropped) > 20 else "")
        raise InputError(f"{owner}: frames {listed} ({len(dropped)} of {n}) are lost (mostly NaN/inf or saturated) "
                         f"or hold no counts; at most {max_dropped_fraction:.0%} of the frames may be left out")
    keep = np.setdiff1d(np.arange(n), np.fromiter(dropped, int, len(dropped)))

    # pixels invalid in any kept frame: masked for the whole scan
    bad_nonfinite = nonfinite[keep].any(axis=0)
    bad_saturated = saturated[keep].any(axis=0) & ~bad_nonfinite
    idx = np.flatnonzero(valid.ravel())
    new_valid = valid.copy().ravel()
    new_valid[idx[bad_nonfinite | bad_saturated]] = False
    new_valid = new_valid.reshape(h, w)
    if not new_valid.any():
        raise InputError(f"{owner}: every detector pixel is NaN/inf or saturated in some frame; no valid pixel left")

    kept_valid = safe[keep][:, ~(bad_nonfinite | bad_saturated)]
    negative = kept_valid < 0
    n_negative = int(negative.sum())
    most_negative = float(kept_valid.min()) if n_negative else 0.0
    report = DetectorReport(n_frames=n, n_pixels=h * w, dropped_frames=dict(sorted(dropped.items())),
                            masked_by_file=int((~file_valid).sum()), masked_by_config=masked_by_config,
                            masked_nonfinite=int(bad_nonfinite.sum()), masked_saturated=int(bad_saturated.sum()),
                            negative_clipped=n_negative, most_negative=most_negative,
                            valid_pixels=int(new_valid.sum()))
    if report.clean and frames.dtype == np.float32:
        return scan, report
    out = np.asarray(frames[keep], dtype=np.float32)
    if out is frames or np.shares_memory(out, frames):
        out = out.copy()
    out[:, ~new_valid] = 0
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.maximum(out, 0, out=out)
    cleaned = dataclasses.replace(scan, frames=out, positions_m=np.asarray(scan.positions_m)[keep],
                                  mask=None if new_valid.all() else new_valid)
    return cleaned, report
