"""Check every input before the heavy work (issue 23).

``chemtomo run`` reads each scan's HDF5 header and dataset shapes (metadata only, never the
frames) before any stage starts, so that a truncated file or a scan with fewer positions than
frames is found in seconds rather than when the pipeline reaches it, minutes in. All problems are
collected and reported at once, one line each naming the file and the field; then either the run
stops (``[input] on_bad_scan = "fail"``, the default) or the bad scans are left out
(``"skip"`` or ``chemtomo run --skip-bad-scans``) and recorded in the store's root attribute
``excluded_inputs``. ``[input] exclude`` leaves scans out by hand.

What is checked, per CXI scan (kind ``scans``):

- the file exists, opens as HDF5 and its datasets lie inside the file (not truncated);
- a frames dataset at one of ``chemtomo.io.cxi.FRAMES_PATHS``, rank 3, non-empty;
- a translation dataset of shape ``(n_frames, 2 or 3)``;
- the photon energy ``/entry_1/instrument_1/source_1/energy``: present, a numeric scalar, a
  photon energy in joules (positive, below 1 MeV once converted to eV);
- within one energy (of the manifest), every scan's frame shape equals the most common one.

Counts (NaN, negative) are not read here: that would read the frames; the ptychography stage
handles them.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..core.containers import ScanRef
from ..core.errors import ConfigError, InputError
from ..io.cxi import ENERGY_PATH, FRAMES_PATHS, TRANSLATION_PATHS, _check_joules

__all__ = ["Excluded", "check_scan", "check_scans", "apply_exclusions", "preflight"]

#: Lines of a failure message listing problems (the rest are counted, not shown).
MAX_LINES = 50


@dataclass(frozen=True)
class Excluded:
    """An input left out of the run: which scan, and why (one line naming file and field)."""

    path: str
    angle_deg: float
    energy_ev: float
    reason: str

    def as_dict(self) -> dict:
        """JSON-ready record for the store's ``excluded_inputs`` attribute (an unknown angle or energy: None)."""
        return {"path": self.path, "angle_deg": self.angle_deg if math.isfinite(self.angle_deg) else None,
                "energy_eV": self.energy_ev if math.isfinite(self.energy_ev) else None, "reason": self.reason}


def _stored_end(ds: h5py.Dataset) -> int:
    """Byte offset just past the last stored byte of ``ds`` in its file (0 if nothing is stored).

    Contiguous datasets have one offset; chunked ones list their chunks (one per frame for
    chemtomo's writer), read from the chunk index without reading any chunk.
    """
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        off = ds.id.get_offset()
        return 0 if off is None else int(off) + int(ds.id.get_storage_size())
    if layout == h5py.h5d.CHUNKED:
        end = [0]

        def visit(info):
            if info.byte_offset is not None:
                end[0] = max(end[0], int(info.byte_offset) + int(info.size))

        if hasattr(ds.id, "chunk_iter"):  # one pass over the chunk index (4000 chunks: ~4 ms)
            ds.id.chunk_iter(visit)
        else:  # older HDF5: get_chunk_info(i) walks the index each time (4000 chunks: ~1 s)
            for i in range(ds.id.get_num_chunks()):
                visit(ds.id.get_chunk_info(i))
        return end[0]
    return 0  # compact: inside the object header, read with the file


