"""chemtomo.ptycho: far-field ptychographic reconstruction (probe models, operators, solvers)."""

from .algorithms import ALGORITHMS, DEFAULT_ALGORITHM, PAPER_ALGORITHM, parse_algorithm
from .options import (
    BackgroundOptions,
    DivergenceOptions,
    DMOptions,
    MLOptions,
    PIEOptions,
    PositionOptions,
    ProbeOptions,
    PtychoOptions,
    RAAROptions,
    ZonePlateOptions,
)
from .probe import probe_from_diffraction, zone_plate_probe
from .reconstruct import reconstruct, reconstruct_many

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "PAPER_ALGORITHM",
    "BackgroundOptions",
    "DMOptions",
    "DivergenceOptions",
    "MLOptions",
    "PIEOptions",
    "PositionOptions",
    "ProbeOptions",
    "PtychoOptions",
    "RAAROptions",
    "ZonePlateOptions",
    "parse_algorithm",
    "probe_from_diffraction",
    "reconstruct",
    "reconstruct_many",
    "zone_plate_probe",
]
