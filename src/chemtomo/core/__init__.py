"""Foundation shared by every chemtomo package: backend, FFT, units, containers, errors."""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from .backend import Array, asarray, cupy_available, get_array_module, get_backend, to_numpy
from .containers import ChemicalMap, Curve, Particles, Projection, Scan, ScanRef, TiltSeries, Volume
from .errors import ChemtomoError, ConfigError, ConvergenceError, InputError, StoreError
from .units import (
    energy_to_wavelength,
    ev_to_joule,
    joule_to_ev,
    object_pixel_size,
    to_nm,
    wavelength_to_energy,
)

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .fft import fft2, fft2c, ifft2, ifft2c

__all__ = [
    "Array", "asarray", "cupy_available", "get_array_module", "get_backend", "to_numpy",
    "ChemicalMap", "Curve", "Particles", "Projection", "Scan", "ScanRef", "TiltSeries", "Volume",
    "ChemtomoError", "ConfigError", "ConvergenceError", "InputError", "StoreError",
    "fft2", "fft2c", "ifft2", "ifft2c",
    "energy_to_wavelength", "ev_to_joule", "joule_to_ev", "object_pixel_size", "to_nm",
    "wavelength_to_energy",
]

# scipy.fft (0.25 s to import) only when a transform is asked for: `chemtomo --help`, `chemtomo
# info` and every `from chemtomo.core.errors import ...` need none
__getattr__, __dir__ = lazy_exports(__name__, {name: ".fft" for name in ("fft2", "fft2c", "ifft2", "ifft2c")})
