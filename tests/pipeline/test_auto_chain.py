"""``ptycho.algorithm = "auto"``: the FRC scans are reconstructed with every candidate chain, the
chain with the best median split-half FRC reconstructs the rest, and nothing is done twice."""

import numpy as np
import pytest

from chemtomo.core.errors import ConfigError
from chemtomo.pipeline import config_for_manifest, run_pipeline
from chemtomo.pipeline.config import config_from_dict
from chemtomo.pipeline.ptycho_stage import choose_chain, frc_score_m
from chemtomo.ptycho import AUTO_CHAINS


def test_auto_reconstructs_the_frc_scans_with_each_chain_and_keeps_the_best(tiny_dataset, tmp_path, monkeypatch):
    import chemtomo.pipeline.ptycho_stage as stage

    # (algorithm, frc) of every reconstruction, one line each in a file (Dask pickles the task
    # function, so an in-memory list would be a copy)
    log = tmp_path / "calls.txt"
    original = stage.reconstruct_scan_file

    def counted(path, read_options, recon_options):
        with open(log, "a") as f:
            f.write(f"{recon_options['algorithm']};{recon_options['frc']}\n")
        return original(path, read_options, recon_options)

    monkeypatch.setattr(stage, "reconstruct_scan_file", counted)
    cfg = config_for_manifest(tiny_dataset / "manifest.csv", {"ptycho": {"algorithm": "auto", "frc_angles": 1}})
    out = tmp_path / "run.zarr"
    store = run_pipeline(cfg, out, only=("ptycho",))
    summary = store.stage_record("ptycho")["summary"]
    n_scans, n_frc = 18, 2  # 9 angles × 2 energies; one FRC angle per energy
    assert summary["scans"] == n_scans
    assert summary["resumed"] == 0  # the trial reconstructions reused are this run's own work
    assert set(summary["auto_frc_nm"]) == set(AUTO_CHAINS)
    # the choice is the chain of the lowest median FRC (ties to the first listed)
    med = summary["auto_frc_nm"]
    best = min(AUTO_CHAINS, key=lambda c: (med[c] if med[c] is not None else np.inf, AUTO_CHAINS.index(c)))
    assert summary["algorithm"] == best
    for e in ("708.2", "710.2"):
        assert store.array_attrs(f"projections/{e}")["algorithm"] == best
    # every scan once with the chosen chain; the FRC scans once more with each other chain, and
    # the chosen chain's trial reconstructions are kept, not redone
    calls = [(a, f == "True") for a, f in (line.split(";") for line in log.read_text().split("\n") if line)]
    assert len(calls) == n_scans + (len(AUTO_CHAINS) - 1) * n_frc
    assert sorted(c for c in calls if c[1]) == sorted((c, True) for c in AUTO_CHAINS for _ in range(n_frc))
    assert all(c == (best, False) for c in calls if not c[1])


def test_frc_score_prefers_a_finer_crossing_and_fails_a_broken_curve():
    f = np.linspace(1e6, 5e7, 50)
    ok = {"frc_frequency_per_m": f, "frc_correlation": np.ones(50), "frc_threshold": np.full(50, 0.2)}
    assert frc_score_m({"resolution_m": 12e-9}, ok) == 12e-9
    # no crossing up to Nyquist: the Nyquist half-period, better than any crossing below it
    assert frc_score_m({"resolution_m": float("nan")}, ok) == pytest.approx(1 / (2 * 5e7))
    broken = dict(ok, frc_correlation=np.full(50, np.nan))  # a half that failed: never chosen
    assert frc_score_m({"resolution_m": float("nan")}, broken) == np.inf
    assert choose_chain({"A": [np.inf, np.inf], "B": [30e-9, 40e-9]}) == "B"
    assert choose_chain({"A": [10e-9], "B": [10e-9]}) == "A"  # a tie goes to the first chain


def test_a_misspelt_chain_is_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match="ptycho.algorithm"):
        config_from_dict({"input": {"manifest": "m.csv"}, "ptycho": {"algorithm": "RAAR:fifty"}})
    assert config_from_dict({"ptycho": {"algorithm": "AUTO"}}).ptycho.algorithm == "AUTO"
