"""A detector mask file named in the config (``[ptycho] mask``): which pixels to leave out.

Formats: TIFF (one page), NumPy ``.npy``, and HDF5 (``.h5``/``.hdf5``/``.nxs``/``.cxi``) at the
NeXus ``pixel_mask`` or the CXI ``detector_1/mask`` path, or the file's only 2D dataset. Values
follow the CXI and NeXus convention: **0 = good pixel**, any other value (a NeXus pixel_mask bit:
dead, hot, gap, beamstop, ...) = masked. The array is in the detector orientation of the frames
as stored in the files (the reader turns both to the lab orientation together).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import InputError

__all__ = ["read_detector_mask", "MASK_PATHS"]

#: HDF5 paths tried in order for the mask
MASK_PATHS = ("entry/instrument/detector/pixel_mask", "entry_1/instrument_1/detector_1/mask",
              "entry/instrument/detector/mask", "mask", "pixel_mask")


def read_detector_mask(path: str | os.PathLike, frame_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a detector mask file; return the validity mask ``(ny, nx)`` bool, True = good pixel.

    Raises InputError naming the file when it is missing, unreadable, not 2D, of another shape
    than ``frame_shape`` (when given), or masks every pixel.
    """
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: detector mask file not found ([ptycho] mask)")
    suffix = src.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            m = tifffile.imread(src)
        elif suffix == ".npy":
            m = np.load(src, allow_pickle=False)
        elif suffix in (".h5", ".hdf5", ".nxs", ".cxi", ".hdf"):
            import h5py

            with h5py.File(src, "r") as f:
                found = next((p for p in MASK_PATHS if p in f and isinstance(f[p], h5py.Dataset)), None)
                if found is None:
                    two_d = []
                    f.visititems(lambda name, obj: two_d.append(name)
                                 if isinstance(obj, h5py.Dataset) and obj.ndim == 2 else None)
                    if len(two_d) != 1:
                        raise InputError(f"{src}: no detector mask found; expected a 2D dataset at "
                                         + " or ".join("/" + p for p in MASK_PATHS)
                                         + f" (or exactly one 2D dataset; found {len(two_d)})")
                    found = two_d[0]
                m = np.asarray(f[found][()])
        else:
            raise InputError(f"{src}: unknown detector mask format {suffix!r}; expected .tif, .npy or an HDF5 "
                             "file (.h5, .nxs, .cxi)")
    except InputError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{src}: unreadable detector mask: {exc}") from exc
    m = np.squeeze(np.asarray(m))
    if m.ndim != 2 or not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
        raise InputError(f"{src}: the detector mask has shape {m.shape} ({m.dtype}); expected a 2D numeric array "
                         "(0 = good pixel)")
    if frame_shape is not None and m.shape != tuple(frame_shape):
        raise InputError(f"{src}: the detector mask has shape {m.shape}; expected the frame shape {tuple(frame_shape)}")
    valid = m == 0
    if not valid.any():
        raise InputError(f"{src}: the detector mask flags every pixel (0 = good pixel, as in CXI and NeXus)")
    return valid
