"""Split plates stacked face on face, from the steps in their top and bottom surfaces.

Two plates lying one on the other share a wide, flat interface, so neither the distance transform
nor the neck between them (there is none) tells them apart; but their outer surfaces do. Seen
along the stack's normal n, each column of voxels
runs from a bottom height B to a top height U. B is continuous over each plate's lower face and
jumps by a plate thickness where the upper plate overhangs the lower one; U jumps likewise where
the upper plate's edge sits on the lower plate. So:

1. **Patches.** B and U are read, to a fraction of a voxel, where the mask smoothed over 0.7
   voxel crosses ½ along each column (no rasterisation jitter on oblique plates). The columns
   are joined into *bottom patches* and *top patches*: columns whose height differs from a
   neighbour's by more than ``step_px``/2 are step columns; the others are connected; step
   columns and patches smaller than ``min_area_px`` then join the neighbouring patch of
   closest height.
2. **Which patches are one plate.** A bottom patch β and a top patch τ over the same columns
   bound one plate when the columns' thickness U − B there is no larger (within ``step_px``)
   than the thinnest pair either patch takes part in; a pair that is thicker than that is a
   stack (its columns hold the lower plate *and* the upper one). Linked patches form plates
   (connected components of the link graph).
3. **Voxels.** Columns of a linked pair go whole to its plate. A stack column is cut at the
   interface: B + t_lower or U − t_upper (the mean when both plates' thicknesses t are
   known, t being the median column thickness of a plate's own columns); voxels below go to the
   plate of the bottom patch, voxels above to the plate of the top patch.

**Same answer on every machine.** The column grid is built from the face normal alone (the
in-plane axes are the grid axis most perpendicular to it, not the solver's eigenvectors, which
are arbitrary for a square plate), on an integer origin with an explicit tie rule, and holes that
an oblique voxel lattice leaves in the footprint are filled; the surface samples are compared
with ½ after rounding. Before, a square 8 × 8 × 5 plate came back in two halves on some machines:
a half-integer coordinate rounded down by 1e-18 of eigenvector noise left an empty row of columns
that cut the surfaces into two patches.

Only plate-like regions are examined (thickness extent below 0.7 × the width extent: a pair of
stacked plates of the simulator reaches 0.51, a cube is 1; with 0.5 instead, 14 fewer of 240
plates were matched); a single flat or gently tilted plate has one bottom and one top patch
and is returned whole.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["split_stacked"]

_TIE = 1e-6  # voxels: in-plane coordinates within this of a half-integer round up, on every machine
_AXIS_DECIMALS = 9  # normal components equal to this many decimals count as equal
_LEVEL_DECIMALS = 9  # smoothed-mask samples equal to ½ to this many decimals count as ½
_REL_TOL = 1e-9  # relative margin of the plate-likeness bound


def split_stacked(region: np.ndarray, *, step_px: float = 1.5, min_area_px: float = 8.0) -> np.ndarray:
    """Split a bool region into the plates stacked in it; int32 labels 1..k (0 outside).

    Parameters
    ----------
    region : (a, b, c) bool
        One particle candidate (a bounding box of the volume).
    step_px : float
        Largest height change between neighbouring columns within one surface, voxels; steps
        larger than this separate patches (a plate is at least 10 nm = 1.5 voxels at 6.7 nm).
    min_area_px : float
        Smallest surface patch kept on its own, in columns (voxel² across the plate).
    """
    out = region.astype(np.int32)
    coords = np.argwhere(region).astype(np.float64)
    n = coords.shape[0]
    if n < 2 * min_area_px:
        return out
    # second moments from exact integer sums (a BLAS product would round differently with its
    # thread count), compared with the 0.7 bound with a relative margin: a 7-thick, 10-wide box
    # lies exactly on it and must be examined on every machine
    ci = np.argwhere(region)
    first = ci.sum(axis=0)
    cov = (ci.T @ ci - np.outer(first, first) / n) / n
    evals = np.linalg.eigvalsh(cov)  # ascending: thickness, width, length
    thickness, width = np.sqrt(12.0 * np.maximum(evals[:2], 0.0) + 1.0)
    if thickness > 0.7 * width * (1.0 + _REL_TOL):
        return out  # not plate-like: no face-on stacking to find
    normal, in_plane = _face_normal(region)
    # columns on an integer origin, so that the in-plane coordinates of an axis-aligned plate are
    # exact integers and half-integers never arise; _TIE breaks any remaining rounding tie upwards
    origin = np.floor(coords.mean(axis=0) + 0.5)
    d = coords - origin
    h = d @ normal
    ia = np.floor(d @ in_plane[:, 0] + 0.5 + _TIE).astype(np.int64)
    ib = np.floor(d @ in_plane[:, 1] + 0.5 + _TIE).astype(np.int64)
    a0, b0 = ia.min() - 1, ib.min() - 1
    ia -= a0
    ib -= b0
    nb = int(ib.max()) + 2
    occupied = np.unique(ia * nb + ib)
    candidates = _footprint_gaps(occupied, int(ia.max()) + 2, nb)
    all_cols = np.concatenate([occupied, candidates])
    bottom, top, crossed = _surfaces(region, origin, normal, in_plane,
                                     np.divmod(all_cols, nb), (a0, b0), (h.min(), h.max()))
    # a gap cell of the footprint (no voxel centre projects into it: the voxel lattice seen
    # obliquely) is a column when the surface profile through its centre reaches ½
    keep = np.concatenate([np.ones(occupied.size, bool), crossed[occupied.size:]])
    order = np.argsort(all_cols[keep], kind="stable")
    cols = all_cols[keep][order]
    bottom, top, crossed = bottom[keep][order], top[keep][order], crossed[keep][order]
    col_index = np.searchsorted(cols, ia * nb + ib)
    has_voxels = np.zeros(cols.size, bool)
    has_voxels[col_index] = True

    edges = _column_edges(cols, nb)
    raw_bottom = np.full(cols.size, np.inf)
    raw_top = np.full(cols.size, -np.inf)
    np.minimum.at(raw_bottom, col_index, h)
    np.maximum.at(raw_top, col_index, h)
    # outermost voxel faces; a column whose profile never reaches ½ (a one-voxel rim) is read
    # from them, a gap column (no voxels) from its profile
    raw_bottom = np.where(has_voxels, raw_bottom - 0.5, bottom)
    raw_top = np.where(has_voxels, raw_top + 0.5, top)
    bottom = np.where(crossed, bottom, raw_bottom)
    top = np.where(crossed, top, raw_top)
    thick = top - bottom

    b_patch = _patches(bottom, edges, step_px, min_area_px, raw_bottom)
    u_patch = _patches(top, edges, step_px, min_area_px, raw_top)
    n_b, n_u = int(b_patch.max()) + 1, int(u_patch.max()) + 1
    if n_b == 1 and n_u == 1:
        return out

    pair = b_patch * n_u + u_patch
    pairs, pair_index = np.unique(pair, return_inverse=True)
    pair_thick = np.array([np.median(thick[pair_index == k]) for k in range(pairs.size)])
    pair_b, pair_u = pairs // n_u, pairs % n_u
    min_b = np.full(n_b, np.inf)
    min_u = np.full(n_u, np.inf)
    np.minimum.at(min_b, pair_b, pair_thick)
    np.minimum.at(min_u, pair_u, pair_thick)
    linked = pair_thick <= np.minimum(min_b[pair_b], min_u[pair_u]) + step_px + _TIE  # ties link

    graph = coo_matrix((np.ones(int(linked.sum())), (pair_b[linked], n_b + pair_u[linked])),
                       shape=(n_b + n_u, n_b + n_u))
    n_groups, group = connected_components(graph, directed=False)
    if n_groups == 1:
        return out
    col_linked = linked[pair_index]
    # each plate's thickness: the median column thickness of its own (linked) columns
    plate_of_col = group[b_patch]
    t_plate = np.full(n_groups, np.nan)
    for g in np.unique(plate_of_col[col_linked]):  # one iteration per plate
        t_plate[g] = np.median(thick[col_linked & (plate_of_col == g)])
    lower = group[b_patch]
    upper = group[n_b + u_patch]
    from_bottom = bottom + t_plate[lower]
    from_top = top - t_plate[upper]
    interface = np.where(np.isnan(from_bottom), from_top,
                         np.where(np.isnan(from_top), from_bottom, 0.5 * (from_bottom + from_top)))
    interface = np.where(np.isnan(interface), 0.5 * (bottom + top), interface)

    v_col = col_index  # voxels lie in the occupied columns only
    below = h < interface[v_col]
    voxel_group = np.where(col_linked[v_col] | below, lower[v_col], upper[v_col])
    used, voxel_group = np.unique(voxel_group, return_inverse=True)
    if used.size == 1:
        return out
    out[tuple(coords.astype(np.int64).T)] = voxel_group.astype(np.int32) + 1
    return out


def _face_normal(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal of the region's large faces and two in-plane axes, from the structure tensor.

    The sum of ∇m ∇mᵀ over the smoothed mask m is dominated by the large faces, so its leading
    eigenvector is their normal, also for a staircase of stacked plates (whose principal axes
    of inertia tilt with the offset between the plates).

    Only the normal is taken from the eigen-solver. The in-plane axes are not: for a square
    plate the two smaller eigenvalues are equal, and which pair of eigenvectors LAPACK returns
    then depends on the library build and its thread count. They are instead the grid axis most
    perpendicular to the normal, projected into the plane, and the normal × that axis; the
    normal's sign is fixed by its largest component. The column grid of an axis-aligned plate
    is then the voxel grid, on every machine.
    """
    # zeros around the region (mode "constant"): the result must not depend on the margin
    m = ndimage.gaussian_filter(np.pad(region, 3).astype(np.float32), 1.0, mode="constant")
    grads = np.stack([g.ravel() for g in np.gradient(m)]).astype(np.float64)
    grads = grads[:, np.abs(grads).sum(axis=0) > 1e-3]
    weights = np.ones(grads.shape[1])
    for _ in range(3):  # reweight towards the dominant direction: side walls count less
        tensor = (grads * weights) @ grads.T
        _, vectors = np.linalg.eigh(tensor)  # ascending
        normal = vectors[:, 2]
        cosine = (normal @ grads) / np.maximum(np.linalg.norm(grads, axis=0), 1e-12)
        weights = cosine**4
    return _canonical_axes(vectors[:, 2])


