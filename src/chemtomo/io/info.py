"""Human-readable summaries of what a CXI file or a run store holds (`chemtomo info`)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import InputError
from ._h5 import open_h5

__all__ = ["describe"]


def _describe_h5(path: Path) -> str:
    lines = [f"{path}  (HDF5/CXI)"]
    with open_h5(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                if obj.shape == () or obj.size == 1:
                    v = obj[()]
                    v = v.decode() if isinstance(v, bytes) else np.asarray(v).reshape(())
                    lines.append(f"  /{name}  = {v}")
                else:
                    lines.append(f"  /{name}  {obj.dtype} {obj.shape}")
        f.visititems(visit)
        if "entry_1/instrument_1/detector_1/data" in f or "entry_1/data_1/data" in f:
            try:
                from .cxi import read_scan

                s = read_scan(path)
                lines.append("")
                lines.append(f"  scan: {s.n_frames} frames of {s.frame_shape[0]}×{s.frame_shape[1]} px, "
                             f"{s.energy_ev:.2f} eV, angle {s.angle_deg:.2f}°, "
                             f"object pixel {s.pixel_m * 1e9:.3f} nm, "
                             f"mean {float(s.frames.sum(axis=(1, 2)).mean()):.3g} photons/frame")
                from .cxi import read_scan_geometry

                g = read_scan_geometry(path)["geometry"]
                lines.append(f"  {g.describe()}")
                if g.beam_centre_px is not None:
                    lines.append(f"  direct beam (corner_position) at pixel ({g.beam_centre_px[0]:.1f}, "
                                 f"{g.beam_centre_px[1]:.1f}); chemtomo takes zero frequency at "
                                 f"({s.frame_shape[0] // 2}, {s.frame_shape[1] // 2})")
            except InputError as exc:
                lines.append(f"  not a valid scan: {exc}")
    return "\n".join(lines)


def describe(path: str | os.PathLike) -> str:
    """Describe a CXI/HDF5 file or a chemtomo run store (a ``.zarr`` directory)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: not found")
    if p.is_dir():
        from .store import describe_store

        return describe_store(p)
    return _describe_h5(p)
