"""chem.fit_stack (the one per-pixel LCF) and chem.stack_optical_density (I0 region)."""

import numpy as np
import pytest

from chemtomo.chem import choose_i0_region, fit_stack, lcf_2d, stack_optical_density
from chemtomo.chem.stack_figure import plot_stack_fit
from chemtomo.core import InputError

E = np.array([705.0, 707.0, 708.2, 709.0, 710.2, 712.0])
_KNOTS = (np.array([700.0, 708.2, 710.2, 720.0]),
          {"LFP": np.array([2.0, 10.0, 4.0, 5.0]), "FP": np.array([2.0, 4.0, 11.0, 5.0])})
# the same piecewise-linear spectra tabulated every 0.5 eV (the knots kept), as measured references
# are: interpolation between rows ≤ 1 eV apart is allowed (chem.max_reference_gap_ev)
_GRID = np.union1d(_KNOTS[0], np.arange(700.0, 720.01, 0.5))
TABLE = (_GRID, {k: np.interp(_GRID, _KNOTS[0], v) for k, v in _KNOTS[1].items()})


def _truth(shape=(12, 16), seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 0.1, (2,) + shape)
    t[0, :3] = 0.0                                    # a strip of pure FP: NNLS must give exactly 0 LFP
    return t


def _refs(e):
    return np.stack([np.interp(e, TABLE[0], TABLE[1][k]) for k in ("LFP", "FP")], axis=1)


def test_fit_stack_exact_without_noise():
    # noise-free data in the span of the references: maps exact, R-factor ~ float32 rounding
    t = _truth()
    od = np.einsum("ek,kyx->eyx", _refs(E), t).astype(np.float32)
    fit = fit_stack(od, E, TABLE)
    assert fit.names == ("LFP", "FP") and fit.maps.dtype == np.float32
    np.testing.assert_allclose(fit.maps, t, atol=2e-6)           # float32 OD of ~1: 1e-7 relative
    assert np.nanmax(fit.r_factor) < 1e-10
    np.testing.assert_array_equal(fit.map("FP"), fit.maps[1])


def test_fit_stack_nonnegative_and_r_factor_definition():
    # a spectrum no non-negative combination fits: NNLS clips to >= 0 and R = Σres²/Σdata²
    od = np.array([1.0, -1.0, 2.0, 0.0, -2.0, 1.0], np.float32)[:, None, None]
    fit = fit_stack(od, E, TABLE)
    assert np.all(fit.maps >= 0)
    model = _refs(E) @ fit.maps[:, 0, 0]
    expect = np.sum((od[:, 0, 0] - model) ** 2) / np.sum(od[:, 0, 0] ** 2)
    assert fit.r_factor[0, 0] == pytest.approx(expect, rel=1e-5)
    lsq = fit_stack(od, E, TABLE, method="lstsq")
    assert lsq.r_factor[0, 0] <= fit.r_factor[0, 0] + 1e-6      # unconstrained fits at least as well


def test_lcf_2d_is_fit_stack():
    # the pipeline's 2D validation and chemtomo xas run the same fit
    rng = np.random.default_rng(1)
    t = _truth(seed=2)
    od = np.einsum("ek,kyx->eyx", _refs(E), t) + rng.normal(0, 0.01, (E.size,) + t.shape[1:])
    frac, conc, r = lcf_2d(od, E, TABLE)
    fit = fit_stack(od, E, TABLE)
    np.testing.assert_array_equal(conc, fit.maps)
    np.testing.assert_array_equal(r, fit.r_factor)


def test_fit_stack_mask_and_nonfinite():
    t = _truth()
    od = np.einsum("ek,kyx->eyx", _refs(E), t).astype(np.float32)
    od[2, 5, 5] = np.nan
    mask = np.ones(t.shape[1:], bool)
    mask[0, 0] = False
    fit = fit_stack(od, E, TABLE, mask=mask)
    assert np.all(np.isnan(fit.maps[:, 5, 5])) and np.isnan(fit.r_factor[5, 5])
    assert np.all(np.isnan(fit.maps[:, 0, 0])) and np.isnan(fit.r_factor[0, 0])
    assert np.isfinite(fit.r_factor).sum() == t.shape[1] * t.shape[2] - 2


@pytest.mark.parametrize("args, kwargs, message", [
    ((np.ones((6, 4)), E, TABLE), {}, r"od_stack must have shape \(n_energies, ny, nx\), got \(6, 4\)"),
    ((np.ones((6, 2, 2)), E[:5], TABLE), {}, r"od_stack has 6 energies but energies_ev has shape \(5,\)"),
    ((np.ones((1, 2, 2)), E[:1], TABLE), {}, r"od_stack has 1 energies for 2 reference phases"),
    ((np.ones((6, 2, 2)), E, TABLE), {"method": "svd"}, r"method must be 'nnls' or 'lstsq', got 'svd'"),
    ((np.ones((6, 2, 2)), E, TABLE), {"mask": np.ones((3, 3), bool)}, r"mask has shape \(3, 3\) but the images"),
    ((np.ones((6, 2, 2)), E + 20, TABLE), {}, r"outside the reference table's range"),
    ((np.ones((6, 2, 2)), E, (TABLE[0], {"LFP": TABLE[1]["LFP"]})), {}, r"at least two phases, found \['LFP'\]"),
])
def test_fit_stack_errors(args, kwargs, message):
    with pytest.raises(InputError, match=message):
        fit_stack(*args, **kwargs)


