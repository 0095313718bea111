"""chemtomo.simulate: a virtual version of the paper's experiment, with known truth."""

from .optics import (
    E1_EV,
    E2_EV,
    PHASES,
    absorption_coefficient,
    od_tilt_series,
    phase_volume_projections,
    reference_spectra,
    refractive_index,
)
from .phantoms import PATTERNS, Sample, plate_sample

__all__ = [
    "plate_sample", "Sample", "PATTERNS",
    "refractive_index", "absorption_coefficient", "reference_spectra", "od_tilt_series",
    "phase_volume_projections", "PHASES", "E1_EV", "E2_EV",
]
