"""Detector geometry of a CXI scan: ``basis_vectors``, ``corner_position``, pixel sizes, distance.

CXI 1.6 (cxidb.org, "Geometry") describes a pixel detector in the lab frame (z along the beam,
downstream; y up; x horizontal, completing a right-handed frame):

- ``detector_1/basis_vectors``: one row per data dimension, each the 3-vector (metres) from the
  centre of pixel 0 to the centre of pixel 1 along that dimension. For frames ``(n, ny, nx)``
  the file may hold ``(2, 3)`` (rows, columns), ``(3, 3)`` (frame axis first; its last two rows
  are used) or the transposed ``(3, 2)`` that cdtools writes. Default when absent:
  ``[[0, -y_pixel_size, 0], [-x_pixel_size, 0, 0]]``: row index runs along −y (down), column
  index along −x (to the right, looking downstream).
- ``detector_1/corner_position``: the lab position (x, y, z) of the outer corner of pixel (0, 0).
  Its distance from the sample along the detector normal is the sample–detector distance; its
  in-plane part says where the direct beam (zero spatial frequency) falls on the detector.
- ``sample_1/geometry_1/translation``: the translation t of the sample.

chemtomo's far-field model treats frame pixel (i, j) as spatial frequency (k_row, k_col) of the
exit wave on the object array, so the object array's row axis points along the detector's row
basis vector and its column axis along the column basis vector. A sample translated by t puts
the probe at −t on the sample, so a probe position on the array is (−t·û_row, −t·û_col). For
the default basis (û_row = −y, û_col = −x) that is simply (t_y, t_x), chemtomo's convention.

Any other axis-aligned basis (detector transposed or mirrored in the file) is brought to the
default by transposing/mirroring the frames, the mask and the probe guess: mirroring a frame
about its zero-frequency pixel (k → −k) mirrors the exit wave, so the object comes out in the
same lab orientation whatever the writer's detector convention; the positions then map as
(t_y, t_x). A detector rotated off the x/y axes (by more than ``AXIS_TOLERANCE``) or tilted
out of the plane normal to the beam cannot be represented by a frame transpose/mirror and is
refused with the angle found.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import InputError
from ._h5 import read_scalar

__all__ = ["AXIS_TOLERANCE", "DEFAULT_BASIS_NOTE", "DetectorGeometry", "read_detector_geometry",
           "to_lab_orientation"]

DETECTOR = "entry_1/instrument_1/detector_1"
#: Largest in-plane off-axis component (relative to the vector length) of a basis vector that is
#: still read as along x or y: 0.01 ≈ 0.6°, a misalignment under 0.01 px across a 1000-px frame.
AXIS_TOLERANCE = 0.01
#: Largest relative disagreement between two values of the same quantity in one file (pixel size
#: from basis_vectors vs x/y_pixel_size; distance vs corner_position) accepted silently.
AGREEMENT = 0.01
DEFAULT_BASIS_NOTE = "rows along −y, columns along −x (CXI default)"


@dataclass(frozen=True)
class DetectorGeometry:
    """Detector geometry of a scan, in chemtomo's frame orientation (rows −y, columns −x).

    distance_m       : sample–detector distance, metres
    pixel_yx_m       : detector pixel pitch along the (transformed) rows and columns, metres
    transpose        : the file's frames are transposed relative to the default orientation
    flip_rows        : after transposing, mirror the rows (k_row → −k_row)
    flip_cols        : after transposing, mirror the columns
    beam_centre_px   : (row, col) of the direct beam in the transformed frame from
                       ``corner_position``, or None when the file has none
    source           : "basis_vectors" or "pixel sizes" (what the orientation came from)
    """

    distance_m: float
    pixel_yx_m: tuple[float, float]
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    beam_centre_px: tuple[float, float] | None = None
    source: str = "pixel sizes"

    @property
    def is_default(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def describe(self) -> str:
        """One line: where the orientation came from and what is done to the frames."""
        steps = [s for s, on in (("transposed", self.transpose), ("rows mirrored", self.flip_rows),
                                 ("columns mirrored", self.flip_cols)) if on]
        done = ", ".join(steps) if steps else "used as stored"
        return f"detector orientation from {self.source}: frames {done} → {DEFAULT_BASIS_NOTE}"


def _number(f: h5py.File, path: str, name: str, src: Path) -> float | None:
    if path not in f:
        return None
    value = read_scalar(f, path, name, src)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{src}: /{path} ({name}) must be a positive finite number of metres, found {value!r}")
    return value


def _basis(f: h5py.File, src: Path) -> np.ndarray | None:
    """The (2, 3) row/column basis vectors of the frames, or None when the file has none."""
    path = f"{DETECTOR}/basis_vectors"
    if path not in f:
        return None
    try:
        b = np.asarray(f[path][()], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{src}: /{path} is not numeric: {exc}") from exc
    if b.shape == (3, 2):  # cdtools stores the vectors as columns
        b = b.T
    elif b.shape == (3, 3):  # one row per data dimension: frame axis, rows, columns
        b = b[1:]
    if b.shape != (2, 3):
        raise InputError(f"{src}: /{path} has shape {b.shape}; expected (2, 3) (row and column pixel "
                         "vectors x, y, z in metres), (3, 3) or (3, 2)")
    if not np.isfinite(b).all():
        raise InputError(f"{src}: /{path} has non-finite values {b.tolist()}")
    return b


def _axis(v: np.ndarray, which: str, src: Path) -> int:
    """Lab axis (0 = x, 1 = y) of an in-plane, axis-aligned basis vector."""
    path = f"/{DETECTOR}/basis_vectors"
    length = float(np.linalg.norm(v))
    if length <= 0:
        raise InputError(f"{src}: {path}: the {which} vector is zero; expected the pixel pitch in metres")
    if abs(v[2]) > AXIS_TOLERANCE * length:
        tilt = math.degrees(math.asin(min(1.0, abs(v[2]) / length)))
        raise InputError(f"{src}: {path}: the {which} vector {v.tolist()} leaves the x–y plane by {tilt:.2f}°; "
                         "chemtomo supports detectors normal to the beam (transmission geometry) only")
    axis = int(np.argmax(np.abs(v[:2])))
    off = abs(v[1 - axis]) / length
    if off > AXIS_TOLERANCE:
        angle = math.degrees(math.atan2(abs(v[1 - axis]), abs(v[axis])))
        raise InputError(f"{src}: {path}: the {which} vector {v.tolist()} is rotated {angle:.2f}° from the "
                         f"{'xy'[axis]} axis (at most {math.degrees(math.atan(AXIS_TOLERANCE)):.2f}° is read as "
                         "aligned); rotate the frames so their axes lie along x and y")
    return axis


def read_detector_geometry(f: h5py.File, src: Path, frame_shape: tuple[int, int]) -> DetectorGeometry:
    """Distance, pixel pitch and frame orientation of the scan's detector (see the module notes).

    Raises InputError for a missing distance (with no corner_position to derive it), a
    non-positive pixel size, a basis that is tilted, rotated or degenerate, or pixel sizes that
    disagree with the basis vectors.
    """
    b = _basis(f, src)
    px_file = _number(f, f"{DETECTOR}/x_pixel_size", "detector pixel size", src)
    py_file = _number(f, f"{DETECTOR}/y_pixel_size", "detector pixel size", src)
    if b is None:
        if px_file is None and py_file is None:
            raise InputError(f"{src}: missing dataset /{DETECTOR}/x_pixel_size and /{DETECTOR}/basis_vectors "
                             "(detector pixel size)")
        py, px = py_file or px_file, px_file or py_file
        b = np.array([[0.0, -py, 0.0], [-px, 0.0, 0.0]])
        source = "pixel sizes"
    else:
        source = "basis_vectors"
        for name, given, length in (("y_pixel_size", py_file, np.linalg.norm(b[0])),
                                    ("x_pixel_size", px_file, np.linalg.norm(b[1]))):
            if given is not None and abs(given - length) > AGREEMENT * length:
                raise InputError(f"{src}: /{DETECTOR}/{name} = {given:g} m disagrees with the length of its "
                                 f"basis_vectors row, {length:g} m; expected the same pixel pitch")
    ax0, ax1 = _axis(b[0], "row", src), _axis(b[1], "column", src)
    if ax0 == ax1:
        raise InputError(f"{src}: /{DETECTOR}/basis_vectors: rows {b[0].tolist()} and columns {b[1].tolist()} "
                         f"both run along {'xy'[ax0]}; expected one along x and one along y")
    transpose = ax0 == 0  # the file's rows run along x
    row, col = (b[1], b[0]) if transpose else (b[0], b[1])
    flip_rows = row[1] > 0  # default rows run along −y
    flip_cols = col[0] > 0  # default columns run along −x
    pixel_yx = (float(np.linalg.norm(row)), float(np.linalg.norm(col)))

    distance = _number(f, f"{DETECTOR}/distance", "sample–detector distance", src)
    centre = None
    cpath = f"{DETECTOR}/corner_position"
    if cpath in f:
        c = np.asarray(f[cpath][()], dtype=np.float64).ravel()
        if c.size != 3 or not np.isfinite(c).all():
            raise InputError(f"{src}: /{cpath} = {c.tolist()}; expected three finite numbers x, y, z in metres")
        normal = np.cross(b[0], b[1])
        normal /= np.linalg.norm(normal)
        from_corner = abs(float(c @ normal))
        if distance is None:
            if from_corner <= 0:
                raise InputError(f"{src}: /{cpath} = {c.tolist()} lies in the sample plane; cannot derive the "
                                 "sample–detector distance (and /distance is missing)")
            distance = from_corner
        elif abs(from_corner - distance) > AGREEMENT * distance:
            warnings.warn(f"{src}: /{cpath} puts the detector {from_corner:g} m from the sample but /distance "
                          f"says {distance:g} m; using /distance", RuntimeWarning, stacklevel=3)
        # direct beam (x = y = 0): corner + (i + ½) b0 + (j + ½) b1 = 0 in the x–y plane
        ij = np.linalg.solve(b[:, :2].T, -c[:2]) - 0.5
        centre = _transformed_index(ij, frame_shape, transpose, flip_rows, flip_cols)
    if distance is None:
        raise InputError(f"{src}: missing dataset /{DETECTOR}/distance (sample–detector distance) and no "
                         f"/{cpath} to derive it from")
    geometry = DetectorGeometry(distance_m=distance, pixel_yx_m=pixel_yx, transpose=transpose,
                                flip_rows=bool(flip_rows), flip_cols=bool(flip_cols), beam_centre_px=centre,
                                source=source)
    if centre is not None:
        h, w = (frame_shape[1], frame_shape[0]) if transpose else frame_shape
        if max(abs(centre[0] - h // 2), abs(centre[1] - w // 2)) > 1.0:
            warnings.warn(f"{src}: /{cpath} puts the direct beam at pixel ({centre[0]:.1f}, {centre[1]:.1f}) but "
                          f"chemtomo takes zero frequency at the frame centre ({h // 2}, {w // 2}); the frames "
                          "are not re-centred", RuntimeWarning, stacklevel=3)
    return geometry


def _transformed_index(ij: np.ndarray, shape: tuple[int, int], transpose: bool, flip_rows: bool,
                       flip_cols: bool) -> tuple[float, float]:
    i, j = float(ij[0]), float(ij[1])
    h, w = shape
    if transpose:
        i, j, h, w = j, i, w, h
    if flip_rows:
        i = 2 * (h // 2) - i
    if flip_cols:
        j = 2 * (w // 2) - j
    return i, j


def _mirror(a: np.ndarray, axis: int) -> np.ndarray:
    """k → −k about the centre pixel n // 2 (an even-sized axis keeps its Nyquist row in place)."""
    n = a.shape[axis]
    return np.roll(np.flip(a, axis=axis), 1 - n % 2, axis=axis)


def to_lab_orientation(a: np.ndarray, geometry: DetectorGeometry) -> np.ndarray:
    """Bring an array whose last two axes are the file's frame axes to the default orientation.

    Used for frames, mask and probe guess alike (all are centred on pixel ``n // 2``).
    """
    if geometry.transpose:
        a = np.swapaxes(a, -1, -2)
    if geometry.flip_rows:
        a = _mirror(a, a.ndim - 2)
    if geometry.flip_cols:
        a = _mirror(a, a.ndim - 1)
    return np.ascontiguousarray(a)
