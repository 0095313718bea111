"""Full-field readers (Data Exchange HDF5, TIFF), input-kind detection and their errors.

The files are written with plain h5py and tifffile, as a beamline's software would, not with
chemtomo's own writers, so the readers are tested against the conventions and not against
themselves.
"""

import h5py
import numpy as np
import pytest
import tifffile

from chemtomo.core import InputError, ScanRef
from chemtomo.io import read_angles_file, read_data_exchange, read_field_file, read_tiff, write_projection
from chemtomo.io.fullfield import file_format
from chemtomo.io.inputs import input_kind

from test_cxi import make_scan, write_plain  # tests/io is on sys.path (tests/conftest.py)


def write_dx(path, *, n=5, shape=(16, 12), theta=None, theta_units="deg", flats=True, darks=True, flat_shape=None,
             energy=8.333, energy_units="keV", pixel=(32.0, "nm"), pixel_path="detection_system/objective/resolution",
             data=None):
    """A Data Exchange file (APS/TomoPy layout) with uint16 data like a TXM camera writes."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["exchange/data"] = data if data is not None else rng.integers(100, 4000, (n, *shape), dtype=np.uint16)
        if flats:
            f["exchange/data_white"] = np.full((3, *(flat_shape or shape)), 4000, np.uint16)
        if darks:
            f["exchange/data_dark"] = np.full((2, *shape), 100, np.uint16)
        th = f.create_dataset("exchange/theta", data=np.linspace(-60, 60, n) if theta is None else theta)
        if theta_units is not None:
            th.attrs["units"] = theta_units
        if energy is not None:
            e = f.create_dataset("measurement/instrument/monochromator/energy", data=energy)
            if energy_units is not None:
                e.attrs["units"] = energy_units
        if pixel is not None:
            px = f.create_dataset(f"measurement/instrument/{pixel_path}", data=pixel[0])
            if pixel[1] is not None:
                px.attrs["units"] = pixel[1]
    return path


def test_data_exchange_reader(tmp_path):
    ff = read_data_exchange(write_dx(tmp_path / "e.h5"))
    assert ff.data.shape == (5, 16, 12) and ff.data.dtype == np.float32
    assert ff.flats.shape == (3, 16, 12) and ff.darks.shape == (2, 16, 12)
    np.testing.assert_allclose(ff.angles_deg, np.linspace(-60, 60, 5))
    assert ff.energy_ev == pytest.approx(8333.0) and ff.pixel_m == pytest.approx(32e-9)


@pytest.mark.parametrize("units", ["rad", b"radians", "radian"])
def test_theta_in_radians_becomes_degrees(tmp_path, units):
    th = np.radians(np.linspace(-60, 60, 5))
    ff = read_data_exchange(write_dx(tmp_path / "r.h5", theta=th, theta_units=units))
    np.testing.assert_allclose(ff.angles_deg, np.linspace(-60, 60, 5), atol=1e-9)


def test_theta_without_units(tmp_path):
    # beyond 2π in magnitude: only degrees make sense
    ff = read_data_exchange(write_dx(tmp_path / "d.h5", theta=np.linspace(-80, 80, 5), theta_units=None))
    np.testing.assert_allclose(ff.angles_deg, np.linspace(-80, 80, 5))
    small = write_dx(tmp_path / "s.h5", theta=np.linspace(-1, 1, 5), theta_units=None)
    with pytest.raises(InputError, match="s.h5.*/exchange/theta has no units attribute.*theta_unit"):
        read_data_exchange(small)
    np.testing.assert_allclose(read_data_exchange(small, theta_unit="rad").angles_deg,
                               np.degrees(np.linspace(-1, 1, 5)))
    np.testing.assert_allclose(read_data_exchange(small, theta_unit="deg").angles_deg, np.linspace(-1, 1, 5))


@pytest.mark.parametrize("units, pixel_path, expected", [
    ("um", "detection_system/objective/resolution", 0.032e-6),
    ("µm", "detection_system/objective/resolution", 0.032e-6),
    ("mm", "detector/actual_pixel_size_x", 0.032e-3),
])
def test_pixel_units(tmp_path, units, pixel_path, expected):
    ff = read_data_exchange(write_dx(tmp_path / "p.h5", pixel=(0.032, units), pixel_path=pixel_path))
    assert ff.pixel_m == pytest.approx(expected)


def test_missing_optional_metadata_is_nan(tmp_path):
    ff = read_data_exchange(write_dx(tmp_path / "m.h5", energy_units=None, pixel=(32.0, None), flats=False,
                                     darks=False))
    assert np.isnan(ff.energy_ev) and np.isnan(ff.pixel_m) and ff.flats is None and ff.darks is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(flat_shape=(16, 10)), "/exchange/data_white (flat fields) has images of shape (16, 10) but "
                                "/exchange/data has (16, 12)"),
    (dict(theta_units="gradians"), "/exchange/theta has units 'gradians'; expected one of deg"),
    (dict(theta=np.zeros(4)), "/exchange/theta has 4 angles but /exchange/data has 5 projections"),
    (dict(energy_units="J"), "monochromator/energy has units 'J'; expected eV or keV"),
    (dict(pixel=(3.0, "furlong")), "has units 'furlong'"),
    (dict(data=np.zeros((2, 3, 4, 5), np.uint16)), "/exchange/data has shape (2, 3, 4, 5)"),
])
def test_data_exchange_errors_name_file_and_field(tmp_path, kwargs, message):
    path = write_dx(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(InputError, match="bad.h5") as err:
        read_data_exchange(path)
    assert message in str(err.value)


def test_not_data_exchange(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["something"] = 1
    with pytest.raises(InputError, match="x.h5: missing dataset /exchange/data"):
        read_data_exchange(tmp_path / "x.h5")
    with pytest.raises(InputError, match="neither a CXI scan"):
        file_format(tmp_path / "x.h5")


def test_tiff_stack_flats_and_angles(tmp_path):
    stack = np.arange(3 * 8 * 6, dtype=np.uint16).reshape(3, 8, 6)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "one.tiff", stack[0])
    np.testing.assert_array_equal(read_tiff(tmp_path / "s.tif"), stack.astype(np.float32))
    assert read_tiff(tmp_path / "one.tiff").shape == (1, 8, 6)
    assert read_field_file(tmp_path / "s.tif", "flat").shape == (3, 8, 6)
    write_dx(tmp_path / "dx.h5")
    assert read_field_file(tmp_path / "dx.h5", "dark").shape == (2, 16, 12)
    (tmp_path / "a.txt").write_text("# angles\n-30\n0\n30.5\n")
    (tmp_path / "a.csv").write_text("index,angle_deg\n0,-30\n1,0\n2,30.5\n")
    for name in ("a.txt", "a.csv"):
        np.testing.assert_allclose(read_angles_file(tmp_path / name), [-30, 0, 30.5])
    (tmp_path / "bad.txt").write_text("-30\nzero\n")
    with pytest.raises(InputError, match="bad.txt: entry 2"):
        read_angles_file(tmp_path / "bad.txt")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 6, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match="rgb.tif: TIFF pages are colour"):
        read_tiff(tmp_path / "rgb.tif")
    (tmp_path / "notiff.tif").write_text("not a tiff")
    with pytest.raises(InputError, match="notiff.tif: cannot be read as TIFF"):
        read_tiff(tmp_path / "notiff.tif")


def ref(path, **kw):
    return ScanRef(str(path), kw.pop("angle_deg", float("nan")), kw.pop("energy_ev", 8333.0), **kw)


def test_input_kind_detection(tmp_path):
    from chemtomo.core import Projection

    scan = write_plain(tmp_path / "scan.cxi")
    image = write_projection(tmp_path / "img.cxi", Projection(np.ones((8, 8), np.complex64), 1e-8, 708.2, 0.0))
    dx = write_dx(tmp_path / "dx.h5")
    dx_noflat = write_dx(tmp_path / "noflat.h5", flats=False)
    tifffile.imwrite(tmp_path / "t.tif", np.ones((2, 8, 8), np.uint16), photometric="minisblack")
    assert input_kind([ref(scan, angle_deg=0.0)])[0] == "scans"
    kind, note = input_kind([ref(image, angle_deg=0.0)])
    assert kind == "projections" and "1 × CXI reconstructed image" in note
    assert input_kind([ref(dx)])[0] == "intensity"
    assert input_kind([ref(tmp_path / "t.tif", flat=str(tmp_path / "t.tif"))])[0] == "intensity"
    assert input_kind([ref(dx_noflat)], "od")[0] == "od"
    with pytest.raises(InputError, match="noflat.h5: no /exchange/data_white and no flat column.*kind = \"od\""):
        input_kind([ref(dx_noflat)])
    # mixed kinds name one file of each
    with pytest.raises(InputError, match="mixes kinds of input") as err:
        input_kind([ref(scan, angle_deg=0.0), ref(image, angle_deg=10.0)])
    assert "scan.cxi" in str(err.value) and "img.cxi" in str(err.value)
    with pytest.raises(InputError, match="img.cxi: input.kind is 'scans' but the file is a CXI reconstructed image"):
        input_kind([ref(image, angle_deg=0.0)], "scans")


def test_make_scan_is_still_a_scan(tmp_path):
    from chemtomo.io import write_scan

    assert file_format(write_scan(tmp_path / "s.cxi", make_scan())) == "scan"


def test_info_describes_data_exchange_and_images(tmp_path):
    from chemtomo.core import Projection
    from chemtomo.io import describe

    text = describe(write_dx(tmp_path / "e.h5"))
    assert "full-field: 5 images of 16×12 px, angles -60.00° to 60.00°, 3 flats, 2 darks, 8333.00 eV" in text
    image = write_projection(tmp_path / "i.cxi", Projection(np.ones((8, 6), np.complex64), 1e-8, 8800.0, 5.0))
    assert "reconstructed image: 8×6 px of 10.000 nm, 8800.00 eV, angle 5.00°" in describe(image)
