"""chemtomo.chem: optical density, unmixing into phases, statistics and 2D XAS validation."""

from .figures import plot_class_fractions, plot_composition_histogram, plot_correlation, plot_validation_maps
from .noise import estimate_noise, uncertainty
from .optical_density import ODInfo, optical_density
from .polar import polar_angle, polar_to_fraction, reference_angles
from .references import MAX_CONDITION, references_from_table
from .statistics import (
    CLASS_NAMES,
    MixtureFit,
    class_fractions,
    classify,
    composition_histogram,
    fit_bimodal,
    state_of_charge,
)
from .unmix import UnmixInfo, fraction, sample_mask, unmix
from .validate import Validation2D, compare_2d, lcf_2d, project_fraction, validate_2d

__all__ = [
    "optical_density", "ODInfo",
    "unmix", "UnmixInfo", "fraction", "sample_mask", "uncertainty", "estimate_noise",
    "references_from_table", "MAX_CONDITION",
    "polar_angle", "polar_to_fraction", "reference_angles",
    "fit_bimodal", "MixtureFit", "classify", "class_fractions", "state_of_charge", "composition_histogram",
    "CLASS_NAMES",
    "lcf_2d", "project_fraction", "compare_2d", "validate_2d", "Validation2D",
    "plot_correlation", "plot_composition_histogram", "plot_class_fractions", "plot_validation_maps",
]
