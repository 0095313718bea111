"""
The paper's flow on the demo dataset
====================================

``make demo`` (or ``chemtomo demo demo-run``) simulates a small version of the paper's experiment
and runs every stage on it. This tutorial does the same from Python, so that each stage's result
can be looked at as it is read back from the run store: ptychographic projections, the OD tilt
series and its alignment, one tomogram per energy with its FSC, the chemical map and the
particles, always against the simulator's ground truth.

The demo preset: 10 LiFePO4/FePO4 plates, 31 angles from −80° to +77°, two energies at the Fe L3
edge (708.2 eV and 710.2 eV), 62 ptychography scans of 54 diffraction frames of 64 × 64 pixels.
To keep the documentation build short this page fixes the ptychography chain to ``RAAR:50``
instead of the default chain (``chemtomo.ptycho.DEFAULT_ALGORITHM``, which runs up to about twice
as many iterations on these scans and is, on the demo's plates, slightly less accurate; see the
ptychography results page).
"""

# %%
# Simulate and write the dataset
# ------------------------------
# :func:`chemtomo.simulate.simulate_dataset` makes the scans (with detector noise, a static
# background, dead pixels, position jitter and a misaligned tilt series) and
# :func:`chemtomo.io.simulated.write_dataset` writes them as CXI files with a manifest, the
# reference spectra and the truth: the same files a beamline would give.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from chemtomo.io.simulated import read_truth, write_dataset
from chemtomo.io.store import RunStore
from chemtomo.io.tables import load_particle_table
from chemtomo.pipeline import config_for_manifest, run_pipeline
from chemtomo.simulate import simulate_dataset

work = Path(tempfile.mkdtemp(prefix="chemtomo-demo-"))
dataset = simulate_dataset("demo", seed=0)
write_dataset(work / "data", dataset)
print((work / "data" / "manifest.csv").read_text().splitlines()[:3])

# %%
# Run the pipeline
# ----------------
# :func:`chemtomo.pipeline.config_for_manifest` gives the defaults of every stage for a manifest
# (the same as ``chemtomo run manifest.csv``); overrides are per section, as in a TOML file.
# Every stage writes into the store; running the same call again would redo nothing.
config = config_for_manifest(work / "data" / "manifest.csv",
                             {"ptycho": {"algorithm": "RAAR:50", "frc_angles": 1}})
store = run_pipeline(config, work / "run.zarr", say=print)

# %%
# Projections: the complex transmission of each scan
# --------------------------------------------------
# ``projections/{energy}`` holds ``(n_angles, ny, nx)`` complex transmissions; the optical
# density is −ln|T|² and the phase arg T.
store = RunStore(work / "run.zarr", create=False)
print(store.arrays("projections"))
proj = store.read("projections/708.2")
fig, ax = plt.subplots(1, 2, figsize=(8, 3.5))
ax[0].imshow(-np.log(np.abs(proj[15]) ** 2), cmap="gray")
ax[0].set_title("OD at 708.2 eV, 0°")
ax[1].imshow(np.angle(proj[15]), cmap="twilight")
ax[1].set_title("phase (rad)")
fig.tight_layout()

# %%
# The volumes and the chemical map
# --------------------------------
# ``volumes/{energy}`` are linear absorption μ in 1/m, ``(ny, nz, nx)`` with y the rotation axis;
# ``chem/fraction`` is the FePO4 fraction per voxel (NaN outside the sample) and ``chem/labels``
# its classes (1 LFP-rich, 2 mixed, 3 FP-rich). The reconstructed grid is larger than the truth's
# (the field of view of the scans), so they are compared by numbers, not voxel by voxel, here.
mu = store.read("volumes/708.2")
x_fp = store.read("chem/fraction")
classes = store.read("chem/labels")
y = int(np.argmax(np.isfinite(x_fp).sum(axis=(1, 2))))   # the slice with the most sample
fig, ax = plt.subplots(1, 3, figsize=(11, 3.5))
ax[0].imshow(mu[y], cmap="gray")
ax[0].set_title(f"μ at 708.2 eV, slice y = {y}")
im = ax[1].imshow(x_fp[y], vmin=0, vmax=1, cmap="coolwarm")
ax[1].set_title("FePO4 fraction")
fig.colorbar(im, ax=ax[1], shrink=0.8)
ax[2].imshow(classes[y], vmin=0, vmax=3, cmap="viridis", interpolation="nearest")
ax[2].set_title("classes: LFP-rich, mixed, FP-rich")
fig.tight_layout()

# %%
# Resolution, state of charge and particles
# -----------------------------------------
# Each stage's record (``store.stage_record(name)``) holds its summary, the numbers the report
# shows; the particle table is one row per particle, units in the column names.
truth = read_truth(work / "data")
print("FSC:", store.stage_record("fsc")["summary"])
chem_summary = store.stage_record("chem")["summary"]
print(f"state of charge {chem_summary['soc']:.4f} ± {chem_summary['soc_sigma']:.4f}, truth {truth.soc_measured:.4f}")
table = load_particle_table(store)
print(f"{len(table)} particles found, {len(truth.sample.table)} in the truth")
print(table[["label", "volume_nm3", "thickness_nm", "mean_fp_fraction"]].round(2).to_string(index=False))
