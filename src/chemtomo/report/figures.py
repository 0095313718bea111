"""Figures of the run that no algorithm package owns: projections, alignment, slices, 3D view.

Functions take plain arrays with their units and return ``matplotlib.figure.Figure`` objects; the
HTML report embeds them. Axes are in nm with colour bars and scale bars.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from ..chem.figures import CLASS_COLOURS as CHEM_CLASS_COLOURS

__all__ = ["plot_projection", "plot_alignment", "plot_orthoslices", "plot_class_slices", "plot_class_3d",
           "CLASS_COLOURS"]

#: Background white, then the classes in chem's colours (the paper's Fig. 4: red LFP-rich, green
#: mixed, blue FP-rich).
CLASS_COLOURS = ["#ffffff", *CHEM_CLASS_COLOURS]


def _extent_nm(shape, pixel_m):
    ny, nx = shape
    return [0, nx * pixel_m * 1e9, ny * pixel_m * 1e9, 0]


def _scale_bar(ax, pixel_m, shape, length_nm=None):
    width_nm = shape[1] * pixel_m * 1e9
    length_nm = length_nm or float(10 ** np.floor(np.log10(width_nm / 3)))
    h = shape[0] * pixel_m * 1e9
    x0 = width_nm * 0.05
    ax.plot([x0, x0 + length_nm], [h * 0.92] * 2, color="white", lw=3, solid_capstyle="butt")
    ax.text(x0 + length_nm / 2, h * 0.88, f"{length_nm:g} nm", color="white", ha="center", va="bottom", fontsize=8)


def plot_projection(transmission: np.ndarray, pixel_m: float, *, title: str = "") -> Figure:
    """Amplitude (as OD) and phase of a reconstructed complex projection."""
    fig = Figure(figsize=(9, 3.8), constrained_layout=True)
    axes = fig.subplots(1, 2)
    t = np.asarray(transmission)
    od = -np.log(np.maximum(np.abs(t) ** 2, 1e-6))
    for ax, img, label, cmap in ((axes[0], od, "optical density", "gray_r"),
                                 (axes[1], np.angle(t), "phase (rad)", "twilight")):
        im = ax.imshow(img, cmap=cmap, extent=_extent_nm(t.shape, pixel_m))
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
        fig.colorbar(im, ax=ax, label=label, shrink=0.85)
        _scale_bar(ax, pixel_m, t.shape)
    if title:
        fig.suptitle(title)
    return fig


def plot_alignment(angles_deg, shifts_px, rotation_deg, scale, residual_history=None,
                   max_update_history_px=None) -> Figure:
    """Alignment parameters per angle and the residual per iteration."""
    fig = Figure(figsize=(11, 3.6), constrained_layout=True)
    ax = fig.subplots(1, 3)
    a = np.asarray(angles_deg)
    s = np.asarray(shifts_px)
    ax[0].plot(a, s[:, 0], ".-", label="dy")
    ax[0].plot(a, s[:, 1], ".-", label="dx")
    ax[0].set_xlabel("tilt angle (°)")
    ax[0].set_ylabel("shift (px)")
    ax[0].legend()
    ax[1].plot(a, rotation_deg, ".-", color="C2", label="rotation (°)")
    ax[1].set_xlabel("tilt angle (°)")
    ax[1].set_ylabel("rotation (°)", color="C2")
    tw = ax[1].twinx()
    tw.plot(a, (np.asarray(scale) - 1) * 100, ".-", color="C3")
    tw.set_ylabel("scale − 1 (%)", color="C3")
    if residual_history is not None and len(residual_history):
        r = np.asarray(residual_history, np.float64)
        if r.ndim == 2:  # per-angle residuals; excluded angles are NaN
            r = np.array([np.mean(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan for row in r])
        ax[2].semilogy(np.arange(len(r)), r, "o-", label="mean residual")
        if max_update_history_px is not None:
            tw2 = ax[2].twinx()
            tw2.semilogy(np.arange(len(max_update_history_px)), np.maximum(max_update_history_px, 1e-4), "s--",
                         color="C1")
            tw2.set_ylabel("largest update (px)", color="C1")
        ax[2].set_xlabel("iteration")
        ax[2].set_ylabel("reprojection residual")
    else:
        ax[2].text(0.5, 0.5, "no iterative alignment", ha="center", va="center", transform=ax[2].transAxes)
        ax[2].set_axis_off()
    return fig


def _centre_z(volume: np.ndarray) -> int:
    """The z index (axis 1) holding most of the material: the support plane of flat particles."""
    prof = np.nansum(np.where(np.isfinite(volume), np.abs(volume), 0), axis=(0, 2))
    return int(np.argmax(prof)) if prof.any() else volume.shape[1] // 2


def plot_orthoslices(volume: np.ndarray, voxel_m: float, *, label: str = "μ (1/µm)", scale: float = 1e-6,
                     title: str = "") -> Figure:
    """Three orthogonal slices through a (ny, nz, nx) volume: y–x at the material's z, x–z, y–z."""
    v = np.asarray(volume, np.float64) * scale
    ny, nz, nx = v.shape
    iz, iy, ix = _centre_z(v), ny // 2, nx // 2
    fig = Figure(figsize=(11, 3.8), constrained_layout=True)
    ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [nx, nx, nz]})
    vmax = np.nanpercentile(v, 99.8) or 1.0
    panels = ((v[:, iz, :], f"y–x at z = {iz}", ("x (nm)", "y (nm)")),
              (v[iy, :, :], f"z–x at y = {iy}", ("x (nm)", "z (nm)")),
              (v[:, :, ix], f"y–z at x = {ix}", ("z (nm)", "y (nm)")))
    for a, (img, name, (xl, yl)) in zip(ax, panels):
        im = a.imshow(img, cmap="magma", vmin=0, vmax=vmax, extent=_extent_nm(img.shape, voxel_m))
        a.set_title(name, fontsize=9)
        a.set_xlabel(xl)
        a.set_ylabel(yl)
    fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_class_slices(labels: np.ndarray, voxel_m: float, *, n: int = 3) -> Figure:
    """y–x slices of the phase classes around the material's z (red LFP-rich, green mixed, blue FP-rich)."""
    lab = np.asarray(labels)
    iz = _centre_z((lab > 0).astype(np.float32))
    zs = [min(max(iz + d, 0), lab.shape[1] - 1) for d in range(-(n // 2), n - n // 2)]
    fig = Figure(figsize=(4 * n, 3.8), constrained_layout=True)
    ax = np.atleast_1d(fig.subplots(1, n))
    cmap = ListedColormap(CLASS_COLOURS)
    for a, z in zip(ax, zs):
        a.imshow(lab[:, z, :], cmap=cmap, vmin=0, vmax=3, interpolation="nearest",
                 extent=_extent_nm((lab.shape[0], lab.shape[2]), voxel_m))
        a.set_title(f"classes, z = {z}", fontsize=9)
        a.set_xlabel("x (nm)")
        a.set_ylabel("y (nm)")
    return fig


def plot_class_3d(labels: np.ndarray, voxel_m: float, *, max_points: int = 20000, seed: int = 0) -> Figure:
    """A 3D scatter of the sample's voxels coloured by class (subsampled to ``max_points``)."""
    lab = np.asarray(labels)
    idx = np.argwhere(lab > 0)
    rng = np.random.default_rng(seed)
    if len(idx) > max_points:
        idx = idx[rng.choice(len(idx), max_points, replace=False)]
    fig = Figure(figsize=(6, 5), constrained_layout=True)
    ax = fig.add_subplot(projection="3d")
    nm = voxel_m * 1e9
    for c in (1, 2, 3):
        sel = idx[lab[tuple(idx.T)] == c]
        if len(sel):
            ax.scatter(sel[:, 2] * nm, sel[:, 1] * nm, sel[:, 0] * nm, s=2, c=CLASS_COLOURS[c], depthshade=False,
                       label=("LFP-rich", "mixed", "FP-rich")[c - 1])
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("z (nm)")
    ax.set_zlabel("y (nm)")
    ax.legend(loc="upper left", fontsize=8)
    return fig
