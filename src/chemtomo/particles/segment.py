"""Segmentation of a reconstructed sample into particles (touching plates split apart).

Place in the flow (DESIGN.md): ``chem.unmix`` gives a density volume (C_LFP + C_FP ≈ voxel
occupancy); :func:`segment` turns it into a label volume, one integer per particle, that
:func:`chemtomo.particles.measure` describes.

The steps:

1. **Sample mask.** ``density > threshold``, restricted to an optional ``mask``. The default
   threshold is half way from the background level to the particles' core level, the two
   classes being found by Otsu's method on the density smoothed over one voxel (see
   ``_otsu_threshold``: plain Otsu fails on sparse particles in noise).
2. **Connected components** (face connectivity), each then handled inside its own bounding box,
   so no full-volume float copy is ever made (memory ≈ the int32 label volume plus one bool mask).
3. **Watershed split of touching particles.** The plain distance transform of a thin plate is a
   flat ridge (its value is bounded by half the thickness everywhere inside), so its maxima say
   nothing about where one plate ends and the next begins, and seeding a watershed from them
   over-splits. The seed map is instead the *local filling fraction*: the component's mask
   smoothed by a Gaussian of σ = 0.3 t, t the component's plate thickness (below). It is a dome
   on each plate and dips at the neck where two plates touch. The watershed floods the negative
   of that map inside the component. Guards against over-splitting:

   * **h-maxima**: a maximum counts as a seed only if it rises ``h_maximum`` (a fraction of the
     component's highest value, default 0.02) above the saddle that joins it to a higher one;
   * **minimum seed separation**: seeds closer than ``min_seed_separation_m`` (default: one
     plate thickness t) are merged, keeping the higher;
   * **contact merge**: two neighbouring regions are merged again when the area of their shared
     boundary is at least ``merge_contact_ratio`` (default 0.75) of the smaller region's cross
     section perpendicular to the line joining their centroids. A cut through one plate spans
     its whole cross-section (ratio ≥ 1 in the rotated-plate tests); two plates that touch
     edge to edge or at a corner share a narrow neck (ratio 0.02–0.55 there).

4. **Plates stacked face on face** share a wide flat interface that no distance map or neck
   reveals; each region is split further from the steps in its top and bottom surfaces
   (:func:`chemtomo.particles.layers.split_stacked`). A layer of less than 4 t³ (narrower than
   twice the region's thickness t both ways: no plate) is merged back into the layer it touches most.
5. **Small objects** below ``min_volume_m3`` are removed (default: a sphere whose diameter is
   twice the resolution, i.e. objects that the reconstruction cannot resolve as particles).
   Fragments of a split component below that size are first merged into the neighbour they share
   most boundary with.
6. Labels are renumbered 1..n in order of the components' first voxel in C order.

The component's plate thickness is t = 2·(median of the distance transform on its ridge) − 1
voxels (a slab of t voxels has a distance transform whose largest value is (t + 1)/2; the median
over the ridge ignores spots where plates lie on each other).

Measured (matching with IoU ≥ 0.5, automatic threshold, density blurred by 0.7 voxel plus 5 %
noise): 10 synthetic scenes of 8 rotated 15 × 12 × 3-voxel plates with 2 touching pairs each:
80/80 matched, 80 found; three ``chemtomo.simulate.plate_sample`` fields of the paper preset
(151 × 129 × 257 voxels, 80 plates each, many stacked or edge to edge): 232/240 matched, 238
found (230/240 before the stack split's column grid was made machine-independent; connected
components alone: 140/240; without the stack split: 54–56 of 80 per field; a
seed separation of 2 t instead of t: 227/240 before the stack split was widened; the maximum
instead of the ridge median for t: 202/240 then). Six crowded 61 × 65 × 129 fields of 20
plates: 115/120. The misses are groups of plates fused edge to edge and on top of each other,
and plates thinner than the 1.5-voxel step (10 nm).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from ..core.backend import to_numpy
from ..core.errors import InputError
from .layers import split_stacked

__all__ = ["segment"]

log = logging.getLogger(__name__)

_FACES = ndimage.generate_binary_structure(3, 1)
_SEP_FACTOR = 1.0  # default minimum seed separation, in units of the component thickness
_SEED_SIGMA = 0.3  # seed-map smoothing, in units of the component thickness (see module notes)
_SLAB_ROWS = 64  # rows of y processed at a time when a full-volume pass is needed


def segment(density, voxel_m: float, *, threshold: float | None = None,
            min_volume_m3: float | None = None, resolution_m: float | None = None,
            split: bool = True, min_seed_separation_m: float | None = None,
            h_maximum: float = 0.02, merge_contact_ratio: float = 0.75,
            mask=None) -> np.ndarray:
    """Label the particles of a density volume, splitting touching particles.

    Parameters
    ----------
    density : (ny, nz, nx) float
        Density (C_LFP + C_FP, ≈ voxel occupancy) or any volume that is high inside particles.
        NaN counts as background.
    voxel_m : float
        Voxel edge length, metres (isotropic voxels).
    threshold : float, optional
        Density above which a voxel belongs to the sample. Default: half way between the median
        density of the background and of the particles' interior, the classes being split by
        Otsu's threshold of all voxels (NaN counted as 0) of the density smoothed by a Gaussian
        of σ = 1 voxel (``mask`` does not enter: it may already be the sample mask, inside which there
        is no background to compare with).
    min_volume_m3 : float, optional
        Objects smaller than this are removed. Default: the volume of a sphere of diameter
        ``2 · resolution_m``.
    resolution_m : float, optional
        Measured 3D resolution (FSC). Default ``2 · voxel_m`` (the Nyquist limit of the grid).
    split : bool
        Split touching particles (watershed, then stacked plates) (True) or keep the connected
        components (False).
    min_seed_separation_m : float, optional
        Seeds closer than this are merged. Default: one plate thickness of each component.
    h_maximum : float
        Minimum height of a seed above its saddle, as a fraction of the component's peak
        filling fraction, in (0, 1). Default 0.02; the contact merge removes the extra seeds a
        low value lets through.
    merge_contact_ratio : float
        Regions whose shared boundary is at least this fraction of the smaller one's cross-section
        are merged back (see module notes), > 0. Larger values merge less.
    mask : (ny, nz, nx) bool, optional
        Voxels that may belong to the sample (e.g. the reconstruction's field of view).

    Returns
    -------
    labels : (ny, nz, nx) int32
        0 is background, particles are 1..n.

    Raises
    ------
    InputError
        Wrong dimensionality or shapes, non-positive sizes, non-finite threshold.

    Examples
    --------
    >>> d = np.zeros((20, 20, 20), np.float32); d[2:8, 2:8, 2:8] = 1; d[12:18, 12:18, 12:18] = 1
    >>> int(segment(d, 6.7e-9).max())
    2
    """
    dens = to_numpy(density)
    if dens.ndim != 3:
        raise InputError(f"segment: density must be a 3D volume (ny, nz, nx), got shape {dens.shape}")
    if not np.issubdtype(dens.dtype, np.number) or np.iscomplexobj(dens):
        raise InputError(f"segment: density must be a real numeric volume, got dtype {dens.dtype}")
    _check_positive("voxel_m", voxel_m)
    if resolution_m is not None:
        _check_positive("resolution_m", resolution_m)
    if min_volume_m3 is not None and not (math.isfinite(min_volume_m3) and min_volume_m3 >= 0):
        raise InputError(f"segment: min_volume_m3 must be a finite number >= 0, got {min_volume_m3!r}")
    if min_seed_separation_m is not None:
        _check_positive("min_seed_separation_m", min_seed_separation_m)
    if not (0 < h_maximum < 1):
        raise InputError(f"segment: h_maximum must lie in (0, 1) (a fraction of the peak), got {h_maximum!r}")
    if not (math.isfinite(merge_contact_ratio) and merge_contact_ratio > 0):
        raise InputError(f"segment: merge_contact_ratio must be a positive finite number, got {merge_contact_ratio!r}")
    if threshold is not None and not math.isfinite(threshold):
        raise InputError(f"segment: threshold must be a finite number, got {threshold!r}")
    if mask is not None:
        mask = np.asarray(to_numpy(mask), dtype=bool)
        if mask.shape != dens.shape:
            raise InputError(f"segment: mask has shape {mask.shape} but density has shape {dens.shape}; "
                             "expected the same shape")

    resolution_m = 2.0 * voxel_m if resolution_m is None else resolution_m
    if min_volume_m3 is None:
        min_volume_m3 = math.pi / 6.0 * (2.0 * resolution_m) ** 3
    min_voxels = min_volume_m3 / voxel_m**3
    min_area_px = math.pi / 4.0 * (2.0 * resolution_m / voxel_m) ** 2  # a disc of diameter 2 × resolution
    sep_px = None if min_seed_separation_m is None else min_seed_separation_m / voxel_m

    if threshold is None:
        threshold = _otsu_threshold(dens)  # all finite voxels: the mask may already be the sample
        log.info("segment: Otsu threshold %.4g", threshold)
    foreground = _foreground(dens, threshold, mask)

    labels, n_components = ndimage.label(foreground, structure=_FACES, output=np.int32)
    del foreground
    next_label = n_components + 1
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        padded = _pad_box(box, labels.shape, 1)
        component = labels[padded] == index
        if split:
            parts = _split_component(component, sep_px, h_maximum, merge_contact_ratio, min_voxels, min_area_px)
        else:
            parts = component.astype(np.int32)
        sizes = np.bincount(parts.ravel())
        sizes[0] = 0
        keep = sizes >= min_voxels
        new_ids = np.zeros(sizes.size, np.int32)
        n_keep = int(keep.sum())
        new_ids[keep] = np.arange(next_label, next_label + n_keep, dtype=np.int32)
        next_label += n_keep
        view = labels[padded]
        view[component] = new_ids[parts[component]]
    return _relabel_sequential(labels)


def _check_positive(name: str, value) -> None:
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0):
        raise InputError(f"segment: {name} must be a positive finite number, got {value!r}")


def _otsu_threshold(dens: np.ndarray) -> float:
    """Automatic sample threshold: half way from the background level to the particles' core.

    Particles fill a few percent of a tomogram; with noise, the background's tail then outweighs
    them and plain Otsu splits the noise instead (rotated-plate test, 0.8 % plates, 8 % noise:
    threshold 0.02 and dozens of noise objects; Ridler–Calvard iterations drift there too). So:

    1. Otsu's threshold of the density smoothed by a Gaussian of σ = 1 voxel (noise ≈ 5× lower)
       splits background from sample;
    2. the background level is the median unsmoothed density of the background class, the core
       level the median unsmoothed density of the sample voxels whose smoothed value is in the
       upper half of the sample class (the particles' interior, not their blurred rims);
    3. the threshold is their midpoint: the boundary at half the step, as an edge is measured
       at half maximum (0.5 for density = occupancy and sharp edges).

    All histograms have 1024 bins and are accumulated slab by slab (no full-volume copy).
    """
    if not any(np.isfinite(dens[i:i + _SLAB_ROWS]).any() for i in range(0, dens.shape[0], _SLAB_ROWS)):
        raise InputError("segment: density has no finite voxels; cannot choose a threshold")
    lo, hi = math.inf, -math.inf
    for raw, smooth in _smoothed(dens):
        lo = min(lo, float(smooth.min()), float(raw.min()))
        hi = max(hi, float(smooth.max()), float(raw.max()))
    if hi <= lo:
        return lo  # constant volume: nothing exceeds the threshold
    bins = np.linspace(lo, hi, 1025)
    centres = 0.5 * (bins[1:] + bins[:-1])
    counts = np.zeros(1024, np.int64)
    for _, smooth in _smoothed(dens):
        counts += np.histogram(smooth, bins=bins)[0]
    split = float(threshold_otsu(hist=(counts, centres)))
    upper = counts * (centres > split)
    core_from = _median(upper, centres)
    background = np.zeros(1024, np.int64)
    core = np.zeros(1024, np.int64)
    for raw, smooth in _smoothed(dens):
        background += np.histogram(raw[smooth <= split], bins=bins)[0]
        core += np.histogram(raw[smooth >= core_from], bins=bins)[0]
    if background.sum() == 0 or core.sum() == 0:
        return split
    return 0.5 * (_median(background, centres) + _median(core, centres))


def _median(counts: np.ndarray, centres: np.ndarray) -> float:
    cumulative = np.cumsum(counts)
    return float(centres[np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _smoothed(dens, sigma: float = 1.0):
    """(values, values of the Gaussian-smoothed density) slab by slab, NaN counted as 0.

    NaN marks voxels outside the sample or the field of view, i.e. background. Each slab of
    ``_SLAB_ROWS`` rows is smoothed with a 4σ margin of neighbouring rows, so the result equals
    smoothing the whole volume.
    """
    margin = math.ceil(4 * sigma)
    for start in range(0, dens.shape[0], _SLAB_ROWS):
        lo, hi = max(start - margin, 0), min(start + _SLAB_ROWS + margin, dens.shape[0])
        block = np.nan_to_num(dens[lo:hi].astype(np.float32), nan=0.0)
        smooth = ndimage.gaussian_filter(block, sigma, mode="nearest")[start - lo:start - lo + _SLAB_ROWS]
        yield block[start - lo:start - lo + _SLAB_ROWS].ravel(), smooth.ravel()


def _foreground(dens, threshold, mask) -> np.ndarray:
    fg = np.empty(dens.shape, bool)
    for start in range(0, dens.shape[0], _SLAB_ROWS):
        rows = slice(start, start + _SLAB_ROWS)
        with np.errstate(invalid="ignore"):
            np.greater(dens[rows], threshold, out=fg[rows])  # NaN > t is False
        if mask is not None:
            fg[rows] &= mask[rows]
    return fg


def _pad_box(box, shape, pad):
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape))


def _split_component(component: np.ndarray, sep_px, h_rel, contact_ratio, min_voxels, min_area_px) -> np.ndarray:
    """Split one connected component (bool, bounding box) into particles. Returns int32 regions."""
    thickness = _thickness(component)
    smooth = ndimage.gaussian_filter(component.astype(np.float32), sigma=_SEED_SIGMA * thickness, mode="constant")
    smooth[~component] = 0.0
    seeds = _seeds(smooth, component, h_rel * float(smooth.max()),
                   _SEP_FACTOR * thickness if sep_px is None else sep_px)
    if seeds.max() <= 1:
        regions = component.astype(np.int32)
    else:
        regions = watershed(-smooth, markers=seeds, mask=component).astype(np.int32)
        regions = _merge_small(regions, min_voxels)
        regions = _merge_wide_contacts(regions, contact_ratio)
    return _merge_small(_split_stacks(regions, min_area_px), min_voxels)


_MIN_PLATE_ASPECT = 2.0  # smallest width/thickness of a layer split from a stack


def _split_stacks(regions: np.ndarray, min_area_px: float) -> np.ndarray:
    """Split each region into the plates stacked face on face in it (see :mod:`.layers`)."""
    out = np.zeros_like(regions)
    next_label = 1
    for r in range(1, int(regions.max()) + 1):  # one iteration per region
        inside = regions == r
        if not inside.any():
            continue
        parts = split_stacked(inside, min_area_px=min_area_px)
        if parts.max() > 1:
            # a layer cut from a stack is itself a plate, wider than twice its thickness both
            # ways: a thinner sliver (the rim of a tilted plate, a noisy step) goes back whole
            parts = _merge_small(parts, _MIN_PLATE_ASPECT ** 2 * _thickness(inside) ** 3)
        out[inside] = parts[inside] + (next_label - 1)
        next_label += int(parts.max())
    return out


def _thickness(component: np.ndarray) -> float:
    """Typical plate thickness of a component, voxels: 2·(median distance on the ridge) − 1.

    The ridge is the set of local maxima of the distance transform (a plate's mid-plane, where
    the distance is (t + 1)/2 for a slab t voxels thick). Its median ignores the thicker spots
    where two plates lie one on the other, which the maximum would report.
    """
    edt = ndimage.distance_transform_edt(component).astype(np.float32)
    ridge = component & (edt >= ndimage.maximum_filter(edt, size=3))
    return max(2.0 * float(np.median(edt[ridge])) - 1.0, 1.0)


def _seeds(smooth, component, h, sep_px) -> np.ndarray:
    """Markers: h-maxima of the seed map, merged when closer than ``sep_px``."""
    peaks = h_maxima(smooth, h).astype(bool) & component
    markers, n = ndimage.label(peaks, structure=np.ones((3, 3, 3), bool), output=np.int32)
    if n <= 1:
        return markers
    index = np.arange(1, n + 1)
    heights = ndimage.maximum(smooth, markers, index)
    centres = np.array(ndimage.center_of_mass(peaks, markers, index))
    order = np.argsort(-np.asarray(heights), kind="stable")
    kept: list[int] = []
    for i in order:  # loop over a handful of seeds, not voxels
        if all(np.linalg.norm(centres[i] - centres[j]) >= sep_px for j in kept):
            kept.append(i)
    remap = np.zeros(n + 1, np.int32)
    remap[np.asarray(kept) + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return remap[markers]


def _contacts(regions: np.ndarray, n: int) -> np.ndarray:
    """(n+1, n+1) counts of face-adjacent voxel pairs between regions (symmetric, 0 = background)."""
    counts = np.zeros((n + 1, n + 1), np.int64)
    for axis in range(3):
        a = np.moveaxis(regions, axis, 0)[:-1].ravel()
        b = np.moveaxis(regions, axis, 0)[1:].ravel()
        diff = (a != b) & (a > 0) & (b > 0)
        np.add.at(counts, (a[diff], b[diff]), 1)
    return counts + counts.T


def _merge_small(regions: np.ndarray, min_voxels: float) -> np.ndarray:
    """Merge regions smaller than ``min_voxels`` into the neighbour they touch most."""
    while True:
        n = int(regions.max())
        sizes = np.bincount(regions.ravel(), minlength=n + 1)
        contacts = _contacts(regions, n)
        contacts[:, 0] = 0
        small = [r for r in range(1, n + 1) if 0 < sizes[r] < min_voxels and contacts[r].max() > 0]
        if not small:
            return regions
        r = min(small, key=lambda k: sizes[k])
        target = int(np.argmax(contacts[r]))
        regions[regions == r] = target


def _merge_wide_contacts(regions: np.ndarray, ratio: float) -> np.ndarray:
    """Merge neighbours whose shared boundary spans most of the smaller one's cross-section."""
    while True:
        n = int(regions.max())
        ids = np.arange(1, n + 1)
        present = np.bincount(regions.ravel(), minlength=n + 1)[1:] > 0
        if present.sum() <= 1:
            return regions
        contacts = _contacts(regions, n)
        volume, centroid, cov = _moments(regions, ids)
        best, best_score = None, ratio
        pairs = np.argwhere(np.triu(contacts[1:, 1:]) > 0) + 1
        for a, b in pairs:  # loop over neighbouring region pairs
            d = centroid[b - 1] - centroid[a - 1]
            d /= max(np.linalg.norm(d), 1e-12)
            section = [volume[k - 1] / math.sqrt(12.0 * float(d @ cov[k - 1] @ d) + 1.0) for k in (a, b)]
            score = contacts[a, b] / min(section)
            if score >= best_score:
                best, best_score = (a, b), score
        if best is None:
            return regions
        regions[regions == best[1]] = best[0]


def _moments(regions: np.ndarray, ids: np.ndarray):
    """Voxel count, centroid (voxels) and covariance of voxel centres of each region."""
    coords = np.indices(regions.shape, dtype=np.float64).reshape(3, -1)
    lab = regions.ravel()
    n = ids.size + 1
    volume = np.bincount(lab, minlength=n)[1:].astype(np.float64)
    safe = np.maximum(volume, 1.0)
    first = np.stack([np.bincount(lab, weights=c, minlength=n)[1:] for c in coords], axis=1) / safe[:, None]
    cov = np.empty((ids.size, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            second = np.bincount(lab, weights=coords[i] * coords[j], minlength=n)[1:] / safe
            cov[:, i, j] = cov[:, j, i] = second - first[:, i] * first[:, j]
    return volume, first, cov


def _relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 1..n in place (order of the old numbers), keeping int32."""
    used = np.zeros(int(labels.max()) + 1, bool)
    for start in range(0, labels.shape[0], _SLAB_ROWS):
        used[np.unique(labels[start:start + _SLAB_ROWS])] = True
    used[0] = False
    lut = np.zeros(used.size, np.int32)
    lut[used] = np.arange(1, int(used.sum()) + 1, dtype=np.int32)
    for start in range(0, labels.shape[0], _SLAB_ROWS):
        rows = slice(start, start + _SLAB_ROWS)
        labels[rows] = lut[labels[rows]]
    return labels
