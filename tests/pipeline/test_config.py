"""Run configuration: defaults round trip through the example, and every bad key or value is named."""

import tomllib

import pytest

from chemtomo.core import ConfigError
from chemtomo.pipeline.config import (config_for_manifest, config_from_dict, config_to_dict, example_config,
                                      load_config)


def test_example_config_parses_to_the_defaults():
    cfg = config_from_dict(tomllib.loads(example_config()))
    default = config_from_dict({"input": {"manifest": "manifest.csv"}})
    assert config_to_dict(cfg) == config_to_dict(default)
    # the paper's choices are the defaults
    assert cfg.tomo.algorithm == "art" and cfg.tomo.iterations == 20
    assert cfg.chem.thresholds == [0.3, 0.7] and cfg.particles.active_thresholds == [0.15, 0.25]


@pytest.mark.parametrize("doc, message", [
    ({"tomo": {"algoritm": "art"}}, "unknown key(s) tomo.algoritm; valid keys in [tomo]: algorithm"),
    ({"tomograpy": {}}, "unknown section(s) ['tomograpy']"),
    ({"tomo": {"algorithm": "magic"}}, "tomo.algorithm = 'magic' is not allowed; choose one of 'art'"),
    ({"tomo": {"iterations": 0}}, "tomo.iterations = 0 must be ≥ 1"),
    ({"tomo": {"iterations": 2.5}}, "tomo.iterations must be an integer"),
    ({"tomo": {"nonneg": "yes"}}, "tomo.nonneg must be true or false"),
    ({"chem": {"thresholds": [0.7, 0.3]}}, "chem.thresholds must be increasing fractions in [0, 1]"),
    ({"chem": {"thresholds": [0.3, 1.7]}}, "chem.thresholds must be increasing fractions in [0, 1]"),
    ({"particles": {"active_thresholds": [0.15]}}, "must be a list of 2 numbers"),
    ({"align": {"tol_px": -1.0}}, "align.tol_px = -1.0 must be ≥ 0.0"),
    ({"compute": {"device": "tpu"}}, "compute.device = 'tpu' is not allowed"),
])
def test_bad_config_is_named(doc, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert message in str(err.value)


def test_load_config_resolves_paths_and_requires_manifest(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('[input]\nmanifest = "data/manifest.csv"\n[tomo]\nalgorithm = "sirt"\niterations = 50\n')
    cfg = load_config(p)
    assert cfg.path(cfg.input.manifest) == tmp_path.resolve() / "data/manifest.csv"
    assert cfg.tomo.algorithm == "sirt"
    (tmp_path / "empty.toml").write_text("[tomo]\n")
    with pytest.raises(ConfigError, match="input.manifest is required"):
        load_config(tmp_path / "empty.toml")
    (tmp_path / "broken.toml").write_text("[tomo\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_config_for_manifest_uses_defaults_and_overrides(tmp_path):
    m = tmp_path / "manifest.csv"
    m.write_text("path,angle_deg,energy_eV\n")
    cfg = config_for_manifest(m, {"compute": {"scheduler": "tcp://127.0.0.1:8786"}})
    assert cfg.path(cfg.input.manifest) == m.resolve()
    assert cfg.compute.scheduler == "tcp://127.0.0.1:8786"


def test_gpu_device_is_refused_not_ignored(tmp_path):
    from chemtomo.pipeline import run_pipeline

    m = tmp_path / "manifest.csv"
    m.write_text("path,angle_deg,energy_eV\n")
    cfg = config_for_manifest(m, {"compute": {"device": "gpu"}})
    with pytest.raises(ConfigError, match="CPU only in this version"):
        run_pipeline(cfg, tmp_path / "run.zarr")


def test_alignment_cost_knobs_are_validated():
    cfg = config_from_dict({"align": {"binned_iterations": 3, "recon_iterations": 10}})
    assert cfg.align.binned_iterations == 3 and cfg.align.recon_iterations == 10
    with pytest.raises(ConfigError, match="align.binned_iterations = -1 must be ≥ 0"):
        config_from_dict({"align": {"binned_iterations": -1}})



def test_background_projection_is_checked_against_its_choices():
    with pytest.raises(ConfigError, match="ptycho.background_projection = 'halve' is not allowed"):
        config_from_dict({"ptycho": {"background_projection": "halve"}})
    assert config_from_dict({"ptycho": {"background_projection": "share"}}).ptycho.background_projection == "share"
