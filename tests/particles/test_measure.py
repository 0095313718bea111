"""measure: extents of rotated boxes, composition and activity, empty input, bad input."""

import numpy as np
import pandas as pd
import pytest
from particle_plates import VOXEL_M, _box, make_plates
from scipy.spatial.transform import Rotation

from chemtomo.core import InputError
from chemtomo.particles import measure, segment, table_units

RESOLUTION_M = 11e-9


def test_axis_aligned_box_extents_are_exact():
    labels = np.zeros((20, 20, 20), np.int32)
    labels[2:17, 5:8, 4:16] = 7  # 15 (y) × 3 (z) × 12 (x) voxels
    t = measure(labels, np.zeros(labels.shape, np.float32), 1e-9)
    # √12·σ with the voxel's own 1/12 is exact for a digitised axis-aligned box
    assert t.label.tolist() == [7]
    assert t.length_nm[0] == pytest.approx(15.0, abs=1e-9)
    assert t.width_nm[0] == pytest.approx(12.0, abs=1e-9)
    assert t.thickness_nm[0] == pytest.approx(3.0, abs=1e-9)
    assert t.facet_area_nm2[0] == pytest.approx(180.0, abs=1e-6)
    # thickness axis is z, length axis is y
    assert abs(t.axis_thickness_z[0]) == pytest.approx(1.0) and abs(t.axis_length_y[0]) == pytest.approx(1.0)
    # the mesh silhouette of a box is exact (marching cubes at 0.5 puts faces on voxel edges,
    # only the corners are chamfered: 4 corner triangles of ½·½·½ voxel² each = 0.5 voxel²)
    assert t.facet_area_mesh_nm2[0] == pytest.approx(180.0 - 0.5, abs=1e-6)
    assert t.centroid_y_nm[0] == pytest.approx(9.0) and t.centroid_x_nm[0] == pytest.approx(9.5)


@pytest.mark.parametrize("seed", range(4))
def test_rotated_box_extents_within_one_voxel(seed):
    rot = Rotation.random(random_state=seed).as_matrix()
    labels = _box((36, 36, 36), np.array([18.0, 18.0, 18.0]), rot, (15, 12, 3)).astype(np.int32)
    t = measure(labels, np.zeros(labels.shape, np.float32), VOXEL_M)
    # digitising a rotated box moves each face by up to half a voxel: extents within 1 voxel
    voxel_nm = VOXEL_M * 1e9
    for col, true in (("length_nm", 15), ("width_nm", 12), ("thickness_nm", 3)):
        assert abs(t[col][0] - true * voxel_nm) < voxel_nm
    # the thickness axis is the box's third axis (up to sign)
    axis = t[["axis_thickness_y", "axis_thickness_z", "axis_thickness_x"]].to_numpy()[0]
    assert abs(axis @ rot[:, 2]) > 0.99
    # projected mesh area: the silhouette of the digitised box, which is larger than 15×12 by
    # about half a voxel all round: between the true area and (15+1)(12+1)
    assert 180 * voxel_nm**2 < t.facet_area_mesh_nm2[0] < 16 * 13 * voxel_nm**2
    # total mesh area within 10 % of the box's 2(15·12 + 15·3 + 12·3) = 522 voxel² (staircase bias)
    assert t.surface_area_nm2[0] == pytest.approx(522 * voxel_nm**2, rel=0.10)


def test_segmented_plates_extents_and_activity_match_truth():
    p = make_plates(seed=1)
    labels = segment(p.density, VOXEL_M, resolution_m=RESOLUTION_M)
    t = measure(labels, p.fraction, VOXEL_M, resolution_m=RESOLUTION_M)
    truth = measure(p.labels, p.fraction, VOXEL_M)
    assert len(t) == len(truth) == 8
    # pair each found particle with the true plate it overlaps most
    order = [int(np.bincount(p.labels[labels == k]).argmax()) - 1 for k in t.label]
    voxel_nm = VOXEL_M * 1e9
    for col, k in (("length_nm", 0), ("width_nm", 1), ("thickness_nm", 2)):
        true = p.sizes_px[order, k] * voxel_nm
        # the brief's tolerance: one voxel (digitisation) plus the resolution (blur at the edges)
        assert np.all(np.abs(t[col].to_numpy() - true) < voxel_nm + RESOLUTION_M * 1e9)
    # mean composition: per-voxel noise 0.08 over ~500 voxels, plus blurred rims that
    # pick up a neighbour's composition at contacts: 0.03 is ≥ 5 standard errors of the clean mean
    assert np.all(np.abs(t.mean_fp_fraction.to_numpy() - p.fp_fraction[order]) < 0.03)
    # activity at 15 % agrees with the truth's compositions for every plate not within 0.03 of it
    clear = np.abs(p.fp_fraction[order] - 0.15) > 0.03
    assert np.array_equal(t.active_15.to_numpy()[clear], (p.fp_fraction[order] >= 0.15)[clear])
    # the stated error covers the deviation from the truth for most plates (it is a standard
    # error over resolution cells: ~1σ, so at least half of 8 within 2σ)
    within = np.abs(t.mean_fp_fraction.to_numpy() - p.fp_fraction[order]) < 2 * t.mean_fp_fraction_sigma
    assert within.sum() >= 4


