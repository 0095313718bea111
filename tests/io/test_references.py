"""Reference spectra as users hold them (io/references.py) and the interpolation gap rule."""

import numpy as np
import pytest

from chemtomo.chem import references_from_spectra, references_from_table
from chemtomo.core.errors import ConfigError, InputError
from chemtomo.io import read_reference_spectra, read_spectrum_table
from chemtomo.pipeline.config import config_from_dict

XDI = """# XDI/1.0 GSE/1.0
# Column.1: energy eV
# Column.2: mutrans
# Column.3: norm
# Element.symbol: Fe
# Element.edge: L3
#////
# LiFePO4 reference, normalised in Athena
#----
# energy mutrans norm
 707.0  0.10  0.50
 708.2  0.30  1.50
 709.0  0.20  1.00
"""

NOR = """# Athena data file -- Athena version 0.9.26
# Element.symbol: Fe
# ///
# ------------------------------------------------------------
#  e  norm  nbkg  flat
  707.00  0.25  0.1  0.25
  707.80  0.55  0.2  0.55
  708.60  0.80  0.3  0.80
  709.40  0.90  0.3  0.90
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_xdi_columns_by_name_and_kev_converted(tmp_path):
    p = write(tmp_path, "lfp.xdi", XDI)
    names, values = read_spectrum_table(p)
    assert names == ["energy", "mutrans", "norm"]
    assert values[:, 2].tolist() == [0.5, 1.5, 1.0]
    kev = write(tmp_path, "k.xdi", XDI.replace("energy eV", "energy keV").replace(" 707.0", " 0.707")
                .replace(" 708.2", " 0.7082").replace(" 709.0", " 0.709"))
    # keV -> eV exactly up to the float64 rounding of the decimal input (1e-9 relative)
    assert np.allclose(read_spectrum_table(kev)[1][:, 0], [707.0, 708.2, 709.0], rtol=1e-12)


def test_one_athena_file_per_phase_on_own_grids(tmp_path):
    write(tmp_path, "lfp.xdi", XDI)
    write(tmp_path, "fp.nor", NOR)
    spectra = read_reference_spectra(None, {"LiFePO4": "lfp.xdi:norm", "FePO4": "fp.nor:norm"}, base_dir=tmp_path)
    assert list(spectra) == ["LiFePO4", "FePO4"]
    m = references_from_spectra(spectra, [708.2])
    # 708.2 is a row of lfp.xdi (exact) and halfway between fp.nor rows 707.8 and 708.6 (linear: 0.675)
    assert np.allclose(m, [[1.5, 0.675]], rtol=1e-12)


def test_csv_as_before_and_column_chosen_from_input_references(tmp_path):
    p = write(tmp_path, "refs.csv", "energy_eV,LiFePO4,FePO4\n708.2,2,1\n708.7,1.5,1.5\n709.2,1,2\n")
    spectra = read_reference_spectra(p)
    assert list(spectra) == ["LiFePO4", "FePO4"]
    one = read_reference_spectra(p, {"A": "FePO4", "B": "LiFePO4"})
    assert one["A"][1].tolist() == [1.0, 1.5, 2.0]


def test_gap_rule_names_the_energy_and_the_rows():
    e = np.array([706.0, 710.2, 712.0])
    table = {"LiFePO4": [1.0, 0.5, 0.4], "FePO4": [0.3, 1.2, 0.9]}
    with pytest.raises(InputError, match=r"measured energy 708.2 eV lies between the reference rows at 706 and "
                                         r"710.2 eV, 4.2 eV apart, more than chem.max_reference_gap_ev = 1 eV"):
        references_from_table(e, table, [708.2])
    # a measured energy on a row needs no interpolation; a wider allowed gap interpolates
    assert references_from_table(e, table, [710.2]).tolist() == [[0.5, 1.2]]
    assert references_from_table(e, table, [708.1], max_gap_ev=5.0).shape == (1, 2)


@pytest.mark.parametrize("name,text,message", [
    ("nohead.nor", "707 1\n708 2\n", r"no '#' header line naming the columns"),
    ("short.xdi", XDI.replace(" 708.2  0.30  1.50", " 708.2  0.30"), r"line 12 has 2 fields; expected 3"),
    ("nan.xdi", XDI.replace("1.50", "nan"), r"line 12, column norm: expected a finite number, found 'nan'"),
    ("text.nor", NOR.replace("0.55", "abc"), r"line 7, column norm: expected a finite number, found 'abc'"),
    ("order.nor", NOR.replace("707.80", "706.50"), r"energy column 'e' must be strictly increasing; row 2"),
    ("unit.xdi", XDI.replace("energy eV", "energy degrees"), r"energy column 'energy' is in 'degrees'; expected eV or keV"),
    ("nocols.xdi", "# XDI/1.0\n#----\n707 1\n708 2\n", r"XDI file without '# Column.N: name units' lines"),
    ("gapcols.xdi", XDI.replace("Column.2", "Column.4"), r"XDI columns are numbered \[1, 3, 4\]"),
    ("dup.nor", NOR.replace("nbkg", "norm"), r"repeat a name"),
    ("one.nor", NOR.split("  707.80")[0], r"1 data row\(s\); expected at least two energies"),
    ("late.nor", NOR + "# trailing\n 710 1 1 1\n", r"a '#' line after the data"),
    ("bad.csv", "energy,LFP,FP\n1,2,3\n2,3,4\n", r"header is 'energy,LFP,FP'; expected 'energy_eV'"),
])
def test_malformed_reference_files(tmp_path, name, text, message):
    p = write(tmp_path, name, text)
    with pytest.raises(InputError, match=message) as err:
        read_spectrum_table(p)
    assert str(p) in str(err.value)


def test_binary_reference_file_and_missing_column(tmp_path):
    b = tmp_path / "junk.nor"
    b.write_bytes(b"\xff\xfe\x00garbage\x9c")
    with pytest.raises(InputError, match=r"junk.nor: not a text file .byte 0 is not UTF-8."):
        read_spectrum_table(b)
    write(tmp_path, "fp.nor", NOR)
    with pytest.raises(InputError, match=r"fp.nor: no column 'mu' for phase FePO4 .chem.reference_columns.; the file "
                                         r"has the energy column 'e' and the columns norm, nbkg, flat"):
        read_reference_spectra(None, {"LiFePO4": "fp.nor:norm", "FePO4": "fp.nor:mu"}, base_dir=tmp_path)
    with pytest.raises(InputError, match=r"reference column 'norm' names no file and input.references is not set"):
        read_reference_spectra(None, {"LiFePO4": "norm", "FePO4": "fp.nor:norm"}, base_dir=tmp_path)
    with pytest.raises(InputError, match=r"missing.xdi: reference spectra file not found"):
        read_reference_spectra(None, {"A": "missing.xdi:norm", "B": "fp.nor:norm"}, base_dir=tmp_path)


def test_config_keys_validated():
    cfg = config_from_dict({"chem": {"max_reference_gap_ev": 0.5, "reference_columns": {"LiFePO4": "a.nor:norm",
                                                                                        "FePO4": "b.nor:norm"}}})
    assert cfg.chem.max_reference_gap_ev == 0.5 and list(cfg.chem.reference_columns) == ["LiFePO4", "FePO4"]
    with pytest.raises(ConfigError, match=r"chem.max_reference_gap_ev = -1.0 must be ≥ 1e-06"):
        config_from_dict({"chem": {"max_reference_gap_ev": -1}})
    with pytest.raises(ConfigError, match=r"chem.reference_columns must be a table of phase = \"FILE:COLUMN\" strings"):
        config_from_dict({"chem": {"reference_columns": {"LiFePO4": 3, "FePO4": "b:norm"}}})
    with pytest.raises(ConfigError, match=r"chem.reference_columns names 1 phase; expected at least two"):
        config_from_dict({"chem": {"reference_columns": {"LiFePO4": "a:norm"}}})
