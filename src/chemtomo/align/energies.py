"""Cross-energy registration: one offset per energy, so one alignment serves every energy.

At each angle the projections of all energies were recorded without moving the sample, except
for drift of the optics between energies (the zone plate refocuses with energy, and the
ptychographic reconstructions of different energies need not share an origin). So each energy E
is offset from the reference energy by one (dy, dx), the same at every angle. It is measured from
all angles at once by joint phase correlation (:func:`.register.register_common_translation`):
the unit-modulus cross-power spectra of every angle's pair are summed and one peak is taken. The
former estimate, one phase-correlation peak per angle on a 1/50 px grid combined by the median
(``combine="median"``), erred by up to 0.07–0.08 px on simulated two-energy series (3 px offset,
±1° rotation and ±1 % scale per projection, 1 % noise) where the joint estimate errs ≤ 0.04 px
(tests/align/test_energy_heldout.py): pooling the frequencies of 36 pairs averages the noise
and the contrast-dependent phase errors of each pair before the peak is located.

Chemical contrast differs between energies (that is the point of the measurement: at 710.2 eV
FePO4 absorbs more, at 708.2 eV LiFePO4), so grey levels do not match across energies but edges
do. Phase correlation divides the cross-power spectrum by its modulus, which already weights every
spatial frequency equally and so registers on edges rather than grey levels; it is applied to
the optical densities themselves by default. Measured over seven simulated two-energy series
(the simulator's plates and the test phantom, 1 % noise): raw images 0.015–0.06 px, high-pass
filtered (difference of Gaussians) 0.01–0.2 px, gradient magnitude 0.3–0.4 px.

Ptychographic projections carry a pattern fixed in the object frame and common to every energy:
the raster's and the probe's imprint on the empty (air) part of the field. Whitened by phase
correlation it competes with the sample's edges and pulls the offset towards zero (measured on
the demo's reconstructions: 1.3 px of a true 1.5 px lost in x). So by default each projection is
weighted by a soft support of its own sample, OD above the image's median by 0 → 6 robust σ
ramping from 0 to 1, before registration: the air, and with it the pattern, drops out, while
the support moves with that energy's content. With it the demo's offset is found to 0.06 px and
the phantoms' to ≤ 0.05 px (as without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from ..core.errors import InputError
from ._kernels import cubic_coefficients, cubic_taps, separable_cubic
from .register import _pooled_phase_power, _spectrum, register_common_translation, register_translation
from .transform import centre

__all__ = ["register_energies", "register_energies_similarity", "EnergyRegistration",
           "keep_significant_scale", "resample_to_reference", "check_tilts"]

_FILTERS = ("none", "highpass", "gradient")
_COMBINE = ("joint", "median")


def check_tilts(tilts, angles_deg, *, owner: str = "tilts"):
    """Validate ``{energy_eV: (n_angles, ny, nx)}`` and the angles; return (energies, angles).

    ``angles_deg`` is one array shared by all energies or a dict ``{energy_eV: angles}`` which
    must agree to 1e-6 degrees. Energies are returned sorted ascending.
    """
    if not isinstance(tilts, dict) or not tilts:
        raise InputError(f"{owner}: expected a non-empty dict {{energy_eV: (n_angles, ny, nx) array}}, "
                         f"got {type(tilts).__name__}")
    energies = sorted(tilts, key=float)
    shapes = {e: np.shape(tilts[e]) for e in energies}
    for e, sh in shapes.items():
        if len(sh) != 3:
            raise InputError(f"{owner}[{e}]: expected a tilt series (n_angles, ny, nx), got shape {sh}")
    first = energies[0]
    for e in energies[1:]:
        if shapes[e] != shapes[first]:
            raise InputError(f"{owner}: the tilt series of {e} eV has shape {shapes[e]} but that of "
                             f"{first} eV has {shapes[first]}; every energy needs the same angles "
                             "and projection shape (resample with pixel_m if the pixel sizes differ)")
    n = shapes[first][0]
    if isinstance(angles_deg, dict):
        missing = [e for e in energies if e not in angles_deg]
        if missing:
            raise InputError(f"angles_deg: no angles for energies {missing}")
        angles = np.asarray(angles_deg[first], np.float64)
        for e in energies[1:]:
            other = np.asarray(angles_deg[e], np.float64)
            if other.shape != angles.shape or not np.allclose(other, angles, atol=1e-6):
                raise InputError(f"angles_deg: the angles of {e} eV differ from those of {first} eV; "
                                 "every energy must be measured at the same angles, in the same order")
    else:
        angles = np.asarray(angles_deg, np.float64)
    if angles.shape != (n,):
        raise InputError(f"angles_deg: {angles.size} angles for tilt series of {n} projections; "
                         "expected one angle per projection")
    if not np.all(np.isfinite(angles)):
        raise InputError("angles_deg: angles must be finite")
    if n < 3:
        raise InputError(f"{owner}: {n} projections; at least 3 angles are needed to align a tilt series")
    return energies, angles


#: Pixels of the images whose cubic spline :func:`resample_to_reference` computes at a time: the
#: coefficients (float64) of a few images are reused memory, where those of the whole stack are
#: fresh pages each time. The paper preset's 158 OD images of 238 × 342 onto 170 × 274: 0.19–0.21 s
#: in blocks, 0.24–0.53 s as one stack, 0.65 s through ``map_coordinates`` image by image (the
#: same values to the bit).
RESAMPLE_BLOCK_PIXELS = 1 << 18


def resample_to_reference(tilt, pixel_ratio: float, *, out_shape: tuple[int, int] | None = None,
                          order: int = 1) -> np.ndarray:
    """Resample projections of pixel size p_E onto the reference grid of pixel size p_ref.

    ``pixel_ratio`` = p_ref / p_E. The reference pixel ``p`` shows the physical point
    ``(p − c_out)·p_ref`` from the centre, which is pixel ``c + (p − c_out)·pixel_ratio`` of the
    input (a zoom about the centre by p_E / p_ref); outside the field is 0. ``out_shape`` (default:
    the input's) crops or extends the field about the centre; ``order`` is the spline order
    (1: bilinear, all in one batched call; higher: image by image, the spline of each image on
    its own, as a 3D spline over the stack gives it at whole image indices, up to rounding, at a
    third of the time; cubic, the default of the tiltseries stage, in two 1D passes over each
    image's spline coefficients, ``_kernels.separable_cubic``, the values of
    ``map_coordinates(order=3, mode="constant")``, tests/align/test_cubic_warp.py). Where the output's pixels fall on whole input pixels (``pixel_ratio`` 1
    and a centred crop or extension by whole pixels) the interpolating spline's values are the
    pixels themselves, so the images are cropped (or padded with 0) instead.
    """
    t = np.asarray(tilt, np.float32)
    n, ny, nx = t.shape
    oy, ox = out_shape or (ny, nx)
    if pixel_ratio == 1.0 and (oy, ox) == (ny, nx):
        return t
    c = centre(t.shape)
    y0, x0 = c[0] - (oy - 1) / 2, c[1] - (ox - 1) / 2
    if pixel_ratio == 1.0 and float(y0).is_integer() and float(x0).is_integer():
        out = np.zeros((n, oy, ox), np.float32)
        y0, x0 = int(y0), int(x0)
        sy, sx = slice(max(0, y0), min(ny, y0 + oy)), slice(max(0, x0), min(nx, x0 + ox))
        out[:, sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0] = t[:, sy, sx]
        return out
    yy = c[0] + (np.arange(oy) - (oy - 1) / 2) * pixel_ratio
    xx = c[1] + (np.arange(ox) - (ox - 1) / 2) * pixel_ratio
    if order <= 1:
        k, qy, qx = np.meshgrid(np.arange(n), yy, xx, indexing="ij")
        return ndimage.map_coordinates(t, [k, qy, qx], order=order, mode="constant", cval=0.0,
                                       prefilter=False, output=np.float32)
    out = np.empty((n, oy, ox), np.float32)
    if order == 3:  # the grid is separable: two 1D passes over each image's spline (the same values)
        iy, wy, in_y = cubic_taps(yy, ny)
        ix, wx, in_x = cubic_taps(xx, nx)
        per = max(1, RESAMPLE_BLOCK_PIXELS // (ny * nx))
        for i in range(0, n, per):
            j = min(n, i + per)
            separable_cubic(cubic_coefficients(t[i:j]), np.arange(j - i, dtype=np.int64), iy, wy, in_y, ix, wx,
                            in_x, out[i:j])
        return out
    qy, qx = np.meshgrid(yy, xx, indexing="ij")
    for i in range(n):
        ndimage.map_coordinates(t[i], [qy, qx], order=order, mode="constant", cval=0.0, output=out[i])
    return out


def _support(tilt: np.ndarray, n_sigma: float = 6.0) -> np.ndarray:
    """Soft support of each (ny, nx) image's sample: 0 at the median, 1 at n_sigma robust σ above."""
    smooth = ndimage.gaussian_filter(tilt, (0, 1, 1))
    med = np.median(smooth, axis=(1, 2), keepdims=True)
    sigma = 1.4826 * np.median(np.abs(smooth - med), axis=(1, 2), keepdims=True)
    return np.clip((smooth - med) / (n_sigma * sigma + 1e-12), 0.0, 1.0).astype(np.float32)


