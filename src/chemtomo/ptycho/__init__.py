"""chemtomo.ptycho: far-field ptychographic reconstruction (probe models, operators, solvers)."""

from .probe import probe_from_diffraction, zone_plate_probe

__all__ = ["probe_from_diffraction", "zone_plate_probe"]
