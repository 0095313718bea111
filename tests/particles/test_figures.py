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
