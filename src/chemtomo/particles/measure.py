"""Per-particle measurements: size, shape, orientation, facet area and chemical state.

Place in the flow (DESIGN.md): ``particles.segment`` gives a label volume; :func:`measure` turns
it and the FePO4 fraction map of ``chem.fraction`` into a table, one row per particle, with the
unit of every quantity in its column name (``volume_nm3``, ``thickness_nm``...). The table goes
to CSV/Parquet unchanged (``DataFrame.to_csv``), and :func:`table_units` lists each column's unit.

Shape from the moment tensor
----------------------------
Each voxel is a unit cube, so the second moment of a particle about its centroid is the
covariance of the voxel centres plus 1/12 voxel² on the diagonal (the cube's own moment). Its
eigenvectors are the principal axes and its eigenvalues λ₁ ≥ λ₂ ≥ λ₃ the variances along them.
A uniform box of edge a has variance a²/12 along that edge, so the extents are

    length = √(12 λ₁),  width = √(12 λ₂),  thickness = √(12 λ₃)

exactly for a box of any orientation (and the "equivalent box" of any other shape). The paper's
ac facet is the plate's large face, so ``facet_area_nm2 = length · width``.

Facet area from the surface mesh
--------------------------------
``facet_area_mesh_nm2`` is the area of the particle's projection onto the plane of its two
longest principal axes (the plane normal to the thickness axis), from a marching-cubes mesh of
the particle's voxels (skimage.measure.marching_cubes at level 0.5): with a_k the area vector of
triangle k and n the thickness axis, the projected area is ½ Σ |a_k · n| (each point of the
silhouette is covered twice, by the top and the bottom face). For a convex body this is its
silhouette area; it does not suffer the staircase bias of the mesh's total area, because a
staircase has the same flux through the plane as the surface it approximates.
``surface_area_nm2`` is the total mesh area (it carries the staircase bias of a binary mesh, a
few percent to ~20 % for oblique faces).

Composition
-----------
``mean_fp_fraction`` is the mean FePO4 fraction of the particle's voxels (NaN voxels skipped),
the quantity the paper thresholds to call a particle active (active if ≥ 15 %, or ≥ 25 %). Its
uncertainty ``mean_fp_fraction_sigma`` is a standard error over n_eff independent samples:
n_eff = n_voxels, or the number of resolution cells (volume / resolution³, at least 1) when
``resolution_m`` is given, because voxels closer than the resolution are not independent. The
per-voxel error is ``fraction_sigma`` when given, else the scatter of the particle's voxel
fractions (which also holds real heterogeneity, so it is conservative).
Voxel classes (DESIGN.md): 1 LFP-rich (x_FP < 0.3), 2 mixed (0.3 ≤ x_FP ≤ 0.7), 3 FP-rich
(x_FP > 0.7); ``frac_*`` are the shares of the particle's classified voxels in each class.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.measure import marching_cubes, mesh_surface_area

from ..core.backend import to_numpy
from ..core.errors import InputError

__all__ = ["measure", "table_units"]

_BASE_UNITS = {
    "label": "",
    "n_voxels": "voxels",
    "volume_nm3": "nm^3",
    "centroid_y_nm": "nm", "centroid_z_nm": "nm", "centroid_x_nm": "nm",
    "length_nm": "nm", "width_nm": "nm", "thickness_nm": "nm",
    "axis_length_y": "1", "axis_length_z": "1", "axis_length_x": "1",
    "axis_width_y": "1", "axis_width_z": "1", "axis_width_x": "1",
    "axis_thickness_y": "1", "axis_thickness_z": "1", "axis_thickness_x": "1",
    "facet_area_nm2": "nm^2",
    "facet_area_mesh_nm2": "nm^2",
    "surface_area_nm2": "nm^2",
    "n_fraction_voxels": "voxels",
    "mean_fp_fraction": "1",
    "mean_fp_fraction_sigma": "1",
    "fp_fraction_std": "1",
    "frac_lfp_rich": "1", "frac_mixed": "1", "frac_fp_rich": "1",
}


def _active_column(threshold: float) -> str:
    return f"active_{threshold * 100:g}"


def table_units(active_thresholds=(0.15, 0.25)) -> dict[str, str]:
    """Unit of every column of :func:`measure`'s table, in column order.

    ``"1"`` marks a dimensionless quantity (fractions, unit-vector components), ``"bool"`` the
    active flags, ``""`` the label. Centroids are measured from the centre of voxel (0, 0, 0);
    ``axis_<extent>_<y|z|x>`` are the components of the unit vector along each principal axis.

    Examples
    --------
    >>> table_units()["facet_area_nm2"]
    'nm^2'
    >>> list(table_units((0.15,)))[-1]
    'active_15'
    """
    thresholds = _check_fractions("active_thresholds", active_thresholds)
    units = dict(_BASE_UNITS)
    for t in thresholds:
        units[_active_column(t)] = "bool"
    return units


def measure(labels, fraction, voxel_m: float, *, fraction_sigma=None, classes=None,
            active_thresholds=(0.15, 0.25), class_thresholds=(0.3, 0.7),
            resolution_m: float | None = None) -> pd.DataFrame:
    """Measure every labelled particle: size, shape, facet area, composition, activity.

    Parameters
    ----------
    labels : (ny, nz, nx) int
        Particle labels, 0 = background (from :func:`segment`).
    fraction : (ny, nz, nx) float
        FePO4 fraction x_FP per voxel (NaN outside the sample), from ``chem.fraction``.
    voxel_m : float
        Voxel edge length, metres.
    fraction_sigma : float or (ny, nz, nx) float, optional
        One-sigma error of each voxel's fraction. Default: the scatter within each particle.
    classes : (ny, nz, nx) uint8, optional
        Voxel classes (0 none, 1 LFP-rich, 2 mixed, 3 FP-rich), e.g. ``ChemicalMap.labels``.
        Default: computed from ``fraction`` with ``class_thresholds``.
    active_thresholds : sequence of float in [0, 1]
        A particle is active at threshold t when its mean FePO4 fraction is ≥ t; one boolean
        column ``active_<100 t>`` per threshold (paper: 0.15 and 0.25).
    class_thresholds : (float, float) in [0, 1], increasing
        FePO4 fractions separating LFP-rich / mixed / FP-rich voxels (paper: 0.3, 0.7).
    resolution_m : float, optional
        3D resolution; voxels within one resolution cell count as one sample in
        ``mean_fp_fraction_sigma``.

    Returns
    -------
    pandas.DataFrame
        One row per label present, in increasing label order, with the columns of
        :func:`table_units` (an empty frame with those columns when there are no particles).

    Raises
    ------
    InputError
        Shapes that differ, non-integer labels, non-positive voxel size, thresholds outside
        [0, 1].

    Examples
    --------
    >>> lab = np.zeros((8, 8, 8), np.int32); lab[2:6, 2:6, 3:5] = 1
    >>> t = measure(lab, np.full(lab.shape, 0.2, np.float32), 1e-9)
    >>> round(float(t.length_nm[0]), 6), round(float(t.thickness_nm[0]), 6), bool(t.active_15[0])
    (4.0, 2.0, True)
    """
    lab = np.asarray(to_numpy(labels))
    frac = np.asarray(to_numpy(fraction))
    if lab.ndim != 3:
        raise InputError(f"measure: labels must be a 3D volume (ny, nz, nx), got shape {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"measure: labels must hold integers, got dtype {lab.dtype}")
    if frac.shape != lab.shape:
        raise InputError(f"measure: fraction has shape {frac.shape} but labels has shape {lab.shape}; "
                         "expected the same shape")
    if not (isinstance(voxel_m, (int, float, np.integer, np.floating)) and math.isfinite(voxel_m)
            and voxel_m > 0):
        raise InputError(f"measure: voxel_m must be a positive finite number, got {voxel_m!r}")
    if resolution_m is not None and not (math.isfinite(resolution_m) and resolution_m > 0):
        raise InputError(f"measure: resolution_m must be a positive finite number, got {resolution_m!r}")
    thresholds = _check_fractions("active_thresholds", active_thresholds)
    lo_hi = _check_fractions("class_thresholds", class_thresholds)
    if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
        raise InputError(f"measure: class_thresholds must be two increasing fractions (lfp_rich_below, "
                         f"fp_rich_above), got {tuple(class_thresholds)!r}")
    sigma = None
    if fraction_sigma is not None:
        sigma = np.asarray(to_numpy(fraction_sigma), dtype=np.float32)
        if sigma.ndim and sigma.shape != lab.shape:
            raise InputError(f"measure: fraction_sigma has shape {sigma.shape} but labels has shape "
                             f"{lab.shape}; expected a scalar or the same shape")
        if np.any(sigma < 0):
            raise InputError("measure: fraction_sigma must be >= 0 everywhere")
    cls = None
    if classes is not None:
        cls = np.asarray(to_numpy(classes))
        if cls.shape != lab.shape:
            raise InputError(f"measure: classes has shape {cls.shape} but labels has shape {lab.shape}; "
                             "expected the same shape")
        if cls.size and (cls.min() < 0 or cls.max() > 3):
            raise InputError(f"measure: classes must hold 0..3 (none, LFP-rich, mixed, FP-rich), "
                             f"found values in [{cls.min()}, {cls.max()}]")

    units = table_units(thresholds)
    voxel_nm = voxel_m * 1e9
    cells_per_voxel = 1.0 if resolution_m is None else (voxel_m / resolution_m) ** 3
    rows = []
    boxes = ndimage.find_objects(lab.astype(np.int32, copy=False)) if lab.size and lab.max() > 0 else []
    for index, box in enumerate(boxes, start=1):  # one iteration per particle, not per voxel
        if box is None:
            continue
        region = lab[box] == index
        corner = np.array([s.start for s in box], dtype=np.float64)
        row = {"label": index}
        row.update(_shape(region, corner, voxel_nm))
        v_frac = frac[box][region]
        v_sigma = None if sigma is None else (sigma if sigma.ndim == 0 else sigma[box][region])
        if cls is None:
            v_cls = _classify(v_frac, lo_hi)
        else:
            v_cls = cls[box][region]
        row.update(_composition(v_frac, v_sigma, v_cls, cells_per_voxel))
        for t in thresholds:
            row[_active_column(t)] = bool(row["mean_fp_fraction"] >= t)  # NaN mean: not active
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(units))
    return table.astype(_dtypes(units))


def _check_fractions(name: str, values) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=float)))
    except (TypeError, ValueError):
        raise InputError(f"measure: {name} must be fractions in [0, 1], got {values!r}") from None
    bad = [v for v in out if not (0.0 <= v <= 1.0)]
    if bad or not out:
        raise InputError(f"measure: {name} must be fractions in [0, 1] (e.g. 0.15 for 15 %), got {values!r}")
    if len({_active_column(v) for v in out}) != len(out):
        raise InputError(f"measure: {name} has repeated values: {values!r}")
    return out


def _dtypes(units: dict[str, str]) -> dict[str, str]:
    kinds = {"label": "int32", "n_voxels": "int64", "n_fraction_voxels": "int64"}
    return {c: kinds.get(c, "bool" if u == "bool" else "float64") for c, u in units.items()}


def _classify(values: np.ndarray, lo_hi) -> np.ndarray:
    cls = np.zeros(values.shape, np.uint8)
    finite = np.isfinite(values)
    cls[finite] = 2
    cls[finite & (values < lo_hi[0])] = 1
    cls[finite & (values > lo_hi[1])] = 3
    return cls


def _shape(region: np.ndarray, corner: np.ndarray, voxel_nm: float) -> dict:
    """Size, centroid, principal extents and axes, facet and surface areas of one particle."""
    coords = np.argwhere(region).astype(np.float64)  # (n, 3) voxel indices inside the box
    n = coords.shape[0]
    centre = coords.mean(axis=0)
    d = coords - centre
    moment = d.T @ d / n + np.eye(3) / 12.0  # voxel centres + each cube's own a²/12
    evals, evecs = np.linalg.eigh(moment)
    evals, evecs = evals[::-1], evecs[:, ::-1]  # length, width, thickness
    signs = np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(3)])
    evecs = evecs * signs  # the largest component of each axis is positive
    extents = np.sqrt(12.0 * np.maximum(evals, 0.0)) * voxel_nm
    mesh_area, projected = _mesh_areas(region, evecs[:, 2])
    out = {
        "n_voxels": n,
        "volume_nm3": n * voxel_nm**3,
        "centroid_y_nm": (corner[0] + centre[0]) * voxel_nm,
        "centroid_z_nm": (corner[1] + centre[1]) * voxel_nm,
        "centroid_x_nm": (corner[2] + centre[2]) * voxel_nm,
        "length_nm": extents[0], "width_nm": extents[1], "thickness_nm": extents[2],
        "facet_area_nm2": extents[0] * extents[1],
        "facet_area_mesh_nm2": projected * voxel_nm**2,
        "surface_area_nm2": mesh_area * voxel_nm**2,
    }
    for k, name in enumerate(("length", "width", "thickness")):
        for j, axis in enumerate("yzx"):
            out[f"axis_{name}_{axis}"] = evecs[j, k]
    return out


def _mesh_areas(region: np.ndarray, normal: np.ndarray) -> tuple[float, float]:
    """Total area and area projected along ``normal`` of the 0.5 isosurface, voxel² units."""
    padded = np.pad(region, 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(padded, level=0.5)
    tri = verts[faces]
    area_vectors = 0.5 * np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    total = float(mesh_surface_area(verts, faces))
    projected = 0.5 * float(np.abs(area_vectors @ normal).sum())
    return total, projected


def _composition(values, sigma, classes, cells_per_voxel) -> dict:
    """Mean FePO4 fraction with its standard error, spread and voxel-class shares."""
    finite = np.isfinite(values)
    n = int(finite.sum())
    out = {"n_fraction_voxels": n}
    if n == 0:
        out.update(mean_fp_fraction=np.nan, mean_fp_fraction_sigma=np.nan, fp_fraction_std=np.nan)
    else:
        v = values[finite].astype(np.float64)
        mean = float(v.mean())
        std = float(v.std(ddof=1)) if n > 1 else 0.0
        if sigma is None:
            per_voxel = std
        else:
            s = np.broadcast_to(sigma, values.shape)[finite].astype(np.float64)
            per_voxel = float(np.sqrt(np.mean(s**2)))
        n_eff = min(float(n), max(1.0, n * cells_per_voxel))
        out.update(mean_fp_fraction=mean, mean_fp_fraction_sigma=per_voxel / math.sqrt(n_eff),
                   fp_fraction_std=std)
    counts = np.bincount(np.asarray(classes, dtype=np.int64).ravel(), minlength=4)[1:4]
    total = counts.sum()
    shares = counts / total if total else np.full(3, np.nan)
    out.update(frac_lfp_rich=shares[0], frac_mixed=shares[1], frac_fp_rich=shares[2])
    return out
