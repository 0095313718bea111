"""Flat/dark correction of full-field images: the formula, the floor and the counted corrections."""

import logging

import numpy as np
import pytest

from chemtomo.chem import flat_field_od
from chemtomo.core import InputError


def test_recovers_od_from_simulated_counts():
    # I = D + (F - D) exp(-OD) exactly, with several noisy flats and darks averaged: the OD comes
    # back to the averaged fields' noise propagated through the formula, per pixel
    # σ² = (σ_F/√8)²/(F-D)² + (σ_D/√4)²·(1/(I-D) - 1/(F-D))²; every error within 5σ (4096 pixels)
    rng = np.random.default_rng(0)
    od = rng.uniform(0.0, 3.0, (4, 32, 32)).astype(np.float32)
    flat, dark = 4000.0, 100.0
    img = dark + (flat - dark) * np.exp(-od)
    flats = flat + rng.normal(0, 20, (8, 32, 32))
    darks = dark + rng.normal(0, 5, (4, 32, 32))
    out, info = flat_field_od(img, flats, darks, return_info=True)
    assert out.dtype == np.float32 and out.shape == od.shape
    sigma = np.sqrt((20 / np.sqrt(8) / (flat - dark)) ** 2
                    + (5 / np.sqrt(4)) ** 2 * (1 / (img - dark) - 1 / (flat - dark)) ** 2)
    assert np.all(np.abs(out - od) < 5 * sigma)
    assert info.n_nonpositive == info.n_floored == info.n_no_beam == 0


def test_floor_nonpositive_and_no_beam_pixels_are_counted(caplog):
    img = np.array([[[50.0, 100.0, 1000.0, 102.0]]])       # below, at, above dark; tiny signal
    flat = np.array([[1100.0, 1100.0, 50.0, 1100.0]])      # third pixel: flat below dark (no beam)
    with caplog.at_level(logging.WARNING):
        od, info = flat_field_od(img, flat, np.full((1, 4), 100.0), floor=1e-2, return_info=True)
    assert info.n_nonpositive == 2 and info.n_no_beam == 1 and info.n_floored == 1
    np.testing.assert_allclose(od[0, 0, [0, 1, 3]], -np.log(1e-2), rtol=1e-6)  # capped at -ln(floor)
    assert np.isnan(od[0, 0, 2])
    assert "2 of 4 pixels had I - dark <= 0" in caplog.text


def test_errors():
    with pytest.raises(InputError, match=r"flats has images of shape \(8, 9\); expected the projections' shape \(8, 8\)"):
        flat_field_od(np.ones((2, 8, 8)), np.ones((3, 8, 9)))
    with pytest.raises(InputError, match="floor"):
        flat_field_od(np.ones((8, 8)), np.ones((8, 8)), floor=0.0)
