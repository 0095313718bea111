"""Report text and tables that say what they show: μ axes in 1/µm, the FRC's projection count, a
particle table that fits the page, negative OD split into air and sample."""

import numpy as np
import pandas as pd
import pytest

from chemtomo import chem
from chemtomo.io.store import RunStore
from chemtomo.report import html as H


def test_frc_text_says_how_many_projections():
    one = H._frc_text({"frc_resolution_m": [np.nan, 12e-9, np.nan], "angles_deg": [-10, 0, 10]}, 12e-9)
    assert "one projection only (0°" in one and "12 nm" in one
    three = H._frc_text({"frc_resolution_m": [11e-9, 12e-9, 14e-9], "angles_deg": [-10, 0, 10]}, 12e-9)
    assert "median over 3 projections (-10°, 0°, 10°)" in three and "range 11–14 nm" in three


def test_particle_table_is_narrow_and_formatted():
    t = pd.DataFrame({"label": [1.0], "volume_nm3": [636123.0], "mean_fp_fraction": [0.4767],
                      "axis_length_x": [0.9], "centroid_y_nm": [160.2], "thickness_nm": [43.06], "active_15": [True]})
    out = H._particle_table_html(t)
    assert "axis_length_x" not in out and "centroid" not in out.split("<p")[0]  # in the CSV export only
    assert "<td>636.1</td>" in out and "<td>47.7</td>" in out and "<td>43</td>" in out and "<td>yes</td>" in out
    assert 'class="scroll wide"' in out


def test_correlation_plot_gets_mu_in_inverse_micrometres(tmp_path, monkeypatch):
    s = RunStore(tmp_path / "r.zarr")
    mu = np.full((4, 4, 4), 8.8e6, np.float32)  # 8.8 /µm, LiFePO4 at 708.2 eV
    labels = np.ones(mu.shape, np.uint8)
    s.write_group("volumes", {"708.2": mu, "710.2": mu * 0.6}, attrs={"energies_eV": [708.2, 710.2]})
    s.write_group("chem", {"fraction": np.zeros_like(mu), "labels": labels},
                  attrs={"energies_eV": [708.2, 710.2], "references": [[8.8e6, 3.3e6], [5.4e6, 7.8e6]],
                         "phases": ["LiFePO4", "FePO4"], "method": "exact", "n_voxels": 64, "soc": 0.0,
                         "soc_sigma": 0.0, "class_fractions": {"LFP-rich": 1.0}, "thresholds": [0.3, 0.7],
                         "voxel_m": 6.7e-9})
    seen = {}

    def spy(a, b, refs, labels, **kw):
        seen.update(a=a, b=b, **kw)
        raise RuntimeError("stop after the call")

    monkeypatch.setattr(chem, "plot_correlation", spy)
    with pytest.raises(RuntimeError, match="stop after"):
        H._section_chem(s)
    assert np.allclose(seen["a"], 8.8) and np.allclose(seen["b"], 8.8 * 0.6, rtol=1e-6)
    assert seen["axis_label"].format(energy=708.2) == "μ at 708.2 eV (1/µm)"


def test_negative_od_is_split_into_air_and_sample(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    n, ny, nx = 6, 8, 16
    angles = np.linspace(-60, 60, n)
    labels = np.zeros((ny, nx, nx), np.uint8)
    labels[:, 6:10, 6:10] = 1  # a 4×4-voxel column on the rotation axis: seen at every angle
    from chemtomo.tomo import project

    rng = np.random.default_rng(0)
    tilt = (project(labels.astype(np.float32) * 0.1, angles) + rng.normal(0, 0.01, (n, ny, nx))).astype(np.float32)
    s.write_group("chem", {"labels": labels})
    s.write_group("tiltseries", {"708.2": tilt}, attrs={"energies_eV": [708.2], "reference_energy_eV": 708.2,
                                                        "pixel_m": 6.7e-9})
    s.write_group("alignment", {"shifts_px": np.zeros((n, 2)), "rotation_deg": np.zeros(n), "scale": np.ones(n)},
                  attrs={"energy_offsets_px": {"708.2": [0, 0]}, "angles_deg": angles.tolist()})
    (air, sample), = H.negative_od_shares(s).values()
    # air: zero-mean noise, so half negative within the binomial spread of ~500 pixels (±0.1 at 4.5σ);
    # sample: OD ≥ 0.1 against noise 0.01 (10σ), so none negative
    assert air == pytest.approx(0.5, abs=0.1) and sample == 0.0


def test_orthoslices_of_many_energies_are_the_ends_and_the_energies_the_run_uses(tmp_path):
    # a XANES run of 16 energies: four orthoslice figures, not sixteen (the viewer has them all)
    s = RunStore(tmp_path / "r.zarr")
    energies = [7090.0 + 5 * k for k in range(16)]
    assert H._orthoslice_energies(s, energies[:4]) == energies[:4]  # few energies: every one
    s.write_group("tiltseries", {}, attrs={"reference_energy_eV": 7125.0})
    assert H._orthoslice_energies(s, energies) == [7090.0, 7125.0, 7165.0]
    s.write_group("chem", {}, attrs={"polar_energies_eV": [7110.0, 7140.0]})
    assert H._orthoslice_energies(s, energies) == [7090.0, 7110.0, 7125.0, 7140.0]  # at most four, in order
