"""Tests of the algorithm-string parser and the solver registry."""

import pytest

from chemtomo.core import InputError
from chemtomo.ptycho import ALGORITHMS, parse_algorithm


def test_parse_chains_and_normalises_names():
    assert parse_algorithm("RAAR:500") == [("RAAR", 500)]
    assert parse_algorithm("dm:100, raar:300,Ml:100") == [("DM", 100), ("RAAR", 300), ("ML", 100)]
    assert parse_algorithm("epie:3,RPIE:4") == [("ePIE", 3), ("rPIE", 4)]


def test_registry_holds_every_documented_solver():
    assert set(ALGORITHMS) == {"RAAR", "DM", "ePIE", "rPIE", "mPIE", "LSQML", "ML"}


@pytest.mark.parametrize("text, message", [
    ("RAAR", "cannot parse 'RAAR'"),
    ("FOO:10", "unknown name 'FOO'; valid names: RAAR, DM, ePIE, rPIE, mPIE, LSQML, ML"),
    ("RAAR:0", "at least 1 iteration"),
    ("RAAR:10;DM:5", "cannot parse"),
    ("RAAR:-5", "cannot parse"),
    ("", "valid names: RAAR, DM, ePIE, rPIE, mPIE, LSQML, ML"),
    ("RAAR:10,", "cannot parse ''"),
])
def test_bad_strings_raise_input_error_listing_valid_names(text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_algorithm(text)


def test_the_default_chain_is_the_same_in_the_library_and_the_pipeline():
    import inspect

    from chemtomo.pipeline.config import PtychoConfig
    from chemtomo.ptycho import (
        DEFAULT_ALGORITHM,
        PAPER_ALGORITHM,
        reconstruct,
        reconstruct_many,
    )

    # issue 22: rPIE then ePIE, each stage stopping at convergence; the same default everywhere
    # (the pipeline's "default" is this chain; "auto" is gone); the paper's RAAR:500 by name
    assert parse_algorithm(DEFAULT_ALGORITHM) == [("rPIE", 300), ("ePIE", 200)]
    assert parse_algorithm(PAPER_ALGORITHM) == [("RAAR", 500)]
    for func in (reconstruct, reconstruct_many):
        assert inspect.signature(func).parameters["algorithm"].default == DEFAULT_ALGORITHM
    assert PtychoConfig().algorithm == "default"
