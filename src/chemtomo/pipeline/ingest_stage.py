"""The run's first stage for inputs that need no ptychography: read them into ``projections``.

The first stage of a run (named ``ptycho`` in the store, whatever the input) turns the manifest's
files into one stack per energy under ``projections/{energy}``; everything downstream reads only
that group. For CXI scans it is ptychography (:mod:`.ptycho_stage`). For the other kinds of input
(:mod:`chemtomo.io.inputs`) ptychography is skipped, with the reason in the stage's summary, and
the files are read instead:

- ``projections``: reconstructed complex transmissions (CXI images) are stacked per energy as
  complex64, exactly as ptychography would have left them; images of one energy with different
  shapes are centred in the largest and padded with air (T = 1); the field kept downstream is
  that of the smallest image.
- ``intensity``: full-field images are turned into optical density with their flat and dark
  fields, ``OD = −ln((I − dark)/(flat − dark))`` (:func:`chemtomo.chem.flat_field_od`, floor
  ``input.transmission_floor``), stored as float32 with ``quantity = "od"``.
- ``od``: ready optical-density images, stored as they are.

Each energy keeps its own pixel size (from the files, or the manifest's ``pixel_m``), which the
tilt-series stage uses to bring every energy onto the reference energy's grid. Every energy must
have been measured at the same angles. Angles come from the manifest's ``angle_deg`` (one file
per projection), from a Data Exchange ``/exchange/theta``, or from a text file of angles (the
manifest's ``angles`` column, else ``angles.csv`` beside the manifest), in that order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..io import read_angles_file, read_field_file, read_projection, read_tiff
from ..io.fullfield import DX_PIXEL_PATHS, DX_WHITE, file_format, read_full_field
from ..io.store import energy_key
from .context import RunContext

__all__ = ["run_input", "run_ingest", "input_files", "SKIP_REASONS"]

#: Why ptychography is skipped, per input kind (recorded in the stage's summary).
SKIP_REASONS = {
    "projections": "the input is reconstructed complex projections (CXI images)",
    "intensity": "the input is full-field intensity images (OD from flat and dark fields)",
    "od": "the input is optical-density images",
}


def run_input(ctx: RunContext) -> dict:
    """The first stage: ptychography for scans, reading the files for every other kind."""
    from .ptycho_stage import run_ptycho

    return run_ptycho(ctx) if ctx.kind == "scans" else run_ingest(ctx)


def _folder(ctx: RunContext) -> Path:
    m = ctx.config.path(ctx.config.input.manifest)
    return m if m.is_dir() else m.parent


def input_files(ctx: RunContext) -> list[str]:
    """Every file the stage reads (for the stage hash): the listed files, flats, darks, angle lists."""
    files = []
    for r in ctx.refs:
        files += [r.path] + [p for p in (r.flat, r.dark, r.angles) if p]
    default_angles = _folder(ctx) / "angles.csv"
    if ctx.kind in ("intensity", "od") and default_angles.is_file():
        files.append(str(default_angles))
    return list(dict.fromkeys(files))


def _check_energy(path: str, manifest_ev: float, file_ev: float, field: str) -> None:
    if math.isfinite(file_ev) and abs(file_ev - manifest_ev) > max(0.05, 1e-4 * manifest_ev):
        raise InputError(f"{path}: {field} is {file_ev:.6g} eV but the manifest gives {manifest_ev:.6g} eV")


def _read_projections(ctx: RunContext) -> dict[float, list[tuple]]:
    rows: dict[float, list[tuple]] = {}
    for r in ctx.refs:
        p = read_projection(r.path)
        _check_energy(r.path, r.energy_ev, p.energy_ev, "/entry_1/instrument_1/source_1/energy")
        angle = r.angle_deg if math.isfinite(r.angle_deg) else p.angle_deg
        if not math.isfinite(angle):
            raise InputError(f"{r.path}: no tilt angle: the manifest's angle_deg is empty and the file has no "
                             "/entry_1/sample_1/geometry_1/orientation")
        pixel = r.pixel_m if math.isfinite(r.pixel_m) else p.pixel_m
        rows.setdefault(round(r.energy_ev, 4), []).append(
            (np.array([angle]), p.transmission[None], pixel, r.path))
    return rows


def _angles_for(ctx: RunContext, r, n_images: int, file_angles, fmt: str) -> tuple[np.ndarray, str]:
    """The angles of a file's images and where they came from."""
    if math.isfinite(r.angle_deg):
        if n_images != 1:
            raise InputError(f"{r.path}: holds {n_images} images but its manifest row gives one angle "
                             f"({r.angle_deg:g}°); leave angle_deg empty for a file holding every angle")
        return np.array([r.angle_deg]), "manifest angle_deg"
    if file_angles is not None:
        return np.asarray(file_angles, np.float64), "/exchange/theta"
    source = Path(r.angles) if r.angles else _folder(ctx) / "angles.csv"
    if not source.is_file():
        raise InputError(f"{r.path}: no tilt angles: no angle_deg in the manifest, "
                         + ("no /exchange/theta in the file, " if fmt == "dx" else "")
                         + f"no angles column and no {source.name} beside the manifest ({source})")
    angles = read_angles_file(source)
    if angles.size != n_images:
        pages = "pages" if fmt == "tiff" else "images"
        raise InputError(f"{r.path}: {n_images} {pages} but {source} lists {angles.size} angles; expected one "
                         "angle per page")
    return angles, str(source)


