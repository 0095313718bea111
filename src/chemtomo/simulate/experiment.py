"""The whole virtual experiment: sample → tilt series → misalignment → ptychography scans.

``simulate_dataset`` reproduces the measurement of Yu et al. (2018) with known truth:

1. **Sample** (:func:`.phantoms.plate_sample`): LiFePO4/FePO4 nano-plates on a (ny, nz, nx)
   voxel grid, state of charge ``soc``.
2. **Projections**: the projected volume of each phase at every tilt angle, with the shared
   geometry ``chemtomo.tomo.project`` on a 2× finer grid (:func:`.optics.phase_volume_projections`),
   turned into ∫δ dz and ∫β dz per energy with :func:`.optics.refractive_index`.
3. **Misalignment** (:mod:`.misalign`): per-projection shift, rotation and scale and a per-energy
   offset, recorded in DESIGN.md's ``Alignment`` convention on the *truth grid* (the volume's
   (ny, nx) with pixel ``voxel_m``, centre ``((ny − 1)/2, (nx − 1)/2)`` at position 0).
4. **Object per scan**: the misaligned ∫δ, ∫β resampled (cubic) onto the object grid of the
   scan's energy, whose pixel is ``λ z / (n p)`` (:func:`chemtomo.core.object_pixel_size`): the
   detector distance is set so that this pixel equals ``voxel_m`` at the first energy, so it is
   slightly different at the others, as at a beamline. Transmission
   ``T = exp(−k∫β dz − i k∫δ dz)``, so OD = −ln|T|² = 2k∫β dz.
5. **Ptychography** (:mod:`.ptychography`): a zone-plate probe (100 nm outer zone, central stop,
   defocused to ``probe_diameter_m``; :func:`chemtomo.ptycho.zone_plate_probe`), a square raster
   of ``step_m`` with position jitter, far-field frames with Poisson noise at ``dose_photons``
   per frame, a static smooth background and a detector mask with dead pixels.
6. **2D XAS**: OD images at 0° over the edge (aligned, truth grid) with Gaussian noise, for the
   2D validation of the chemical map, and the reference spectra of both phases.

The scans of a dataset are simulated on access (``dataset.scans[i]``), deterministically from the
seed, so the paper preset does not need its gigabytes of frames in memory at once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from ..core.containers import Scan
from ..core.errors import InputError
from ..core.units import energy_to_wavelength, object_pixel_size
from ..ptycho import zone_plate_probe
from .misalign import AlignmentTruth, aligned_coordinates, draw_misalignment
from .optics import (
    absorption_coefficient,
    phase_volume_projections,
    reference_spectra,
    refractive_index,
)
from .phantoms import Sample, plate_sample
from .ptychography import (
    detector_background,
    detector_mask,
    diffraction_frames,
    object_shape,
    raster_positions,
)

__all__ = ["PRESETS", "Dataset", "Preset", "simulate_dataset"]

_XAS_ENERGIES = tuple(np.round(np.concatenate([np.arange(700.0, 706.0, 1.0), np.arange(706.2, 711.8, 0.5),
                                               np.arange(712.5, 720.1, 1.5)]), 3).tolist())


@dataclass(frozen=True)
class Preset:
    """Parameters of a virtual experiment (every field can be overridden in ``simulate_dataset``).

    shape                : (ny, nz, nx) truth volume, voxels (odd sizes: every centre convention agrees)
    voxel_m              : voxel size = object pixel size at the first energy, metres
    n_particles          : number of nano-plates
    energies_ev          : tomography energies, eV (first = reference of the energy offsets)
    angles_deg           : tilt angles in acquisition order, degrees
    frame_px             : diffraction frame size (square), pixels
    detector_pixel_m     : detector pixel size, metres (the distance follows from voxel_m)
    step_m               : raster step, metres (paper: 70 nm)
    probe_diameter_m     : geometric diameter of the defocused zone-plate beam, metres
    outer_zone_m         : zone-plate outer zone width, metres (paper: 100 nm)
    central_stop         : central stop diameter as a fraction of the zone plate's
    dose_photons         : photons per frame incident on the sample
    background_counts    : mean static background, counts per detector pixel per frame
    dead_fraction        : fraction of dead detector pixels (plus one dead column segment)
    position_jitter_m    : std of the actual positions around the nominal raster, metres
    position_error_m     : std of the recorded (file) positions around the actual ones, metres
    shift_sigma_px, shift_max_px, rotation_sigma_deg, rotation_max_deg, scale_sigma, scale_max,
    energy_offset_max_px : misalignment distributions (see :func:`.misalign.draw_misalignment`)
    xas_energies_ev      : energies of the 2D XAS stack, eV
    xas_noise_sigma      : Gaussian noise of the 2D XAS OD images
    two_phase_fraction   : probability that a plate is drawn two-phase
    """

    shape: tuple[int, int, int]
    voxel_m: float
    n_particles: int
    energies_ev: tuple[float, ...]
    angles_deg: tuple[float, ...]
    frame_px: int = 64
    detector_pixel_m: float = 30e-6
    step_m: float = 70e-9
    probe_diameter_m: float = 210e-9
    outer_zone_m: float = 100e-9
    central_stop: float = 0.4
    dose_photons: float = 5e6
    background_counts: float = 0.5
    dead_fraction: float = 0.002
    position_jitter_m: float = 2e-9
    position_error_m: float = 0.0
    shift_sigma_px: float = 3.0
    shift_max_px: float = 10.0
    rotation_sigma_deg: float = 0.3
    rotation_max_deg: float = 1.0
    scale_sigma: float = 0.003
    scale_max: float = 0.01
    energy_offset_max_px: float = 3.0
    xas_energies_ev: tuple[float, ...] = _XAS_ENERGIES
    xas_noise_sigma: float = 0.005
    two_phase_fraction: float = 0.35


#: Named presets. ``demo``: 31 angles, 2 energies, 10 plates, 62 scans of 54 frames of 64², a few
#: seconds. ``paper``: the paper's 158 angles from −80° to +77°, 6.7 nm voxels, ~80 plates in a
#: 1.0 × 1.7 µm field (316 scans of ~460 frames of 64²; minutes and a few GB on disk).
PRESETS: dict[str, Preset] = {
    "demo": Preset(shape=(41, 65, 65), voxel_m=6.7e-9, n_particles=10, energies_ev=(708.2, 710.2),
                   angles_deg=tuple(np.round(np.linspace(-80.0, 77.0, 31), 4).tolist())),
    "paper": Preset(shape=(151, 129, 257), voxel_m=6.7e-9, n_particles=80, energies_ev=(708.2, 710.2),
                    angles_deg=tuple(float(a) for a in np.arange(-80, 78, 1))),
}


@dataclass(frozen=True)
class _Setup:
    """Everything a scan needs, computed once (internal)."""

    preset: Preset
    seed: int
    noise_seed: int                # seeds the photon (Poisson) noise of the frames and the XAS noise
    lfp_proj: np.ndarray           # (n_angles, ny, nx) projected LiFePO4 volume, voxel lengths
    fp_proj: np.ndarray            # (n_angles, ny, nx) projected FePO4 volume, voxel lengths
    alignment: AlignmentTruth
    distance_m: float
    probes: dict                   # energy -> (h, w) complex64, sum |P|² = 1
    nominal_m: np.ndarray          # (n_frames, 2)
    actual_m: np.ndarray           # (n_scans, n_frames, 2)
    recorded_m: np.ndarray         # (n_scans, n_frames, 2)
    background: np.ndarray
    mask: np.ndarray


class _LazyScans(Sequence):
    """The scans of a dataset, each simulated when it is accessed (deterministic)."""

    def __init__(self, setup: _Setup):
        self._setup = setup

    def __len__(self) -> int:
        return len(self._setup.preset.angles_deg) * len(self._setup.preset.energies_ev)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"scan index {i} out of range for {n} scans")
        return _simulate_scan(self._setup, int(i) % n)


@dataclass(frozen=True)
class Dataset:
    """A simulated dataset with its ground truth (in memory; scans simulated on access).

    preset          : the Preset used (overrides applied); ``preset_name`` its name
    seed            : the integer seed everything derives from
    noise_seed      : the integer seed of the photon noise (the frames' Poisson counts) and the
                      2D XAS noise; equal to ``seed`` unless another was asked for
    sample          : the truth :class:`Sample` (occupancy, FePO4 fraction, labels, particle table)
    angles_deg      : (n_angles,) tilt angles in acquisition order
    energies_ev     : (n_energies,) tomography energies
    scans           : sequence of n_angles·n_energies :class:`chemtomo.core.Scan` (angle-major:
                      scan ``i`` is angle ``i // n_energies``, energy ``i % n_energies``)
    alignment       : :class:`AlignmentTruth` (truth-grid pixels, DESIGN.md convention)
    positions_m     : (n_scans, n_frames, 2) actual probe positions (y, x), metres
    recorded_positions_m : (n_scans, n_frames, 2) positions written in the scans
    nominal_positions_m  : (n_frames, 2) the nominal raster
    probes          : {energy: (h, w) complex64} true illumination with sum |P|² = dose
    background      : (h, w) float32 true static background, counts per pixel
    mask            : (h, w) bool detector mask, True = valid
    pixel_m         : {energy: object pixel size, metres}
    distance_m, detector_pixel_m : detector geometry
    references      : DataFrame ``energy_eV, LiFePO4, FePO4`` (μ, 1/m) at the XAS and scan energies
    xas_energies_ev : (n_xas,) energies of the 2D XAS stack
    xas_od          : (n_xas, ny, nx) float32 OD images at 0° on the truth grid (pixel voxel_m)
    soc             : requested state of charge
    """

    preset_name: str
    preset: Preset
    seed: int
    soc: float
    sample: Sample
    angles_deg: np.ndarray
    energies_ev: np.ndarray
    scans: Sequence
    alignment: AlignmentTruth
    positions_m: np.ndarray
    recorded_positions_m: np.ndarray
    nominal_positions_m: np.ndarray
    probes: dict
    background: np.ndarray
    mask: np.ndarray
    pixel_m: dict
    distance_m: float
    detector_pixel_m: float
    references: pd.DataFrame
    xas_energies_ev: np.ndarray
    xas_od: np.ndarray
    _setup: _Setup = field(repr=False, compare=False, default=None)
    noise_seed: int | None = None

    @property
    def voxel_m(self) -> float:
        return self.sample.voxel_m

    @property
    def scan_keys(self) -> np.ndarray:
        """(n_scans, 2) float64: the (angle_deg, energy_eV) of each scan, in scan order."""
        a, e = np.meshgrid(self.angles_deg, self.energies_ev, indexing="ij")
        return np.stack([a.ravel(), e.ravel()], axis=1)

    def mu_volume(self, energy_ev: float) -> np.ndarray:
        """Truth μ per voxel (1/m), (ny, nz, nx) float32: μ_LFP·V_LFP + μ_FP·V_FP."""
        lfp, fp = self.sample.phase_volumes()
        return (absorption_coefficient("LiFePO4", energy_ev) * lfp
                + absorption_coefficient("FePO4", energy_ev) * fp).astype(np.float32)

    def od_truth(self, energy_ev: float) -> np.ndarray:
        """Aligned, noise-free OD tilt series on the truth grid, (n_angles, ny, nx) float32."""
        s = self._setup
        return (self.voxel_m * (absorption_coefficient("LiFePO4", energy_ev) * s.lfp_proj
                                + absorption_coefficient("FePO4", energy_ev) * s.fp_proj)).astype(np.float32)

    def scan_object(self, i: int) -> tuple[np.ndarray, float]:
        """The true object of scan ``i``: misaligned transmission on its energy's pixel grid.

        Returns ``(obj, pixel_m)``: obj (oy, ox) complex64 whose centre pixel (oy // 2, ox // 2)
        is position 0 of the scan's positions; pixel_m its pixel size.
        """
        if not 0 <= i < len(self.scans):
            raise InputError(f"scan_object: scan index must be in 0..{len(self.scans) - 1}, got {i}")
        obj, _, pixel = _scan_object(self._setup, int(i))
        return obj, pixel

    def transmission_truth(self, energy_ev: float) -> np.ndarray:
        """Aligned transmission T on the truth grid, (n_angles, ny, nx) complex64."""
        d, b = _integrals(self._setup, energy_ev, slice(None))
        k = 2.0 * math.pi / energy_to_wavelength(energy_ev)
        return np.exp(-k * b - 1j * k * d).astype(np.complex64)


def _integrals(setup: _Setup, energy_ev: float, which) -> tuple[np.ndarray, np.ndarray]:
    """∫δ dz and ∫β dz (metres) on the truth grid for the angles ``which``."""
    dl, bl = refractive_index("LiFePO4", energy_ev)
    df, bf = refractive_index("FePO4", energy_ev)
    v = setup.preset.voxel_m
    lfp, fp = setup.lfp_proj[which], setup.fp_proj[which]
    return (v * (dl * lfp + df * fp)).astype(np.float32), (v * (bl * lfp + bf * fp)).astype(np.float32)


def _scan_object(setup: _Setup, i: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Object transmission of scan ``i`` on its energy's grid, its positions (px) and pixel size."""
    p = setup.preset
    ia, ie = divmod(i, len(p.energies_ev))
    energy = float(p.energies_ev[ie])
    pixel = object_pixel_size(energy, setup.distance_m, p.detector_pixel_m, p.frame_px)
    d, b = _integrals(setup, energy, ia)
    ny, nx = d.shape
    positions_px = setup.actual_m[i] / pixel
    oy, ox = object_shape(positions_px, (p.frame_px, p.frame_px))
    # object pixel -> metres from position 0 -> raw truth-grid pixel -> aligned truth-grid pixel
    ry = (np.arange(oy) - oy // 2) * (pixel / p.voxel_m) + (ny - 1) / 2.0
    rx = (np.arange(ox) - ox // 2) * (pixel / p.voxel_m) + (nx - 1) / 2.0
    raw = np.stack(np.meshgrid(ry, rx, indexing="ij"))
    a = setup.alignment
    q = aligned_coordinates(raw, (ny, nx), a.shifts_px[ia] + a.energy_offsets_px[ie], float(a.rotation_deg[ia]),
                            float(a.scale[ia]))
    d_obj = np.maximum(ndimage.map_coordinates(d, q, order=3, mode="constant", cval=0.0), 0.0)
    b_obj = np.maximum(ndimage.map_coordinates(b, q, order=3, mode="constant", cval=0.0), 0.0)
    k = 2.0 * math.pi / energy_to_wavelength(energy)
    return np.exp(-k * b_obj - 1j * k * d_obj).astype(np.complex64), positions_px, pixel


def _simulate_scan(setup: _Setup, i: int) -> Scan:
    p = setup.preset
    ia, ie = divmod(i, len(p.energies_ev))
    energy = float(p.energies_ev[ie])
    obj, positions_px, _ = _scan_object(setup, i)
    frames = diffraction_frames(obj, setup.probes[energy], positions_px, dose_photons=p.dose_photons,
                                background=setup.background, mask=setup.mask,
                                seed=np.random.default_rng([setup.noise_seed, 1, i]))
    guess = (setup.probes[energy] * np.float32(math.sqrt(p.dose_photons)))[None].astype(np.complex64)
    return Scan(frames=frames, positions_m=setup.recorded_m[i].copy(), energy_ev=energy, distance_m=setup.distance_m,
                detector_pixel_m=p.detector_pixel_m, mask=setup.mask.copy(), angle_deg=float(p.angles_deg[ia]),
                probe=guess)


def _resolve_preset(preset, overrides: dict) -> tuple[str, Preset]:
    if isinstance(preset, Preset):
        name, base = "custom", preset
    elif preset in PRESETS:
        name, base = str(preset), PRESETS[preset]
    else:
        raise InputError(f"simulate_dataset: preset must be one of {sorted(PRESETS)} or a Preset, got {preset!r}")
    valid = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise InputError(f"simulate_dataset: unknown parameter(s) {unknown}; valid ones are {sorted(valid)}")
    for key in ("energies_ev", "angles_deg", "xas_energies_ev", "shape"):
        if key in overrides:
            overrides[key] = tuple(np.asarray(overrides[key]).ravel().tolist())
    return name, dataclasses.replace(base, **overrides)


def _validate(p: Preset) -> None:
    for name in ("voxel_m", "detector_pixel_m", "step_m", "probe_diameter_m", "outer_zone_m", "dose_photons"):
        v = getattr(p, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InputError(f"simulate_dataset: {name} must be a positive finite number, got {v!r}")
    for name in ("background_counts", "position_jitter_m", "position_error_m", "xas_noise_sigma"):
        v = getattr(p, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise InputError(f"simulate_dataset: {name} must be a finite number >= 0, got {v!r}")
    if int(p.frame_px) != p.frame_px or p.frame_px < 16:
        raise InputError(f"simulate_dataset: frame_px must be an integer >= 16, got {p.frame_px!r}")
    e = np.asarray(p.energies_ev, np.float64)
    if e.size == 0 or not np.all(np.isfinite(e)) or np.any((e < 100) | (e > 2000)) or np.unique(e).size != e.size:
        raise InputError(f"simulate_dataset: energies_ev must be distinct energies in 100–2000 eV, got {p.energies_ev!r}")
    a = np.asarray(p.angles_deg, np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.unique(a).size != a.size or np.any(np.abs(a) > 90):
        raise InputError(f"simulate_dataset: angles_deg must be distinct finite angles within ±90°, "
                         f"got {len(p.angles_deg)} values")
    if p.probe_diameter_m > 0.8 * p.frame_px * p.voxel_m:
        raise InputError(f"simulate_dataset: probe_diameter_m ({p.probe_diameter_m * 1e9:.0f} nm) must fit in 0.8 of "
                         f"the frame's field of view ({p.frame_px * p.voxel_m * 1e9:.0f} nm); use a larger frame_px")


def simulate_dataset(preset: str | Preset = "demo", *, seed: int | np.random.Generator = 0, soc: float = 0.5,
                     progress: Callable[[int, int], None] | None = None, noise_seed: int | None = None,
                     **overrides) -> Dataset:
    """Simulate the paper's experiment: scans at every (angle, energy) plus the ground truth.

    Parameters
    ----------
    preset : "demo", "paper" or a :class:`Preset`
    seed : int or numpy.random.Generator
        Everything (sample, misalignment, positions, noise) derives from it.
    soc : float
        State of charge (mean FePO4 fraction over the material), in [0, 1].
    progress : callable(done, total), optional
        Called after each of the set-up stages (sample, projections, optics and detector, XAS).
    noise_seed : int, optional
        Seed of the photon noise only (the Poisson counts of every frame and the noise of the 2D
        XAS stack); default ``seed``, which gives the same data as before this option. The
        sample, misalignment, scan positions, probes and detector mask still derive from
        ``seed``: two datasets with one ``seed`` and different ``noise_seed`` are independent
        noise realisations of the same measurement (benchmarks/joint_pipeline_noise.py).
    **overrides
        Any :class:`Preset` field, e.g. ``dose_photons=1e7`` or ``angles_deg=[-60, 0, 60]``.

    Returns
    -------
    Dataset
        Scans are simulated when accessed (``dataset.scans[i]``); see :class:`Dataset`.

    Examples
    --------
    >>> ds = simulate_dataset("demo", seed=1, angles_deg=[-30.0, 0.0, 30.0])
    >>> len(ds.scans), ds.scans[0].frames.shape[1:]
    (6, (64, 64))
    """
    name, p = _resolve_preset(preset, dict(overrides))
    _validate(p)
    if not (isinstance(soc, (int, float)) and 0.0 <= soc <= 1.0):
        raise InputError(f"simulate_dataset: soc (mean FePO4 fraction) must be in [0, 1], got {soc!r}")
    seed_int = int(seed.integers(2 ** 63)) if isinstance(seed, np.random.Generator) else int(seed)
    if noise_seed is None:
        noise_int = seed_int
    elif isinstance(noise_seed, (int, np.integer)) and not isinstance(noise_seed, bool) and noise_seed >= 0:
        noise_int = int(noise_seed)
    else:
        raise InputError(f"simulate_dataset: noise_seed must be a non-negative integer (or None: the sample's "
                         f"seed), got {noise_seed!r}")
    total = 4

    def report(k):
        if progress is not None:
            progress(k, total)

    sample = plate_sample(p.shape, p.voxel_m, n_particles=p.n_particles, soc=soc,
                          seed=np.random.default_rng([seed_int, 0]), two_phase_fraction=p.two_phase_fraction)
    report(1)
    angles = np.asarray(p.angles_deg, np.float64)
    energies = np.asarray(p.energies_ev, np.float64)
    lfp_proj, fp_proj = phase_volume_projections(sample, angles)
    report(2)

    alignment = draw_misalignment(angles.size, energies, shift_sigma_px=p.shift_sigma_px,
                                  shift_max_px=p.shift_max_px, rotation_sigma_deg=p.rotation_sigma_deg,
                                  rotation_max_deg=p.rotation_max_deg, scale_sigma=p.scale_sigma,
                                  scale_max=p.scale_max, energy_offset_max_px=p.energy_offset_max_px,
                                  seed=np.random.default_rng([seed_int, 2]))
    frame = (p.frame_px, p.frame_px)
    distance = p.voxel_m * p.frame_px * p.detector_pixel_m / energy_to_wavelength(float(energies[0]))
    defocus = p.probe_diameter_m * p.outer_zone_m / energy_to_wavelength(float(energies[0]))
    pixels = {float(e): object_pixel_size(float(e), distance, p.detector_pixel_m, p.frame_px) for e in energies}
    probes = {e: zone_plate_probe(frame, px, e, outer_zone_m=p.outer_zone_m, central_stop=p.central_stop,
                                  defocus_m=defocus) for e, px in pixels.items()}
    rng = np.random.default_rng([seed_int, 3])
    n_scans = angles.size * energies.size
    # the raster covers the truth field plus the largest misalignment shift (the probe's own
    # radius adds illumination beyond the outermost positions)
    margin = p.shift_max_px * p.voxel_m
    field_m = (p.shape[0] * p.voxel_m + margin, p.shape[2] * p.voxel_m + margin)
    nominal, _ = raster_positions(field_m, p.step_m)
    actual = nominal[None] + rng.normal(0.0, 1.0, (n_scans,) + nominal.shape) * p.position_jitter_m
    recorded = actual + rng.normal(0.0, 1.0, actual.shape) * p.position_error_m
    background = detector_background(frame, p.background_counts)
    mask = detector_mask(frame, dead_fraction=p.dead_fraction, seed=rng)
    setup = _Setup(p, seed_int, noise_int, lfp_proj, fp_proj, alignment, distance, probes, nominal, actual, recorded,
                   background, mask)
    report(3)

    xas_e = np.asarray(p.xas_energies_ev, np.float64)
    lfp0, fp0 = phase_volume_projections(sample, [0.0])
    mu_l, mu_f = absorption_coefficient("LiFePO4", xas_e), absorption_coefficient("FePO4", xas_e)
    xas = p.voxel_m * (mu_l[:, None, None] * lfp0[0][None] + mu_f[:, None, None] * fp0[0][None])
    xas = xas + np.random.default_rng([noise_int, 4]).normal(0.0, 1.0, xas.shape) * p.xas_noise_sigma
    references = reference_spectra(np.unique(np.concatenate([xas_e, energies])))
    report(4)

    return Dataset(preset_name=name, preset=p, seed=seed_int, soc=float(soc), sample=sample, angles_deg=angles,
                   energies_ev=energies, scans=_LazyScans(setup), alignment=alignment, positions_m=actual,
                   recorded_positions_m=recorded, nominal_positions_m=nominal,
                   probes={e: (pr * np.float32(math.sqrt(p.dose_photons))).astype(np.complex64)
                           for e, pr in probes.items()},
                   background=background, mask=mask, pixel_m=pixels, distance_m=distance,
                   detector_pixel_m=p.detector_pixel_m, references=references, xas_energies_ev=xas_e,
                   xas_od=xas.astype(np.float32), _setup=setup, noise_seed=noise_int)
