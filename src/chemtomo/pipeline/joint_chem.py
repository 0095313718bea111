"""The `chem` stage with ``chem.method = "joint"``: phase volumes from the aligned tilt series.

The two-step method reconstructs each energy (stage `recon`) and unmixes per voxel; the joint
method fits the phase volumes directly to every energy's aligned OD tilt series
(:func:`chemtomo.chem.joint_reconstruct`). The tilt series come from :func:`.tomo_stage.aligned_tilts`:
the tiltseries stage has already resampled every energy onto the reference energy's pixel grid
(its pixel size differs with the wavelength) and the alignment carries no further pixel ratio, so
the joint solve runs on that one grid, the grid of the two-step volumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .context import RunContext
from .tomo_stage import aligned_tilts

__all__ = ["JointChem", "run_joint"]


@dataclass(frozen=True)
class JointChem:
    """The joint result in the form the chem stage stores (see :class:`chemtomo.chem.JointResult`)."""

    concentrations: np.ndarray
    density: np.ndarray
    mask: np.ndarray
    fraction: np.ndarray
    sigma_fraction: np.ndarray
    soc: float
    soc_sigma: float
    residual_rms: np.ndarray
    attrs: dict


def run_joint(ctx: RunContext, refs: np.ndarray, energies: list[float], voxel_m: float) -> JointChem:
    """Fit the phase volumes to the aligned OD tilt series of ``energies`` (rows of ``refs``)."""
    from .. import chem

    cfg = ctx.config.chem
    tilts, angles, pixel = aligned_tilts(ctx)
    series = {e: tilts[e] for e in energies}
    # the pixel ratio of every energy to the reference is 1 here: resampled in the tiltseries stage
    bar = ctx.progress("joint reconstruction (sweeps)")
    res = chem.joint_reconstruct(series, angles, refs, voxel_m=voxel_m, energies_ev=energies,
                                 iterations=cfg.joint_iterations, tv="auto" if cfg.joint_tv < 0 else cfg.joint_tv,
                                 occupancy=cfg.joint_occupancy,
                                 density_threshold=cfg.density_threshold or None, thresholds=tuple(cfg.thresholds),
                                 progress=bar)
    info = res.info
    attrs = {"iterations": int(info.iterations), "tv": float(res.tv_weight), "tv_auto": bool(cfg.joint_tv < 0),
             "fraction_weight": float(res.fraction_weight), "occupancy": bool(cfg.joint_occupancy),
             "residual_od_rms": [float(r) for r in res.residual_rms],
             "condition_number": float(info.condition_number),
             "singular_values": [float(s) for s in info.singular_values],
             "soc_projections": float(res.soc_projections), "soc_volumes": float(res.soc_volumes),
             "soc_source": res.soc_source, "fraction_noise": float(res.fraction_noise),
             "n_angles": len(angles), "pixel_m": float(pixel),
             "missing_rays": int(info.n_missing)}
    return JointChem(res.concentrations, res.density, res.mask, res.fraction, res.sigma_fraction,
                     float(res.soc), float(res.soc_sigma), np.asarray(res.residual_rms), attrs)
