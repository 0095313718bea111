"""Shift AND scale between energies (issue 24, part 1) on the held-out generator of
``heldout_energies.py`` (analytic projections on each energy's own pixel grid, independent of
chemtomo.simulate): per-energy drift, pixel sizes differing by up to 1.5 %, per-energy noise."""

from functools import lru_cache

import numpy as np
import pytest

from chemtomo.align import register_energies
from chemtomo.align.energies import EnergyRegistration, register_energies_similarity
from chemtomo.core.errors import InputError

from heldout_energies import heldout_series, registration_error_px


@lru_cache(maxsize=1)
def _series():
    # seed 104 of benchmarks/energy_registration.py's held-out seeds (never used for tuning);
    # 20 angles instead of 30 to keep the test to seconds
    return heldout_series(104, n_angles=20)


def test_scale_estimated_and_error_below_shift_only():
    tilts, angles, truth = _series()
    shape = tilts[truth["reference_energy"]].shape[1:]
    r = register_energies_similarity(tilts, angles, n_groups=4)
    assert isinstance(r, EnergyRegistration) and r.scale_estimated
    ones = {e: 1.0 for e in tilts}
    plain = registration_error_px(shape, register_energies(tilts, angles), ones, truth)["all"]
    sim = registration_error_px(shape, r.offsets_px, r.pixel_ratio, truth)["all"]
    # Ignoring a 0.6–1.5 % pixel-size change costs scale × distance from the centre: ≈ 0.27 px RMS
    # on this 72 px field (measured on every held-out seed 100–109 and 200–209, 0.267–0.277).
    # Estimating the scale brings it to ≤ 0.05 px on those seeds with 30 angles (0.019 on this
    # one; benchmarks/energy_registration.py); with 20 angles the noise part grows by √1.5, so
    # 0.06 px: a scale that is not estimated (or has the wrong sign) fails by far.
    assert plain > 0.2
    assert sim < 0.06, (sim, plain)
    for e in tilts:
        if e == truth["reference_energy"]:
            continue
        # |k̂ − k| measured ≤ 0.0017 on the held-out seeds with 30 angles (the former estimate:
        # ≤ 0.0057, see docs/results/fidelity.md); 0.003 leaves room for 20 angles and fails the
        # former estimate's worst cases and any estimator that ignores the 0.015 change
        assert abs(r.pixel_ratio[e] - truth["pixel_ratio"][e]) < 0.003
        assert np.all(np.isfinite(r.offsets_sigma_px[e])) and np.all(r.offsets_sigma_px[e] > 0)
        assert np.isfinite(r.pixel_ratio_sigma[e]) and r.pixel_ratio_sigma[e] > 0
    assert "pixel ratio" in r.summary()


def test_shift_only_mode_matches_register_energies():
    tilts, angles, truth = _series()
    r = register_energies_similarity(tilts, angles, estimate_scale=False, n_groups=0,
                                     pixel_m=truth["pixel_m"])
    off = register_energies(tilts, angles, pixel_m=truth["pixel_m"])
    for e in tilts:
        assert r.pixel_ratio[e] == pytest.approx(truth["pixel_ratio"][e])
        # with the true pixel sizes given both are joint phase correlations of the same images
        # (cubic vs linear resampling): each errs by the contrast-dependent bias of phase
        # correlation, 0.01–0.05 px per axis measured here (0.06 px max), plus noise ≪ 0.01 px
        np.testing.assert_allclose(r.offsets_px[e], truth["offsets_px"][e], atol=0.08)
        np.testing.assert_allclose(off[e], truth["offsets_px"][e], atol=0.08)


def test_bad_groups_named():
    tilts, angles, _ = _series()
    with pytest.raises(InputError, match="n_groups"):
        register_energies_similarity(tilts, angles, n_groups=1)
    with pytest.raises(InputError, match="iterations"):
        register_energies_similarity(tilts, angles, iterations=0)


def test_align_takes_the_estimated_pixel_ratio():
    from chemtomo.align import align

    tilts, angles, truth = _series()
    a = align(tilts, angles, method="coarse", estimate_energy_scale=True)
    for e in tilts:
        # same estimator as above (the screening may drop projections): |k̂ − k| < 0.008
        assert abs(a.energy_pixel_ratio[e] - truth["pixel_ratio"][e]) < 0.008
    plain = align(tilts, angles, method="coarse")
    assert all(plain.energy_pixel_ratio[e] == 1.0 for e in tilts)


