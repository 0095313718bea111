"""The fused least-squares update (``operators.regularized_ratio`` on its numba kernel) gives the
same bits as the NumPy expression it replaced, ``(num + λ·prev) / (den + λ)`` on complex64:
the speed change must not change what RAAR and DM compute (issue 22)."""

import numpy as np
import pytest

from chemtomo.ptycho.operators import regularized_ratio


def numpy_ratio(num, den, previous, rel):
    lam = np.float32(rel * float(den.max()) + 1e-30)
    return ((num + lam * previous) / (den + lam)).astype(np.complex64, copy=False)


@pytest.mark.parametrize("shape, den_shape", [
    ((67, 131), (67, 131)),              # the object update
    ((16, 1, 32, 32), (16, 1, 32, 32)),  # per-bin probe update, one mode
    ((4, 3, 8, 8), (4, 1, 8, 8)),        # several modes: broadcast den, NumPy path
])
def test_fused_update_is_bitwise_numpy(shape, den_shape):
    rng = np.random.default_rng(3)
    num = ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * 1e3).astype(np.complex64)
    previous = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    den = (rng.random(den_shape) ** 4 * 1e4).astype(np.float32)
    den.flat[::5] = 0  # unilluminated pixels: the previous value is kept
    got = regularized_ratio(num, den, previous, 1e-3)
    want = numpy_ratio(num, den, previous, 1e-3)
    assert got.dtype == np.complex64 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert not np.shares_memory(got, previous)  # a new array: Run keeps the old state as "best"
