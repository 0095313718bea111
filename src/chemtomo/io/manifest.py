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
from .cxi import ENERGY_PATH, ENERGY_RANGE_EV, _angle
from ._h5 import atomic_path, open_h5

__all__ = ["read_manifest", "write_manifest", "scan_folder", "read_references", "write_references",
           "group_by_energy"]

MANIFEST_COLUMNS = ("path", "angle_deg", "energy_eV")


def _number(text: str, src: Path, line: int, column: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{src}: line {line}, column {column}: expected a number, found {text!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{src}: line {line}, column {column}: expected a finite number, found {text!r}")
    return v


def read_manifest(path: str | os.PathLike, *, check_files: bool = True) -> list[ScanRef]:
    """Read and validate a dataset manifest.

    Returns
    -------
    list of ScanRef with absolute paths, in file order.

    Raises
    ------
    InputError: missing file, wrong header, non-numeric or non-finite values, energies outside
    100–2000 eV, rows pointing at missing files, duplicate (angle, energy) pairs, no rows.
    """
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: manifest not found")
    with open(src, newline="") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise InputError(f"{src}: manifest is empty; expected the header {','.join(MANIFEST_COLUMNS)}")
    header = tuple(c.strip() for c in rows[0])
    if header[:3] != MANIFEST_COLUMNS:
        raise InputError(f"{src}: manifest header is {','.join(header)!r}; expected {','.join(MANIFEST_COLUMNS)!r}")
    refs: list[ScanRef] = []
    seen: dict[tuple[float, float], int] = {}
    lo, hi = ENERGY_RANGE_EV
    for i, row in enumerate(rows[1:], start=2):
        if len(row) < 3:
            raise InputError(f"{src}: line {i} has {len(row)} fields; expected 3 (path, angle_deg, energy_eV)")
        rel = row[0].strip()
        angle = _number(row[1].strip(), src, i, "angle_deg")
        energy = _number(row[2].strip(), src, i, "energy_eV")
        if not lo <= energy <= hi:
            raise InputError(f"{src}: line {i}, column energy_eV: {energy:g} eV is outside {lo:g}–{hi:g} eV")
        p = Path(rel)
        p = p if p.is_absolute() else (src.parent / p)
        if check_files and not p.is_file():
            raise InputError(f"{src}: line {i}: scan file {rel!r} not found (looked for {p})")
        key = (round(angle, 6), round(energy, 4))
        if key in seen:
            raise InputError(f"{src}: line {i} repeats angle {angle:g}° at {energy:g} eV already given on line "
                             f"{seen[key]}; each (angle, energy) pair must appear once")
        seen[key] = i
        refs.append(ScanRef(path=str(p.resolve()), angle_deg=angle, energy_ev=energy))
    if not refs:
        raise InputError(f"{src}: manifest has a header but no scans")
    return refs


def write_manifest(path: str | os.PathLike, refs: list[ScanRef]) -> Path:
    """Write a manifest; paths are written relative to the manifest's folder when possible."""
    p = Path(path)
    with atomic_path(p) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        for r in refs:
            rp = Path(r.path)
            try:
                rel = os.path.relpath(rp.resolve(), p.parent.resolve()) if rp.is_absolute() else str(rp)
            except ValueError:
                rel = str(rp)
            w.writerow([rel, f"{r.angle_deg:.6g}", f"{r.energy_ev:.6g}"])
    return p


def scan_folder(folder: str | os.PathLike, *, angle_key: str | None = None,
                pattern: str = "*.cxi") -> list[ScanRef]:
    """Build a manifest from a folder of CXI files (angle from orientation or ``angle_key``)."""
    d = Path(folder)
    files = sorted(d.glob(pattern))
    if not files:
        raise InputError(f"{d}: no files matching {pattern!r}")
    refs = []
    for fp in files:
        with open_h5(fp) as f:
            if ENERGY_PATH not in f:
                raise InputError(f"{fp}: missing dataset /{ENERGY_PATH} (photon energy in joules)")
            energy = joule_to_ev(float(np.asarray(f[ENERGY_PATH][()]).reshape(())))
            angle = _angle(f, fp, angle_key)
        if not math.isfinite(angle):
            raise InputError(f"{fp}: no tilt angle: /entry_1/sample_1/geometry_1/orientation is missing; "
                             "give the angle's HDF5 path as angle_key or use a manifest")
        refs.append(ScanRef(path=str(fp.resolve()), angle_deg=angle, energy_ev=round(energy, 4)))
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
