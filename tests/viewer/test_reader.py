"""The napari plugin's reader and particle spectra, checked headless (no napari, no Qt)."""

import json

import numpy as np
import pytest
import yaml

from chemtomo.core.errors import InputError
from chemtomo.viewer import layer_data, napari_get_reader, particle_row, particle_spectrum, read_store
from chemtomo.viewer._reader import STORE_KEY

from .conftest import REFS


def test_reader_claims_run_stores_only(run_store, tmp_path):
    path = run_store[0]
    assert napari_get_reader(str(path)) is read_store
    assert napari_get_reader([str(path)]) is read_store
    assert napari_get_reader([str(path), str(path)]) is None  # one store at a time
    plain = tmp_path / "other.zarr"  # a Zarr group another program wrote: not ours
    plain.mkdir()
    (plain / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    assert napari_get_reader(str(plain)) is None
    assert napari_get_reader(str(tmp_path / "missing.zarr")) is None
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "zarr.json").write_bytes(b"\xff\xfe garbage")
    assert napari_get_reader(str(tmp_path / "junk.zarr")) is None


def test_layers_carry_scale_units_store_and_particle_features(run_store):
    path, mu, labels, table = run_store
    layers = {kw["name"]: (data, kw, kind) for data, kw, kind in layer_data(path)}
    assert [k for _, _, k in layers.values()] == ["image", "image", "image", "image", "labels", "labels"]
    for _, kw, _ in layers.values():
        assert kw["scale"] == (6.7, 6.7, 6.7) and kw["units"] == ("nm",) * 3
        assert kw["metadata"][STORE_KEY] == str(path.resolve())
    data, kw, _ = layers["μ 708.2 eV (1/m)"]
    np.testing.assert_array_equal(np.asarray(data), np.transpose(mu[0], (1, 0, 2)))  # (z, y, x) as in the NGFF export
    assert layers["FePO4 fraction"][1]["contrast_limits"] == (0.0, 1.0)
    classes = layers["classes (1 LFP-rich, 2 mixed, 3 FP-rich)"][1]["colormap"]
    assert classes[None][3] == 0 and classes[0][3] == 0 and set(classes) == {None, 0, 1, 2, 3}
    feats = layers["particles"][1]["features"]
    assert list(feats["index"]) == [1, 2]  # napari maps label values to rows through this column
    assert feats["n_voxels"].tolist() == [int((labels == 1).sum()), int((labels == 2).sum())]
    np.testing.assert_allclose(feats["mean_fp_fraction"], [0.0, 0.5], atol=1e-6)


def test_particle_row_and_spectrum_recover_the_known_composition(run_store):
    path, mu, labels, table = run_store
    feats = dict((kw["name"], kw) for _, kw, _ in layer_data(path))["particles"]["features"]
    row = particle_row(feats, 2)
    assert row["label"] == 2 and row["n_voxels"] == (labels == 2).sum() and "index" not in row
    assert particle_row(feats, 7) is None and particle_row(None, 1) is None
    spec = particle_spectrum(path, 2)
    np.testing.assert_allclose(spec.energies_eV, [708.2, 710.2])
    np.testing.assert_allclose(spec.mu_per_m, REFS @ [0.5, 0.5], rtol=1e-6)  # float32 volumes
    np.testing.assert_allclose(spec.amounts, [0.5, 0.5], rtol=1e-5)
    np.testing.assert_allclose(spec.model_per_m, spec.mu_per_m, rtol=1e-5)
    assert spec.phases == ["LiFePO4", "FePO4"] and spec.n_voxels == (labels == 2).sum()
    with pytest.raises(InputError, match="particle 9 is not in particles/labels"):
        particle_spectrum(path, 9)


def test_manifest_declares_reader_sample_and_widget():
    from importlib.resources import files

    doc = yaml.safe_load(files("chemtomo.viewer").joinpath("napari.yaml").read_text())
    assert doc["name"] == "chemtomo"
    contrib = doc["contributions"]
    commands = {c["id"]: c["python_name"] for c in contrib["commands"]}
    import importlib

    for python_name in commands.values():  # every command resolves to a callable
        mod, _, attr = python_name.partition(":")
        assert callable(getattr(importlib.import_module(mod), attr))
    assert contrib["readers"][0]["command"] in commands and contrib["readers"][0]["accepts_directories"]
    assert contrib["sample_data"][0]["command"] in commands
    assert contrib["widgets"][0]["command"] in commands
