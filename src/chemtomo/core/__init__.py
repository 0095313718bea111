"""Foundation shared by every chemtomo package: backend, FFT, units, containers, errors."""

from .backend import Array, asarray, cupy_available, get_array_module, get_backend, to_numpy
from .containers import ChemicalMap, Curve, Particles, Projection, Scan, ScanRef, TiltSeries, Volume
from .errors import ChemtomoError, ConfigError, ConvergenceError, InputError, StoreError
from .fft import fft2, fft2c, ifft2, ifft2c
from .units import (
    energy_to_wavelength,
    ev_to_joule,
    joule_to_ev,
    object_pixel_size,
    to_nm,
    wavelength_to_energy,
)

__all__ = [
    "Array", "asarray", "cupy_available", "get_array_module", "get_backend", "to_numpy",
    "ChemicalMap", "Curve", "Particles", "Projection", "Scan", "ScanRef", "TiltSeries", "Volume",
    "ChemtomoError", "ConfigError", "ConvergenceError", "InputError", "StoreError",
    "fft2", "fft2c", "ifft2", "ifft2c",
    "energy_to_wavelength", "ev_to_joule", "joule_to_ev", "object_pixel_size", "to_nm",
    "wavelength_to_energy",
]
