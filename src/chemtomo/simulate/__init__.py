"""chemtomo.simulate: a virtual version of the paper's experiment, with known truth."""

from .phantoms import PATTERNS, Sample, plate_sample

__all__ = ["plate_sample", "Sample", "PATTERNS"]
