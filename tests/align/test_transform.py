"""The similarity warp and the Alignment convention of DESIGN.md (chemtomo.align.apply)."""

import numpy as np
import pytest

from chemtomo.align import Alignment, apply
from chemtomo.align.transform import (alignment_error_px, displacement_px, inverse_params,
                                      raw_coordinates, warp)
from chemtomo.core.errors import InputError


def _smooth_image(ny=32, nx=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:ny, :nx]
    img = np.zeros((ny, nx))
    for _ in range(6):
        cy, cx = rng.uniform(10, ny - 10), rng.uniform(10, nx - 10)
        img += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / rng.uniform(18, 40))
    return img.astype(np.float32)


def test_apply_moves_content_from_q_of_p_to_p():
    # a point at raw position q(p) must land exactly at p: DESIGN.md's convention, checked on a
    # single bright pixel with integer shift, 90° rotation and unit scale (bilinear is exact there)
    raw = np.zeros((2, 9, 9), np.float32)
    raw[0, 6, 3] = 1.0          # q(p) for p = (4, 4), t = (2, -1): (6, 3)
    raw[1, 4, 2] = 1.0          # rotation 90°: q(p) = c + R(p − c); p = (2, 4), v = (−2, 0), Rv = (0, −2)
    al = Alignment(np.array([[2.0, -1.0], [0.0, 0.0]]), np.array([0.0, 90.0]), np.ones(2))
    out = apply(raw, al)
    assert out.dtype == np.float32
    assert np.unravel_index(out[0].argmax(), (9, 9)) == (4, 4)
    assert np.unravel_index(out[1].argmax(), (9, 9)) == (2, 4)
    assert out[0].max() == pytest.approx(1.0) and out[1].max() == pytest.approx(1.0, abs=1e-6)


def test_warp_with_inverse_params_round_trips():
    # warp(warp(img, inverse), forward) = img in the interior; one bilinear pass errs by at most
    # |f''|/8 per px², |f''| ≤ peak/σ² for Gaussian features of σ ≥ 3 px: two passes < 3 % of the peak
    img = _smooth_image()
    t = np.array([[3.3, -2.7], [-1.2, 4.6]])
    rot, sc = np.array([0.8, -0.6]), np.array([1.01, 0.99])
    stack = np.stack([img, img])
    moved = warp(stack, *inverse_params(t, rot, sc))
    back = warp(moved, t, rot, sc)
    assert np.abs(back - stack)[:, 8:-8, 8:-8].max() < 0.03 * img.max()


def test_energy_offset_and_pixel_ratio_compose_as_documented():
    # apply with offset o and pixel ratio k samples raw at c + k(q + o − c): compare with the
    # coordinates built by hand
    raw = np.random.default_rng(1).random((1, 16, 20)).astype(np.float32)
    al = Alignment(np.array([[0.5, -1.0]]), np.array([0.3]), np.array([1.002]),
                   energy_offsets_px={700.0: np.zeros(2), 710.0: np.array([1.0, 2.0])},
                   energy_pixel_ratio={700.0: 1.0, 710.0: 0.9})
    q = raw_coordinates((16, 20), np.array([[1.5, 1.0]]), [0.3], [1.002])
    c = np.array([7.5, 9.5])[:, None, None, None]
    q = c + 0.9 * (q - c)
    from scipy import ndimage
    expect = ndimage.map_coordinates(raw[0], q[:, 0], order=1, mode="constant", cval=0.0)
    np.testing.assert_allclose(apply(raw, al, 710.0)[0], expect, atol=1e-6)


def test_gauge_removal_recovers_truth_up_to_volume_motion():
    # an estimate = truth moved by a pure gauge motion (volume shift and magnification) has zero
    # error; the same size of random per-angle error does not
    angles = np.linspace(-60, 60, 25)
    rng = np.random.default_rng(2)
    truth = (rng.normal(0, 3, (25, 2)), rng.normal(0, 0.5, 25), 1 + rng.normal(0, 0.005, 25))
    th = np.deg2rad(angles)
    g = np.stack([np.full(25, 1.5), 2.0 * np.cos(th) - 1.0 * np.sin(th)], axis=1)
    # q(p − g) = q(p) − s R(φ) g: the truth seen from a shifted volume
    exact = (truth[0].copy(), truth[1], truth[2])
    phi = np.deg2rad(truth[1])
    exact[0][:, 0] -= truth[2] * (np.cos(phi) * g[:, 0] - np.sin(phi) * g[:, 1])
    exact[0][:, 1] -= truth[2] * (np.sin(phi) * g[:, 0] + np.cos(phi) * g[:, 1])
    assert alignment_error_px((32, 48), angles, exact, truth) < 1e-6
    noisy = (truth[0] + rng.normal(0, 0.3, (25, 2)), truth[1], truth[2])
    assert alignment_error_px((32, 48), angles, noisy, truth) > 0.2


def test_displacement_is_rms_over_field():
    # a pure shift (3, 4) moves every point by 5 px
    d = displacement_px((8, 8), (np.array([[3.0, 4.0]]), [0.0], [1.0]), (np.zeros((1, 2)), [0.0], [1.0]))
    assert d[0] == pytest.approx(5.0)


def test_apply_errors_name_the_problem():
    al = Alignment.identity(3, energy_offsets_px={700.0: np.zeros(2), 710.0: np.ones(2)})
    with pytest.raises(InputError, match="3 angles"):
        apply(np.zeros((4, 8, 8)), al, 700.0)
    with pytest.raises(InputError, match="pass energy_eV"):
        apply(np.zeros((3, 8, 8)), al)
    with pytest.raises(InputError, match="not in the alignment"):
        apply(np.zeros((3, 8, 8)), al, 720.0)
    with pytest.raises(InputError, match="n_angles, ny, nx"):
        apply(np.zeros((8, 8)), al, 700.0)
