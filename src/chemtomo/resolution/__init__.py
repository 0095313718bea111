"""Spatial resolution: Fourier ring/shell correlation, split-half FSC, edge widths, figures."""

from .figures import plot_curve
from .frc import frc, fsc
from .profiles import edge_width, line_profile
from .split_half import split_half_fsc
from .thresholds import half_bit_threshold, one_seventh_threshold

__all__ = ["frc", "fsc", "split_half_fsc", "edge_width", "line_profile", "half_bit_threshold",
           "one_seventh_threshold", "plot_curve"]
