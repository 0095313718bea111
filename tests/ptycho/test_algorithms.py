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
        BACKGROUND_ALGORITHM,
        DEFAULT_ALGORITHM,
        LOW_DOSE_ALGORITHM,
        MID_DOSE_ALGORITHM,
        PAPER_ALGORITHM,
        reconstruct,
        reconstruct_many,
    )

    # issue 22: one default everywhere, a rule on the measured counts (algorithms.default_chain)
    # that picks one of three chains, each stage stopping at convergence (the pipeline's
    # "default" is this rule; "auto" is gone); the paper's RAAR:500 by name
    assert DEFAULT_ALGORITHM == "default"
    with pytest.raises(InputError, match="chosen from the data"):
        parse_algorithm(DEFAULT_ALGORITHM)
    assert parse_algorithm(MID_DOSE_ALGORITHM) == [("LSQML", 50), ("rPIE", 300), ("ePIE", 200)]
    assert parse_algorithm(LOW_DOSE_ALGORITHM) == [("LSQML", 300)]
    assert parse_algorithm(BACKGROUND_ALGORITHM) == [("RAAR", 200)]
    assert parse_algorithm(PAPER_ALGORITHM) == [("RAAR", 500)]
    for func in (reconstruct, reconstruct_many):
        assert inspect.signature(func).parameters["algorithm"].default == DEFAULT_ALGORITHM
    assert PtychoConfig().algorithm == "default"
