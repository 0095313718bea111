"""Dataset manifests and reference spectra (DESIGN.md, "Input").

A manifest is a CSV with the header ``path,angle_deg,energy_eV``, one scan per row, paths relative
to the manifest's folder. A folder of CXI files can stand in for a manifest: each file's angle is
read from its orientation (or a configured key) and its energy from the source.

Reference spectra are a CSV ``energy_eV,<phase>,<phase>…``: linear absorption per unit length of
each pure phase on one common scale (chemtomo's simulator writes μ = 4πβ/λ in 1/m), LiFePO4 first
and FePO4 last.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from ..core.containers import ScanRef
from ..core.errors import InputError
from ..core.units import joule_to_ev
from ._h5 import atomic_path, open_h5
from .cxi import ENERGY_PATH, _angle, check_energy_ev

__all__ = ["read_manifest", "write_manifest", "scan_folder", "read_references", "write_references",
           "group_by_energy", "check_references_cover"]

MANIFEST_COLUMNS = ("path", "angle_deg", "energy_eV")
#: Optional manifest columns (any order after ``path``): ``pixel_m`` (sample-plane pixel, metres,
#: overriding the file), ``flat`` and ``dark`` (flat-field and dark-field files of full-field
#: intensity data), ``angles`` (a text file of the angles of a multi-projection file without them).
OPTIONAL_COLUMNS = ("pixel_m", "flat", "dark", "angles")
#: Largest plausible sample-plane pixel, metres (a bigger value is a unit mistake: µm written as m).
MAX_PIXEL_M = 1e-3


def _number(text: str, src: Path, line: int, column: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{src}: line {line}, column {column}: expected a number, found {text!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{src}: line {line}, column {column}: expected a finite number, found {text!r}")
    return v


def _header(src: Path, row: list[str]) -> tuple[str, ...]:
    header = tuple(c.strip() for c in row)
    expected = (f"expected {','.join(MANIFEST_COLUMNS)!r} (scans, reconstructed projections) or 'path,energy_eV' "
                f"with any of the optional columns angle_deg, {', '.join(OPTIONAL_COLUMNS)}")
    unknown = [c for c in header if c not in MANIFEST_COLUMNS + OPTIONAL_COLUMNS]
    if unknown or not header or header[0] != "path" or "energy_eV" not in header or len(set(header)) != len(header):
        raise InputError(f"{src}: manifest header is {','.join(header)!r}; {expected}")
    return header


def _file(text: str, src: Path, line: int, column: str, check: bool) -> str:
    if not text:
        return ""
    p = Path(text)
    p = p if p.is_absolute() else (src.parent / p)
    if check and not p.is_file():
        raise InputError(f"{src}: line {line}, column {column}: file {text!r} not found (looked for {p})")
    return str(p.resolve())


def read_manifest(path: str | os.PathLike, *, check_files: bool = True) -> list[ScanRef]:
    """Read and validate a dataset manifest.

    The header is ``path,angle_deg,energy_eV`` (one scan or reconstructed projection per row) or
    ``path,energy_eV`` with any of the optional columns ``angle_deg``, ``pixel_m``, ``flat``,
    ``dark``, ``angles`` (full-field data: one file per energy holding every angle, with
    ``angle_deg`` empty, or one file per projection). Paths are relative to the manifest's folder.

    Returns
    -------
    list of ScanRef with absolute paths, in file order (angle NaN where none was given).

    Raises
    ------
    InputError: missing file, wrong header, non-numeric or non-finite values, an energy that is
    not a photon energy (≤ 0 or above 1 MeV), a pixel size that is not in metres, rows pointing
    at missing files, duplicate (angle, energy) pairs, an energy given twice without angles, no rows.
    """
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: manifest not found")
    try:
        with open(src, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
        nul = next((i for i, r in enumerate(rows, start=1) if any("\x00" in c for c in r)), None)
        if nul is not None:
            raise InputError(f"{src}: line {nul} holds NUL bytes; expected a text CSV manifest with the header "
                             f"{','.join(MANIFEST_COLUMNS)}")
    except UnicodeDecodeError as exc:
        raise InputError(f"{src}: not a text (UTF-8) CSV file: byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}; "
                         f"expected a manifest with the header {','.join(MANIFEST_COLUMNS)}") from None
    except csv.Error as exc:
        raise InputError(f"{src}: not a readable CSV manifest ({exc}); expected the header "
                         f"{','.join(MANIFEST_COLUMNS)}") from None
    rows = [r for r in rows if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise InputError(f"{src}: manifest is empty; expected the header {','.join(MANIFEST_COLUMNS)}")
    header = _header(src, rows[0])
    col = {name: j for j, name in enumerate(header)}
    refs: list[ScanRef] = []
    seen: dict[tuple[float, float], int] = {}
    whole: dict[float, int] = {}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{src}: line {i} has {len(row)} fields; expected {len(header)} "
                             f"({', '.join(header)})")
        cell = {name: row[j].strip() for name, j in col.items()}
        rel = cell["path"]
        angle = _number(cell["angle_deg"], src, i, "angle_deg") if cell.get("angle_deg") else float("nan")
        energy = _number(cell["energy_eV"], src, i, "energy_eV")
        check_energy_ev(energy, f"{src}: line {i}, column energy_eV")
        pixel = float("nan")
        if cell.get("pixel_m"):
            pixel = _number(cell["pixel_m"], src, i, "pixel_m")
            if not 0 < pixel < MAX_PIXEL_M:
                raise InputError(f"{src}: line {i}, column pixel_m: {pixel:g} is not a pixel size in metres; "
                                 f"expected 0 < pixel_m < {MAX_PIXEL_M:g} (e.g. 3.2e-8 for 32 nm)")
        p = Path(rel)
        p = p if p.is_absolute() else (src.parent / p)
        if check_files and not p.is_file():
            raise InputError(f"{src}: line {i}: scan file {rel!r} not found (looked for {p})")
        if math.isfinite(angle):
            key = (round(angle, 6), round(energy, 4))
            if key in seen:
                raise InputError(f"{src}: line {i} repeats angle {angle:g}° at {energy:g} eV already given on line "
                                 f"{seen[key]}; each (angle, energy) pair must appear once")
            seen[key] = i
        else:
            if round(energy, 4) in whole:
                raise InputError(f"{src}: line {i} gives {energy:g} eV without an angle again (line "
                                 f"{whole[round(energy, 4)]}); a file without angle_deg holds every angle of its "
                                 "energy, so each energy needs one such file")
            whole[round(energy, 4)] = i
        refs.append(ScanRef(path=str(p.resolve()), angle_deg=angle, energy_ev=energy, pixel_m=pixel,
                            **{c: _file(cell.get(c, ""), src, i, c, check_files) for c in ("flat", "dark", "angles")}))
    if not refs:
        raise InputError(f"{src}: manifest has a header but no scans")
    energies_with_angles = {e for _, e in seen}
    both = sorted(energies_with_angles & set(whole))
    if both:
        raise InputError(f"{src}: {both[0]:g} eV has rows with and without angle_deg (line {whole[both[0]]} has "
                         "none); give either one file per projection with its angle or one file per energy")
    return refs


def write_manifest(path: str | os.PathLike, refs: list[ScanRef]) -> Path:
    """Write a manifest; paths are written relative to the manifest's folder when possible.

    The optional columns (``pixel_m``, ``flat``, ``dark``, ``angles``) are written when any row has them.
    """
    p = Path(path)

    def rel(value: str) -> str:
        if not value:
            return ""
        rp = Path(value)
        try:
            return os.path.relpath(rp.resolve(), p.parent.resolve()) if rp.is_absolute() else str(rp)
        except ValueError:
            return str(rp)

    extra = [c for c in OPTIONAL_COLUMNS
             if any((math.isfinite(r.pixel_m) if c == "pixel_m" else bool(getattr(r, c))) for r in refs)]
    with atomic_path(p) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS + tuple(extra))
        for r in refs:
            row = [rel(r.path), f"{r.angle_deg:.6g}" if math.isfinite(r.angle_deg) else "", f"{r.energy_ev:.6g}"]
            for c in extra:
                row.append((f"{r.pixel_m:.6g}" if math.isfinite(r.pixel_m) else "") if c == "pixel_m"
                           else rel(getattr(r, c)))
            w.writerow(row)
    return p


def _folder_scan(fp: Path, angle_key: str | None) -> ScanRef:
    """One CXI file of a folder as a manifest row: angle and energy read from the file."""
    from ._h5 import first_present
    from .cxi import IMAGE_ENERGY_PATHS

    with open_h5(fp) as f:
        epath, eds = first_present(f, IMAGE_ENERGY_PATHS)
        if eds is None:
            raise InputError(f"{fp}: missing dataset /{ENERGY_PATH} (photon energy in joules)")
        try:
            energy = joule_to_ev(float(np.asarray(eds[()], dtype=np.float64).reshape(())))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{fp}: /{epath} (photon energy in joules) is not a numeric scalar: {exc}") from None
        angle = _angle(f, fp, angle_key)
    check_energy_ev(energy, f"{fp}: /{epath}")
    if not math.isfinite(angle):
        raise InputError(f"{fp}: no tilt angle: /entry_1/sample_1/geometry_1/orientation is missing; "
                         "give the angle's HDF5 path as angle_key or use a manifest")
    return ScanRef(path=str(fp.resolve()), angle_deg=angle, energy_ev=round(energy, 4))


def scan_folder(folder: str | os.PathLike, *, angle_key: str | None = None,
                pattern: str = "*.cxi", problems: list | None = None) -> list[ScanRef]:
    """Build a manifest from a folder of input files.

    CXI files (``pattern``, scans or reconstructed images): angle from the orientation (or
    ``angle_key``), energy from the source. Without any, the folder's HDF5 files holding
    ``/exchange/data`` (Data Exchange, one per energy; energy from the monochromator, angles from
    ``/exchange/theta``); other HDF5 files (e.g. ``xas2d.h5``, ``truth.h5``) are passed over.

    ``problems``: a list to collect ``(path, message)`` of CXI files whose angle or energy cannot
    be read (they are left out of the result) instead of raising at the first one.
    """
    from .fullfield import DX_DATA, _energy_ev

    d = Path(folder)
    files = sorted(d.glob(pattern))
    if not files:
        dx = []
        for fp in sorted(p for ext in ("*.h5", "*.hdf5", "*.hdf", "*.nxs") for p in d.glob(ext)):
            with open_h5(fp) as f:
                if DX_DATA not in f:
                    continue
                energy = _energy_ev(f, fp)
            if not math.isfinite(energy):
                raise InputError(f"{fp}: no photon energy with a unit at /measurement/instrument/monochromator/energy "
                                 "(units eV or keV); list the files in a manifest with an energy_eV column")
            dx.append(ScanRef(path=str(fp.resolve()), angle_deg=float("nan"), energy_ev=round(energy, 4)))
        if not dx:
            raise InputError(f"{d}: no files matching {pattern!r} and no Data Exchange HDF5 files (/exchange/data)")
        energies = [r.energy_ev for r in dx]
        if len(set(energies)) != len(energies):
            dup = sorted({e for e in energies if energies.count(e) > 1})
            raise InputError(f"{d}: several Data Exchange files at {dup[0]:g} eV; a folder holds one file per energy "
                             "(use a manifest for one file per projection)")
        return dx
    refs = []
    for fp in files:
        try:
            refs.append(_folder_scan(fp, angle_key))
        except InputError as exc:
            if problems is None:
                raise
            problems.append((str(fp.resolve()), str(exc)))
    keys = [(round(r.angle_deg, 6), r.energy_ev) for r in refs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise InputError(f"{d}: duplicate (angle, energy) pairs {dup[:5]}; each must appear once")
    return refs


def group_by_energy(refs: list[ScanRef]) -> dict[float, list[ScanRef]]:
    """Scans grouped by energy (ascending), each group sorted by angle.

    Raises InputError if the energies were not all measured at the same angles.
    """
    groups: dict[float, list[ScanRef]] = {}
    for r in refs:
        groups.setdefault(round(r.energy_ev, 4), []).append(r)
    groups = {e: sorted(v, key=lambda r: r.angle_deg) for e, v in sorted(groups.items())}
    angle_sets = {e: [round(r.angle_deg, 6) for r in v] for e, v in groups.items()}
    first_e, first = next(iter(angle_sets.items()))
    for e, a in angle_sets.items():
        if a != first:
            missing = sorted(set(first) ^ set(a))
            raise InputError(f"manifest: energy {e:g} eV was measured at different angles than {first_e:g} eV "
                             f"(differences: {missing[:10]}); every energy needs the same tilt angles")
    return groups


def read_references(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read reference spectra: (energies_eV ascending, {phase: absorption per unit length})."""
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: reference spectra file not found")
    with open(src, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
    if len(rows) < 3:
        raise InputError(f"{src}: expected a header energy_eV,<phase>,<phase>… and at least two rows")
    header = [c.strip() for c in rows[0]]
    if header[0] != "energy_eV" or len(header) < 3:
        raise InputError(f"{src}: header is {','.join(header)!r}; expected 'energy_eV' then at least two phase "
                         "columns (LiFePO4 first, FePO4 last)")
    values = np.empty((len(rows) - 1, len(header)), np.float64)
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{src}: line {i} has {len(row)} fields; expected {len(header)}")
        for j, c in enumerate(row):
            values[i - 2, j] = _number(c.strip(), src, i, header[j])
    e = values[:, 0]
    if np.any(np.diff(e) <= 0):
        raise InputError(f"{src}: column energy_eV must be strictly increasing")
    return e, {name: values[:, j] for j, name in enumerate(header) if j > 0}


def check_references_cover(path: str | os.PathLike, energies_ev, *, max_gap_ev: float | None = None) -> None:
    """Refuse a run whose energies the reference spectra in ``path`` do not cover.

    The chemistry interpolates the spectra linearly between their rows and never extrapolates
    (across an absorption edge that is never safe), so every energy of the run must lie within
    the table's first and last energy, and an energy that is not a row may only be interpolated
    between rows at most ``max_gap_ev`` apart (``chem.max_reference_gap_ev``; None: no limit).
    Raises an InputError naming the file and the energies.
    """
    from .references import read_reference_spectra

    grids = [e for e, _ in read_reference_spectra(path).values()]
    lo, hi = max(float(e[0]) for e in grids), min(float(e[-1]) for e in grids)
    run = sorted({round(float(e), 4) for e in energies_ev})
    missing = [e for e in run if not lo - 1e-6 <= e <= hi + 1e-6]
    if missing:
        shown = ", ".join(f"{e:g}" for e in missing[:12]) + (" ..." if len(missing) > 12 else "")
        raise InputError(f"{path}: the reference spectra cover {lo:g}–{hi:g} eV but the run has {len(missing)} "
                         f"energ{'y' if len(missing) == 1 else 'ies'} outside: {shown} eV; give references that "
                         "span every measured energy (input.references)")
    if max_gap_ev is not None:
        from ..chem.references import check_gaps

        for grid in grids:
            check_gaps(grid, run, max_gap_ev, where=str(path))


def write_references(path: str | os.PathLike, energies_ev, spectra: dict[str, np.ndarray]) -> Path:
    """Write reference spectra in the format :func:`read_references` reads."""
    p = Path(path)
    names = list(spectra)
    with atomic_path(p) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["energy_eV", *names])
        for i, e in enumerate(np.asarray(energies_ev, float)):
            w.writerow([f"{e:.4f}", *(f"{float(spectra[n][i]):.6e}" for n in names)])
    return p
