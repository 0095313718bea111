"""Reference spectra as users hold them: CSV tables, XDI files, Athena/Larch column files.

Three layouts are read (energies in eV; a keV energy column in an XDI file is converted):

- **CSV** ``energy_eV,<phase>,<phase>…`` (DESIGN.md): one row per energy, one column per phase.
- **XDI** (XAS Data Interchange, https://github.com/XraySpectroscopy/XAS-Data-Interchange):
  a first line ``# XDI/1.0``, header lines ``# Column.N: name [units]`` naming the columns,
  ``#////`` (end of the header fields, comments follow) and ``#----`` (end of the header), then
  whitespace-separated numbers.
- **Athena/Larch column files** (``.nor``, ``.xmu``, ``.chi``-like ASCII): ``#`` header lines, the
  last of which names the columns (``#  e  norm  nbkg …``), then whitespace-separated numbers.

A file's energy column is the one named ``energy_eV``, ``energy`` or ``e`` (any case), else its
first column. Which column holds which phase is chosen by name: ``[chem] reference_columns``
maps a phase to ``"FILE:COLUMN"`` (one file per phase, as Athena users keep them) or to
``"COLUMN"`` (a column of the ``input.references`` file).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..core.errors import InputError

__all__ = ["read_spectrum_table", "read_reference_spectra", "parse_column_spec", "ENERGY_NAMES"]

#: Column names taken as the energy column (compared in lower case).
ENERGY_NAMES = ("energy_ev", "energy", "e")
_ENERGY_SCALE = {"": 1.0, "ev": 1.0, "kev": 1.0e3}


def _read_text(src: Path) -> list[str]:
    if not src.is_file():
        raise InputError(f"{src}: reference spectra file not found")
    try:
        return src.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{src}: not a text file (byte {exc.start} is not UTF-8); expected reference spectra as "
                         "CSV, XDI or an Athena/Larch column file") from None


def _numbers(lines: list[tuple[int, str]], src: Path, names: list[str], sep: str | None) -> np.ndarray:
    values = np.empty((len(lines), len(names)), np.float64)
    for i, (lineno, text) in enumerate(lines):
        cells = [c.strip() for c in (text.split(sep) if sep else text.split())]
        if len(cells) != len(names):
            raise InputError(f"{src}: line {lineno} has {len(cells)} fields; expected {len(names)} "
                             f"({', '.join(names)})")
        for j, c in enumerate(cells):
            try:
                v = float(c)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise InputError(f"{src}: line {lineno}, column {names[j]}: expected a finite number, found {c!r}")
            values[i, j] = v
    if len(lines) < 2:
        raise InputError(f"{src}: {len(lines)} data row(s); expected at least two energies")
    return values


def _parse_xdi(src: Path, text: list[str]) -> tuple[list[str], list[str], list[tuple[int, str]]]:
    cols: dict[int, tuple[str, str]] = {}
    data = []
    for lineno, line in enumerate(text, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = re.match(r"#\s*column\.(\d+)\s*:\s*(\S+)\s*(\S*)", s, re.IGNORECASE)
            if m:
                n = int(m.group(1))
                if n in cols:
                    raise InputError(f"{src}: line {lineno}: Column.{n} is named twice")
                cols[n] = (m.group(2), m.group(3))
            continue
        data.append((lineno, s))
    if not cols:
        raise InputError(f"{src}: XDI file without '# Column.N: name units' lines; expected the columns named "
                         "in the header")
    if sorted(cols) != list(range(1, len(cols) + 1)):
        raise InputError(f"{src}: XDI columns are numbered {sorted(cols)}; expected Column.1 to Column.{len(cols)}")
    return [cols[n][0] for n in sorted(cols)], [cols[n][1] for n in sorted(cols)], data


def _parse_columns(src: Path, text: list[str]) -> tuple[list[str], list[tuple[int, str]]]:
    header = None
    data = []
    for lineno, line in enumerate(text, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if data:
                raise InputError(f"{src}: line {lineno}: a '#' line after the data; expected all header lines first")
            body = s.lstrip("#").strip()
            if body and not set(body) <= set("-=/* "):
                header = body
            continue
        data.append((lineno, s))
    if header is None:
        raise InputError(f"{src}: no '#' header line naming the columns; expected an Athena/Larch column file "
                         "whose last '#' line names them (e.g. '#  e  norm  nbkg')")
    return header.split(), data


def read_spectrum_table(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Every column of a spectra file (CSV, XDI or Athena/Larch), energy column first, energies in eV.

    Returns
    -------
    names : column names as in the file, the energy column first
    values : (n_rows, n_columns) float64, rows in order of strictly increasing energy

    Raises
    ------
    InputError naming the file, the line and the column: not text, no header naming the columns,
    a row of the wrong length, a non-numeric or non-finite value, fewer than two rows, repeated
    column names, an energy unit other than eV/keV, energies not strictly increasing.
    """
    src = Path(path)
    text = _read_text(src)
    first = next((ln.strip() for ln in text if ln.strip()), "")
    units: list[str] | None = None
    if first.lower().startswith("# xdi/"):
        names, units, data = _parse_xdi(src, text)
        sep = None
    elif first.startswith("#") or src.suffix.lower() in (".nor", ".xmu", ".dat", ".txt"):
        names, data = _parse_columns(src, text)
        sep = None
    else:
        rows = [(i, ln) for i, ln in enumerate(text, start=1) if ln.strip() and not ln.lstrip().startswith("#")]
        if not rows:
            raise InputError(f"{src}: empty; expected a header energy_eV,<phase>,<phase>… and at least two rows")
        names = [c.strip() for c in rows[0][1].split(",")]
        if names[0] != "energy_eV" or len(names) < 2:
            raise InputError(f"{src}: header is {rows[0][1]!r}; expected 'energy_eV' then the phase columns "
                             "(LiFePO4 first, FePO4 last)")
        data, sep = rows[1:], ","
    if len(set(n.lower() for n in names)) != len(names):
        raise InputError(f"{src}: column names {names} repeat a name; expected each column named once")
    values = _numbers(data, src, names, sep)
    k = next((j for j, n in enumerate(names) if n.lower() in ENERGY_NAMES), 0)
    if units is not None:
        unit = units[k].lower()
        if unit not in _ENERGY_SCALE:
            raise InputError(f"{src}: energy column {names[k]!r} is in {units[k]!r}; expected eV or keV")
        values[:, k] *= _ENERGY_SCALE[unit]
    order = [k] + [j for j in range(len(names)) if j != k]
    names, values = [names[j] for j in order], values[:, order]
    bad = np.flatnonzero(np.diff(values[:, 0]) <= 0)
    if bad.size:
        raise InputError(f"{src}: energy column {names[0]!r} must be strictly increasing; row {bad[0] + 2} "
                         f"({values[bad[0] + 1, 0]:g} eV) follows {values[bad[0], 0]:g} eV")
    return names, values


