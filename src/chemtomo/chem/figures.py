"""Figures of the chemical analysis, as matplotlib ``Figure`` objects (no pyplot, no files).

The report stage saves them; here they are only drawn. Each function takes plain arrays and
returns a new :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from chemtomo.core import InputError

from .polar import reference_angles
from .statistics import CLASS_NAMES, MixtureFit, composition_histogram

__all__ = ["plot_correlation", "plot_composition_histogram", "plot_class_fractions", "plot_validation_maps",
           "plot_xanes_maps", "plot_joint_comparison", "CLASS_COLOURS"]

#: Colours of labels 1 (LFP-rich), 2 (mixed), 3 (FP-rich).
#: The paper's Fig. 4 colours: red LFP-rich, green mixed, blue FP-rich.
CLASS_COLOURS = ("tab:red", "tab:green", "tab:blue")


def plot_correlation(od_e1, od_e2, references, labels=None, *, energies_ev=(708.2, 710.2), bins: int = 128,
                     phase_names=("LiFePO4", "FePO4"), axis_label: str = "OD at {energy:g} eV (per voxel)",
                     title: str = "OD correlation plot (log counts)") -> Figure:
    """Correlation plot: 2D histogram of OD(E1) against OD(E2), coloured by voxel class.

    Parameters
    ----------
    od_e1, od_e2 : float arrays of one shape
        OD per voxel at E1 and E2 (voxels with non-finite ODs are left out).
    references : (2, 2) float
        Reference matrix; each phase's direction (its column) is drawn as a ray from the origin.
    labels : uint8 array of the same shape, optional
        Classes from :func:`classify`; each bin is coloured by the mix of classes in it and its
        brightness is the log of its count. Without labels the histogram is grey; label-0 voxels
        (outside the sample) are drawn in grey.
    energies_ev : (E1, E2)
        For the axis labels.
    bins : int
        Histogram bins per axis.
    phase_names : names of the reference columns, for the legend.
    axis_label : str
        Axis label, formatted with ``energy``; say what is plotted, e.g. "μ at {energy:g} eV (1/µm)"
        when the inputs are linear absorption coefficients rather than ODs per voxel.
    title : str
    """
    a = np.asarray(od_e1, dtype=np.float64)
    b = np.asarray(od_e2, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"od_e1 has shape {a.shape} but od_e2 has {b.shape}")
    angles = np.radians(reference_angles(references))
    lab = np.zeros(a.shape, np.uint8) if labels is None else np.asarray(labels)
    if lab.shape != a.shape:
        raise InputError(f"labels have shape {lab.shape} but the ODs have {a.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b, lab = a[keep], b[keep], lab[keep]
    if a.size == 0:
        raise InputError("plot_correlation: no voxel has finite ODs at both energies")
    top = float(max(np.quantile(a, 0.999), np.quantile(b, 0.999), 1e-12)) * 1.05
    low = float(min(np.quantile(a, 0.001), np.quantile(b, 0.001), 0.0))
    edges = np.linspace(low, top, bins + 1)
    colours = np.array([to_rgb("0.5")] + [to_rgb(c) for c in CLASS_COLOURS])
    hists = np.stack([np.histogram2d(a[lab == c], b[lab == c], bins=(edges, edges))[0] for c in range(4)])
    total = hists.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rgb = np.einsum("cij,ck->ijk", hists, colours) / total[..., None]
    level = np.sqrt(np.log1p(total) / np.log1p(total.max()))   # sqrt: sparse classes stay visible
    rgba = np.concatenate([np.nan_to_num(rgb), level[..., None]], axis=-1)

    fig = Figure(figsize=(5.2, 4.8))
    ax = fig.add_subplot()
    ax.imshow(np.transpose(rgba, (1, 0, 2)), origin="lower", extent=(low, top, low, top), aspect="equal",
              interpolation="nearest")
    for angle, name, style in zip(angles, phase_names, ("--", ":")):
        ax.plot([0, top * np.cos(angle) * 1.5], [0, top * np.sin(angle) * 1.5], "k" + style, lw=1.2,
                label=f"pure {name} ({np.degrees(angle):.1f}°)")
    for c, name in enumerate(CLASS_NAMES, start=1):
        ax.plot([], [], "s", color=CLASS_COLOURS[c - 1], label=name)
    ax.set_xlim(low, top)
    ax.set_ylim(low, top)
    ax.set_xlabel(axis_label.format(energy=energies_ev[0]))
    ax.set_ylabel(axis_label.format(energy=energies_ev[1]))
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_composition_histogram(fraction, fit: MixtureFit | None = None, *, bins: int = 50) -> Figure:
    """Histogram of per-voxel FePO4 fractions with the two-component mixture fit drawn over it.

    The fit's density is scaled to counts per bin (values clipped at 0 and 1 pile into the end
    bins; the fitted Gaussians show the unclipped distribution).
    """
    counts, edges = composition_histogram(fraction, bins)
    fig = Figure(figsize=(5.6, 3.8))
    ax = fig.add_subplot()
    ax.stairs(counts, edges * 100, fill=True, color="0.75", label="voxels")
    if fit is not None:
        x = np.linspace(-0.2, 1.2, 701)
        scale = counts.sum() * (edges[1] - edges[0])
        ax.plot(x * 100, fit.pdf(x) * scale, "k-", lw=1.5, label="two-Gaussian fit")
        for mu, sd, w, colour in zip(fit.centres, fit.rms_widths, fit.weights, (CLASS_COLOURS[0], CLASS_COLOURS[2])):
            z = (x - mu) / sd
            ax.plot(x * 100, scale * w * np.exp(-0.5 * z * z) / (sd * np.sqrt(2 * np.pi)), "--", color=colour,
                    label=rf"$x_\mathrm{{FP}}$ = {100 * mu:.1f} ± {100 * sd:.1f} %")
    ax.set_xlim(-5, 105)
    ax.set_xlabel(r"FePO$_4$ fraction $x_\mathrm{FP}$ (%)")
    ax.set_ylabel("voxels per bin")
    ax.set_title("Composition histogram")
    ax.legend(fontsize="small")
    return fig


def plot_class_fractions(shares: dict[str, float], thresholds=(0.3, 0.7)) -> Figure:
    """Bar chart of the share of sample voxels in each class (from :func:`class_fractions`)."""
    missing = [n for n in CLASS_NAMES if n not in shares]
    if missing:
        raise InputError(f"shares lack classes {missing}; expected keys {list(CLASS_NAMES)}")
    lo, hi = thresholds
    x_fp = r"$x_\mathrm{FP}$"
    ticks = [f"LFP-rich\n({x_fp} < {100 * lo:g} %)", f"mixed\n({100 * lo:g}–{100 * hi:g} %)",
             f"FP-rich\n({x_fp} > {100 * hi:g} %)"]
    values = [100 * shares[n] for n in CLASS_NAMES]
    fig = Figure(figsize=(4.8, 3.6))
    ax = fig.add_subplot()
    bars = ax.bar(ticks, values, color=CLASS_COLOURS)
    ax.bar_label(bars, fmt="%.1f %%")
    ax.set_ylabel("share of sample voxels (%)")
    ax.set_ylim(0, max(values + [1.0]) * 1.15)
    ax.set_title("Phase classes")
    return fig


def plot_validation_maps(map_3d, map_2d, r_factor=None, *, pixel_m: float | None = None) -> Figure:
    """The projected 3D fraction map and the 2D XAS map side by side (and the R-factor map).

    Parameters
    ----------
    map_3d, map_2d : (ny, nx) float, FePO4 fraction, NaN outside
    r_factor : (ny, nx) float, optional, LCF R-factor per pixel
    pixel_m : float, optional, pixel size in metres (axes in nm; pixels otherwise)
    """
    a = np.asarray(map_3d, dtype=np.float64)
    b = np.asarray(map_2d, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"map_3d {a.shape} and map_2d {b.shape} must be 2D maps of one shape")
    panels = [(a, "3D map projected along z", "FePO4 fraction (%)"), (b, "2D XAS linear-combination fit",
                                                                     "FePO4 fraction (%)")]
    if r_factor is not None:
        r = np.asarray(r_factor, dtype=np.float64)
        if r.shape != a.shape:
            raise InputError(f"r_factor has shape {r.shape} but the maps have {a.shape}")
        panels.append((r, "LCF R-factor", "R-factor"))
    ny, nx = a.shape
    if pixel_m is not None:
        extent = (0, nx * pixel_m * 1e9, ny * pixel_m * 1e9, 0)
        unit = "nm"
    else:
        extent = (0, nx, ny, 0)
        unit = "pixels"
    fig = Figure(figsize=(4.2 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (img, title, clabel) in zip(axes, panels):
        if clabel == "R-factor":
            im = ax.imshow(img, extent=extent, cmap="magma", vmin=0, vmax=max(0.3, float(np.nanmax(img)) if
                                                                               np.isfinite(img).any() else 0.3))
        else:
            im = ax.imshow(100 * img, extent=extent, cmap="coolwarm", vmin=0, vmax=100)
        ax.set_title(title)
        ax.set_xlabel(f"x ({unit})")
        ax.set_ylabel(f"y ({unit})")
        fig.colorbar(im, ax=ax, label=clabel, shrink=0.85)
    return fig


def plot_xanes_maps(edge_ev, white_line_ev, *, voxel_m: float | None = None,
                    reference_edges_ev: dict[str, float] | None = None) -> Figure:
    """Edge-position and white-line-energy maps: a y–x slice of each and the histogram of each.

    Parameters
    ----------
    edge_ev, white_line_ev : (ny, nz, nx) or (ny, nx) float, eV, NaN where undefined
        From :func:`edge_position` and :func:`white_line_energy`. For volumes the slice is the
        z holding the most defined voxels.
    voxel_m : float, optional
        Voxel (pixel) size in metres: axes in nm (pixels otherwise).
    reference_edges_ev : {phase: eV}, optional
        The pure phases' edge positions, drawn as vertical lines on the edge histogram.
    """
    edge = np.asarray(edge_ev, dtype=np.float64)
    wl = np.asarray(white_line_ev, dtype=np.float64)
    if edge.shape != wl.shape or edge.ndim not in (2, 3):
        raise InputError(f"edge_ev {edge.shape} and white_line_ev {wl.shape} must be maps or volumes of one shape")
    if edge.ndim == 3:
        iz = int(np.argmax(np.isfinite(edge).sum(axis=(0, 2))))
        edge_img, wl_img, where = edge[:, iz, :], wl[:, iz, :], f" (y–x at z = {iz})"
    else:
        edge_img, wl_img, where = edge, wl, ""
    ny, nx = edge_img.shape
    scale, unit = (voxel_m * 1e9, "nm") if voxel_m else (1.0, "pixels")
    extent = (0, nx * scale, ny * scale, 0)
    fig = Figure(figsize=(15, 3.8), layout="constrained")
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1.2, 1.2, 1, 1]})
    for ax, img, vals, title in ((axes[0], edge_img, edge, "edge position"),
                                 (axes[1], wl_img, wl, "white-line energy")):
        finite = vals[np.isfinite(vals)]
        lo, hi = (np.percentile(finite, [5, 95]) if finite.size else (0.0, 1.0))
        im = ax.imshow(img, extent=extent, cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-3))
        ax.set_title(title + where, fontsize=9)
        ax.set_xlabel(f"x ({unit})")
        ax.set_ylabel(f"y ({unit})")
        fig.colorbar(im, ax=ax, label="energy (eV)", shrink=0.85)
    for ax, vals, title in ((axes[2], edge, "edge position (eV)"), (axes[3], wl, "white-line energy (eV)")):
        finite = vals[np.isfinite(vals)]
        if finite.size:
            ax.hist(finite, bins=60, color="0.4")
        ax.set_xlabel(title)
        ax.set_ylabel("voxels")
    for (name, e), colour in zip((reference_edges_ev or {}).items(), ("tab:red", "tab:blue", "tab:green")):
        axes[2].axvline(e, color=colour, linestyle="--", label=f"{name} {e:.1f} eV")
    if reference_edges_ev:
        axes[2].legend(fontsize=8)
    return fig


def plot_joint_comparison(joint_fraction, two_step_fraction, voxel_m: float, *, z: int | None = None) -> Figure:
    """The FePO4 fraction of the joint and the two-step method side by side, and their difference.

    Parameters
    ----------
    joint_fraction, two_step_fraction : (ny, nz, nx) float, NaN outside the sample
    voxel_m : float
        Voxel size in metres (axes in nm).
    z : int, optional
        The y–x slice shown; default the z with the most sample voxels in either map.
    """
    a = np.asarray(joint_fraction, dtype=np.float32)
    b = np.asarray(two_step_fraction, dtype=np.float32)
    if a.ndim != 3 or a.shape != b.shape:
        raise InputError(f"plot_joint_comparison: two (ny, nz, nx) fractions of one shape expected, got {a.shape} "
                         f"and {b.shape}")
    if z is None:
        z = int(np.argmax(np.sum(np.isfinite(a) | np.isfinite(b), axis=(0, 2))))
    nm = voxel_m * 1e9
    extent = (0, a.shape[2] * nm, a.shape[0] * nm, 0)
    fig = Figure(figsize=(13, 3.9), constrained_layout=True)
    ax = fig.subplots(1, 3)
    for axis, img, title in ((ax[0], a, "joint"), (ax[1], b, "two-step")):
        im = axis.imshow(img[:, z, :], cmap="coolwarm", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        axis.set_title(f"FePO4 fraction, {title} (z = {z})", fontsize=9)
        fig.colorbar(im, ax=axis, shrink=0.8, label="x_FP")
    diff = a[:, z, :] - b[:, z, :]
    lim = float(np.nanmax(np.abs(diff))) if np.any(np.isfinite(diff)) else 1.0
    im = ax[2].imshow(diff, cmap="PuOr", vmin=-lim, vmax=lim, extent=extent, interpolation="nearest")
    ax[2].set_title("joint − two-step", fontsize=9)
    fig.colorbar(im, ax=ax[2], shrink=0.8, label="Δ x_FP")
    for axis in ax:
        axis.set_xlabel("x (nm)")
        axis.set_ylabel("y (nm)")
    return fig