def _sample_weighted(tilt: np.ndarray, n_sigma: float = 6.0) -> np.ndarray:
    """Each (ny, nx) image times a soft support of its sample (:func:`_support`)."""
    return (tilt * _support(tilt, n_sigma)).astype(np.float32)


def _edges(tilt, kind: str, sigma_px: float = 1.0) -> np.ndarray:
    if kind == "none":
        return tilt
    if kind == "highpass":
        return (ndimage.gaussian_filter(tilt, (0, sigma_px, sigma_px))
                - ndimage.gaussian_filter(tilt, (0, 4 * sigma_px, 4 * sigma_px))).astype(np.float32)
    g = ndimage.gaussian_gradient_magnitude(tilt, (0, sigma_px, sigma_px))
    return g.astype(np.float32)


def register_energies(tilts, angles_deg, *, reference_energy=None, pixel_m=None,
                      filter: str = "none", exclude=None, upsample: int = 100, air_weight: bool = True,
                      combine: str = "joint") -> dict:
    """Offset of every energy's tilt series from the reference energy's, pixels.

    Parameters
    ----------
    tilts : {energy_eV: (n_angles, ny, nx) float}
        Raw projections per energy, same angles and shape.
    angles_deg : (n_angles,) float, or {energy_eV: angles}
        Tilt angles, degrees (checked to agree between energies).
    reference_energy : float, optional
        The energy the others are registered onto (default: the lowest).
    pixel_m : {energy_eV: float}, optional
        Pixel size of each energy's projections, metres. Energies whose pixel size differs from
        the reference's are first resampled onto the reference grid.
    filter : "none", "highpass" or "gradient"
        What is compared: the images themselves (default; phase correlation weights their edges),
        a difference of Gaussians (σ 1 and 4 px), or the gradient magnitude (biased, kept for
        comparison).
    exclude : iterable of int, optional
        Angles to ignore (blank or saturated projections).
    upsample : int
        Phase-correlation precision is 1/``upsample`` pixel.
    air_weight : bool
        Weight each projection by the soft support of its sample (see the module notes), so
        that patterns in the empty field common to all energies do not register.
    combine : "joint" or "median"
        One phase correlation of all angles pooled (default), or one per angle and their median
        (the former method, kept for comparison).

    Returns
    -------
    offsets : {energy_eV: (2,) float64 (dy, dx)} in reference pixels, zero for the reference; the
        content at ``x`` in the reference projection sits at ``x + offset`` in that energy's
        (resampled) projection, the ``energy_offsets_px`` of :class:`~chemtomo.align.Alignment`.
    """
    energies, angles = check_tilts(tilts, angles_deg)
    if filter not in _FILTERS:
        raise InputError(f"filter must be one of {_FILTERS}, got {filter!r}")
    if combine not in _COMBINE:
        raise InputError(f"combine must be one of {_COMBINE}, got {combine!r}")
    ref_e = _pick_reference(energies, reference_energy)
    ratios = pixel_ratios(energies, ref_e, pixel_m)
    n = angles.size
    use = np.ones(n, bool)
    if exclude is not None:
        use[np.asarray(list(exclude), dtype=int)] = False
    if not use.any():
        raise InputError("register_energies: every projection is excluded; nothing to register")
    prep = _sample_weighted if air_weight else (lambda x: x)
    ref = _edges(prep(np.nan_to_num(np.asarray(tilts[ref_e], np.float32)[use])), filter)
    out = {ref_e: np.zeros(2)}
    for e in energies:
        if e == ref_e:
            continue
        mov = resample_to_reference(np.nan_to_num(np.asarray(tilts[e], np.float32)), ratios[e])[use]
        moving = _edges(prep(mov), filter)
        if combine == "joint":
            out[e] = register_common_translation(ref, moving, upsample=upsample)
        else:
            out[e] = np.median(register_translation(ref, moving, upsample=upsample), axis=0)
    return out


