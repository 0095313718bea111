"""Errors raised by chemtomo.

Every message names the file (where there is one), the field, what was expected and what was
found, so that a user can fix the input without reading a traceback.
"""

__all__ = ["ChemtomoError", "InputError", "ConfigError", "StoreError", "ConvergenceError"]


class ChemtomoError(Exception):
    """Base class of every error chemtomo raises on purpose."""


class InputError(ChemtomoError, ValueError):
    """Input data (a file, an array, a parameter) is malformed or impossible."""


class ConfigError(ChemtomoError, ValueError):
    """A run configuration has an unknown key or a bad value."""


class StoreError(ChemtomoError):
    """A run store is missing, incomplete or inconsistent."""


class ConvergenceError(ChemtomoError):
    """An iterative algorithm diverged or did not converge and no usable result exists."""
