"""Every numeric configuration key has a unit, and every unit names a key that exists."""

import dataclasses

from chemtomo.pipeline import config as C


def _keys(quantities_only: bool = False):
    for section, cls in C._SECTION_TYPES.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if quantities_only and (f.metadata.get("items") is str or isinstance(default, dict)):
                continue  # lists of paths and tables of column names are text, not quantities
            yield f"{section}.{f.name}", default


def test_units_name_existing_keys():
    keys = dict(_keys())
    assert set(C._UNITS) <= set(keys), f"units for keys that do not exist: {sorted(set(C._UNITS) - set(keys))}"


def test_every_number_has_a_unit():
    # booleans are switches, strings are names, paths or choices; every int, float or list of
    # numbers is a quantity and the docs' reference table must say in what
    missing = [k for k, v in _keys(quantities_only=True) if not isinstance(v, (bool, str))
               and not C.field_unit(*k.split("."))]
    assert not missing, f"numeric keys without a unit in pipeline/config.py _UNITS: {missing}"