def _pick_reference(energies, reference_energy):
    if reference_energy is None:
        return energies[0]
    for e in energies:
        if abs(float(e) - float(reference_energy)) < 1e-3:
            return e
    raise InputError(f"reference_energy={reference_energy} eV is not among the energies "
                     f"{[float(e) for e in energies]}")


def pixel_ratios(energies, ref_e, pixel_m) -> dict:
    """{energy: p_ref / p_E}, all 1 when ``pixel_m`` is None."""
    if pixel_m is None:
        return {e: 1.0 for e in energies}
    if not isinstance(pixel_m, dict):
        return {e: 1.0 for e in energies}
    missing = [e for e in energies if e not in pixel_m]
    if missing:
        raise InputError(f"pixel_m: no pixel size for energies {missing}; expected one per energy")
    for e in energies:
        p = float(pixel_m[e])
        if not (np.isfinite(p) and p > 0):
            raise InputError(f"pixel_m[{e}]: pixel size must be a positive number of metres, got {pixel_m[e]!r}")
    return {e: float(pixel_m[ref_e]) / float(pixel_m[e]) for e in energies}


# --- shift and scale, with uncertainties ----------------------------------------------------------

@dataclass(frozen=True)
class EnergyRegistration:
    """What :func:`register_energies_similarity` estimated, per energy, and how well.

    Attributes
    ----------
    reference_energy : float
    offsets_px : {energy_eV: (2,) float64 (dy, dx)}
        Reference pixels, the ``energy_offsets_px`` of :class:`~chemtomo.align.Alignment`.
    pixel_ratio : {energy_eV: float}
        p_ref / p_E, nominal (from ``pixel_m``) times estimated; the ``energy_pixel_ratio``.
    offsets_sigma_px : {energy_eV: (2,) float64}
        Standard error of the offsets (jackknife over groups of angles), pixels.
    pixel_ratio_sigma : {energy_eV: float}
        Standard error of the pixel ratio (same jackknife).
    scale_estimated : bool
        Whether the pixel ratio was estimated (True) or only taken from ``pixel_m``.
    notes : list of str
        What was decided (e.g. by :func:`keep_significant_scale`).
    scale_kept : tuple of energies or None
        The energies whose estimated ratio is used (None: all when ``scale_estimated``).
    """

    reference_energy: float
    offsets_px: dict
    pixel_ratio: dict
    offsets_sigma_px: dict
    pixel_ratio_sigma: dict
    scale_estimated: bool = True
    notes: list = field(default_factory=list)
    scale_kept: tuple | None = None

    def summary(self) -> str:
        """One line per energy: offset ± σ (px), pixel ratio ± σ."""
        lines = [f"energy registration onto {self.reference_energy:g} eV "
                 f"({'shift and scale' if self.scale_estimated else 'shift'}; ± one standard error, "
                 "jackknife over angle groups):"]
        for e in sorted(self.offsets_px, key=float):
            o, so = self.offsets_px[e], self.offsets_sigma_px[e]
            k, sk = self.pixel_ratio[e], self.pixel_ratio_sigma[e]
            lines.append(f"  {float(e):g} eV: dy {o[0]:+.3f} ± {so[0]:.3f} px, dx {o[1]:+.3f} ± {so[1]:.3f} px, "
                         f"pixel ratio {k:.5f} ± {sk:.5f}")
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def as_attrs(self) -> dict:
        """JSON-ready record for a store's attributes: per energy (key ``str(eV)``) the offset,
        pixel ratio and their standard errors, and whether the scale was kept."""
        out = {}
        for e in sorted(self.offsets_px, key=float):
            out[f"{float(e):g}"] = {
                "offset_px": [float(v) for v in self.offsets_px[e]],
                # no standard error (None) where the offset came from register_energies
                "offset_sigma_px": [float(v) if np.isfinite(v) else None for v in self.offsets_sigma_px[e]],
                "pixel_ratio": float(self.pixel_ratio[e]),
                "pixel_ratio_sigma": float(self.pixel_ratio_sigma[e]),
                "scale_kept": bool(e in self.scale_kept) if self.scale_kept is not None else self.scale_estimated}
        return {"reference_energy_eV": self.reference_energy, "energies": out, "notes": list(self.notes)}