def check_scan(path: str | os.PathLike) -> tuple[list[str], tuple[int, int] | None]:
    """Check one CXI scan's header and shapes without reading its frames.

    Parameters
    ----------
    path : the CXI (HDF5) scan file

    Returns
    -------
    problems : one line per problem, each naming the file and the dataset (empty: the scan is fine)
    frame_shape : ``(ny, nx)`` of the frames, or None where the frames dataset is unusable
    """
    src = Path(path)
    if not src.exists():
        return [f"{src}: file not found"], None
    if not src.is_file():
        return [f"{src}: is not a regular file, expected a CXI (HDF5) scan"], None
    size = src.stat().st_size
    try:
        f = h5py.File(src, "r")
    except OSError as exc:
        return [f"{src}: cannot be read as HDF5 (unreadable or truncated file): {exc}"], None
    problems: list[str] = []
    shape = None
    try:
        fpath, fds = _first(f, FRAMES_PATHS)
        n_frames = None
        if fds is None:
            problems.append(f"{src}: missing diffraction frames; expected a dataset at "
                            + " or ".join("/" + p for p in FRAMES_PATHS))
        elif fds.ndim != 3:
            problems.append(f"{src}: /{fpath} has rank {fds.ndim} (shape {fds.shape}); expected (n_frames, ny, nx)")
        elif 0 in fds.shape:
            problems.append(f"{src}: /{fpath} is empty (shape {fds.shape}); expected at least one frame")
        else:
            n_frames = int(fds.shape[0])
            shape = (int(fds.shape[1]), int(fds.shape[2]))
            end = _stored_end(fds)
            if end > size:
                problems.append(f"{src}: /{fpath} is stored up to byte {end} but the file has {size} bytes "
                                "(truncated file; copy it again)")
            elif (fds.id.get_create_plist().get_nfilters() == 0  # no filter (a plugin compressor has no .compression)
                  and fds.id.get_storage_size() < fds.size * fds.dtype.itemsize):
                problems.append(f"{src}: /{fpath} has frames never written (storage {fds.id.get_storage_size()} "
                                f"of {fds.size * fds.dtype.itemsize} bytes; truncated acquisition?)")
        tpath, tds = _first(f, TRANSLATION_PATHS)
        if tds is None:
            problems.append(f"{src}: missing scan positions; expected /{TRANSLATION_PATHS[0]} of shape "
                            f"({n_frames if n_frames is not None else 'n_frames'}, 3)")
        elif tds.ndim != 2 or tds.shape[1] not in (2, 3):
            problems.append(f"{src}: /{tpath} has shape {tds.shape}; expected (n_frames, 3) positions x, y, z in metres")
        elif n_frames is not None and tds.shape[0] != n_frames:
            problems.append(f"{src}: /{tpath} has {tds.shape[0]} rows but /{fpath} has {n_frames} frames; "
                            "expected one position per frame")
        problems.extend(_energy_problems(f, src))
    except (OSError, RuntimeError, KeyError) as exc:  # a damaged object header or B-tree
        problems.append(f"{src}: HDF5 structure cannot be read (damaged or truncated file): {exc}")
    finally:
        f.close()
    return problems, shape


def _first(f: h5py.File, paths: tuple[str, ...]):
    for p in paths:
        try:
            if p in f and isinstance(f[p], h5py.Dataset):
                return p, f[p]
        except (KeyError, OSError, RuntimeError):
            continue
    return None, None


def _energy_problems(f: h5py.File, src: Path) -> list[str]:
    if ENERGY_PATH not in f or not isinstance(f[ENERGY_PATH], h5py.Dataset):
        return [f"{src}: missing dataset /{ENERGY_PATH} (photon energy in joules)"]
    ds = f[ENERGY_PATH]
    if ds.size != 1:
        return [f"{src}: /{ENERGY_PATH} (photon energy in joules) must be a scalar, found shape {ds.shape}"]
    try:
        joules = float(np.asarray(ds[()], dtype=np.float64).reshape(()))
    except (TypeError, ValueError, OSError) as exc:
        return [f"{src}: /{ENERGY_PATH} (photon energy in joules) is not numeric: {exc}"]
    try:
        _check_joules(joules, src)
    except InputError as exc:
        return [str(exc)]
    return []


def check_scans(refs: list[ScanRef]) -> dict[str, list[str]]:
    """Problems of every scan, ``{path: [lines]}`` (only scans with problems), in manifest order.

    Besides each file's own checks (``check_scan``), a scan whose frame shape differs from the
    most common shape among the scans of its energy is a problem (ties: the smallest shape wins,
    so the outcome does not depend on file order).
    """
    found: dict[str, list[str]] = {}
    shapes: dict[float, dict[str, tuple[int, int]]] = defaultdict(dict)
    for r in refs:
        problems, shape = check_scan(r.path)
        if problems:
            found[r.path] = problems
        if shape is not None:
            shapes[round(r.energy_ev, 4)][r.path] = shape
    for energy, by_path in shapes.items():
        counts = Counter(by_path.values())
        common = min(counts, key=lambda s: (-counts[s], s))
        for p, s in by_path.items():
            if s != common:
                found.setdefault(p, []).append(
                    f"{p}: frames are {s[0]}×{s[1]} px but {counts[common]} other scan(s) at {energy:g} eV have "
                    f"{common[0]}×{common[1]}; expected one frame size per energy")
    return {r.path: found[r.path] for r in refs if r.path in found}


