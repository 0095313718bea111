"""Optical density (and phase) images from reconstructed complex transmissions.

A ptychographic reconstruction T(y, x) is known only up to a global amplitude scale, a phase
offset and often a linear phase ramp (a sub-pixel shift of the diffraction pattern's centre).
All three are fixed on the empty (air) region, where the true transmission is 1: |T| is divided
by its air median, and a plane a + b·y + c·x fitted to the air's phase is subtracted. Then
(DESIGN.md) ``OD = −ln |T|² = (4π/λ) ∫β dz`` and ``φ = arg T = −k ∫δ dz``.

The air region is found automatically unless given: the image's OD is smoothed (σ = 2 px, to lift
it above the noise), Otsu's threshold splits it into a low-OD (air) and a high-OD (sample) class,
the air class is eroded by 2 px to keep off the particles' blurred edges, and an image whose
classes are not separated by more than 4 noise σ is taken as all air.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from chemtomo.core import InputError

from ._otsu import otsu_thresholds

__all__ = ["optical_density", "ODInfo"]

log = logging.getLogger(__name__)

_SMOOTH_PX = 2.0          # Gaussian σ (pixels) of the smoothing before the air threshold
_ERODE_PX = 2             # air mask erosion, pixels
_SEPARATION_SIGMAS = 4.0  # classes closer than this many noise σ: no sample in the image
_MIN_AIR_PIXELS = 16      # fewer air pixels than this cannot fix offset and ramp
_MAD_TO_SIGMA = 1.482602218505602
_MIN_SIGMA_OD = 1e-4      # floor on the air noise σ for the negative-OD test (noise-free data)


@dataclass(frozen=True)
class ODInfo:
    """What :func:`optical_density` did to each image.

    air_mask      : (n, ny, nx) bool, the air pixels used for the corrections
    air_amplitude : (n,) median |T| of the air before normalisation
    phase_plane   : (n, 3) phase offset (rad), ramp along y and along x (rad/pixel) removed
    noise_sigma   : (n,) robust σ of the OD in the air
    invalid       : (n, ny, nx) bool, pixels masked in the OD (set to ``fill``): non-finite or
                    zero |T|, or OD below −``negative_sigmas`` × noise σ
    n_nonfinite   : pixels masked because |T| was zero or T not finite
    n_negative    : pixels masked because their OD was significantly negative
    """

    air_mask: np.ndarray
    air_amplitude: np.ndarray
    phase_plane: np.ndarray
    noise_sigma: np.ndarray
    invalid: np.ndarray
    n_nonfinite: int
    n_negative: int


def _robust_sigma(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-image 1.4826 × MAD of ``values`` over ``mask`` (n, ny, nx) -> (n,)."""
    v = np.where(mask, values, np.nan).reshape(values.shape[0], -1)
    med = np.nanmedian(v, axis=1)
    return _MAD_TO_SIGMA * np.nanmedian(np.abs(v - med[:, None]), axis=1)


