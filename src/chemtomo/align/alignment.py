"""The result of aligning a tilt series: one similarity transform per angle, one offset per energy.

See :mod:`chemtomo.align.transform` for the convention (DESIGN.md): the content at ``p`` in the
aligned projection of energy ``E`` sits in the raw one at

    c + k_E · (s R(φ)(p − c) + t + o_E),

``t`` = ``shifts_px[i]``, ``φ`` = ``rotation_deg[i]``, ``s`` = ``scale[i]``, ``o_E`` =
``energy_offsets_px[E]`` (zero for the reference energy) and ``k_E`` = ``energy_pixel_ratio[E]``
= p_ref / p_E, the reference energy's pixel size over this energy's (1 when all energies share
one grid, the case DESIGN.md describes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Alignment", "IterationRecord"]


@dataclass(frozen=True)
class IterationRecord:
    """One iteration of an iterative alignment.

    iteration      : 1-based iteration number (0 = the starting point)
    shifts_px      : (n_angles, 2) float64, (dy, dx) after this iteration
    rotation_deg   : (n_angles,) float64
    scale          : (n_angles,) float64
    residual       : (n_angles,) float64, relative RMS difference between each projection (after
                     its gain/offset fit) and its reprojection; NaN where not measured
    max_update_px  : largest RMS displacement of the sample's points (the support of its
                     reprojection) that any projection moved in this iteration, pixels
    binning        : the binning factor this iteration worked at (1 = full resolution)
    angle_corrections_deg : (n_angles,) float64 or None, the tilt-angle corrections after this
                     iteration (None when angles are not refined)
    """

    iteration: int
    shifts_px: np.ndarray
    rotation_deg: np.ndarray
    scale: np.ndarray
    residual: np.ndarray
    max_update_px: float
    binning: int = 1
    angle_corrections_deg: np.ndarray | None = None


@dataclass(frozen=True)
class Alignment:
    """Per-angle similarity transforms of a tilt series, and per-energy offsets.

    shifts_px          : (n_angles, 2) float64, (dy, dx) in pixels of the reference grid
    rotation_deg       : (n_angles,) float64, in-plane rotation, degrees
    scale              : (n_angles,) float64, magnification (1 = none)
    energy_offsets_px  : {energy_eV: (2,) float64 (dy, dx)}, zero for the reference energy
    angles_deg         : (n_angles,) float64, the tilt angles the alignment belongs to
    shape              : (ny, nx) of the projections it aligns
    reference_energy   : energy (eV) whose grid and frame the parameters are expressed in, or
                         None for a single tilt series given without energy
    energy_pixel_ratio : {energy_eV: float} p_ref / p_E (1.0 for every energy on one grid)
    excluded           : {angle index: reason} projections left out of the reconstruction
                         (blank, saturated, outliers of the reprojection residual); blank and
                         saturated ones get parameters interpolated in angle, outliers keep
                         their own registration
    unconverged        : {angle index: what happened} projections whose registration did not
                         converge, and what was done about it
    history            : list of IterationRecord, the starting point first
    method             : how the parameters were found ("coarse", "reprojection", ...)
    energy_registration : :class:`~chemtomo.align.energies.EnergyRegistration` or None, what the
                         energy registration estimated (offsets, pixel ratios, standard errors)
                         when :func:`~chemtomo.align.align` estimated the scale
    angle_corrections_deg : (n_angles,) float64 or None, corrections to the nominal tilt angles
                         found by projection matching (``ReprojectionOptions.refine_angles``);
                         reconstruct the aligned series at ``angles_deg + angle_corrections_deg``
                         (:attr:`refined_angles_deg`). None: the angles were not refined
    """

    shifts_px: np.ndarray
    rotation_deg: np.ndarray
    scale: np.ndarray
    energy_offsets_px: dict = field(default_factory=dict)
    angles_deg: np.ndarray | None = None
    shape: tuple[int, int] | None = None
    reference_energy: float | None = None
    energy_pixel_ratio: dict = field(default_factory=dict)
    excluded: dict = field(default_factory=dict)
    unconverged: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    method: str = ""
    energy_registration: object = None
    angle_corrections_deg: np.ndarray | None = None

    @property
    def n_angles(self) -> int:
        return int(np.asarray(self.shifts_px).shape[0])

    @property
    def params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shifts_px, rotation_deg, scale) as a tuple, the form the transform helpers take."""
        return (np.asarray(self.shifts_px, np.float64), np.asarray(self.rotation_deg, np.float64),
                np.asarray(self.scale, np.float64))

    @property
    def refined_angles_deg(self) -> np.ndarray | None:
        """The angles to reconstruct the aligned series at: ``angles_deg`` plus the corrections
        (``angles_deg`` itself when the angles were not refined; None when neither is known)."""
        if self.angles_deg is None:
            return None
        a = np.asarray(self.angles_deg, np.float64)
        return a if self.angle_corrections_deg is None else a + np.asarray(self.angle_corrections_deg, np.float64)

    @property
    def residuals(self) -> np.ndarray:
        """(n_iterations, n_angles) reprojection residuals of every recorded iteration."""
        if not self.history:
            return np.zeros((0, self.n_angles))
        return np.stack([h.residual for h in self.history])

    @classmethod
    def identity(cls, n_angles: int, **kwargs) -> "Alignment":
        """No shift, no rotation, unit scale for ``n_angles`` projections."""
        return cls(shifts_px=np.zeros((n_angles, 2)), rotation_deg=np.zeros(n_angles),
                   scale=np.ones(n_angles), **kwargs)
