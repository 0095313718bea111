"""Full-field transmission data: Data Exchange HDF5 files and TIFF stacks (DESIGN.md, "Input").

Full-field transmission X-ray microscopy (TXM) records intensity images of the whole field at
every angle, with flat fields (beam, no sample) and dark fields (no beam). Two layouts are read:

**Data Exchange** (APS/TomoPy convention; De Carlo et al., J. Synchrotron Rad. 21, 1224 (2014)),
one file per energy holding every angle, or one file per projection:

- ``/exchange/data``        ``(n_angles, ny, nx)`` (or ``(ny, nx)``) intensity, uint16 or float
- ``/exchange/data_white``  ``(n_flat, ny, nx)`` flat fields (optional)
- ``/exchange/data_dark``   ``(n_dark, ny, nx)`` dark fields (optional)
- ``/exchange/theta``       ``(n_angles,)`` tilt angles; attribute ``units`` = deg/degree/degrees or
                              rad/radian/radians (bytes or str). Without it, the caller's
                              ``theta_unit`` decides; without that, values beyond 2π in magnitude
                              are degrees and anything else is an error.
- ``/measurement/instrument/monochromator/energy`` photon energy, attribute ``units`` eV or keV
- ``/measurement/instrument/detection_system/objective/resolution`` or
  ``/measurement/instrument/detector/actual_pixel_size_x``: the effective pixel in the sample
  plane, attribute ``units`` m, mm, um, µm or nm

**TIFF**: a multi-page TIFF (one page per angle) or a single-page TIFF per projection, read with
``tifffile``; flats and darks as TIFF files of their own (every page averaged).

The readers return the raw arrays with their metadata; forming optical density from them is
:func:`chemtomo.chem.flat_field_od`.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ._fullfield_data import FullField
from ._h5 import first_present, open_h5

__all__ = ["FullField", "read_data_exchange", "read_full_field", "read_tiff", "read_field_file", "read_angles_file", "file_format",
           "DX_DATA", "DX_WHITE", "DX_DARK", "DX_THETA", "DX_ENERGY", "DX_PIXEL_PATHS", "TIFF_SUFFIXES"]

log = logging.getLogger(__name__)

DX_DATA = "exchange/data"
DX_WHITE = "exchange/data_white"
DX_DARK = "exchange/data_dark"
DX_THETA = "exchange/theta"
DX_ENERGY = "measurement/instrument/monochromator/energy"
DX_PIXEL_PATHS = ("measurement/instrument/detection_system/objective/resolution",
                  "measurement/instrument/detector/actual_pixel_size_x")
TIFF_SUFFIXES = (".tif", ".tiff")

_ANGLE_UNITS = {"deg": "deg", "degree": "deg", "degrees": "deg", "rad": "rad", "radian": "rad", "radians": "rad"}
_ENERGY_UNITS = {"ev": 1.0, "kev": 1.0e3}
_LENGTH_UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "micron": 1e-6, "microns": 1e-6,
                 "nm": 1e-9}


def _units(ds) -> str | None:
    """The ``units`` attribute of a dataset as text (bytes decoded), or None."""
    for key in ("units", "unit"):
        if key in ds.attrs:
            u = ds.attrs[key]
            if isinstance(u, np.ndarray):
                u = u.ravel()[0] if u.size else ""
            if isinstance(u, bytes):
                u = u.decode("utf-8", "replace")
            return str(u).strip()
    return None


def _stack(ds, src: Path, path: str, what: str) -> np.ndarray:
    """A dataset as a (n, ny, nx) float32 stack: 2D images get a leading axis of 1."""
    if ds.ndim not in (2, 3) or 0 in ds.shape:
        raise InputError(f"{src}: /{path} has shape {ds.shape}; expected {what} as (n, ny, nx) or (ny, nx)")
    try:
        a = np.asarray(ds[()], dtype=np.float32)
    except (OSError, TypeError, ValueError) as exc:
        raise InputError(f"{src}: /{path} cannot be read as numbers (truncated file?): {exc}") from exc
    return a[None] if a.ndim == 2 else a


def _scalar_value(ds, src: Path, path: str) -> float:
    v = np.asarray(ds[()], dtype=np.float64).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise InputError(f"{src}: /{path} must hold a finite number, found {v[:4].tolist()}")
    return float(v[0])


def _theta_deg(ds, src: Path, theta_unit: str) -> np.ndarray:
    theta = np.asarray(ds[()], dtype=np.float64).ravel()
    if not np.all(np.isfinite(theta)):
        raise InputError(f"{src}: /{DX_THETA} has non-finite angles")
    unit = _units(ds)
    if unit is not None:
        canonical = _ANGLE_UNITS.get(unit.lower())
        if canonical is None:
            raise InputError(f"{src}: /{DX_THETA} has units {unit!r}; expected one of "
                             f"{', '.join(_ANGLE_UNITS)} (degrees or radians)")
    elif theta_unit:
        canonical = _ANGLE_UNITS.get(theta_unit.lower())
        if canonical is None:
            raise InputError(f"input.theta_unit = {theta_unit!r}; expected 'deg' or 'rad'")
    elif theta.size and np.max(np.abs(theta)) > 2 * math.pi:
        canonical = "deg"
        log.info("%s: /%s has no units attribute; its values reach %.4g, beyond 2π, so they are read as degrees",
                 src, DX_THETA, float(np.max(np.abs(theta))))
    else:
        raise InputError(f"{src}: /{DX_THETA} has no units attribute and its values "
                         f"({theta.min():.4g} to {theta.max():.4g}) could be degrees or radians; set "
                         "[input] theta_unit = \"deg\" or \"rad\"")
    return np.degrees(theta) if canonical == "rad" else theta


def _energy_ev(f, src: Path) -> float:
    if DX_ENERGY not in f:
        return float("nan")
    ds = f[DX_ENERGY]
    unit = _units(ds)
    if unit is None:
        log.info("%s: /%s has no units attribute; the energy is taken from the manifest", src, DX_ENERGY)
        return float("nan")
    scale = _ENERGY_UNITS.get(unit.lower())
    if scale is None:
        raise InputError(f"{src}: /{DX_ENERGY} has units {unit!r}; expected eV or keV")
    return _scalar_value(ds, src, DX_ENERGY) * scale


def _pixel_m(f, src: Path) -> float:
    path, ds = first_present(f, DX_PIXEL_PATHS)
    if ds is None:
        return float("nan")
    unit = _units(ds)
    if unit is None:
        log.info("%s: /%s has no units attribute; give the pixel size as pixel_m in the manifest", src, path)
        return float("nan")
    scale = _LENGTH_UNITS.get(unit) or _LENGTH_UNITS.get(unit.lower())
    if scale is None:
        raise InputError(f"{src}: /{path} has units {unit!r}; expected one of {', '.join(_LENGTH_UNITS)}")
    value = _scalar_value(ds, src, path) * scale
    if not value > 0:
        raise InputError(f"{src}: /{path} is {value:g} m; expected a positive pixel size")
    return value


def read_data_exchange(path: str | os.PathLike, *, theta_unit: str = "") -> FullField:
    """Read a Data Exchange HDF5 file (module docstring for the layout).

    Parameters
    ----------
    path : the HDF5 file
    theta_unit : "deg" or "rad": the unit of ``/exchange/theta`` when it has no ``units``
        attribute ("" : values beyond 2π in magnitude are degrees, others an error)

    Returns
    -------
    FullField; flats, darks, angles, energy and pixel are None/NaN where the file has none.

    Raises
    ------
    InputError naming the file and the dataset: no ``/exchange/data``, wrong rank, flats or darks
    of another image shape, theta of another length or in an unknown unit, unknown energy or
    length units.
    """
    src = Path(path)
    with open_h5(src) as f:
        if DX_DATA not in f:
            raise InputError(f"{src}: missing dataset /{DX_DATA}; expected a Data Exchange file "
                             "(/exchange/data, /exchange/data_white, /exchange/data_dark, /exchange/theta)")
        data = _stack(f[DX_DATA], src, DX_DATA, "projections")
        fields = {}
        for key, name in ((DX_WHITE, "flat fields"), (DX_DARK, "dark fields")):
            if key not in f:
                fields[key] = None
                continue
            a = _stack(f[key], src, key, name)
            if a.shape[1:] != data.shape[1:]:
                raise InputError(f"{src}: /{key} ({name}) has images of shape {a.shape[1:]} but /{DX_DATA} has "
                                 f"{data.shape[1:]}; expected {name} of the projections' shape")
            fields[key] = a
        angles = _theta_deg(f[DX_THETA], src, theta_unit) if DX_THETA in f else None
        if angles is not None and angles.size != data.shape[0]:
            raise InputError(f"{src}: /{DX_THETA} has {angles.size} angles but /{DX_DATA} has {data.shape[0]} "
                             "projections; expected one angle per projection")
        energy = _energy_ev(f, src)
        pixel = _pixel_m(f, src)
    return FullField(data=data, flats=fields[DX_WHITE], darks=fields[DX_DARK], angles_deg=angles,
                     energy_ev=energy, pixel_m=pixel, source=str(src))


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """Every page of a TIFF file as a (n_pages, ny, nx) float32 stack."""
    import tifffile

    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: file not found")
    try:
        with tifffile.TiffFile(src) as tif:
            axes = tif.series[0].axes
            a = np.asarray(tif.asarray(), dtype=np.float32)
    except (OSError, ValueError, IndexError, tifffile.TiffFileError) as exc:
        raise InputError(f"{src}: cannot be read as TIFF: {exc}") from exc
    if axes.endswith("S"):
        raise InputError(f"{src}: TIFF pages are colour (RGB) images of shape {a.shape}; expected grey-scale pages")
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or 0 in a.shape:
        raise InputError(f"{src}: TIFF holds an array of shape {a.shape}; expected grey-scale pages (n, ny, nx)")
    return a


def read_full_field(path: str | os.PathLike, *, theta_unit: str = "") -> FullField:
    """A Data Exchange HDF5 or an Xradia .txrm/.xrm file, by its suffix."""
    if Path(path).suffix.lower() in (".txrm", ".xrm"):
        from .xradia import read_xradia

        return read_xradia(path)
    return read_data_exchange(path, theta_unit=theta_unit)


def read_field_file(path: str | os.PathLike, which: str) -> np.ndarray:
    """Flat (``which="flat"``) or dark (``"dark"``) fields from a TIFF or a Data Exchange file, (n, ny, nx)."""
    src = Path(path)
    if src.suffix.lower() in TIFF_SUFFIXES:
        return read_tiff(src)
    key = DX_WHITE if which == "flat" else DX_DARK
    with open_h5(src) as f:
        if key not in f:
            raise InputError(f"{src}: missing dataset /{key} ({which} fields); a {which} file is a TIFF or a Data "
                             f"Exchange file with /{key}")
        return _stack(f[key], src, key, f"{which} fields")


def read_angles_file(path: str | os.PathLike) -> np.ndarray:
    """Tilt angles in degrees from a text file: one number per line, or a CSV with a column angle_deg.

    Blank lines and lines starting with ``#`` are skipped.
    """
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: angles file not found")
    lines = [ln.strip() for ln in src.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    column = 0
    if lines and not _is_number(lines[0].split(",")[0]):
        header = [c.strip() for c in lines[0].split(",")]
        if "angle_deg" not in header:
            raise InputError(f"{src}: header {lines[0]!r} has no column angle_deg; expected one angle in degrees "
                             "per line, or a CSV with a column angle_deg")
        column = header.index("angle_deg")
        lines = lines[1:]
    values = []
    for i, ln in enumerate(lines, start=1):
        cells = ln.split(",")
        text = cells[column].strip() if column < len(cells) else ""
        if not _is_number(text) or not math.isfinite(float(text)):
            raise InputError(f"{src}: entry {i} ({ln!r}) is not a finite angle in degrees")
        values.append(float(text))
    if not values:
        raise InputError(f"{src}: no angles")
    return np.asarray(values, np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def file_format(path: str | os.PathLike) -> str:
    """What an input file is: "scan" (CXI frames), "image" (CXI reconstructed image),
    "dx" (Data Exchange), "tiff", "xrm" (Xradia .txrm/.xrm); an InputError for anything else."""
    from .cxi import FRAMES_PATHS

    src = Path(path)
    if src.suffix.lower() in (".txrm", ".xrm"):
        if not src.is_file():
            raise InputError(f"{src}: file not found")
        return "xrm"
    if src.suffix.lower() in TIFF_SUFFIXES:
        if not src.is_file():
            raise InputError(f"{src}: file not found")
        return "tiff"
    with open_h5(src) as f:
        if "entry_1/image_1/data" in f:
            return "image"
        if first_present(f, FRAMES_PATHS)[1] is not None:
            return "scan"
        if DX_DATA in f:
            return "dx"
    raise InputError(f"{src}: neither a CXI scan (/entry_1/data_1/data), a CXI reconstructed image "
                     f"(/entry_1/image_1/data) nor a Data Exchange file (/{DX_DATA})")
