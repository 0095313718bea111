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
    # on this 72 px field (measured on every held-out seed 100–109, 0.267–0.277). Estimating the
    # scale brought it to 0.013–0.101 px on those seeds (median 0.044, 0.013 on this one;
    # benchmarks/energy_registration.py); 0.12 px is above that spread and still < 0.45× the
    # shift-only error, so a scale that is not estimated (or has the wrong sign) fails.
    assert plain > 0.2
    assert sim < 0.12, (sim, plain)
    for e in tilts:
        if e == truth["reference_energy"]:
            continue
        # |k̂ − k| measured ≤ 0.0057 on the held-out seeds (a bias towards 1, see
        # docs/results/fidelity.md); the largest change is 0.015, so 0.008 still fails an
        # estimator that ignores it
        assert abs(r.pixel_ratio[e] - truth["pixel_ratio"][e]) < 0.008
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
