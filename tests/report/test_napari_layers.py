"""The napari layers of `chemtomo view`, checked headless (no napari, no display): data in (z, y, x)
order equal to the store's volumes, scale in nm, the report's class colours."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from typer.testing import CliRunner

from chemtomo.chem.figures import CLASS_COLOURS
from chemtomo.cli import app
from chemtomo.core import StoreError
from chemtomo.io.store import RunStore
from chemtomo.report import napari_layers
from chemtomo.report.napari_layers import layer_specs


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    rng = np.random.default_rng(2)
    mu = (rng.random((6, 8, 10)) * 1e7).astype(np.float32)
    s.write_group("volumes", {"708.2": mu, "710.2": 2 * mu}, attrs={"voxel_m": 6.7e-9, "energies_eV": [708.2, 710.2]})
    s.write_group("tiltseries", {}, attrs={"reference_energy_eV": 710.2})
    labels = rng.integers(0, 4, mu.shape).astype(np.uint8)
    s.write_group("chem", {"fraction": mu / 1e7, "density": mu, "labels": labels}, attrs={"voxel_m": 6.7e-9})
    s.write_group("particles", {"labels": (labels > 2).astype(np.int32)}, attrs={"voxel_m": 6.7e-9})
    return s, mu, labels


def test_layers_hold_the_volumes_in_nm(store):
    s, mu, labels = store
    specs = {sp.name: sp for sp in layer_specs(s.path)}
    assert list(specs) == ["μ 708.2 eV (1/m)", "μ 710.2 eV (1/m)", "FePO4 fraction", "density",
                           "classes (1 LFP-rich, 2 mixed, 3 FP-rich)", "particles"]
    for sp in specs.values():
        assert sp.scale_nm == (6.7, 6.7, 6.7)  # napari's scale: the voxel in nm on every axis
    # the store's (y, z, x) shown as (z, y, x), the order of the OME-Zarr export
    np.testing.assert_array_equal(np.asarray(specs["μ 710.2 eV (1/m)"].data), np.transpose(2 * mu, (1, 0, 2)))
    assert specs["μ 710.2 eV (1/m)"].visible and not specs["μ 708.2 eV (1/m)"].visible  # the reference energy
    assert specs["FePO4 fraction"].contrast_limits == (0.0, 1.0)
    cls = specs["classes (1 LFP-rich, 2 mixed, 3 FP-rich)"]
    assert cls.kind == "labels" and cls.colors[0][3] == 0
    np.testing.assert_array_equal(np.asarray(cls.data), np.transpose(labels, (1, 0, 2)))
    for value, name in zip((1, 2, 3), CLASS_COLOURS):  # 8-bit rounding of the report colours
        np.testing.assert_allclose(cls.colors[value], to_rgba(name), atol=0.5 / 255)


def test_no_volumes_is_an_error(tmp_path):
    with pytest.raises(StoreError, match="run the reconstruction first"):
        layer_specs(RunStore(tmp_path / "e.zarr").path)


def test_view_without_napari_says_how_to_install(store, monkeypatch):
    monkeypatch.setattr(napari_layers, "napari_available", lambda: False)
    r = CliRunner().invoke(app, ["view", str(store[0].path)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == ["napari is not installed; install it with: pip install 'chemtomo[view]'"]
