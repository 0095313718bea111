"""CXI reader/writer: round trips, a file written with plain h5py, and every validation error."""

import math

import h5py
import numpy as np
import pytest

from chemtomo.core import InputError, Scan, Projection, Curve
from chemtomo.core.units import ev_to_joule
from chemtomo.io import read_projection, read_scan, write_projection, write_scan


def make_scan(n=5, shape=(16, 16), seed=0, **kw):
    rng = np.random.default_rng(seed)
    frames = rng.poisson(50, size=(n, *shape)).astype(np.float32)
    pos = rng.uniform(-2e-7, 2e-7, size=(n, 2))
    args = dict(frames=frames, positions_m=pos, energy_ev=708.2, distance_m=0.08, detector_pixel_m=30e-6,
                angle_deg=-12.5)
    args.update(kw)
    return Scan(**args)


def test_round_trip_preserves_every_field(tmp_path):
    mask = np.ones((16, 16), bool)
    mask[3, 4] = False
    probe = (np.ones((2, 16, 16)) * (1 + 1j)).astype(np.complex64)
    scan = make_scan(mask=mask, probe=probe)
    path = write_scan(tmp_path / "s.cxi", scan)
    back = read_scan(path)
    # exact: float32 frames and float64 positions are stored losslessly
    np.testing.assert_array_equal(back.frames, scan.frames)
    np.testing.assert_array_equal(back.positions_m, scan.positions_m)
    np.testing.assert_array_equal(back.mask, mask)
    np.testing.assert_array_equal(back.probe, probe)
    assert back.energy_ev == pytest.approx(708.2, rel=1e-12)
    assert back.angle_deg == pytest.approx(-12.5, abs=1e-9)
    assert back.distance_m == 0.08 and back.detector_pixel_m == 30e-6
    assert back.frames.dtype == np.float32


def write_plain(path, n=4, ny=8, nx=8, energy_j=ev_to_joule(710.2), translation=None, frames=None,
                distance=0.1, pixel=20e-6, skip=()):
    """A CXI file in the standard layout, written with h5py directly (not chemtomo's writer)."""
    rng = np.random.default_rng(1)
    if frames is None:
        frames = rng.poisson(10, size=(n, ny, nx)).astype(np.uint16)
    if translation is None:
        translation = np.column_stack([np.arange(n) * 7e-8, np.arange(n) * -5e-8, np.zeros(n)])
    with h5py.File(path, "w") as f:
        if "data" not in skip:
            f["entry_1/data_1/data"] = frames
        if "translation" not in skip:
            f["entry_1/sample_1/geometry_1/translation"] = translation
        if "energy" not in skip:
            f["entry_1/instrument_1/source_1/energy"] = energy_j
        if "distance" not in skip:
            f["entry_1/instrument_1/detector_1/distance"] = distance
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = pixel
        f["entry_1/instrument_1/detector_1/y_pixel_size"] = pixel
        f["entry_1/sample_1/geometry_1/orientation"] = 30.0
    return path


def test_reader_on_plain_h5py_file(tmp_path):
    path = write_plain(tmp_path / "plain.cxi")
    s = read_scan(path)
    assert s.frames.shape == (4, 8, 8) and s.frames.dtype == np.float32
    # CXI translation is (x, y, z): positions come back as (y, x)
    np.testing.assert_allclose(s.positions_m[:, 1], np.arange(4) * 7e-8)
    np.testing.assert_allclose(s.positions_m[:, 0], np.arange(4) * -5e-8)
    assert s.energy_ev == pytest.approx(710.2)
    assert s.angle_deg == 30.0
    assert s.mask is None
    # object pixel = λ z / (n p) = 1.7457 nm · 0.1 / (8 · 20 µm)
    assert s.pixel_m == pytest.approx(1.239841984e-6 / 710.2 * 0.1 / (8 * 20e-6))


