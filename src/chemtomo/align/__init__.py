"""Tilt-series alignment: cross-energy registration, coarse alignment and iterative reprojection
alignment with similarity transforms (DESIGN.md, ``align.align`` / ``align.apply``)."""

from .alignment import Alignment
from .api import align
from .apply import apply
from .coarse import coarse_align
from .energies import register_energies
from .register import register_common_translation, register_similarity, register_translation
from .reprojection import ReprojectionOptions, reprojection_align
from .stack import apply_stack_shifts, register_stack

__all__ = [
    "align", "apply", "Alignment", "register_translation", "register_common_translation", "register_similarity",
    "register_energies", "coarse_align", "reprojection_align", "ReprojectionOptions",
    "register_stack", "apply_stack_shifts",
]
