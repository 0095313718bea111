"""The container full-field readers return (Data Exchange, TIFF, Xradia): one module that every
reader imports, so that ``fullfield`` can dispatch to ``xradia`` without an import circle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FullField"]


@dataclass(frozen=True)
class FullField:
    """Full-field images of one file with their metadata, as read (no correction applied).

    data       : (n, ny, nx) float32 images (intensity, or optical density for ready OD data)
    flats      : (n_flat, ny, nx) float32 flat fields, or None if the file has none
    darks      : (n_dark, ny, nx) float32 dark fields, or None
    angles_deg : (n,) float64 tilt angles in degrees, or None if the file has none
    energy_ev  : photon energy in eV, NaN if the file has none (or none with a unit)
    pixel_m    : effective sample-plane pixel, metres, NaN if the file has none (or none with a unit)
    source     : the file
    """

    data: np.ndarray
    flats: np.ndarray | None
    darks: np.ndarray | None
    angles_deg: np.ndarray | None
    energy_ev: float
    pixel_m: float
    source: str
