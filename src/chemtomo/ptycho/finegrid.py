"""The forward model on a grid finer than the detector's (``PtychoOptions.oversample``).

Every far-field code (chemtomo's default, PtyLab, pty-chi, PtychoShelves) forms the exit wave
``P·O`` on the detector's own grid, the object pixel ``λz / (N Δd)``. The product of two waves
that each fill that grid's band has a spectrum twice as wide; on the one grid it wraps around
(aliases) into the detector's band. A detector sees no such wrap: the part of the far field
beyond its edge is simply not recorded. The difference is small (about 0.3 % of the counts, L1,
on the regime matrix's textured object), but at 10⁹ photons per frame it, not the photon
noise, sets the error: on frames made without it (regime cells 36–39, ``alias_free_frames``)
every code ends 5–10× above the error it reaches on its own simulator's frames.

With ``oversample = m`` the problem is solved on a grid m times finer:

- the frames are padded to (m·ny, m·nx) with *unmeasured* pixels around the detector (masked:
  the model's far field there floats free), so the object pixel is ``λz / (m N Δd)``;
- the object is band-limited to the detector's band (``band_limit``, once per iteration in
  ``engine.Run.end_iteration``): the data say nothing about the finer detail, and left free it
  trades places with the probe (regime cell 37, seed 0: OD error 0.134 free, 0.059 band-limited,
  0.147 on the one grid);
- the results are brought back to the detector's grid (``to_detector_grid``): the object and
  the probe band-limited and sampled at every m-th pixel (the probe ×m, so that probe × object
  reproduces the data in the one-grid model), the background cropped to the detector.

Costs m² the transforms and the memory of the frames. It helps only where the data are bright
enough for the model error to show (10⁹ photons per frame on regime cells 32–39: 1.4–3.8× lower
OD error), and on frames made *with* the one grid's aliasing (chemtomo's simulator) it is the
wrong model (11–17× the error at 10⁹; docs/results/ptychography.md, "Session 36"). Hence the
default, ``oversample = 0``, lets the fit decide (``reconstruct._grid_from_fit``): the detector's
grid, and the finer one as well only where the detector's converges far above its Poisson floor,
the lower misfit kept.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..core.containers import Scan
from ..core.fft import stack_fft2

__all__ = ["band_limit", "detector_window", "fine_shape", "finer_scan", "to_detector_grid", "upsampled"]


def fine_shape(shape: tuple[int, int], m: int) -> tuple[int, int]:
    """The fine grid's array shape for an object array of ``shape`` on the detector's grid, such
    that the fine centre pixel (``s // 2``) is m times the coarse one and every m-th fine pixel
    from 0 is a coarse pixel (``to_detector_grid`` returns ``shape``)."""
    return tuple(int(m * s) if s % 2 == 0 else int(m * (s - 1) + 1) for s in shape)


@functools.lru_cache(maxsize=8)
def _band(shape: tuple[int, int], m: int) -> np.ndarray:
    """True at the spatial frequencies of an array of ``shape`` (fine pixels) within the
    detector's band: |f| ≤ 1 / (2m) cycles per fine pixel along each axis (made once per shape:
    ``band_limit`` runs every iteration; read-only)."""
    fy = np.abs(np.fft.fftfreq(shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(shape[1]))[None, :]
    band = (fy <= 0.5 / m) & (fx <= 0.5 / m)
    band.flags.writeable = False
    return band


def band_limit(a: np.ndarray, m: int) -> None:
    """Band-limit ``a`` (..., ny, nx) complex64 in place to the detector's band (``_band``)."""
    spectrum = stack_fft2(np.ascontiguousarray(a, np.complex64))
    spectrum[..., ~_band(tuple(a.shape[-2:]), m)] = 0
    a[...] = stack_fft2(spectrum, inverse=True, overwrite_x=True)


def to_detector_grid(a: np.ndarray, m: int) -> np.ndarray:
    """``a`` (..., ny, nx) on the fine grid, band-limited and sampled at every m-th pixel from 0
    (complex64)."""
    out = np.array(a, np.complex64)
    band_limit(out, m)
    return np.ascontiguousarray(out[..., ::m, ::m])


def upsampled(a: np.ndarray, m: int) -> np.ndarray:
    """``a`` (..., n, n') interpolated onto a grid m times finer (its spectrum zero-padded, the
    zero frequency kept at the centre pixel): every m-th sample from 0 is ``a``'s (complex64)."""
    a = np.asarray(a, np.complex64)
    ny, nx = a.shape[-2:]
    spectrum = np.fft.fftshift(stack_fft2(np.ascontiguousarray(a)), axes=(-2, -1))
    padded = np.zeros(a.shape[:-2] + (m * ny, m * nx), np.complex64)
    y0, x0 = (m * ny) // 2 - ny // 2, (m * nx) // 2 - nx // 2
    padded[..., y0:y0 + ny, x0:x0 + nx] = spectrum
    fine = stack_fft2(np.ascontiguousarray(np.fft.ifftshift(padded, axes=(-2, -1))), inverse=True)
    return (fine * np.float32(m * m)).astype(np.complex64)


def detector_window(n_fine: tuple[int, int], n: tuple[int, int]) -> tuple[slice, slice]:
    """Where the detector's (ny, nx) sit in the padded (m·ny, m·nx) frame (zero frequency at the
    centre pixel of both)."""
    return tuple(slice(big // 2 - small // 2, big // 2 - small // 2 + small) for big, small in zip(n_fine, n))


def finer_scan(scan: Scan, m: int) -> Scan:
    """``scan`` on the grid m times finer: frames padded with unmeasured (masked) pixels around
    the detector, the probe guess interpolated. Positions, energy, distance and detector pixel
    are unchanged, so ``pixel_yx_m`` is 1/m of the scan's."""
    n, ny, nx = scan.frames.shape
    window = detector_window((m * ny, m * nx), (ny, nx))
    frames = np.zeros((n, m * ny, m * nx), np.float32)
    frames[(slice(None),) + window] = scan.frames
    mask = np.zeros((m * ny, m * nx), bool)
    mask[window] = True if scan.mask is None else np.asarray(scan.mask, bool)
    probe = None if scan.probe is None else upsampled(scan.probe, m)
    return dataclasses.replace(scan, frames=frames, mask=mask, probe=probe)
