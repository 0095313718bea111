"""Tomography: the tilt geometry, projector and adjoint, and reconstruction algorithms."""

from .art import art
from .cgls import cgls
from .fbp import fbp
from .geometry import TiltGeometry, check_angles, system_matrix
from .joint import JointInfo, joint_reconstruct
from .project import backproject, project
from .reconstruct import ALGORITHMS, reconstruct
from .sart import sart
from .sirt import sirt
from .tv import tv

__all__ = [
           "ALGORITHMS",
           "JointInfo",
           "TiltGeometry",
           "art",
           "backproject",
           "cgls",
           "check_angles",
           "fbp",
           "joint_reconstruct",
           "project",
           "reconstruct",
           "sart",
           "sirt",
           "system_matrix",
           "tv",
]
