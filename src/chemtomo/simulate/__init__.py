"""chemtomo.simulate: a virtual version of the paper's experiment, with known truth."""

from .experiment import PRESETS, Dataset, Preset, simulate_dataset
from .kedge import KEDGE_PARAMETERS, KEdgeParameters, kedge_absorption, kedge_reference_spectra, normalised_xanes
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
from .phantoms import PAPER_SIZES, PATTERNS, TXM_SIZES, PlateSizes, Sample, plate_sample
from .ptychography import (
    detector_background,
    detector_mask,
    diffraction_frames,
    raster_positions,
)
from .txm import TXM_PRESETS, TXMDataset, TXMPreset, simulate_txm, zone_plate_pixel_m

__all__ = [
    "E1_EV",
    "E2_EV",
    "KEDGE_PARAMETERS",
    "PAPER_SIZES",
    "PATTERNS",
    "PHASES",
    "PRESETS",
    "TXM_PRESETS",
    "TXM_SIZES",
    "AlignmentTruth",
    "Dataset",
    "KEdgeParameters",
    "PlateSizes",
    "Preset",
    "Sample",
    "TXMDataset",
    "TXMPreset",
    "absorption_coefficient",
    "aligned_coordinates",
    "detector_background",
    "detector_mask",
    "diffraction_frames",
    "draw_misalignment",
    "kedge_absorption",
    "kedge_reference_spectra",
    "misalign",
    "normalised_xanes",
    "od_tilt_series",
    "phase_volume_projections",
    "plate_sample",
    "raster_positions",
    "reference_spectra",
    "refractive_index",
    "simulate_dataset",
    "simulate_txm",
    "zone_plate_pixel_m",
]
