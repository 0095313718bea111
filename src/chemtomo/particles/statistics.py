"""Population statistics of particle activity: binomial errors, size trends, logistic fits.

Place in the flow (DESIGN.md): the table of :func:`chemtomo.particles.measure` (one row per
particle) → the fraction of active particles with its binomial error, and how activity and mean
composition depend on particle volume, ac-facet area and thickness, each with an uncertainty.

The paper's numbers (25 of 83 active: 30.1 ± 5.1 %; 10 of 83: 12.1 ± 3.6 %) come from the
binomial standard error with the sample (n − 1) variance, σ = √(p(1 − p)/(n − 1)):
25/83 gives 0.3012 ± 0.0507 (the n-denominator √(p(1 − p)/n) gives 0.0504, which rounds to
5.0 %, not the paper's 5.1 %); 10/83 gives 0.1205 ± 0.0360 with either denominator (0.0357 with
n). The paper prints 12.1 % for 10/83 = 12.048 %, i.e. rounded twice (12.048 → 12.05 → 12.1).
"""

from __future__ import annotations

import logging
import math
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import special

from ..core.errors import InputError

__all__ = ["ActiveFraction", "active_fraction", "activity_trends"]

log = logging.getLogger(__name__)


class ActiveFraction(tuple):
    """``(fraction, sigma)`` of active particles, also carrying ``n_active`` and ``n_total``.

    Unpacks as a pair: ``f, s = active_fraction(25, 83)``. ``str()`` says ``n = 0`` when there
    were no particles (fraction and sigma are then NaN).
    """

    def __new__(cls, fraction: float, sigma: float, n_active: int, n_total: int):
        self = super().__new__(cls, (fraction, sigma))
        self.n_active = n_active
        self.n_total = n_total
        return self

    @property
    def fraction(self) -> float:
        return self[0]

    @property
    def sigma(self) -> float:
        return self[1]

    def __str__(self) -> str:
        if self.n_total == 0:
            return "no particles (n = 0): active fraction undefined"
        return (f"{self.n_active} of {self.n_total} active: "
                f"{100 * self.fraction:.1f} ± {100 * self.sigma:.1f} % (binomial, 1σ)")

    def __repr__(self) -> str:
        return f"ActiveFraction(fraction={self[0]!r}, sigma={self[1]!r}, n_active={self.n_active}, n_total={self.n_total})"


