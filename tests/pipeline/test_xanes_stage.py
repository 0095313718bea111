"""The chem stage with a XANES stack (16 Fe K-edge energies): edge-position and white-line maps, and their report."""

import numpy as np
import pytest

from chemtomo import chem
from chemtomo.io import write_references
from chemtomo.io.store import RunStore, energy_key
from chemtomo.pipeline.analysis_stage import XANES_MIN_ENERGIES, run_chem
from chemtomo.pipeline.config import RunConfig
from chemtomo.pipeline.context import RunContext
from chemtomo.report.html import _xanes_block
from chemtomo.simulate import TXM_PRESETS, kedge_reference_spectra, simulate_txm


def _store_with_volumes(tmp_path, energies, noise_mu_per_m, seed=3):
    """A run store holding the TXM phantom's true μ volumes (plus Gaussian noise) as the recon stage writes them."""
    ds = simulate_txm("txm", seed=seed, soc=0.5, shape=(21, 29, 29), voxel_m=120e-9, n_particles=2,
                      angles_deg=[0.0], energies_ev=energies, pad_px=0)
    rng = np.random.default_rng(seed)
    store = RunStore(tmp_path / "run.zarr")
    arrays = {energy_key(e): (ds.mu_volume(i) + rng.normal(0.0, noise_mu_per_m, ds.sample.shape)).astype(np.float32)
              for i, e in enumerate(ds.energies_ev)}
    store.write_group("volumes", arrays, attrs={"energies_eV": [float(e) for e in ds.energies_ev],
                                                "voxel_m": ds.voxel_m})
    grid = np.arange(7080.0, 7190.0, 0.5)
    r = kedge_reference_spectra(grid)
    write_references(tmp_path / "references.csv", grid, {"LiFePO4": r.LiFePO4.to_numpy(), "FePO4": r.FePO4.to_numpy()})
    cfg = RunConfig()
    ctx = RunContext(config=cfg, store=store, refs=[], references_path=tmp_path / "references.csv", xas2d_path=None)
    return ds, store, ctx


def test_chem_stage_maps_edge_and_white_line_of_a_xanes_stack(tmp_path):
    # pure-phase voxels (fully filled, fraction 0 or 1) must show their phase's edge: LiFePO4
    # ≈ 7122.6 eV, FePO4 ≈ 4 eV higher. Noise 1.5e3 /m per voxel (step 4.5e4 /m: the step's
    # standard error ≈ 2.5σ, the step is 12 of them) moves the interpolated crossing by
    # ≈ σ/step · h / Δn ≈ 0.2 eV rms; the medians over hundreds of voxels are within 0.3 eV of the
    # references' own (noise-free) edges, and nearly all sample voxels are defined
    energies = TXM_PRESETS["txm"].energies_ev
    assert len(energies) >= XANES_MIN_ENERGIES
    ds, store, ctx = _store_with_volumes(tmp_path, energies, 1.5e3)
    summary = run_chem(ctx)
    x = store.group_attrs("chem")["xanes"]
    edge = store.read("chem/edge_energy")
    white = store.read("chem/white_line_energy")
    assert edge.shape == white.shape == ds.sample.shape and edge.dtype == np.float32
    ref = x["reference_edge_eV"]
    assert 3.0 <= ref["FePO4"] - ref["LiFePO4"] <= 5.0
    occ, frac = ds.sample.occupancy, ds.sample.fraction
    for phase, sel in (("LiFePO4", (occ > 0.99) & (frac < 0.01)), ("FePO4", (occ > 0.99) & (frac > 0.99))):
        assert sel.sum() > 100
        assert np.isfinite(edge[sel]).mean() > 0.98
        assert np.nanmedian(edge[sel]) == pytest.approx(ref[phase], abs=0.3)
        assert np.nanmedian(white[sel]) == pytest.approx(x["reference_white_line_eV"][phase], abs=0.5)
    assert np.isnan(edge[occ == 0]).all()     # outside the sample mask
    assert summary["edge_eV"] == pytest.approx(x["median_edge_eV"], abs=0.01)
    # σ comes from the pre/post-edge residuals in the sample voxels, which also hold the spectra's
    # own structure there (the edge's tail, the post-edge wiggle): the same estimate on the
    # noise-free volumes measures that part, which adds in quadrature to the 1.5e3 /m of noise
    clean = np.stack([ds.mu_volume(i) for i in range(len(ds.energies_ev))])
    structure = chem.normalise_xanes(clean, ds.energies_ev, noise_mask=ds.sample.occupancy > 0.5).noise
    assert x["noise_mu_per_m"] == pytest.approx(np.hypot(1.5e3, structure), rel=0.1)
    block = _xanes_block(store, store.group_attrs("chem"))     # the chemistry section's XANES paragraph + figure
    assert "XANES maps over 16 energies" in block and "Reference edges: LiFePO4" in block
    assert "data:image/png;base64," in block


def test_few_energies_make_no_xanes_maps(tmp_path):
    # below XANES_MIN_ENERGIES the stage unmixes as before and stores no maps
    _, store, ctx = _store_with_volumes(tmp_path, [7100.0, 7125.0, 7132.0, 7160.0], 1.5e3)
    run_chem(ctx)
    assert "xanes" not in store.group_attrs("chem")
    assert "edge_energy" not in store.arrays("chem")
