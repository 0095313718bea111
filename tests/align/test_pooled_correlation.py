"""The energy registration's pooled phase correlation (align/_kernels.py,
``pooled_phase_correlation``) against the NumPy expression it replaces."""

import numpy as np
import pytest

from chemtomo.align._kernels import pooled_phase_correlation
from chemtomo.align.register import _cross_power, _spectrum


@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("shape", [(7, 24, 31), (1, 9, 8), (30, 5, 6)])
def test_the_pooled_sum_of_the_phase_normalised_cross_powers(shape, subset):
    rng = np.random.default_rng(shape[0])
    ref = rng.standard_normal(shape).astype(np.float32)
    mov = np.roll(ref, (1, -2), axis=(1, 2)) + 0.3 * rng.standard_normal(shape).astype(np.float32)
    ref[0, :2] = 0.0  # rows without signal: a pixel whose product is 0 takes the floor, not 0/0
    ref_conj = np.conj(_spectrum(ref, True))
    # a subset of the reference's angles, read in place (the jackknife's)
    rows = np.flatnonzero(np.arange(shape[0]) % 3 != 1) if subset and shape[0] > 2 else np.arange(shape[0])
    want = _cross_power(ref[rows], mov[rows], 1, True, "phase").sum(axis=0)
    got = np.empty(shape[1:], np.complex64)
    pooled_phase_correlation(_spectrum(mov[rows], True), ref_conj, rows, got)
    # The terms are formed and added (in image order, in float32) as NumPy does, but a product or
    # modulus may round differently (NumPy's SIMD loops may fuse a multiply-add): the terms differ
    # by an ulp or two of their unit modulus, and two float32 running sums of n such terms differ
    # by at most those differences plus 2·n·u·Σ|terms| ≤ 2√2·n²·u (u = eps/2). Measured: 1.3e-7
    # to 3e-6 on these shapes, 3e-5 on 158 angles of 58 × 93.
    n = len(rows)
    tol = n * 4 * np.finfo(np.float32).eps + np.sqrt(2) * n * n * np.finfo(np.float32).eps
    assert got.dtype == np.complex64 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
