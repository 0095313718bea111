"""Fourier ring correlation (2D) and Fourier shell correlation (3D).

Two independent measurements of the same object (two ptychographic scans, two half tilt series)
agree at the spatial frequencies where they carry signal and disagree where they carry noise.
The Fourier ring/shell correlation measures that agreement frequency by frequency:

    C(r) = Re Σ_{k ∈ shell r} A(k) B*(k) / sqrt( Σ_{k ∈ r} |A(k)|² · Σ_{k ∈ r} |B(k)|² )

with A, B the discrete Fourier transforms of the two (mean-removed, apodised) arrays and the
sums over the samples k of ring/shell r. The resolution is the half-period 1 / (2 f) at the
frequency f where C first falls below a threshold (``thresholds.py``; the ½-bit curve for two
half data sets, as in the paper: 10 nm FRC in 2D, ≈ 11 nm FSC in 3D).

Shells. Arrays may have any shape and a different pixel size per axis: sample k = (k_0, k_1, …)
of an axis of N_i samples at spacing d_i sits at the physical frequency f_i = k_i / (N_i d_i)
(cycles per metre), and its radius is |f| = sqrt(Σ f_i²). Shells are one Fourier pixel wide,
the pixel being that of the most coarsely sampled axis, Δf = max_i 1 / (N_i d_i); sample k
belongs to shell r = round(|f| / Δf), so shell r spans [(r − ½) Δf, (r + ½) Δf) and its
nominal frequency is r Δf. Shells run from r = 1 to r_max = floor(min_i f_max,i / Δf), where
f_max,i = floor(N_i / 2) / (N_i d_i) is the highest frequency stored along axis i (Nyquist for
even N_i), so every shell up to r_max is complete along every axis. The zero-frequency sample
(the mean, removed before the transform) and the corners beyond r_max are left out.

Counts. ``n_per_shell`` counts the samples of the full transform in each shell. Real inputs
are transformed with ``rfftn`` (half the memory); each stored sample then stands for itself and
its Hermitian partner, and is weighted 2 (1 on the self-conjugate planes k_last = 0 and
k_last = N_last / 2), which gives exactly the sums and counts of the full transform.

Apodisation. Each array has its window-weighted mean removed and is multiplied by a separable
Tukey window (``apodize.py``) before the transform, so that the periodic wrap of the FFT does
not add a sharp, shared edge to both arrays.

References
----------
W. O. Saxton and W. Baumeister, J. Microsc. 127, 127 (1982) (Fourier ring correlation).
M. van Heel, Ultramicroscopy 21, 95 (1987) (Fourier shell correlation).
M. van Heel and M. Schatz, J. Struct. Biol. 151, 250 (2005) (thresholds, shell counts).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from ..core.backend import get_array_module, to_numpy
from ..core.containers import Curve
from ..core.errors import InputError
from ..core.fft import fft_workers
from .apodize import apodize as apodize_array
from .apodize import taper_fraction
from .thresholds import threshold_curve

__all__ = ["frc", "fsc", "shell_frequencies", "crossing_frequency"]

#: Number of Fourier samples handled at once when binning into shells (bounds temporaries).
_CHUNK_SAMPLES = 1 << 20


def _spacing(spacing_m, ndim: int, name: str) -> tuple[float, ...]:
    """Per-axis sample spacing in metres from a scalar or a sequence of ``ndim`` values."""
    values = np.atleast_1d(np.asarray(spacing_m, dtype=np.float64))
    if values.ndim != 1 or values.size not in (1, ndim):
        raise InputError(f"{name} must be one positive number of metres or {ndim} (one per axis), "
                         f"got {spacing_m!r}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"{name} must be positive and finite (metres), got {spacing_m!r}")
    return tuple(float(v) for v in np.broadcast_to(values, (ndim,)))


def shell_frequencies(shape: tuple[int, ...], spacing_m) -> tuple[float, int]:
    """Shell width Δf (cycles per metre) and the last complete shell index r_max.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    spacing_m : float or sequence of float
        Pixel/voxel size in metres, one for all axes or one per axis.

    Returns
    -------
    delta_f_per_m : float
        max_i 1 / (N_i d_i), the Fourier pixel of the most coarsely sampled axis.
    r_max : int
        floor(min_i f_max,i / Δf) with f_max,i = floor(N_i / 2) / (N_i d_i).

    Examples
    --------
    >>> df, r_max = shell_frequencies((64, 64), 10e-9)
    >>> round(df), r_max          # 1 / (64 × 10 nm) = 1.5625e6 cycles/m; Nyquist is shell 32
    (1562500, 32)
    """
    d = _spacing(spacing_m, len(shape), "spacing_m")
    delta_f = max(1.0 / (n * di) for n, di in zip(shape, d))
    f_max = min((n // 2) / (n * di) for n, di in zip(shape, d))
    return delta_f, int(math.floor(f_max / delta_f + 1e-9))


def crossing_frequency(frequency_per_m: np.ndarray, correlation: np.ndarray,
                       threshold: np.ndarray) -> float:
    """Frequency where ``correlation`` first falls below ``threshold``, linearly interpolated.

    Parameters
    ----------
    frequency_per_m, correlation, threshold : (n,) arrays, shells in increasing frequency

    Returns
    -------
    f_per_m : float
        With j the first shell where C_j < T_j (a NaN correlation, a shell with no power, counts
        as below), and d = C − T:  f = f_{j−1} + (f_j − f_{j−1}) · d_{j−1} / (d_{j−1} − d_j).
        When j is the first shell, or C_j is NaN, there is nothing to interpolate and f = f_j.
        NaN when the correlation never falls below the threshold.

    Examples
    --------
    >>> crossing_frequency(np.array([1.0, 2, 3, 4]), np.array([0.9, 0.7, 0.3, 0.1]),
    ...                    np.full(4, 0.5))
    2.5
    """
    f = np.asarray(frequency_per_m, dtype=np.float64)
    d = np.asarray(correlation, dtype=np.float64) - np.asarray(threshold, dtype=np.float64)
    below = ~(d >= 0)  # NaN correlation counts as below
    if not below.any():
        return float("nan")
    j = int(np.argmax(below))
    if j == 0 or not np.isfinite(d[j]):
        return float(f[j])
    return float(f[j - 1] + (f[j] - f[j - 1]) * d[j - 1] / (d[j - 1] - d[j]))


def _prepare(a, b, ndim: int, fname: str):
    """Validate the pair and return float32 or complex64 copies on one array module."""
    xp = get_array_module(a, b)
    a = xp.asarray(a)
    b = xp.asarray(b)
    what = "image (ny, nx)" if ndim == 2 else "volume (ny, nz, nx)"
    for name, x in (("a", a), ("b", b)):
        if x.ndim != ndim:
            raise InputError(f"{fname}: {name} must be a {ndim}D {what}, got shape {tuple(x.shape)}")
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(f"{fname}: {name} must hold numbers, got dtype {x.dtype}")
    if a.shape != b.shape:
        raise InputError(f"{fname}: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape) < 4:
        raise InputError(f"{fname}: every axis needs at least 4 samples for a correlation curve, "
                         f"got shape {tuple(a.shape)}")
    is_complex = xp.iscomplexobj(a) or xp.iscomplexobj(b)
    dtype = xp.complex64 if is_complex else xp.float32
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    for name, x in (("a", a), ("b", b)):
        if not bool(xp.isfinite(x).all()):
            raise InputError(f"{fname}: {name} contains NaN or infinite values; mask or fill them first")
        if bool((x == x.ravel()[0]).all()):
            raise InputError(f"{fname}: {name} is constant; a correlation needs some variation")
    return xp, a, b, is_complex


def _fftn(x, xp, real: bool):
    if xp is np:
        return (sfft.rfftn(x, workers=fft_workers(x.size), overwrite_x=True) if real
                else sfft.fftn(x, workers=fft_workers(x.size), overwrite_x=True))
    return xp.fft.rfftn(x) if real else xp.fft.fftn(x)


def _shell_sums(fa, fb, shape, spacing, delta_f, r_max, real, xp):
    """Per-shell Σ Re(A B*), Σ|A|², Σ|B|² and sample counts for shells 0..r_max (float64)."""
    ndim = len(shape)
    axis_f = []
    for axis, (n, d) in enumerate(zip(shape, spacing)):
        last = axis == ndim - 1
        f = xp.fft.rfftfreq(n, d) if (real and last) else xp.fft.fftfreq(n, d)
        axis_f.append((f / delta_f) ** 2)  # squared frequency in shell units
    # Squared radius over axes 1.. (small: one plane), then chunks along axis 0.
    rest = xp.zeros(fa.shape[1:], dtype=xp.float64)
    for axis in range(1, ndim):
        rest = rest + axis_f[axis].reshape((-1,) + (1,) * (ndim - axis - 1))
    if real:  # Hermitian weights: 2 except on the self-conjugate last-axis planes
        n_last = shape[-1]
        w_last = xp.full(fa.shape[-1], 2.0, dtype=xp.float64)
        w_last[0] = 1.0
        if n_last % 2 == 0:
            w_last[-1] = 1.0
        weight_plane = xp.broadcast_to(w_last, fa.shape[1:]).ravel()
    n_bins = r_max + 2  # shells 0..r_max plus one overflow bin for the corners
    sums = [xp.zeros(n_bins, dtype=xp.float64) for _ in range(4)]
    plane = int(np.prod(fa.shape[1:]))
    step = max(1, _CHUNK_SAMPLES // plane)
    for start in range(0, fa.shape[0], step):
        sl = slice(start, start + step)
        r = xp.sqrt(axis_f[0][sl].reshape((-1,) + (1,) * (ndim - 1)) + rest)
        shell = xp.minimum(xp.floor(r + 0.5), n_bins - 1).astype(xp.int64).ravel()
        a_chunk = fa[sl].ravel()
        b_chunk = fb[sl].ravel()
        cross = (a_chunk.real * b_chunk.real + a_chunk.imag * b_chunk.imag).astype(xp.float64)
        pow_a = (a_chunk.real ** 2 + a_chunk.imag ** 2).astype(xp.float64)
        pow_b = (b_chunk.real ** 2 + b_chunk.imag ** 2).astype(xp.float64)
        if real:
            w = xp.tile(weight_plane, fa[sl].shape[0])
        else:
            w = xp.ones(shell.size, dtype=xp.float64)
        for acc, values in zip(sums, (cross * w, pow_a * w, pow_b * w, w)):
            acc += xp.bincount(shell, weights=values, minlength=n_bins)
    return [to_numpy(s[: r_max + 1]) for s in sums]


def _correlate(a, b, spacing_m, ndim: int, fname: str, spacing_name: str, threshold: str,
               apodize) -> Curve:
    taper = taper_fraction(apodize)
    threshold_curve(threshold, 1)  # validate the name before any work
    xp, a, b, is_complex = _prepare(a, b, ndim, fname)
    spacing = _spacing(spacing_m, ndim, f"{fname}: {spacing_name}")
    shape = tuple(int(n) for n in a.shape)
    delta_f, r_max = shell_frequencies(shape, spacing)
    if r_max < 2:
        raise InputError(f"{fname}: shape {shape} with {spacing_name} {spacing} gives only {r_max} complete "
                         "shell(s); the axes are too short or their pixel sizes too different")
    real = not is_complex
    # The apodised copies live only until their transform exists (memory: one copy at a time).
    fa = _fftn(apodize_array(a, taper), xp, real)
    fb = _fftn(apodize_array(b, taper), xp, real)
    cross, pow_a, pow_b, counts = _shell_sums(fa, fb, shape, spacing, delta_f, r_max, real, xp)
    cross, pow_a, pow_b, counts = cross[1:], pow_a[1:], pow_b[1:], counts[1:]  # drop the mean
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.sqrt(pow_a * pow_b)
        correlation = np.where(denom > 0, cross / np.where(denom > 0, denom, 1.0), np.nan)
    frequency = np.arange(1, r_max + 1, dtype=np.float64) * delta_f
    n_per_shell = np.rint(counts).astype(np.int64)
    thr = threshold_curve(threshold, np.maximum(n_per_shell, 1))
    f_cross = crossing_frequency(frequency, correlation, thr)
    resolution = 1.0 / (2.0 * f_cross) if np.isfinite(f_cross) else float("nan")
    return Curve(frequency_per_m=frequency, correlation=correlation, threshold=thr,
                 resolution_m=float(resolution), n_per_shell=n_per_shell, threshold_name=threshold)


def frc(a, b, pixel_m, *, threshold: str = "half-bit", apodize=True) -> Curve:
    """Fourier ring correlation of two images of the same object, and the resolution.

    Parameters
    ----------
    a, b : (ny, nx) float or complex arrays (NumPy or CuPy), same shape
        Two independent images of the same field of view, registered to each other: e.g.
        two ptychographic reconstructions (complex transmissions) from independent scans or
        from the two halves of one scan's frames. Complex inputs are correlated as complex
        fields; a global phase offset between them lowers the correlation by cos(Δφ), so
        remove it first, e.g. ``b = b * np.exp(-1j * np.angle(np.vdot(b, a)))``.
    pixel_m : float or (float, float)
        Pixel size in metres, one for both axes or (y, x).
    threshold : {"half-bit", "1/7"}
        Resolution criterion (:mod:`.thresholds`); ½-bit (the paper's) for two half data sets.
    apodize : bool or float
        Tukey edge window before the transform: True for the default taper (25 % of each
        axis at each end), a float for another per-side fraction in [0, 0.5], False for none
        (the mean is removed in every case).

    Returns
    -------
    Curve
        ``frequency_per_m`` (rings 1..r_max, cycles per metre; r Δf with Δf = max(1/(ny dy),
        1/(nx dx))), ``correlation``, ``threshold``, ``n_per_shell`` (pixels per ring of the
        full transform) and ``resolution_m``, the half-period 1/(2 f) at the first crossing
        below the threshold, linearly interpolated between rings; NaN when the correlation
        stays above the threshold up to the last complete ring (then the resolution is at
        least the Nyquist half-period, one pixel).

    Raises
    ------
    InputError
        Arrays not 2D or of different shapes, an axis shorter than 4 pixels, NaN or infinite
        values, a constant image, a non-positive pixel size, an unknown threshold or apodize.

    Notes
    -----
    C(r) = Re Σ_{k∈r} A(k) B*(k) / sqrt(Σ_{k∈r} |A(k)|² Σ_{k∈r} |B(k)|²), rings one Fourier
    pixel wide; see the module docstring for the ring geometry, counts and apodisation.

    References
    ----------
    W. O. Saxton and W. Baumeister, J. Microsc. 127, 127 (1982).
    M. van Heel and M. Schatz, J. Struct. Biol. 151, 250 (2005).

    Examples
    --------
    Two noisy images of one smooth object, 10 nm pixels:

    >>> from scipy.ndimage import gaussian_filter
    >>> rng = np.random.default_rng(0)
    >>> obj = gaussian_filter(rng.standard_normal((128, 128)), 3.0)
    >>> a = obj + 0.005 * rng.standard_normal(obj.shape)
    >>> b = obj + 0.005 * rng.standard_normal(obj.shape)
    >>> curve = frc(a, b, 10e-9)
    >>> curve.threshold_name, bool(20e-9 < curve.resolution_m < 35e-9)
    ('half-bit', True)
    """
    return _correlate(a, b, pixel_m, 2, "frc", "pixel_m", threshold, apodize)


def fsc(a, b, voxel_m, *, threshold: str = "half-bit", apodize=True) -> Curve:
    """Fourier shell correlation of two volumes of the same object, and the resolution.

    Parameters
    ----------
    a, b : (ny, nz, nx) float or complex arrays (NumPy or CuPy), same shape
        Two independent reconstructions of the same volume, e.g. from the odd and the even
        angles of a tilt series (:func:`chemtomo.resolution.split_half_fsc`). Axes may have
        different lengths.
    voxel_m : float or (float, float, float)
        Voxel size in metres, one for all axes or (y, z, x); shells use the physical
        frequency along each axis, so anisotropic voxels are handled.
    threshold : {"half-bit", "1/7"}
        Resolution criterion (:mod:`.thresholds`); ½-bit (the paper's) for two half data sets.
    apodize : bool or float
        Tukey edge window before the transform: True for the default taper (25 % of each
        axis at each end), a float for another per-side fraction in [0, 0.5], False for none.

    Returns
    -------
    Curve
        ``frequency_per_m`` (shells 1..r_max, cycles per metre), ``correlation``,
        ``threshold``, ``n_per_shell`` (voxels per shell of the full transform) and
        ``resolution_m``: half-period 1/(2 f) at the first crossing below the threshold,
        linearly interpolated between shells; NaN when never crossed up to the last complete
        shell (the resolution is then at least the Nyquist half-period, one voxel).

    Raises
    ------
    InputError
        Arrays not 3D or of different shapes, an axis shorter than 4 voxels, NaN or infinite
        values, a constant volume, a non-positive voxel size, an unknown threshold or apodize.

    Notes
    -----
    C(r) = Re Σ_{k∈r} A(k) B*(k) / sqrt(Σ_{k∈r} |A(k)|² Σ_{k∈r} |B(k)|²), shells one Fourier
    voxel wide, |f| = sqrt((k_y/(N_y d_y))² + (k_z/(N_z d_z))² + (k_x/(N_x d_x))²). For two
    volumes sharing a signal of spectral power S(f) under independent noise of power N(f),
    E[C] ≈ SNR / (1 + SNR) with SNR = S / N (Frank & Al-Ali 1975): a curve that estimates the
    SNR of each half, hence the ½-bit threshold for half data sets.

    References
    ----------
    M. van Heel, Ultramicroscopy 21, 95 (1987).
    M. van Heel and M. Schatz, J. Struct. Biol. 151, 250 (2005).
    J. Frank and L. Al-Ali, Nature 256, 376 (1975).

    Examples
    --------
    The same volume seen twice through independent noise: the correlation is high at low
    frequency and falls to the noise level at high frequency.

    >>> from scipy.ndimage import gaussian_filter
    >>> rng = np.random.default_rng(1)
    >>> obj = gaussian_filter(rng.standard_normal((32, 32, 32)), 1.5)
    >>> a = obj + 0.01 * rng.standard_normal(obj.shape)
    >>> b = obj + 0.01 * rng.standard_normal(obj.shape)
    >>> curve = fsc(a, b, 6.7e-9)
    >>> bool(curve.correlation[0] > 0.99), bool(curve.correlation[-1] < 0.5)
    (True, True)
    >>> bool(np.isfinite(curve.resolution_m))
    True
    """
    return _correlate(a, b, voxel_m, 3, "fsc", "voxel_m", threshold, apodize)
