"""STXM stack readers: the .hdr/.xim layout and NeXus NXstxm, round trips and malformed files."""

import h5py
import numpy as np
import pytest
from stxm_sample import HDR_EXAMPLE, simulate

from chemtomo.core import InputError
from chemtomo.io.stxm import STXMStack, parse_hdr, read_stxm, write_nxstxm, write_stxm_hdr


def _example(tmp_path, header=HDR_EXAMPLE, images=None):
    """The hand-typed ALS-layout header with its two 2 x 3 .xim images."""
    hdr = tmp_path / "Sample_Image_Stack_2011.hdr"
    hdr.write_text(header)
    images = images if images is not None else ["1 2 3\n4 5 6\n", "10\t20\t30\n40\t50\t60\n"]
    for i, text in enumerate(images):
        (tmp_path / f"Sample_Image_Stack_2011_a{i:03d}.xim").write_text(text)
    return hdr


def test_parse_hdr_structure(tmp_path):
    # nested structures, lists with their length first, quoted strings, bare booleans
    h = parse_hdr(_example(tmp_path))
    sd = h["ScanDefinition"]
    assert sd["Type"] == "NEXAFS Image Scan" and sd["Dwell"] == 1
    assert sd["Regions"][0]["PAxis"]["Points"] == [10, 10.1, 10.2]
    assert sd["StackAxis"]["Points"] == [700, 710]
    assert sd["Channels"][0]["Name"] == "Counter0"
    assert h["Time"] == "2011 March 09 10:12:36" and h["BeamFeedback"] == "false"


def test_read_hdr_example(tmp_path):
    # rows of a .xim are QAxis (y) points, columns PAxis (x) points; positions µm -> m
    s = read_stxm(_example(tmp_path))
    assert s.counts.shape == (2, 2, 3) and s.counts.dtype == np.float32
    np.testing.assert_array_equal(s.counts[1], [[10, 20, 30], [40, 50, 60]])
    np.testing.assert_allclose(s.x_m, [10e-6, 10.1e-6, 10.2e-6])
    np.testing.assert_allclose(s.y_m, [-5e-6, -4.9e-6])
    np.testing.assert_allclose(s.energies_ev, [700, 710])
    assert s.pixel_m == pytest.approx(100e-9) and s.dwell_ms == 1.0


@pytest.mark.parametrize("order", ["energy,sample_y,sample_x", "sample_x,sample_y,energy"])
def test_round_trips(tmp_path, order):
    # what the writers write, the readers read back exactly (counts are integers in .xim)
    sim = simulate(shape=(12, 16), energies_ev=np.linspace(705, 712, 5), max_drift_px=0)
    write_stxm_hdr(tmp_path / "a.hdr", sim.stack)
    write_nxstxm(tmp_path / "a.h5", sim.stack, axes_order=order)
    for path in (tmp_path / "a.hdr", tmp_path / "a.h5"):
        s = read_stxm(path)
        np.testing.assert_array_equal(s.counts, sim.stack.counts)
        np.testing.assert_allclose(s.energies_ev, sim.stack.energies_ev, atol=1e-6)
        np.testing.assert_allclose(s.x_m, sim.stack.x_m, atol=1e-12)
        np.testing.assert_allclose(s.y_m, sim.stack.y_m, atol=1e-12)


def test_nexus_old_axis_attributes_and_units(tmp_path):
    # files from before the NXstxm definition was final: 1-based 'axis' attributes, no 'axes';
    # positions given in nm by their units attribute
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(4, 3, 2)      # (x, y, energy)
    with h5py.File(tmp_path / "old.hdf5", "w") as f:
        e = f.create_group("entry0")
        e.attrs["NX_class"] = "NXentry"
        g = e.create_group("counter0")
        g.attrs["NX_class"] = "NXdata"
        g["data"] = data
        g["sample_x"] = np.arange(4) * 50.0
        g["sample_x"].attrs.update(axis=1, units="nm")
        g["sample_y"] = np.arange(3) * 50.0
        g["sample_y"].attrs.update(axis=2, units="nm")
        g["energy"] = [700.0, 701.0]
        g["energy"].attrs["axis"] = 3
    s = read_stxm(tmp_path / "old.hdf5")
    np.testing.assert_array_equal(s.counts, np.transpose(data, (2, 1, 0)))
    assert s.pixel_m == pytest.approx(50e-9)


def _write_h5(path, *, definition="NXstxm", skip=(), shape=(2, 3, 4), units=None, axes=True):
    with h5py.File(path, "w") as f:
        e = f.create_group("entry1")
        e.attrs["NX_class"] = "NXentry"
        e["definition"] = definition
        g = e.create_group("counter0")
        g.attrs["NX_class"] = "NXdata"
        if axes:
            g.attrs["axes"] = ["energy", "sample_y", "sample_x"]
        fields = {"data": np.ones(shape, np.float32), "energy": [700.0, 701.0],
                  "sample_x": np.arange(4) * 0.05, "sample_y": np.arange(3) * 0.05}
        for k, v in fields.items():
            if k not in skip:
                g[k] = v
        if units:
            g["sample_x"].attrs["units"] = units
    return path