def apply_exclusions(refs: list[ScanRef], exclude: list[str], manifest: Path,
                     exclude_angles: list | None = None) -> tuple[list[ScanRef], list[Excluded]]:
    """Leave out the scans named in ``[input] exclude`` (paths relative to the manifest's folder)
    and, at every energy, the angles within ``[input] exclude_angles`` ranges (degrees, inclusive).

    Raises
    ------
    ConfigError : an entry names no scan of the manifest, or a range holds no angle of it (a typo
    would otherwise go unnoticed).
    """
    out: list[Excluded] = []
    if exclude_angles:
        kept = []
        for lo, hi in exclude_angles:
            if not any(lo - 1e-6 <= r.angle_deg <= hi + 1e-6 for r in refs):
                raise ConfigError(f"input.exclude_angles: [{lo:g}, {hi:g}]° holds no tilt angle of {manifest}")
        for r in refs:
            hit = next(((lo, hi) for lo, hi in exclude_angles if lo - 1e-6 <= r.angle_deg <= hi + 1e-6), None)
            if hit is None:
                kept.append(r)
            else:
                out.append(Excluded(r.path, r.angle_deg, r.energy_ev,
                                    f"angle {r.angle_deg:g}° excluded by input.exclude_angles [{hit[0]:g}, {hit[1]:g}]"))
        refs = kept
    if not exclude:
        return refs, out
    folder = manifest if manifest.is_dir() else manifest.parent
    wanted = {}
    for e in exclude:
        p = Path(e)
        wanted[str((p if p.is_absolute() else folder / p).resolve())] = e
    paths = {str(Path(r.path).resolve()) for r in refs}
    missing = [e for k, e in wanted.items() if k not in paths]
    if missing:
        raise ConfigError(f"input.exclude: {missing[0]!r} is not a scan of {manifest} (paths are relative to the "
                          f"manifest's folder {folder})")
    kept = []
    for r in refs:
        if str(Path(r.path).resolve()) in wanted:
            out.append(Excluded(r.path, r.angle_deg, r.energy_ev, "excluded by input.exclude"))
        else:
            kept.append(r)
    return kept, out


def _shared_angles(refs: list[ScanRef], *, strict: bool, manifest: Path) -> tuple[list[ScanRef], list[Excluded]]:
    """Keep only the tilt angles measured at every energy (alignment and tomography need them all).

    An angle left out at one energy (a bad scan skipped, a scan excluded by hand) is left out at
    the others too and recorded. With ``strict`` (nothing left out, ``on_bad_scan = "fail"``) a
    manifest whose energies have different angles is an InputError listing each energy's misses.
    """
    angled = [r for r in refs if math.isfinite(r.angle_deg)]
    energies = sorted({round(r.energy_ev, 4) for r in angled})
    if len(energies) < 2 or len(angled) != len(refs):
        return refs, []
    by_e = {e: {round(r.angle_deg, 6) for r in angled if round(r.energy_ev, 4) == e} for e in energies}
    common = set.intersection(*by_e.values())
    every = set.union(*by_e.values())
    if common == every:
        return refs, []
    if strict:
        lines = [f"{manifest}: energy {e:g} eV has no scan at {', '.join(f'{a:g}°' for a in sorted(every - a_))}"
                 for e, a_ in by_e.items() if every - a_]
        raise InputError("every energy needs the same tilt angles (or run with --skip-bad-scans to leave the "
                         "unshared angles out):\n" + "\n".join(lines))
    kept, out = [], []
    for r in refs:
        a = round(r.angle_deg, 6)
        if a in common:
            kept.append(r)
        else:
            lacking = [f"{e:g} eV" for e, a_ in by_e.items() if a not in a_]
            out.append(Excluded(r.path, r.angle_deg, r.energy_ev,
                                f"angle {r.angle_deg:g}° has no usable scan at {', '.join(lacking)}; every energy "
                                "needs the same tilt angles, so it is left out at every energy"))
    return kept, out


