"""The run report: figures of the flow and one self-contained HTML page."""

from .figures import plot_alignment, plot_class_3d, plot_class_slices, plot_orthoslices, plot_projection
from .html import build_report

__all__ = ["build_report", "plot_alignment", "plot_class_3d", "plot_class_slices", "plot_orthoslices",
           "plot_projection"]
