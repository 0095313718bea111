"""Typed containers: arrays with their physical metadata (DESIGN.md, "Containers").

They are used at the edges (io, pipeline, report). Algorithms take plain arrays and explicit
parameters. Every container carries its pixel/voxel size in metres and its energy in eV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["Scan", "Projection", "TiltSeries", "Volume", "ChemicalMap", "Particles", "Curve", "ScanRef"]


def _positive(name: str, value: float, owner: str) -> None:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise InputError(f"{owner}: {name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class Curve:
    """A resolution curve (FRC in 2D, FSC in 3D).

    frequency_per_m : (n,) spatial frequency of each ring/shell, cycles per metre
    correlation     : (n,) correlation coefficient per ring/shell
    threshold       : (n,) the ½-bit threshold per ring/shell (van Heel & Schatz 2005)
    resolution_m    : half-period resolution where correlation first falls below threshold
                      (NaN when it never does within the sampled band)
    n_per_shell     : (n,) number of Fourier samples per ring/shell
    threshold_name  : which criterion ``threshold`` holds
    """

    frequency_per_m: np.ndarray
    correlation: np.ndarray
    threshold: np.ndarray
    resolution_m: float
    n_per_shell: np.ndarray | None = None
    threshold_name: str = "half-bit"


@dataclass(frozen=True)
class Scan:
    """One ptychography scan: diffraction frames with their geometry.

    frames            : (n_frames, ny, nx) float32 photon counts, zero frequency at the centre
    positions_m       : (n_frames, 2) float64 probe-centre positions (y, x) in metres on the
                        sample, relative to the centre of the reconstructed object array
    energy_ev         : photon energy, eV
    distance_m        : sample–detector distance, metres
    detector_pixel_m  : detector pixel size, metres (square pixels: (y, x) sizes equal;
                        ``detector_pixel_yx_m`` holds both when they differ)
    mask              : (ny, nx) bool, True where a detector pixel is valid, or None (all valid)
    angle_deg         : tilt angle of the sample, degrees (NaN if unknown)
    probe             : (n_modes, ny, nx) complex64 probe guess or None
    source            : path of the file it was read from ("" when made in memory)
    """

    frames: np.ndarray
    positions_m: np.ndarray
    energy_ev: float
    distance_m: float
    detector_pixel_m: float
    mask: np.ndarray | None = None
    angle_deg: float = float("nan")
    probe: np.ndarray | None = None
    source: str = ""
    detector_pixel_yx_m: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        owner = self.source or "Scan"
        if self.frames.ndim != 3:
            raise InputError(f"{owner}: frames must have shape (n_frames, ny, nx), got {self.frames.shape}")
        if self.positions_m.shape != (self.frames.shape[0], 2):
            raise InputError(f"{owner}: positions must have shape ({self.frames.shape[0]}, 2) (one (y, x) per frame), "
                             f"got {self.positions_m.shape}")
        _positive("energy_ev", self.energy_ev, owner)
        _positive("distance_m", self.distance_m, owner)
        _positive("detector_pixel_m", self.detector_pixel_m, owner)
        if self.mask is not None and self.mask.shape != self.frames.shape[1:]:
            raise InputError(f"{owner}: mask must have the frame shape {self.frames.shape[1:]}, got {self.mask.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (int(self.frames.shape[1]), int(self.frames.shape[2]))

    @property
    def wavelength_m(self) -> float:
        from .units import energy_to_wavelength

        return energy_to_wavelength(self.energy_ev)

    @property
    def pixel_m(self) -> float:
        """Object-plane pixel size λ z / (n p), metres (y axis; see ``pixel_yx_m``)."""
        return self.pixel_yx_m[0]

    @property
    def pixel_yx_m(self) -> tuple[float, float]:
        from .units import object_pixel_size

        py, px = self.detector_pixel_yx_m or (self.detector_pixel_m, self.detector_pixel_m)
        ny, nx = self.frame_shape
        return (object_pixel_size(self.energy_ev, self.distance_m, py, ny),
                object_pixel_size(self.energy_ev, self.distance_m, px, nx))


@dataclass(frozen=True)
class ScanRef:
    """One row of a dataset manifest: an input file with its tilt angle and energy.

    path      : the file (a CXI scan or image, a Data Exchange HDF5 file, a TIFF)
    angle_deg : tilt angle, degrees; NaN for a file holding every angle of its energy
    energy_ev : photon energy, eV
    pixel_m   : sample-plane pixel size, metres, overriding the file's (NaN: from the file)
    flat, dark: flat-field and dark-field files of full-field intensity data ("" if none)
    angles    : file listing the angles of a multi-projection file without them ("" if none)
    """

    path: str
    angle_deg: float
    energy_ev: float
    pixel_m: float = float("nan")
    flat: str = ""
    dark: str = ""
    angles: str = ""


@dataclass(frozen=True)
class Projection:
    """A reconstructed complex projection T(y, x) = exp(i k ∫(n − 1) dz).

    transmission : (ny, nx) complex64
    pixel_m      : object pixel size, metres
    energy_ev    : photon energy, eV
    angle_deg    : tilt angle, degrees
    probe        : (n_modes, py, px) complex64 or None
    background   : (py, px) float32 retrieved static background (counts) or None
    frc          : Curve of the split-half FRC, or None
    errors       : (n_iterations,) error metric per iteration
    info         : free-form metadata (algorithm string, timings, ...)
    """

    transmission: np.ndarray
    pixel_m: float
    energy_ev: float
    angle_deg: float = float("nan")
    probe: np.ndarray | None = None
    background: np.ndarray | None = None
    frc: Curve | None = None
    errors: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.transmission.ndim != 2:
            raise InputError(f"Projection: transmission must be 2D (ny, nx), got shape {self.transmission.shape}")
        _positive("pixel_m", self.pixel_m, "Projection")
        _positive("energy_ev", self.energy_ev, "Projection")


@dataclass(frozen=True)
class TiltSeries:
    """A tilt series of images, rotation axis along y (rows).

    array      : (n_angles, ny, nx) float32
    angles_deg : (n_angles,) degrees, acquisition order
    pixel_m    : pixel size, metres
    energy_ev  : photon energy, eV
    kind       : "od" (optical density) or "phase" (radians)
    """

    array: np.ndarray
    angles_deg: np.ndarray
    pixel_m: float
    energy_ev: float
    kind: str = "od"

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise InputError(f"TiltSeries: array must be (n_angles, ny, nx), got shape {self.array.shape}")
        if np.shape(self.angles_deg) != (self.array.shape[0],):
            raise InputError(f"TiltSeries: {self.array.shape[0]} projections but angles_deg has shape "
                             f"{np.shape(self.angles_deg)}; expected one angle per projection")
        if self.kind not in ("od", "phase"):
            raise InputError(f"TiltSeries: kind must be 'od' or 'phase', got {self.kind!r}")
        _positive("pixel_m", self.pixel_m, "TiltSeries")
        _positive("energy_ev", self.energy_ev, "TiltSeries")


@dataclass(frozen=True)
class Volume:
    """A reconstructed volume (ny, nz, nx): y along the rotation axis, z the beam at 0°.

    array      : (ny, nz, nx) float32
    voxel_m    : voxel size, metres
    energy_ev  : photon energy, eV
    algorithm  : reconstruction algorithm name
    parameters : its parameters
    """

    array: np.ndarray
    voxel_m: float
    energy_ev: float
    algorithm: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise InputError(f"Volume: array must be (ny, nz, nx), got shape {self.array.shape}")
        _positive("voxel_m", self.voxel_m, "Volume")
        _positive("energy_ev", self.energy_ev, "Volume")


@dataclass(frozen=True)
class ChemicalMap:
    """Per-voxel chemistry (DESIGN.md): FePO4 fraction, density, polar angle, phase classes.

    fraction    : (ny, nz, nx) float32 x_FP in [0, 1], NaN outside the sample mask
    density     : (ny, nz, nx) float32 C_LFP + C_FP (reference units)
    polar_deg   : (ny, nz, nx) float32 polar angle of (OD(E1), OD(E2)), degrees
    labels      : (ny, nz, nx) uint8: 0 outside, 1 LFP-rich, 2 mixed, 3 FP-rich
    references  : (n_energies, n_phases) reference matrix used for unmixing
    thresholds  : (lfp_rich_max_fp, fp_rich_min_fp) FePO4 fraction class limits, e.g. (0.3, 0.7)
    voxel_m     : voxel size, metres
    energies_ev : energies used, eV
    """

    fraction: np.ndarray
    density: np.ndarray
    polar_deg: np.ndarray
    labels: np.ndarray
    references: np.ndarray
    thresholds: tuple[float, float]
    voxel_m: float
    energies_ev: tuple[float, ...]


@dataclass(frozen=True)
class Particles:
    """Segmented particles: a label volume (int32, 0 = background) and one table row each."""

    labels: np.ndarray
    table: Any  # pandas.DataFrame
    voxel_m: float