def _read_fullfield(ctx: RunContext, totals: dict) -> dict[float, list[tuple]]:
    cfg = ctx.config.input
    fields: dict[tuple[str, str], np.ndarray] = {}

    def field_file(path: str, which: str) -> np.ndarray:
        if (path, which) not in fields:
            fields[(path, which)] = read_field_file(path, which)
        return fields[(path, which)]

    rows: dict[float, list[tuple]] = {}
    for r in ctx.refs:
        fmt = file_format(r.path)
        if fmt in ("dx", "xrm"):
            ff = read_full_field(r.path, theta_unit=cfg.theta_unit)
            data, flats, darks, file_angles = ff.data, ff.flats, ff.darks, ff.angles_deg
            flat_src, dark_src = f"{r.path}: /{DX_WHITE}", f"{r.path}: /exchange/data_dark"
            _check_energy(r.path, r.energy_ev, ff.energy_ev, "ImageInfo/Energy" if fmt == "xrm"
                          else "/measurement/instrument/monochromator/energy")
            file_pixel = ff.pixel_m
        else:
            data, flats, darks, file_angles, file_pixel = read_tiff(r.path), None, None, None, float("nan")
            flat_src = dark_src = ""
        if r.flat:
            flats, flat_src = field_file(r.flat, "flat"), f"{r.flat} (flat column)"
        if r.dark:
            darks, dark_src = field_file(r.dark, "dark"), f"{r.dark} (dark column)"
        for name, arr, src in (("flat", flats, flat_src), ("dark", darks, dark_src)):
            if arr is not None and arr.shape[1:] != data.shape[1:]:
                raise InputError(f"{src}: {name} fields of shape {arr.shape[1:]} but the images of {r.path} have "
                                 f"shape {data.shape[1:]}; expected {name} fields of the images' shape")
        angles, _ = _angles_for(ctx, r, data.shape[0], file_angles, fmt)
        pixel = r.pixel_m if math.isfinite(r.pixel_m) else file_pixel
        if not math.isfinite(pixel):
            where = {"dx": " or ".join("/" + p for p in DX_PIXEL_PATHS) + " (with a units attribute)",
                     "xrm": "ImageInfo/PixelSize"}.get(fmt, "the TIFF")
            raise InputError(f"{r.path}: no pixel size: none in {where} and no pixel_m in the manifest; give the "
                             "sample-plane pixel in metres in a pixel_m column")
        if ctx.kind == "intensity":
            from ..chem import flat_field_od

            if flats is None:
                raise InputError(f"{r.path}: no flat fields (no /{DX_WHITE} and no flat column); intensity data "
                                 "need them, or set [input] kind = \"od\" for ready optical-density images")
            od, info = flat_field_od(data, flats, darks, floor=cfg.transmission_floor, return_info=True)
            totals["nonpositive_pixels"] += info.n_nonpositive
            totals["floored_pixels"] += info.n_floored
            totals["no_beam_pixels"] += info.n_no_beam
            if darks is None:
                totals["without_dark"] += 1
        else:
            if flats is not None:
                raise InputError(f"{flat_src}: flat fields given but input.kind is 'od' (images already optical "
                                 "density); set [input] kind = \"intensity\" to apply them")
            od = data
        rows.setdefault(round(r.energy_ev, 4), []).append((angles, np.asarray(od, np.float32), pixel, r.path))
    return rows