def _openable(path: str) -> list[str]:
    """Problems that stop a file from being read at all: missing, a folder, not HDF5 or truncated,
    or holding none of the datasets of a known input (``chemtomo.io.fullfield.file_format``)."""
    from ..io.fullfield import file_format

    src = Path(path)
    if not src.exists():
        return [f"{src}: file not found"]
    if not src.is_file():
        return [f"{src}: is not a regular file"]
    try:
        file_format(src)
    except InputError as exc:
        return [str(exc)]
    return []


def preflight(refs: list[ScanRef], *, kind: str, on_bad_scan: str, exclude: list[str], manifest: Path,
              exclude_angles: list | None = None,
              say=None, unreadable: list[tuple[str, str]] = ()) -> tuple[list[ScanRef], list[Excluded], str, str]:
    """Check the inputs and return the scans to run, those left out, and the input kind.

    Parameters
    ----------
    refs : the manifest's rows (files not yet checked for existence)
    kind : the configured input kind (``auto``: detected from the readable files); only ``scans``
        are checked in depth, other kinds are read by their stage
    on_bad_scan : ``"fail"`` (raise listing every problem) or ``"skip"`` (leave bad scans out)
    exclude : ``[input] exclude`` paths, relative to the manifest's folder
    exclude_angles : ``[input] exclude_angles`` ranges [low, high] in degrees, left out at every energy
    manifest : the manifest file (or folder)
    say : one-line messages for the user
    unreadable : ``(path, message)`` of files of an input folder whose angle or energy could not be
        read (so they are not in ``refs``); reported with the others, or left out with ``skip``

    Returns
    -------
    refs, excluded, kind, found : scans to run, scans left out (``Excluded``), the input kind and
    the one-line description of what was found (``chemtomo.io.inputs.input_kind``)

    Raises
    ------
    InputError : with ``on_bad_scan = "fail"``, every problem found, one line each; with
        ``"skip"``, when no scan is left.
    ConfigError : an ``exclude`` entry that names no scan of the manifest.
    """
    from ..io.inputs import input_kind

    say = say or (lambda m: None)
    refs, excluded = apply_exclusions(refs, exclude, manifest, exclude_angles)
    bad = {r.path: p for r in refs if (p := _openable(r.path))}
    readable = [r for r in refs if r.path not in bad]
    found = ""
    if readable:
        kind, found = input_kind(readable, kind, where=str(manifest))
        if kind == "scans":
            bad.update(check_scans(readable))
    bad = {r.path: bad[r.path] for r in refs if r.path in bad}  # manifest order
    n_files = len(refs) + len(unreadable)
    if (bad or unreadable) and on_bad_scan == "fail":
        lines = [m for _, m in unreadable] + [line for problems in bad.values() for line in problems]
        shown = lines[:MAX_LINES] + ([f"... and {len(lines) - MAX_LINES} more"] if len(lines) > MAX_LINES else [])
        raise InputError(f"{len(bad) + len(unreadable)} of {n_files} input files have problems (nothing was reconstructed; fix them, "
                         "leave them out with [input] exclude, or run with --skip-bad-scans):\n" + "\n".join(shown))
    for path, message in unreadable:
        excluded.append(Excluded(path, math.nan, math.nan, message))
        say(f"skipped     {message}")
    for r in refs:
        if r.path in bad:
            excluded.append(Excluded(r.path, r.angle_deg, r.energy_ev, "; ".join(bad[r.path])))
            say(f"skipped     {bad[r.path][0]}")
    refs = [r for r in refs if r.path not in bad]
    refs, unshared = _shared_angles(refs, strict=on_bad_scan == "fail" and not excluded, manifest=manifest)
    for e in unshared:
        say(f"left out    {e.path}: {e.reason}")
    excluded.extend(unshared)
    if not refs:
        raise InputError(f"{manifest}: no input left to run ({len(excluded)} left out; first: "
                         f"{excluded[0].reason if excluded else 'none'})")
    return refs, excluded, kind, found
