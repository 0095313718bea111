"""The report's inline slice viewer: quantisation, the embedded payload, and (when Debian's chromium
is installed) that the page's script draws the slice the slider selects."""

import base64
import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from chemtomo.io.store import RunStore
from chemtomo.report.html import build_report
from chemtomo.report.slice_viewer import quantise, viewer_payload


def test_quantise_is_exact_to_half_a_step():
    v = np.random.default_rng(0).normal(5e6, 1e6, 1000)
    v[::97] = np.nan
    q, lo, hi = quantise(v)
    step = (hi - lo) / 254
    ok = np.isfinite(v)
    assert (q[~ok] == 255).all() and q[ok].max() == 254 and q[ok].min() == 0
    # rounding to the nearest code: at most half a step off (+ float64 rounding)
    assert np.abs(lo + q[ok] * step - v[ok]).max() <= step / 2 * (1 + 1e-9)


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "r.zarr")
    ny, nz, nx = 10, 40, 24  # store order; 40 > max_side 32 below: one halving
    mu = np.zeros((ny, nz, nx), np.float32)
    for k in range(nz):
        mu[:, k, :] = k * 1e5  # μ grows along the beam: every z slice has its own value
    labels = np.zeros(mu.shape, np.uint8)
    labels[2:8, 10:30, 5:20] = 2
    s.write_group("volumes", {"708.2": mu}, attrs={"voxel_m": 6.7e-9, "energies_eV": [708.2],
                                                    "algorithm": "art", "iterations": 1, "nonneg": True,
                                                    "n_angles": 9})
    s.write_group("chem", {"labels": labels}, attrs={"voxel_m": 6.7e-9, "soc": 0.5, "soc_sigma": 0.01})
    return s, mu, labels


def _codes(layer):
    return np.frombuffer(zlib.decompress(base64.b64decode(layer["data"])), np.uint8).reshape(layer["shape"])


def test_payload_is_z_y_x_halved_and_in_inverse_micrometres(store):
    s, mu, labels = store
    p = viewer_payload(s, max_side=32)
    mu_layer, cls = p["layers"]
    assert mu_layer["shape"] == [20, 5, 12] and mu_layer["voxel_nm"] == pytest.approx(13.4)
    assert mu_layer["unit"] == "1/µm" and mu_layer["hi"] == pytest.approx(3.85)  # mean of 3.8 and 3.9 /µm
    q = _codes(mu_layer)
    assert (np.diff(q[:, 0, 0].astype(int)) > 0).all()  # z runs along the beam, as in the store's nz
    assert cls["shape"] == [20, 5, 12] and set(np.unique(_codes(cls))) == {0, 2}
    assert cls["names"]["2"] == "mixed"


def _dom(html_path, tmp_path, fragment):
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
                        html_path.resolve().as_uri() + fragment], capture_output=True, text=True, timeout=120)
    m = re.search(r'<div id="slice-viewer" ([^>]*)>', r.stdout)
    assert m, r.stderr[-2000:]
    readout = re.search(r'<div id="sv-readout">([^<]*)</div>', r.stdout).group(1)
    return dict(re.findall(r'data-(\w+)="([^"]*)"', m.group(1)), readout=readout)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_slider_draws_the_selected_slice_in_headless_chromium(store, tmp_path):
    s, _, _ = store
    page = tmp_path / "report.html"
    page.write_text(build_report(s), encoding="utf-8")
    assert "<script src" not in page.read_text() and "http" not in page.read_text().split("sv-data")[1][:200]
    q = _codes(viewer_payload(s)["layers"][0])  # the page's data: max_side 128, no halving here
    seen = {}
    for k in (3, 31):
        # #slice=K sets the slider and fires its input event, as dragging it does
        d = _dom(page, tmp_path, f"#slice={k}")
        assert d["slice"] == str(k) and d["axis"] == "0"
        # the drawn slice's pixel codes add up to the codes of z = k in the embedded volume
        assert int(d["checksum"]) == int(q[k].sum())
        seen[k] = d["checksum"]
    assert seen[3] != seen[31]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_cursor_reads_the_voxel_value(store, tmp_path):
    s, mu, labels = store
    page = tmp_path / "report.html"
    page.write_text(build_report(s), encoding="utf-8")
    # z slice 12, row (y) 4, column (x) 10: μ = 12 × 1e5 /m = 1.2 /µm; the class there is 2 (mixed)
    d = _dom(page, tmp_path, "#slice=12&probe=4,10")
    assert "(z, y, x) = (80, 27, 67) nm" in d["readout"]  # 12, 4, 10 voxels of 6.7 nm, rounded
    value = float(re.search(r"μ at 708.2 eV ([0-9.]+) ±", d["readout"]).group(1))
    # shown to 3 digits of the code's value, which is within half a step (3.9/254/2 /µm) of the truth
    assert value == pytest.approx(1.2, abs=3.9 / 254 / 2 + 0.005)
    assert "classes mixed" in d["readout"] and labels[4, 12, 10] == 2
