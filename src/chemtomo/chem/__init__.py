"""chemtomo.chem: optical density, unmixing into phases, statistics and 2D XAS validation.

Where it sits in the flow (DESIGN.md): complex projections -> :func:`optical_density` -> (align,
tomo) -> OD volumes per energy -> :func:`unmix` -> :func:`fraction`, :func:`classify`,
:func:`fit_bimodal`, :func:`state_of_charge`; checked against 2D XAS by :func:`validate_2d`.
A STXM transmission stack: :func:`stack_optical_density` (I0 region) -> :func:`fit_stack`.
With a XANES stack (many energies across an edge): :func:`edge_position` and
:func:`white_line_energy` per voxel.
All functions take plain NumPy arrays (float32), read and write no files, and draw with
matplotlib's object API only.

Examples
--------
>>> import numpy as np
>>> from chemtomo import chem
>>> refs = np.array([[8.8e6, 3.3e6], [5.4e6, 7.8e6]])   # mu (1/m) at 708.2, 710.2 eV
>>> c_true = np.array([[[0.75]], [[0.25]]])             # one voxel: 25 % FePO4
>>> ods = np.einsum("ek,k...->e...", refs * 6.7e-9, c_true)
>>> conc = chem.unmix(ods, refs, voxel_m=6.7e-9)
>>> float(chem.fraction(conc, density_threshold=0.5)[0, 0]).__round__(4)
0.25
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports
from .flat_field import DEFAULT_TRANSMISSION_FLOOR, FlatFieldInfo, flat_field_od
from .joint import JointResult, joint_reconstruct
from .noise import estimate_noise, uncertainty
from .optical_density import ODInfo, optical_density
from .polar import polar_angle, polar_to_fraction, reference_angles
from .references import MAX_CONDITION, MAX_REFERENCE_GAP_EV, check_gaps, references_from_spectra, references_from_table
from .stack_fit import StackFit, fit_stack
from .stack_od import I0Region, choose_i0_region, stack_optical_density
from .statistics import (
    CLASS_NAMES,
    MixtureFit,
    class_fractions,
    classify,
    composition_histogram,
    fit_bimodal,
    soc_region,
    state_of_charge,
)
from .unmix import UnmixInfo, fraction, sample_mask, unmix
from .validate import Validation2D, compare_2d, lcf_2d, project_fraction, validate_2d
from .xanes import XanesNormalisation, edge_position, normalise_xanes, white_line_energy

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .figures import (
        plot_class_fractions,
        plot_composition_histogram,
        plot_correlation,
        plot_joint_comparison,
        plot_validation_maps,
        plot_xanes_maps,
    )

__all__ = [
    "optical_density", "ODInfo",
    "flat_field_od", "FlatFieldInfo", "DEFAULT_TRANSMISSION_FLOOR",
    "unmix", "UnmixInfo", "joint_reconstruct", "JointResult", "fraction", "sample_mask", "uncertainty", "estimate_noise",
    "references_from_table", "references_from_spectra", "check_gaps", "MAX_REFERENCE_GAP_EV", "MAX_CONDITION",
    "polar_angle", "polar_to_fraction", "reference_angles",
    "fit_bimodal", "MixtureFit", "classify", "class_fractions", "state_of_charge", "soc_region", "composition_histogram",
    "CLASS_NAMES",
    "fit_stack", "StackFit", "stack_optical_density", "choose_i0_region", "I0Region",
    "lcf_2d", "project_fraction", "compare_2d", "validate_2d", "Validation2D",
    "normalise_xanes", "XanesNormalisation", "edge_position", "white_line_energy",
    "plot_correlation", "plot_composition_histogram", "plot_class_fractions", "plot_validation_maps",
    "plot_xanes_maps",
    "plot_joint_comparison",
]

# matplotlib only when a figure is drawn
__getattr__, __dir__ = lazy_exports(__name__, {name: ".figures" for name in (
    "plot_class_fractions", "plot_composition_histogram", "plot_correlation", "plot_joint_comparison",
    "plot_validation_maps", "plot_xanes_maps")})
