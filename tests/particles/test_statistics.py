"""statistics: the paper's binomial numbers, n = 0, and size trends recovered with uncertainties."""

import math

import numpy as np
import pandas as pd
import pytest

from chemtomo.core import InputError
from chemtomo.particles import active_fraction, activity_trends


def test_reproduces_the_papers_binomial_numbers():
    f, s = active_fraction(25, 83)
    # paper: 30.1 ± 5.1 % (the (n − 1) estimator; with n the error would print as 5.0 %)
    assert (round(100 * f, 1), round(100 * s, 1)) == (30.1, 5.1)
    assert round(100 * math.sqrt(f * (1 - f) / 83), 1) == 5.0
    f, s = active_fraction(10, 83)
    # paper: 12.1 ± 3.6 %; 10/83 = 12.048 %, which the paper rounded via 12.05 to 12.1
    assert round(100 * s, 1) == 3.6
    assert abs(100 * f - 12.1) < 0.06


def test_no_particles_says_n_is_zero():
    af = active_fraction(0, 0)
    assert math.isnan(af[0]) and math.isnan(af[1])
    assert af.n_total == 0 and "n = 0" in str(af)
    # one particle: a fraction, but the (n − 1) variance is undefined
    f, s = active_fraction(1, 1)
    assert f == 1.0 and math.isnan(s)


@pytest.mark.parametrize("args, message", [
    ((5, 3), "n_active must lie in [0, n_total = 3]"),
    ((-1, 3), "n_active must lie in"),
    ((1, -2), "n_total must be >= 0"),
    ((2.5, 3), "n_active must be an integer count"),
])
def test_bad_counts_are_named(args, message):
    import re
    with pytest.raises(InputError, match=re.escape(message)):
        active_fraction(*args)


def _population(n=300, slope_facet=1.5, seed=1):
    """Facet area drives activity (logistic, slope per SD of log facet); thickness does not."""
    rng = np.random.default_rng(seed)
    facet = np.exp(rng.normal(np.log(8000.0), 0.6, n))
    thick = rng.uniform(10.0, 30.0, n)
    z = (np.log(facet) - np.log(facet).mean()) / np.log(facet).std()
    active = rng.random(n) < 1.0 / (1.0 + np.exp(-(-1.0 + slope_facet * z)))
    comp = np.where(active, rng.uniform(0.15, 0.8, n), rng.uniform(0.0, 0.1, n))
    return pd.DataFrame({"volume_nm3": facet * thick, "facet_area_nm2": facet, "thickness_nm": thick,
                         "active_15": active, "mean_fp_fraction": comp})


def test_trends_recover_a_facet_driven_activity():
    r = activity_trends(_population(), n_bootstrap=400, seed=0)
    assert r["n"] == 300
    fit = r["logistic"]["facet_area_nm2"]
    # the true slope 1.5 lies inside the fit's 95 % Wald interval (n = 300: se ≈ 0.2)
    assert fit["converged"] and fit["ci_low"] < 1.5 < fit["ci_high"]
    # thickness has no effect: its interval covers 0; facet area's is far from it
    thick = r["logistic"]["thickness_nm"]
    assert thick["ci_low"] < 0 < thick["ci_high"] and fit["p_value"] < 1e-6
    # "activity depends more on facet area than on volume": the paired bootstrap interval of the
    # difference of standardized slopes lies above 0 (volume = facet × an unrelated thickness)
    cmp = r["comparison"]["facet_area_nm2 - volume_nm3"]
    assert cmp["difference"] > 0 and cmp["ci_low"] > 0 and cmp["p_positive"] > 0.975
    # Spearman: positive for facet area with a bootstrap interval above 0, none for thickness
    assert r["spearman"]["facet_area_nm2"]["activity"]["ci_low"] > 0
    assert r["spearman"]["thickness_nm"]["activity"]["p_value"] > 0.01
    # binned active fraction rises from the smallest to the largest facet bin, by more than
    # the two bins' binomial errors combined (3σ)
    bins = r["bins"]["facet_area_nm2"]
    rise = bins.active_fraction.iloc[-1] - bins.active_fraction.iloc[0]
    assert rise > 3 * math.hypot(bins.active_fraction_sigma.iloc[-1], bins.active_fraction_sigma.iloc[0])
    assert bins.n.sum() == 300


def test_logistic_fit_matches_direct_likelihood_maximisation():
    from scipy.optimize import minimize
    table = _population(n=120, seed=4)
    r = activity_trends(table, by=("facet_area_nm2",), n_bootstrap=50)
    x = np.log(table.facet_area_nm2.to_numpy())
    z = (x - x.mean()) / x.std()
    y = table.active_15.to_numpy(float)
    nll = lambda b: np.sum(np.logaddexp(0, b[0] + b[1] * z) - y * (b[0] + b[1] * z))
    best = minimize(nll, [0.0, 0.0], method="BFGS").x
    # IRLS and BFGS converge to the same maximum; 1e-4 is BFGS's own tolerance on this problem
    assert r["logistic"]["facet_area_nm2"]["slope"] == pytest.approx(best[1], abs=1e-4)


def test_bootstrap_is_seeded():
    t = _population(n=80)
    a = activity_trends(t, n_bootstrap=100, seed=3)["comparison"]
    b = activity_trends(t, n_bootstrap=100, seed=3)["comparison"]
    assert a == b


def test_empty_table_gives_n_zero():
    cols = ["volume_nm3", "facet_area_nm2", "thickness_nm", "active_15", "mean_fp_fraction"]
    r = activity_trends(pd.DataFrame({c: [] for c in cols}))
    assert r["n"] == 0 and "n = 0" in str(r["active_fraction"])
    assert r["logistic"] == {} and r["bins"] == {}


def test_all_inactive_gives_no_slope():
    t = _population(n=50)
    t["active_15"] = False
    fit = activity_trends(t, n_bootstrap=20)["logistic"]["facet_area_nm2"]
    assert not fit["converged"] and math.isnan(fit["slope"])


def test_missing_column_is_named():
    with pytest.raises(InputError, match="lacks column"):
        activity_trends(pd.DataFrame({"volume_nm3": [1.0]}))


def test_empty_sample_flows_through_to_n_zero():
    # a volume with no sample: segment → measure → statistics give well-formed empty results
    from chemtomo.particles import measure, segment
    labels = segment(np.zeros((16, 16, 16), np.float32), 6.7e-9, threshold=0.5)
    table = measure(labels, np.full(labels.shape, np.nan, np.float32), 6.7e-9)
    assert len(table) == 0 and "active_15" in table.columns
    af = active_fraction(int(table.active_15.sum()), len(table))
    assert af.n_total == 0 and "n = 0" in str(af)
    assert activity_trends(table)["n"] == 0
