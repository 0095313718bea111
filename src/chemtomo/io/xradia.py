"""Xradia (Zeiss) ``.txrm`` / ``.xrm`` files: TXM tilt series and reference (flat) frames.

An Xradia file is an OLE2 compound file (Microsoft's "structured storage": a small file system
of storages and streams in one file), read here with ``olefile``. The streams used (all
little-endian; the layout dxchange's reader and the Zeiss documentation agree on):

- ``ImageInfo/ImageWidth``, ``ImageInfo/ImageHeight``  uint32, pixels
- ``ImageInfo/DataType``    uint32: 5 = uint16, 10 = float32
- ``ImageInfo/NoOfImages``  uint32 (``ImageInfo/ImagesTaken`` where absent)
- ``ImageInfo/Angles``      float32 per image, degrees
- ``ImageInfo/Energy``      float32 per image, eV (one energy per file; the images must agree)
- ``ImageInfo/PixelSize``   float32, µm in the sample plane
- ``ImageData{1 + i // 100}/Image{i + 1}``  image i, row-major ``(height, width)``
- ``ReferenceData/Image``   the reference (flat) frame, with ``ReferenceData/DataType``
  (default: the images' type)

The reader returns the same :class:`~chemtomo.io.fullfield.FullField` as the Data Exchange
reader, so a ``.txrm`` enters the manifest like a Data Exchange file (one file per energy).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ._fullfield_data import FullField

__all__ = ["read_xradia", "XRADIA_SUFFIXES"]

XRADIA_SUFFIXES = (".txrm", ".xrm")
_DTYPES = {5: np.dtype("<u2"), 10: np.dtype("<f4")}


def _stream(ole, name: str, src: Path, required: bool = True) -> bytes | None:
    if not ole.exists(name):
        if required:
            raise InputError(f"{src}: missing stream {name}; expected an Xradia file with ImageInfo/ImageWidth, "
                             "ImageHeight, DataType, Angles and ImageData1/Image1")
        return None
    return ole.openstream(name).read()


def _numbers(ole, name: str, dtype: str, src: Path, required: bool = True) -> np.ndarray | None:
    raw = _stream(ole, name, src, required)
    if raw is None:
        return None
    size = np.dtype(dtype).itemsize
    if len(raw) < size:
        raise InputError(f"{src}: stream {name} holds {len(raw)} bytes; expected at least one {dtype} value")
    return np.frombuffer(raw[: len(raw) // size * size], dtype=dtype)


def _image(ole, name: str, shape: tuple[int, int], dtype: np.dtype, src: Path) -> np.ndarray:
    raw = _stream(ole, name, src)
    need = shape[0] * shape[1] * dtype.itemsize
    if len(raw) != need:
        raise InputError(f"{src}: stream {name} holds {len(raw)} bytes; expected {need} "
                         f"({shape[0]}×{shape[1]} {dtype.name} pixels from ImageInfo/ImageHeight, ImageWidth, DataType)")
    return np.frombuffer(raw, dtype).reshape(shape).astype(np.float32)


def _dtype(code: int, name: str, src: Path) -> np.dtype:
    if code not in _DTYPES:
        raise InputError(f"{src}: {name} = {code}; expected 5 (uint16) or 10 (float32)")
    return _DTYPES[code]


def read_xradia(path: str | os.PathLike) -> FullField:
    """Read an Xradia ``.txrm`` (tilt series) or ``.xrm`` (single image) file.

    Returns
    -------
    FullField: data (n, ny, nx) float32; flats (1, ny, nx) from ``ReferenceData/Image`` or None;
    darks None; angles_deg (n,); energy_ev (NaN when absent or zero); pixel_m (µm → m; NaN when
    absent or zero).

    Raises
    ------
    InputError naming the file and the stream: not an OLE2 file, a missing or short stream, an
    unknown data type, fewer angles than images, images at different energies, a reference
    frame of another size.
    """
    import olefile

    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: file not found")
    if not olefile.isOleFile(str(src)):
        raise InputError(f"{src}: not an OLE2 compound file; expected an Xradia .txrm/.xrm file")
    try:
        ole = olefile.OleFileIO(str(src))
    except (OSError, ValueError, IndexError, struct.error) as exc:
        raise InputError(f"{src}: damaged OLE2 container: {exc}") from exc
    with ole:
        try:
            return _read(ole, src)
        except InputError:
            raise
        except (OSError, ValueError, IndexError, struct.error) as exc:
            raise InputError(f"{src}: damaged OLE2 container: {exc}") from exc


def _read(ole, src: Path) -> FullField:
    width = int(_numbers(ole, "ImageInfo/ImageWidth", "<u4", src)[0])
    height = int(_numbers(ole, "ImageInfo/ImageHeight", "<u4", src)[0])
    if not (0 < width <= 65536 and 0 < height <= 65536):
        raise InputError(f"{src}: image size {height}×{width} from ImageInfo/ImageHeight, ImageWidth; expected "
                         "1 to 65536 pixels each")
    dtype = _dtype(int(_numbers(ole, "ImageInfo/DataType", "<u4", src)[0]), "ImageInfo/DataType", src)
    count = _numbers(ole, "ImageInfo/NoOfImages", "<u4", src, required=False)
    if count is None:
        count = _numbers(ole, "ImageInfo/ImagesTaken", "<u4", src)
    n = int(count[0])
    if n < 1:
        raise InputError(f"{src}: ImageInfo/NoOfImages is {n}; expected at least one image")
    angles = _numbers(ole, "ImageInfo/Angles", "<f4", src).astype(np.float64)
    if angles.size < n or not np.all(np.isfinite(angles[:n])):
        raise InputError(f"{src}: ImageInfo/Angles holds {angles.size} values for {n} images; expected one finite "
                         "angle in degrees per image")
    angles = angles[:n]
    data = np.stack([_image(ole, f"ImageData{1 + i // 100}/Image{i + 1}", (height, width), dtype, src)
                     for i in range(n)])
    energy = float("nan")
    e = _numbers(ole, "ImageInfo/Energy", "<f4", src, required=False)
    if e is not None and np.any(e[:n] > 0):
        e = e[:n].astype(np.float64)
        if not np.all(np.isfinite(e)) or np.ptp(e) > 1e-3 * np.max(e):
            raise InputError(f"{src}: ImageInfo/Energy varies from {np.nanmin(e):g} to {np.nanmax(e):g} eV over the "
                             "images; expected one energy per file (a spectral series: one file per energy)")
        energy = float(np.median(e))
    pixel = float("nan")
    p = _numbers(ole, "ImageInfo/PixelSize", "<f4", src, required=False)
    if p is not None and np.isfinite(p[0]) and p[0] > 0:
        pixel = float(p[0]) * 1e-6
    flats = None
    if ole.exists("ReferenceData/Image"):
        code = _numbers(ole, "ReferenceData/DataType", "<u4", src, required=False)
        rdtype = _dtype(int(code[0]), "ReferenceData/DataType", src) if code is not None else dtype
        flats = _image(ole, "ReferenceData/Image", (height, width), rdtype, src)[None]
    return FullField(data=data, flats=flats, darks=None, angles_deg=angles, energy_ev=energy, pixel_m=pixel,
                     source=str(src))
