"""Tests of the per-voxel XANES maps (chemtomo.chem.xanes): edge position and white-line energy."""

import math

import numpy as np
import pytest
from scipy.special import erf

from chemtomo import chem
from chemtomo.core import InputError
from chemtomo.simulate import KEDGE_PARAMETERS, TXM_PRESETS, kedge_reference_spectra, normalised_xanes

#: The TXM preset's XANES scan: 10, 8, 6 eV steps before the edge, 2 eV across it, 4–15 eV after.
TXM_E = np.asarray(TXM_PRESETS["txm"].energies_ev)
FINE = np.arange(7085.0, 7185.0, 0.001)


def normalised(e, e0, width, amp, e_wl, s_wl):
    """A K-edge: erf step of width ``width`` at e0 plus a Gaussian white line switched on by it."""
    step = 0.5 * (1.0 + erf((e - e0) / (math.sqrt(2.0) * width)))
    return step + amp * np.exp(-0.5 * ((e - e_wl) / s_wl) ** 2) * step


def spectra(e, params, step=0.04, offset=0.02, slope=-1e-5):
    """(n_e, n) absorption: a sloping linear background plus ``step`` × the normalised edge."""
    return np.stack([offset + slope * (e - 7100.0) + step * normalised(e, *p) for p in params], axis=1)


def _params(n, rng):
    # edges 7120–7128 eV, white lines 3–6 eV above, negligible (< 1e-4) in the pre- and post-edge
    # ranges of the TXM grid (≤ 7108 and ≥ 7148.5 eV)
    e0 = rng.uniform(7120.0, 7128.0, n)
    return [(a, rng.uniform(1.0, 1.8), rng.uniform(0.2, 0.5), a + rng.uniform(3.0, 6.0), rng.uniform(2.0, 3.5))
            for a in e0]


def test_edge_position_noise_free_within_the_sampling_bound():
    # linear interpolation of the half crossing between E_i and E_i+1 errs by at most
    # h² max|n''| / (8 |n'(E*)|) (h = E_i+1 − E_i): the bound is computed per spectrum on a fine grid
    rng = np.random.default_rng(0)
    params = _params(40, rng)
    # lines before and after the edge: the background is a line and the edge's tails are < 1e-4
    # in both ranges, so the normalisation is exact and only the sampling error remains
    got = chem.edge_position(spectra(TXM_E, params), TXM_E, noise_sigma=1e-6, pre_edge_order=1, post_edge_order=1)
    for g, p in zip(got, params):
        n = normalised(FINE, *p)
        j = int(np.argmax(n >= 0.5))
        true = FINE[j]
        i = int(np.searchsorted(TXM_E, true)) - 1
        inside = (FINE >= TXM_E[i]) & (FINE <= TXM_E[i + 1])
        d1 = np.gradient(n, FINE)
        d2 = np.gradient(d1, FINE)
        h = TXM_E[i + 1] - TXM_E[i]
        bound = h ** 2 * np.abs(d2[inside]).max() / (8.0 * d1[j])
        assert abs(g - true) <= bound + 2e-3   # + float32 output and the fine grid's step


@pytest.mark.parametrize("refine", ["parabola", "gaussian"])
def test_white_line_noise_free_within_the_sampling_bound(refine):
    # the three-point vertex of f = n (parabola) or f = ln n (gaussian) errs by ≈ h² |f'''| / (6 |f''|)
    # at the peak (Taylor expansion to third order); 1.5× for the next order, h = 2 eV here
    rng = np.random.default_rng(1)
    params = _params(40, rng)
    e = np.arange(7090.0, 7181.0, 2.0)
    got = chem.white_line_energy(spectra(e, params), e, refine=refine, noise_sigma=1e-6, pre_edge_order=1,
                                 post_edge_order=1)
    for g, p in zip(got, params):
        n = normalised(FINE, *p)
        j = int(np.argmax(n))
        f = np.log(n[j - 3000:j + 3000]) if refine == "gaussian" else n[j - 3000:j + 3000]
        x = FINE[j - 3000:j + 3000]
        d1 = np.gradient(f, x)
        d2 = np.gradient(d1, x)
        d3 = np.gradient(d2, x)
        bound = 1.5 * 2.0 ** 2 * np.abs(d3[2500:3500]).max() / (6.0 * abs(d2[3000]))
        assert abs(g - FINE[j]) <= bound + 2e-3


def _propagated_sigma(fn, y, e, sigma):
    """Delta method: σ of fn's scalar output for independent noise σ on every value of y."""
    base = float(fn(y[:, None], e)[0])
    jac = []
    for k in range(y.size):   # central differences of ±σ: linear at this scale, well above float32 steps
        up, down = y.copy(), y.copy()
        up[k] += sigma
        down[k] -= sigma
        jac.append((float(fn(up[:, None], e)[0]) - float(fn(down[:, None], e)[0])) / (2.0 * sigma))
    return base, sigma * float(np.linalg.norm(jac))


