"""Manifests and reference spectra: round trips and every validation error."""

import numpy as np
import pytest

from chemtomo.core import InputError, ScanRef
from chemtomo.io import (group_by_energy, read_manifest, read_references, scan_folder, write_manifest,
                         write_references, write_scan)

from test_cxi import make_scan  # tests/io is on sys.path (tests/conftest.py)


def touch(tmp_path, names):
    for n in names:
        (tmp_path / n).write_bytes(b"")


def test_manifest_round_trip_with_relative_paths(tmp_path):
    touch(tmp_path, ["a.cxi", "b.cxi"])
    refs = [ScanRef(str(tmp_path / "a.cxi"), -80.0, 708.2), ScanRef(str(tmp_path / "b.cxi"), 77.0, 710.2)]
    path = write_manifest(tmp_path / "manifest.csv", refs)
    assert "a.cxi,-80,708.2" in path.read_text()
    back = read_manifest(path)
    assert [(r.angle_deg, r.energy_ev) for r in back] == [(-80.0, 708.2), (77.0, 710.2)]
    assert back[0].path == str((tmp_path / "a.cxi").resolve())


@pytest.mark.parametrize("text, message", [
    ("", "manifest is empty"),
    ("file,angle,energy\n", "expected 'path,angle_deg,energy_eV'"),
    ("path,angle_deg,energy_eV\n", "no scans"),
    ("path,angle_deg,energy_eV\na.cxi,abc,708.2\n", "line 2, column angle_deg: expected a number"),
    ("path,angle_deg,energy_eV\na.cxi,0,nan\n", "expected a finite number"),
    ("path,angle_deg,energy_eV\na.cxi,0,-708\n", "column energy_eV: -708.0 eV is not a photon energy"),
    ("path,angle_deg,energy_eV\na.cxi,0,2e6\n", "below 1e+06 eV"),
    ("path,energy_eV,colour\na.cxi,708\n", "optional columns angle_deg, pixel_m"),
    ("path,energy_eV,pixel_m\na.cxi,8333,6.5\n", "not a pixel size in metres"),
    ("path,energy_eV\na.cxi,8333\nb.cxi,8333\n", "gives 8333 eV without an angle again"),
    ("path,angle_deg,energy_eV\na.cxi,0,8333\nb.cxi,,8333\n", "has rows with and without angle_deg"),
    ("path,energy_eV,flat\na.cxi,8333,nothere.tif\n", "column flat: file 'nothere.tif' not found"),
    ("path,angle_deg,energy_eV\nmissing.cxi,0,708.2\n", "scan file 'missing.cxi' not found"),
    ("path,angle_deg,energy_eV\na.cxi,0,708.2\nb.cxi,0,708.2\n", "line 3 repeats angle 0° at 708.2 eV"),
    ("path,angle_deg,energy_eV\na.cxi,0\n", "line 2 has 2 fields"),
])
def test_manifest_errors(tmp_path, text, message):
    touch(tmp_path, ["a.cxi", "b.cxi"])
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match="m.csv") as err:
        read_manifest(tmp_path / "m.csv")
    assert message in str(err.value)


def test_group_by_energy_requires_same_angles(tmp_path):
    refs = [ScanRef("a", 0.0, 708.2), ScanRef("b", 10.0, 708.2), ScanRef("c", 0.0, 710.2),
            ScanRef("d", 10.0, 710.2)]
    g = group_by_energy(refs)
    assert list(g) == [708.2, 710.2] and [r.path for r in g[710.2]] == ["c", "d"]
    with pytest.raises(InputError, match="different angles"):
        group_by_energy(refs[:3])


def test_scan_folder_reads_angles_and_energies(tmp_path):
    write_scan(tmp_path / "s1.cxi", make_scan(angle_deg=-5.0))
    write_scan(tmp_path / "s2.cxi", make_scan(angle_deg=5.0, energy_ev=710.2))
    refs = scan_folder(tmp_path)
    assert sorted((r.angle_deg, r.energy_ev) for r in refs) == [(-5.0, 708.2), (5.0, 710.2)]


def test_references_round_trip_and_errors(tmp_path):
    e = np.array([700.0, 708.2, 710.2])
    spectra = {"LiFePO4": np.array([1e5, 1.6e6, 7e5]), "FePO4": np.array([1e5, 6e5, 1.5e6])}
    path = write_references(tmp_path / "references.csv", e, spectra)
    e2, s2 = read_references(path)
    np.testing.assert_allclose(e2, e)
    assert list(s2) == ["LiFePO4", "FePO4"]
    np.testing.assert_allclose(s2["FePO4"], spectra["FePO4"], rtol=1e-6)  # written with 7 significant digits
    (tmp_path / "bad.csv").write_text("energy,a,b\n1,2,3\n2,3,4\n")
    with pytest.raises(InputError, match="expected 'energy_eV'"):
        read_references(tmp_path / "bad.csv")
    (tmp_path / "dec.csv").write_text("energy_eV,a,b\n2,2,3\n1,3,4\n")
    with pytest.raises(InputError, match="strictly increasing"):
        read_references(tmp_path / "dec.csv")


def test_folder_of_reconstructed_images(tmp_path):
    from chemtomo.core import Projection
    from chemtomo.io import write_projection

    for k, (a, e) in enumerate([(-5.0, 708.2), (5.0, 708.2), (-5.0, 8333.0)]):
        write_projection(tmp_path / f"p{k}.cxi", Projection(np.ones((8, 8), np.complex64), 1e-8, e, a))
    refs = scan_folder(tmp_path)
    assert sorted((r.angle_deg, r.energy_ev) for r in refs) == [(-5.0, 708.2), (-5.0, 8333.0), (5.0, 708.2)]


def test_manifest_with_optional_columns_round_trip(tmp_path):
    touch(tmp_path, ["a.h5", "f.tif"])
    (tmp_path / "m.csv").write_text("path,energy_eV,pixel_m,flat\na.h5,8333,3.2e-8,f.tif\n")
    (r,) = read_manifest(tmp_path / "m.csv")
    assert np.isnan(r.angle_deg) and r.pixel_m == 3.2e-8 and r.flat == str((tmp_path / "f.tif").resolve())
    back = read_manifest(write_manifest(tmp_path / "m2.csv", [r]))
    assert back[0].pixel_m == r.pixel_m and back[0].flat == r.flat and np.isnan(back[0].angle_deg)
