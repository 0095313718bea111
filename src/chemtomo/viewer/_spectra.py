"""What the particle widget shows, computed without napari or Qt.

For one particle (a label of ``particles/labels``): its row of the particle table, and its
spectrum: the mean linear absorption μ (1/m) at every measured energy over the particle's voxels,
with the least-squares mixture of the run's reference spectra that explains it (the same reference
matrix the chemistry used: ``chem`` attributes ``references``, (n_energies, n_phases), one common
scale), so that a user sees how well the particle's composition is determined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ParticleSpectrum", "particle_row", "particle_spectrum"]


@dataclass(frozen=True)
class ParticleSpectrum:
    """Mean μ of one particle per energy, and its fit by the reference spectra.

    energies_eV  : (n_energies,) measured energies
    mu_per_m     : (n_energies,) mean μ over the particle's voxels, 1/m
    phases       : names of the reference phases ([] when the run has no chemistry)
    amounts      : (n_phases,) fitted concentration of each phase (reference units)
    model_per_m  : (n_energies,) the fitted mixture, 1/m (NaN when there is no chemistry)
    n_voxels     : voxels in the particle
    """

    energies_eV: np.ndarray
    mu_per_m: np.ndarray
    phases: list
    amounts: np.ndarray
    model_per_m: np.ndarray
    n_voxels: int


def particle_row(features, label: int) -> dict | None:
    """The particle table's row of ``label`` as {column: value}, or None if no such particle."""
    if features is None or len(features) == 0:
        return None
    col = "index" if "index" in features else "label"
    rows = features[features[col] == int(label)]
    if len(rows) == 0:
        return None
    row = rows.iloc[0].to_dict()
    row.pop("index", None)
    return row


def particle_spectrum(store_path, label: int) -> ParticleSpectrum:
    """Mean μ per energy over the voxels of particle ``label``, with its reference fit.

    Raises StoreError when the store has no particles or volumes, and InputError when the label
    is not a particle of the run.
    """
    from ..core.errors import InputError
    from ..io.store import RunStore, energy_key

    store = RunStore(store_path, create=False)
    labels = store.read("particles/labels")
    inside = labels == int(label)
    n = int(inside.sum())
    if label <= 0 or n == 0:
        raise InputError(f"{store.path}: particle {label} is not in particles/labels "
                         f"(labels run 1..{int(labels.max())})")
    energies = [float(e) for e in store.group_attrs("volumes")["energies_eV"]]
    mu = np.array([float(store.read(f"volumes/{energy_key(e)}")[inside].mean()) for e in energies])
    phases, amounts, model = [], np.zeros(0), np.full(len(energies), np.nan)
    if store.has("chem"):
        a = store.group_attrs("chem")
        refs = np.asarray(a.get("references", []), float)
        ref_e = [float(e) for e in a.get("energies_eV", energies)]
        if refs.ndim == 2 and refs.shape[0] == len(ref_e) and np.allclose(ref_e, energies, atol=1e-3):
            from scipy.optimize import nnls

            phases = list(a.get("phases", [f"phase {k}" for k in range(refs.shape[1])]))
            amounts, _ = nnls(refs, mu)
            model = refs @ amounts
    return ParticleSpectrum(np.asarray(energies), mu, phases, np.asarray(amounts), model, n)
