"""The docs' generated reference covers every command and config key; the docstring hook keeps
plain-text docstrings intact. Skipped where Sphinx (the `docs` extra) is not installed."""

import dataclasses
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))
chemtomo_docs = pytest.importorskip("chemtomo_docs")


def test_cli_reference_lists_every_command_and_option():
    import typer.main

    from chemtomo.cli import app

    text = "\n".join(chemtomo_docs.cli_lines(app))
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        assert f"\nchemtomo {name}\n" in text, name
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option":
                assert p.opts[0] in text, (name, p.opts)


def test_config_reference_lists_every_key_with_its_unit():
    from chemtomo.pipeline import config as C

    text = "\n".join(chemtomo_docs.config_lines())
    for section, cls in C._SECTION_TYPES.items():
        assert f"``[{section}]``" in text
        for f in dataclasses.fields(cls):
            assert f"``{f.name}``" in text, f"{section}.{f.name}"
    assert "nm³" in text and "eV" in text  # units come through (particles.min_volume_nm3, align.reference_energy)


def test_docstring_hook_escapes_bars_and_keeps_field_tables():
    lines = ["One scan.", "", "frames      : (n, ny, nx) counts", "positions_m : (n, 2) metres,",
             "              relative to the centre", "", "The modulus |T|² is kept; ``|P|`` stays literal.",
             "", "Parameters", "----------", "x : int | None", "    Anything.", "", ">>> abs(-1) | 0", "1"]
    out = chemtomo_docs.plain_text_docstring(lines)
    assert out[2:4] == ["::", ""] and out[4] == "    frames      : (n, ny, nx) counts"
    assert "    " + lines[4] in out                       # the continuation stays in the literal block
    assert "The modulus \\|T\\|² is kept; ``|P|`` stays literal." in out
    assert "x : int \\| None" in out                      # numpydoc sections: only the bars escaped
    assert ">>> abs(-1) | 0" in out                        # doctests untouched