@pytest.mark.parametrize("kwargs, message", [
    (dict(definition="NXtomo"), r"/entry1/definition is 'NXtomo'; expected 'NXstxm'"),
    (dict(skip=("energy",)), r"/entry1/counter0/energy not found \(nor photon_energy\); expected the energies"),
    (dict(skip=("sample_y",)), r"/entry1/counter0/sample_y not found; expected the scan positions"),
    (dict(shape=(2, 3)), r"/entry1/counter0/data has shape \(2, 3\); expected a 3D image stack"),
    (dict(shape=(2, 4, 3)), r"/entry1/counter0/data has shape \(2, 4, 3\) but energy, sample_y, sample_x have 2, 3, 4"),
    (dict(units="furlong"), r"/entry1/counter0/sample_x has units 'furlong'; expected one of"),
    (dict(shape=(3, 4, 2), axes=False), r"has no 'axes' attribute and its signal's shape \(3, 4, 2\) is not"),
])
def test_nexus_errors(tmp_path, kwargs, message):
    path = _write_h5(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(InputError, match="bad.h5: .*" + message):
        read_stxm(path)


def test_nexus_not_an_nxentry(tmp_path):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["data"] = np.ones((2, 2, 2))
    with pytest.raises(InputError, match=r"plain.h5: no NXentry group"):
        read_stxm(tmp_path / "plain.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text.h5: not a readable HDF5 file"):
        read_stxm(tmp_path / "text.h5")


def _edit(header, old, new):
    assert old in header
    return header.replace(old, new)


@pytest.mark.parametrize("header, images, message", [
    (HDR_EXAMPLE, ["1 2 3\n4 5 6\n"],
     r"_a001.xim: image file not found; the header lists 2 energies \(710 eV is image 001\)"),
    (HDR_EXAMPLE, ["1 2 3\n4 5 6\n", "1 2\n3 4\n"],
     r"_a001.xim: image is 2 rows x 2 columns; the header's scan is 2 \(QAxis, y\) x 3 \(PAxis, x\)"),
    (HDR_EXAMPLE, ["1 2 3\n4 5 6\n", "1 2 3\n4 5\n"], r"_a001.xim: rows have different lengths \[2, 3\]"),
    (HDR_EXAMPLE, ["1 2 3\n4 x 6\n", "1 2 3\n4 5 6\n"], r"_a000.xim: not a text image of numbers"),
    (_edit(HDR_EXAMPLE, "Points = (2, 700, 710)", "Points = (2, 710, 700)"), None,
     r"ScanDefinition.StackAxis.Points must be strictly increasing; energy 1 \(700 eV\) follows 710 eV"),
    (_edit(HDR_EXAMPLE, "Points = (2, 700, 710)", "Points = (3, 700, 710)"), None,
     r"list ScanDefinition.StackAxis.Points must start with its length n followed by n values; found 2 values"),
    (_edit(HDR_EXAMPLE, 'Name = "Energy"', 'Name = "Time"'), None,
     r"ScanDefinition.StackAxis.Name is 'Time'; expected 'Energy'"),
    (_edit(HDR_EXAMPLE, "Points = (3, 10, 10.1, 10.2)", "Points = (3, 10, 10.1, 10.5)"), None,
     r"PAxis.Points \(x\) positions are not a regular scan grid"),
    (_edit(HDR_EXAMPLE, 'Unit = "um"; Min = 10', 'Unit = "yd"; Min = 10'), None,
     r"ScanDefinition.Regions\[0\].PAxis.Unit is 'yd'; expected one of"),
    (HDR_EXAMPLE.split("StackAxis")[0], None, r"structure ScanDefinition is not closed with '\}' \(truncated header\?\)"),
    (HDR_EXAMPLE.replace("\tStackAxis = {", "\tStackAxes = {"), None,
     r"field ScanDefinition.StackAxis is missing; expected the energy axis of an image stack"),
    (_edit(HDR_EXAMPLE, "Regions = (1,", "Regions = (2, {PAxis = {Points = (1, 0);};},"), None,
     r"ScanDefinition.Regions holds 2 regions; expected a single-region image stack"),
    ('ScanDefinition = { Label = "x;\n', None, r"line 1: cannot read '\"x;' \(unterminated quoted string\?\)"),
    ("", None, r"the STXM header is empty"),
])
def test_hdr_errors(tmp_path, header, images, message):
    hdr = _example(tmp_path, header, images)
    with pytest.raises(InputError, match=message):
        read_stxm(hdr)


def test_unknown_suffix_and_missing_header(tmp_path):
    with pytest.raises(InputError, match=r"stack.tif: unknown STXM stack format '.tif'; expected a .hdr header"):
        read_stxm(tmp_path / "stack.tif")
    with pytest.raises(InputError, match=r"nothing.hdr: STXM header file not found"):
        read_stxm(tmp_path / "nothing.hdr")


def test_writer_checks_suffix(tmp_path):
    s = STXMStack(np.ones((1, 2, 2), np.float32), np.array([700.0]), np.arange(2.0), np.arange(2.0))
    with pytest.raises(InputError, match=r"a STXM header must end in .hdr"):
        write_stxm_hdr(tmp_path / "x.txt", s)
