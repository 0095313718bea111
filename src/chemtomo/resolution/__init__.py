"""Spatial resolution: Fourier ring/shell correlation, split-half FSC, edge widths, figures.

Where it sits in the flow (DESIGN.md): after ``ptycho.reconstruct`` (FRC of two independent
projections, the paper's 10 nm at 708.2 eV) and after ``tomo.reconstruct`` (FSC of two half
reconstructions, ≈ 11 nm), with line cuts across particle edges as the real-space check.

- :func:`frc`, :func:`fsc` — correlation per ring/shell and the half-period resolution at the
  ½-bit (or 1/7) crossing, as a :class:`chemtomo.core.Curve` (frequencies in cycles per metre).
- :func:`split_half_fsc` — reconstruct alternate angles separately and correlate them.
- :func:`line_profile`, :func:`edge_width` — sample along a line; 10–90 % width of an edge.
- :func:`half_bit_threshold`, :func:`one_seventh_threshold` — the criteria themselves.
- :func:`plot_curve` — a matplotlib Figure of a curve with its resolution marked.

Example
-------
>>> import numpy as np
>>> from chemtomo.resolution import fsc
>>> rng = np.random.default_rng(0)
>>> truth = rng.standard_normal((32, 32, 32)).astype(np.float32)
>>> curve = fsc(truth + 0.3 * rng.standard_normal(truth.shape),
...             truth + 0.3 * rng.standard_normal(truth.shape), voxel_m=6.7e-9)
>>> bool(np.isnan(curve.resolution_m))   # white signal above the noise up to Nyquist
True
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports
from .frc import frc, fsc
from .profiles import edge_width, line_profile
from .split_half import split_half_fsc
from .thresholds import half_bit_threshold, one_seventh_threshold

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .figures import plot_curve

__all__ = ["frc", "fsc", "split_half_fsc", "edge_width", "line_profile", "half_bit_threshold",
           "one_seventh_threshold", "plot_curve"]

# matplotlib only when a figure is asked for (``chemtomo ptycho`` computes FRCs, draws none)
__getattr__, __dir__ = lazy_exports(__name__, {"plot_curve": ".figures"})