def _transmission(seed=0, n0=2000.0):
    """Counts of a disc of sample (OD up to ~1.2) in a 32 x 32 field, flux varying with energy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    disc = ((yy - 14) ** 2 + (xx - 18) ** 2 < 64).astype(float)
    t = np.stack([0.05 * disc, 0.05 * disc])
    od = np.einsum("ek,kyx->eyx", _refs(E), t)
    flux = n0 * np.linspace(0.7, 1.3, E.size)
    return rng.poisson(flux[:, None, None] * np.exp(-od)).astype(np.float32), disc.astype(bool), flux, od


def test_i0_region_avoids_sample_and_recovers_flux():
    counts, disc, flux, od_true = _transmission()
    mask = choose_i0_region(counts)
    near = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2
    from scipy import ndimage

    assert not np.any(mask & ndimage.binary_dilation(disc, near))   # two-pixel margin kept
    assert mask.sum() > 0.5 * (~disc).sum()                          # most of the empty field used
    od, region = stack_optical_density(counts)
    # I0 is the mean of N Poisson pixels: relative error ~ 1/sqrt(N * n0) (~5e-4 here); 4 sigma
    tol = 4.0 / np.sqrt(region.n_pixels * flux.min())
    np.testing.assert_allclose(region.i0_counts, flux, rtol=tol)
    assert region.source == "auto" and region.od_spread < 3 / np.sqrt(flux.min())
    # in the sample, OD = −ln(I/I0) is unbiased up to the Poisson log bias 1/(2N): compare means
    np.testing.assert_allclose(od[:, disc].mean(axis=1), od_true[:, disc].mean(axis=1), atol=0.01)


def test_i0_box_and_mask_override():
    counts, disc, flux, _ = _transmission(seed=1)
    od, region = stack_optical_density(counts, i0_box=(0, 4, 0, 32))
    assert region.source == "box" and region.n_pixels == 128
    od2, region2 = stack_optical_density(counts, i0_mask=region.mask)
    assert region2.source == "mask"
    np.testing.assert_array_equal(od, od2)
    # a region on the sample is not refused but shows in its OD spread
    _, bad = stack_optical_density(counts, i0_box=(10, 18, 14, 22))
    assert bad.od_spread > region.od_spread


@pytest.mark.parametrize("kwargs, message", [
    ({"i0_box": (0, 40, 0, 5)}, r"i0_box \(y0, y1, x0, x1\) = \(0, 40, 0, 5\) is not a non-empty box inside the 32 x 32"),
    ({"i0_box": (0, 4)}, r"i0_box must be four integers"),
    ({"i0_mask": np.zeros((32, 32), bool)}, r"the I0 region is empty"),
    ({"i0_mask": np.ones((3, 3), bool)}, r"i0_mask has shape \(3, 3\) but the images have \(32, 32\)"),
    ({"i0_box": (0, 4, 0, 4), "i0_mask": np.ones((32, 32), bool)}, r"give the I0 region as i0_box or as i0_mask"),
])
def test_i0_errors(kwargs, message):
    counts, *_ = _transmission()
    with pytest.raises(InputError, match=message):
        stack_optical_density(counts, **kwargs)


def test_counts_errors():
    with pytest.raises(InputError, match=r"counts must have shape \(n_energies, ny, nx\)"):
        stack_optical_density(np.ones((4, 4)))
    with pytest.raises(InputError, match=r"counts hold 1 non-finite values"):
        c = np.ones((2, 8, 8), np.float32)
        c[0, 0, 0] = np.nan
        stack_optical_density(c)
    with pytest.raises(InputError, match=r"image 1 of the stack has no counts"):
        c = np.ones((2, 8, 8), np.float32)
        c[1] = 0
        choose_i0_region(c)


def test_plot_stack_fit():
    # one panel per component, the R map and the histogram over the sample pixels it is given
    t = _truth()
    od = np.einsum("ek,kyx->eyx", _refs(E), t).astype(np.float32)
    fit = fit_stack(od, E, TABLE)
    sample = np.zeros(t.shape[1:], bool)
    sample[4:8, 4:8] = True
    fig = plot_stack_fit(fit.maps, fit.names, fit.r_factor, 40e-9, i0_mask=~sample, sample_mask=sample)
    axes = fig.get_axes()
    assert [a.get_title() for a in axes[:2]] == ["LFP", "FP"]
    assert any("of 16 sample pixels" in a.get_title() for a in axes)
    with pytest.raises(InputError, match=r"do not agree; expected \(n, ny, nx\), n names and \(ny, nx\)"):
        plot_stack_fit(fit.maps, ["LFP"], fit.r_factor, 40e-9)
    with pytest.raises(InputError, match=r"pixel_m must be a positive pixel size in metres"):
        plot_stack_fit(fit.maps, fit.names, fit.r_factor, 0.0)