def test_flip_and_swap_options(tmp_path):
    path = write_plain(tmp_path / "plain.cxi")
    a = read_scan(path)
    b = read_scan(path, swap_xy=True, flip_x=True)
    np.testing.assert_allclose(b.positions_m[:, 0], a.positions_m[:, 1])
    np.testing.assert_allclose(b.positions_m[:, 1], -a.positions_m[:, 0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(skip=("data",)), "missing diffraction frames"),
    (dict(skip=("translation",)), "missing scan positions"),
    (dict(skip=("energy",)), "missing dataset /entry_1/instrument_1/source_1/energy"),
    (dict(skip=("distance",)), "detector_1/distance"),
    (dict(frames=np.ones((4, 8), np.float32)), "has rank 2"),
    (dict(frames=np.ones((0, 8, 8), np.float32)), "is empty"),
    (dict(translation=np.zeros((3, 3))), "has 3 rows; expected one position per frame"),
    (dict(translation=np.full((4, 3), np.nan)), "non-finite positions"),
    (dict(energy_j=708.2), "looks like eV"),
    (dict(energy_j=ev_to_joule(2.0e6)), "below 1e+06 eV"),
    (dict(energy_j=-ev_to_joule(700.0)), "expected a photon energy"),
    (dict(distance=0.0), "must be a positive finite number"),
    (dict(pixel=-1e-6), "x_pixel_size"),
])
def test_validation_errors_name_file_and_field(tmp_path, kwargs, message):
    path = write_plain(tmp_path / "bad.cxi", **kwargs)
    with pytest.raises(InputError, match="bad.cxi") as err:
        read_scan(path)
    assert message in str(err.value)


def test_detector_realities_are_read_not_refused(tmp_path):
    # NaN frames and negative counts are what detectors write (ptycho.detector handles them);
    # the strict check stays available to those who want it
    frames = np.ones((4, 8, 8), np.float32)
    frames[1] = np.nan
    frames[:, 0, 0] = -2
    path = write_plain(tmp_path / "raw.cxi", frames=frames)
    s = read_scan(path)
    assert np.isnan(s.frames[1]).sum() == 63 and (s.frames == -2).sum() == 4
    with pytest.raises(InputError, match="raw.cxi.*NaN or infinite counts in frames \\[1\\]"):
        read_scan(path, check_counts=True)
    frames[1] = 1
    with pytest.raises(InputError, match="negative counts"):
        read_scan(write_plain(tmp_path / "neg.cxi", frames=frames), check_counts=True)


def test_mismatch_message_has_both_shapes(tmp_path):
    path = write_plain(tmp_path / "scan_042.cxi", n=6, translation=np.zeros((5, 3)))
    with pytest.raises(InputError) as err:
        read_scan(path)
    msg = str(err.value)
    assert "scan_042.cxi" in msg and "(6, 8, 8)" in msg and "5 rows" in msg


def test_truncated_and_non_hdf5_files(tmp_path):
    good = write_scan(tmp_path / "g.cxi", make_scan())
    raw = good.read_bytes()
    trunc = tmp_path / "t.cxi"
    trunc.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputError, match="t.cxi"):
        read_scan(trunc)
    text = tmp_path / "x.cxi"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match="unreadable or truncated"):
        read_scan(text)
    with pytest.raises(InputError, match="not found"):
        read_scan(tmp_path / "missing.cxi")


def test_mask_all_bad_and_wrong_shape(tmp_path):
    path = write_plain(tmp_path / "m.cxi")
    with h5py.File(path, "a") as f:
        f["entry_1/instrument_1/detector_1/mask"] = np.ones((8, 8), np.uint32)
    with pytest.raises(InputError, match="flags every pixel"):
        read_scan(path)
    with h5py.File(path, "a") as f:
        del f["entry_1/instrument_1/detector_1/mask"]
        f["entry_1/instrument_1/detector_1/mask"] = np.zeros((4, 4), np.uint32)
    with pytest.raises(InputError, match="mask has shape"):
        read_scan(path)


