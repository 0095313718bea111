"""CGLS (tomo/cgls.py): textbook CG without constraints, active-set projected CG with them."""

import itertools

import numpy as np
from tomo_data import plate_data, rel_err

from chemtomo.tomo import cgls, project, system_matrix


def test_unconstrained_cgls_minimises_residual():
    # CGLS minimises ‖b − Ax‖ over growing Krylov spaces: the residual never increases, and on
    # a small overdetermined problem (360 rays, 100 pixels) 60 iterations bring it to the least-
    # squares minimum (numpy lstsq, float64) within 1 %, starting well above it (float32
    # arithmetic and the corner pixels, seen by few rays, keep the last percent)
    rng = np.random.default_rng(0)
    angles = np.arange(0.0, 180.0, 5.0)
    vol = rng.random((2, 10, 10), dtype=np.float32)
    tilt = project(vol, angles) + rng.normal(0, 0.05, (36, 2, 10)).astype(np.float32)
    res = []
    a = system_matrix(angles, 10, 10).toarray().astype(np.float64)

    def residual(k, v):
        res.append(np.linalg.norm(project(v, angles) - tilt))

    cgls(tilt, angles, iterations=60, nonneg=False, callback=residual)
    assert all(r2 <= r1 * (1 + 1e-4) for r1, r2 in itertools.pairwise(res))
    b = tilt.transpose(1, 0, 2).reshape(2, -1).astype(np.float64)
    ls_res = np.sqrt(sum(np.linalg.lstsq(a, b[y], rcond=None)[1][0] for y in range(2)))
    assert res[0] > 5 * ls_res
    assert res[-1] <= ls_res * 1.01


def test_projected_cgls_on_paper_angles():
    # with nonneg (active-set projected CG) 20 iterations measured 0.128 on the noisy 158-angle
    # data, unconstrained CGLS 0.34 (the wedge's negative ripples): bound 0.17, and the
    # constraint must help
    truth, tilt, angles = plate_data()
    rec = cgls(tilt, angles, iterations=20)
    free = cgls(tilt, angles, iterations=20, nonneg=False)
    assert rec.min() >= 0
    assert rel_err(rec, truth) < 0.17 < rel_err(free, truth)
