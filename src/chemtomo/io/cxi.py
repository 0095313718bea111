"""CXI (HDF5) ptychography scans and reconstructed images (DESIGN.md, "Input" and "Output").

Layout read (first present path wins):

- frames      ``/entry_1/data_1/data`` or ``/entry_1/instrument_1/detector_1/data``,
                ``(n_frames, ny, nx)`` photon counts, zero frequency at the array centre
- positions   ``/entry_1/sample_1/geometry_1/translation`` (or ``geometry``), ``(n, 3)`` x, y, z metres
- energy      ``/entry_1/instrument_1/source_1/energy``, joules
- detector    ``/entry_1/instrument_1/detector_1/{distance, x_pixel_size, y_pixel_size}``, metres
- mask        ``/entry_1/instrument_1/detector_1/mask`` (CXI: 0 = good pixel, non-zero = flagged)
- probe       ``/entry_1/instrument_1/source_1/probe`` or ``.../detector_1/probe``, ``(ny, nx)`` or
                ``(modes, ny, nx)`` complex
- tilt angle  ``/entry_1/sample_1/geometry_1/orientation``: a scalar in degrees, or the CXI
                six direction cosines of the sample's x and y axes, whose rotation about y gives
                θ = atan2(o[2], o[0]); or any key given as ``angle_key``

Positions become ``(y, x)`` in metres (``translation[:, 1], translation[:, 0]``) for the CXI
default detector orientation. ``detector_1/basis_vectors`` and ``corner_position``, where present,
give the pixel pitch, the distance and the frames' orientation in the lab; frames in another
orientation are transposed/mirrored to the default one (``cxi_geometry.py`` has the derivation).
Writers whose translations do not follow CXI (sample translation, x then y) need ``swap_xy`` and
``flip_y``/``flip_x``, applied to the translation columns as read; ``chemtomo ptycho SCAN
--guess-orientation`` finds them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from ..core.containers import Curve, Projection, Scan
from ..core.errors import InputError
from ..core.units import ev_to_joule, joule_to_ev
from ._h5 import atomic_path, first_present, open_h5, read_scalar
from .cxi_geometry import read_detector_geometry, to_lab_orientation

__all__ = ["read_scan", "read_scan_geometry", "write_scan", "write_projection", "read_projection", "ENERGY_RANGE_EV",
           "check_energy_ev",
           "FRAMES_PATHS", "TRANSLATION_PATHS"]

#: Sanity bounds on a photon energy, eV: positive and below 1 MeV (any X-ray energy, from the soft
#: to the hard range). Whether the reference spectra cover the energies is checked per run.
ENERGY_RANGE_EV = (0.0, 1.0e6)


def check_energy_ev(energy_ev: float, where: str) -> float:
    """``energy_ev`` if it is a finite photon energy in (0, 1 MeV]; else an InputError naming ``where``."""
    lo, hi = ENERGY_RANGE_EV
    if not (math.isfinite(energy_ev) and lo < energy_ev <= hi):
        raise InputError(f"{where}: {energy_ev!r} eV is not a photon energy; expected a positive finite number "
                         f"of eV below {hi:g} eV")
    return float(energy_ev)

FRAMES_PATHS = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data")
TRANSLATION_PATHS = ("entry_1/sample_1/geometry_1/translation", "entry_1/sample_1/geometry/translation")
ORIENTATION_PATHS = ("entry_1/sample_1/geometry_1/orientation", "entry_1/sample_1/geometry/orientation")
ENERGY_PATH = "entry_1/instrument_1/source_1/energy"
DETECTOR = "entry_1/instrument_1/detector_1"
PROBE_PATHS = ("entry_1/instrument_1/source_1/probe", "entry_1/instrument_1/detector_1/probe")


def _check_joules(energy_j: float, src: Path) -> float:
    """The energy in eV of a CXI energy in joules, refusing values that are no photon energy."""
    lo, hi = ENERGY_RANGE_EV
    energy_ev = joule_to_ev(energy_j)
    if not (math.isfinite(energy_ev) and lo < energy_ev <= hi):
        hint = ("; the value looks like eV, but CXI stores joules (×1.602e-19)"
                if lo < energy_j <= hi else "")
        raise InputError(f"{src}: /{ENERGY_PATH} is {energy_j!r} J = {energy_ev:.4g} eV; expected a photon "
                         f"energy, positive and below {hi:g} eV{hint}")
    return energy_ev


def _positive(value: float, path: str, name: str, src: Path) -> float:
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{src}: /{path} ({name}) must be a positive finite number of metres, found {value!r}")
    return value


def _angle(f: h5py.File, src: Path, angle_key: str | None) -> float:
    if angle_key is not None:
        key = angle_key.strip("/")
        if key not in f:
            raise InputError(f"{src}: missing dataset /{key} (tilt angle, configured as angle_key)")
        return read_scalar(f, key, "tilt angle in degrees", src)
    path, ds = first_present(f, ORIENTATION_PATHS)
    if ds is None:
        return float("nan")
    o = np.asarray(ds[()], dtype=np.float64).ravel()
    if o.size == 1:
        return float(o[0])
    if o.size >= 6:
        return math.degrees(math.atan2(o[2], o[0]))
    raise InputError(f"{src}: /{path} (orientation) must be a scalar angle in degrees or six direction "
                     f"cosines, found {o.size} values")


def read_scan(path: str | os.PathLike, *, angle_key: str | None = None, swap_xy: bool = False,
              flip_y: bool = False, flip_x: bool = False, check_counts: bool = False,
              extra_mask: np.ndarray | None = None) -> Scan:
    """Read and validate one CXI ptychography scan.

    Parameters
    ----------
    path : path of the CXI (HDF5) file
    angle_key : HDF5 path of a scalar tilt angle in degrees (default: the CXI orientation)
    swap_xy : the file's translation columns are (y, x, z) instead of the CXI (x, y, z)
    flip_y, flip_x : negate that position axis (facility sign conventions)
    check_counts : refuse NaN, infinite or negative counts (default False: these are detector
        realities, not input errors; ``ptycho.detector.clean_scan`` masks, clips and drops them
        and reports what it did)
    extra_mask : (ny, nx) bool or None
        Further valid pixels (True = good), e.g. the config's mask file
        (``io.read_detector_mask``), in the file's detector orientation: combined with the
        file's own mask and turned to the lab orientation with it.

    Returns
    -------
    Scan with float32 frames, (n, 2) positions (y, x) in metres, energy in eV.

    Raises
    ------
    InputError naming the file, the dataset, what was expected and what was found.
    """
    src = Path(path)
    with open_h5(src) as f:
        fpath, fds = first_present(f, FRAMES_PATHS)
        if fds is None:
            raise InputError(f"{src}: missing diffraction frames; expected a dataset at "
                             + " or ".join("/" + p for p in FRAMES_PATHS))
        if fds.ndim != 3:
            raise InputError(f"{src}: /{fpath} has rank {fds.ndim} (shape {fds.shape}); expected "
                             "(n_frames, ny, nx)")
        if 0 in fds.shape:
            raise InputError(f"{src}: /{fpath} is empty (shape {fds.shape}); expected at least one frame")
        try:
            frames = np.asarray(fds[()], dtype=np.float32)
        except OSError as exc:
            raise InputError(f"{src}: /{fpath} cannot be read (truncated file?): {exc}") from exc
        if check_counts:
            finite = np.isfinite(frames)
            if not finite.all():
                bad = np.flatnonzero(~finite.all(axis=(1, 2)))
                raise InputError(f"{src}: /{fpath} has NaN or infinite counts in frames {bad[:10].tolist()}"
                                 f"{' ...' if bad.size > 10 else ''}; expected finite photon counts")
            if (frames < 0).any():
                bad = np.flatnonzero((frames < 0).any(axis=(1, 2)))
                raise InputError(f"{src}: /{fpath} has negative counts in frames {bad[:10].tolist()}"
                                 f"{' ...' if bad.size > 10 else ''} (min {frames.min():g}); expected photon "
                                 "counts ≥ 0")
        tpath, tds = first_present(f, TRANSLATION_PATHS)
        if tds is None:
            raise InputError(f"{src}: missing scan positions; expected /{TRANSLATION_PATHS[0]} of shape "
                             f"({frames.shape[0]}, 3)")
        t = np.asarray(tds[()], dtype=np.float64)
        if t.ndim != 2 or t.shape[1] not in (2, 3):
            raise InputError(f"{src}: /{tpath} has shape {t.shape}; expected ({frames.shape[0]}, 3) "
                             "positions x, y, z in metres")
        if t.shape[0] != frames.shape[0]:
            raise InputError(f"{src}: /{fpath} has shape {fds.shape} but /{tpath} has {t.shape[0]} rows; "
                             "expected one position per frame")
        if not np.isfinite(t).all():
            bad = np.flatnonzero(~np.isfinite(t).all(axis=1))
            raise InputError(f"{src}: /{tpath} has non-finite positions in rows {bad[:10].tolist()}")
        positions = _positions(t, swap_xy=swap_xy, flip_y=flip_y, flip_x=flip_x)

        energy_j = read_scalar(f, ENERGY_PATH, "photon energy in joules", src)
        energy_ev = _check_joules(energy_j, src)
        geometry = read_detector_geometry(f, src, frames.shape[1:])
        dist = geometry.distance_m
        py, px = geometry.pixel_yx_m
        frames = to_lab_orientation(frames, geometry)

        mask = None
        if extra_mask is not None:
            extra_mask = np.asarray(extra_mask, bool)
            if extra_mask.shape != fds.shape[1:]:
                raise InputError(f"{src}: the detector mask has shape {extra_mask.shape}; expected the frame shape "
                                 f"{fds.shape[1:]} of /{fpath}")
            mask = to_lab_orientation(extra_mask, geometry)
        if f"{DETECTOR}/mask" in f:
            m = np.asarray(f[f"{DETECTOR}/mask"][()])
            if m.shape != fds.shape[1:]:
                raise InputError(f"{src}: /{DETECTOR}/mask has shape {m.shape}; expected the frame shape "
                                 f"{fds.shape[1:]}")
            file_mask = to_lab_orientation(m == 0, geometry)
            mask = file_mask if mask is None else mask & file_mask
            if not file_mask.any():
                raise InputError(f"{src}: /{DETECTOR}/mask flags every pixel as bad (CXI: 0 = good pixel)")

        probe = None
        ppath, pds = first_present(f, PROBE_PATHS)
        if pds is not None:
            probe = np.asarray(pds[()]).astype(np.complex64)
            if probe.ndim == 2:
                probe = probe[None]
            if probe.ndim != 3 or probe.shape[1:] != fds.shape[1:]:
                raise InputError(f"{src}: /{ppath} has shape {pds.shape}; expected the frame shape "
                                 f"{fds.shape[1:]} or (modes, {fds.shape[1]}, {fds.shape[2]})")
            probe = to_lab_orientation(probe, geometry)
        angle = _angle(f, src, angle_key)

    return Scan(frames=frames, positions_m=positions, energy_ev=energy_ev, distance_m=dist,
                detector_pixel_m=py, mask=mask, angle_deg=angle, probe=probe, source=str(src),
                detector_pixel_yx_m=(py, px) if px != py else None)


def _orientation(angle_deg: float) -> np.ndarray:
    t = math.radians(angle_deg)
    return np.array([math.cos(t), 0.0, math.sin(t), 0.0, 1.0, 0.0])


def write_scan(path: str | os.PathLike, scan: Scan, *, compression: str | None = "gzip") -> Path:
    """Write a Scan as a standard CXI file (atomically: temporary name, then rename).

    Frames go to ``/entry_1/instrument_1/detector_1/data`` with ``/entry_1/data_1/data`` a soft
    link to it; positions to ``/entry_1/sample_1/geometry_1/translation`` as (x, y, 0) metres; the
    detector's ``basis_vectors`` (CXI default orientation) and ``corner_position`` (direct beam on
    the centre pixel) beside the pixel sizes and distance.
    """
    p = Path(path)
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["cxi_version"] = 160
        e = f.create_group("entry_1")
        e.create_dataset("program_name", data="chemtomo")
        det = e.create_group("instrument_1/detector_1")
        det.create_dataset("data", data=np.asarray(scan.frames, np.float32), compression=compression,
                           chunks=(1,) + tuple(scan.frames.shape[1:]))
        py, px = scan.detector_pixel_yx_m or (scan.detector_pixel_m, scan.detector_pixel_m)
        det.create_dataset("distance", data=float(scan.distance_m))
        det.create_dataset("x_pixel_size", data=float(px))
        det.create_dataset("y_pixel_size", data=float(py))
        # CXI default orientation written out, with the direct beam on the centre pixel (h//2, w//2)
        h, w = scan.frames.shape[1:]
        det.create_dataset("basis_vectors", data=np.array([[0.0, -py, 0.0], [-px, 0.0, 0.0]]))
        det.create_dataset("corner_position", data=np.array([(w // 2 + 0.5) * px, (h // 2 + 0.5) * py,
                                                             float(scan.distance_m)]))
        if scan.mask is not None:
            det.create_dataset("mask", data=(~np.asarray(scan.mask, bool)).astype(np.uint32))
        src = e.create_group("instrument_1/source_1")
        src.create_dataset("energy", data=ev_to_joule(scan.energy_ev))
        if scan.probe is not None:
            src.create_dataset("probe", data=np.asarray(scan.probe, np.complex64))
        d1 = e.create_group("data_1")
        d1["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        geo = e.create_group("sample_1/geometry_1")
        pos = np.asarray(scan.positions_m, np.float64)
        geo.create_dataset("translation", data=np.stack([pos[:, 1], pos[:, 0], np.zeros(len(pos))], axis=1))
        if math.isfinite(scan.angle_deg):
            geo.create_dataset("orientation", data=_orientation(scan.angle_deg))
    return p


def write_projection(path: str | os.PathLike, projection: Projection) -> Path:
    """Write a reconstructed projection in the CXI convention for images (atomically).

    ``/entry_1/image_1/data`` complex64 (ny, nx), ``x_pixel_size``/``y_pixel_size`` metres,
    ``data_space`` = ``real``, probe modes at ``/entry_1/image_1/probe``, energy (J) at
    ``/entry_1/instrument_1/source_1/energy``, and the FRC under ``/entry_1/image_1/frc``
    (``frequency_per_m``, ``correlation``, ``threshold``, ``resolution_m``).
    """
    p = Path(path)
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["cxi_version"] = 160
        e = f.create_group("entry_1")
        img = e.create_group("image_1")
        img.create_dataset("data", data=np.asarray(projection.transmission, np.complex64))
        img.create_dataset("x_pixel_size", data=float(projection.pixel_m))
        img.create_dataset("y_pixel_size", data=float(projection.pixel_m))
        img.create_dataset("data_space", data="real")
        img.create_dataset("data_type", data="complex transmission")
        if projection.probe is not None:
            img.create_dataset("probe", data=np.asarray(projection.probe, np.complex64))
        if projection.background is not None:
            img.create_dataset("background", data=np.asarray(projection.background, np.float32))
        if projection.errors is not None:
            img.create_dataset("errors", data=np.asarray(projection.errors, np.float32))
        if projection.frc is not None:
            g = img.create_group("frc")
            g.create_dataset("frequency_per_m", data=projection.frc.frequency_per_m)
            g.create_dataset("correlation", data=projection.frc.correlation)
            g.create_dataset("threshold", data=projection.frc.threshold)
            g.create_dataset("resolution_m", data=float(projection.frc.resolution_m))
        e.create_dataset("instrument_1/source_1/energy", data=ev_to_joule(projection.energy_ev))
        if math.isfinite(projection.angle_deg):
            e.create_dataset("sample_1/geometry_1/orientation", data=_orientation(projection.angle_deg))
    return p


IMAGE = "entry_1/image_1"
#: Where readers of other codes put the energy of a reconstructed image (first present wins).
IMAGE_ENERGY_PATHS = (ENERGY_PATH, "entry_1/image_1/instrument_1/source_1/energy",
                      "entry_1/instrument/source/energy")


def read_projection(path: str | os.PathLike) -> Projection:
    """Read a reconstructed-image CXI file written by :func:`write_projection` or another tool.

    Tolerant of what other codes write (ALS COSMIC, PyNX, ...): the complex image at
    ``/entry_1/image_1/data`` may carry leading axes of length 1 (a single mode or slice,
    ``(1, ny, nx)``); the pixel size may be given as ``x_pixel_size`` only (square pixels); the
    energy (J) may sit under ``/entry_1/image_1/instrument_1/source_1``. A real-valued image, several
    modes or slices, or different x and y pixel sizes are refused with the reason.
    """
    src = Path(path)
    with open_h5(src) as f:
        dpath = f"{IMAGE}/data"
        if dpath not in f:
            raise InputError(f"{src}: missing dataset /{dpath} (reconstructed image)")
        ds = f[dpath]
        shape = tuple(ds.shape)
        if len(shape) < 2 or any(n != 1 for n in shape[:-2]):
            raise InputError(f"{src}: /{dpath} has shape {shape}; expected one complex image (ny, nx) "
                             "(leading axes of length 1 are accepted; save one mode or slice per file)")
        if not np.issubdtype(ds.dtype, np.complexfloating):
            raise InputError(f"{src}: /{dpath} holds {ds.dtype} values; expected a complex transmission "
                             "(for optical-density images use [input] kind = \"od\")")
        data = np.asarray(ds[()]).reshape(shape[-2:]).astype(np.complex64)
        xpath, ypath = f"{IMAGE}/x_pixel_size", f"{IMAGE}/y_pixel_size"
        pix = _positive(read_scalar(f, xpath, "image pixel size in metres", src), xpath, "image pixel size", src)
        if ypath in f:
            piy = _positive(read_scalar(f, ypath, "image pixel size in metres", src), ypath, "image pixel size", src)
            if abs(piy / pix - 1) > 1e-3:
                raise InputError(f"{src}: /{xpath} = {pix:g} m but /{ypath} = {piy:g} m; expected square "
                                 "pixels (resample the image first)")
        epath, _ = first_present(f, IMAGE_ENERGY_PATHS)
        if epath is None:
            raise InputError(f"{src}: missing dataset /{ENERGY_PATH} (photon energy in joules)")
        energy = _check_joules(read_scalar(f, epath, "photon energy in joules", src), src)
        probe = np.asarray(f[f"{IMAGE}/probe"][()]) if f"{IMAGE}/probe" in f else None
        bg = np.asarray(f[f"{IMAGE}/background"][()]) if f"{IMAGE}/background" in f else None
        errors = np.asarray(f[f"{IMAGE}/errors"][()]) if f"{IMAGE}/errors" in f else None
        frc = None
        if f"{IMAGE}/frc" in f:
            g = f[f"{IMAGE}/frc"]
            frc = Curve(np.asarray(g["frequency_per_m"]), np.asarray(g["correlation"]),
                        np.asarray(g["threshold"]), float(g["resolution_m"][()]))
        angle = _angle(f, src, None)
    return Projection(transmission=data, pixel_m=pix, energy_ev=energy, angle_deg=angle, probe=probe,
                      background=bg, frc=frc, errors=errors)


def read_scan_geometry(path: str | os.PathLike, *, swap_xy: bool = False, flip_y: bool = False,
                       flip_x: bool = False) -> dict:
    """Positions (y, x) m, energy eV, frame shape and object pixel size of a scan, without its frames.

    Used to plan a run (common object size per energy) before any frame is read.
    """
    from ..core.units import object_pixel_size

    src = Path(path)
    with open_h5(src) as f:
        fpath, fds = first_present(f, FRAMES_PATHS)
        tpath, tds = first_present(f, TRANSLATION_PATHS)
        if fds is None or tds is None or fds.ndim != 3:
            raise InputError(f"{src}: missing or malformed frames or positions; run `chemtomo info {src}`")
        t = np.asarray(tds[()], dtype=np.float64)
        energy_ev = joule_to_ev(read_scalar(f, ENERGY_PATH, "photon energy in joules", src))
        geometry = read_detector_geometry(f, src, tuple(int(s) for s in fds.shape[1:]))
        shape = tuple(int(s) for s in to_lab_orientation(np.empty(fds.shape[1:], bool), geometry).shape)
    positions = _positions(t, swap_xy=swap_xy, flip_y=flip_y, flip_x=flip_x)
    return {"positions_m": positions, "energy_ev": energy_ev, "frame_shape": shape,
            "pixel_m": object_pixel_size(energy_ev, geometry.distance_m, geometry.pixel_yx_m[0], shape[0]),
            "geometry": geometry}


def _positions(t: np.ndarray, *, swap_xy: bool, flip_y: bool, flip_x: bool) -> np.ndarray:
    """(y, x) probe positions on the object array from CXI sample translations (x, y[, z]).

    The CXI default orientation (after ``to_lab_orientation``) maps translation t to (t_y, t_x);
    ``swap_xy``/``flip_*`` first repair translation columns written in another convention.
    """
    x, y = (t[:, 1], t[:, 0]) if swap_xy else (t[:, 0], t[:, 1])
    return np.stack([-y if flip_y else y, -x if flip_x else x], axis=1)
