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

import numpy as np
from scipy import ndimage

from ..core.errors import InputError
from .register import register_common_translation, register_translation
from .transform import centre

__all__ = ["register_energies", "resample_to_reference", "check_tilts"]

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


def resample_to_reference(tilt, pixel_ratio: float, *, out_shape: tuple[int, int] | None = None,
                          order: int = 1) -> np.ndarray:
    """Resample projections of pixel size p_E onto the reference grid of pixel size p_ref.

    ``pixel_ratio`` = p_ref / p_E. The reference pixel ``p`` shows the physical point
    ``(p − c_out)·p_ref`` from the centre, which is pixel ``c + (p − c_out)·pixel_ratio`` of the
    input (a zoom about the centre by p_E / p_ref); outside the field is 0. ``out_shape`` (default:
    the input's) crops or extends the field about the centre; ``order`` is the spline order
    (1: bilinear, all in one batched call).
    """
    t = np.asarray(tilt, np.float32)
    n, ny, nx = t.shape
    oy, ox = out_shape or (ny, nx)
    if pixel_ratio == 1.0 and (oy, ox) == (ny, nx):
        return t
    c = centre(t.shape)
    yy = c[0] + (np.arange(oy) - (oy - 1) / 2) * pixel_ratio
    xx = c[1] + (np.arange(ox) - (ox - 1) / 2) * pixel_ratio
    k, qy, qx = np.meshgrid(np.arange(n), yy, xx, indexing="ij")
    return ndimage.map_coordinates(t, [k, qy, qx], order=order, mode="constant", cval=0.0,
                                   prefilter=order > 1, output=np.float32)


def _sample_weighted(tilt: np.ndarray, n_sigma: float = 6.0) -> np.ndarray:
    """Each (ny, nx) image times a soft support of its sample: 0 at the median, 1 at n_sigma robust σ above."""
    smooth = ndimage.gaussian_filter(tilt, (0, 1, 1))
    med = np.median(smooth, axis=(1, 2), keepdims=True)
    sigma = 1.4826 * np.median(np.abs(smooth - med), axis=(1, 2), keepdims=True)
    support = np.clip((smooth - med) / (n_sigma * sigma + 1e-12), 0.0, 1.0)
    return (tilt * support).astype(np.float32)


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
