"""Segmentation and measurement against the simulator's truth (chemtomo.simulate.plate_sample).

One field of the paper preset: 80 plates on 151 × 129 × 257 voxels of 6.7 nm, many of them
lying edge to edge or on top of each other. The density is the truth's occupancy blurred by a
Gaussian of 0.7 voxel (≈ the paper's 11 nm FSC resolution as a FWHM of 1.6 voxels) plus 5 %
Gaussian noise; the FePO4 fraction map gets per-voxel noise of 0.1.
"""

import numpy as np
import pytest
from scipy import ndimage

from chemtomo.particles import (
    active_fraction,
    activity_trends,
    match_labels,
    measure,
    segment,
)
from chemtomo.simulate import plate_sample

VOXEL_M = 6.7e-9
RESOLUTION_M = 11e-9


@pytest.fixture(scope="module")
def field():
    s = plate_sample((151, 129, 257), VOXEL_M, n_particles=80, soc=0.162, seed=0)
    rng = np.random.default_rng(0)
    density = ndimage.gaussian_filter(s.occupancy, 0.7) + 0.05 * rng.standard_normal(s.shape).astype(np.float32)
    fraction = s.fraction + 0.1 * rng.standard_normal(s.shape).astype(np.float32)
    labels = segment(density, VOXEL_M, resolution_m=RESOLUTION_M)
    return s, density, fraction, labels, match_labels(labels, s.labels)


def test_particle_count_and_one_to_one_matching(field):
    s, density, _, labels, match = field
    # measured on this field: 79 found, 79 of 80 matched (IoU >= 0.5); on three fields 232/240
    # (74-79 per field). The misses are plates fused edge to edge and on top of each other.
    assert abs(int(labels.max()) - 80) <= 5
    assert match.n_matched >= 74
    # touching plates included: of the plates whose voxels fall in one thresholded component
    # with another plate (edge to edge or stacked; measured 42 of 43), at least 90 % are matched
    fused, _ = ndimage.label(density > 0.42)
    touching = [k for k in range(1, 81)
                if np.unique(s.labels[fused == np.bincount(fused[s.labels == k]).argmax()]).size > 2]
    assert len(touching) >= 30
    matched = set(match.truth.tolist())
    assert sum(k in matched for k in touching) >= 0.9 * len(touching)
    # stacked plates (sharing faces along z in the truth; measured 23 of 24) are matched
    a, b = s.labels[:, :-1].ravel(), s.labels[:, 1:].ravel()
    stacked = set(np.concatenate([a[(a != b) & (a > 0) & (b > 0)], b[(a != b) & (a > 0) & (b > 0)]]).tolist())
    assert sum(k in matched for k in stacked) >= 0.85 * len(stacked)


def test_extents_within_one_voxel_plus_the_resolution(field):
    s, _, fraction, labels, match = field
    table = measure(labels, fraction, VOXEL_M, resolution_m=RESOLUTION_M).set_index("label")
    truth = s.table.set_index("label")
    found, true = table.loc[match.found], truth.loc[match.truth]
    tol_nm = VOXEL_M * 1e9 + RESOLUTION_M * 1e9  # the brief's tolerance: digitisation + blur
    for col in ("length_nm", "width_nm", "thickness_nm"):
        err = np.abs(found[col].to_numpy() - true[col].to_numpy())
        # one misassigned plate in 79 may miss it (measured: 78/79 within, median error 2-3 nm)
        assert np.mean(err < tol_nm) >= 0.97, col
        assert np.median(err) < 0.5 * VOXEL_M * 1e9


def test_activity_classification_matches_the_truths_compositions(field):
    s, _, fraction, labels, match = field
    table = measure(labels, fraction, VOXEL_M, resolution_m=RESOLUTION_M).set_index("label")
    found = table.loc[match.found]
    true_fp = s.table.set_index("label").loc[match.truth].fp_fraction.to_numpy()
    # mean composition: median error 0.005 measured (noise 0.1 over hundreds of voxels; the
    # rest from rims shared with a neighbour); 90 % of particles within 0.05
    err = np.abs(found.mean_fp_fraction.to_numpy() - true_fp)
    assert np.median(err) < 0.02 and np.mean(err < 0.05) >= 0.85
    # active at 15 % and 25 % FePO4: measured 100 % and 99 % agreement with the truth
    assert np.mean(found.active_15.to_numpy() == (true_fp >= 0.15)) >= 0.95
    assert np.mean(found.active_25.to_numpy() == (true_fp >= 0.25)) >= 0.93
    # population statistics run on the measured table
    table = table.reset_index()
    f, sigma = active_fraction(int(table.active_15.sum()), len(table))
    true_f = float(np.mean(s.table.fp_fraction >= 0.15))
    assert abs(f - true_f) < 2 * sigma + 0.02
    trends = activity_trends(table, n_bootstrap=200, seed=1)
    assert trends["n"] == len(table) and set(trends["logistic"]) == {"volume_nm3", "facet_area_nm2", "thickness_nm"}


def test_crowded_demo_like_fields():
    # 20 plates on 61 × 129 columns (≈ 45 % covered, most touching): 115/120 matched measured
    # over seeds 0-5 (17-20 per field); the bound leaves room for one more miss per field
    matched = 0
    for seed in range(6):
        s = plate_sample((61, 65, 129), VOXEL_M, n_particles=20, soc=0.2, seed=seed)
        rng = np.random.default_rng(seed)
        density = ndimage.gaussian_filter(s.occupancy, 0.7) + 0.05 * rng.standard_normal(s.shape).astype(np.float32)
        matched += match_labels(segment(density, VOXEL_M, resolution_m=RESOLUTION_M), s.labels).n_matched
    assert matched >= 109
