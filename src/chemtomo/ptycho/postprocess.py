"""After a reconstruction: reference the transmission to air, and the split-half FRC.

Ptychography determines the object only up to a constant complex factor and a linear phase
ramp (traded against the probe), so ``air_reference`` fixes both against the empty region,
where the true transmission is 1: after it, air has unit modulus, zero phase and no phase
gradient, as the optical density and phase of DESIGN.md assume.
"""

from __future__ import annotations

import numpy as np

from ..core.containers import Curve
from ..resolution import frc as frc_curve

__all__ = ["air_reference", "air_region", "illuminated_box", "split_half_frc"]


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
