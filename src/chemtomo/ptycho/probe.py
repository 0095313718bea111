"""Initial illumination (probe) models for far-field ptychography.

Two ways to make a probe on the object pixel grid, before any reconstruction:

- :func:`zone_plate_probe`: the focus of a Fresnel zone plate with a central stop, as used at
  soft X-ray beamlines (the paper: 100 nm outer zone width), propagated to the sample plane.
- :func:`probe_from_diffraction`: the data's own estimate, from the mean diffraction pattern.

Fourier convention (the whole package): the far-field (detector) wave of a sample-plane field ψ is
``fft2c(ψ)``, orthonormal and centred, so ``sum |ψ|² == sum |Ψ|²`` and a probe with
``sum |P|² = N`` gives frames of N photons through an empty object.
"""

from __future__ import annotations

import math

import numpy as np

from ..core import energy_to_wavelength, ifft2c
from ..core.errors import InputError

__all__ = ["fit_probe_defocus", "frequency_grid", "match_probe_scale", "probe_from_diffraction", "propagate_probe",
           "zone_plate_probe"]


def frequency_grid(shape: tuple[int, int], pixel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies (qy, qx) in cycles per metre of a centred FFT grid, each (ny, nx) float64."""
    ny, nx = shape
    qy = np.fft.fftshift(np.fft.fftfreq(ny, d=pixel_m))
    qx = np.fft.fftshift(np.fft.fftfreq(nx, d=pixel_m))
    return np.meshgrid(qy, qx, indexing="ij")


def _soft_disk(r: np.ndarray, radius: float, step: float) -> np.ndarray:
    """Anti-aliased disk: 1 inside ``radius``, 0 outside, linear over one sample ``step`` at the edge."""
    return np.clip((radius - r) / step + 0.5, 0.0, 1.0)


def zone_plate_probe(shape: tuple[int, int], pixel_m: float, energy_ev: float, *,
                     outer_zone_m: float = 100e-9, diameter_m: float = 240e-6,
                     central_stop: float = 0.4, defocus_m: float | None = None) -> np.ndarray:
    """Illumination of a Fresnel zone plate with a central stop, at a defocused sample plane.

    The zone plate of diameter D and outer zone width Δr_N has the first-order focal length
    ``f = D Δr_N / λ``. Its focal-plane field is the Fourier transform of its pupil (an annulus
    with the central stop), whose spatial-frequency radius is ``D / (2 λ f) = 1 / (2 Δr_N)``. The
    sample sits ``defocus_m`` downstream of the focus; the focal field is carried there by the
    angular-spectrum propagator ``exp(i k z (sqrt(1 − λ²q²) − 1))`` (the constant phase ``k z`` is
    dropped). The geometric diameter of the defocused beam is ``D |z| / f = λ |z| / Δr_N``.

    Parameters
    ----------
    shape : (ny, nx)
        Probe array shape; the same as the diffraction frames.
    pixel_m : float
        Object-plane pixel size in metres (``Scan.pixel_m``); must be finer than ``outer_zone_m``
        so that the zone plate's numerical aperture fits in the frame.
    energy_ev : float
        Photon energy, eV.
    outer_zone_m : float
        Outer zone width Δr_N, metres (paper: 100 nm). Sets the focus size, ≈ 1.22 Δr_N.
    diameter_m : float
        Zone-plate diameter D, metres.
    central_stop : float
        Diameter of the central stop as a fraction of D, in [0, 1).
    defocus_m : float or None
        Distance from the focus to the sample plane, metres (sign: positive downstream). None
        chooses the defocus at which the geometric beam diameter is 0.3 of the frame's field of
        view, ``0.3 min(ny, nx) pixel_m``, a common ptychographic overlap setting.

    Returns
    -------
    probe : (ny, nx) complex64
        Sample-plane field, centred in the array, with ``sum |probe|² == 1``.

    Raises
    ------
    InputError
        For non-positive sizes, a central stop outside [0, 1), a pixel coarser than the outer
        zone, or a defocused beam wider than the frame's field of view (it would wrap around).

    Examples
    --------
    >>> p = zone_plate_probe((64, 64), 10e-9, 708.2, defocus_m=5e-6)
    >>> p.dtype, round(float((abs(p) ** 2).sum()), 5)
    (dtype('complex64'), 1.0)
    """
    if len(shape) != 2 or min(shape) < 2:
        raise InputError(f"zone_plate_probe: shape must be (ny, nx) with both >= 2, got {shape!r}")
    for name, value in (("pixel_m", pixel_m), ("energy_ev", energy_ev), ("outer_zone_m", outer_zone_m),
                        ("diameter_m", diameter_m)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"zone_plate_probe: {name} must be a positive finite number, got {value!r}")
    if not (0.0 <= central_stop < 1.0):
        raise InputError(f"zone_plate_probe: central_stop is a fraction of the diameter in [0, 1), "
                         f"got {central_stop!r}")
    if pixel_m >= outer_zone_m:
        raise InputError(f"zone_plate_probe: pixel_m ({pixel_m:.3g} m) must be smaller than outer_zone_m "
                         f"({outer_zone_m:.3g} m); otherwise the zone plate's aperture exceeds the frame's "
                         "frequency band")
    ny, nx = int(shape[0]), int(shape[1])
    wavelength = energy_to_wavelength(energy_ev)
    field_of_view = min(ny, nx) * pixel_m
    if defocus_m is None:
        defocus_m = 0.3 * field_of_view * outer_zone_m / wavelength
    if not math.isfinite(defocus_m):
        raise InputError(f"zone_plate_probe: defocus_m must be finite, got {defocus_m!r}")
    beam_m = wavelength * abs(defocus_m) / outer_zone_m
    if beam_m > field_of_view:
        raise InputError(f"zone_plate_probe: at defocus_m={defocus_m:.3g} m the beam is {beam_m * 1e9:.0f} nm wide "
                         f"but the frame spans only {field_of_view * 1e9:.0f} nm; reduce the defocus")

    qy, qx = frequency_grid((ny, nx), pixel_m)
    q = np.hypot(qy, qx)
    dq = 1.0 / field_of_view
    q_outer = 1.0 / (2.0 * outer_zone_m)
    pupil = _soft_disk(q, q_outer, dq) * (1.0 - _soft_disk(q, central_stop * q_outer, dq))
    kz = 2.0 * np.pi / wavelength * defocus_m
    # sqrt(1 - λ²q²) - 1, written to keep precision for small λq
    lq2 = (wavelength * q) ** 2
    propagator = np.exp(1j * kz * (-lq2 / (1.0 + np.sqrt(1.0 - np.minimum(lq2, 1.0)))))
    probe = ifft2c(pupil * propagator)
    probe /= math.sqrt(float(np.sum(np.abs(probe) ** 2)))
    return probe.astype(np.complex64)


def probe_from_diffraction(frames: np.ndarray, *, mask: np.ndarray | None = None,
                           background: np.ndarray | float = 0.0) -> np.ndarray:
    """Initial probe from the mean diffraction pattern of a scan.

    The far-field probe modulus is taken as ``sqrt(mean_j I_j − background)`` with a flat (zero)
    phase, and the sample-plane probe is its inverse centred FFT. For a weakly scattering object
    the mean pattern is close to the probe's own far-field intensity, so this probe carries the
    right photon count and the right numerical aperture; its phase (and so its defocus) is left
    for the reconstruction to find. Masked detector pixels take the value of their point-mirrored
    partner through the array centre when that one is valid, else zero.

    Parameters
    ----------
    frames : (n_frames, ny, nx) float
        Photon counts, zero frequency at the array centre.
    mask : (ny, nx) bool or None
        True where a detector pixel is valid.
    background : (ny, nx) array or float
        Static additive background (counts) to subtract before the square root.

    Returns
    -------
    probe : (ny, nx) complex64
        ``sum |probe|²`` equals the mean photon count per frame (after background removal).
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise InputError(f"probe_from_diffraction: frames must be (n_frames, ny, nx) with n_frames >= 1, "
                         f"got shape {frames.shape}")
    if mask is not None and np.shape(mask) != frames.shape[1:]:
        raise InputError(f"probe_from_diffraction: mask must have the frame shape {frames.shape[1:]}, "
                         f"got {np.shape(mask)}")
    mean = np.nanmean(frames, axis=0, dtype=np.float64) - np.asarray(background, dtype=np.float64)
    mean = np.nan_to_num(np.maximum(mean, 0.0))
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        # Point reflection through the centre pixel (ny//2, nx//2) of a centred FFT grid.
        mirrored = np.roll(mean[::-1, ::-1], (1 - mean.shape[0] % 2, 1 - mean.shape[1] % 2), axis=(0, 1))
        mirrored_valid = np.roll(mask[::-1, ::-1], (1 - mask.shape[0] % 2, 1 - mask.shape[1] % 2), axis=(0, 1))
        mean = np.where(mask, mean, np.where(mirrored_valid, mirrored, 0.0))
    probe = ifft2c(np.sqrt(mean).astype(np.complex128))
    return probe.astype(np.complex64)



def _zoom(probe: np.ndarray, scale: float) -> np.ndarray:
    """``probe(r / scale)`` about the centre pixel (h // 2, w // 2): ``scale`` > 1 stretches.

    Bilinear interpolation, zero outside the input's extent: the same float64 operations in the
    same order as ``scipy.ndimage.map_coordinates(plane, coords, order=1)`` (mode "constant",
    no interpolation beyond the edges), hence the same bits (tests/ptycho/test_probe.py), without
    importing scipy.ndimage on the way to the first iteration (0.03–0.2 s of start-up)."""
    h, w = probe.shape[-2:]

    def taps(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c = n // 2 + (np.arange(n, dtype=np.float64) - n // 2) / scale
        i0 = np.floor(c).astype(np.int64)
        t = c - i0
        inside = (c >= 0) & (c <= n - 1)
        return np.clip(i0, 0, n - 1), np.clip(i0 + 1, 0, n - 1), (1 - t), t, inside

    y0, y1, wy0, wy1, iy = taps(h)
    x0, x1, wx0, wx1, ix = taps(w)
    wy0, wy1 = wy0[:, None], wy1[:, None]
    inside = iy[:, None] & ix[None, :]
    out = np.empty(probe.shape, np.complex64)
    for k in range(probe.shape[0]):
        planes = []
        for a in (probe[k].real.astype(np.float64), probe[k].imag.astype(np.float64)):
            r0, r1 = a[y0], a[y1]
            v = r0[:, x0] * wy0 * wx0 + r0[:, x1] * wy0 * wx1 + r1[:, x0] * wy1 * wx0 + r1[:, x1] * wy1 * wx1
            planes.append(np.where(inside, v, 0.0))
        out[k] = planes[0] + 1j * planes[1]
    return out


def match_probe_scale(probe: np.ndarray, mean_pattern: np.ndarray, valid: np.ndarray, *,
                      min_gain: float = 0.05, min_match: float = 0.9) -> tuple[np.ndarray, float, float, float]:
    """Rescale a probe guess in size when its far field disagrees with the mean diffraction pattern.

    The far-field amplitude of the first mode, ``|F[P(r / s)]|``, is compared with
    ``sqrt(mean_j I_j)`` on the valid pixels (cosine similarity; the object's scattering adds a
    little to the mean pattern but the probe's own cone dominates it) for sizes ``s`` from ¼ to
    4 (33 steps, logarithmic). A guess twice too broad has a far field half as wide and is
    corrected exactly; a defocused guess of the right size has its best match at s ≈ 1 and is
    left alone. The guess is only replaced when the best size matches better by ``min_gain`` and
    matches well (similarity ≥ ``min_match``): a guess of the wrong shape (a flat disc for a
    zone plate's annular cone, best similarity 0.66) is better left at its nominal size, from
    which the reconstruction recovers (OD error 0.12 against 1.8 when shrunk ×¼,
    ``benchmarks/ptycho_regimes.py``).

    Parameters
    ----------
    probe : (n_modes, ny, nx) complex
        Probe guess, centred on (ny // 2, nx // 2).
    mean_pattern : (ny, nx) float
        Mean diffraction pattern, photon counts, zero frequency at the centre.
    valid : (ny, nx) bool
        Valid detector pixels (centred like ``mean_pattern``).
    min_gain : float
        Least improvement of the similarity (0..1) for which the guess is rescaled.
    min_match : float
        Least similarity of the rescaled guess for which it replaces the given one.

    Returns
    -------
    probe : (n_modes, ny, nx) complex64, rescaled (or the input), the same total power.
    scale : the size factor applied (1.0 when left alone).
    before, after : the similarity of the guess and of the returned probe.
    """
    from ..core import fft2c

    target = np.sqrt(np.maximum(np.asarray(mean_pattern, np.float64), 0))[valid]
    target /= max(float(np.sqrt(np.sum(target * target))), 1e-300)
    power = float(np.sum(np.abs(probe) ** 2))

    # NumPy sums, not BLAS dot/norm: the same in every process whatever the BLAS threads (OpenBLAS
    # splits long dots over its threads), and on a busy machine each BLAS call's thread wake-up
    # cost milliseconds (0.5 s of the measured star's start over the 66 calls).
    def similarity(p: np.ndarray) -> float:
        far = np.abs(fft2c(p.astype(np.complex128)))[valid]
        return float(np.sum(far * target) / max(float(np.sqrt(np.sum(far * far))), 1e-300))

    before = similarity(probe[0])
    best_scale, best = 1.0, before
    for scale in 2.0 ** np.linspace(-2, 2, 33):
        if abs(scale - 1) < 1e-9:
            continue
        value = similarity(_zoom(probe[:1], scale)[0])
        if value > best:
            best_scale, best = float(scale), value
    if best - before < min_gain or best < min_match:
        return probe.astype(np.complex64), 1.0, before, before
    out = _zoom(probe, best_scale)
    out *= np.sqrt(power / max(float(np.sum(np.abs(out) ** 2)), 1e-300))
    return out.astype(np.complex64), best_scale, before, best


def propagate_probe(probe: np.ndarray, lambda_z_px2: float) -> np.ndarray:
    """Probe modes (..., h, w) carried a distance z along the beam (paraxial Fresnel propagator
    ``exp(−iπ λz q²)``, q in cycles per pixel): ``lambda_z_px2`` is λz in units of the pixel²
    (z = λz · pixel² / λ; positive downstream). Power is kept; complex64."""
    h, w = probe.shape[-2:]
    q2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    kernel = np.exp(-1j * np.pi * lambda_z_px2 * q2)
    return np.fft.ifft2(np.fft.fft2(probe) * kernel).astype(np.complex64)


def fit_probe_defocus(probe: np.ndarray, misfit, *, levels: int = 11, refinements: int = 12,
                      scale: float | None = None, minima: int = 1, grid_map=map) -> tuple[float, dict[float, float]]:
    """The propagation distance λz (pixel²) of ``probe`` that minimises ``misfit(propagated)``.

    A one-parameter search: λz = 0 and ±d²·2⁻ᵏ for k < ``levels``, d the probe's diameter
    (``2·sqrt(2<r²>)`` of its intensity; d² is where a beam of that size changes shape
    completely) unless ``scale`` gives d² (pixel²), then ``refinements`` golden-section steps
    between the neighbours of each of the ``minima`` lowest local minima of that grid (a noisy
    misfit can hold two of nearly equal depth, and the grid's factor-2 steps can straddle the
    deeper one's floor). ``grid_map(function, distances)`` evaluates the grid (e.g. a thread
    pool's ``map``; the builtin ``map`` by default), the refinements run in the calling thread.
    Returns the best λz (exactly 0.0 when no distance fits better) and every misfit evaluated,
    keyed by λz (0.0 among them)."""
    if scale is None:
        power = np.sum(np.abs(probe) ** 2, axis=tuple(range(probe.ndim - 2)))
        y, x = np.indices(power.shape)
        total = float(power.sum())
        cy, cx = float((power * y).sum()) / total, float((power * x).sum()) / total
        d2 = 8.0 * float((power * ((y - cy) ** 2 + (x - cx) ** 2)).sum()) / total
    else:
        d2 = float(scale)
    values: dict[float, float] = {}

    def f(lz: float) -> float:
        if lz not in values:
            value = float(misfit(probe if lz == 0.0 else propagate_probe(probe, lz)))
            values[lz] = value if math.isfinite(value) else math.inf
        return values[lz]

    grid = sorted([0.0] + [sign * d2 * 2.0 ** -k for k in range(levels) for sign in (1.0, -1.0)])
    at = list(grid_map(f, grid))
    local = [k for k in range(len(grid))
             if (k == 0 or at[k] <= at[k - 1]) and (k == len(grid) - 1 or at[k] <= at[k + 1])]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    chosen: list[int] = []
    for k in sorted(local, key=lambda k: (at[k], abs(grid[k]))):
        # ±λz of a probe with a flat far-field phase (an estimate from the mean pattern) are
        # twins, complex conjugates of each other: one minimum, refined once
        if len(chosen) < max(1, minima) and not any(grid[j] == -grid[k] for j in chosen):
            chosen.append(k)
    for i in chosen:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        for _ in range(refinements):
            if f(a) < f(b):
                hi, b = b, a
                a = hi - g * (hi - lo)
            else:
                lo, a = a, b
                b = lo + g * (hi - lo)
    best = min(values, key=lambda lz: (values[lz], abs(lz)))
    return best, values
