"""chemtomo.simulate: a virtual version of the paper's experiment, with known truth."""

from .experiment import PRESETS, Dataset, Preset, simulate_dataset
from .misalign import AlignmentTruth, aligned_coordinates, draw_misalignment, misalign
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
from .ptychography import detector_background, detector_mask, diffraction_frames, raster_positions

__all__ = [
    "plate_sample", "Sample", "PATTERNS",
    "refractive_index", "absorption_coefficient", "reference_spectra", "od_tilt_series",
    "phase_volume_projections", "PHASES", "E1_EV", "E2_EV",
    "simulate_dataset", "Dataset", "Preset", "PRESETS",
    "AlignmentTruth", "draw_misalignment", "aligned_coordinates", "misalign",
    "raster_positions", "detector_background", "detector_mask", "diffraction_frames",
]