def _stack_energy(energy: float, rows: list[tuple], fill) -> dict:
    """One energy's images sorted by angle, on one grid, with pixel size and sources."""
    pixel = rows[0][2]
    for _, _, p, path in rows[1:]:
        if abs(p / pixel - 1) > 1e-3:
            raise InputError(f"{path}: pixel size {p:g} m but {rows[0][3]} (same energy, {energy:g} eV) has "
                             f"{pixel:g} m; the images of one energy must share a pixel size")
    angles = np.concatenate([r[0] for r in rows])
    images = [img for r in rows for img in r[1]]
    sources = [r[3] for r in rows for _ in range(len(r[0]))]
    ny = max(i.shape[0] for i in images)
    nx = max(i.shape[1] for i in images)
    small = (min(i.shape[0] for i in images), min(i.shape[1] for i in images))
    stack = np.full((len(images), ny, nx), fill, dtype=images[0].dtype)
    for k, img in enumerate(images):
        oy, ox = (ny - img.shape[0]) // 2, (nx - img.shape[1]) // 2
        stack[k, oy:oy + img.shape[0], ox:ox + img.shape[1]] = img
    order = np.argsort(angles, kind="stable")
    return {"stack": stack[order], "angles": angles[order], "pixel_m": pixel,
            "sources": [sources[i] for i in order],
            "half_extent_m": [small[0] / 2 * pixel, small[1] / 2 * pixel]}


def _check_same_angles(per_energy: dict[float, dict]) -> None:
    energies = list(per_energy)
    e0 = energies[0]
    a0 = np.round(per_energy[e0]["angles"], 4)
    for e in energies[1:]:
        a = np.round(per_energy[e]["angles"], 4)
        if a.shape == a0.shape and np.array_equal(a, a0):
            continue
        missing = sorted(set(a0.tolist()) - set(a.tolist()))
        extra = sorted(set(a.tolist()) - set(a0.tolist()))
        files = sorted(set(per_energy[e]["sources"]))
        raise InputError(f"{files[0]}{' …' if len(files) > 1 else ''}: {e:g} eV has {a.size} angles but {e0:g} eV "
                         f"({min(per_energy[e0]['sources'])}) has {a0.size}; angles missing at {e:g} eV: "
                         f"{missing[:10]}{' …' if len(missing) > 10 else ''}, extra: {extra[:10]}; every energy needs "
                         "the same tilt angles")


def run_ingest(ctx: RunContext) -> dict:
    """Read projections, intensity or OD images into ``projections/{energy}`` (module docstring)."""
    totals = {"nonpositive_pixels": 0, "floored_pixels": 0, "no_beam_pixels": 0, "without_dark": 0}
    bar = ctx.progress("reading input")
    bar(0, 1)
    if ctx.kind == "projections":
        rows, fill, quantity = _read_projections(ctx), np.complex64(1.0), "transmission"
    else:
        rows, fill, quantity = _read_fullfield(ctx, totals), np.float32(0.0), "od"
    per_energy = {e: _stack_energy(e, rows[e], fill) for e in sorted(rows)}
    _check_same_angles(per_energy)
    arrays, array_attrs = {}, {}
    for e, d in per_energy.items():
        ek = energy_key(e)
        arrays[ek] = d["stack"]
        array_attrs[ek] = {"angles_deg": d["angles"].tolist(), "energy_eV": e, "pixel_m": d["pixel_m"],
                           "illuminated_half_extent_m": d["half_extent_m"], "sources": d["sources"],
                           "quantity": quantity}
    ctx.store.write_group("projections", arrays, attrs={"energies_eV": list(per_energy), "quantity": quantity,
                                                        "input_kind": ctx.kind}, array_attrs=array_attrs)
    bar(1, 1)
    n_angles = len(next(iter(per_energy.values()))["angles"])
    summary = {"input": ctx.kind, "files": len(ctx.refs), "energies": len(per_energy), "angles": n_angles,
               "ptychography": f"skipped: {SKIP_REASONS[ctx.kind]}",
               "pixel_nm": {energy_key(e): round(d["pixel_m"] * 1e9, 4) for e, d in per_energy.items()}}
    if ctx.kind == "intensity":
        summary.update({k: v for k, v in totals.items() if v})
        if totals["nonpositive_pixels"] or totals["no_beam_pixels"]:
            ctx.log(f"ptycho: flat-field correction set {totals['nonpositive_pixels']} pixels with I - dark <= 0 to "
                    f"the floor and {totals['no_beam_pixels']} with flat - dark <= 0 to NaN")
    return summary