def parse_column_spec(spec: str, default_file: Path | None, base_dir: Path) -> tuple[Path, str]:
    """``"FILE:COLUMN"`` -> (base_dir/FILE, COLUMN); ``"COLUMN"`` -> (default_file, COLUMN)."""
    file, sep, column = spec.rpartition(":")
    if not sep:
        if default_file is None:
            raise InputError(f"reference column {spec!r} names no file and input.references is not set; "
                             "expected 'FILE:COLUMN' (e.g. 'lfp.nor:norm')")
        return default_file, column.strip()
    p = Path(file.strip())
    return (p if p.is_absolute() else base_dir / p), column.strip()


def read_reference_spectra(path: str | os.PathLike | None, columns: Mapping[str, str] | None = None, *,
                           base_dir: str | os.PathLike = ".") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each phase's reference spectrum on its own energy grid.

    Parameters
    ----------
    path : the reference file (CSV, XDI, Athena/Larch); may be None when every entry of
        ``columns`` names its file
    columns : {phase: "FILE:COLUMN" or "COLUMN"}, in phase order (LiFePO4 first, FePO4 last);
        empty or None: every non-energy column of ``path`` is a phase, in file order
    base_dir : folder that relative FILEs in ``columns`` are resolved against (the config's)

    Returns
    -------
    {phase: (energies_eV (n,) float64 strictly increasing, absorption (n,) float64)}

    Raises
    ------
    InputError naming the file and the column: a column not in the file (listing those that are),
    a file with fewer than two phase columns when no columns are chosen, or any reading error of
    :func:`read_spectrum_table`.
    """
    src = Path(path) if path is not None else None
    tables: dict[Path, tuple[list[str], np.ndarray]] = {}

    def table(p: Path):
        if p not in tables:
            tables[p] = read_spectrum_table(p)
        return tables[p]

    if not columns:
        if src is None:
            raise InputError("no reference spectra: set input.references or chem.reference_columns")
        names, values = table(src)
        if len(names) < 3:
            raise InputError(f"{src}: columns {names}; expected an energy column and at least two phase columns "
                             "(or choose them with chem.reference_columns)")
        return {n: (values[:, 0], values[:, j]) for j, n in enumerate(names) if j > 0}
    out = {}
    for phase, spec in columns.items():
        p, column = parse_column_spec(spec, src, Path(base_dir))
        names, values = table(p)
        lower = [n.lower() for n in names]
        if column.lower() not in lower[1:]:
            raise InputError(f"{p}: no column {column!r} for phase {phase} (chem.reference_columns); the file has "
                             f"the energy column {names[0]!r} and the columns {', '.join(names[1:]) or 'none'}")
        out[phase] = (values[:, 0], values[:, lower.index(column.lower())])
    return out