def test_classes_and_their_shares():
    labels = np.zeros((6, 6, 6), np.int32)
    labels[1:5, 1:5, 1:5] = 1  # 64 voxels
    fraction = np.full(labels.shape, np.nan, np.float32)
    inner = fraction[1:5, 1:5, 1:5]
    inner[...] = 0.1
    inner[:1] = 0.5   # 16 mixed voxels
    inner[3:] = 0.9   # 16 FP-rich voxels
    t = measure(labels, fraction, 1e-9)
    assert (t.frac_lfp_rich[0], t.frac_mixed[0], t.frac_fp_rich[0]) == (0.5, 0.25, 0.25)
    assert t.mean_fp_fraction[0] == pytest.approx((32 * 0.1 + 16 * 0.5 + 16 * 0.9) / 64, abs=1e-6)
    # given classes take precedence over the fraction thresholds
    classes = np.where(labels > 0, 3, 0).astype(np.uint8)
    t2 = measure(labels, fraction, 1e-9, classes=classes)
    assert t2.frac_fp_rich[0] == 1.0
    # thresholds: mean 0.35 is active at 15 % and at 25 %, not at 40 %
    t3 = measure(labels, fraction, 1e-9, active_thresholds=(0.15, 0.25, 0.4))
    assert [bool(t3[c][0]) for c in ("active_15", "active_25", "active_40")] == [True, True, False]


def test_fraction_sigma_propagates_over_resolution_cells():
    labels = np.zeros((10, 10, 10), np.int32)
    labels[1:9, 1:9, 1:9] = 1  # 512 voxels
    frac = np.full(labels.shape, 0.2, np.float32)
    t = measure(labels, frac, 1e-9, fraction_sigma=0.1)
    assert t.mean_fp_fraction_sigma[0] == pytest.approx(0.1 / np.sqrt(512), rel=1e-6)
    # 2 nm resolution on a 1 nm grid: 8 voxels per cell, 64 independent cells
    t = measure(labels, frac, 1e-9, fraction_sigma=0.1, resolution_m=2e-9)
    assert t.mean_fp_fraction_sigma[0] == pytest.approx(0.1 / 8, rel=1e-6)


def test_empty_labels_give_an_empty_table_with_all_columns():
    t = measure(np.zeros((8, 8, 8), np.int32), np.zeros((8, 8, 8), np.float32), VOXEL_M)
    assert isinstance(t, pd.DataFrame) and len(t) == 0
    assert list(t.columns) == list(table_units())
    assert t.dtypes["active_15"] == bool and t.dtypes["volume_nm3"] == np.float64


def test_table_units_name_every_column_with_its_unit():
    p = make_plates(shape=(32, 32, 32), n_free=1, n_pairs=0, seed=2)
    t = measure(p.labels, p.fraction, VOXEL_M)
    units = table_units()
    assert list(t.columns) == list(units)
    for column, unit in units.items():
        if column.endswith("_nm"):
            assert unit == "nm"
        if column.endswith("_nm2"):
            assert unit == "nm^2"
        if column.endswith("_nm3"):
            assert unit == "nm^3"


@pytest.mark.parametrize("kwargs, message", [
    ({"fraction": np.zeros((8, 8, 9), np.float32)}, "fraction has shape (8, 8, 9) but labels has shape (8, 8, 8)"),
    ({"active_thresholds": (0.15, 1.5)}, "active_thresholds must be fractions in [0, 1]"),
    ({"active_thresholds": (-0.1,)}, "active_thresholds must be fractions in [0, 1]"),
    ({"class_thresholds": (0.7, 0.3)}, "class_thresholds must be two increasing"),
    ({"class_thresholds": (0.3, 1.2)}, "class_thresholds must be fractions in [0, 1]"),
    ({"labels": np.zeros((8, 8, 8), np.float32)}, "labels must hold integers"),
    ({"voxel_m": -1.0}, "voxel_m must be a positive"),
    ({"classes": np.full((8, 8, 8), 5, np.uint8)}, "classes must hold 0..3"),
    ({"fraction_sigma": np.zeros((2, 2))}, "fraction_sigma has shape (2, 2)"),
])
def test_bad_input_is_named(kwargs, message):
    args = {"labels": np.ones((8, 8, 8), np.int32), "fraction": np.zeros((8, 8, 8), np.float32), "voxel_m": 1e-9}
    args.update(kwargs)
    with pytest.raises(InputError, match=_escape(message)):
        measure(args.pop("labels"), args.pop("fraction"), args.pop("voxel_m"), **args)


def _escape(text):
    import re
    return re.escape(text)
