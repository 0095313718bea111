"""chemtomo.ptycho: far-field ptychographic reconstruction (probe models, operators, solvers)."""

from .algorithms import (
    ALGORITHMS,
    BACKGROUND_ALGORITHM,
    DEFAULT_ALGORITHM,
    LOW_DOSE_ALGORITHM,
    MID_DOSE_ALGORITHM,
    PAPER_ALGORITHM,
    default_chain,
    parse_algorithm,
)
from .options import (
    BackgroundOptions,
    ConvergenceOptions,
    DivergenceOptions,
    DMOptions,
    LSQMLOptions,
    MLOptions,
    PIEOptions,
    PositionOptions,
    ProbeOptions,
    PtychoOptions,
    RAAROptions,
    ZonePlateOptions,
)
from .orientation import OrientationGuess, OrientationTrial, apply_convention, guess_orientation
from .probe import probe_from_diffraction, zone_plate_probe
from .reconstruct import reconstruct, reconstruct_many

__all__ = [
    "ALGORITHMS",
    "BACKGROUND_ALGORITHM",
    "DEFAULT_ALGORITHM",
    "LOW_DOSE_ALGORITHM",
    "MID_DOSE_ALGORITHM",
    "PAPER_ALGORITHM",
    "BackgroundOptions",
    "ConvergenceOptions",
    "DMOptions",
    "LSQMLOptions",
    "DivergenceOptions",
    "MLOptions",
    "OrientationGuess",
    "OrientationTrial",
    "PIEOptions",
    "PositionOptions",
    "ProbeOptions",
    "PtychoOptions",
    "RAAROptions",
    "ZonePlateOptions",
    "apply_convention",
    "default_chain",
    "guess_orientation",
    "parse_algorithm",
    "probe_from_diffraction",
    "reconstruct",
    "reconstruct_many",
    "zone_plate_probe",
]
