"""cluster.scattered: large array arguments go to the workers on their own, not in the task graph."""

import numpy as np
import pytest

from chemtomo.pipeline.cluster import SCATTER_BYTES, scattered

distributed = pytest.importorskip("distributed")


def test_large_arrays_become_futures_and_the_task_gets_the_same_array():
    big = np.arange(SCATTER_BYTES // 4, dtype=np.float32).reshape(-1, 64)  # exactly the threshold
    small = np.ones(10, np.float32)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        args = scattered(client, (big, small, "path", {"k": 1}))
        assert isinstance(args[0], distributed.Future)
        assert args[1] is small and args[2:] == ("path", {"k": 1})
        got = client.submit(lambda a, b: (a.copy(), float(b.sum())), *args[:2], pure=False).result()
    np.testing.assert_array_equal(got[0], big)
    assert got[1] == 10.0
