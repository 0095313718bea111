"""End to end from the data users bring: reconstructed CXI images and a full-field TXM dataset.

(a) The demo experiment's projections, as a beamline that reconstructs would hand them over:
    the simulator's true object of every scan (misaligned, on its energy's pixel grid, cropped to
    the scanned field) with complex noise matched to the demo's own ptychographic reconstructions
    (air OD σ 0.0072 measured with RAAR:200, so 0.0036 per component), written as CXI images,
    half by chemtomo's writer and half as COSMIC/PyNX files look. `chemtomo run manifest.csv`
    skips ptychography and must recover the truth as the demo does from scans.
(b) `chemtomo simulate --preset txm` (Fe K-edge, 16 energies, 21 angles, Data Exchange files with
    drifting flats, darks, Poisson and read noise, zone-plate magnification changing the pixel
    with energy), then `chemtomo run manifest.csv`.

Both are held to the demo's bounds (tests/e2e/test_demo.py): the state of charge within 0.03
(absolute) of the truth's, the particle count within 10 % (±1), and per voxel on the particles
(truth occupancy > 0.5) a FePO4 fraction unbiased within 0.03 with RMS below 0.2 and more than
90 % agreement on the FP-rich class.
"""

import numpy as np
import pytest

from chemtomo.io.simulated import read_truth
from chemtomo.io.store import RunStore
from chemtomo.simulate import simulate_dataset

from own_data import write_cxi_images  # tests/pipeline/own_data.py
from runcli import run_cli
from test_demo import on_truth_grid, registration_shift

#: Complex noise per component that gives the demo's ptychographic air OD noise (0.0072 = 2 × 0.0036).
PTYCHO_LIKE_NOISE = 0.0036


def check(store: RunStore, sample, mu_ref: np.ndarray, soc_true: float):
    chem = store.group_attrs("chem")
    assert abs(chem["soc"] - soc_true) < 0.03, (chem["soc"], soc_true)
    n_true = int(sample.labels.max())
    n_found = store.group_attrs("particles")["n_particles"]
    assert abs(n_found - n_true) <= max(1, round(0.1 * n_true)), (n_found, n_true)
    ref_e = float(store.group_attrs("tiltseries")["reference_energy_eV"])
    shift = registration_shift(store.read(f"volumes/{ref_e:g}"), mu_ref)
    frac = on_truth_grid(store.read("chem/fraction"), mu_ref, shift)
    on = (sample.occupancy > 0.5) & np.isfinite(frac) & np.isfinite(sample.fraction)
    err = frac[on] - sample.fraction[on]
    assert on.sum() > 0.5 * (sample.occupancy > 0.5).sum()
    assert abs(err.mean()) < 0.03 and np.sqrt(np.mean(err ** 2)) < 0.2, (err.mean(), np.sqrt(np.mean(err ** 2)))
    assert np.mean((frac[on] > 0.7) == (sample.fraction[on] > 0.7)) > 0.9


def test_run_from_reconstructed_cxi_images_recovers_the_truth(tmp_path):
    ds = simulate_dataset("demo", seed=0)
    manifest = write_cxi_images(ds, tmp_path, noise=PTYCHO_LIKE_NOISE)
    r = run_cli(["run", str(manifest), "--out", str(tmp_path / "run.zarr")])
    assert r.returncode == 0, r.stderr[-4000:]
    store = RunStore(tmp_path / "run.zarr", create=False)
    assert store.stage_record("ptycho")["summary"]["ptychography"].startswith("skipped")
    ref_e = float(store.group_attrs("tiltseries")["reference_energy_eV"])
    check(store, ds.sample, ds.mu_volume(ref_e), ds.sample.soc)
    assert "read from the input (projections; no ptychography)" in (tmp_path / "run_report.html").read_text()


@pytest.fixture(scope="module")
def txm(tmp_path_factory):
    d = tmp_path_factory.mktemp("txm")
    r = run_cli(["simulate", str(d), "--preset", "txm"])
    assert r.returncode == 0, r.stderr[-4000:]
    return d


def test_run_on_simulated_txm_data_exchange_recovers_the_truth(txm):
    r = run_cli(["run", str(txm / "manifest.csv"), "--out", str(txm / "run.zarr")])
    assert r.returncode == 0, r.stderr[-4000:]
    truth = read_truth(txm)
    store = RunStore(txm / "run.zarr", create=False)
    summary = store.stage_record("ptycho")["summary"]
    assert summary["input"] == "intensity" and summary["energies"] == len(truth.energies_ev)
    # every energy's own pixel (zone-plate magnification) kept, then one grid downstream
    for e in truth.energies_ev:
        assert store.array_attrs(f"projections/{e:g}")["pixel_m"] == pytest.approx(truth.pixel_m[float(e)],
                                                                                   rel=1e-6)
    ref_e = float(store.group_attrs("tiltseries")["reference_energy_eV"])
    mu_ref = truth.mu[min(truth.mu, key=lambda k: abs(k - ref_e))]
    check(store, truth.sample, mu_ref, truth.soc_measured)
    # the report draws every section of a XANES run (a section that fails says so in the page)
    assert "could not be drawn" not in (txm / "run_report.html").read_text()
