"""After a reconstruction: reference the transmission to air, and the split-half FRC.

Ptychography determines the object only up to a constant complex factor and a linear phase
ramp (traded against the probe), so ``air_reference`` fixes both against the empty region,
where the true transmission is 1: after it, air has unit modulus, zero phase and no phase
gradient, as the optical density and phase of DESIGN.md assume.

``frc_weighted`` then filters a reconstruction ring by ring with the weight that its split-half
FRC gives (where photon noise, not resolution, limits the image).
"""

from __future__ import annotations

import numpy as np

from ..core.containers import Curve
from ..resolution import frc as frc_curve

__all__ = ["air_reference", "air_region", "frc_weight", "frc_weighted", "illuminated_box", "split_half_frc"]


def air_region(obj: np.ndarray, illumination: np.ndarray, *, quantile: float = 0.7,
               illuminated: float = 0.2) -> np.ndarray:
    """Boolean mask of the empty region: well-illuminated pixels (illumination ≥ ``illuminated``
    × its maximum) whose modulus is in the top ``1 − quantile`` of those pixels (air transmits
    most)."""
    lit = illumination >= illuminated * float(illumination.max())
    if not lit.any():
        return lit
    amplitude = np.abs(obj)
    return lit & (amplitude >= np.quantile(amplitude[lit], quantile))


def air_reference(obj: np.ndarray, air: np.ndarray) -> tuple[np.ndarray, complex, tuple[float, float]]:
    """Remove the linear phase ramp, the global phase and the amplitude scale against ``air``.

    The ramp (radians per pixel along y and x) is the mean phase difference between neighbouring
    air pixels, ``arg Σ O(r + e) O*(r)``, which needs no phase unwrapping; then the mean complex
    value of air is divided out.

    Returns
    -------
    referenced : (oy, ox) complex64, air ≈ 1
    factor     : the complex constant divided out (after the ramp)
    ramp       : (radians/pixel along y, along x) removed
    """
    if not air.any():
        return obj.astype(np.complex64), 1.0 + 0j, (0.0, 0.0)
    pair_y = air[1:, :] & air[:-1, :]
    pair_x = air[:, 1:] & air[:, :-1]
    gy = float(np.angle(np.sum((obj[1:, :] * obj[:-1, :].conj())[pair_y]))) if pair_y.any() else 0.0
    gx = float(np.angle(np.sum((obj[:, 1:] * obj[:, :-1].conj())[pair_x]))) if pair_x.any() else 0.0
    y, x = np.indices(obj.shape, dtype=np.float64)
    cy, cx = obj.shape[0] // 2, obj.shape[1] // 2
    flat = obj * np.exp(-1j * (gy * (y - cy) + gx * (x - cx)))
    factor = complex(np.mean(flat[air]))
    if factor == 0:
        factor = 1.0 + 0j
    return (flat / factor).astype(np.complex64), factor, (gy, gx)