@dataclass(frozen=True)
class _SplineStack:
    """A moving stack's cubic spline coefficients (``_kernels.cubic_coefficients``, float64,
    computed once: the Newton steps and the jackknife warp it about 13 times) and the images of it
    in use (``rows``, int64): a subset of the angles is read in place, not copied."""

    coef: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, stack: np.ndarray) -> _SplineStack:
        return cls(cubic_coefficients(stack), np.arange(len(stack), dtype=np.int64))

    def subset(self, keep: np.ndarray) -> _SplineStack:
        return _SplineStack(self.coef, self.rows[keep])


def _warp_similarity(moving: _SplineStack, s: float, t) -> np.ndarray:
    """``stack(c + s (x − c) + t)`` for every image in use, cubic spline, 0 outside (n, ny, nx)
    float32, from the stack's spline coefficients (:class:`_SplineStack`).

    The same values as ``ndimage.map_coordinates(image, (yy, xx), order=3, mode="constant")`` on
    each image (tests/align/test_cubic_warp.py), in two 1D passes: the sample positions of a scale
    and shift form a separable grid (``_kernels.separable_cubic``). At the paper's size (158 × 170
    × 274) a warp took 0.6 s through ``map_coordinates`` and takes 0.02–0.06 s here.
    """
    ny, nx = moving.coef.shape[1:]
    c = centre(moving.coef.shape)
    yy = c[0] + s * (np.arange(ny) - c[0]) + t[0]
    xx = c[1] + s * (np.arange(nx) - c[1]) + t[1]
    iy, wy, in_y = cubic_taps(yy, ny)
    ix, wx, in_x = cubic_taps(xx, nx)
    out = np.empty((len(moving.rows), ny, nx), np.float32)
    separable_cubic(moving.coef, moving.rows, iy, wy, in_y, ix, wx, in_x, out)
    return out


# 5×5 patches of 34 % of the field, cross-power weighted to 0.25 cycles/px: chosen on development
# seeds 0–5 of tests/align/heldout_energies.py among 3×3…7×7 grids of 25–60 % patches
_PATCH = {"n_side": 5, "fraction": 0.34, "f0": 0.25}


def _patch_grid(ny: int, nx: int, n_side: int | None = None, fraction: float | None = None):
    """Overlapping patches (``fraction`` of the field on each axis), their slices and centre offsets from c."""
    n_side = n_side or _PATCH["n_side"]
    fraction = fraction or _PATCH["fraction"]
    c = centre((ny, nx))
    hy, hx = int(round(fraction * ny)), int(round(fraction * nx))
    out = []
    for y0 in np.linspace(0, ny - hy, n_side).round().astype(int):
        for x0 in np.linspace(0, nx - hx, n_side).round().astype(int):
            sl = (slice(y0, y0 + hy), slice(x0, x0 + hx))
            out.append((sl, np.array([y0 + (hy - 1) / 2.0 - c[0], x0 + (hx - 1) / 2.0 - c[1]])))
    return out


