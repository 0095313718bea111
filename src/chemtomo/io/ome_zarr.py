"""OME-Zarr (NGFF 0.5, on Zarr v3) export of a run: images that napari, neuroglancer, vizarr,
Fiji/BigDataViewer and webKnossos open with their axes and physical voxel size.

``chemtomo export RUN.zarr --format ome-zarr -o DIR`` writes one OME-Zarr image per result::

    DIR/
      mu_708.2eV.ome.zarr/          linear absorption μ (1/m), axes (z, y, x), nm
      mu_710.2eV.ome.zarr/
      fraction.ome.zarr/            FePO4 fraction (NaN outside the sample)
        labels/classes/             NGFF label image: 1 LFP-rich, 2 mixed, 3 FP-rich, report colours
      density.ome.zarr/             C_LFP + C_FP (the volume the particles were segmented from)
        labels/particles/           NGFF label image: the particle labels, their table as properties
      polar.ome.zarr/               polar angle of the OD(E1)–OD(E2) pair (degrees)
      tiltseries_708.2eV.ome.zarr/  the aligned OD tilt series, axes (angle, y, x)

Each image is a multiscale pyramid: level 0 is the stored array; every further level halves the
space axes (mean of each 2×2×2 block for intensities, NaN ignored; the most frequent label for
label images) until the largest side is ≤ 64 voxels. Level k's voxel is 2^k times level 0's and
its centre sits (2^k − 1)/2 voxels of level 0 further in, which the ``translation`` carries.

Axes: the run store's volumes are ``(ny, nz, nx)`` with y the rotation axis and z the beam at 0°
(DESIGN.md). NGFF 0.5 wants the space axes last and named as a suffix of ``(z, y, x)`` (its
reference readers reject other names), so the export transposes each volume to ``(nz, ny, nx)``
and keeps the names true: NGFF ``z`` is the beam direction at 0°, ``y`` the rotation axis, ``x``
the detector's horizontal. A viewer's slider then runs along the beam and shows (y, x) planes,
the view of the 0° projection; nothing is relabelled.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import zarr

from ..core.errors import StoreError
from .store import RunStore, energy_key
from .tables import load_particle_table

__all__ = ["write_ome_zarr_image", "export_ome_zarr", "aligned_tilt_series", "downsample_mean", "downsample_mode", "pyramid_shapes",
           "to_ngff_order", "STORE_TO_NGFF", "NGFF_VERSION", "MIN_PYRAMID_SIDE", "CLASS_NAMES",
           "class_colours_rgba"]

NGFF_VERSION = "0.5"
#: Pyramid levels are added until the largest space side is at most this many voxels.
MIN_PYRAMID_SIDE = 64
#: Names of the class labels 1, 2, 3 (DESIGN.md: 0 outside).
CLASS_NAMES = {1: "LFP-rich", 2: "mixed", 3: "FP-rich"}
_SPACE_NAMES = ("z", "y", "x")
#: The store's (y, z, x) volume order to NGFF's (z, y, x).
STORE_TO_NGFF = (1, 0, 2)


def class_colours_rgba() -> dict[int, list[int]]:
    """The report's class colours (chem.figures.CLASS_COLOURS) as 0–255 RGBA per label value."""
    from matplotlib.colors import to_rgba

    from ..chem.figures import CLASS_COLOURS

    return {v: [int(round(255 * c)) for c in to_rgba(name)] for v, name in zip(CLASS_NAMES, CLASS_COLOURS)}


def _pad_even(a: np.ndarray, axes: tuple[int, ...], fill) -> np.ndarray:
    pad = [(0, a.shape[i] % 2 if i in axes else 0) for i in range(a.ndim)]
    if not any(p[1] for p in pad):
        return a
    if fill == "edge":
        return np.pad(a, pad, mode="edge")
    return np.pad(a, pad, constant_values=fill)


