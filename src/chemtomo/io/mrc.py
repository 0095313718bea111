"""MRC / CCP4 image stacks (the electron-microscopy tilt-series format of IMOD, SerialEM, FEI).

Layout (MRC2014, https://www.ccpem.ac.uk/mrc_format/mrc2014.php): a 1024-byte header of 56
four-byte words and ten 80-character labels, then ``nsymbt`` bytes of extended header (FEI and
SerialEM put per-image metadata there), then the array, fastest axis x, in the data type named by
``mode``. The reader needs only numpy: the array is memory-read in one call.

Only what a tilt series needs is interpreted: the shape, the data type, the pixel size (cell
size over grid size, Å) and the labels; the extended header is returned as raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import InputError

__all__ = ["MRCStack", "read_mrc", "write_mrc"]

HEADER_BYTES = 1024

#: MRC ``mode`` → numpy data type (little-endian; swapped for big-endian files)
MODES = {0: "i1", 1: "i2", 2: "f4", 3: "c4", 4: "c8", 6: "u2", 12: "f2"}


@dataclass(frozen=True)
class MRCStack:
    """An MRC file's array and the header fields a tilt series uses.

    data      : (nz, ny, nx) array in the file's data type (for a tilt series nz = n_angles)
    pixel_A   : (3,) float64, (x, y, z) voxel size in Ångström from cell / grid size; NaN where
                the header leaves the cell size zero
    mode      : the MRC mode number (0 int8, 1 int16, 2 float32, 6 uint16, 12 float16, ...)
    labels    : the header's non-empty text labels
    extended  : the extended header, raw bytes (``nsymbt`` of them; FEI/SerialEM metadata)
    path      : the file read
    """

    data: np.ndarray
    pixel_A: np.ndarray
    mode: int
    labels: list = field(default_factory=list)
    extended: bytes = b""
    path: Path | None = None


def _words(header: bytes, endian: str):
    ints = np.frombuffer(header[:224], dtype=endian + "i4")
    floats = np.frombuffer(header[:224], dtype=endian + "f4")
    return ints, floats


def read_mrc(path) -> MRCStack:
    """Read an MRC/CCP4 stack (``.mrc``, ``.st``, ``.ali``, ``.rec``, ``.map``).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    MRCStack with ``data`` of shape (nz, ny, nx).

    Raises
    ------
    InputError
        Missing file, a file shorter than its 1024-byte header, non-positive or implausible
        dimensions (header word ``nx``/``ny``/``nz``), an unsupported ``mode``, a negative
        extended-header size (``nsymbt``), or a file too short for the array its header announces.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such MRC file")
    raw = p.read_bytes()
    if len(raw) < HEADER_BYTES:
        raise InputError(f"{p}: {len(raw)} bytes, shorter than the 1024-byte MRC header")
    header = raw[:HEADER_BYTES]
    # byte order: the machine stamp (word 54) when set, else whichever order gives sane sizes
    stamp = header[212:214]
    if stamp in (b"\x44\x44", b"\x44\x41"):
        endian = "<"
    elif stamp == b"\x11\x11":
        endian = ">"
    else:
        little = np.frombuffer(header[:16], "<i4")
        endian = "<" if (0 < little[:3]).all() and (little[:3] < 1 << 20).all() and 0 <= little[3] < 1 << 16 else ">"
    ints, floats = _words(header, endian)
    nx, ny, nz, mode = (int(v) for v in ints[:4])
    for name, v in (("nx", nx), ("ny", ny), ("nz", nz)):
        if not 0 < v < 1 << 20:
            raise InputError(f"{p}: MRC header field {name} = {v}; expected a positive image size")
    if mode not in MODES:
        raise InputError(f"{p}: MRC header field mode = {mode}; supported modes are "
                         f"{sorted(MODES)} (0 int8, 1 int16, 2 float32, 6 uint16, 12 float16, 3/4 complex)")
    nsymbt = int(ints[23])
    if nsymbt < 0:
        raise InputError(f"{p}: MRC header field nsymbt (extended header size) = {nsymbt}; "
                         "expected ≥ 0")
    dtype = np.dtype(endian + MODES[mode])
    start = HEADER_BYTES + nsymbt
    need = start + nx * ny * nz * dtype.itemsize
    if len(raw) < need:
        raise InputError(f"{p}: {len(raw)} bytes, but the header announces {nz} images of "
                         f"{ny}×{nx} mode {mode} after a {nsymbt}-byte extended header "
                         f"({need} bytes); the file is truncated or its header is wrong")
    data = np.frombuffer(raw, dtype=dtype, count=nx * ny * nz, offset=start).reshape(nz, ny, nx)
    grid = ints[7:10].astype(np.float64)
    cell = floats[10:13].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel = np.where((grid > 0) & (cell > 0), cell / np.where(grid > 0, grid, 1), np.nan)
    nlabl = int(np.clip(ints[55], 0, 10))
    labels = [header[224 + 80 * k:304 + 80 * k].decode("latin-1").strip(" \x00")
              for k in range(nlabl)]
    return MRCStack(data=data.astype(dtype.newbyteorder("="), copy=True), pixel_A=pixel, mode=mode,
                    labels=[s for s in labels if s], extended=raw[HEADER_BYTES:start], path=p)


def write_mrc(path, data, *, pixel_A: float = 1.0, labels=()) -> Path:
    """Write a (nz, ny, nx) stack as a little-endian MRC2014 file (no extended header).

    ``data`` keeps its type if MRC has a mode for it (int8, int16, uint16, float16, float32);
    other types are written as float32. ``pixel_A`` sets the cell size (isotropic voxels, Å).
    """
    a = np.asarray(data)
    if a.ndim != 3:
        raise InputError(f"write_mrc: data must be (nz, ny, nx), got shape {a.shape}")
    inverse = {np.dtype(v).newbyteorder("<"): k for k, v in MODES.items() if k not in (3, 4)}
    dt = np.dtype(a.dtype).newbyteorder("<")
    if dt not in inverse:
        dt = np.dtype("<f4")
    a = a.astype(dt)
    nz, ny, nx = a.shape
    ints = np.zeros(56, "<i4")
    floats = ints.view("<f4")
    ints[:4] = nx, ny, nz, inverse[dt]
    ints[7:10] = nx, ny, nz
    floats[10:13] = nx * pixel_A, ny * pixel_A, nz * pixel_A
    floats[13:16] = 90.0
    ints[16:19] = 1, 2, 3
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if finite.size:
        floats[19:22] = finite.min(), finite.max(), finite.mean()
    header = bytearray(ints.tobytes())
    header[208:212] = b"MAP "
    header[212:216] = b"\x44\x44\x00\x00"
    labels = [str(s)[:80] for s in labels][:10]
    header[220:224] = np.int32(len(labels)).tobytes()
    header += b"".join(s.encode("latin-1").ljust(80, b" ") for s in labels)
    header = bytes(header).ljust(HEADER_BYTES, b"\x00")
    p = Path(path)
    p.write_bytes(header + a.tobytes())
    return p