def illuminated_box(illumination: np.ndarray, fraction: float = 0.5) -> tuple[slice, slice]:
    """Bounding box of the pixels illuminated at ≥ ``fraction`` of the maximum."""
    rows = np.flatnonzero((illumination >= fraction * illumination.max()).any(axis=1))
    cols = np.flatnonzero((illumination >= fraction * illumination.max()).any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def split_half_frc(a: np.ndarray, b: np.ndarray, illumination: np.ndarray, pixel_m) -> tuple[Curve, np.ndarray]:
    """FRC of two half reconstructions (each already air-referenced) over their common field.

    ``b`` is registered to ``a`` with sub-pixel phase correlation (1/20 pixel), shifted by a
    Fourier shift, its global phase against ``a`` removed, and both are cropped to the region
    that both halves illuminate well before ``chemtomo.resolution.frc`` correlates them.

    Returns
    -------
    curve : Curve (½-bit threshold)
    shift_px : (2,) the (dy, dx) shift applied to ``b``
    """
    from scipy.ndimage import fourier_shift  # imported here: 0.3 s that a run without FRC never needs
    from skimage.registration import phase_cross_correlation

    box = illuminated_box(illumination)
    a_c = a[box]
    b_c = b[box]
    shift, _, _ = phase_cross_correlation(a_c, b_c, upsample_factor=20, normalization=None)
    b_shifted = np.fft.ifft2(fourier_shift(np.fft.fft2(b), shift))[box]
    b_shifted *= np.exp(1j * np.angle(np.vdot(b_shifted, a_c)))  # vdot(b, a) = Σ b* a = e^{-iΔφ}|a|²
    return frc_curve(a_c.astype(np.complex64), b_shifted.astype(np.complex64), pixel_m), np.asarray(shift)


def frc_weight(correlation) -> np.ndarray:
    """The weight of each ring of the full data set's image from its split-half FRC:
    ``C = √(2 FRC / (1 + FRC))``, with the FRC clipped to [0, 1] (Rosenthal & Henderson,
    J. Mol. Biol. 333, 721 (2003): the expected correlation of the full image with the truth;
    "FSC weighting" in cryo-EM).

    Two halves with independent noise of equal power have, in a ring, FRC = S / (S + N_half)
    (S the signal's power, N_half one half's noise power); the full data average the noise of
    both, so its signal-to-noise ratio is 2 FRC / (1 − FRC) and the Wiener weight that minimises
    its mean squared error is C² = 2 FRC / (1 + FRC). C is the gentler of the two, chosen on
    measurements (docs/results/ptychography.md, "Session 25"): half the frames of a ptychographic
    scan overlap less and converge less far than all of them, so the halves' FRC understates
    the full image's signal-to-noise ratio, and C² then takes signal with the noise (zone-plate
    scans of 36 frames of 32² at 10 counts per pixel: OD error +3 to +11 %, C: +0.4 to +4 %),
    while C keeps most of the gain where photon noise dominates (regime cell 8, 6 counts per
    pixel: −20 % with C², −15 % with C).

    >>> frc_weight([1.0, 0.5, 0.0, -0.2]).round(3).tolist()
    [1.0, 0.816, 0.0, 0.0]
    """
    c = np.clip(np.nan_to_num(np.asarray(correlation, np.float64), nan=0.0), 0.0, 1.0)
    return np.sqrt(2.0 * c / (1.0 + c))


def frc_weighted(transmission: np.ndarray, curve: Curve, pixel_yx, illumination: np.ndarray,
                 lit: float = 0.5) -> np.ndarray:
    """``transmission`` filtered ring by ring with the weight of its split-half FRC.

    Each spatial frequency k of the object array is multiplied by ``frc_weight`` of the FRC at
    |k|, interpolated between the curve's rings (1 below its first ring, its last ring's weight
    beyond its last, in the corners of the transform); the mean over the pixels illuminated at
    ≥ ``lit`` of the maximum (the FRC's own field, ``illuminated_box``) is taken off before and
    put back after, so that the filter leaves air at 1. A linear filter that is the same on a
    whole ring leaves the FRC of two halves unchanged, so ``curve`` still describes the result.

    Parameters
    ----------
    transmission : (oy, ox) complex, the full scan's reconstruction (air-referenced)
    curve : the split-half FRC (``split_half_frc``) of the same scan
    pixel_yx : pixel size (y, x) in metres, or one for both
    illumination : (oy, ox) the full scan's illumination Σ|P|²

    Returns
    -------
    (oy, ox) complex64
    """
    dy, dx = np.broadcast_to(np.asarray(pixel_yx, np.float64), (2,))
    oy, ox = transmission.shape
    k = np.hypot(np.fft.fftfreq(oy, d=dy)[:, None], np.fft.fftfreq(ox, d=dx)[None, :])
    f = np.asarray(curve.frequency_per_m, np.float64)
    w = frc_weight(curve.correlation)
    weight = np.interp(k, f, w, left=1.0, right=float(w[-1]))
    region = illumination >= lit * float(illumination.max())
    level = complex(np.mean(transmission[region])) if region.any() else 1.0 + 0j
    spectrum = np.fft.fft2(np.asarray(transmission, np.complex128) - level)
    return (np.fft.ifft2(spectrum * weight) + level).astype(np.complex64)
