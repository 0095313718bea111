"""A small chemtomo run store with known content, as `chemtomo run` writes it."""

import numpy as np
import pandas as pd
import pytest

from chemtomo import __version__
from chemtomo.io.store import RunStore
from chemtomo.particles.measure import measure

VOXEL_M = 6.7e-9
REFS = np.array([[3.0e6, 1.0e6], [1.5e6, 4.0e6]])  # μ (1/m) per unit concentration: rows 708.2, 710.2 eV


@pytest.fixture
def run_store(tmp_path):
    """Two particles of known composition: #1 pure LiFePO4 (c = (1, 0)), #2 half FePO4 (c = (.5, .5))."""
    shape = (6, 8, 10)
    labels = np.zeros(shape, np.int32)
    labels[1:4, 1:4, 1:5] = 1
    labels[2:5, 4:7, 6:9] = 2
    conc = np.zeros((2,) + shape)
    conc[:, labels == 1] = np.array([[1.0], [0.0]])
    conc[:, labels == 2] = np.array([[0.5], [0.5]])
    mu = np.einsum("ek,k...->e...", REFS, conc).astype(np.float32)
    frac = np.where(labels > 0, conc[1] / np.maximum(conc.sum(0), 1e-9), np.nan).astype(np.float32)
    classes = np.where(labels == 1, 1, np.where(labels == 2, 2, 0)).astype(np.uint8)
    s = RunStore(tmp_path / "run.zarr")
    s.update_attrs(chemtomo_version=__version__)
    s.write_group("volumes", {"708.2": mu[0], "710.2": mu[1]}, attrs={"voxel_m": VOXEL_M, "energies_eV": [708.2, 710.2]})
    s.write_group("chem", {"fraction": frac, "density": conc.sum(0).astype(np.float32), "labels": classes},
                  attrs={"voxel_m": VOXEL_M, "phases": ["LiFePO4", "FePO4"], "energies_eV": [708.2, 710.2],
                         "references": REFS.tolist()})
    table = measure(labels, frac, VOXEL_M)
    arrays = {"labels": labels}
    for c in table.columns:
        arrays[f"table_{c}"] = np.asarray(table[c].to_numpy(), dtype=np.float64 if table[c].dtype != bool else bool)
    s.write_group("particles", arrays, attrs={"columns": list(table.columns), "voxel_m": VOXEL_M})
    return s.path, mu, labels, pd.DataFrame(table)