def active_fraction(n_active: int, n_total: int) -> ActiveFraction:
    """Fraction of active particles with its binomial one-sigma error.

    Parameters
    ----------
    n_active : int
        Particles called active, 0 ≤ n_active ≤ n_total.
    n_total : int
        Particles counted, ≥ 0.

    Returns
    -------
    ActiveFraction
        A ``(fraction, sigma)`` pair with ``fraction = n_active / n_total`` and
        ``sigma = √(fraction (1 − fraction) / (n_total − 1))``; also ``.n_active``, ``.n_total``.
        n_total = 0 gives (nan, nan) and its ``str`` says n = 0; n_total = 1 gives a NaN sigma
        (the sample variance needs two particles).

    Notes
    -----
    The (n − 1) denominator is the one that reproduces the paper: 25/83 → 0.301 ± 0.051 and
    10/83 → 0.120 ± 0.036 (the paper prints 12.1 %, see the module notes). The n denominator
    would give ± 0.050 for 25/83.

    Examples
    --------
    >>> f, s = active_fraction(25, 83)
    >>> round(f, 3), round(s, 3)
    (0.301, 0.051)
    >>> print(active_fraction(0, 0))
    no particles (n = 0): active fraction undefined
    """
    for name, value in (("n_active", n_active), ("n_total", n_total)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputError(f"active_fraction: {name} must be an integer count, got {value!r}")
    if n_total < 0:
        raise InputError(f"active_fraction: n_total must be >= 0, got {n_total}")
    if not 0 <= n_active <= n_total:
        raise InputError(f"active_fraction: n_active must lie in [0, n_total = {n_total}], got {n_active}")
    n_active, n_total = int(n_active), int(n_total)
    if n_total == 0:
        log.info("active_fraction: n = 0 particles; fraction and sigma undefined")
        return ActiveFraction(math.nan, math.nan, 0, 0)
    p = n_active / n_total
    sigma = math.sqrt(p * (1.0 - p) / (n_total - 1)) if n_total > 1 else math.nan
    return ActiveFraction(p, sigma, n_active, n_total)


def activity_trends(table: pd.DataFrame, by=("volume_nm3", "facet_area_nm2", "thickness_nm"),
                    active_col: str = "active_15", *, n_bins: int = 5, n_bootstrap: int = 1000,
                    seed=0) -> dict:
    """How particle activity and composition depend on size, each number with an uncertainty.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per particle (from :func:`measure`), with the columns in ``by``, ``active_col``
        and ``mean_fp_fraction``.
    by : sequence of str
        Size columns to test (positive values; analysed on a log scale).
    active_col : str
        Boolean column that says which particles are active.
    n_bins : int
        Number of equal-count bins per size column.
    n_bootstrap : int
        Bootstrap resamples of the particles (with replacement) for the confidence intervals.
    seed : int or numpy.random.Generator
        Seeds the bootstrap.

    Returns
    -------
    dict with keys

    ``n``, ``n_active``, ``active_fraction``
        Counts and the :func:`active_fraction` pair (``n = 0``: NaN and empty parts below).
    ``bins``
        ``{column: DataFrame}`` with one row per bin: ``lo``, ``hi`` (bin edges, the column's
        unit), ``n``, ``n_active``, ``active_fraction``, ``active_fraction_sigma`` (binomial),
        ``mean_fp_fraction`` and ``mean_fp_fraction_sigma`` (standard error over the bin's
        particles).
    ``spearman``
        ``{column: {"activity": {...}, "composition": {...}}}``, each with ``rho``, ``p_value``
        (scipy.stats.spearmanr) and ``ci_low``, ``ci_high`` (2.5 and 97.5 bootstrap percentiles).
    ``logistic``
        ``{column: {...}}``: fit of P(active) = 1/(1 + exp(−(b₀ + b₁ z))) with z the
        standardized log of the column (so b₁ is the change in log-odds per standard deviation
        of log size and slopes of different columns compare directly): ``intercept``, ``slope``,
        ``slope_se`` and ``ci_low``/``ci_high`` (Wald, ±1.96 se from the inverse Hessian),
        ``p_value`` (Wald), ``converged`` (False under complete separation, when the maximum
        likelihood slope is infinite), ``boot_ci_low``/``boot_ci_high`` (bootstrap).
    ``comparison``
        ``{"<b> - <a>": {...}}`` for every pair of columns a before b in ``by``: ``difference``
        of the standardized slopes, bootstrap ``ci_low``/``ci_high`` (paired: the same resampled
        particles for both), and ``p_positive``, the bootstrap share of resamples where b's
        slope exceeds a's. With the default ``by``, ``"facet_area_nm2 - volume_nm3"`` > 0 with
        a CI above zero says "activity depends more on facet area than on volume".

    Raises
    ------
    InputError
        Missing columns, non-positive sizes, n_bins or n_bootstrap < 1.
    """
    by = tuple(by)
    if not by:
        raise InputError("activity_trends: by must name at least one size column")
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"activity_trends: table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in (*by, active_col, "mean_fp_fraction") if c not in table.columns]
    if missing:
        raise InputError(f"activity_trends: table lacks column(s) {missing}; it has {list(table.columns)}")
    if int(n_bins) < 1 or int(n_bootstrap) < 1:
        raise InputError(f"activity_trends: n_bins and n_bootstrap must be >= 1, got {n_bins}, {n_bootstrap}")
    sizes = {c: table[c].to_numpy(dtype=np.float64) for c in by}
    for c, x in sizes.items():
        if np.any(~np.isfinite(x)) or np.any(x <= 0):
            raise InputError(f"activity_trends: column {c} must hold positive finite sizes")
    active = table[active_col].to_numpy(dtype=bool)
    composition = table["mean_fp_fraction"].to_numpy(dtype=np.float64)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    n = int(active.size)
    result = {"n": n, "n_active": int(active.sum()),
              "active_fraction": active_fraction(int(active.sum()), n),
              "bins": {}, "spearman": {}, "logistic": {}, "comparison": {}}
    if n == 0:
        log.info("activity_trends: n = 0 particles; no trends")
        return result

    boot = rng.integers(0, n, size=(int(n_bootstrap), n))
    slopes_boot = {}
    for c in by:
        x = sizes[c]
        result["bins"][c] = _binned(x, active, composition, int(n_bins))
        result["spearman"][c] = {
            "activity": _spearman(x, active.astype(np.float64), boot),
            "composition": _spearman(x, composition, boot),
        }
        z = _standardize(np.log(x))
        fit = _logistic(z, active.astype(np.float64))
        slopes_boot[c] = _logistic_batch(z[boot], active.astype(np.float64)[boot])
        lo, hi = np.nanpercentile(slopes_boot[c], [2.5, 97.5]) if np.isfinite(slopes_boot[c]).any() else (np.nan,) * 2
        fit.update(boot_ci_low=float(lo), boot_ci_high=float(hi))
        result["logistic"][c] = fit
    for a, b in combinations(by, 2):
        diff = slopes_boot[b] - slopes_boot[a]
        ok = np.isfinite(diff)
        lo, hi = np.percentile(diff[ok], [2.5, 97.5]) if ok.any() else (np.nan, np.nan)
        result["comparison"][f"{b} - {a}"] = {
            "difference": result["logistic"][b]["slope"] - result["logistic"][a]["slope"],
            "ci_low": float(lo), "ci_high": float(hi),
            "p_positive": float(np.mean(diff[ok] > 0)) if ok.any() else np.nan,
        }
    return result


def _standardize(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else v - v.mean()


def _binned(x, active, composition, n_bins) -> pd.DataFrame:
    """Equal-count bins of x: active fraction (binomial) and mean composition (standard error)."""
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:
        edges = np.array([x.min(), x.max()])
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    rows = []
    for k in range(edges.size - 1):  # one iteration per bin
        inside = which == k
        m = int(inside.sum())
        f, s = active_fraction(int(active[inside].sum()), m)
        comp = composition[inside]
        comp = comp[np.isfinite(comp)]
        mean = float(comp.mean()) if comp.size else np.nan
        sem = float(comp.std(ddof=1) / math.sqrt(comp.size)) if comp.size > 1 else np.nan
        rows.append({"lo": edges[k], "hi": edges[k + 1], "n": m, "n_active": int(active[inside].sum()),
                     "active_fraction": f, "active_fraction_sigma": s,
                     "mean_fp_fraction": mean, "mean_fp_fraction_sigma": sem})
    return pd.DataFrame(rows)


def _spearman(x, y, boot) -> dict:
    ok = np.isfinite(y)
    if ok.sum() < 3 or np.all(y[ok] == y[ok][0]) or np.all(x[ok] == x[ok][0]):
        return {"rho": np.nan, "p_value": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    # imported here, not at the top: importing scipy.stats takes 0.3 s of every run's start
    from scipy import stats

    res = stats.spearmanr(x[ok], y[ok])
    rx = stats.rankdata(x[boot], axis=1)
    ry = stats.rankdata(y[boot], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    lo, hi = np.nanpercentile(rho, [2.5, 97.5]) if np.isfinite(rho).any() else (np.nan, np.nan)
    return {"rho": float(res.statistic), "p_value": float(res.pvalue), "ci_low": float(lo), "ci_high": float(hi)}


_MAX_ITER = 50
_MAX_SLOPE = 50.0  # |slope| beyond this per SD of log size means separated data: no finite MLE


def _logistic(z, y) -> dict:
    """Maximum-likelihood logistic fit by IRLS, Wald errors from the inverse Hessian."""
    nan = {"intercept": np.nan, "slope": np.nan, "slope_se": np.nan, "ci_low": np.nan,
           "ci_high": np.nan, "p_value": np.nan, "converged": False}
    if y.min() == y.max():
        return nan  # all active or none: the slope is not identified
    beta, cov, converged = _irls(z[None], y[None])
    b0, b1 = float(beta[0, 0]), float(beta[0, 1])
    if not converged[0]:
        return {**nan, "intercept": b0, "slope": b1}
    se = math.sqrt(cov[0, 1, 1])
    return {"intercept": b0, "slope": b1, "slope_se": se, "ci_low": b1 - 1.96 * se,
            "ci_high": b1 + 1.96 * se, "p_value": float(2 * special.ndtr(-abs(b1) / se)),
            "converged": True}


def _logistic_batch(z, y) -> np.ndarray:
    """Slopes of independent logistic fits, one per row of z and y (NaN where undefined)."""
    beta, _, converged = _irls(z, y)
    slopes = beta[:, 1].copy()
    slopes[~converged] = np.nan
    return slopes


def _irls(z, y):
    """Batched Newton–Raphson (IRLS) for P = σ(b₀ + b₁ z); z, y (n_fits, n)."""
    n_fits = z.shape[0]
    beta = np.zeros((n_fits, 2))
    cov = np.full((n_fits, 2, 2), np.nan)
    converged = np.zeros(n_fits, bool)
    degenerate = (y.min(axis=1) == y.max(axis=1)) | (z.std(axis=1) == 0)
    for _ in range(_MAX_ITER):
        eta = beta[:, :1] + beta[:, 1:] * z
        p = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        w = np.maximum(p * (1 - p), 1e-12)
        grad = np.stack([(y - p).sum(1), ((y - p) * z).sum(1)], axis=1)
        h = np.empty((n_fits, 2, 2))
        h[:, 0, 0] = w.sum(1)
        h[:, 0, 1] = h[:, 1, 0] = (w * z).sum(1)
        h[:, 1, 1] = (w * z * z).sum(1)
        det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] ** 2
        safe = np.where(det > 0, det, 1.0)
        inv = np.stack([np.stack([h[:, 1, 1], -h[:, 0, 1]], 1), np.stack([-h[:, 0, 1], h[:, 0, 0]], 1)], 1)
        inv /= safe[:, None, None]
        step = np.einsum("fij,fj->fi", inv, grad)
        beta += np.where((det > 0)[:, None], step, 0.0)
        cov = inv
        if np.all(np.abs(step).max(axis=1) < 1e-8):
            break
    converged = (np.abs(step).max(axis=1) < 1e-6) & (np.abs(beta[:, 1]) < _MAX_SLOPE) & ~degenerate
    return beta, cov, converged
