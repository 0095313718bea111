"""Projector and adjoint (tomo/project.py, tomo/operator.py, tomo/geometry.py)."""

import numpy as np
import pytest

from chemtomo.core.errors import InputError
from chemtomo.tomo import backproject, project, system_matrix
from chemtomo.tomo.geometry import TiltGeometry
from chemtomo.tomo.operator import RayOperator, volume_to_stack
from chemtomo.tomo.problem import prepare


def _blob(ny, nz, nx, zc, xc, sigma=2.0):
    z = np.arange(nz) - (nz - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    g = np.exp(-((z[:, None] - zc) ** 2 + (x[None, :] - xc) ** 2) / (2 * sigma**2))
    return np.repeat(g[None], ny, 0).astype(np.float32)


def test_adjoint_dot_product():
    # <A v, t> = <v, Aᵀ t> holds to float32 rounding (~1e-6 relative) for an exact transpose
    rng = np.random.default_rng(0)
    angles = rng.permutation(np.linspace(-80, 77, 23))
    v = rng.random((5, 20, 24), dtype=np.float32)
    t = rng.random((23, 5, 24), dtype=np.float32)
    lhs = np.vdot(project(v, angles, cor_offset_px=1.7).astype(np.float64), t)
    rhs = np.vdot(v.astype(np.float64), backproject(t, angles, 20, nx=24, cor_offset_px=1.7))
    assert abs(lhs - rhs) < 1e-5 * abs(lhs)


def test_equals_sparse_matrix():
    # the compiled kernels use the geometry's weights: same numbers as the sparse matrix (float32 sums)
    rng = np.random.default_rng(1)
    angles = np.array([-63.0, -5.0, 0.0, 31.0, 90.0, 120.0])
    v = rng.random((3, 17, 16), dtype=np.float32)
    a = system_matrix(angles, 17, 16, None, -0.6)
    ref = (a @ v.reshape(3, -1).T).reshape(6, 16, 3).transpose(0, 2, 1)
    np.testing.assert_allclose(project(v, angles, cor_offset_px=-0.6), ref, rtol=1e-5, atol=1e-6)


def test_mass_conservation():
    # each pixel's footprint has unit area, so every projection carries the volume's total mass
    v = _blob(2, 32, 32, 3.0, -4.0)
    tilt = project(v, np.arange(-80, 78, 7.0), nu=48)
    np.testing.assert_allclose(tilt.sum(axis=(1, 2)), v.sum(), rtol=1e-5)


def test_zero_and_ninety_degrees():
    # θ = 0 integrates along z; θ = 90° integrates along x and the detector runs along z.
    # The geometry widens the zero-width box of the footprint to 1e-3 px, so up to ~1e-3/8 of a
    # pixel leaks into its neighbour bins: rtol 1e-3
    rng = np.random.default_rng(2)
    v = rng.random((3, 16, 16), dtype=np.float32)
    p = project(v, [0.0, 90.0])
    np.testing.assert_allclose(p[0], v.sum(axis=1), rtol=1e-3)
    np.testing.assert_allclose(p[1], v.sum(axis=2), rtol=1e-3)


def test_centre_of_rotation_offset_shifts_projection():
    # an integer offset moves every projection by that many detector bins
    v = _blob(1, 32, 32, 2.0, -3.0)
    angles = [-40.0, 10.0, 70.0]
    base = project(v, angles, nu=40)
    moved = project(v, angles, nu=40, cor_offset_px=3.0)
    np.testing.assert_allclose(moved[..., 3:], base[..., :-3], atol=1e-6)


@pytest.mark.parametrize("theta", [30.0, -65.0, 90.0])
def test_projection_equals_rotated_volume_at_zero(theta):
    # the projection at θ of a blob at (z, x) equals the 0° projection of the blob moved to the
    # rotated position x' = x cos θ + z sin θ. The oblique footprint (width |cos θ| + |sin θ| ≤ √2
    # instead of 1) adds at most (2 − 1)/12 px² of blur variance to a σ = 3 px Gaussian: its peak
    # drops by ≤ 0.5 %, so 1.5 % of the peak bounds the difference (a wrong rotation sense or
    # centre would move the peak by several pixels: an O(1) difference)
    zc, xc = 5.0, -3.0
    c, s = np.cos(np.radians(theta)), np.sin(np.radians(theta))
    rotated = _blob(1, 48, 48, -xc * s + zc * c, xc * c + zc * s, sigma=3.0)
    p_theta = project(_blob(1, 48, 48, zc, xc, sigma=3.0), [theta])
    p_zero = project(rotated, [0.0])
    assert np.abs(p_theta - p_zero).max() < 0.015 * p_zero.max()


def test_chunked_weights_equal_cached():
    # a tiny weight budget forces per-chunk rebuilding: bounded memory, same numbers
    rng = np.random.default_rng(3)
    geom = TiltGeometry.create(np.linspace(-80, 77, 11), 12, 14)
    x = volume_to_stack(rng.random((4, 12, 14), dtype=np.float32))
    full, small = RayOperator(geom), RayOperator(geom, max_block_bytes=1)
    assert small.chunk == 1 and small._cached is None
    s = full.forward(x)
    np.testing.assert_array_equal(small.forward(x), s)
    np.testing.assert_allclose(small.backward(s), full.backward(s), rtol=1e-6)
    np.testing.assert_array_equal(small.rownorm, full.rownorm)


def test_paper_size_weights_fit():
    # paper size (158 angles, 512² slices): ≈3 weights per pixel per angle, 8 bytes each = 1 GiB,
    # under the 2 GiB cache budget; the scipy matrix would need 4× that while being assembled
    from chemtomo.tomo.geometry import matrix_bytes
    from chemtomo.tomo.operator import block_bytes
    assert block_bytes(158, 512, 512) == 158 * 3 * 512 * 512 * 8
    assert block_bytes(158, 512, 512) <= 2 << 30 < matrix_bytes(158, 512, 512)


def test_memory_error_says_how_much_and_how_to_chunk():
    tilt = np.zeros((158, 300, 512), np.float32)
    with pytest.raises(InputError, match=r"needs about .* GiB.*limit is 0\.10 GiB.*at most \d+ at a time"):
        prepare(tilt, np.arange(-80, 78.0), "art", memory_limit_bytes=int(0.1 * 2**30))


def test_bad_input():
    with pytest.raises(InputError, match="volume must be"):
        project(np.zeros((4, 4)), [0.0])
    with pytest.raises(InputError, match="duplicate angles"):
        project(np.zeros((1, 4, 4)), [0.0, 0.0])
    with pytest.raises(InputError, match="finite"):
        project(np.zeros((1, 4, 4)), [0.0, np.nan])
    with pytest.raises(InputError, match="3 projections but 2 angles"):
        backproject(np.zeros((3, 1, 4)), [0.0, 1.0])


def test_project_refuses_what_will_not_fit(monkeypatch):
    # a 1 MiB limit cannot hold 8 slices of 64² plus their projections: the message says how
    # much is needed and how many slices at a time would fit
    import importlib
    module = importlib.import_module("chemtomo.tomo.project")
    monkeypatch.setattr(module, "memory_limit_bytes", lambda: 2**20)
    with pytest.raises(InputError, match=r"project: 8 slices of 64×64 at 20 angles needs about .* "
                                         r"GiB.*at most \d+ at a time"):
        project(np.zeros((8, 64, 64), np.float32), np.arange(20.0))