@pytest.mark.parametrize("which", ["edge", "white_line"])
def test_noise_propagates_as_predicted(which):
    # 4,000 copies of one spectrum with Gaussian noise σ = 1 % of the step: the maps' mean agrees
    # with the noise-free value within 4 standard errors (+ the second-order bias, ≲ 0.02 eV
    # here), and their spread with the first-order propagation of σ through the whole
    # computation (normalisation fits + interpolation / vertex), within 15 % (its nonlinearity)
    e = TXM_E
    y = spectra(e, [(7123.3, 1.4, 0.35, 7127.5, 2.6)])[:, 0].astype(np.float64)
    sigma = 0.01 * 0.04
    if which == "edge":
        def fn(s, en):
            return chem.edge_position(s, en, noise_sigma=sigma)
    else:
        def fn(s, en):
            return chem.white_line_energy(s, en, noise_sigma=sigma)
    base, pred = _propagated_sigma(fn, y, e, sigma)
    rng = np.random.default_rng(2)
    noisy = y[:, None] + rng.normal(0.0, sigma, (e.size, 4000))
    got = fn(noisy, e).astype(np.float64)
    assert np.isfinite(got).mean() > 0.99
    got = got[np.isfinite(got)]
    assert abs(got.mean() - base) < 4.0 * got.std() / math.sqrt(got.size) + 0.02
    assert got.std() == pytest.approx(pred, rel=0.15)


def test_noise_estimate_and_threshold():
    # σ is estimated from the pre/post-edge fit residuals (constants, dof = 2 + 2 on the TXM grid)
    # as the median over pixels, corrected for the χ² median: within 5 % for 3,000 pixels. Pixels
    # without an edge (step 0) fail the 5σ_step threshold (Gaussian tail 3e-7); pixels with a
    # step of 10σ pass it (σ_step = σ·sqrt(1/3 + 1/3) = 0.82σ: the step is 12σ_step, 7σ_step
    # above the threshold). The background's slope (−1e-5 per eV) adds < 2 % to the residuals
    rng = np.random.default_rng(3)
    sigma = 0.004
    edge = spectra(TXM_E, [(7124.0, 1.5, 0.3, 7128.0, 2.5)] * 1500)
    flat = spectra(TXM_E, [(7124.0, 1.5, 0.3, 7128.0, 2.5)] * 1500, step=0.0)
    y = np.concatenate([edge, flat], axis=1) + rng.normal(0.0, sigma, (TXM_E.size, 3000))
    nrm = chem.normalise_xanes(y, TXM_E)
    assert nrm.noise == pytest.approx(sigma, rel=0.05)
    assert nrm.valid[:1500].all() and nrm.valid[1500:].mean() < 0.002
    edges = chem.edge_position(y, TXM_E, normalisation=nrm)
    assert np.isfinite(edges[:1500]).all() and np.isnan(edges[1500:]).mean() > 0.99


def test_maps_of_volumes_keep_shape_and_mark_nan():
    rng = np.random.default_rng(4)
    params = _params(2 * 3 * 4, rng)
    vol = spectra(TXM_E, params).reshape(TXM_E.size, 2, 3, 4).astype(np.float32)
    vol[5, 1, 2, 3] = np.nan
    edge = chem.edge_position(vol, TXM_E, noise_sigma=1e-6)
    wl = chem.white_line_energy(vol, TXM_E, noise_sigma=1e-6)
    assert edge.shape == wl.shape == (2, 3, 4) and edge.dtype == wl.dtype == np.float32
    assert np.isnan(edge[1, 2, 3]) and np.isnan(wl[1, 2, 3])
    assert np.isfinite(edge).sum() == 23 and np.all(wl[np.isfinite(wl)] > edge[np.isfinite(wl)])


def test_k_edge_references_edge_shift_and_white_lines():
    # the simulator's Fe K-edge references sampled on the TXM grid: the Fe3+ edge of FePO4 lies
    # 3–5 eV above the Fe2+ edge of LiFePO4 (literature ≈ 4 eV), each within the grid's 2 eV
    # sampling bound (≤ 0.5 eV here) of the fine-grid crossing; white lines within a step (2–3 eV)
    refs = kedge_reference_spectra(TXM_E)
    mu = refs[["LiFePO4", "FePO4"]].to_numpy()
    edge = chem.edge_position(mu, TXM_E, noise_sigma=1.0)
    wl = chem.white_line_energy(mu, TXM_E, noise_sigma=1.0)
    assert 3.0 <= edge[1] - edge[0] <= 5.0
    for k, phase in enumerate(("LiFePO4", "FePO4")):
        n = normalised_xanes(FINE, KEDGE_PARAMETERS[phase])
        assert abs(edge[k] - FINE[np.argmax(n >= 0.5)]) < 0.5 + 0.2   # + the arctangent tail's normalisation
        assert abs(wl[k] - FINE[np.argmax(n)]) < 2.0


