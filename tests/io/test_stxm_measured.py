"""Optional: the STXM readers on measured stacks shipped as test data by orange-spectroscopy.

The files are third-party (GPL-3.0-or-later) and not in the repository; each test skips, saying
where to get them, unless they are in tests/data/measured or in $CHEMTOMO_MEASURED_DATA
(tests/data/measured/README.md). Both are tiny crops of real scans with no chemistry in them:
they check that chemtomo reads what the microscopes write, and that the I0 and registration
steps run on real detector data.
"""

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from chemtomo.align import register_stack
from chemtomo.chem import stack_optical_density
from chemtomo.core import InputError
from chemtomo.io.stxm import read_stxm

HERE = Path(__file__).resolve().parent.parent / "data" / "measured"


def measured(name: str) -> Path:
    for d in (os.environ.get("CHEMTOMO_MEASURED_DATA"), HERE):
        if d and (Path(d) / name).exists():
            return Path(d) / name
    pytest.skip(f"measured STXM file {name} not found in $CHEMTOMO_MEASURED_DATA or {HERE} "
                "(third-party file, not committed: see tests/data/measured/README.md)")


def test_max_iv_hdr_xim():
    # MAX IV (2020), 10 x 10 pixels of 50 nm, 698 and 700 eV (below the Fe L3 edge), PMT signal
    path = measured("max_iv.hdr")
    s = read_stxm(path)
    assert s.counts.shape == (2, 10, 10)
    np.testing.assert_allclose(s.energies_ev, [698.0, 700.0])
    assert s.pixel_m == pytest.approx(50e-9, rel=1e-6)
    first = np.loadtxt(path.with_name("max_iv_a000.xim"))
    np.testing.assert_array_equal(s.counts[0], first)                   # rows are y, columns x
    np.testing.assert_allclose(s.x_m[[0, -1]], [-188.2969e-6, -187.8469e-6])
    # an empty field below the edge: the OD spread in the I0 region is the detector's noise,
    # below the Poisson level 1/sqrt(counts) ~ 0.028 of ~1270 counts
    od, region = stack_optical_density(s.counts)
    assert region.od_spread < 1.0 / np.sqrt(s.counts.mean())


def test_diamond_i08_nexus():
    # Diamond I08: NXstxm entry, group Counter1, photon_energy, 1-based axis attributes,
    # positions in mm without a units attribute (refused as µm, read with position_unit="mm")
    path = measured("small_diamond_nxs.nxs")
    with pytest.raises(InputError, match=r"sample_x steps by 6.67e-11 m, not a STXM pixel size .*\(position_unit"):
        read_stxm(path)
    s = read_stxm(path, position_unit="mm")
    with h5py.File(path, "r") as f:
        raw = f["entry1/Counter1/data"][()]
    assert s.counts.shape == (8, 7, 6)
    np.testing.assert_array_equal(s.counts, raw)                        # stored (energy, y, x) already
    np.testing.assert_allclose(s.energies_ev[[0, -1]], [278.0, 282.2])
    assert s.pixel_m == pytest.approx(66.67e-9, rel=1e-3) and s.dwell_ms == pytest.approx(10.0)
    od, region = stack_optical_density(s.counts)
    shifts = register_stack(od)
    assert region.n_pixels >= 16 and np.all(np.isfinite(shifts))
