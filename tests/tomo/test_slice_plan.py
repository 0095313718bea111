"""How the ray kernels split the slices (tomo/_kernels.slice_plan): ranges and the same bits."""

import numpy as np
import pytest

from chemtomo.tomo import _joint_kernels as J
from chemtomo.tomo import _kernels as K
from chemtomo.tomo.geometry import TiltGeometry
from chemtomo.tomo.operator import RayOperator


@pytest.mark.parametrize("ny", [1, 5, 16, 31, 32, 63, 64, 65, 96, 97, 170, 300])
@pytest.mark.parametrize("threads", [1, 2, 3, 16])
def test_plan_covers_every_slice_in_whole_lanes(ny, threads):
    starts, groups = K.slice_plan(ny, threads)
    sizes = np.diff(starts)
    assert starts[0] == 0 and starts[-1] == ny and np.all(sizes > 0)
    assert groups[0] == 0 and groups[-1] == len(sizes) and np.all(np.diff(groups) > 0)
    assert len(groups) - 1 <= threads  # one group per thread at most
    lanes = ny // K.SLICE_LANE
    if lanes >= min(threads, ny):
        # every range but the leftover slices' is whole lanes, none wider than SLICE_RANGE
        whole = sizes[:-1] if ny % K.SLICE_LANE else sizes
        assert np.all(whole % K.SLICE_LANE == 0) and np.all(sizes <= K.SLICE_RANGE)
        assert len(groups) - 1 == min(threads, ny)  # every thread has work
        per_thread = [int(sizes[a:b].sum()) // K.SLICE_LANE for a, b in zip(groups[:-1], groups[1:])]
        assert max(per_thread) - min(per_thread) <= 1  # lanes shared out evenly
    else:  # fewer lanes than threads: an even split
        assert sizes.max() - sizes.min() <= 1


def _plans(ny):
    """Very different plans of ny slices: one range, a range per slice, and slice_plan's."""
    yield np.array([0, ny]), np.array([0, 1])
    yield np.arange(ny + 1), np.array([0, ny])
    yield np.arange(ny + 1), np.arange(ny + 1)
    for threads in (1, 2, 3):
        yield K.slice_plan(ny, threads)


def test_every_kernel_gives_the_same_bits_for_any_plan():
    # Slices are independent problems and each slice's arithmetic is the same in the vectorised
    # loop and its scalar remainder, so the split cannot change a single bit (70 slices: two
    # lanes and 6 left over).
    rng = np.random.default_rng(0)
    ny, n = 70, 20
    angles = np.linspace(-70.0, 75.0, 9)
    op = RayOperator(TiltGeometry.create(angles, n, n))
    rowptr, pix, wt, rownorm, rowsum = op._cached
    idx = np.arange(len(angles))
    x0 = rng.random((n * n, ny), dtype=np.float32)
    b = rng.random((len(angles), n, ny), dtype=np.float32) * 5
    valid = (rng.random(b.shape) > 0.1).astype(np.float32)
    row_inv = np.where(rowsum > 0, 1 / np.maximum(rowsum, 1e-12), 0).astype(np.float32)
    subsets = [idx[k::3] for k in range(3)]
    order = np.concatenate(subsets).astype(np.int64)
    ptr = np.array([0, 3, 6, 9], np.int64)
    col_inv = op.column_sums(subsets)
    col_inv = np.where(col_inv > 0, 1 / np.maximum(col_inv, 1e-12), 0).astype(np.float32)
    mix = np.array([[1.0, 0.4], [0.6, 1.1]], np.float32)
    unmix = np.linalg.pinv(mix).astype(np.float32)
    b2 = np.stack([b, b * 0.8])
    valid2 = np.stack([valid, valid])

    def run(plan):
        fwd = np.empty((len(angles), n, ny), np.float32)
        K.forward(rowptr, pix, wt, idx, x0, fwd, *plan)
        bwd = np.zeros_like(x0)
        K.backward(rowptr, pix, wt, idx, b, bwd, *plan)
        art = x0.copy()
        K.art_sweep(rowptr, pix, wt, rownorm, idx[::-1].copy(), b, valid, art, 0.7, True, *plan)
        sart = x0.copy()
        K.os_sweep(rowptr, pix, wt, order, ptr, b, valid, row_inv, col_inv, sart, 0.9, True, *plan)
        joint = np.stack([x0, x0 * 0.5])
        J.joint_os_sweep(rowptr, pix, wt, order, ptr, b2, valid2, row_inv, col_inv, mix, unmix, joint,
                         np.float32(0.9), np.float32(1.0), True, *plan)
        return fwd, bwd, art, sart, joint

    first = None
    for plan in _plans(ny):
        out = run(plan)
        if first is None:
            first = out
            continue
        for name, a, ref in zip(("forward", "backward", "art", "sart", "joint"), out, first):
            assert np.array_equal(a, ref), f"{name} differs with plan {plan[0].tolist()}"


@pytest.mark.parametrize("ny", [1, 7, 32, 40, 96, 170, 513])
@pytest.mark.parametrize("volumes", [1, 2, 20])
@pytest.mark.parametrize("tasks", [1, 2, 8, 64])
def test_task_blocks_are_wide_but_leave_no_thread_idle(ny, volumes, tasks):
    from chemtomo.tomo.operator import slice_blocks

    blocks = slice_blocks(ny, volumes, tasks)
    assert blocks[0][0] == 0 and blocks[-1][1] == ny
    assert all(a < b and b == c for (a, b), (c, _) in zip(blocks, blocks[1:] + [(ny, None)]))
    widths = [b - a for a, b in blocks]
    assert max(widths) <= K.SLICE_RANGE
    if volumes * len(blocks) < tasks:  # too few blocks only where one slice per block is reached
        assert max(widths) == 1 or volumes * ny < tasks
    if max(widths) >= K.SLICE_LANE:  # wide blocks are whole lanes, but the last
        assert all(w % K.SLICE_LANE == 0 for w in widths[:-1])
    assert slice_blocks(ny, volumes, tasks, size=5) == [(y, min(ny, y + 5)) for y in range(0, ny, 5)]
