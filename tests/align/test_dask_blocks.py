"""The reprojection alignment run as Dask tasks (slice blocks, angle blocks) equals the in-process run."""

import numpy as np
import pytest
from align_testdata import misaligned_series

from chemtomo.align import ReprojectionOptions, align


def test_dask_tasks_give_the_same_alignment():
    distributed = pytest.importorskip("distributed")
    d = misaligned_series(seed=2)
    opts = ReprojectionOptions(recon_iterations=3, binned_iterations=0)
    local = align(d.raw, d.angles_deg, iterations=3, algorithm="art", options=opts)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        tasks = align(d.raw, d.angles_deg, iterations=3, algorithm="art", options=opts, client=client)
    # slices and projections are independent problems, so splitting them into tasks changes
    # nothing but float32 summation order: the same transforms to 1e-4 px (measured: identical)
    np.testing.assert_allclose(tasks.shifts_px, local.shifts_px, atol=1e-4)
    np.testing.assert_allclose(tasks.rotation_deg, local.rotation_deg, atol=1e-4)
    assert len(tasks.history) == len(local.history)


def test_registration_in_blocks_of_angles_gives_the_same_alignment(monkeypatch):
    # large fields register a block of angles at a time to bound the Jacobian's memory; each
    # projection's fit is independent, so blocks of 5 give the very same transforms
    import chemtomo.align.reprojection as reprojection
    d = misaligned_series(seed=2)
    opts = ReprojectionOptions(recon_iterations=3, binned_iterations=0)
    whole = align(d.raw, d.angles_deg, iterations=2, algorithm="art", options=opts)
    monkeypatch.setattr(reprojection, "_REGISTER_BLOCK_BYTES", 6 * 8 * 32 * 48 * 5)
    blocks = align(d.raw, d.angles_deg, iterations=2, algorithm="art", options=opts)
    np.testing.assert_allclose(blocks.shifts_px, whole.shifts_px, atol=1e-9)
    np.testing.assert_allclose(blocks.scale, whole.scale, atol=1e-12)
