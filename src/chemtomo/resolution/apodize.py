"""Edge apodisation before a Fourier ring/shell correlation.

The discrete Fourier transform treats an image as periodic, so the jump between opposite edges
acts like a sharp line through the image. Both images of a pair share that line, and it puts
correlated power along the Fourier axes at every frequency, which inflates FRC/FSC curves at
high frequency. A separable Tukey (tapered-cosine) window brings the edges smoothly to zero:
along each axis of length N, with a taper of ``m = taper · (N − 1)`` samples at each end,

    w(x) = ½ (1 − cos(π x / m))   for 0 ≤ x < m,
    w(x) = 1                      for m ≤ x ≤ N − 1 − m,

mirrored at the far end; the window is the product of the per-axis windows. ``taper = 0.5``
is the Hann window. The default, 0.25 (Tukey α = 0.5), leaves the central 50 % of each axis
untouched, where a tomogram or a ptychographic field of view usually holds the sample.

Choosing the taper trades two errors. A window's spectral side lobes leak low-frequency power
(which both arrays share) into high frequencies, lifting the curve where the signal spectrum
falls steeply; a longer taper has weaker side lobes but leaves fewer samples at full weight,
so the curve scatters more. ``benchmarks/resolution.py`` measures the ½-bit crossing on 64²
pairs of Gaussian-blurred signals with an exactly known FRC (30 seeds, periodic data): where
the signal spectrum falls 10⁴–10⁵ below its peak before the crossing (σ = 2–3 px), a 12.5 %
taper puts the crossing +0.7 to +2.7 rings too high, 25 % +0.2 to +0.7 and Hann +0.2 to +0.5,
with a scatter of ±0.2–0.3, ±0.2–0.4 and ±0.3–0.5 rings. 25 % is the default.
"""

from __future__ import annotations

import numpy as np

from ..core.backend import get_array_module
from ..core.errors import InputError

__all__ = ["DEFAULT_TAPER", "taper_fraction", "tukey_1d", "apodize"]

#: Fraction of each axis tapered at *each* end when ``apodize=True`` (see the module docstring).
DEFAULT_TAPER = 0.25


def taper_fraction(apodize) -> float:
    """The per-side taper fraction meant by an ``apodize`` argument (bool or float in [0, 0.5]).

    ``True`` gives :data:`DEFAULT_TAPER`, ``False`` gives 0 (no window).
    """
    if isinstance(apodize, (bool, np.bool_)):
        return DEFAULT_TAPER if apodize else 0.0
    if isinstance(apodize, (int, float, np.integer, np.floating)) and 0.0 <= float(apodize) <= 0.5:
        return float(apodize)
    raise InputError(f"apodize must be True, False or a taper fraction per side in [0, 0.5], got {apodize!r}")


def tukey_1d(n: int, taper: float = DEFAULT_TAPER, xp=np):
    """One-dimensional Tukey window of ``n`` samples, float32, on the array module ``xp``.

    Parameters
    ----------
    n : int
        Number of samples.
    taper : float in [0, 0.5]
        Fraction of the axis tapered at each end; 0 gives all ones, 0.5 a Hann window.
    xp : module
        ``numpy`` or ``cupy``.

    Examples
    --------
    >>> tukey_1d(9, 0.25).round(3).tolist()
    [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0]
    """
    if not 0.0 <= taper <= 0.5:
        raise InputError(f"taper must be a fraction per side in [0, 0.5], got {taper!r}")
    x = np.arange(n, dtype=np.float64)
    m = taper * (n - 1)
    w = np.ones(n)
    if m > 0:
        dist = np.minimum(x, n - 1 - x)  # distance from the nearer edge, samples
        ramp = dist < m
        w[ramp] = 0.5 * (1.0 - np.cos(np.pi * dist[ramp] / m))
    return xp.asarray(w.astype(np.float32))


def apodize(a, taper: float = DEFAULT_TAPER):
    """``(a − m) · W``: the array minus its window-weighted mean, times the Tukey window.

    Subtracting ``m = Σ W a / Σ W`` first makes the windowed array sum to zero, so the
    window's own spectrum (a bright blob around zero frequency, common to both images of a
    pair) does not add correlation in the first rings/shells.

    Parameters
    ----------
    a : (n0, n1, ...) float32 or complex64 array (NumPy or CuPy)
    taper : float in [0, 0.5]
        Per-side taper fraction (see :func:`tukey_1d`); 0 only removes the mean.

    Returns
    -------
    out : a new array of ``a``'s shape and dtype; the window W is never formed in full (it is
        applied axis by axis), so the memory cost is one copy of ``a``.

    Examples
    --------
    >>> out = apodize(np.ones((8, 8), np.float32) + np.eye(8, dtype=np.float32), 0.25)
    >>> bool(abs(out.sum()) < 1e-5), out.dtype.name
    (True, 'float32')
    """
    xp = get_array_module(a)
    windows = [tukey_1d(n, taper, xp) for n in a.shape]
    weighted = a
    for w in reversed(windows):  # contract the last axis first: Σ W a without forming W
        weighted = weighted @ w.astype(a.dtype)
    total = 1.0
    for w in windows:
        total *= float(w.sum())
    out = a - (weighted / a.dtype.type(total)).astype(a.dtype)
    for axis, w in enumerate(windows):
        out *= w.reshape((-1,) + (1,) * (a.ndim - axis - 1))
    return out
