"""figures: Figures built without pyplot, axes in nm, empty tables and bad ids handled."""

import pytest
from matplotlib.figure import Figure
from particle_plates import VOXEL_M, make_plates

from chemtomo.core import InputError
from chemtomo.particles import (
    activity_vs_size,
    measure,
    particle_gallery,
    volume_histogram,
)


@pytest.fixture(scope="module")
def scene():
    p = make_plates(shape=(32, 32, 48), n_free=3, n_pairs=0, seed=4)
    return p, measure(p.labels, p.fraction, VOXEL_M)


def _labels(fig):
    return [ax.get_xlabel() + " " + ax.get_ylabel() for ax in fig.axes]


def test_population_figures(scene):
    _, table = scene
    fig = volume_histogram(table)
    assert isinstance(fig, Figure) and any("nm³" in s for s in _labels(fig))
    fig = activity_vs_size(table)
    text = " ".join(_labels(fig))
    assert "nm²" in text and "thickness (nm)" in text


def test_gallery_shows_slices_and_a_3d_view(scene):
    p, _ = scene
    fig = particle_gallery(p.labels, p.fraction, VOXEL_M, [1, 3])
    assert len(fig.axes) == 8  # 3 slices + one 3D view per particle
    assert all("nm" in s for s in _labels(fig)[:3])
    assert fig.axes[3].name == "3d"
    fig.canvas.draw()  # renders without a display


def test_empty_table_draws_and_says_n_is_zero(scene):
    _, table = scene
    fig = volume_histogram(table.iloc[:0])
    assert "n = 0" in fig.axes[0].get_title()
    activity_vs_size(table.iloc[:0]).canvas.draw()


def test_unknown_particle_ids_are_named(scene):
    p, _ = scene
    with pytest.raises(InputError, match=r"particle_ids \[99\]"):
        particle_gallery(p.labels, p.fraction, VOXEL_M, [1, 99])
    with pytest.raises(InputError, match="lacks column"):
        volume_histogram(scene[1].drop(columns=["volume_nm3"]))


def _population(n, seed=0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    area = rng.uniform(2e3, 4e4, n)
    return pd.DataFrame({"facet_area_nm2": area, "thickness_nm": rng.uniform(10, 30, n),
                         "volume_nm3": area * 20, "mean_fp_fraction": rng.random(n),
                         "active_15": rng.random(n) < 0.5})


def _fraction_artists(ax):
    """The (x, y) points of the active-fraction error bars on a twin axis, and whether any line joins them."""
    lines = [ln for ln in ax.lines if ln.get_marker() == "s"]
    return [ln.get_xydata() for ln in lines], any(ln.get_linestyle() not in ("None", "none", "") for ln in lines)


def test_few_particles_give_one_population_point_not_binned_lines():
    import numpy as np

    table = _population(9)
    fig = activity_vs_size(table, n_bins=5)
    twin = fig.axes[1]  # the first panel's right axis
    (pts,), joined = _fraction_artists(twin)
    # 9 particles < 2 bins of 5: one point, the whole population's fraction, at the median size
    assert pts.shape == (1, 2) and not joined
    assert pts[0, 1] == pytest.approx(table["active_15"].mean())
    assert pts[0, 0] == pytest.approx(np.median(table["facet_area_nm2"]))
    # the histogram draws no per-bin fractions when no bin holds 5 particles
    assert len(volume_histogram(table, n_bins=10).axes) == 1


def test_many_particles_give_equal_count_bins_of_at_least_five():
    table = _population(40, seed=3)
    fig = activity_vs_size(table, n_bins=5)
    (pts,), joined = _fraction_artists(fig.axes[1])
    assert pts.shape == (5, 2) and not joined  # 40 particles: 5 bins of 8
