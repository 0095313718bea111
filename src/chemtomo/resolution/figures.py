"""Figure of an FRC/FSC curve: correlation and threshold against spatial frequency.

Matplotlib's object API only (``matplotlib.figure.Figure``), so it works under any backend,
in a headless pipeline as in a notebook; nothing is shown or written here (``report/`` saves).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ..core.containers import Curve
from ..core.errors import InputError

__all__ = ["plot_curve"]

_THRESHOLD_LABELS = {"half-bit": "½-bit threshold", "1/7": "1/7 threshold"}


def _half_period_nm(f_per_nm: float) -> float:
    """Half-period 1 / (2 f) in nm for a spatial frequency f in 1/nm."""
    return 1.0 / (2.0 * f_per_nm)


def _half_period_ticks(f_max_per_nm: float) -> tuple[list[float], list[str]]:
    """Positions (1/nm) and labels (nm) of round half-periods inside (0, f_max], at most 6."""
    periods = [p * 10.0**e for e in range(-1, 5) for p in (1, 1.5, 2, 3, 5)]
    # Long periods crowd towards zero frequency: label only down to a tenth of f_max.
    chosen = [p for p in periods if 0.1 * f_max_per_nm <= _half_period_nm(p) <= f_max_per_nm][:6]
    return [_half_period_nm(p) for p in chosen], [f"{p:g}" for p in chosen]


def plot_curve(curve: Curve, ax=None, title: str | None = None) -> Figure:
    """Plot a resolution curve with its threshold and the resolution marked.

    Parameters
    ----------
    curve : Curve
        From :func:`chemtomo.resolution.frc`, :func:`~chemtomo.resolution.fsc` or
        :func:`~chemtomo.resolution.split_half_fsc`.
    ax : matplotlib Axes, optional
        Where to draw; a new ``Figure`` with one Axes is made when omitted.
    title : str, optional
        Axes title; default "Fourier correlation".

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes. Bottom axis: spatial frequency in 1/nm; top axis: the
        half-period 1/(2 f) in nm; the crossing is marked by a vertical line and the
        resolution printed in nm (or the Nyquist bound when the curve never crosses).

    Raises
    ------
    InputError
        ``curve`` is not a Curve or its arrays differ in length or are empty.

    Examples
    --------
    >>> from chemtomo.resolution import frc
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((64, 64)); b = a + rng.standard_normal((64, 64))
    >>> fig = plot_curve(frc(a, b, 10e-9), title="FRC")
    >>> fig.axes[0].get_xlabel()
    'spatial frequency (1/nm)'
    """
    if not isinstance(curve, Curve):
        raise InputError(f"plot_curve: curve must be a chemtomo.core.Curve, got {type(curve).__name__}")
    f_nm = np.asarray(curve.frequency_per_m, dtype=np.float64) * 1e-9
    corr = np.asarray(curve.correlation, dtype=np.float64)
    thr = np.asarray(curve.threshold, dtype=np.float64)
    if f_nm.size == 0 or corr.shape != f_nm.shape or thr.shape != f_nm.shape:
        raise InputError(f"plot_curve: curve arrays must be non-empty and of one length, got frequency "
                         f"{f_nm.shape}, correlation {corr.shape}, threshold {thr.shape}")

    if ax is None:
        fig = Figure(figsize=(5.5, 4.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure(root=True) if hasattr(ax, "get_figure") else ax.figure
    label = _THRESHOLD_LABELS.get(curve.threshold_name, f"{curve.threshold_name} threshold")
    ax.axhline(0.0, color="0.8", linewidth=0.8)
    ax.plot(f_nm, corr, color="C0", marker="o", markersize=2.5, linewidth=1.2, label="correlation")
    ax.plot(f_nm, thr, color="C3", linestyle="--", linewidth=1.2, label=label)

    if math.isfinite(curve.resolution_m):
        f_cross = 1e-9 / (2.0 * curve.resolution_m)
        ax.axvline(f_cross, color="0.3", linestyle=":", linewidth=1.0)
        ax.plot([f_cross], [np.interp(f_cross, f_nm, thr)], marker="o", color="k", markersize=5)
        text = f"resolution {curve.resolution_m * 1e9:.1f} nm ({label.split()[0]})"
    else:
        text = (f"no crossing up to Nyquist: resolution ≤ {_half_period_nm(f_nm[-1]):.1f} nm")
    ax.text(0.97, 0.62, text, transform=ax.transAxes, ha="right", va="center",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})

    ax.set_xlim(0.0, f_nm[-1] * 1.02)
    finite = corr[np.isfinite(corr)]
    ax.set_ylim(min(-0.1, float(finite.min()) - 0.05) if finite.size else -0.1, 1.05)
    ax.set_xlabel("spatial frequency (1/nm)")
    ax.set_ylabel("correlation")
    ax.set_title(title if title is not None else "Fourier correlation")
    top = ax.secondary_xaxis("top")
    ticks, labels = _half_period_ticks(f_nm[-1])
    top.set_xticks(ticks, labels=labels)
    top.set_xlabel("half-period 1/(2f) (nm)")
    ax.legend(loc="lower left", frameon=False)
    return fig
