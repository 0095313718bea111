"""Optical density of full-field intensity images from flat and dark fields.

A full-field (TXM) image records ``I = D + (F − D)·exp(−OD)``: the dark signal D (no beam), plus
the flat field F (beam, no sample) attenuated by the sample. So

    OD = −ln((I − D) / (F − D)),

with F and D the averages of the recorded flat and dark fields. Where the ratio is not positive
(I ≤ D: the sample stopped everything, or noise) or below ``floor``, it is set to ``floor`` so
the OD is at most −ln(floor); where F ≤ D the pixel saw no beam and carries no information (NaN).
Such pixels are counted and logged as a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from chemtomo.core import InputError

__all__ = ["flat_field_od", "FlatFieldInfo", "DEFAULT_TRANSMISSION_FLOOR"]

log = logging.getLogger(__name__)

#: Default lowest transmission: OD is capped at −ln(1e-3) ≈ 6.9, beyond anything a TXM measures
#: through a sample with usable contrast (a 12-bit detector's dynamic range is ~4e3).
DEFAULT_TRANSMISSION_FLOOR = 1e-3


@dataclass(frozen=True)
class FlatFieldInfo:
    """What :func:`flat_field_od` did.

    n_nonpositive : pixels where I − D ≤ 0 (set to the floor)
    n_floored     : pixels whose positive ratio was below the floor (set to the floor)
    n_no_beam     : pixels where F − D ≤ 0 (NaN)
    """

    n_nonpositive: int
    n_floored: int
    n_no_beam: int


def _mean_field(field, shape: tuple[int, int], name: str) -> np.ndarray:
    a = np.asarray(field, np.float32)
    if a.ndim == 3:
        a = a.mean(axis=0, dtype=np.float64).astype(np.float32)
    if a.shape != shape:
        raise InputError(f"{name} has images of shape {a.shape[-2:] if a.ndim >= 2 else a.shape}; expected the "
                         f"projections' shape {shape}")
    return a


def flat_field_od(intensity, flats, darks=None, *, floor: float = DEFAULT_TRANSMISSION_FLOOR,
                  return_info: bool = False):
    """Optical density −ln((I − D)/(F − D)) of full-field intensity images.

    Parameters
    ----------
    intensity : (n, ny, nx) or (ny, nx) float
        Recorded images (counts).
    flats : (n_flat, ny, nx) or (ny, nx) float
        Flat fields (beam, no sample); averaged over the first axis.
    darks : (n_dark, ny, nx) or (ny, nx) float, optional
        Dark fields (no beam); averaged. None: zero dark signal.
    floor : float
        Lowest transmission (0 < floor < 1); the OD is at most −ln(floor).
    return_info : bool
        Also return a :class:`FlatFieldInfo` with the counts of corrected pixels.

    Returns
    -------
    od : float32, the shape of ``intensity``; NaN where the flat saw no beam
    info : FlatFieldInfo (only with ``return_info``)

    Raises
    ------
    InputError
        Flats or darks of another image shape, a floor outside (0, 1).

    Examples
    --------
    >>> flat, dark = np.full((8, 8), 1000.0), np.full((8, 8), 100.0)
    >>> img = dark + (flat - dark) * np.exp(-0.5)
    >>> round(float(flat_field_od(img, flat, dark)[0, 0]), 4)
    0.5
    """
    i = np.asarray(intensity, np.float32)
    if i.ndim not in (2, 3):
        raise InputError(f"intensity must be an image (ny, nx) or a stack (n, ny, nx), got shape {i.shape}")
    if not (np.isfinite(floor) and 0 < floor < 1):
        raise InputError(f"floor (lowest transmission) must be in (0, 1), got {floor!r}")
    shape = i.shape[-2:]
    f = _mean_field(flats, shape, "flats")
    d = np.zeros(shape, np.float32) if darks is None else _mean_field(darks, shape, "darks")
    beam = f - d
    signal = i - d
    no_beam = np.broadcast_to(beam <= 0, i.shape)
    nonpositive = (signal <= 0) & ~no_beam
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(no_beam, np.nan, signal / np.where(beam > 0, beam, 1.0)).astype(np.float32)
    floored = (ratio < floor) & ~nonpositive
    ratio = np.where(nonpositive | floored, np.float32(floor), ratio)
    od = (-np.log(ratio)).astype(np.float32)
    info = FlatFieldInfo(n_nonpositive=int(nonpositive.sum()), n_floored=int(np.count_nonzero(floored)),
                         n_no_beam=int(no_beam.sum()))
    if info.n_nonpositive or info.n_no_beam:
        log.warning("flat_field_od: %d of %d pixels had I - dark <= 0 (set to OD %.3g) and %d had flat - dark <= 0 "
                    "(no beam: NaN)", info.n_nonpositive, i.size, -np.log(floor), info.n_no_beam)
    return (od, info) if return_info else od
