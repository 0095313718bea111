"""Tomography: the tilt geometry, projector and adjoint, and reconstruction algorithms."""

from .geometry import TiltGeometry, check_angles, system_matrix
from .project import backproject, project

__all__ = ["TiltGeometry", "check_angles", "system_matrix", "project", "backproject"]
