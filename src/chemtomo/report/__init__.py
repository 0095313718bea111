"""The run report: figures of the flow and one self-contained HTML page."""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .figures import plot_alignment, plot_class_3d, plot_class_slices, plot_orthoslices, plot_projection
    from .html import build_report

__all__ = ["build_report", "plot_alignment", "plot_class_3d", "plot_class_slices", "plot_orthoslices",
           "plot_projection"]

# matplotlib and the store on first use: importing chemtomo.report costs nothing until a report is made
__getattr__, __dir__ = lazy_exports(__name__, {
    "build_report": ".html",
    **{name: ".figures" for name in ("plot_alignment", "plot_class_3d", "plot_class_slices", "plot_orthoslices",
                                     "plot_projection")},
})
