"""Optional: chemtomo's alignment of etspy's measured HAADF-STEM tilt series against etspy's own.

Skips without the data (tests/data/measured/README.md) or without ASTRA (the judge). Runs the
same alignment and judge as ``benchmarks/stem_measured.py`` on every 4th slice: a few minutes.
"""

import os
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent.parent / "data" / "measured"


def _data_dir() -> Path:
    for d in (os.environ.get("CHEMTOMO_MEASURED_DATA"), HERE):
        if d and (Path(d) / "HAADF.mrc").exists() and (Path(d) / "HAADF_Aligned.hspy").exists():
            return Path(d)
    pytest.skip(f"etspy's HAADF.mrc / HAADF_Aligned.hspy not found in $CHEMTOMO_MEASURED_DATA or "
                f"{HERE} (third-party files, not committed: see tests/data/measured/README.md)")


def test_haadf_mrc_reads_as_the_etspy_series():
    from chemtomo.io.mrc import read_mrc

    m = read_mrc(_data_dir() / "HAADF.mrc")
    assert m.data.shape == (77, 256, 256) and m.data.dtype == np.int16
    assert len(m.extended) == 131072  # FEI extended header
    # the HAADF detector's offset: vacuum at ≈ −31 890 counts, the needle well above it
    assert -31950 < np.median(m.data[38, :8]) < -31800 and m.data[38].max() > 0


@pytest.mark.slow  # ≈ 5 min on one free core: a 6-iteration alignment and two judged stacks
def test_chemtomo_residual_below_etspy():
    pytest.importorskip("astra", reason="the judge is ASTRA's SIRT (anchors extra)")
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "stem_measured", Path(__file__).resolve().parents[2] / "benchmarks" / "stem_measured.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["stem_measured"] = bench
    spec.loader.exec_module(bench)
    d = _data_dir()
    raw, angles = bench.load(d)
    chem, m, al = bench.chemtomo_align(raw, angles, iterations=6)
    shipped, sm, _, _ = bench.etspy_shipped(d)
    my, mx = max(m[0], sm[0]), max(m[1], sm[1])
    crop = (slice(None), slice(my, 256 - my), slice(mx, 256 - mx))
    r_chem = bench.sirt_residual(bench.background_subtract(chem[crop]), angles, step=4)
    r_etspy = bench.sirt_residual(bench.background_subtract(shipped[crop]), angles, step=4)
    # measured 0.98× (benchmarks/RESULTS.md, issue 24); the goal of 0.9× is not met yet,
    # so this checks what is reached: chemtomo at least as consistent as etspy's shipped stack
    # (the ratio moved by ±0.01 between crops 49 and 53 px, hence no tighter bound)
    assert r_chem <= 1.0 * r_etspy, (r_chem, r_etspy)
