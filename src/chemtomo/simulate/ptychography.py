"""Far-field ptychography of a virtual object: raster, probe shifts, diffraction, noise, detector.

Geometry (the same as ``chemtomo.ptycho.operators``): positions are (y, x) probe centres relative
to the object array's centre pixel ``(oy // 2, ox // 2)``; the probe's centre is its pixel
``(h // 2, w // 2)``. Frame j is

    I_j(q) ~ Poisson( dose · |fft2c( P(r − f_j) · O(r + k_j) )|² + b(q) ),    masked pixels = 0

with ``k_j`` the integer part of the position, ``f_j`` the sub-pixel rest (the probe is moved by an
exact Fourier shift), ``fft2c`` the centred orthonormal FFT (zero frequency at the frame centre,
as the detector records it), ``sum |P|² = 1`` so that an empty object gives ``dose`` photons per
frame, and ``b`` a smooth static incoherent background in counts per pixel.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import InputError
from ..core.fft import fft2, fft2c, ifft2

__all__ = ["detector_background", "detector_mask", "diffraction_frames", "object_shape", "raster_positions"]


def raster_positions(field_m: tuple[float, float], step_m: float, *, jitter_m: float = 0.0,
                     seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """Square raster covering a field, centred on 0, with random position jitter.

    Parameters
    ----------
    field_m : (height, width) metres
        The raster spans at least this field: ``ceil(size / step) + 1`` points per axis.
    step_m : float
        Raster step, metres (paper: 70e-9).
    jitter_m : float
        Standard deviation of the actual positions around the nominal raster, per axis, metres.
    seed : int or numpy.random.Generator

    Returns
    -------
    nominal, actual : (n, 2) float64 (y, x) metres, rows in raster order (x fastest)
    """
    if not (math.isfinite(step_m) and step_m > 0):
        raise InputError(f"raster: step_m must be a positive number of metres, got {step_m!r}")
    if not (math.isfinite(jitter_m) and jitter_m >= 0):
        raise InputError(f"raster: jitter_m must be a finite number >= 0, got {jitter_m!r}")
    ny, nx = (math.ceil(f / step_m) + 1 for f in field_m)
    y = (np.arange(ny) - (ny - 1) / 2.0) * step_m
    x = (np.arange(nx) - (nx - 1) / 2.0) * step_m
    gy, gx = np.meshgrid(y, x, indexing="ij")
    nominal = np.stack([gy.ravel(), gx.ravel()], axis=1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return nominal, nominal + rng.normal(0.0, 1.0, nominal.shape) * jitter_m


def object_shape(positions_px: np.ndarray, frame_shape: tuple[int, int], margin_px: int = 2) -> tuple[int, int]:
    """Smallest object array, centred on position 0, that holds every (shifted) frame."""
    extent = np.ceil(np.max(np.abs(positions_px), axis=0) + 0.5).astype(int)
    return (int(2 * extent[0] + frame_shape[0] + 2 * margin_px), int(2 * extent[1] + frame_shape[1] + 2 * margin_px))


def detector_background(shape: tuple[int, int], counts_per_pixel: float, *, width_fraction: float = 0.25) -> np.ndarray:
    """Smooth static incoherent background, counts per pixel, mean ``counts_per_pixel``.

    A Lorentzian-squared halo around the frame centre (diffuse scattering from the optics) on a
    constant floor (dark current), half of the total each, float32 (h, w).
    """
    if not (math.isfinite(counts_per_pixel) and counts_per_pixel >= 0):
        raise InputError(f"background: counts_per_pixel must be a finite number >= 0, got {counts_per_pixel!r}")
    h, w = shape
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    r2 = (yy ** 2 + xx ** 2) / (width_fraction * min(h, w)) ** 2
    halo = 1.0 / (1.0 + r2) ** 2
    b = 0.5 + 0.5 * halo / halo.mean()
    return (counts_per_pixel * b / b.mean()).astype(np.float32)


def detector_mask(shape: tuple[int, int], *, dead_fraction: float = 0.002,
                  seed: int | np.random.Generator = 0) -> np.ndarray:
    """Valid-pixel mask (True = valid): a few isolated dead pixels and one dead column segment.

    The central pixels (within 3 of the centre, where the bright field lands) are kept valid;
    there is no beamstop.
    """
    if not 0.0 <= dead_fraction < 0.5:
        raise InputError(f"detector mask: dead_fraction must be in [0, 0.5), got {dead_fraction!r}")
    h, w = shape
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    mask = rng.uniform(size=(h, w)) >= dead_fraction
    if dead_fraction > 0:
        col = int(rng.integers(w // 8, w // 2 - 4))
        start = int(rng.integers(0, h // 2))
        mask[start:start + h // 4, col] = False
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    mask[(np.abs(yy) <= 3) & (np.abs(xx) <= 3)] = True
    return mask


def diffraction_frames(obj: np.ndarray, probe: np.ndarray, positions_px: np.ndarray, *, dose_photons: float,
                       background: np.ndarray | None = None, mask: np.ndarray | None = None,
                       seed: int | np.random.Generator = 0, noise: bool = True) -> np.ndarray:
    """Noisy far-field diffraction frames of a scan.

    Parameters
    ----------
    obj : (oy, ox) complex64
        Object transmission; position 0 is pixel (oy // 2, ox // 2).
    probe : (h, w) complex
        Illumination centred on pixel (h // 2, w // 2), ``sum |probe|² = 1``.
    positions_px : (n, 2) float
        Probe centres (y, x) in object pixels relative to the object centre.
    dose_photons : float
        Photons per frame incident on the sample (the counts of a frame through empty object).
    background : (h, w) float32 counts per pixel, or None
    mask : (h, w) bool, True where valid, or None
    seed : int or numpy.random.Generator
    noise : bool
        Poisson noise (True) or the expected counts (False).

    Returns
    -------
    frames : (n, h, w) float32 photon counts, zero frequency at the centre; 0 at masked pixels.
    """
    if not (math.isfinite(dose_photons) and dose_photons > 0):
        raise InputError(f"diffraction: dose_photons must be a positive number of photons per frame, "
                         f"got {dose_photons!r}")
    h, w = probe.shape
    oy, ox = obj.shape
    pos = np.asarray(positions_px, np.float64)
    k = np.rint(pos).astype(np.int64)
    f = pos - k
    corner = k + np.array([oy // 2 - h // 2, ox // 2 - w // 2])
    if np.any(corner < 0) or np.any(corner[:, 0] + h > oy) or np.any(corner[:, 1] + w > ox):
        raise InputError(f"diffraction: a frame at positions within ±{np.abs(pos).max():.1f} px leaves the "
                         f"object array of shape {obj.shape}; enlarge the object")
    # exact sub-pixel shift of the probe by f: multiply its spectrum by exp(−2πi q·f)
    qy = np.fft.fftfreq(h)[None, :, None]
    qx = np.fft.fftfreq(w)[None, None, :]
    ramp = np.exp(-2j * np.pi * (qy * f[:, 0, None, None] + qx * f[:, 1, None, None])).astype(np.complex64)
    shifted = ifft2(fft2(probe.astype(np.complex64))[None] * ramp).astype(np.complex64)
    iy = corner[:, 0, None, None] + np.arange(h)[None, :, None]
    ix = corner[:, 1, None, None] + np.arange(w)[None, None, :]
    exit_wave = shifted * obj[iy, ix]
    expected = dose_photons * np.abs(fft2c(exit_wave)) ** 2
    if background is not None:
        expected = expected + background[None]
    if noise:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        frames = rng.poisson(expected).astype(np.float32)
    else:
        frames = expected.astype(np.float32)
    if mask is not None:
        frames[:, ~mask] = 0.0
    return frames
