"""Figure of a 2D spectral-stack fit: one map per component and the R-factor histogram."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from chemtomo.core import InputError

from .validate import R_FACTOR_GOOD

__all__ = ["plot_stack_fit"]


def plot_stack_fit(maps, names, r_factor, pixel_m: float, *, map_unit: str = "fitted amount (1 / reference unit)",
                   i0_mask=None, sample_mask=None, title: str = "2D XAS fit") -> Figure:
    """Maps of each fitted component, the R-factor map and its histogram.

    Parameters
    ----------
    maps : (n_components, ny, nx) float, NaN where not fitted
    names : n_components str, the components' names (reference columns)
    r_factor : (ny, nx) float, Σ(OD − fit)² / Σ OD² per pixel
    pixel_m : float, pixel size in metres (axes are drawn in µm)
    map_unit : str, colour-bar label of the component maps (e.g. "thickness (nm)")
    i0_mask : (ny, nx) bool, optional, outlined on the R-factor map (the I0 region)
    sample_mask : (ny, nx) bool, optional, the pixels the histogram counts (default: all fitted);
        empty pixels fit noise with noise (R ~ 1), so the paper's share is over sample pixels
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    m = np.asarray(maps, dtype=np.float64)
    r = np.asarray(r_factor, dtype=np.float64)
    if m.ndim != 3 or len(names) != m.shape[0] or r.shape != m.shape[1:]:
        raise InputError(f"maps {m.shape}, {len(names)} names and r_factor {r.shape} do not agree; expected "
                         "(n, ny, nx), n names and (ny, nx)")
    if not (np.isfinite(pixel_m) and pixel_m > 0):
        raise InputError(f"pixel_m must be a positive pixel size in metres, got {pixel_m!r}")
    n = m.shape[0]
    ny, nx = r.shape
    extent = (0.0, nx * pixel_m * 1e6, ny * pixel_m * 1e6, 0.0)
    ncol = n + 2
    fig = Figure(figsize=(3.2 * ncol, 3.3), layout="constrained")
    axes = fig.subplots(1, ncol)
    finite = m[np.isfinite(m)]
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    for k in range(n):
        ax = axes[k]
        im = ax.imshow(m[k], cmap="viridis", vmin=0.0, vmax=vmax if vmax > 0 else 1.0, extent=extent)
        ax.set_title(str(names[k]))
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
        fig.colorbar(im, ax=ax, shrink=0.8, label=map_unit)
    ax = axes[n]
    im = ax.imshow(r, cmap="magma", vmin=0.0, vmax=max(2 * R_FACTOR_GOOD, 1e-6), extent=extent)
    if i0_mask is not None:
        cy = (np.arange(ny) + 0.5) * pixel_m * 1e6
        cx = (np.arange(nx) + 0.5) * pixel_m * 1e6
        ax.contour(cx, cy, np.asarray(i0_mask, dtype=float), levels=[0.5], colors="cyan", linewidths=0.8)
    ax.set_title("R-factor" + (" (cyan: I0 region)" if i0_mask is not None else ""))
    ax.set_xlabel("x (µm)")
    fig.colorbar(im, ax=ax, shrink=0.8, label="R")
    ax = axes[n + 1]
    use = np.isfinite(r) if sample_mask is None else np.isfinite(r) & np.asarray(sample_mask, bool)
    rv = r[use]
    if rv.size:
        ax.hist(np.clip(rv, 0, 1), bins=50, range=(0, 1), color="0.4")
        share = float(np.mean(rv < R_FACTOR_GOOD))
        ax.axvline(R_FACTOR_GOOD, color="tab:red", lw=1)
        where = "sample pixels" if sample_mask is not None else "pixels"
        ax.set_title(f"R < {R_FACTOR_GOOD:g} in {share:.1%}\nof {rv.size} {where}", fontsize=9)
    ax.set_xlabel("R-factor")
    ax.set_ylabel("pixels")
    fig.suptitle(title)
    return fig
