"""Xradia .txrm/.xrm files (io/xradia.py), written by the documented test writer cfb_writer.py.

No small public .txrm with a licence allowing redistribution was found in the time available;
set CHEMTOMO_TXRM to a real file to also run the optional check on it.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from chemtomo.core.errors import InputError
from chemtomo.io import describe
from chemtomo.io.xradia import read_xradia
from chemtomo.pipeline import config_for_manifest, run_pipeline

sys.path.insert(0, str(Path(__file__).parent))
from cfb_writer import write_cfb  # noqa: E402

H, W = 12, 16


def txrm_streams(*, n=3, energy=708.2, angles=None, dtype=5, ref=True, seed=0):
    rng = np.random.default_rng(seed)
    angles = np.linspace(-60, 60, n) if angles is None else np.asarray(angles)
    s = {"ImageInfo/ImageWidth": np.uint32(W).tobytes(), "ImageInfo/ImageHeight": np.uint32(H).tobytes(),
         "ImageInfo/DataType": np.uint32(dtype).tobytes(), "ImageInfo/NoOfImages": np.uint32(n).tobytes(),
         "ImageInfo/Angles": angles.astype("<f4").tobytes(),
         "ImageInfo/Energy": np.full(n, energy, "<f4").tobytes(),
         "ImageInfo/PixelSize": np.float32(0.03).tobytes()}  # 30 nm in µm
    images = rng.integers(1000, 2000, (n, H, W)).astype("<u2" if dtype == 5 else "<f4")
    for i in range(n):
        s[f"ImageData{1 + i // 100}/Image{i + 1}"] = images[i].tobytes()
    if ref:
        s["ReferenceData/Image"] = np.full((H, W), 3000.0, "<f4").tobytes()
        s["ReferenceData/DataType"] = np.uint32(10).tobytes()
    return s, images


def test_round_trip_of_a_written_txrm(tmp_path):
    streams, images = txrm_streams(n=3)
    write_cfb(tmp_path / "t.txrm", streams)
    ff = read_xradia(tmp_path / "t.txrm")
    assert ff.data.dtype == np.float32 and np.array_equal(ff.data, images.astype(np.float32))
    assert ff.angles_deg.tolist() == [-60.0, 0.0, 60.0]
    assert ff.flats.shape == (1, H, W) and np.all(ff.flats == 3000.0)
    # float32 metadata: energy and pixel exact to float32 rounding (1e-7 relative)
    assert ff.energy_ev == pytest.approx(708.2, rel=1e-6) and ff.pixel_m == pytest.approx(30e-9, rel=1e-6)
    text = describe(tmp_path / "t.txrm")
    assert "3 images of 12×16 px" in text and "1 flats" in text and "708.20 eV" in text


def test_many_images_span_image_data_storages(tmp_path):
    streams, images = txrm_streams(n=101, ref=False)  # image 101 lives in ImageData2
    write_cfb(tmp_path / "t.txrm", streams)
    ff = read_xradia(tmp_path / "t.txrm")
    assert np.array_equal(ff.data[100], images[100].astype(np.float32)) and ff.flats is None


def test_txrm_files_in_a_manifest(tmp_path):
    for e in (708.2, 710.2):
        write_cfb(tmp_path / f"e{e}.txrm", txrm_streams(n=3, energy=e, seed=int(e))[0])
    (tmp_path / "manifest.csv").write_text("path,energy_eV\ne708.2.txrm,708.2\ne710.2.txrm,710.2\n")
    grid = np.round(np.arange(707.0, 712.01, 0.5), 2)
    (tmp_path / "references.csv").write_text("energy_eV,LiFePO4,FePO4\n" + "\n".join(
        f"{e},{1e6 + 1e4 * i},{2e6 - 1e4 * i}" for i, e in enumerate(grid)) + "\n")
    store = run_pipeline(config_for_manifest(tmp_path / "manifest.csv"), tmp_path / "run.zarr", only=("ptycho",))
    od = store.read("projections/708.2")
    # OD = −ln(I/flat) with I in [1000, 2000) and flat 3000: between ln 1.5 and ln 3
    assert od.shape[0] == 3 and np.all((od > np.log(1.5) - 1e-5) & (od < np.log(3.0) + 1e-5))


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.pop("ImageInfo/ImageWidth"), r"missing stream ImageInfo/ImageWidth"),
    (lambda s: s.update({"ImageInfo/DataType": np.uint32(7).tobytes()}), r"ImageInfo/DataType = 7; expected 5 .uint16. or 10"),
    (lambda s: s.update({"ImageData1/Image2": b"\0" * 10}), r"stream ImageData1/Image2 holds 10 bytes; expected 384"),
    (lambda s: s.update({"ImageInfo/Angles": np.zeros(2, "<f4").tobytes()}), r"ImageInfo/Angles holds 2 values for 3 images"),
    (lambda s: s.update({"ImageInfo/Energy": np.array([708, 708, 712], "<f4").tobytes()}),
     r"ImageInfo/Energy varies from 708 to 712 eV"),
    (lambda s: s.update({"ReferenceData/Image": b"\0" * 8}), r"stream ReferenceData/Image holds 8 bytes; expected 768"),
    (lambda s: s.update({"ImageInfo/ImageHeight": np.uint32(0).tobytes()}), r"image size 0×16"),
    (lambda s: s.update({"ImageInfo/NoOfImages": b"\1"}), r"stream ImageInfo/NoOfImages holds 1 bytes"),
])
def test_malformed_txrm(tmp_path, edit, message):
    streams, _ = txrm_streams(n=3)
    edit(streams)
    write_cfb(tmp_path / "bad.txrm", streams)
    with pytest.raises(InputError, match=message) as err:
        read_xradia(tmp_path / "bad.txrm")
    assert "bad.txrm" in str(err.value)


def test_not_an_ole_file(tmp_path):
    p = tmp_path / "x.txrm"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 600)
    with pytest.raises(InputError, match=r"x.txrm: not an OLE2 compound file"):
        read_xradia(p)
    with pytest.raises(InputError, match=r"x.txrm: not an OLE2 compound file"):
        describe(p)


@pytest.mark.skipif(not os.environ.get("CHEMTOMO_TXRM"), reason="set CHEMTOMO_TXRM to a real .txrm file")
def test_a_real_txrm():
    ff = read_xradia(os.environ["CHEMTOMO_TXRM"])
    assert ff.data.ndim == 3 and ff.angles_deg.size == ff.data.shape[0] and np.all(np.isfinite(ff.data))
