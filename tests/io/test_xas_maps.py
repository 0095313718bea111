"""io.xas_maps: the chemtomo xas store (one 2D array per reference column, attributes in SI units)."""

import numpy as np
import pytest

from chemtomo.core import InputError
from chemtomo.io.xas_maps import read_xas_maps, write_xas_maps


def _write(path, maps=None, **attrs):
    maps = maps if maps is not None else {"LiFePO4": np.ones((3, 4)), "FePO4": np.zeros((3, 4))}
    attrs = attrs or {"pixel_m": 4e-8, "energies_ev": np.array([700.0, 710.0])}
    return write_xas_maps(path, maps, r_factor=np.full((3, 4), 0.1), od=np.zeros((2, 3, 4)),
                          i0_mask=np.eye(3, 4, dtype=bool), attrs=attrs)


def test_round_trip_and_replace(tmp_path):
    out = _write(tmp_path / "maps.zarr")
    arrays, attrs = read_xas_maps(out)
    assert sorted(arrays) == ["FePO4", "LiFePO4", "i0_mask", "od", "r_factor"]
    assert arrays["LiFePO4"].dtype == np.float32 and arrays["i0_mask"].dtype == np.uint8
    assert attrs["pixel_m"] == 4e-8 and attrs["energies_ev"] == [700.0, 710.0]
    _write(out, maps={"A": np.ones((3, 4)), "B": np.ones((3, 4))})       # an existing store is replaced
    assert sorted(read_xas_maps(out)[0]) == ["A", "B", "i0_mask", "od", "r_factor"]
    assert [p.name for p in tmp_path.iterdir()] == ["maps.zarr"]          # no temporary left behind


def test_refusals(tmp_path):
    with pytest.raises(InputError, match=r"reference column name\(s\) \['r_factor'\] cannot name a map"):
        _write(tmp_path / "m.zarr", maps={"r_factor": np.ones((3, 4)), "B": np.ones((3, 4))})
    with pytest.raises(InputError, match=r"attrs must hold 'energies_ev'"):
        _write(tmp_path / "m.zarr", pixel_m=1e-8)
    (tmp_path / "precious").mkdir()
    with pytest.raises(InputError, match=r"precious: exists and is not a Zarr store; refusing to replace it"):
        _write(tmp_path / "precious")
    with pytest.raises(InputError, match=r"nothing.zarr: not a Zarr store"):
        read_xas_maps(tmp_path / "nothing.zarr")