def test_orientation_direction_cosines(tmp_path):
    path = write_plain(tmp_path / "o.cxi")
    t = math.radians(-40.0)
    with h5py.File(path, "a") as f:
        del f["entry_1/sample_1/geometry_1/orientation"]
        f["entry_1/sample_1/geometry_1/orientation"] = [math.cos(t), 0, math.sin(t), 0, 1, 0]
    assert read_scan(path).angle_deg == pytest.approx(-40.0)


def test_projection_round_trip_follows_cxi_image_convention(tmp_path):
    t = (np.exp(-0.1 + 0.3j) * np.ones((12, 10))).astype(np.complex64)
    frc = Curve(np.linspace(0, 5e7, 6), np.linspace(1, 0, 6), np.full(6, 0.2), 1.5e-8)
    proj = Projection(transmission=t, pixel_m=6.7e-9, energy_ev=708.2, angle_deg=10.0,
                      probe=np.ones((1, 8, 8), np.complex64), frc=frc)
    path = write_projection(tmp_path / "out.cxi", proj)
    with h5py.File(path) as f:
        assert f["entry_1/image_1/data"].dtype == np.complex64
        assert f["entry_1/image_1/data_space"][()] == b"real"
        assert f["entry_1/image_1/x_pixel_size"][()] == 6.7e-9
        assert f["entry_1/instrument_1/source_1/energy"][()] == pytest.approx(ev_to_joule(708.2))
    back = read_projection(path)
    np.testing.assert_array_equal(back.transmission, t)
    assert back.frc.resolution_m == 1.5e-8 and back.angle_deg == pytest.approx(10.0)


def test_hard_xray_scan_is_accepted(tmp_path):
    # any X-ray energy: a scan at 8.8 keV (refused before as outside 100–2000 eV) reads back exactly
    s = read_scan(write_plain(tmp_path / "hard.cxi", energy_j=ev_to_joule(8800.0)))
    assert s.energy_ev == pytest.approx(8800.0)


def write_image(path, data, *, x_pixel=10e-9, y_pixel=None, energy_path="entry_1/instrument_1/source_1/energy",
                energy_ev=856.0, angle=None):
    """A reconstructed image as other codes write it (ALS COSMIC, PyNX): plain h5py, optional fields."""
    with h5py.File(path, "w") as f:
        f["entry_1/image_1/data"] = data
        f["entry_1/image_1/x_pixel_size"] = x_pixel
        if y_pixel is not None:
            f["entry_1/image_1/y_pixel_size"] = y_pixel
        f[energy_path] = ev_to_joule(energy_ev)
        if angle is not None:
            f["entry_1/sample_1/geometry_1/orientation"] = angle
    return path


def test_read_projection_tolerates_other_writers(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((1, 12, 10)) * np.exp(1j * rng.random((1, 12, 10)))).astype(np.complex128)
    # a leading mode axis of 1, x pixel only, energy linked under the image, complex128
    p = read_projection(write_image(tmp_path / "cosmic.cxi", img,
                                    energy_path="entry_1/image_1/instrument_1/source_1/energy", angle=12.5))
    assert p.transmission.shape == (12, 10) and p.transmission.dtype == np.complex64
    np.testing.assert_allclose(p.transmission, img[0].astype(np.complex64))
    assert p.pixel_m == 10e-9 and p.energy_ev == pytest.approx(856.0) and p.angle_deg == 12.5
    assert np.isnan(read_projection(write_image(tmp_path / "noangle.cxi", img[0])).angle_deg)


@pytest.mark.parametrize("data, kwargs, message", [
    (np.ones((2, 8, 8), np.complex64), {}, "expected one complex image (ny, nx)"),
    (np.ones((8, 8), np.float32), {}, "expected a complex transmission"),
    (np.ones((8, 8), np.complex64), dict(y_pixel=20e-9), "expected square pixels"),
    (np.ones((8, 8), np.complex64), dict(energy_ev=-5.0), "expected a photon energy"),
])
def test_read_projection_errors_name_file_and_field(tmp_path, data, kwargs, message):
    path = write_image(tmp_path / "bad.cxi", data, **kwargs)
    with pytest.raises(InputError, match="bad.cxi") as err:
        read_projection(path)
    assert message in str(err.value)
