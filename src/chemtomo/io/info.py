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
        elif "entry_1/image_1/data" in f:
            try:
                from .cxi import read_projection

                p = read_projection(path)
                lines += ["", (f"  reconstructed image: {p.transmission.shape[0]}×{p.transmission.shape[1]} px of "
                               f"{p.pixel_m * 1e9:.3f} nm, {p.energy_ev:.2f} eV, angle {p.angle_deg:.2f}° "
                               "(pipeline input kind 'projections')")]
            except InputError as exc:
                lines.append(f"  not a valid reconstructed image: {exc}")
        elif "exchange/data" in f:
            lines += ["", _describe_exchange(path)]
    return "\n".join(lines)


def _describe_exchange(path: Path) -> str:
    from .fullfield import read_full_field

    try:
        ff = read_full_field(path)
    except InputError as exc:
        return f"  not a valid Data Exchange or Xradia file: {exc}"
    n, ny, nx = ff.data.shape
    angles = (f"angles {ff.angles_deg.min():.2f}° to {ff.angles_deg.max():.2f}°" if ff.angles_deg is not None
              else "no /exchange/theta")
    flats = f"{len(ff.flats)} flats" if ff.flats is not None else "no flats"
    darks = f"{len(ff.darks)} darks" if ff.darks is not None else "no darks"
    energy = f"{ff.energy_ev:.2f} eV" if np.isfinite(ff.energy_ev) else "energy unknown (manifest energy_eV)"
    pixel = f"pixel {ff.pixel_m * 1e9:.3f} nm" if np.isfinite(ff.pixel_m) else "pixel unknown (manifest pixel_m)"
    kind = "intensity" if ff.flats is not None else "od (or intensity with a flat column)"
    return (f"  full-field: {n} images of {ny}×{nx} px, {angles}, {flats}, {darks}, {energy}, {pixel} "
            f"(pipeline input kind '{kind}')")


def describe(path: str | os.PathLike) -> str:
    """Describe a CXI/HDF5 file or a chemtomo run store (a ``.zarr`` directory)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: not found")
    if p.is_dir():
        from .store import describe_store

        return describe_store(p)
    if p.suffix.lower() in (".txrm", ".xrm"):
        from .xradia import read_xradia

        read_xradia(p)  # a damaged file is an input error (exit 1), not a description
        return f"{p}  (Xradia OLE2)\n" + _describe_exchange(p)
    return _describe_h5(p)
