"""Unit helpers: photon energy, wavelength and the ptychographic pixel size.

Lengths are metres, energies eV, angles degrees (DESIGN.md, "Conventions").
"""

import math

__all__ = [
    "HC_EV_M",
    "EV_TO_J",
    "energy_to_wavelength",
    "wavelength_to_energy",
    "object_pixel_size",
    "ev_to_joule",
    "joule_to_ev",
    "to_nm",
]

#: Planck constant times speed of light, eV·m (CODATA 2018, exact SI constants).
HC_EV_M = 1.239841984e-6
#: One electronvolt in joules (exact).
EV_TO_J = 1.602176634e-19


def energy_to_wavelength(energy_ev: float) -> float:
    """Photon wavelength in metres for a photon energy in eV: λ = hc / E.

    >>> round(energy_to_wavelength(708.2) * 1e9, 4)
    1.7507
    """
    if not math.isfinite(energy_ev) or energy_ev <= 0:
        raise ValueError(f"photon energy must be a positive finite number of eV, got {energy_ev!r}")
    return HC_EV_M / energy_ev


def wavelength_to_energy(wavelength_m: float) -> float:
    """Photon energy in eV for a wavelength in metres: E = hc / λ."""
    if not math.isfinite(wavelength_m) or wavelength_m <= 0:
        raise ValueError(f"wavelength must be a positive finite number of metres, got {wavelength_m!r}")
    return HC_EV_M / wavelength_m


def object_pixel_size(energy_ev: float, distance_m: float, detector_pixel_m: float, n_pixels: int) -> float:
    """Object-plane pixel size of far-field ptychography, in metres.

    pixel = λ z / (n p), with λ the wavelength, z the sample–detector distance, n the number of
    detector pixels across the (square) frame and p the detector pixel size.
    """
    if distance_m <= 0 or detector_pixel_m <= 0 or n_pixels <= 0:
        raise ValueError(
            "object_pixel_size needs distance_m > 0, detector_pixel_m > 0 and n_pixels > 0, "
            f"got {distance_m!r}, {detector_pixel_m!r}, {n_pixels!r}"
        )
    return energy_to_wavelength(energy_ev) * distance_m / (n_pixels * detector_pixel_m)


def ev_to_joule(energy_ev: float) -> float:
    """Photon energy in joules (the CXI file unit) from eV."""
    return energy_ev * EV_TO_J


def joule_to_ev(energy_j: float) -> float:
    """Photon energy in eV from joules (the CXI file unit)."""
    return energy_j / EV_TO_J


def to_nm(length_m: float) -> float:
    """Metres to nanometres, for display only."""
    return length_m * 1e9