def test_bad_input():
    y = spectra(TXM_E, [(7124.0, 1.5, 0.3, 7128.0, 2.5)])
    with pytest.raises(InputError, match="strictly increasing"):
        chem.edge_position(y, TXM_E[::-1])
    with pytest.raises(InputError, match="has 15 values"):
        chem.edge_position(y, TXM_E[:-1])
    with pytest.raises(InputError, match="at least one of the energies"):
        chem.edge_position(y, TXM_E, pre_edge_ev=(7000.0, 7050.0))
    with pytest.raises(InputError, match="no degree of freedom"):
        chem.edge_position(y, TXM_E, pre_edge_ev=(7090.0, 7090.0), post_edge_ev=(7180.0, 7180.0))
    with pytest.raises(InputError, match="noise_mask has shape"):
        chem.edge_position(y, TXM_E, noise_mask=np.ones(3, bool))
    with pytest.raises(InputError, match="level"):
        chem.edge_position(y, TXM_E, level=1.5)
    with pytest.raises(InputError, match="refine"):
        chem.white_line_energy(y, TXM_E, refine="spline")
    with pytest.raises(InputError, match="n_energies >= 3"):
        chem.normalise_xanes(np.ones((2, 4)), [7100.0, 7200.0])


def test_xanes_figure():
    # a slice and a histogram of each map, the references' edges marked; a shape mismatch is an error
    rng = np.random.default_rng(5)
    edge = rng.normal(7124.0, 1.5, (9, 11, 13)).astype(np.float32)
    edge[:, :5] = np.nan
    fig = chem.plot_xanes_maps(edge, edge + 5.0, voxel_m=60e-9, reference_edges_ev={"LiFePO4": 7122.6, "FePO4": 7126.6})
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("edge position (y–x at z = ") for t in titles)
    assert len(fig.axes[2].get_legend().get_texts()) == 2
    with pytest.raises(InputError, match="one shape"):
        chem.plot_xanes_maps(edge, edge[:, :, :5])


def test_noise_estimate_leaves_out_clipped_voxels():
    # a non-negative reconstruction sets empty voxels to 0 at some energies: their residuals are
    # ~0 and would pull the median σ down; they are left out by default, or noise_mask names the
    # voxels to use. 500 pixels with an edge, σ = 0.002, and 1,500 empty pixels clipped at 0
    rng = np.random.default_rng(6)
    edge = spectra(TXM_E, [(7124.0, 1.5, 0.3, 7128.0, 2.5)] * 500, slope=0.0) + rng.normal(0, 0.002, (TXM_E.size, 500))
    empty = np.clip(rng.normal(0.0, 0.002, (TXM_E.size, 1500)), 0.0, None)
    y = np.concatenate([edge, empty], axis=1)
    assert chem.normalise_xanes(y, TXM_E).noise == pytest.approx(0.002, rel=0.1)
    mask = np.zeros(2000, bool)
    mask[:500] = True
    assert chem.normalise_xanes(y, TXM_E, noise_mask=mask).noise == pytest.approx(0.002, rel=0.1)


@pytest.mark.parametrize("order", [0, 1])
def test_blocks_of_voxels_give_the_same_bits(monkeypatch, order):
    """The normalisation, edge and white-line maps work on a block of voxels at a time
    (``BLOCK_VOXELS``): blocks of 7 of 300 voxels (a ragged last one) give what one block of all
    gives, to the bit, with non-finite and clipped (0) voxels among them and the noise estimated
    from all voxels' residuals. Each voxel's fit sums its energies in NumPy, not BLAS, so its
    bits do not depend on the voxels beside it."""
    from chemtomo.chem import xanes

    rng = np.random.default_rng(5)
    mu = spectra(TXM_E, _params(300, rng)) + rng.normal(0.0, 5e-4, (TXM_E.size, 300))
    mu[3, 10] = np.nan
    mu[:, 20] = 0.0
    runs = []
    for block in (7, 1 << 20):
        monkeypatch.setattr(xanes, "BLOCK_VOXELS", block)
        nrm = chem.normalise_xanes(mu, TXM_E, pre_edge_order=order, post_edge_order=order)
        runs.append((nrm, chem.edge_position(mu, TXM_E, normalisation=nrm),
                     chem.white_line_energy(mu, TXM_E, normalisation=nrm, refine="gaussian")))
    (a, ea, wa), (b, eb, wb) = runs
    assert a.noise == b.noise and np.isfinite(a.noise)
    for x, y in ((a.normalised, b.normalised), (a.edge_step, b.edge_step), (a.valid, b.valid), (ea, eb), (wa, wb)):
        np.testing.assert_array_equal(x, y)
    assert not a.valid[10] and not a.valid[20] and a.valid.sum() > 250
