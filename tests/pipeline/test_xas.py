"""chemtomo xas end to end: a simulated drifting two-phase STXM stack, written as .hdr/.xim and as
NeXus, read back, converted to OD, aligned and fitted; the maps are compared with the truth."""

import numpy as np
import pytest
import zarr
from stxm_sample import PHASES, PIXEL_M, mu, reference_table, simulate, thickness_at, write_stack
from typer.testing import CliRunner

from chemtomo.cli import app
from chemtomo.core import InputError
from chemtomo.pipeline import run_xas, xas_maps


def _truth_in_reference_frame(sim, shifts_px):
    """True thickness maps in the aligned frame: the gauge energy's drift is the frame's offset."""
    ref = int(np.argmin(np.abs(shifts_px).sum(axis=1)))
    ny, nx = sim.thickness.shape[1:]
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    return thickness_at(yy - sim.shifts_px[ref, 0], xx - sim.shifts_px[ref, 1], (ny, nx)), ref


def _predicted_sigma(sim, truth):
    """Per-pixel shot-noise sigma (metres) of each phase's least-squares thickness.

    OD_e = −ln(I/I0) with I ~ Poisson(N0_e exp(−OD_e)) has variance 1/(N0_e exp(−OD_e)); the
    least-squares map is P·OD with P = pinv(μ), so var(t_k) = Σ_e P[k, e]² / N_e."""
    m = mu(sim.stack.energies_ev)
    p = np.linalg.pinv(m)
    od = np.einsum("ek,kyx->eyx", m, truth)
    inv_n = np.exp(od) / sim.n0[:, None, None]
    return np.sqrt(np.einsum("ke,eyx->kyx", p ** 2, inv_n))


@pytest.mark.parametrize("fmt", ["hdr", "nexus"])
def test_run_xas_recovers_maps_and_drift(tmp_path, fmt):
    # the maps of both phases agree with the truth to within the shot noise; the drift is recovered
    sim = simulate(seed=3)
    stack_path, refs = write_stack(tmp_path, sim, fmt)
    res, store, fig = run_xas(stack_path, refs, tmp_path / "maps.zarr")
    truth, ref = _truth_in_reference_frame(sim, res.shifts_px)
    # drift: the registration's error per energy, after removing the gauge (the reference energy)
    err = (res.shifts_px - res.shifts_px[ref]) - (sim.shifts_px - sim.shifts_px[ref])
    # pairwise cross-correlation of these noisy images is good to ~0.07 px and the least-squares
    # over three neighbours averages it; 0.1 px RMS is what the fit needs (map error below)
    assert np.sqrt(np.mean(err ** 2)) < 0.1
    # maps: inside the particles (both phases present, so NNLS is unconstrained there) the
    # normalised error is ~N(0, 1) from shot noise; cubic resampling changes the noise by < 10 %
    # and a 0.05 px misregistration adds < 0.3 sigma at the edges
    sigma = _predicted_sigma(sim, truth)
    inside = np.all(truth > 5e-9, axis=0) & np.isfinite(res.fit.maps[0])
    assert inside.sum() > 300
    z = (res.fit.maps - truth)[:, inside] / sigma[:, inside]
    rms_z = np.sqrt(np.mean(z ** 2, axis=1))
    assert np.all(rms_z < 1.3), rms_z
    # no bias: the mean of ~500 pixels' z has a standard error of ~0.05 (neighbours correlate
    # through the resampling); 0.15 sigma is three of those (bilinear resampling read -0.15)
    assert np.all(np.abs(z.mean(axis=1)) < 0.15), z.mean(axis=1)
    # the I0 region lies outside every particle and its halo: at most 1 nm of material under it
    # (OD < 0.015 even on the white line, below one pixel's shot noise of ~0.02)
    assert res.i0.source == "auto" and res.i0.n_pixels > 500
    assert truth.sum(axis=0)[res.i0.mask].max() < 1e-9
    # the store: one array per reference column, named as in references.csv, plus r_factor
    g = zarr.open_group(str(store), mode="r")
    for k, name in enumerate(PHASES):
        np.testing.assert_array_equal(g[name][...], res.fit.maps[k])
    assert g["r_factor"].shape == truth.shape[1:]
    assert g.attrs["pixel_m"] == pytest.approx(PIXEL_M, rel=1e-6)
    np.testing.assert_allclose(g.attrs["energies_ev"], sim.stack.energies_ev)
    # a good two-phase model: R < 0.15 almost everywhere outside I0 (noise alone gives R ~ 0.01)
    assert res.summary["share_r_below_0.15"] > 0.9
    assert fig is not None and fig.stat().st_size > 10_000


