"""STXM transmission stacks: the ALS/aXis2000 ``.hdr`` + ``.xim`` layout and NeXus NXstxm.

A scanning transmission X-ray microscope (STXM) records, at each energy, an image of the
transmitted photon counts of a raster-scanned sample. Two file layouts are common:

``.hdr`` + ``.xim`` (ALS beamlines 5.3.2 and 11.0.2, CLS, MAX IV, read by aXis2000 and MANTiS)
    ``BASE.hdr`` is a text header of nested structures, ``Name = value;``, ``{ ... }`` for a
    structure and ``(n, v1, v2, ..., vn)`` for a list whose first element is its length.
    ``ScanDefinition.Regions`` is a list of regions, each with ``PAxis`` (``Name = "Sample X"``)
    and ``QAxis`` (``"Sample Y"``) whose ``Points`` are the scan positions in µm;
    ``ScanDefinition.StackAxis`` (``Name = "Energy"``) holds the energies in eV;
    ``ScanDefinition.Dwell`` is the dwell time per pixel in ms. Each energy's image is a text
    file ``BASE_a000.xim``, ``BASE_a001.xim``, ... (``a`` the first detector channel, then the
    energy index in three digits): one row per QAxis point, one column per PAxis point.
NeXus/HDF5, application definition NXstxm (PolLux, SoftiMAX, Canadian Light Source, HERMES)
    An ``NXentry`` (``/entry1``, ...; ``definition`` = ``NXstxm``) holds one ``NXdata`` group per
    detector (``counter0``, ...) with the signal dataset (``data``, or the group's ``signal``
    attribute), ``energy`` (or ``photon_energy``) in eV, ``sample_x`` and ``sample_y`` (µm unless
    their ``units`` attribute says otherwise) and the order of the signal's axes in the group's
    ``axes`` attribute (older files: an ``axis`` attribute, 1-based, on each axis dataset).
    For an image stack the signal is ``(energy, sample_y, sample_x)`` in the current definition.

Both readers return an :class:`STXMStack` with counts as ``(n_energies, ny, nx)`` float32, the
energies in eV and the positions in metres (DESIGN.md units), and validate everything: a missing
file or field, a malformed header, an image of the wrong size, non-increasing energies or an
irregular scan grid each raise an :class:`~chemtomo.core.InputError` that names the file, the
field and what was expected. :func:`write_stxm_hdr` and :func:`write_nxstxm` write the same
layouts (used by the tests and by ``chemtomo.simulate``-style virtual experiments).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chemtomo.core import InputError

from ._h5 import atomic_path

__all__ = ["STXMStack", "read_stxm", "read_stxm_hdr", "read_nxstxm", "parse_hdr", "write_stxm_hdr",
           "write_nxstxm", "STACK_SUFFIXES"]

#: File suffixes :func:`read_stxm` recognises, by layout.
STACK_SUFFIXES = {"hdr": (".hdr",), "nexus": (".h5", ".hdf5", ".hdf", ".nxs", ".nx")}

_GRID_TOL = 0.05   # scan steps may deviate from their mean by this fraction (encoder readback jitter)
_LENGTH_UNITS_M = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "micron": 1e-6, "microns": 1e-6,
                   "micrometer": 1e-6, "micrometre": 1e-6, "nm": 1e-9}
_ENERGY_UNITS_EV = {"ev": 1.0, "kev": 1e3}
_MIN_PIXEL_M, _MAX_PIXEL_M = 1e-9, 1e-3   # no STXM scans finer than 1 nm or coarser than 1 mm


@dataclass(frozen=True)
class STXMStack:
    """A STXM transmission stack as read from a file.

    counts      : (n_energies, ny, nx) float32, transmitted photon counts (or the detector's
                  signal) per pixel, row 0 at ``y_m[0]``, column 0 at ``x_m[0]``
    energies_ev : (n_energies,) float64, strictly increasing, eV
    x_m, y_m    : (nx,), (ny,) float64, sample positions of the columns and rows, metres
    dwell_ms    : dwell time per pixel in ms (NaN when the file does not say)
    source      : the file it was read from ('' for an in-memory stack)
    """

    counts: np.ndarray
    energies_ev: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    dwell_ms: float = float("nan")
    source: str = ""

    @property
    def pixel_yx_m(self) -> tuple[float, float]:
        """Mean scan step along y and x, metres (1.0 along an axis with a single point)."""
        return _step(self.y_m), _step(self.x_m)

    @property
    def pixel_m(self) -> float:
        """The pixel size in metres: the mean of the y and x steps (equal on a square grid)."""
        dy, dx = self.pixel_yx_m
        if self.y_m.size < 2:
            return dx
        if self.x_m.size < 2:
            return dy
        return 0.5 * (dy + dx)


def _step(pos: np.ndarray) -> float:
    return float(np.mean(np.abs(np.diff(pos)))) if pos.size > 1 else 1.0


# ----------------------------------------------------------------------------------------------
# the .hdr text header
# ----------------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:("(?:[^"]*)")|([{}()=;,])|([^\s{}()=;,"]+))')


class _Tokens:
    """Tokens of an .hdr text: quoted strings, the punctuation ``{}()=;,`` and bare words."""

    def __init__(self, text: str, src: Path):
        self.src = src
        self.items: list[tuple[str, str, int]] = []   # (kind, value, line)
        pos, line = 0, 1
        while True:
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                rest = text[pos:].strip()
                if rest:
                    raise InputError(f"{src}: line {line}: cannot read {rest[:30]!r} (unterminated quoted string?)")
                break
            line += text.count("\n", pos, m.start(m.lastindex))
            kind = ("str", "punct", "word")[m.lastindex - 1]
            value = m.group(m.lastindex)
            self.items.append((kind, value[1:-1] if kind == "str" else value, line))
            line += value.count("\n")
            pos = m.end()
        self.i = 0

    def peek(self):
        return self.items[self.i] if self.i < len(self.items) else ("end", "", self.items[-1][2] if self.items else 1)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value: str, where: str):
        kind, got, line = self.take()
        if kind == "end":
            raise InputError(f"{self.src}: expected {value!r} {where}, found the end of the file (truncated header?)")
        if got != value or kind != "punct":
            raise InputError(f"{self.src}: line {line}: expected {value!r} {where}, found {got!r}")


def _scalar(words: list[str]):
    text = " ".join(words)
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _parse_struct(tok: _Tokens, path: str, *, top: bool = False) -> dict:
    out: dict = {}
    while True:
        kind, name, line = tok.peek()
        if kind == "end":
            if top:
                return out
            raise InputError(f"{tok.src}: structure {path or '(top)'} is not closed with '}}' (truncated header?)")
        if kind == "punct" and name == "}" and not top:
            return out
        if kind == "punct" and name == ";":   # stray separator, e.g. after a closing brace
            tok.take()
            continue
        if kind != "word":
            raise InputError(f"{tok.src}: line {line}: expected a field name in {path or 'the header'}, found {name!r}")
        tok.take()
        field = f"{path}.{name}" if path else name
        tok.expect("=", f"after field name {field}")
        out[name] = _parse_value(tok, field, end=";")
        tok.expect(";", f"after the value of {field}")


def _parse_value(tok: _Tokens, field: str, end: str):
    kind, value, line = tok.peek()
    if kind == "punct" and value == "{":
        tok.take()
        v = _parse_struct(tok, field)
        tok.expect("}", f"closing structure {field}")
        return v
    if kind == "punct" and value == "(":
        tok.take()
        return _parse_list(tok, field)
    if kind == "str":
        tok.take()
        return value
    words = []
    while True:
        kind, value, line = tok.peek()
        if kind == "end" or (kind == "punct" and value in (end, ")", "}", ",", ";")):
            break
        if kind == "punct":
            raise InputError(f"{tok.src}: line {line}: unexpected {value!r} in the value of {field}")
        words.append(value)
        tok.take()
    if not words:
        raise InputError(f"{tok.src}: line {line}: field {field} has no value")
    return _scalar(words)


def _parse_list(tok: _Tokens, field: str) -> list:
    items = []
    while True:
        kind, value, line = tok.peek()
        if kind == "punct" and value == ")":
            tok.take()
            break
        if kind == "end":
            raise InputError(f"{tok.src}: list {field} is not closed with ')' (truncated header?)")
        items.append(_parse_value(tok, f"{field}[{len(items)}]", end=","))
        kind, value, line = tok.peek()
        if kind == "punct" and value == ",":
            tok.take()
        elif kind == "punct" and value == "}":   # a known converter bug appends a stray '}' (MANTiS notes it)
            tok.take()
    if not items or not isinstance(items[0], int) or items[0] != len(items) - 1:
        raise InputError(f"{tok.src}: list {field} must start with its length n followed by n values; "
                         f"found {len(items) - 1} values after {items[0] if items else 'nothing'!r}")
    return items[1:]


def parse_hdr(path: str | os.PathLike) -> dict:
    """Parse an ``.hdr`` STXM header into nested dicts and lists (lists without their length).

    Raises an InputError naming the file and line for malformed text.
    """
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: STXM header file not found")
    try:
        text = src.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{src}: cannot read the STXM header: {exc}") from exc
    tok = _Tokens(text, src)
    if not tok.items:
        raise InputError(f"{src}: the STXM header is empty")
    return _parse_struct(tok, "", top=True)


def _get(d, keys: list[str], src: Path, what: str, prefix: str = ""):
    cur, path = d, [prefix] if prefix else []
    for k in keys:
        path.append(k)
        if not isinstance(cur, dict) or k not in cur:
            raise InputError(f"{src}: field {'.'.join(path)} is missing; expected {what}")
        cur = cur[k]
    return cur


def _points(axis, field: str, src: Path, unit_scale: float) -> np.ndarray:
    pts = _get(axis, ["Points"], src, "the list of scan points", field) if isinstance(axis, dict) else None
    if not isinstance(pts, list) or not pts or not all(isinstance(v, (int, float)) for v in pts):
        raise InputError(f"{src}: field {field}.Points must be a list of numbers, found {pts!r}")
    arr = np.asarray(pts, dtype=np.float64) * unit_scale
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{src}: field {field}.Points holds non-finite values")
    return arr


def _check_grid(pos: np.ndarray, src, field: str) -> None:
    if pos.size < 2:
        return
    d = np.diff(pos)
    step = np.mean(np.abs(d))
    if step <= 0 or not (np.all(d > 0) or np.all(d < 0)) or np.max(np.abs(np.abs(d) - step)) > _GRID_TOL * step:
        raise InputError(f"{src}: {field} positions are not a regular scan grid (steps {d.min():.4g}..{d.max():.4g} m); "
                         f"expected equal steps (within {_GRID_TOL:.0%}) in one direction")


def _check_energies(e: np.ndarray, src, field: str) -> None:
    if e.ndim != 1 or e.size < 1:
        raise InputError(f"{src}: {field} must be a 1D list of energies, found shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(e <= 0) or np.any(e > 1e6):
        raise InputError(f"{src}: {field} must hold energies in (0, 1e6] eV, found {e.min():g}..{e.max():g}")
    if np.any(np.diff(e) <= 0):
        bad = int(np.argmax(np.diff(e) <= 0))
        raise InputError(f"{src}: {field} must be strictly increasing; energy {bad + 1} ({e[bad + 1]:g} eV) "
                         f"follows {e[bad]:g} eV")


def _axis_unit(axis: dict, default: str, table: dict, src, field: str) -> float:
    unit = str(axis.get("Unit", default)).strip().lower() or default
    if unit not in table:
        raise InputError(f"{src}: {field}.Unit is {unit!r}; expected one of {sorted(table)}")
    return table[unit]


def read_stxm_hdr(path: str | os.PathLike, *, channel: int = 0) -> STXMStack:
    """Read an ALS/aXis2000 image stack: ``BASE.hdr`` and ``BASE_a000.xim``, ``BASE_a001.xim``, ...

    Parameters
    ----------
    path : the ``.hdr`` file; the ``.xim`` images are found beside it.
    channel : detector channel, 0 for the first (``a``), 1 for ``b``, ...

    Returns
    -------
    STXMStack
        counts (n_energies, ny, nx) float32 with rows along QAxis (Sample Y) and columns along
        PAxis (Sample X), energies from ``ScanDefinition.StackAxis.Points``.
    """
    src = Path(path)
    hdr = parse_hdr(src)
    scan = _get(hdr, ["ScanDefinition"], src, "the scan definition structure")
    regions = _get(scan, ["Regions"], src, "a list of scan regions", "ScanDefinition")
    if not isinstance(regions, list) or not regions or not isinstance(regions[0], dict):
        raise InputError(f"{src}: field ScanDefinition.Regions must be a list of region structures, found {regions!r}")
    if len(regions) > 1:
        raise InputError(f"{src}: ScanDefinition.Regions holds {len(regions)} regions; expected a single-region "
                         "image stack (split multi-region scans into one stack per region)")
    region = regions[0]
    p_axis = _get(region, ["PAxis"], src, "the horizontal scan axis (Sample X)", "ScanDefinition.Regions[0]")
    q_axis = _get(region, ["QAxis"], src, "the vertical scan axis (Sample Y)", "ScanDefinition.Regions[0]")
    stack_axis = _get(scan, ["StackAxis"], src, "the energy axis of an image stack", "ScanDefinition")
    for ax, field, want in ((p_axis, "ScanDefinition.Regions[0].PAxis", "Sample X"),
                            (q_axis, "ScanDefinition.Regions[0].QAxis", "Sample Y"),
                            (stack_axis, "ScanDefinition.StackAxis", "Energy")):
        if not isinstance(ax, dict):
            raise InputError(f"{src}: field {field} must be a structure, found {ax!r}")
        name = str(ax.get("Name", want))
        if name.lower().replace("_", " ") != want.lower():
            raise InputError(f"{src}: {field}.Name is {name!r}; expected {want!r} (an image stack: x, y, energy)")
    x = _points(p_axis, "ScanDefinition.Regions[0].PAxis", src,
                _axis_unit(p_axis, "um", _LENGTH_UNITS_M, src, "ScanDefinition.Regions[0].PAxis"))
    y = _points(q_axis, "ScanDefinition.Regions[0].QAxis", src,
                _axis_unit(q_axis, "um", _LENGTH_UNITS_M, src, "ScanDefinition.Regions[0].QAxis"))
    e = _points(stack_axis, "ScanDefinition.StackAxis", src,
                _axis_unit(stack_axis, "ev", _ENERGY_UNITS_EV, src, "ScanDefinition.StackAxis"))
    _check_grid(x, src, "ScanDefinition.Regions[0].PAxis.Points (x)")
    _check_grid(y, src, "ScanDefinition.Regions[0].QAxis.Points (y)")
    _check_energies(e, src, "ScanDefinition.StackAxis.Points")
    dwell = scan.get("Dwell", float("nan"))
    dwell = float(dwell) if isinstance(dwell, (int, float)) else float("nan")
    if not 0 <= channel < 26:
        raise InputError(f"channel must be in 0..25 (detector channels a..z), got {channel}")
    letter = "abcdefghijklmnopqrstuvwxyz"[channel]
    base = src.with_suffix("")
    counts = np.empty((e.size, y.size, x.size), np.float32)
    for i in range(e.size):
        xim = base.parent / f"{base.name}_{letter}{i:03d}.xim"
        counts[i] = _read_xim(xim, (y.size, x.size), e[i], n_energies=e.size)
    return STXMStack(counts, e, x, y, dwell, str(src))


def _read_xim(path: Path, shape: tuple[int, int], energy_ev: float, *, n_energies: int) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: image file not found; the header lists {n_energies} energies "
                         f"({energy_ev:g} eV is image {path.stem[-3:]}), expected one .xim per energy (aborted stack?)")
    rows = [ln.split() for ln in path.read_text(encoding="ascii", errors="replace").splitlines() if ln.strip()]
    if rows and len({len(r) for r in rows}) != 1:
        raise InputError(f"{path}: rows have different lengths {sorted({len(r) for r in rows})}; expected "
                         f"{shape[0]} rows of {shape[1]} counts")
    try:
        img = np.array([[float(v) for v in r] for r in rows], dtype=np.float64) if rows else np.empty((0, 0))
    except ValueError as exc:
        raise InputError(f"{path}: not a text image of numbers ({exc}); expected {shape[0]} rows of "
                         f"{shape[1]} counts") from exc
    if img.shape != shape:
        raise InputError(f"{path}: image is {img.shape[0]} rows x {img.shape[1] if img.ndim == 2 else 0} columns; "
                         f"the header's scan is {shape[0]} (QAxis, y) x {shape[1]} (PAxis, x)")
    return img.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# NeXus NXstxm
# ----------------------------------------------------------------------------------------------

def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return _text(v.reshape(-1)[0]) if v.size else ""
    return str(v)


def _nx_class(obj) -> str:
    return _text(obj.attrs.get("NX_class", ""))


def read_nxstxm(path: str | os.PathLike, *, entry: str | None = None, detector: str | None = None,
                position_unit: str = "um") -> STXMStack:
    """Read an image stack from a NeXus/HDF5 file written to the NXstxm application definition.

    Parameters
    ----------
    path : the HDF5 file.
    entry : the NXentry to read (default: the first one, by name, holding an image stack).
    detector : the NXdata group (default ``counter0``, else the first NXdata group with a 3D signal).
    position_unit : unit of ``sample_x``/``sample_y`` when they carry no ``units`` attribute
        ("um" by default, as at most STXMs; Diamond I08 writes mm without saying so). A pixel
        size that no STXM scans (under 1 nm or over 1 mm) is refused, naming this parameter.

    Returns
    -------
    STXMStack with counts (n_energies, ny, nx) float32, axes put in that order from the group's
    ``axes`` attribute (or the axis datasets' ``axis`` attributes).
    """
    import h5py

    src = Path(path)
    if not src.is_file():
        raise InputError(f"{src}: STXM stack file not found")
    try:
        f = h5py.File(src, "r")
    except OSError as exc:
        raise InputError(f"{src}: not a readable HDF5 file ({exc})") from exc
    with f:
        entries = [k for k in sorted(f) if isinstance(f[k], h5py.Group) and _nx_class(f[k]) == "NXentry"]
        if entry is not None:
            if entry not in f or not isinstance(f[entry], h5py.Group):
                raise InputError(f"{src}: entry /{entry} not found; the file holds {sorted(f)}")
            entries = [entry]
        if not entries:
            raise InputError(f"{src}: no NXentry group (a group with attribute NX_class = 'NXentry'); "
                             "expected an NXstxm file with /entry1/counter0/data")
        g = f[entries[0]]
        if "definition" in g:
            definition = _text(g["definition"][()])
            if definition.lower() != "nxstxm":
                raise InputError(f"{src}: /{entries[0]}/definition is {definition!r}; expected 'NXstxm'")
        groups = [k for k in g if isinstance(g[k], h5py.Group) and _nx_class(g[k]) == "NXdata"]
        if detector is not None:
            if detector not in g:
                raise InputError(f"{src}: /{entries[0]}/{detector} not found; NXdata groups: {groups}")
            name = detector
        elif "counter0" in g:
            name = "counter0"
        elif groups:
            name = groups[0]
        else:
            raise InputError(f"{src}: /{entries[0]} has no NXdata group; expected /{entries[0]}/counter0 with "
                             "data, energy, sample_x and sample_y")
        if position_unit.strip().lower() not in _LENGTH_UNITS_M:
            raise InputError(f"position_unit must be one of {sorted(_LENGTH_UNITS_M)}, got {position_unit!r}")
        return _read_nxdata(g[name], f"/{entries[0]}/{name}", src, position_unit.strip().lower())


def _read_nxdata(grp, gpath: str, src: Path, position_unit: str) -> STXMStack:
    import h5py

    signal = _text(grp.attrs.get("signal", "data")) or "data"
    if signal not in grp or not isinstance(grp[signal], h5py.Dataset):
        raise InputError(f"{src}: {gpath}/{signal} not found; expected the detector signal (n_energies, ny, nx)")
    ekey = "energy" if "energy" in grp else ("photon_energy" if "photon_energy" in grp else None)
    if ekey is None:
        raise InputError(f"{src}: {gpath}/energy not found (nor photon_energy); expected the energies in eV")
    for k in ("sample_x", "sample_y"):
        if k not in grp:
            raise InputError(f"{src}: {gpath}/{k} not found; expected the scan positions (µm)")
    data = grp[signal]
    if data.ndim != 3:
        raise InputError(f"{src}: {gpath}/{signal} has shape {data.shape}; expected a 3D image stack "
                         "(energy, sample_y, sample_x); point and line spectra are not image stacks")

    def axis_values(key, table, default):
        ds = grp[key]
        unit = _text(ds.attrs.get("units", default)).strip().lower() or default
        if unit not in table:
            raise InputError(f"{src}: {gpath}/{key} has units {unit!r}; expected one of {sorted(table)}")
        v = np.asarray(ds[()], dtype=np.float64).reshape(-1) * table[unit]
        if not np.all(np.isfinite(v)):
            raise InputError(f"{src}: {gpath}/{key} holds non-finite values")
        return v

    e = axis_values(ekey, _ENERGY_UNITS_EV, "ev")
    x = axis_values("sample_x", _LENGTH_UNITS_M, position_unit)
    y = axis_values("sample_y", _LENGTH_UNITS_M, position_unit)
    for key, pos in (("sample_x", x), ("sample_y", y)):
        step = _step(pos) if pos.size > 1 else None
        if step is not None and not _MIN_PIXEL_M <= step <= _MAX_PIXEL_M:
            said = "units" in grp[key].attrs
            raise InputError(f"{src}: {gpath}/{key} steps by {step:.3g} m, not a STXM pixel size "
                             f"({_MIN_PIXEL_M:g}–{_MAX_PIXEL_M:g} m); "
                             + ("check its units attribute" if said else
                                f"the dataset has no units attribute and was read as {position_unit}: give the "
                                "unit (position_unit, e.g. 'mm' for Diamond I08 files)"))
    order = _axes_order(grp, ekey, data.shape, (e.size, y.size, x.size), gpath, src)
    arr = np.transpose(np.asarray(data[()], dtype=np.float32), order)
    if arr.shape != (e.size, y.size, x.size):
        raise InputError(f"{src}: {gpath}/{signal} has shape {data.shape} but {ekey}, sample_y, sample_x have "
                         f"{e.size}, {y.size}, {x.size} values; expected one image per energy on that grid")
    _check_energies(e, src, f"{gpath}/{ekey}")
    _check_grid(x, src, f"{gpath}/sample_x")
    _check_grid(y, src, f"{gpath}/sample_y")
    dwell = float("nan")
    if "count_time" in grp:
        ct = np.asarray(grp["count_time"][()], dtype=np.float64).reshape(-1)
        if ct.size and np.all(np.isfinite(ct)):
            dwell = float(np.mean(ct)) * 1e3   # NXstxm count_time is in seconds
    return STXMStack(arr, e, x, y, dwell, str(src))


def _axes_order(grp, ekey, shape, want, gpath, src) -> tuple[int, int, int]:
    """Permutation taking the stored signal to (energy, sample_y, sample_x)."""
    names = [ekey, "sample_y", "sample_x"]
    if "axes" in grp.attrs:
        axes = grp.attrs["axes"]
        axes = [_text(a) for a in (axes if isinstance(axes, (list, np.ndarray)) else [axes])]
        if len(axes) == 1 and ":" in axes[0]:    # old NeXus style "energy:sample_y:sample_x"
            axes = axes[0].split(":")
        missing = [n for n in names if n not in axes]
        if missing or len(axes) != 3:
            raise InputError(f"{src}: {gpath} attribute axes is {axes}; expected the three names "
                             f"{names} in the signal's axis order")
        return tuple(axes.index(n) for n in names)
    if all("axis" in grp[n].attrs for n in names):   # before the definition was final: 1-based 'axis'
        order = tuple(int(np.asarray(grp[n].attrs["axis"]).reshape(-1)[0]) - 1 for n in names)
        if sorted(order) != [0, 1, 2]:
            raise InputError(f"{src}: {gpath}: the axis attributes of {names} are {[o + 1 for o in order]}; "
                             "expected a permutation of 1, 2, 3")
        return order
    if tuple(shape) == tuple(want):     # no axis information: the definition's own order
        return (0, 1, 2)
    raise InputError(f"{src}: {gpath} has no 'axes' attribute and its signal's shape {tuple(shape)} is not "
                     f"(energy, sample_y, sample_x) = {tuple(want)}; expected an NXstxm axes attribute")


# ----------------------------------------------------------------------------------------------
# dispatch and writers
# ----------------------------------------------------------------------------------------------

def read_stxm(path: str | os.PathLike, **kwargs) -> STXMStack:
    """Read a STXM image stack, ``.hdr`` + ``.xim`` or NeXus NXstxm, chosen by the file's suffix.

    Keyword arguments go to :func:`read_stxm_hdr` (``channel``) or :func:`read_nxstxm`
    (``entry``, ``detector``).
    """
    src = Path(path)
    suffix = src.suffix.lower()
    if suffix in STACK_SUFFIXES["hdr"]:
        return read_stxm_hdr(src, **kwargs)
    if suffix in STACK_SUFFIXES["nexus"]:
        return read_nxstxm(src, **kwargs)
    known = [s for v in STACK_SUFFIXES.values() for s in v]
    raise InputError(f"{src}: unknown STXM stack format {suffix or '(no suffix)'!r}; expected a .hdr header "
                     f"(with its .xim images) or a NeXus/HDF5 file ({', '.join(known[1:])})")


def _fmt_list(values) -> str:
    return f"({len(values)}, " + ", ".join(f"{v:.6f}" for v in values) + ")"


def write_stxm_hdr(path: str | os.PathLike, stack: STXMStack) -> list[Path]:
    """Write ``stack`` as an aXis2000/ALS ``.hdr`` header and one ``.xim`` text image per energy.

    Counts are written as integers (rounded), as the microscopes write them; positions in µm,
    energies in eV, dwell in ms. Returns the paths written, header first.
    """
    p = Path(path)
    if p.suffix.lower() != ".hdr":
        raise InputError(f"{p}: a STXM header must end in .hdr")
    c = np.asarray(stack.counts)
    n_e, ny, nx = c.shape
    x_um, y_um = np.asarray(stack.x_m) * 1e6, np.asarray(stack.y_m) * 1e6
    dwell = 1.0 if not np.isfinite(stack.dwell_ms) else float(stack.dwell_ms)

    def axis(name, unit, pts):
        return (f'{{Name = "{name}"; Unit = "{unit}"; Min = {min(pts):.6f}; Max = {max(pts):.6f}; '
                f'Dir = 1; Points = {_fmt_list(pts)};}}')

    text = (
        'ScanDefinition = { Label = "' + p.stem + '"; Type = "NEXAFS Image Scan"; Flags = "Image Stack"; '
        f'Dwell = {dwell:g};\n'
        f'\tRegions = (1,\n{{\n\tPAxis = {axis("Sample X", "um", x_um)};\n'
        f'\tQAxis = {axis("Sample Y", "um", y_um)};\n}});\n'
        f'\tStackAxis = {axis("Energy", "eV", np.asarray(stack.energies_ev))};\n'
        '\tChannels = (1,\n{ Name = "Counter0"; Unit = "counts";});\n};\n'
        'Time = "written by chemtomo.io.stxm";\n'
    )
    written = []
    with atomic_path(p) as tmp:
        tmp.write_text(text)
        written.append(p)
    base = p.with_suffix("")
    for i in range(n_e):
        xim = base.parent / f"{base.name}_a{i:03d}.xim"
        rows = np.rint(c[i]).astype(np.int64)
        with atomic_path(xim) as tmp:
            tmp.write_text("\n".join("\t".join(str(v) for v in r) for r in rows) + "\n")
        written.append(xim)
    return written


def write_nxstxm(path: str | os.PathLike, stack: STXMStack, *, axes_order: str = "energy,sample_y,sample_x") -> Path:
    """Write ``stack`` as a NeXus NXstxm file: ``/entry1/counter0/{data,energy,sample_x,sample_y}``.

    ``axes_order`` chooses the signal's stored axis order (recorded in the ``axes`` attribute), so
    tests can write the older (sample_x, sample_y, energy) order too. Positions in µm.
    """
    import h5py

    names = [a.strip() for a in axes_order.split(",")]
    std = ["energy", "sample_y", "sample_x"]
    if sorted(names) != sorted(std):
        raise InputError(f"axes_order must name energy, sample_y and sample_x once each, got {axes_order!r}")
    perm = [std.index(n) for n in names]
    p = Path(path)
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        e = f.create_group("entry1")
        e.attrs["NX_class"] = "NXentry"
        e["definition"] = "NXstxm"
        g = e.create_group("counter0")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "data"
        g.attrs["axes"] = np.array(names, dtype=h5py.string_dtype())
        g["data"] = np.transpose(np.asarray(stack.counts, dtype=np.float32), perm)
        g["energy"] = np.asarray(stack.energies_ev, dtype=np.float64)
        g["energy"].attrs["units"] = "eV"
        for k, v in (("sample_x", stack.x_m), ("sample_y", stack.y_m)):
            g[k] = np.asarray(v, dtype=np.float64) * 1e6
            g[k].attrs["units"] = "um"
        dwell_s = (stack.dwell_ms if np.isfinite(stack.dwell_ms) else 1.0) * 1e-3
        g["count_time"] = np.full(len(stack.energies_ev), dwell_s)
        g["stxm_scan_type"] = "sample image stack"
    return p
