"""Small simulated ptychography scans with known truth, shared by the ptycho tests.

Frames come from ``chemtomo.simulate`` (zone-plate probe, jittered square raster, Poisson noise,
optional background and mask). The object is a field of smooth absorbing, phase-shifting blobs
on air (T = 1), 20 nm pixels, 32 × 32 frames, 6 × 6 = 36 positions: a reconstruction takes well
under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from chemtomo.core import Scan, energy_to_wavelength
from chemtomo.ptycho import zone_plate_probe
from chemtomo.simulate.ptychography import (
    diffraction_frames,
    object_shape,
    raster_positions,
)

ENERGY_EV = 708.2
PIXEL_M = 20e-9
DISTANCE_M = 0.1
N = 32


@dataclass
class Truth:
    scan: Scan
    obj: np.ndarray          # (oy, ox) complex64 true transmission, centre pixel = position 0
    probe: np.ndarray        # (N, N) complex64 true probe scaled to the dose (sum |P|² = dose)
    positions_px: np.ndarray  # (n, 2) true positions, pixels
    background: np.ndarray | None
    floor: float             # the error metric of the true model against the noisy frames


def blob_object(shape, seed) -> np.ndarray:
    """Smooth blobs (OD up to ~1, phase up to ~1 rad) covering about half the field; air elsewhere."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(shape), 2.0)
    field = np.clip(field / field.std() - 0.2, 0, None)
    thickness = np.clip(field, 0, 2.0) / 2.0
    return np.exp(-0.5 * thickness + 1j * 1.0 * thickness).astype(np.complex64)


def make_scan(*, grid=6, step_px=5.0, dose=1e5, jitter_px=0.3, background_counts=0.0, mask=None,
              seed=0) -> Truth:
    wavelength = energy_to_wavelength(ENERGY_EV)
    probe = zone_plate_probe((N, N), PIXEL_M, ENERGY_EV, defocus_m=0.3 * N * PIXEL_M * 100e-9 / wavelength)
    field = (grid - 1) * step_px * PIXEL_M
    _, actual = raster_positions((field, field), step_px * PIXEL_M, jitter_m=jitter_px * PIXEL_M, seed=seed)
    pos_px = actual / PIXEL_M
    obj = blob_object(object_shape(pos_px, (N, N), 6), seed + 1)
    background = None
    if background_counts:
        yy, xx = np.indices((N, N)) - N // 2
        background = (background_counts * (0.5 + np.exp(-(yy ** 2 + xx ** 2) / (2 * 8.0 ** 2)))).astype(np.float32)
    frames = diffraction_frames(obj, probe, pos_px, dose_photons=dose, background=background, mask=mask,
                                seed=seed + 2)
    expected = diffraction_frames(obj, probe, pos_px, dose_photons=dose, background=background, mask=mask,
                                  noise=False)
    valid = np.ones((N, N), bool) if mask is None else mask
    floor = float(np.sum(((np.sqrt(frames) - np.sqrt(expected)) ** 2)[:, valid]) / np.sum(frames[:, valid]))
    scan = Scan(frames=frames, positions_m=actual, energy_ev=ENERGY_EV, distance_m=DISTANCE_M,
                detector_pixel_m=wavelength * DISTANCE_M / (N * PIXEL_M), mask=mask, source="test_scan.cxi")
    return Truth(scan, obj, (probe * np.sqrt(dose)).astype(np.complex64), pos_px, background, floor)


def object_error(rec: np.ndarray, truth: np.ndarray, half_width_px: int) -> float:
    """Relative complex error ‖c·rec − truth‖ / ‖truth‖ over the central (2·half_width)² box, with the
    best complex constant c (global phase and scale) and both arrays centred on position 0."""
    def centre(a):
        cy, cx = a.shape[0] // 2, a.shape[1] // 2
        return a[cy - half_width_px: cy + half_width_px, cx - half_width_px: cx + half_width_px]
    r, t = centre(rec).astype(np.complex128), centre(truth).astype(np.complex128)
    c = np.vdot(r, t) / np.vdot(r, r)
    return float(np.linalg.norm(c * r - t) / np.linalg.norm(t))


@pytest.fixture(scope="session")
def truth() -> Truth:
    return make_scan()


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of a float or complex64 array, for tests that require bit-identical results."""
    return np.ascontiguousarray(a).view(np.uint32)
