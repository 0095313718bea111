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
from .ptychography import (
    detector_background,
    detector_mask,
    diffraction_frames,
    raster_positions,
)

__all__ = [
    "E1_EV",
    "E2_EV",
    "PATTERNS",
    "PHASES",
    "PRESETS",
    "AlignmentTruth",
    "Dataset",
    "Preset",
    "Sample",
    "absorption_coefficient",
    "aligned_coordinates",
    "detector_background",
    "detector_mask",
    "diffraction_frames",
    "draw_misalignment",
    "misalign",
    "od_tilt_series",
    "phase_volume_projections",
    "plate_sample",
    "raster_positions",
    "reference_spectra",
    "refractive_index",
    "simulate_dataset",
]
