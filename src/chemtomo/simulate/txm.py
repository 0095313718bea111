"""A full-field transmission X-ray microscope (TXM) XANES tomography of the plate phantom.

``simulate_txm`` images the same virtual sample as the ptychography simulator
(:func:`.phantoms.plate_sample`, LiFePO4/FePO4 plates with a known FePO4 fraction per voxel) the
way a zone-plate TXM at the Fe K-edge does, with known truth:

1. **Sample**: micron-scale plates (:data:`.phantoms.TXM_SIZES`) on a ``(ny, nz, nx)`` grid of
   ``voxel_m``. Why micron-scale: at 7.1 keV absorption is weak. The Fe K-edge step of LiFePO4
   is Δμ ≈ 4.5e4 /m (:mod:`.kedge`; attenuation length ≈ 16 µm above the edge), and the largest
   difference between LiFePO4 and FePO4, at 7125 eV, is ≈ 3.6e4 /m, i.e. an OD contrast of
   0.036 per µm of material. The paper's 20 nm plates would give 7e-4, far below any photon
   noise. Plates 0.5–1.0 µm thick and ≈ 0.8 µm across give ≈ 0.025 OD of chemical contrast per
   pixel at 0° (more at high tilt, where the path runs along the plate), against a photon noise
   of 1/sqrt(N) ≈ 0.006 at the default ``photons_per_pixel`` = 3e4: 4σ per pixel and per
   energy, and the contrast appears at some ten energies across the edge. The voxel (default
   60 nm: a 30 nm zone-plate TXM pixel binned 2 × 2, as is usual for XANES tomography) is a
   trade between resolution and per-voxel noise; with 65 voxels the field is 3.9 µm wide. With
   these numbers, 21 angles and SIRT, the per-voxel FePO4 fraction is recovered to ≈ 0.1 RMS
   and the edge position of pure voxels to ≈ ±0.4 eV (interquartile), against the 4 eV
   Fe²⁺/Fe³⁺ shift (benchmarks/txm_xanes.py).
2. **Projections**: ∫V_LFP dz and ∫V_FP dz at every angle with the shared geometry
   ``chemtomo.tomo.project`` on a 2× finer grid (:func:`.optics.phase_volume_projections`); the
   aligned OD at energy E is ``voxel_m (μ_LFP(E) ∫V_LFP + μ_FP(E) ∫V_FP)`` with the K-edge
   references of :func:`.kedge.kedge_reference_spectra`.
3. **Misalignment** (:mod:`.misalign`): per-angle shift, rotation and scale, and a per-energy
   offset (the zone plate moves to refocus at each energy), in truth-grid pixels, DESIGN.md's
   ``Alignment`` convention.
4. **Magnification**: the zone plate's focal length ``f = D Δr / λ`` grows ∝ E. With the
   sample–detector distance L fixed and the lens refocused (1/p + 1/q = 1/f, p + q = L), the
   magnification ``M = q/p`` falls, so the effective pixel size grows ≈ ∝ E (exactly:
   :func:`zone_plate_pixel_m`); ≈ 1.3 % from 7090 to 7180 eV. The pixel is ``voxel_m`` at the
   first energy. The detector is the truth field plus ``pad_px`` pixels on each side (room for
   the shifts), centred on it.
5. **Intensities**: ``I = Poisson(B(y, x) d_k exp(−OD)) + dark + read noise``, with ``B`` the
   beam profile (a broad Gaussian from the condenser with a weak ring ripple, moving slightly
   with energy; ``photons_per_pixel`` at its peak), ``d_k`` the incident intensity of frame k
   relative to the first flat (a slow decay of ``drift_per_series`` across the tilt series plus
   a per-frame jitter ``drift_jitter``), and a dark level of ``dark_offset_counts`` with a
   fixed pattern and Gaussian read noise. ``n_flat`` flats (half before, half after the tilt
   series, so they bracket the drift) and ``n_dark`` darks per energy. Counts are rounded and
   stored as uint16 when they fit (float32 otherwise).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from ..core.errors import InputError
from .kedge import KEDGE_RANGE_EV, kedge_reference_spectra
from .misalign import AlignmentTruth, aligned_coordinates, draw_misalignment
from .optics import phase_volume_projections
from .phantoms import TXM_SIZES, PlateSizes, Sample, plate_sample

__all__ = ["TXM_PRESETS", "TXMDataset", "TXMPreset", "simulate_txm", "zone_plate_pixel_m"]

#: A realistic Fe K-edge XANES scan: coarse below the edge, 2 eV steps across it, coarse above.
TXM_ENERGIES_EV = (7090.0, 7100.0, 7108.0, 7114.0, 7118.0, 7121.0, 7123.0, 7125.0, 7127.0, 7129.0,
                   7132.0, 7136.0, 7142.0, 7152.0, 7165.0, 7180.0)
_UINT16_MAX = 65535


@dataclass(frozen=True)
class TXMPreset:
    """Parameters of a virtual TXM XANES tomography (every field can be overridden).

    shape               : (ny, nz, nx) truth volume, voxels (odd sizes keep every centre convention)
    voxel_m             : voxel = effective pixel at the first energy, metres
    n_particles         : number of plates
    energies_ev         : XANES energies, eV, strictly increasing (the first is the reference of the
                          pixel size and of the energy offsets)
    angles_deg          : tilt angles in acquisition order, degrees
    sizes               : plate size distribution (:class:`.phantoms.PlateSizes`)
    pad_px              : detector margin on each side of the truth field, pixels
    photons_per_pixel   : incident photons per pixel per frame at the beam's peak (counts)
    beam_falloff        : relative drop of the beam profile from its peak to the detector corners
    drift_per_series    : relative decay of the incident intensity across one energy's tilt series
    drift_jitter        : standard deviation of the per-frame incident-intensity fluctuation
    n_flat, n_dark      : flat (open beam) and dark frames per energy
    dark_offset_counts  : mean dark level, counts; ``dark_pattern_counts`` its pixel-to-pixel spread
    read_noise_counts   : Gaussian read noise per frame, counts (rms)
    zp_magnification    : zone-plate magnification at the first energy (sets the pixel-size law)
    shift_sigma_px, shift_max_px, rotation_sigma_deg, rotation_max_deg, scale_sigma, scale_max,
    energy_offset_max_px : misalignment distributions (:func:`.misalign.draw_misalignment`)
    two_phase_fraction  : probability that a plate is drawn two-phase
    """

    shape: tuple[int, int, int] = (49, 65, 65)
    voxel_m: float = 60e-9
    n_particles: int = 6
    energies_ev: tuple[float, ...] = TXM_ENERGIES_EV
    angles_deg: tuple[float, ...] = tuple(np.round(np.linspace(-90.0, 90.0, 21, endpoint=False) + 180.0 / 42,
                                                   4).tolist())
    sizes: PlateSizes = TXM_SIZES
    pad_px: int = 8
    photons_per_pixel: float = 3.0e4
    beam_falloff: float = 0.3
    drift_per_series: float = 0.01
    drift_jitter: float = 0.002
    n_flat: int = 6
    n_dark: int = 4
    dark_offset_counts: float = 100.0
    dark_pattern_counts: float = 2.0
    read_noise_counts: float = 3.0
    zp_magnification: float = 40.0
    shift_sigma_px: float = 2.0
    shift_max_px: float = 5.0
    rotation_sigma_deg: float = 0.2
    rotation_max_deg: float = 0.5
    scale_sigma: float = 0.002
    scale_max: float = 0.005
    energy_offset_max_px: float = 1.5
    two_phase_fraction: float = 0.35


#: ``txm``: 6 plates in a 2.9 × 3.9 × 3.9 µm field (49 × 65 × 65 voxels of 60 nm), 21 angles over
#: 180°, 16 energies 7090–7180 eV, detector 65 × 81 pixels; a few seconds to simulate.
TXM_PRESETS: dict[str, TXMPreset] = {"txm": TXMPreset()}


@dataclass(frozen=True)
class TXMDataset:
    """A simulated full-field XANES tomography with its ground truth (in memory).

    preset_name, preset, seed, soc : how it was made
    sample       : the truth :class:`.phantoms.Sample`
    angles_deg   : (n_angles,) tilt angles in acquisition order, degrees
    energies_ev  : (n_energies,) energies, eV
    pixel_m      : (n_energies,) effective sample pixel size at each energy, metres
    alignment    : :class:`.misalign.AlignmentTruth` (truth-grid pixels)
    references   : DataFrame ``energy_eV, LiFePO4, FePO4`` (μ, 1/m) at the energies
    data         : (n_energies, n_angles, ny_d, nx_d) counts (uint16 or float32)
    flats        : (n_energies, n_flat, ny_d, nx_d) counts
    darks        : (n_energies, n_dark, ny_d, nx_d) counts
    od_detector  : (n_energies, n_angles, ny_d, nx_d) float32 noise-free OD as recorded
                   (misaligned, on each energy's pixel grid)
    beam         : (n_energies, ny_d, nx_d) float32 mean incident counts B at the start of the series
    drift        : (n_energies, n_angles) float64 incident intensity of each frame relative to B
    flat_drift   : (n_energies, n_flat) float64 the same for each flat
    dark_level   : (ny_d, nx_d) float32 mean dark counts per pixel
    """

    preset_name: str
    preset: TXMPreset
    seed: int
    soc: float
    sample: Sample
    angles_deg: np.ndarray
    energies_ev: np.ndarray
    pixel_m: np.ndarray
    alignment: AlignmentTruth
    references: pd.DataFrame
    data: np.ndarray
    flats: np.ndarray
    darks: np.ndarray
    od_detector: np.ndarray
    beam: np.ndarray
    drift: np.ndarray
    flat_drift: np.ndarray
    dark_level: np.ndarray
    lfp_proj: np.ndarray = dataclasses.field(repr=False, default=None)
    fp_proj: np.ndarray = dataclasses.field(repr=False, default=None)

    @property
    def voxel_m(self) -> float:
        return self.sample.voxel_m

    @property
    def detector_shape(self) -> tuple[int, int]:
        return tuple(int(n) for n in self.data.shape[2:])

    def incident(self, i_energy: int) -> np.ndarray:
        """True mean incident counts of every frame at energy index ``i_energy``: (n_angles, ny_d, nx_d)."""
        return (self.beam[i_energy][None] * self.drift[i_energy][:, None, None]).astype(np.float32)

    def mu_volume(self, i_energy: int) -> np.ndarray:
        """Truth μ per voxel (1/m), (ny, nz, nx) float32, at energy index ``i_energy``."""
        lfp, fp = self.sample.phase_volumes()
        r = self.references.iloc[i_energy]
        return (float(r.LiFePO4) * lfp + float(r.FePO4) * fp).astype(np.float32)

    def od_truth(self, i_energy: int) -> np.ndarray:
        """Aligned noise-free OD tilt series on the truth grid, (n_angles, ny, nx) float32."""
        r = self.references.iloc[i_energy]
        return (self.voxel_m * (float(r.LiFePO4) * self.lfp_proj + float(r.FePO4) * self.fp_proj)).astype(np.float32)


def zone_plate_pixel_m(energies_ev, *, pixel_ref_m: float, energy_ref_ev: float, magnification: float) -> np.ndarray:
    """Effective sample pixel of a zone-plate microscope refocused at each energy, metres.

    The focal length ``f = D Δr / λ`` grows ∝ E. With the sample–detector distance ``L = p + q``
    fixed and the lens moved to focus (``1/p + 1/q = 1/f``), ``p = (L − sqrt(L² − 4 f L)) / 2``
    and the magnification ``M = q / p`` falls with energy; the pixel is ``pixel_ref_m M_ref / M``.
    For large M this is ≈ ``pixel_ref_m · E / energy_ref_ev`` (relative deviation ≈ 2/M of the
    change).

    Parameters
    ----------
    energies_ev : (n,) float
        Photon energies, eV.
    pixel_ref_m : float
        Pixel at ``energy_ref_ev``, metres.
    energy_ref_ev : float
        Reference energy, eV.
    magnification : float
        Zone-plate magnification at the reference energy (> 1).

    Returns
    -------
    (n,) float64 pixel sizes, metres.

    Examples
    --------
    >>> px = zone_plate_pixel_m([7090.0, 7180.0], pixel_ref_m=60e-9, energy_ref_ev=7090.0, magnification=40.0)
    >>> round(float(px[1] / px[0]), 4)
    1.0134
    """
    e = np.asarray(energies_ev, np.float64)
    if not (math.isfinite(magnification) and magnification > 1.0):
        raise InputError(f"zone_plate_pixel_m: magnification must be > 1, got {magnification!r}")
    if not (math.isfinite(pixel_ref_m) and pixel_ref_m > 0 and math.isfinite(energy_ref_ev) and energy_ref_ev > 0):
        raise InputError(f"zone_plate_pixel_m: pixel_ref_m and energy_ref_ev must be positive, got "
                         f"{pixel_ref_m!r}, {energy_ref_ev!r}")
    if e.size == 0 or not np.all(np.isfinite(e) & (e > 0)):
        raise InputError(f"zone_plate_pixel_m: energies_ev must be positive, got {energies_ev!r}")
    f_ref = 1.0  # the law is scale free: only ratios of lengths enter
    length = f_ref * (1.0 + 1.0 / magnification) + f_ref * (1.0 + magnification)
    f = f_ref * e / energy_ref_ev
    disc = length ** 2 - 4.0 * f * length
    if np.any(disc <= 0):
        raise InputError(f"zone_plate_pixel_m: energies up to {e.max():g} eV cannot be focused with magnification "
                         f"{magnification:g} at {energy_ref_ev:g} eV")
    p = (length - np.sqrt(disc)) / 2.0
    m = (length - p) / p
    return pixel_ref_m * magnification / m


def _resolve(preset, overrides: dict) -> tuple[str, TXMPreset]:
    if isinstance(preset, TXMPreset):
        name, p = "custom", preset
    elif preset in TXM_PRESETS:
        name, p = str(preset), TXM_PRESETS[preset]
    else:
        raise InputError(f"simulate_txm: unknown preset {preset!r}; choose one of {sorted(TXM_PRESETS)} "
                         "or pass a TXMPreset")
    fields = {f.name for f in dataclasses.fields(TXMPreset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InputError(f"simulate_txm: unknown parameter(s) {unknown}; valid ones are {sorted(fields)}")
    for k in ("energies_ev", "angles_deg", "shape"):
        if k in overrides:
            overrides[k] = tuple(float(v) if k != "shape" else int(v) for v in np.ravel(overrides[k]))
    return name, dataclasses.replace(p, **overrides)


def _validate(p: TXMPreset) -> None:
    e = np.asarray(p.energies_ev, np.float64)
    lo, hi = KEDGE_RANGE_EV
    if e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0) or e[0] < lo or e[-1] > hi:
        raise InputError(f"simulate_txm: energies_ev must be at least two strictly increasing energies in "
                         f"{lo:g}–{hi:g} eV (the Fe K-edge model), got {list(p.energies_ev)}")
    a = np.asarray(p.angles_deg, np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.unique(a).size != a.size or np.any(np.abs(a) > 90):
        raise InputError(f"simulate_txm: angles_deg must be distinct finite angles within ±90°, "
                         f"got {len(p.angles_deg)} values")
    for name in ("n_flat", "n_dark", "pad_px"):
        v = getattr(p, name)
        if int(v) != v or v < (0 if name == "pad_px" else 1):
            raise InputError(f"simulate_txm: {name} must be a {'non-negative' if name == 'pad_px' else 'positive'} "
                             f"integer, got {v!r}")
    for name in ("photons_per_pixel", "zp_magnification"):
        v = getattr(p, name)
        if not (math.isfinite(v) and v > (1.0 if name == "zp_magnification" else 0.0)):
            raise InputError(f"simulate_txm: {name} must be a positive finite number, got {v!r}")
    for name in ("beam_falloff", "drift_per_series", "drift_jitter"):
        v = getattr(p, name)
        if not (math.isfinite(v) and 0.0 <= v < 0.5):
            raise InputError(f"simulate_txm: {name} must be a relative change in [0, 0.5), got {v!r}")
    for name in ("dark_offset_counts", "dark_pattern_counts", "read_noise_counts"):
        v = getattr(p, name)
        if not (math.isfinite(v) and v >= 0.0):
            raise InputError(f"simulate_txm: {name} must be a finite number >= 0, got {v!r}")


def _beam_profiles(shape: tuple[int, int], energies: np.ndarray, p: TXMPreset, rng) -> np.ndarray:
    """(n_energies, ny, nx) float64 mean incident counts of the condenser beam at each energy."""
    ny, nx = shape
    y = np.arange(ny, dtype=np.float64)[:, None] - (ny - 1) / 2.0
    x = np.arange(nx, dtype=np.float64)[None, :] - (nx - 1) / 2.0
    # a Gaussian whose value at the corners is (1 − beam_falloff) of its peak
    r2_corner = ((ny - 1) / 2.0) ** 2 + ((nx - 1) / 2.0) ** 2
    width2 = r2_corner / (2.0 * max(-math.log(1.0 - p.beam_falloff), 1e-12)) if p.beam_falloff > 0 else math.inf
    centre0 = rng.uniform(-0.1, 0.1, 2) * np.array([ny, nx])
    walk = rng.uniform(-0.03, 0.03, 2) * np.array([ny, nx])     # centre moves across the scan
    ripple_k = rng.uniform(0.25, 0.4) * 2.0 * math.pi / min(ny, nx) * 4.0
    phase0 = rng.uniform(0, 2 * math.pi)
    t = (energies - energies[0]) / max(energies[-1] - energies[0], 1e-12)
    out = np.empty((energies.size, ny, nx))
    for i, ti in enumerate(t):
        cy, cx = centre0 + ti * walk
        r2 = (y - cy) ** 2 + (x - cx) ** 2
        ring = 1.0 + 0.02 * np.cos(ripple_k * np.sqrt(r2) + phase0 + 2.0 * ti)
        out[i] = p.photons_per_pixel * np.exp(-r2 / (2.0 * width2)) * ring
    return out


def _detector_od(lfp_proj, fp_proj, mu: np.ndarray, voxel_m: float, pixel_m: float, alignment: AlignmentTruth,
                 i_energy: int, det_shape: tuple[int, int]) -> np.ndarray:
    """Misaligned OD at one energy sampled on that energy's detector grid, (n_angles, ny_d, nx_d)."""
    n_a, ny, nx = lfp_proj.shape
    dy, dx = det_shape
    # detector pixel -> metres from the optical axis -> raw truth-grid pixel -> aligned truth-grid pixel
    ry = (np.arange(dy) - (dy - 1) / 2.0) * (pixel_m / voxel_m) + (ny - 1) / 2.0
    rx = (np.arange(dx) - (dx - 1) / 2.0) * (pixel_m / voxel_m) + (nx - 1) / 2.0
    raw = np.stack(np.meshgrid(ry, rx, indexing="ij"))
    od = voxel_m * (mu[0] * lfp_proj + mu[1] * fp_proj)
    out = np.empty((n_a, dy, dx), np.float32)
    off = alignment.energy_offsets_px[i_energy]
    for a in range(n_a):
        q = aligned_coordinates(raw, (ny, nx), alignment.shifts_px[a] + off, float(alignment.rotation_deg[a]),
                                float(alignment.scale[a]))
        # bilinear: a pixel ≈ a voxel integrates the image over its area; a cubic spline would ring
        # (negative OD) at the plates' sharp edges
        out[a] = ndimage.map_coordinates(od[a], q, order=1, mode="constant", cval=0.0)
    return out


def simulate_txm(preset: str | TXMPreset = "txm", *, seed: int | np.random.Generator = 0, soc: float = 0.5,
                 progress: Callable[[int, int], None] | None = None, **overrides) -> TXMDataset:
    """Simulate a full-field TXM XANES tomography at the Fe K-edge, with its ground truth.

    Parameters
    ----------
    preset : "txm" or a :class:`TXMPreset`
    seed : int or numpy.random.Generator
        Everything (sample, misalignment, beam, noise) derives from it.
    soc : float
        State of charge (mean FePO4 fraction of the material), in [0, 1].
    progress : callable(done, total), optional
        Called after the sample, the projections and each energy.
    **overrides
        Any :class:`TXMPreset` field, e.g. ``photons_per_pixel=1e4`` or ``angles_deg=[-60, 0, 60]``.

    Returns
    -------
    TXMDataset

    Notes
    -----
    The physics and the reasons for the sizes are in the module docstring. The OD a user computes
    as ``−ln((I − dark)/(flat − dark))`` equals ``od_detector`` up to Poisson noise (variance
    ≈ 1/(B d_k e^−OD) per pixel) and the drift of each frame against the mean flat.

    Examples
    --------
    >>> ds = simulate_txm("txm", seed=1, shape=(17, 25, 25), n_particles=1, angles_deg=[-45.0, 0.0, 45.0],
    ...                   energies_ev=[7100.0, 7125.0, 7150.0], voxel_m=120e-9)
    >>> ds.data.shape, ds.data.dtype.name
    ((3, 3, 33, 41), 'uint16')
    """
    name, p = _resolve(preset, dict(overrides))
    _validate(p)
    if not (isinstance(soc, (int, float)) and 0.0 <= soc <= 1.0):
        raise InputError(f"simulate_txm: soc (mean FePO4 fraction) must be in [0, 1], got {soc!r}")
    seed_int = int(seed.integers(2 ** 63)) if isinstance(seed, np.random.Generator) else int(seed)
    energies = np.asarray(p.energies_ev, np.float64)
    angles = np.asarray(p.angles_deg, np.float64)
    total = 2 + energies.size

    def report(k):
        if progress is not None:
            progress(k, total)

    sample = plate_sample(p.shape, p.voxel_m, n_particles=p.n_particles, soc=soc, sizes=p.sizes,
                          seed=np.random.default_rng([seed_int, 0]), two_phase_fraction=p.two_phase_fraction)
    report(1)
    lfp_proj, fp_proj = phase_volume_projections(sample, angles)
    report(2)
    alignment = draw_misalignment(angles.size, energies, shift_sigma_px=p.shift_sigma_px,
                                  shift_max_px=p.shift_max_px, rotation_sigma_deg=p.rotation_sigma_deg,
                                  rotation_max_deg=p.rotation_max_deg, scale_sigma=p.scale_sigma,
                                  scale_max=p.scale_max, energy_offset_max_px=p.energy_offset_max_px,
                                  seed=np.random.default_rng([seed_int, 2]))
    pixel = zone_plate_pixel_m(energies, pixel_ref_m=p.voxel_m, energy_ref_ev=float(energies[0]),
                               magnification=p.zp_magnification)
    refs = kedge_reference_spectra(energies)
    mu = refs[["LiFePO4", "FePO4"]].to_numpy()
    det = (p.shape[0] + 2 * int(p.pad_px), p.shape[2] + 2 * int(p.pad_px))

    beam = _beam_profiles(det, energies, p, np.random.default_rng([seed_int, 5]))
    rng = np.random.default_rng([seed_int, 6])
    n_a, n_e = angles.size, energies.size
    ramp = (np.arange(n_a) + 0.5) / n_a
    drift = 1.0 - p.drift_per_series * ramp[None, :] + rng.normal(0.0, p.drift_jitter, (n_e, n_a))
    # flats: the first half before the tilt series (drift 0), the rest after it (drift_per_series)
    when = (np.arange(p.n_flat) >= (p.n_flat + 1) // 2).astype(np.float64)
    flat_drift = 1.0 - p.drift_per_series * when[None, :] + rng.normal(0.0, p.drift_jitter, (n_e, p.n_flat))
    dark_level = (p.dark_offset_counts + rng.normal(0.0, p.dark_pattern_counts, det)).clip(0.0, None)
    peak = p.photons_per_pixel * 1.03 * (1.0 + 5.0 * p.drift_jitter) + p.dark_offset_counts
    peak += 6.0 * math.sqrt(peak) + 5.0 * (p.dark_pattern_counts + p.read_noise_counts)
    dtype = np.uint16 if peak < _UINT16_MAX else np.float32

    def record(mean: np.ndarray) -> np.ndarray:
        counts = rng.poisson(mean) + dark_level + rng.normal(0.0, p.read_noise_counts, mean.shape)
        counts = np.round(counts)
        return counts.clip(0, _UINT16_MAX).astype(np.uint16) if dtype is np.uint16 else counts.astype(np.float32)

    data = np.empty((n_e, n_a) + det, dtype)
    flats = np.empty((n_e, p.n_flat) + det, dtype)
    darks = np.empty((n_e, p.n_dark) + det, dtype)
    od_det = np.empty((n_e, n_a) + det, np.float32)
    for i in range(n_e):
        od_det[i] = _detector_od(lfp_proj, fp_proj, mu[i], p.voxel_m, float(pixel[i]), alignment, i, det)
        data[i] = record(beam[i][None] * drift[i][:, None, None] * np.exp(-od_det[i].astype(np.float64)))
        flats[i] = record(beam[i][None] * flat_drift[i][:, None, None])
        darks[i] = record(np.zeros((p.n_dark,) + det))
        report(3 + i)

    return TXMDataset(preset_name=name, preset=p, seed=seed_int, soc=float(soc), sample=sample, angles_deg=angles,
                      energies_ev=energies, pixel_m=pixel, alignment=alignment, references=refs, data=data,
                      flats=flats, darks=darks, od_detector=od_det, beam=beam.astype(np.float32), drift=drift,
                      flat_drift=flat_drift, dark_level=dark_level.astype(np.float32), lfp_proj=lfp_proj,
                      fp_proj=fp_proj)
