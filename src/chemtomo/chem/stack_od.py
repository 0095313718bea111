"""Optical density of a STXM transmission stack, normalised by an incident-flux (I0) region.

A STXM records transmitted counts ``I_e(y, x)``; the optical density is ``OD = −ln(I / I0_e)``
with ``I0_e`` the counts through an empty part of the field at the same energy (the beam's flux
and the zone plate's efficiency change with energy, so I0 is measured per energy). The I0 region
is chosen automatically as the pixels that are bright and flat across energies (empty: their
transmission is 1 at every energy, so their rough OD is ≈ 0 with no spectral structure), or
given by the user as a box or a mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from chemtomo.core import InputError

from ._otsu import otsu_thresholds

__all__ = ["choose_i0_region", "stack_optical_density", "I0Region", "MIN_I0_PIXELS"]

log = logging.getLogger(__name__)

#: Fewest pixels an I0 region may hold: with N pixels the I0 estimate carries 1/√N of one
#: pixel's shot noise, so 16 pixels keep it at a quarter of a pixel's noise.
MIN_I0_PIXELS = 16
_COUNT_FLOOR = 0.5      # counts below this (zero counts under a thick particle) are floored for the log
_EDGE_MARGIN_PX = 2     # the automatic region keeps this far from the sample, against blur and drift


@dataclass(frozen=True)
class I0Region:
    """The incident-flux region of a stack and what was measured in it.

    mask       : (ny, nx) bool, the pixels averaged for I0
    i0_counts  : (n_energies,) float64, mean counts in the region per energy
    source     : "auto", "box" or "mask"
    od_spread  : largest per-energy RMS of the OD inside the region (≈ shot noise of one pixel
                 for an empty region; much more means the region holds sample)
    n_floored  : pixels x energies with counts below 0.5, floored before the logarithm
    """

    mask: np.ndarray
    i0_counts: np.ndarray
    source: str
    od_spread: float
    n_floored: int = 0

    @property
    def n_pixels(self) -> int:
        return int(self.mask.sum())


def _check_counts(counts) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float32)
    if c.ndim != 3 or min(c.shape) < 1:
        raise InputError(f"counts must have shape (n_energies, ny, nx), got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise InputError(f"counts hold {int(np.count_nonzero(~np.isfinite(c)))} non-finite values; expected "
                         "detector counts at every pixel")
    return c


def choose_i0_region(counts, *, quantile: float = 0.99) -> np.ndarray:
    """The brightest, flattest pixels of a transmission stack: the automatic I0 region.

    Parameters
    ----------
    counts : (n_energies, ny, nx) float
        Transmitted counts.
    quantile : float
        Per-energy bright level used for the rough OD (robust to a few hot pixels).

    Returns
    -------
    mask : (ny, nx) bool

    Notes
    -----
    Each pixel's rough OD ``−ln(I_e / q_e)`` (``q_e`` the ``quantile`` of energy e's counts) is
    scored by its mean plus its standard deviation over energies: empty pixels score ≈ 0 (bright)
    with only noise across energies (flat), sample pixels more. Otsu's threshold on the score
    splits empty from sample; within the empty class only pixels scoring within three robust
    standard deviations (1.4826 x MAD) of its median are kept, which drops the faint halo of
    particles, and the class is opened (isolated pixels removed) and eroded by two pixels so the
    region keeps clear of blurred or drifting particle edges. When the split leaves fewer than ``MIN_I0_PIXELS``
    pixels, the ``MIN_I0_PIXELS`` best-scoring pixels are used (and a warning logged).
    """
    c = _check_counts(counts)
    if not 0.5 <= quantile <= 1.0:
        raise InputError(f"quantile must be in [0.5, 1], got {quantile}")
    n_e, ny, nx = c.shape
    if ny * nx < MIN_I0_PIXELS:
        raise InputError(f"the images have {ny * nx} pixels; an I0 region needs at least {MIN_I0_PIXELS}")
    bright = np.quantile(c.reshape(n_e, -1), quantile, axis=1).astype(np.float64)
    if np.any(bright <= 0):
        bad = int(np.argmax(bright <= 0))
        raise InputError(f"image {bad} of the stack has no counts (its {quantile:.0%} quantile is "
                         f"{bright[bad]:g}); expected a transmission image")
    od = -np.log(np.maximum(c, _COUNT_FLOOR) / bright[:, None, None])
    score = od.mean(axis=0) + od.std(axis=0)
    t = float(otsu_thresholds(score.reshape(1, -1))[0])
    empty = score <= t
    # Otsu's empty class still holds the faint halo of particles (a few nm of material, blur):
    # keep only pixels whose score is within 3 robust sigmas of the class's median, the spread
    # that shot noise alone gives empty pixels
    med = float(np.median(score[empty]))
    mad = 1.4826 * float(np.median(np.abs(score[empty] - med)))
    empty &= score <= med + 3.0 * mad
    empty = ndimage.binary_opening(empty, iterations=1)
    eroded = ndimage.binary_erosion(empty, iterations=_EDGE_MARGIN_PX, border_value=1)
    if eroded.sum() >= MIN_I0_PIXELS:
        return eroded
    if empty.sum() >= MIN_I0_PIXELS:
        log.warning("I0 region: the empty part of the field is thin; using it without an edge margin "
                    "(%d pixels)", int(empty.sum()))
        return empty
    log.warning("I0 region: no clearly empty part of the field; using the %d brightest, flattest pixels",
                MIN_I0_PIXELS)
    order = np.argsort(score.reshape(-1), kind="stable")[:MIN_I0_PIXELS]
    mask = np.zeros(ny * nx, bool)
    mask[order] = True
    return mask.reshape(ny, nx)


def _box_mask(box, shape) -> np.ndarray:
    try:
        y0, y1, x0, x1 = (int(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise InputError(f"i0_box must be four integers (y0, y1, x0, x1), got {box!r}") from exc
    ny, nx = shape
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise InputError(f"i0_box (y0, y1, x0, x1) = {(y0, y1, x0, x1)} is not a non-empty box inside the "
                         f"{ny} x {nx} image; expected 0 <= y0 < y1 <= {ny} and 0 <= x0 < x1 <= {nx}")
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def stack_optical_density(counts, *, i0_box=None, i0_mask=None) -> tuple[np.ndarray, I0Region]:
    """Optical density ``−ln(I / I0)`` of a transmission stack, I0 per energy from an empty region.

    Parameters
    ----------
    counts : (n_energies, ny, nx) float
        Transmitted counts, one image per energy, on one grid.
    i0_box : (y0, y1, x0, x1) ints, optional
        The I0 region as a box of pixel indices (half-open, as Python slices).
    i0_mask : (ny, nx) bool, optional
        The I0 region as a mask. Give at most one of ``i0_box`` and ``i0_mask``; with neither the
        region is chosen by :func:`choose_i0_region`.

    Returns
    -------
    od : (n_energies, ny, nx) float32
    region : I0Region
    """
    c = _check_counts(counts)
    if i0_box is not None and i0_mask is not None:
        raise InputError("give the I0 region as i0_box or as i0_mask, not both")
    if i0_mask is not None:
        mask = np.asarray(i0_mask)
        if mask.shape != c.shape[1:]:
            raise InputError(f"i0_mask has shape {mask.shape} but the images have {c.shape[1:]}")
        mask, source = mask.astype(bool), "mask"
    elif i0_box is not None:
        mask, source = _box_mask(i0_box, c.shape[1:]), "box"
    else:
        mask, source = choose_i0_region(c), "auto"
    if not mask.any():
        raise InputError("the I0 region is empty; expected at least one pixel")
    i0 = c[:, mask].astype(np.float64).mean(axis=1)
    if np.any(i0 <= 0):
        bad = int(np.argmax(i0 <= 0))
        raise InputError(f"the I0 region has no counts at energy index {bad}; expected an empty, bright part "
                         "of the field")
    n_floored = int(np.count_nonzero(c < _COUNT_FLOOR))
    od = (-np.log(np.maximum(c, _COUNT_FLOOR) / i0[:, None, None].astype(np.float32))).astype(np.float32)
    spread = float(np.max(od[:, mask].std(axis=1)))
    if mask.sum() < MIN_I0_PIXELS:
        log.warning("I0 region holds only %d pixels; its noise enters every pixel's OD", int(mask.sum()))
    return od, I0Region(mask, i0, source, spread, n_floored)
