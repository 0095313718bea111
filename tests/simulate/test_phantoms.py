"""Tests of the nano-plate phantom (chemtomo.simulate.phantoms)."""

import numpy as np
import pytest

from chemtomo.core import InputError
from chemtomo.simulate import PATTERNS, plate_sample


@pytest.mark.parametrize("soc", [0.0, 0.162, 0.5, 0.9, 1.0])
def test_state_of_charge_matches_request(soc):
    # domains are placed on 4^3 sub-samples per voxel, so the fraction is exact to ~1e-4;
    # the brief asks for 1 %
    s = plate_sample((32, 32, 48), 6.7e-9, n_particles=6, soc=soc, seed=3)
    occ, x = s.occupancy, s.fraction
    inside = occ > 0
    measured = float(np.sum(occ[inside] * x[inside]) / np.sum(occ[inside]))
    assert abs(measured - soc) < 0.01
    assert abs(s.soc - soc) < 0.01


def test_fields_types_ranges_and_table():
    s = plate_sample((32, 32, 48), 6.7e-9, n_particles=5, soc=0.4, seed=7)
    assert s.occupancy.dtype == np.float32 and s.fraction.dtype == np.float32 and s.labels.dtype == np.int32
    assert s.occupancy.min() >= 0 and s.occupancy.max() <= 1
    inside = s.occupancy > 0
    assert np.all(np.isnan(s.fraction[~inside]))
    assert np.all((s.fraction[inside] >= 0) & (s.fraction[inside] <= 1))
    t = s.table
    assert list(t.label) == [1, 2, 3, 4, 5]
    assert set(t.pattern) <= set(PATTERNS)
    # sizes within the paper's ranges (facet 2,500–40,000 nm², thickness 10–30 nm)
    assert t.facet_area_nm2.between(2500, 40000).all() and t.thickness_nm.between(10, 30).all()
    # rasterised volume equals the cuboid volume to partial-volume accuracy (a few % at 6.7 nm)
    np.testing.assert_allclose(t.volume_nm3, t.length_nm * t.width_nm * t.thickness_nm, rtol=0.05)
    # each labelled particle is where its table centroid says (within a voxel)
    for row in t.itertuples():
        idx = np.argwhere(s.labels == row.label).mean(axis=0)
        np.testing.assert_allclose(idx, [row.centroid_y_px, row.centroid_z_px, row.centroid_x_px], atol=1.0)


def test_patterns_are_sharp_and_match_table_fraction():
    s = plate_sample((40, 40, 64), 6.7e-9, n_particles=8, soc=0.5, seed=11, two_phase_fraction=1.0)
    for row in s.table.itertuples():
        m = s.labels == row.label
        x = s.fraction[m]
        if row.pattern == "lithiated":
            assert np.all(x == 0)
        elif row.pattern == "delithiated":
            assert np.all(x == 1)
        else:
            # sharp domains: most interior voxels are pure; only the boundary layer is mixed
            assert np.mean((x < 0.05) | (x > 0.95)) > 0.6
            assert 0 < row.fp_fraction < 1


def test_plates_lie_flat():
    # the occupied z extent of a plate is its thickness plus the rise of its tilt across the
    # facet (length·sin tilt), plus up to 2 partial voxels at the faces
    s = plate_sample((32, 40, 48), 6.7e-9, n_particles=4, soc=0.5, seed=2)
    for row in s.table.itertuples():
        z = np.nonzero((s.labels == row.label).any(axis=(0, 2)))[0]
        rise = row.length_nm * np.sin(np.radians(row.tilt_deg)) + row.thickness_nm
        assert z.size <= rise / 6.7 + 2
        assert row.tilt_deg <= 9.0


def test_seed_reproducible():
    a = plate_sample((32, 32, 32), 6.7e-9, n_particles=3, soc=0.3, seed=5)
    b = plate_sample((32, 32, 32), 6.7e-9, n_particles=3, soc=0.3, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a.occupancy, b.occupancy)


@pytest.mark.parametrize("kwargs, message", [
    ({"shape": (32, 32)}, "shape must be three integers"),
    ({"voxel_m": -1.0}, "voxel_m must be"),
    ({"n_particles": 0}, "n_particles must be a positive integer"),
    ({"soc": 1.5}, "soc"),
    ({"supersample": 0}, "supersample"),
    ({"shape": (10, 10, 10), "n_particles": 20}, "could not place particle"),
])
def test_bad_parameters_raise(kwargs, message):
    args = {"shape": (32, 32, 48), "voxel_m": 6.7e-9, "n_particles": 3, "soc": 0.5, "seed": 0}
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        plate_sample(args.pop("shape"), args.pop("voxel_m"), **args)