def test_xas_without_drift_and_with_a_box(tmp_path):
    # no drift + I0 from a user box: the shifts found are ~0 and the maps are unbiased
    sim = simulate(max_drift_px=0, seed=5)
    ny, nx = sim.support.shape
    box = (0, 5, 0, nx)                             # the top strip is empty in this sample
    assert sim.thickness.sum(axis=0)[:5, :].max() < 1e-9
    res = xas_maps(sim.stack.counts, sim.stack.energies_ev, reference_table(), pixel_m=PIXEL_M, i0_box=box)
    # the region is the box less the border pixels that a sub-pixel shift leaves uncovered
    assert res.i0.source == "box" and not res.i0.mask[5:].any() and res.i0.n_pixels >= 3 * nx
    assert np.abs(res.shifts_px).max() < 0.1        # noise-limited registration of an undrifted stack
    sigma = _predicted_sigma(sim, sim.thickness)
    inside = np.all(sim.thickness > 5e-9, axis=0) & np.isfinite(res.fit.maps[0])
    z = (res.fit.maps - sim.thickness)[:, inside] / sigma[:, inside]
    assert np.all(np.sqrt(np.mean(z ** 2, axis=1)) < 1.3)


def test_misaligned_stack_fits_worse_without_alignment(tmp_path):
    # the alignment is what makes the maps right: without it the R-factor at particle edges grows
    sim = simulate(max_drift_px=1.5, seed=3)
    kw = dict(pixel_m=PIXEL_M)
    aligned = xas_maps(sim.stack.counts, sim.stack.energies_ev, reference_table(), **kw)
    raw = xas_maps(sim.stack.counts, sim.stack.energies_ev, reference_table(), align=False, **kw)
    sample = (sim.thickness.sum(axis=0) > 10e-9) & np.isfinite(aligned.fit.r_factor)
    assert np.nanmean(raw.fit.r_factor[sample]) > 2 * np.nanmean(aligned.fit.r_factor[sample])


def test_references_must_cover_the_stack(tmp_path):
    sim = simulate(energies_ev=np.linspace(700.0, 725.0, 6), max_drift_px=0)
    stack_path, refs = write_stack(tmp_path, sim, "hdr")
    with pytest.raises(InputError, match=r"references.csv: the reference spectra cover 700–720 eV but the run has 1 "
                                         r"energy outside: 725 eV"):
        run_xas(stack_path, refs, tmp_path / "maps.zarr")


def test_cli_xas(tmp_path):
    sim = simulate(seed=4, shape=(40, 48))
    stack_path, refs = write_stack(tmp_path, sim, "hdr")
    out = tmp_path / "maps.zarr"
    r = CliRunner().invoke(app, ["xas", str(stack_path), str(refs), "-o", str(out)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())          # rich wraps long lines at the terminal width
    assert "R < 0.15 in" in text and "maps: LiFePO4, FePO4, r_factor" in text
    assert (tmp_path / "maps.png").exists()
    assert sorted(k for k, _ in zarr.open_group(str(out), mode="r").arrays()) == sorted(
        [*PHASES, "r_factor", "od", "i0_mask"])
    # a user error is one line and exit code 1
    bad = CliRunner().invoke(app, ["xas", str(tmp_path / "missing.hdr"), str(refs), "-o", str(out)])
    assert bad.exit_code == 1 and "missing.hdr: STXM header file not found" in " ".join(bad.output.split())
    bad = CliRunner().invoke(app, ["xas", str(stack_path), str(refs), "-o", str(out), "--i0-box", "0", "99", "0", "5"])
    assert bad.exit_code == 1
    assert "i0_box (y0, y1, x0, x1) = (0, 99, 0, 5) is not a non-empty box" in " ".join(bad.output.split())


def test_i0_box_on_the_sample_is_flagged(caplog):
    # a user box over a particle: the OD spread inside it far exceeds one pixel's shot noise
    sim = simulate(max_drift_px=0, seed=6, shape=(40, 48))
    res = xas_maps(sim.stack.counts, sim.stack.energies_ev, reference_table(), pixel_m=PIXEL_M,
                   i0_box=(6, 24, 4, 26), align=False)
    assert res.summary["i0_od_spread"] > 3 * res.summary["i0_shot_noise_od"]
    assert "it may hold sample" in caplog.text