def _fine_peak(xpow: np.ndarray, up: int) -> np.ndarray:
    """Peak (2,) of the inverse DFT of one pooled cross-power (ny, nx), refined to 1/``up`` px.

    The same peak as :func:`.register._correlation_peak` (integer peak, then the upsampled DFT
    about it, Guizar-Sicairos et al. 2008), in two stages of 15 × 15 samples (1/10 px, then
    1/``up`` px) instead of one of 1.5 ``up`` squared: the Newton iteration evaluates ~25
    patches a dozen times per energy, and this is 50× less arithmetic at ``up`` = 100.
    """
    ny, nx = xpow.shape
    corr = np.abs(np.fft.ifft2(xpow))
    peak = np.array(np.unravel_index(int(corr.argmax()), (ny, nx)), np.float64)
    size = np.array([ny, nx], np.float64)
    peak = np.where(peak > size // 2, peak - size, peak)
    fy = np.fft.ifftshift(np.arange(ny) - ny // 2)
    fx = np.fft.ifftshift(np.arange(nx) - nx // 2)
    u = np.arange(15) - 7
    for stage in (10, up) if up > 10 else (up,):
        if stage <= 1:
            break
        qy, qx = peak[0] + u / stage, peak[1] + u / stage
        ky = np.exp(2j * np.pi / ny * qy[:, None] * fy[None, :])
        kx = np.exp(2j * np.pi / nx * fx[:, None] * qx[None, :])
        local = np.abs(ky @ xpow @ kx)
        iy, ix = np.unravel_index(int(local.argmax()), local.shape)
        peak = np.array([qy[iy], qx[ix]])
    return peak


class _ReferenceSpectra:
    """The conjugate spectra ``R̄`` of a reference stack's whole field and of each of its patches
    (``register._spectrum``, windowed), each computed on first use and kept: the Newton
    iteration and the jackknife correlate one reference with a dozen warped moving stacks. Its
    gradient energy (``gradient_energy``) likewise. ``rows``: the angles of the stacks handed in
    (None: all)."""

    def __init__(self, ref: np.ndarray, rows: np.ndarray | None = None, store: dict | None = None):
        self.ref, self.rows = ref, rows
        self._store = {} if store is None else store

    def subset(self, rows: np.ndarray) -> _ReferenceSpectra:
        """The same spectra for the angles ``rows`` only (shared, not recomputed)."""
        return _ReferenceSpectra(self.ref, rows, self._store)

    def conj(self, sl=None) -> tuple[np.ndarray, np.ndarray]:
        """``R̄`` of the whole field (or of the patch ``sl``) of every angle, and the rows (int64)
        of the angles handed in: the subset is read in place, not copied."""
        key = None if sl is None else (sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
        if key not in self._store:
            part = self.ref if sl is None else self.ref[(slice(None),) + sl]
            self._store[key] = np.conj(_spectrum(np.asarray(part, np.float32), True))
        out = self._store[key]
        rows = np.arange(out.shape[0]) if self.rows is None else np.asarray(self.rows)
        return out, rows.astype(np.int64, copy=False)

    def gradient_energy(self) -> np.ndarray:
        """|∇ref|² of every image (n, ny, nx) (the patches' weights in :func:`_fit_similarity`),
        computed once: within each image, so the rows of a subset are the subset's own."""
        if "gradient" not in self._store:
            gy, gx = np.gradient(self.ref, axis=(1, 2))
            self._store["gradient"] = gy * gy + gx * gx
        out = self._store["gradient"]
        return out if self.rows is None else out[self.rows]


def _common_translation(ref, mov, upsample: int, f0: float, ref_conj=None) -> np.ndarray:
    """Joint phase correlation over all angles, its pooled cross-power weighted by
    exp(−f²/2f0²) when f0 > 0 (the translation taking ``mov`` onto ``ref``, as
    :func:`.register.register_common_translation`); ``ref_conj``: ``ref``'s conjugate windowed
    spectra and the rows of them that ``mov``'s angles are (``_ReferenceSpectra.conj``),
    computed once."""
    if ref_conj is None:
        ref_conj = (np.conj(_spectrum(np.asarray(ref, np.float32), True)), None)
    xp = _pooled_phase_power(mov, True, *ref_conj)
    if f0:
        ny, nx = ref.shape[-2:]
        f2 = np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.fftfreq(nx)[None, :] ** 2
        xp = xp * np.exp(-f2 / (2.0 * f0 ** 2))
    return _fine_peak(xp, int(upsample))


def _fit_similarity(ref, mov, weight, upsample, scale: bool, spectra: _ReferenceSpectra):
    """Residual (δs, δt) taking ``mov`` onto ``ref``: δt from the whole field, δs from patches.

    Each patch's common translation over all angles (joint phase correlation) is its local
    displacement ``d_j ≈ δt + δs · p_j`` at its centre p_j (offset from the field centre). δs is
    the weighted least-squares slope (the intercept is not used: δt is the whole field's joint
    phase correlation). Patches are weighted by their gradient energy Σ|∇ref|² (a translation
    estimate's Cramér–Rao variance is inversely proportional to it); patches without sample
    support (``weight``) are skipped. ``spectra``: ``ref``'s windowed spectra (``_ReferenceSpectra``).
    """
    dt = _common_translation(ref, mov, upsample, 0.0, spectra.conj())
    if not scale:
        return 0.0, dt
    ny, nx = ref.shape[-2:]
    gweight = spectra.gradient_energy()
    rows, d, w = [], [], []
    for sl, p in _patch_grid(ny, nx):
        if float(weight[(slice(None),) + sl].sum()) <= 0:
            continue
        wj = float(gweight[(slice(None),) + sl].sum())
        if wj <= 0:
            continue
        dj = _common_translation(ref[(slice(None),) + sl], mov[(slice(None),) + sl], upsample, _PATCH["f0"],
                                 spectra.conj(sl))
        for ax in range(2):
            row = np.zeros(3)
            row[ax] = 1.0
            row[2] = p[ax]
            rows.append(row)
            d.append(dj[ax])
            w.append(wj)
    a, d, w = np.array(rows), np.array(d), np.sqrt(np.array(w))
    if a.shape[0] < 6:
        return 0.0, dt
    sol = np.linalg.lstsq(a * w[:, None], d * w, rcond=None)[0]
    return float(sol[2]), dt


def _residual(ref, moving: _SplineStack, support, weight, p, *, scale: bool, upsample: int,
              spectra: _ReferenceSpectra) -> np.ndarray:
    """The measured residual (δs, δty, δtx) of the moving stack (:class:`_SplineStack`) warped
    by p = (s, ty, tx) against ``ref``.

    ``support`` (the reference's soft sample support, (n, ny, nx) or None) multiplies the warped
    moving images, so both sides carry the same weighting at the same place; ``ref`` is already
    weighted by it. ``spectra``: ``ref``'s windowed spectra, kept between calls.
    """
    warped = _warp_similarity(moving, p[0], p[1:])
    if support is not None:
        warped = warped * support
    ds, dt = _fit_similarity(ref, warped, weight, upsample, scale, spectra)
    return np.array([ds, dt[0], dt[1]]) if scale else np.asarray(dt, np.float64)


# finite-difference steps of the Jacobian: scale, then translation (px); a few 1/upsample steps
# of the translation estimate, small against the residual's linear range (~0.5 px at the edge)
_FD_STEP = (0.004, 0.25)


def _estimate_pair(ref, moving: _SplineStack, support, weight, *, scale: bool, upsample: int, iterations: int,
                   tol_px: float = 1e-3, spectra: _ReferenceSpectra | None = None):
    """(p, J): ``mov(c + s (x − c) + t)`` ≈ ``ref(x)`` with p = (s, ty, tx) (or (ty, tx)), the
    moving stack given by its spline coefficients (:class:`_SplineStack`).

    The phase-correlation measurement of the residual (:func:`_residual`) is the fixed-point
    function F(p), zero at the estimate. Its gain is below 1 (0.5 for the scale measured on the
    held-out series: the patches' windows and the common support are fixed features that pull
    each measurement towards "no change"), so plain fixed-point iteration converges slowly and a
    few iterations stop short of the estimate (the former 3 iterations left the largest scale
    change 0.002–0.006 short). So the Jacobian J = ∂F/∂p is measured once by finite differences
    and Newton steps p ← p − J⁻¹F(p) are taken until the step moves the field by less than
    ``tol_px`` (at most ``iterations`` steps). J is returned for the linearised jackknife.
    ``spectra``: ``ref``'s spectra, kept between calls (``_ReferenceSpectra``; None: made here).
    """
    spectra = _ReferenceSpectra(ref) if spectra is None else spectra
    ny, nx = ref.shape[-2:]
    radius = 0.5 * float(np.hypot(ny, nx))
    # one plain step first (from the identity) to be within the linear range
    p = np.array([1.0, 0.0, 0.0])
    f = _residual(ref, moving, support, weight, p, scale=scale, upsample=upsample, spectra=spectra)
    p = np.array([1.0 + f[0], f[1], f[2]]) if scale else np.array([1.0, f[0], f[1]])
    free = [0, 1, 2] if scale else [1, 2]
    steps = np.array([_FD_STEP[0], _FD_STEP[1], _FD_STEP[1]])

    def F(q):
        return _residual(ref, moving, support, weight, q, scale=scale, upsample=upsample, spectra=spectra)

    f = F(p)
    jac = np.empty((len(free), len(free)))
    for j, k in enumerate(free):
        q = p.copy()
        q[k] += steps[k]
        jac[:, j] = (F(q) - f) / steps[k]
    if not np.all(np.isfinite(jac)) or abs(np.linalg.det(jac)) < 1e-12:
        raise InputError("register_energies_similarity: the registration's response to a change of "
                         "scale or shift is singular (no structure common to the energies?); "
                         "pass estimate_scale=False or pixel_m")
    for _ in range(int(iterations)):
        dp = -np.linalg.solve(jac, f)
        p[free] += dp
        f = F(p)
        moved = (abs(dp[0]) * radius if scale else 0.0) + float(np.abs(dp[-2:]).max())
        if moved < tol_px:
            break
    return p, jac


def _register_energy(ref, support, weight, raw, nominal: float, *, idx, estimate_scale: bool, upsample: int,
                     iterations: int, n_groups: int, spectra: _ReferenceSpectra | None = None):
    """One energy's (offset (2,), pixel ratio, offset σ (2,), ratio σ) against the reference
    ``ref`` (already weighted by ``support``), from its raw tilt series ``raw`` at the nominal
    pixel ratio ``nominal`` (the body of :func:`register_energies_similarity`, which documents
    the method); ``spectra``: the reference's, shared between energies (None: made here)."""
    spectra = _ReferenceSpectra(ref) if spectra is None else spectra
    mov = resample_to_reference(np.nan_to_num(np.asarray(raw, np.float32)), nominal, order=3)[idx]
    # its spline coefficients once: the Newton steps and the jackknife warp it a dozen times
    moving = _SplineStack.of(mov)
    del mov  # only its coefficients are read from here on
    p, jac = _estimate_pair(ref, moving, support, weight, scale=estimate_scale, upsample=upsample,
                            iterations=iterations, spectra=spectra)
    s, t = float(p[0]), p[1:]
    free = [0, 1, 2] if estimate_scale else [1, 2]
    jack = []
    for g in ([np.arange(idx.size)[g::n_groups] for g in range(n_groups)] if n_groups else []):
        # linearised jackknife: one Newton step from the full estimate with the full data's
        # Jacobian, on the angles outside group g
        keep = np.setdiff1d(np.arange(idx.size), g)
        f = _residual(ref[keep], moving.subset(keep), None if support is None else support[keep], weight[keep], p,
                      scale=estimate_scale, upsample=upsample, spectra=spectra.subset(keep))
        pg = p.copy()
        pg[free] -= np.linalg.solve(jac, f)
        jack.append((float(pg[0]), pg[1:]))
    # Alignment convention: raw_E(c + k0 (s (x − c) + t)) = raw_E(c + k0 s (x − c + t / s))
    if not jack:
        return t / s, nominal * s, np.full(2, np.nan), float("nan")
    g = len(jack)
    o_j = np.array([tj / sj for sj, tj in jack])
    k_j = np.array([nominal * sj for sj, _ in jack])
    return (t / s, nominal * s, np.sqrt((g - 1) / g * ((o_j - o_j.mean(axis=0)) ** 2).sum(axis=0)),
            float(np.sqrt((g - 1) / g * ((k_j - k_j.mean()) ** 2).sum())))


def _register_energy_task(ref, support, weight, raw, nominal: float, settings: dict):
    """:func:`_register_energy` as a Dask task, on one core (``core.fft.one_core``)."""
    from ..core.fft import one_core

    with one_core():
        return _register_energy(ref, support, weight, raw, nominal, **settings)


def register_energies_similarity(tilts, angles_deg, *, reference_energy=None, pixel_m=None,
                                 exclude=None, estimate_scale: bool = True, air_weight: bool = True,
                                 upsample: int = 100, iterations: int = 6,
                                 n_groups: int = 6, client=None) -> EnergyRegistration:
    """Offset AND pixel-size ratio of every energy's tilt series from the reference's, with errors.

    The zone plate's focal length scales with energy, so the magnification (pixel size) of a
    ptychographic or full-field projection may change by a percent or more between energies as
    well as its origin drifting. Estimating the offset alone then errs by the scale times the
    distance from the field centre (0.2–0.45 px RMS on a 72 px field for 0.6–1.5 %; measured on
    the held-out series of ``tests/align/heldout_energies.py``). Here each energy E is modelled as
    ``raw_E(c + k_E (x − c + o_E))`` ≈ ``raw_ref(x)`` at every angle (one ``k_E``, one ``o_E``,
    the :class:`~chemtomo.align.Alignment` convention) and both are estimated:

    1. after resampling to the nominal pixel size (``pixel_m``), the moving series is warped by a
       trial (scale, shift) and the residual measured: the local translation of a 5×5 grid of
       overlapping patches by joint phase correlation over all angles gives the residual scale
       (slope against the patch centres), the whole field's joint phase correlation the residual
       shift; both sides carry the reference's soft sample support (one support: a support of
       each energy's own image fades the rim by a noise-dependent amount, which reads as a scale);
    2. the estimate is the zero of that residual, by Newton steps with a Jacobian measured once by
       finite differences (each measurement recovers only about half of a scale error, so plain
       iteration converges slowly; see :func:`_estimate_pair`);
    3. the standard errors come from a delete-one-group jackknife over ``n_groups`` interleaved
       groups of angles (each group's estimate one Newton step from the full estimate).

    Measured on twenty held-out series (``benchmarks/energy_registration.py``, seeds 100–109 and
    200–209): ≤ 0.05 px RMS over the field on every one (docs/results/fidelity.md), where ignoring
    the scale gives 0.27 px. The jackknife errors are the repeatability over angles; the offsets
    also carry a contrast-dependent bias of phase correlation (≈ 0.02 px) that they do not see.

    Parameters
    ----------
    tilts, angles_deg, reference_energy, pixel_m, exclude, air_weight, upsample
        As for :func:`register_energies`; ``pixel_m`` gives the nominal pixel sizes (the estimate
        then corrects them); without it the nominal ratio is 1.
    estimate_scale : bool
        False: offsets only (as :func:`register_energies`), still with standard errors.
    iterations : int
        Newton steps at most (≥ 1; they stop when a step moves the field by < 0.001 px).
    n_groups : int
        Jackknife groups (≥ 2; 0 skips the standard errors, reported as NaN).
    client : distributed.Client, optional
        With two energies or more besides the reference, register each as a Dask task on the
        client's cluster, on one core (the reference's arrays leave the client once). Each
        energy is registered to the reference on its own, so the result is the same either way
        (tests/align/test_energy_scale.py); at 20 energies that is about 165 s of the client's
        time spread over the workers (benchmarks/scaling_model.py).

    Returns
    -------
    EnergyRegistration
    """
    energies, angles = check_tilts(tilts, angles_deg)
    if int(iterations) < 1:
        raise InputError(f"iterations must be at least 1, got {iterations!r}")
    if int(n_groups) == 1 or int(n_groups) < 0:
        raise InputError(f"n_groups must be 0 (no standard errors) or at least 2, got {n_groups!r}")
    ref_e = _pick_reference(energies, reference_energy)
    nominal = pixel_ratios(energies, ref_e, pixel_m)
    n = angles.size
    use = np.ones(n, bool)
    if exclude is not None:
        use[np.asarray(list(exclude), dtype=int)] = False
    idx = np.flatnonzero(use)
    if idx.size < max(3, int(n_groups)):
        raise InputError(f"register_energies_similarity: {idx.size} usable projections; at least "
                         f"{max(3, int(n_groups))} are needed (one per jackknife group)")
    ref_raw = np.nan_to_num(np.asarray(tilts[ref_e], np.float32)[idx])
    # one support, the reference's, weights both sides at the same place: a support computed from
    # each energy's own image depends on its noise (the ramp is n σ wide) and shrinks the sample
    # by a noise-dependent amount, which reads as a scale (measured: −0.005 on the pixel ratio of
    # the noisiest held-out energy, OD noise 0.02, mean over noise draws; 0.000 without noise)
    support = _support(ref_raw) if air_weight else None
    ref = ref_raw * support if air_weight else ref_raw
    weight = np.clip(ref if air_weight else np.abs(ref), 0.0, None)
    offsets, ratios, s_off, s_rat = {ref_e: np.zeros(2)}, {ref_e: 1.0}, {ref_e: np.zeros(2)}, {ref_e: 0.0}
    others = [e for e in energies if e != ref_e]
    settings = {"idx": idx, "estimate_scale": bool(estimate_scale), "upsample": int(upsample),
                "iterations": int(iterations), "n_groups": int(n_groups)}
    if client is not None and len(others) > 1:
        # one Dask task per energy, each on one core; the reference's arrays leave the client once
        # (the workers that need them fetch them from each other)
        shared = [client.scatter(a) if a is not None else None for a in (ref, support, weight)]
        raws = client.scatter([np.asarray(tilts[e], np.float32) for e in others])
        futures = [client.submit(_register_energy_task, *shared, raw, nominal[e], settings, pure=False)
                   for e, raw in zip(others, raws)]
        found = dict(zip(others, client.gather(futures)))
    else:
        spectra = _ReferenceSpectra(ref)  # the reference's spectra, computed once for every energy
        found = {e: _register_energy(ref, support, weight, tilts[e], nominal[e], spectra=spectra, **settings)
                 for e in others}
    for e, (offset, ratio, offset_sigma, ratio_sigma) in found.items():
        offsets[e], ratios[e], s_off[e], s_rat[e] = offset, ratio, offset_sigma, ratio_sigma
    return EnergyRegistration(reference_energy=float(ref_e), offsets_px=offsets, pixel_ratio=ratios,
                              offsets_sigma_px=s_off, pixel_ratio_sigma=s_rat,
                              scale_estimated=bool(estimate_scale))


def keep_significant_scale(reg: EnergyRegistration, tilts, angles_deg, *, pixel_m=None, exclude=None,
                           n_groups: int = 6, n_sigma: float = 3.0,
                           max_sigma: float = 0.005) -> EnergyRegistration:
    """The documented rule of ``align(..., estimate_energy_scale="auto")``.

    An energy keeps its estimated pixel ratio only where it differs from the nominal one (from
    ``pixel_m``, else 1) by more than ``n_sigma`` standard errors; the others keep the nominal
    ratio and their offset is estimated as with the scale off (:func:`register_energies`; a scale
    that is not resolved only adds its noise to the offsets; no standard error then, NaN). With ptychography's known pixel sizes the residual scale is usually
    not significant and the result equals the shift-only registration.

    A ratio whose standard error exceeds ``max_sigma`` (0.5 %) is not resolved either, however
    far it lies from the nominal: on a small field (the tiny pipeline test series: 24 angles of
    21 × 33 px, two energies 2 eV apart) the fit can land on 1.054 ± 0.007, 7 σ from a nominal
    that is right, and keeping it moved the two energies' volumes apart and the state of charge
    by 0.1. On the held-out series of ``benchmarks/energy_registration.py`` the standard errors
    are 0.0002–0.002.
    """
    ref_e = reg.reference_energy
    energies = sorted(reg.offsets_px, key=float)
    nominal = pixel_ratios(energies, _pick_reference(energies, ref_e), pixel_m)
    keep, drop, notes = [], [], []
    for e in energies:
        if abs(float(e) - ref_e) < 1e-3:
            continue
        k, sk = reg.pixel_ratio[e], reg.pixel_ratio_sigma[e]
        z = abs(k - nominal[e]) / sk if np.isfinite(sk) and sk > 0 else np.inf
        resolved = bool(np.isfinite(sk) and sk <= max_sigma)
        ok = z > n_sigma and resolved
        (keep if ok else drop).append(e)
        why = ("estimated scale kept" if ok else "nominal kept, shift alone" if resolved
               else f"nominal kept, shift alone (σ above {max_sigma:g}: the scale is not resolved)")
        notes.append(f"{float(e):g} eV: pixel ratio {k:.5f} ± {sk:.5f} against the nominal {nominal[e]:.5f} "
                     f"({z:.1f} σ): {why}")
    if not drop:
        return replace(reg, notes=list(reg.notes) + notes, scale_kept=tuple(keep))
    # the energies without a resolved scale are registered exactly as with the scale off
    # (register_energies, the joint phase correlation): on small or defective fields the shift-only
    # similarity fit can fail outright (28 px on the 21 × 33 px series of the detector-defect test)
    alone = register_energies(tilts, angles_deg, reference_energy=ref_e, pixel_m=pixel_m, exclude=exclude)
    offsets, ratios = dict(reg.offsets_px), dict(reg.pixel_ratio)
    s_off, s_rat = dict(reg.offsets_sigma_px), dict(reg.pixel_ratio_sigma)
    for e in drop:
        offsets[e], ratios[e] = np.asarray(alone[e], np.float64), float(nominal[e])
        s_off[e], s_rat[e] = np.full(2, np.nan), 0.0
    return replace(reg, offsets_px=offsets, pixel_ratio=ratios, offsets_sigma_px=s_off, pixel_ratio_sigma=s_rat,
                   scale_estimated=bool(keep), notes=list(reg.notes) + notes, scale_kept=tuple(keep))
