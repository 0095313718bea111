"""chemtomo.particles: segment particles, measure them, and the statistics of their activity."""

from .figures import activity_vs_size, particle_gallery, volume_histogram
from .matching import LabelMatch, match_labels
from .measure import measure, table_units
from .segment import segment
from .statistics import ActiveFraction, active_fraction, activity_trends

__all__ = [
    "segment", "measure", "table_units", "active_fraction", "ActiveFraction", "activity_trends",
    "match_labels", "LabelMatch", "volume_histogram", "activity_vs_size", "particle_gallery",
]
