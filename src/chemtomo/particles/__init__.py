"""chemtomo.particles: segment particles, measure them, and the statistics of their activity."""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports
from .matching import LabelMatch, match_labels
from .measure import measure, table_units
from .segment import segment
from .statistics import ActiveFraction, active_fraction, activity_trends

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .figures import activity_vs_size, particle_gallery, volume_histogram

__all__ = [
    "ActiveFraction",
    "LabelMatch",
    "active_fraction",
    "activity_trends",
    "activity_vs_size",
    "match_labels",
    "measure",
    "particle_gallery",
    "segment",
    "table_units",
    "volume_histogram",
]

# matplotlib only when a figure is drawn
__getattr__, __dir__ = lazy_exports(__name__, {name: ".figures" for name in ("activity_vs_size", "particle_gallery",
                                                                            "volume_histogram")})