def _blocks(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """View (..., n/2, ...) with the 2 block members of every axis in ``axes`` moved to the end."""
    shape, order, tail = [], [], []
    for i, n in enumerate(a.shape):
        if i in axes:
            shape += [n // 2, 2]
            order.append(len(shape) - 2)
            tail.append(len(shape) - 1)
        else:
            shape.append(n)
            order.append(len(shape) - 1)
    b = a.reshape(shape).transpose(order + tail)
    return b.reshape(b.shape[:len(order)] + (-1,))


def downsample_mean(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Halve ``axes`` by the mean of each 2×…×2 block, NaN ignored (all-NaN blocks stay NaN).

    An odd side gets one more output voxel, the mean of the voxels that exist there.

    >>> downsample_mean(np.arange(6, dtype=np.float32).reshape(2, 3), (0, 1)).tolist()
    [[2.0, 3.5]]
    """
    x = _pad_even(np.asarray(a, np.float64), axes, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks: NaN is the answer
        return np.nanmean(_blocks(x, axes), axis=-1).astype(np.float32)


def downsample_mode(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Halve ``axes`` by the most frequent label of each block; a tie goes to the larger label.

    Ties to the larger value keep a 20 nm plate (3 voxels thick) from vanishing into the
    background (0) at the first coarser level when it fills half a block.

    >>> downsample_mode(np.array([[0, 0, 5, 0], [2, 2, 5, 0]]), (0, 1)).tolist()
    [[2, 5]]
    """
    b = _blocks(_pad_even(np.asarray(a), axes, "edge"), axes)
    s = np.sort(b, axis=-1)
    counts = (s[..., :, None] == s[..., None, :]).sum(axis=-1)
    # among the values with the highest count, the largest one: the last such in sorted order
    best = counts.shape[-1] - 1 - np.argmax((counts == counts.max(axis=-1, keepdims=True))[..., ::-1], axis=-1)
    return np.take_along_axis(s, best[..., None], axis=-1)[..., 0].astype(a.dtype)


def pyramid_shapes(shape: tuple[int, ...], space_axes: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shapes of the pyramid levels: halve the space axes until the largest is ≤ MIN_PYRAMID_SIDE.

    >>> pyramid_shapes((52, 84, 84), (0, 1, 2))
    [(52, 84, 84), (26, 42, 42)]
    """
    shapes = [tuple(shape)]
    while max(shapes[-1][i] for i in space_axes) > MIN_PYRAMID_SIDE:
        shapes.append(tuple((n + 1) // 2 if i in space_axes else n for i, n in enumerate(shapes[-1])))
    return shapes


def to_ngff_order(volume: np.ndarray) -> np.ndarray:
    """A store volume ``(ny, nz, nx)`` as NGFF ``(z, y, x)``: ``(nz, ny, nx)``, a view (no copy)."""
    return np.transpose(volume, STORE_TO_NGFF)


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(min(n, 64) for n in shape)


def _multiscale_group(path: Path, data: np.ndarray, axes: list[dict], scale: list[float],
                      translation: list[float], *, labels: bool, name: str, extra: dict) -> zarr.Group:
    """Write the pyramid of ``data`` as a new Zarr v3 group at ``path`` with NGFF 0.5 multiscales."""
    space = tuple(i for i, ax in enumerate(axes) if ax.get("type") == "space")
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    datasets, level = [], np.asarray(data)
    names = [ax["name"] for ax in axes]
    for k, _ in enumerate(pyramid_shapes(level.shape, space)):
        if k:
            level = downsample_mode(level, space) if labels else downsample_mean(level, space)
        f = [2.0 ** k if i in space else 1.0 for i in range(level.ndim)]
        a = g.create_array(str(k), shape=level.shape, dtype=level.dtype, chunks=_chunks(level.shape),
                           dimension_names=names, fill_value=0 if labels else np.nan,
                           compressors=zarr.codecs.GzipCodec(level=5))  # gzip: every NGFF viewer reads it
        a[...] = level
        datasets.append({"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": [s * fi for s, fi in zip(scale, f)]},
            {"type": "translation",
             "translation": [t + (fi - 1) / 2 * s for t, s, fi in zip(translation, scale, f)]}]})
    ome = {"version": NGFF_VERSION,
           "multiscales": [{"name": name, "axes": axes, "datasets": datasets,
                            "type": "mode" if labels else "mean",
                            "metadata": {"description": "2× block mean per level, NaN ignored" if not labels
                                         else "2× block mode per level, ties to the larger label",
                                         "method": "chemtomo.io.ome_zarr"}}]}
    g.attrs.update({"ome": {**ome, **extra}})
    return g


def _omero(data: np.ndarray, name: str) -> dict:
    """NGFF's rendering hints for one grey channel: its name (napari's layer name) and a display
    window over the 0.1–99.9 % quantiles of the finite values (min/max: the whole range)."""
    v = np.asarray(data, np.float64)
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    start, end = (float(q) for q in np.quantile(v, [0.001, 0.999])) if v.size else (lo, hi)
    return {"channels": [{"label": name, "color": "FFFFFF", "active": True,
                          "window": {"min": lo, "max": hi, "start": start, "end": end if end > start else hi}}],
            "rdefs": {"model": "greyscale"}}


def write_ome_zarr_image(path: str | os.PathLike, data: np.ndarray, voxel_nm, *, name: str,
                         axes: list[dict] | None = None, translation_nm=None, labels: dict | None = None,
                         attrs: dict | None = None) -> Path:
    """Write one NGFF 0.5 image (a multiscale pyramid) and its label images.

    Parameters
    ----------
    path : the ``.ome.zarr`` directory to write (replaced when it exists).
    data : level 0, in the order of ``axes``: (nz, ny, nx) for a volume (see to_ngff_order).
    voxel_nm : float or per-axis sequence, the level-0 scale (nm for the space axes).
    axes : NGFF axes, default ``z, y, x`` in nanometres.
    translation_nm : per-axis level-0 translation (default 0).
    labels : ``{name: (int array of data's shape, image-label dict)}``; the dict may hold
        ``colors`` and ``properties`` (NGFF image-label), ``source`` is filled in.
    attrs : extra attributes (JSON) stored beside ``ome`` under the key ``chemtomo``.

    Returns
    -------
    The path written.
    """
    path = Path(path)
    data = np.asarray(data)
    axes = axes or [{"name": n, "type": "space", "unit": "nanometer"} for n in _SPACE_NAMES]
    if len(axes) != data.ndim:
        raise ValueError(f"{path}: {len(axes)} axes for an array of shape {data.shape}")
    scale = [float(voxel_nm)] * data.ndim if np.ndim(voxel_nm) == 0 else [float(v) for v in voxel_nm]
    translation = [0.0] * data.ndim if translation_nm is None else [float(t) for t in translation_nm]
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    g = _multiscale_group(tmp, data, axes, scale, translation, labels=False, name=name,
                          extra={"omero": _omero(data, name)})
    if attrs:
        g.attrs.update({"chemtomo": attrs})
    if labels:
        lg = zarr.open_group(str(tmp / "labels"), mode="w", zarr_format=3)
        lg.attrs.update({"ome": {"version": NGFF_VERSION, "labels": list(labels)}})
        for lname, (arr, meta) in labels.items():
            arr = np.asarray(arr)
            if arr.shape != data.shape or arr.dtype.kind not in "iu":
                raise ValueError(f"{path}: label image {lname!r} must be integers of shape {data.shape}, "
                                 f"got {arr.dtype} {arr.shape}")
            _multiscale_group(tmp / "labels" / lname, arr, axes, scale, translation, labels=True, name=lname,
                              extra={"image-label": {**meta, "source": {"image": "../../"}}})
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def aligned_tilt_series(store: RunStore) -> dict[float, np.ndarray]:
    """The stored OD tilt series with the stored alignment applied (align.apply), per energy."""
    from ..align import Alignment, apply

    g = store.group_attrs("alignment")
    t = store.group_attrs("tiltseries")
    al = Alignment(shifts_px=store.read("alignment/shifts_px"), rotation_deg=store.read("alignment/rotation_deg"),
                   scale=store.read("alignment/scale"),
                   energy_offsets_px={float(e): np.asarray(v, float) for e, v in g["energy_offsets_px"].items()},
                   energy_pixel_ratio={float(e): float(v) for e, v in g.get("energy_pixel_ratio", {}).items()},
                   angles_deg=np.asarray(g["angles_deg"]), reference_energy=float(t["reference_energy_eV"]),
                   method=g.get("method", ""))
    return {float(e): apply(store.read(f"tiltseries/{energy_key(e)}"), al, float(e)) for e in t["energies_eV"]}


def _angle_axis(angles_deg: np.ndarray) -> tuple[dict, float, float]:
    """The tilt axis: degrees with step and start when the angles are evenly spaced, else the index."""
    a = np.asarray(angles_deg, float)
    step = np.diff(a)
    if len(a) > 1 and np.all(np.abs(step - step.mean()) < 1e-3) and abs(step.mean()) > 0:
        return {"name": "angle", "type": "angle", "unit": "degree"}, float(step.mean()), float(a[0])
    return {"name": "angle", "type": "angle"}, 1.0, 0.0


def export_ome_zarr(store_path: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write every image-like result of a run as an OME-Zarr (NGFF 0.5) image under ``out_dir``.

    See the module docstring for the layout. Parts of the run that are not done yet are
    skipped; a run without volumes raises StoreError.
    """
    store = RunStore(store_path, create=False)
    if not store.has("volumes"):
        raise StoreError(f"{store.path}: nothing to export yet; run the reconstruction first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    va = store.group_attrs("volumes")
    voxel_nm = round(float(va["voxel_m"]) * 1e9, 6)  # 6.7, not 6.699999999999999
    common = {"axes_meaning": {"z": "beam direction at 0°", "y": "rotation axis", "x": "detector horizontal"},
              "store_order": "run store volumes are (y, z, x); transposed to (z, y, x) here",
              "run_store": str(store.path.resolve())}
    for e in va["energies_eV"]:
        k = energy_key(e)
        written.append(write_ome_zarr_image(
            out / f"mu_{k}eV.ome.zarr", to_ngff_order(store.read(f"volumes/{k}")), voxel_nm, name=f"mu_{k}eV",
            attrs={**common, "quantity": "linear absorption μ", "units": "1/m", "energy_eV": float(e)}))
    if store.has("chem"):
        colours = class_colours_rgba()
        classes = {"colors": [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
                   + [{"label-value": v, "rgba": colours[v]} for v in CLASS_NAMES],
                   "properties": [{"label-value": v, "class": n} for v, n in CLASS_NAMES.items()]}
        written.append(write_ome_zarr_image(
            out / "fraction.ome.zarr", to_ngff_order(store.read("chem/fraction")), voxel_nm, name="fraction",
            labels={"classes": (to_ngff_order(store.read("chem/labels")).astype(np.uint8), classes)},
            attrs={**common, "quantity": "FePO4 fraction x_FP", "units": "1", "outside_sample": "NaN"}))
        particles = None
        if store.has("particles"):
            table = load_particle_table(store)
            props = [{"label-value": int(r["label"]),
                      **{c: (bool(r[c]) if isinstance(r[c], (bool, np.bool_)) else float(r[c]))
                         for c in table.columns if c != "label" and np.isfinite(float(r[c]))}}
                     for _, r in table.iterrows()]
            meta = {"properties": props} if props else {}  # NGFF: properties, when given, hold ≥ 1 entry
            particles = {"particles": (to_ngff_order(store.read("particles/labels")).astype(np.int32), meta)}
        written.append(write_ome_zarr_image(
            out / "density.ome.zarr", to_ngff_order(store.read("chem/density")), voxel_nm, name="density",
            labels=particles,
            attrs={**common, "quantity": "C_LFP + C_FP", "units": "reference scale"}))
        written.append(write_ome_zarr_image(
            out / "polar.ome.zarr", to_ngff_order(store.read("chem/polar")), voxel_nm, name="polar",
            attrs={**common, "quantity": "polar angle", "units": "degree"}))
    if store.has("alignment") and store.has("tiltseries"):
        pixel_nm = round(float(store.group_attrs("tiltseries")["pixel_m"]) * 1e9, 6)
        angles = np.asarray(store.group_attrs("alignment")["angles_deg"], float)
        ax, step, start = _angle_axis(angles)
        axes = [ax, {"name": "y", "type": "space", "unit": "nanometer"},
                {"name": "x", "type": "space", "unit": "nanometer"}]
        for e, tilt in aligned_tilt_series(store).items():
            k = energy_key(e)
            written.append(write_ome_zarr_image(
                out / f"tiltseries_{k}eV.ome.zarr", tilt, [step, pixel_nm, pixel_nm], name=f"tiltseries_{k}eV",
                axes=axes, translation_nm=[start, 0.0, 0.0],
                attrs={"quantity": "optical density, aligned (align.apply of the stored alignment)",
                       "units": "1", "energy_eV": e, "angles_deg": angles.tolist(),
                       "run_store": common["run_store"]}))
    return written