def _canonical_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normal, (3, 2) in-plane axes) as a function of the normal's direction alone.

    Components are compared after rounding to ``_AXIS_DECIMALS`` decimals, so that float noise
    in the eigen-solver (1e-16) cannot flip a choice between two equal candidates; ties go to
    the lower axis index.
    """
    normal = normal / np.linalg.norm(normal)
    rounded = np.round(normal, _AXIS_DECIMALS)
    lead = int(np.argmax(np.abs(rounded)))  # first of the largest
    if rounded[lead] < 0:
        normal = -normal
    first = np.zeros(3)
    first[int(np.argmin(np.abs(rounded)))] = 1.0  # the grid axis most in the plane
    first -= (first @ normal) * normal
    first /= np.linalg.norm(first)
    second = np.cross(normal, first)
    return normal, np.stack([first, second], axis=1)


def _footprint_gaps(occupied: np.ndarray, na: int, nb: int) -> np.ndarray:
    """Column ids (a·nb + b) of holes in the footprint ``occupied``: enclosed cells and cells
    between two occupied cells along a grid line.

    When the normal is oblique to the voxel grid, the voxel centres projected into the plane do
    not fill every cell of the column grid; the empty cells would cut one plate's surface into
    patches that do not touch.
    """
    image = np.zeros((na + 1, nb + 1), bool)
    image[np.divmod(occupied, nb)] = True
    between = np.zeros_like(image)
    between[1:-1, :] |= image[:-2, :] & image[2:, :]
    between[:, 1:-1] |= image[:, :-2] & image[:, 2:]
    gaps = (ndimage.binary_fill_holes(image) | between) & ~image
    a, b = np.nonzero(gaps[:na, :nb])
    return a * nb + b


def _surfaces(region, centre, normal, in_plane, rows_cols, origin, h_range, step=0.25):
    """Bottom and top heights of each column, sub-voxel, from the smoothed mask, and whether
    the column's profile reaches ½ at all.

    The mask is smoothed by a Gaussian of σ = 0.7 voxel and sampled (trilinear) along the
    normal through each column centre every ``step`` voxel; the surfaces are the first and last
    crossings of 0.5. Unlike the extreme voxel centres of the column, this does not jitter by a
    voxel when the normal is oblique to the grid. The comparison with ½ is made in float64 on
    values rounded to ``_LEVEL_DECIMALS`` decimals, so that a sample lying on the surface (a
    face of an axis-aligned box is exactly ½ in exact arithmetic) is read the same way whatever
    the summation order of the filter.
    """
    pad = 3
    m = ndimage.gaussian_filter(np.pad(region, pad).astype(np.float64), 0.7, mode="constant")
    a = rows_cols[0] + origin[0]
    b = rows_cols[1] + origin[1]
    hs = np.arange(h_range[0] - 2.0, h_range[1] + 2.0 + step, step)
    base = centre + pad
    points = (base[:, None, None] + in_plane[:, 0, None, None] * a[None, :, None]
              + in_plane[:, 1, None, None] * b[None, :, None] + normal[:, None, None] * hs[None, None, :])
    values = ndimage.map_coordinates(m, points.reshape(3, -1), order=1, mode="constant").reshape(a.size, hs.size)
    values = np.round(values, _LEVEL_DECIMALS)
    inside = values >= 0.5
    any_inside = inside.any(axis=1)
    first = np.argmax(inside, axis=1)
    last = hs.size - 1 - np.argmax(inside[:, ::-1], axis=1)
    rows = np.arange(a.size)
    below_first = np.maximum(first - 1, 0)
    above_last = np.minimum(last + 1, hs.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac_b = (0.5 - values[rows, below_first]) / (values[rows, first] - values[rows, below_first])
        frac_u = (values[rows, last] - 0.5) / (values[rows, last] - values[rows, above_last])
    bottom = hs[below_first] + np.nan_to_num(np.clip(frac_b, 0, 1), nan=1.0) * step
    top = hs[last] + np.nan_to_num(np.clip(frac_u, 0, 1), nan=0.0) * step
    centre_h = 0.5 * (h_range[0] + h_range[1])
    bottom = np.where(any_inside, bottom, centre_h - 0.5)
    top = np.where(any_inside, top, centre_h + 0.5)
    return bottom, top, any_inside


def _column_edges(cols: np.ndarray, nb: int) -> np.ndarray:
    """(m, 2) index pairs of 4-neighbouring occupied columns (sorted column ids ``cols``)."""
    pairs = []
    for offset, valid in ((1, (cols % nb) != nb - 1), (nb, np.ones(cols.size, bool))):
        target = cols + offset
        pos = np.searchsorted(cols, target)
        pos_ok = pos < cols.size
        hit = np.zeros(cols.size, bool)
        hit[pos_ok] = cols[pos[pos_ok]] == target[pos_ok]
        hit &= valid
        pairs.append(np.stack([np.flatnonzero(hit), pos[hit]], axis=1))
    return np.concatenate(pairs)


def _patches(height: np.ndarray, edges: np.ndarray, step_px: float, min_area_px: float,
             voxel_height: np.ndarray) -> np.ndarray:
    """Label surface patches: regions of columns without a height step inside.

    A column whose height differs from a neighbour's by more than ``step_px / 2`` lies on a step
    (or on the rounded rim); the other columns are joined across edges with differences within
    that bound. Step columns are then given, growing outwards, to the neighbouring patch of
    closest height (judged by ``voxel_height``, the column's outermost voxel face, which the blur
    does not pull towards the lower level at a plate's rim), and patches smaller than
    ``min_area_px`` are merged the same way. Cutting at
    step *columns* rather than at step *edges* keeps the intermediate heights that the blur
    leaves at a step's ends from chaining two levels together.
    """
    n = height.size
    a, b = edges[:, 0], edges[:, 1]
    diff = np.abs(height[a] - height[b])
    worst = np.zeros(n)
    np.maximum.at(worst, a, diff)
    np.maximum.at(worst, b, diff)
    core = worst <= 0.5 * step_px + _TIE  # a difference of exactly half a step is no step
    keep = core[a] & core[b]
    graph = coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(n, n))
    _, patch = connected_components(graph, directed=False)
    patch = np.where(core, patch, -1)
    if not core.any():
        return np.zeros(n, np.int64)
    area = np.bincount(patch[core])
    small = np.zeros(area.size, bool)
    small[area < min_area_px] = area.max() >= min_area_px  # keep at least the largest patch
    patch[core & small[np.maximum(patch, 0)]] = -1
    while (patch < 0).any():  # grow the patches into the unassigned columns, closest height first
        best = np.full(n, -1)
        uu = np.concatenate([a, b])
        vv = np.concatenate([b, a])
        ok = (patch[uu] < 0) & (patch[vv] >= 0)
        uu, vv = uu[ok], vv[ok]
        dd = np.abs(voxel_height[uu] - height[vv])
        # per column the closest height; equal heights go to the lower patch number (an explicit
        # order: a sort's or a fancy assignment's handling of ties differs between builds)
        order = np.lexsort((patch[vv], dd, uu))
        first = order[np.unique(uu[order], return_index=True)[1]]
        best[uu[first]] = patch[vv[first]]
        grow = best >= 0
        if not grow.any():
            patch[patch < 0] = patch.max() + 1  # columns cut off from every patch
            break
        patch[grow] = best[grow]
    return np.unique(patch, return_inverse=True)[1]
