"""Figures of the particle population and of single particles (paper Figs. 3 and 4).

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state,
no display, no file): the caller (``report``) saves or embeds it. Lengths on axes are in nm.
Voxel classes use the paper's colours: red LFP-rich, green mixed, blue FP-rich.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the "3d" projection)
from scipy import ndimage

from ..core.backend import to_numpy
from ..core.errors import InputError
from .statistics import active_fraction

__all__ = ["activity_vs_size", "particle_gallery", "volume_histogram"]

CLASS_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")  # LFP-rich, mixed, FP-rich
CLASS_NAMES = ("LFP-rich", "mixed", "FP-rich")
_CLASS_CMAP = ListedColormap(["#f2f2f2", *CLASS_COLOURS])  # 0 = outside the particle


def _require(table, columns, who):
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{who}: table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{who}: table lacks column(s) {missing}; it has {list(table.columns)}")


#: Fewest particles in a bin for its active fraction to be drawn: below 5 a binomial fraction is
#: 0, 1 or a coarse step, and a line through such bins draws jumps from 0 to 1 that mean nothing.
MIN_PER_BIN = 5


def _bin_activity(x, active, edges):
    """Active fraction, its binomial sigma and the particle count in each bin of ``edges``."""
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    f = np.full(edges.size - 1, np.nan)
    s = np.full(edges.size - 1, np.nan)
    n = np.zeros(edges.size - 1, int)
    for k in range(edges.size - 1):  # one iteration per bin
        inside = which == k
        n[k] = int(inside.sum())
        if inside.any():
            f[k], s[k] = active_fraction(int(active[inside].sum()), n[k])
    return f, s, n


def _fraction_points(twin, x, f, s, *, xerr=None, label):
    """Active fractions as points with binomial one-sigma bars clipped to [0, 1] (no connecting line)."""
    lo = np.minimum(s, f)
    hi = np.minimum(s, 1 - f)
    twin.errorbar(x, f, yerr=[lo, hi], xerr=xerr, fmt="s", color="k", capsize=3, label=label)
    twin.set_ylim(0, 1)
    twin.set_ylabel("active fraction")


def volume_histogram(table: pd.DataFrame, *, active_col: str = "active_15", n_bins: int = 10) -> Figure:
    """Histogram of particle volumes, active ones stacked, with the active fraction per bin.

    Parameters
    ----------
    table : DataFrame with ``volume_nm3`` and ``active_col``
    active_col : str
        Boolean activity column.
    n_bins : int
        Number of equal-width volume bins.

    Returns
    -------
    Figure
        Bars: particle counts (inactive grey, active red); right axis: active fraction per bin
        with binomial one-sigma errors (paper Fig. 3b).
    """
    _require(table, ("volume_nm3", active_col), "volume_histogram")
    if n_bins < 1:
        raise InputError(f"volume_histogram: n_bins must be >= 1, got {n_bins}")
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    volume = table["volume_nm3"].to_numpy(float) / 1e3
    active = table[active_col].to_numpy(bool)
    ax.set_xlabel("particle volume (10³ nm³)")
    ax.set_ylabel("number of particles")
    if volume.size == 0:
        ax.set_title("no particles (n = 0)")
        return fig
    edges = np.histogram_bin_edges(volume, bins=n_bins)
    ax.hist([volume[~active], volume[active]], bins=edges, stacked=True,
            color=["#9e9e9e", CLASS_COLOURS[0]], label=["inactive", "active"])
    f, s, n = _bin_activity(volume, active, edges)
    af = active_fraction(int(active.sum()), int(active.size))
    ax.set_title(str(af))
    ax.legend(loc="upper left")
    full = n >= MIN_PER_BIN
    if full.any():
        twin = ax.twinx()
        centres = 0.5 * (edges[1:] + edges[:-1])
        _fraction_points(twin, centres[full], f[full], s[full],
                         label=f"active fraction (bins with ≥ {MIN_PER_BIN} particles)")
        twin.legend(loc="upper right")
    return fig


_AXIS_LABELS = {"facet_area_nm2": "ac-facet area (nm²)", "thickness_nm": "thickness (nm)",
                "volume_nm3": "volume (nm³)", "length_nm": "length (nm)", "width_nm": "width (nm)"}


def activity_vs_size(table: pd.DataFrame, *, by=("facet_area_nm2", "thickness_nm"),
                     active_col: str = "active_15", n_bins: int = 5) -> Figure:
    """Mean FePO4 fraction and active fraction against particle size (paper Fig. 3c).

    One panel per column of ``by``: each particle's mean FePO4 fraction (points with error bars,
    active ones red), and on the right axis the active fraction as points with binomial one-sigma
    errors: in up to ``n_bins`` equal-count bins of at least MIN_PER_BIN particles each, or, with
    fewer than 2·MIN_PER_BIN particles, one point for the whole population at its median size
    (horizontal bar: the size range), because binned fractions of one or two particles are noise.
    """
    by = tuple(by)
    _require(table, (*by, active_col, "mean_fp_fraction"), "activity_vs_size")
    fig = Figure(figsize=(5 * len(by), 4), layout="constrained")
    active = table[active_col].to_numpy(bool)
    comp = table["mean_fp_fraction"].to_numpy(float)
    err = (table["mean_fp_fraction_sigma"].to_numpy(float) if "mean_fp_fraction_sigma" in table
           else np.zeros_like(comp))
    for i, column in enumerate(by):
        ax = fig.add_subplot(1, len(by), i + 1)
        x = table[column].to_numpy(float)
        ax.set_xlabel(_AXIS_LABELS.get(column, column))
        ax.set_ylabel("mean FePO₄ fraction")
        if x.size == 0:
            ax.set_title("no particles (n = 0)")
            continue
        for flag, colour, name in ((False, "#9e9e9e", "inactive"), (True, CLASS_COLOURS[0], "active")):
            sel = active == flag
            ax.errorbar(x[sel], comp[sel], yerr=err[sel], fmt="o", ms=4, color=colour, label=name)
        twin = ax.twinx()
        k = min(n_bins, x.size // MIN_PER_BIN)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, k + 1))) if k >= 2 else np.array([])
        if edges.size >= 3:
            f, s, _ = _bin_activity(x, active, edges)
            _fraction_points(twin, 0.5 * (edges[1:] + edges[:-1]), f, s, xerr=0.5 * np.diff(edges),
                             label=f"active fraction ({edges.size - 1} equal-count bins)")
        else:
            f, s = active_fraction(int(active.sum()), int(active.size))
            mid = float(np.median(x))
            _fraction_points(twin, [mid], np.array([f]), np.array([s]),
                             xerr=[[mid - x.min()], [x.max() - mid]],
                             label=f"active fraction, all {x.size} particles")
        twin.legend(loc="upper right", fontsize="small")
        ax.legend(loc="upper left", fontsize="small")
    return fig


def particle_gallery(labels, fraction, voxel_m: float, particle_ids, *, classes=None,
                     class_thresholds=(0.3, 0.7)) -> Figure:
    """Selected particles: central slices and a 3D view coloured by voxel class (paper Fig. 4).

    Parameters
    ----------
    labels : (ny, nz, nx) int
        Particle labels.
    fraction : (ny, nz, nx) float
        FePO4 fraction per voxel.
    voxel_m : float
        Voxel size, metres.
    particle_ids : sequence of int
        Labels to show, one row each.
    classes : (ny, nz, nx) uint8, optional
        Voxel classes 1 LFP-rich, 2 mixed, 3 FP-rich; default from ``fraction`` and
        ``class_thresholds`` (x_FP < 0.3 LFP-rich, > 0.7 FP-rich).

    Returns
    -------
    Figure
        Per particle: the y–x, z–x and y–z slices through its centroid (classes, nm axes) and a
        3D scatter of its voxels.
    """
    lab = np.asarray(to_numpy(labels))
    frac = np.asarray(to_numpy(fraction))
    if lab.ndim != 3 or frac.shape != lab.shape:
        raise InputError(f"particle_gallery: labels (shape {lab.shape}) and fraction (shape {frac.shape}) "
                         "must be 3D volumes of the same shape")
    if not (np.isfinite(voxel_m) and voxel_m > 0):
        raise InputError(f"particle_gallery: voxel_m must be a positive finite number, got {voxel_m!r}")
    ids = [int(i) for i in particle_ids]
    present = set(np.unique(lab).tolist())
    absent = [i for i in ids if i not in present or i == 0]
    if absent or not ids:
        raise InputError(f"particle_gallery: particle_ids {absent or ids} are not labels of the volume")
    if classes is None:
        lo, hi = class_thresholds
        cls = np.where(frac < lo, 1, np.where(frac > hi, 3, 2)).astype(np.uint8)
        cls[~np.isfinite(frac)] = 0
    else:
        cls = np.asarray(to_numpy(classes)).astype(np.uint8)
        if cls.shape != lab.shape:
            raise InputError(f"particle_gallery: classes has shape {cls.shape}, labels {lab.shape}")

    voxel_nm = voxel_m * 1e9
    fig = Figure(figsize=(13, 3.2 * len(ids)), layout="constrained")
    boxes = ndimage.find_objects(lab.astype(np.int32, copy=False))
    planes = (("x (nm)", "y (nm)", 1), ("x (nm)", "z (nm)", 0), ("z (nm)", "y (nm)", 2))
    for row, pid in enumerate(ids):
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in boxes[pid - 1])
        inside = lab[box] == pid
        view = np.where(inside, cls[box], 0)
        centre = np.round(np.argwhere(inside).mean(axis=0)).astype(int)
        origin = np.array([s.start for s in box]) * voxel_nm
        for col, (xlabel, ylabel, cut) in enumerate(planes):
            ax = fig.add_subplot(len(ids), 4, 4 * row + col + 1)
            image = np.take(view, centre[cut], axis=cut)
            keep = [k for k in range(3) if k != cut]  # remaining axes, image rows then columns
            extent = [origin[keep[1]] - voxel_nm / 2, origin[keep[1]] + (image.shape[1] - 0.5) * voxel_nm,
                      origin[keep[0]] + (image.shape[0] - 0.5) * voxel_nm, origin[keep[0]] - voxel_nm / 2]
            ax.imshow(image, cmap=_CLASS_CMAP, vmin=0, vmax=3, extent=extent, interpolation="nearest")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(f"particle {pid}: {'yzx'[cut]} = {origin[cut] + centre[cut] * voxel_nm:.0f} nm",
                         fontsize=9)
        ax3 = fig.add_subplot(len(ids), 4, 4 * row + 4, projection="3d")
        pts = np.argwhere(inside)
        colours = np.array(["#bdbdbd", *CLASS_COLOURS])[view[inside]]
        xyz = origin + pts * voxel_nm
        ax3.scatter(xyz[:, 2], xyz[:, 1], xyz[:, 0], c=colours, s=6, depthshade=True)
        ax3.set_xlabel("x (nm)")
        ax3.set_ylabel("z (nm)")
        ax3.set_zlabel("y (nm)")
        ax3.set_box_aspect(np.ptp(xyz[:, [2, 1, 0]], axis=0) + voxel_nm)
    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(CLASS_COLOURS, CLASS_NAMES)],
               loc="outside lower center", ncols=3)
    return fig
