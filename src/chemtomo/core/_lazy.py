"""Lazy re-exports for package ``__init__`` files (PEP 562 module ``__getattr__``), for every chemtomo package.

A package that re-exports names from heavy submodules (matplotlib figures, Dask scheduling,
the HTML report) lists them here instead of importing them, so that ``import chemtomo.ptycho``
or ``chemtomo ptycho SCAN.cxi`` does not pay for what it never calls. The name is imported on
first access (``chemtomo.resolution.plot_curve`` or ``from chemtomo.resolution import plot_curve``)
and then cached in the package, so later accesses cost nothing.

Only names that differ from their submodule's name may be lazy: importing submodule ``pkg.x``
binds the module itself to ``pkg.x``, which would shadow a lazily exported function ``x``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` that import ``exports`` on first access.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping name -> relative submodule (``".figures"``)
        Where each lazily exported name lives.

    Returns
    -------
    (__getattr__, __dir__) to assign at the package's top level.

    Examples
    --------
    >>> __getattr__, __dir__ = lazy_exports(__name__, {"plot_curve": ".figures"})  # doctest: +SKIP
    """
    for name, sub in exports.items():
        if sub.rsplit(".", 1)[-1] == name:
            raise ValueError(f"internal: {package}.{name} cannot be lazy: it is also a submodule's name")

    def __getattr__(name: str) -> object:
        try:
            sub = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(sub, package), name)
        setattr(sys.modules[package], name, value)  # cached: __getattr__ is not called again
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
