"""Tables kept in a run store, read back as pandas DataFrames.

Its own module so that the exports (``export``, ``ome_zarr``) and the report read the particle
table without importing each other.
"""

from __future__ import annotations

import pandas as pd

from .store import RunStore

__all__ = ["load_particle_table"]


def load_particle_table(store: RunStore) -> pd.DataFrame:
    """The particle table from a run store, one row per particle, units in column names."""
    a = store.group_attrs("particles")
    return pd.DataFrame({c: store.read(f"particles/table_{c}") for c in a["columns"]})