def _auto_air(od: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Air mask of each image (n, ny, nx) from its raw OD (see the module docstring)."""
    n = od.shape[0]
    if valid.all():  # nothing to fill
        smooth = ndimage.gaussian_filter(od, (0, _SMOOTH_PX, _SMOOTH_PX))
    else:
        fill = np.nanmedian(np.where(valid, od, np.nan).reshape(n, -1), axis=1)
        smooth = ndimage.gaussian_filter(np.where(valid, od, fill[:, None, None]), (0, _SMOOTH_PX, _SMOOTH_PX))
    t = otsu_thresholds(np.where(valid, smooth, np.nan).reshape(n, -1))
    low = valid & (smooth <= t[:, None, None])
    high = valid & ~low
    sigma = _robust_sigma(smooth, low)
    mean_low = np.nanmean(np.where(low, smooth, np.nan).reshape(n, -1), axis=1)
    with np.errstate(invalid="ignore"):
        mean_high = np.nanmean(np.where(high, smooth, np.nan).reshape(n, -1), axis=1)
    no_sample = ~(mean_high - mean_low > _SEPARATION_SIGMAS * np.maximum(sigma, 1e-12))
    air = np.where(no_sample[:, None, None], valid, low)
    eroded = ndimage.binary_erosion(air, structure=np.ones((1, 3, 3), bool), iterations=_ERODE_PX)
    enough = eroded.reshape(n, -1).sum(axis=1) >= max(_MIN_AIR_PIXELS, 0.01 * od[0].size)
    return np.where(enough[:, None, None], eroded, air)


def _plane_fit(values: np.ndarray, weights: np.ndarray, yv: np.ndarray, xv: np.ndarray,
               ramp: bool = True) -> np.ndarray:
    """Least-squares plane a + b·y + c·x (coefficients (n, 3)) fitted to each image of ``values``
    (n, ny, nx) on the pixels ``weights`` (bool), with y = ``yv`` along rows and x = ``xv``
    along columns; without ``ramp`` the constant a alone (b = c = 0). The normal equations'
    moments come from the weights' and the weighted values' row and column sums (the basis is
    separable): a few passes over the stack instead of a product per pixel and pair of basis
    functions."""
    w = np.asarray(weights, bool)
    v = np.where(w, values, 0.0).astype(np.float64)
    if not ramp:
        fit = np.zeros((len(w), 3))
        fit[:, 0] = v.sum(axis=(1, 2)) / w.sum(axis=(1, 2), dtype=np.float64)
        return fit

    def dot(a, b):  # a · b along the last axis, each image's sum on its own (no BLAS)
        return (a * b).sum(axis=-1)

    def moments(a):  # row sums, column sums, and (Σa, Σa·y, Σa·x) per image
        rows, cols = a.sum(axis=2, dtype=np.float64), a.sum(axis=1, dtype=np.float64)  # (n, ny), (n, nx)
        return rows, cols, np.stack([rows.sum(axis=1), dot(rows, yv), dot(cols, xv)], axis=1)

    rows, cols, first = moments(w)
    m = np.empty((len(w), 3, 3))
    m[:, 0, :] = m[:, :, 0] = first
    m[:, 1, 1] = dot(rows, yv * yv)
    m[:, 1, 2] = m[:, 2, 1] = dot(dot(w, xv), yv)  # Σa·x·y
    m[:, 2, 2] = dot(cols, xv * xv)
    rhs = moments(v)[2]
    return np.linalg.solve(m, rhs[..., None])[..., 0]


def _phase_factor(c0: np.ndarray, cy: np.ndarray, cx: np.ndarray, yv: np.ndarray, xv: np.ndarray) -> np.ndarray:
    """exp(−i (c0 + cy·y + cx·x)) per image (n, ny, nx) complex64, from the coefficients (n,):
    the product of its row factor and column factor (ny + nx exponentials per image, not
    ny·nx), formed in double precision and rounded once."""
    rows = np.exp(-1j * (c0[:, None] + cy[:, None] * yv))  # (n, ny)
    cols = np.exp(-1j * (cx[:, None] * xv))                # (n, nx)
    out = np.empty((len(rows), len(yv), len(xv)), np.complex64)
    return np.multiply(rows[:, :, None], cols[:, None, :], out=out, casting="same_kind")


#: Pixels of the images :func:`optical_density` works on at a time. Every step works image by
#: image, and a few images' temporaries (2 MiB of float64 here) are reused by the allocator from
#: one block to the next, where each temporary of the whole stack was fresh memory, its pages
#: mapped anew. The paper preset's 158 images of 238 × 342: 5.9–6.2 s as whole-stack steps,
#: 1.9–2.1 s in blocks of 2¹⁷–2²⁰ pixels (2.4–2.6 s at 2²²), the same values to the bit
#: (tests/chem/test_optical_density.py). With the separable phase factor and plane fit and
#: Otsu's histogram without masking copies where every value is finite.
CHUNK_PIXELS = 1 << 18


def _amplitude(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|T| of images t (k, ny, nx) complex64, and their valid pixels (T finite and not zero)."""
    amp = np.abs(t)
    return amp, np.isfinite(t) & (amp > 0)


def _raw_od(amp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """−ln|T|² as float32, NaN where the pixel is not valid."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, -2.0 * np.log(np.where(valid, amp, 1.0)), np.nan).astype(np.float32)


def _correct(t: np.ndarray, amp: np.ndarray, od_raw: np.ndarray, valid: np.ndarray, air: np.ndarray, ramp: bool,
             negative_sigmas: float) -> dict:
    """The air corrections of images t (k, ny, nx) with |T| ``amp`` (module docstring): the OD
    scaled to |T| = 1 in air, the phase less its offset and ramp in air, the masked pixels, and
    the fitted numbers."""
    k, ny, nx = t.shape
    # amplitude: |T| = 1 in air
    air_amp = np.nanmedian(np.where(air, amp, np.nan).reshape(k, -1), axis=1)
    od = od_raw + (2.0 * np.log(air_amp)).astype(np.float32)[:, None, None]

    # phase: offset and ramp, first estimated without unwrapping from neighbour phase differences
    yv, xv = np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2
    gy = gx = np.zeros(k)
    if ramp:
        pair_y = air[:, 1:, :] & air[:, :-1, :]
        pair_x = air[:, :, 1:] & air[:, :, :-1]
        gy = np.angle(np.sum(np.where(pair_y, t[:, 1:, :] * np.conj(t[:, :-1, :]), 0), axis=(1, 2)))
        gx = np.angle(np.sum(np.where(pair_x, t[:, :, 1:] * np.conj(t[:, :, :-1]), 0), axis=(1, 2)))
    t1 = np.where(valid, t, 0) * _phase_factor(np.zeros(k), gy, gx, yv, xv)
    offset = np.angle(np.sum(np.where(air, t1, 0), axis=(1, 2)))
    t1 *= np.exp(-1j * offset).astype(np.complex64)[:, None, None]
    fine = _plane_fit(np.angle(t1), air, yv, xv, ramp)  # residual, small: no wrapping
    phase = np.angle(t1 * _phase_factor(fine[:, 0], fine[:, 1], fine[:, 2], yv, xv)).astype(np.float32)
    plane = np.zeros((k, 3))
    plane[:, 0] = offset + fine[:, 0]
    if ramp:
        plane[:, 1] = gy + fine[:, 1]
        plane[:, 2] = gx + fine[:, 2]

    sigma = _robust_sigma(od, air)
    negative = valid & (od < -negative_sigmas * np.maximum(sigma, _MIN_SIGMA_OD)[:, None, None])
    return {"od": od, "phase": phase, "air_amp": air_amp, "plane": plane, "sigma": sigma,
            "invalid": ~valid | negative, "n_negative": int(np.count_nonzero(negative))}


def optical_density(transmission, *, air_mask=None, return_phase: bool = False, return_info: bool = False,
                    ramp: bool = True, fill: float = np.nan, negative_sigmas: float = 5.0):
    """Optical density −ln|T|² of complex transmission images, normalised on the air region.

    Parameters
    ----------
    transmission : (ny, nx) or (n, ny, nx) complex
        Reconstructed transmission(s). A real array is taken as |T| with zero phase.
    air_mask : bool (ny, nx) or (n, ny, nx), optional
        Empty pixels. Default: found automatically per image (module docstring).
    return_phase : bool
        Also return the corrected phase images (radians).
    return_info : bool
        Also return an :class:`ODInfo` (air masks, corrections, masked-pixel counts).
    ramp : bool
        Remove a linear phase ramp fitted on the air (else only the phase offset).
    fill : float
        Value written into masked pixels (default NaN, so they are never mistaken for data).
    negative_sigmas : float
        An OD below −negative_sigmas × (air noise σ, at least 1e-4) is unphysical (more light
        than in air) and is masked; the count is reported and logged.

    Returns
    -------
    od : float32, shape of ``transmission``
    phase : float32, same shape (only with ``return_phase``), radians, zero mean and no ramp in air
    info : ODInfo (only with ``return_info``)

    Raises
    ------
    InputError
        Wrong dimensionality, an air mask of the wrong shape, an image with fewer than 16 usable
        air pixels, or no finite non-zero pixel at all.

    Examples
    --------
    >>> t = np.ones((32, 32), np.complex64); t[8:24, 8:24] *= np.exp(-0.25)
    >>> od = optical_density(t, air_mask=np.pad(np.zeros((28, 28), bool), 2, constant_values=True))
    >>> round(float(od[16, 16]), 4)
    0.5
    """
    t = np.asarray(transmission)
    if t.ndim not in (2, 3):
        raise InputError(f"transmission must be an image (ny, nx) or a stack (n, ny, nx), got shape {t.shape}")
    if not np.isfinite(negative_sigmas) or negative_sigmas <= 0:
        raise InputError(f"negative_sigmas must be a positive number, got {negative_sigmas!r}")
    single = t.ndim == 2
    t = (t[None] if single else t).astype(np.complex64, copy=False)
    n, ny, nx = t.shape
    given = None
    if air_mask is not None:
        given = np.asarray(air_mask, dtype=bool)
        if given.shape not in ((ny, nx), (n, ny, nx)):
            raise InputError(f"air_mask has shape {given.shape}; expected {(ny, nx)} or {(n, ny, nx)}")
        given = np.broadcast_to(given, (n, ny, nx))
    # every step below works image by image: a few images at a time (``CHUNK_PIXELS``)
    per = max(1, CHUNK_PIXELS // (ny * nx))
    blocks = [(i, min(n, i + per)) for i in range(0, n, per)]
    od = np.empty((n, ny, nx), np.float32)
    air = np.empty((n, ny, nx), bool)

    # first pass: the raw OD and the air of every image, so that a stack with too little air
    # fails before any further work
    any_valid = False
    for i, j in blocks:
        amp, valid = _amplitude(t[i:j])
        od_raw = _raw_od(amp, valid)
        od[i:j] = od_raw
        if not valid.any():  # the air is part of the valid pixels: none here
            air[i:j] = False
            continue
        any_valid = True
        air[i:j] = _auto_air(od_raw, valid) if given is None else given[i:j] & valid
    if not any_valid:
        raise InputError("transmission has no finite, non-zero pixel")
    counts = air.reshape(n, -1).sum(axis=1)
    if np.any(counts < _MIN_AIR_PIXELS):
        bad = np.flatnonzero(counts < _MIN_AIR_PIXELS)
        raise InputError(f"images {bad[:10].tolist()} have fewer than {_MIN_AIR_PIXELS} usable air pixels "
                         f"(found {counts[bad[:10]].tolist()}); give air_mask explicitly")

    phase = np.empty((n, ny, nx), np.float32)
    invalid = np.empty((n, ny, nx), bool)
    air_amp, sigma, plane = np.empty(n), np.empty(n), np.zeros((n, 3))
    n_nonfinite = n_negative = 0
    for i, j in blocks:
        amp, valid = _amplitude(t[i:j])
        fit = _correct(t[i:j], amp, od[i:j], valid, air[i:j], ramp, negative_sigmas)
        air_amp[i:j], sigma[i:j], plane[i:j] = fit["air_amp"], fit["sigma"], fit["plane"]
        invalid[i:j] = fit["invalid"]
        od[i:j] = np.where(fit["invalid"], np.float32(fill), fit["od"])
        phase[i:j] = np.where(valid, fit["phase"], np.float32(fill))
        n_nonfinite += int(np.count_nonzero(~valid))
        n_negative += fit["n_negative"]
    if n_nonfinite or n_negative:
        # a few pixels of air noise below −5σ are expected; a large share means a bad air region
        level = logging.WARNING if (n_nonfinite + n_negative) > 0.05 * od.size else logging.INFO
        log.log(level, "optical_density: masked %d pixels with zero or non-finite |T| and %d with OD below "
                "-%g sigma (of %d pixels)", n_nonfinite, n_negative, negative_sigmas, od.size)

    info = ODInfo(air_mask=air, air_amplitude=air_amp.astype(np.float64), phase_plane=plane,
                  noise_sigma=sigma.astype(np.float64), invalid=invalid,
                  n_nonfinite=n_nonfinite, n_negative=n_negative)
    if single:
        od, phase = od[0], phase[0]
    out = (od,)
    if return_phase:
        out += (phase,)
    if return_info:
        out += (info,)
    return out[0] if len(out) == 1 else out