@lru_cache(maxsize=1)
def _pair():
    # one moving energy, 1.5 % pixel-size change and the noisiest OD (0.02) of the held-out
    # generator; held-out seed 205 (never used while developing); 12 angles to keep it to seconds
    return heldout_series(205, n_angles=12, energies=(706.0, 708.2), pixel_delta=(0.0, 0.015),
                          noise_od=(0.004, 0.02))


def test_pair_known_scale_and_shift_recovered_within_noise():
    tilts, angles, truth = _pair()
    r = register_energies_similarity(tilts, angles, n_groups=4)
    e = 708.2
    k, sk = r.pixel_ratio[e], r.pixel_ratio_sigma[e]
    o, so = r.offsets_px[e], r.offsets_sigma_px[e]
    # The tolerance is the noise's (4 jackknife standard errors of this series) plus the bias that
    # remains without noise: phase correlation between images of different chemical contrast,
    # measured noise-free on held-out seed 101 as ≤ 0.0006 on the ratio and ≤ 0.017 px on the
    # offset (docs/results/fidelity.md); 0.001 and 0.03 px cover it. A scale left at 1 errs by
    # 0.015 and a shift-only fit of this pair by ≥ 0.1 px, so neither passes.
    assert abs(k - truth["pixel_ratio"][e]) < 4 * sk + 0.001, (k, sk, truth["pixel_ratio"][e])
    assert np.all(np.abs(o - truth["offsets_px"][e]) < 4 * so + 0.03), (o, so, truth["offsets_px"][e])
    assert 0 < sk < 0.003 and np.all((so > 0) & (so < 0.1))


def test_auto_rule_keeps_a_significant_scale_and_drops_a_null_one():
    from chemtomo.align.energies import keep_significant_scale

    tilts, angles, truth = _pair()
    r = register_energies_similarity(tilts, angles, n_groups=4)
    kept = keep_significant_scale(r, tilts, angles, n_groups=4)
    # a 1.5 % change is tens of standard errors (σ ≈ 0.0005): kept unchanged
    assert kept.scale_kept == (708.2,) and kept.pixel_ratio[708.2] == r.pixel_ratio[708.2]
    # given the true pixel sizes the residual scale is within noise of 1: the nominal is kept
    # and the offset is the shift-only estimate
    rt = register_energies_similarity(tilts, angles, n_groups=4, pixel_m=truth["pixel_m"])
    kt = keep_significant_scale(rt, tilts, angles, n_groups=4, pixel_m=truth["pixel_m"])
    assert abs(rt.pixel_ratio[708.2] / truth["pixel_ratio"][708.2] - 1) < 4 * rt.pixel_ratio_sigma[708.2] + 0.001
    if kt.scale_kept == ():
        assert kt.pixel_ratio[708.2] == pytest.approx(truth["pixel_ratio"][708.2])
    attrs = kt.as_attrs()
    assert set(attrs["energies"]) == {"706", "708.2"} and len(attrs["notes"]) == 1


def test_report_shows_the_energy_registration_table():
    from chemtomo.report.html import energy_registration_table

    tilts, angles, _ = _pair()
    r = register_energies_similarity(tilts, angles, n_groups=4)
    html = energy_registration_table(r.as_attrs())
    assert html.count("<tr>") == 3  # header, reference, 708.2 eV
    k, sk = r.pixel_ratio[708.2], r.pixel_ratio_sigma[708.2]
    assert f"{k:.5f} ± {sk:.5f}" in html and "708.2" in html and "estimated" in html
    assert energy_registration_table(None) == ""


def test_energies_as_dask_tasks_give_the_same_registration():
    # every energy is registered to the reference on its own (one task each, on one core): the
    # same operations on the same arrays, so the same numbers to the bit
    distributed = pytest.importorskip("distributed")
    tilts, angles, truth = _series()
    assert len(tilts) >= 3  # two energies or more besides the reference: the tasks are used
    local = register_energies_similarity(tilts, angles, n_groups=4)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        tasks = register_energies_similarity(tilts, angles, n_groups=4, client=client)
    for e in tilts:
        np.testing.assert_array_equal(tasks.offsets_px[e], local.offsets_px[e])
        assert tasks.pixel_ratio[e] == local.pixel_ratio[e]
        np.testing.assert_array_equal(tasks.offsets_sigma_px[e], local.offsets_sigma_px[e])
        np.testing.assert_array_equal(tasks.pixel_ratio_sigma[e], local.pixel_ratio_sigma[e])
