"""Reference spectra are interpolated only between rows at most chem.max_reference_gap_ev apart
(issue 23: 706 and 710.2 eV given, 708.2 eV measured was silently interpolated across the L3 peak)."""

import numpy as np
import pytest

from chemtomo.chem.references import reference_gaps, references_from_table
from chemtomo.core import InputError
from chemtomo.io import check_references_cover, write_references


def test_gaps_are_found_only_between_distant_rows():
    table = [700.0, 706.0, 708.0, 708.5, 710.2, 720.0]
    assert reference_gaps(table, [706.0, 708.2, 710.2]) == []          # rows, or rows 0.5 eV apart
    assert reference_gaps(table, [707.0, 709.0]) == [(707.0, 706.0, 708.0), (709.0, 708.5, 710.2)]
    assert reference_gaps(table, [707.0], max_gap_ev=2.0) == []
    assert reference_gaps(table, [710.2005]) == []                       # within 1 meV of a row


def test_the_issue_case_names_the_energy_and_the_rows(tmp_path):
    path = write_references(tmp_path / "refs.csv", [700.0, 706.0, 710.2, 720.0],
                            {"LiFePO4": np.array([1.0, 2.0, 3.0, 1.0]), "FePO4": np.array([1.0, 1.5, 4.0, 1.0])})
    with pytest.raises(InputError) as err:
        check_references_cover(path, [708.2, 710.2])
    msg = str(err.value)
    assert "refs.csv" in msg and "708.2 eV lies between rows 706 and 710.2 eV (4.2 eV apart)" in msg
    assert "chem.max_reference_gap_ev = 1 eV" in msg
    check_references_cover(path, [708.2, 710.2], max_gap_ev=5.0)  # the user's explicit choice
    check_references_cover(path, [708.2, 710.2], max_gap_ev=None)
    with pytest.raises(InputError, match="708.2 eV lies between rows 706 and 710.2"):
        references_from_table([700.0, 706.0, 710.2, 720.0], {"a": [1, 2, 3, 1], "b": [1, 1, 4, 1]}, [708.2])
