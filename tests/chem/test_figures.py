"""Figures: each function returns a Figure with labelled axes (units) and the expected artists."""

import numpy as np
import pytest
from chem_sim import VOXEL_M, od_volumes, references, sample
from matplotlib.figure import Figure

from chemtomo.chem import (
    class_fractions,
    classify,
    fit_bimodal,
    fraction,
    plot_class_fractions,
    plot_composition_histogram,
    plot_correlation,
    plot_validation_maps,
    project_fraction,
    sample_mask,
    unmix,
)
from chemtomo.core import InputError


@pytest.fixture(scope="module")
def chem_map():
    s = sample()
    ods = od_volumes(s, sigma=0.003, seed=1)
    conc = unmix(ods, references(), voxel_m=VOXEL_M)
    f = fraction(conc, mask=sample_mask(conc.sum(0)))
    return ods, f, classify(f)


def test_correlation_plot_draws_classes_and_reference_directions(chem_map):
    ods, _f, labels = chem_map
    fig = plot_correlation(ods[0], ods[1], references(), labels)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "OD at 708.2 eV (per voxel)" and ax.get_ylabel() == "OD at 710.2 eV (per voxel)"
    assert len(ax.images) == 1
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("pure LiFePO4") for t in legend) and any(t.startswith("pure FePO4") for t in legend)
    assert {"LFP-rich", "mixed", "FP-rich"} <= set(legend)
    # the LiFePO4 ray's slope is R[1,0] / R[0,0]
    ray = ax.lines[0].get_xydata()
    r = references()
    assert ray[1, 1] / ray[1, 0] == pytest.approx(r[1, 0] / r[0, 0], rel=1e-9)
    with pytest.raises(InputError, match="labels have shape"):
        plot_correlation(ods[0], ods[1], references(), labels[:1])


def test_histogram_classes_and_validation_figures(chem_map):
    _, f, labels = chem_map
    fit = fit_bimodal(f[np.isfinite(f)], seed=0)
    fig = plot_composition_histogram(f, fit)
    ax = fig.axes[0]
    assert ax.get_xlabel() == r"FePO$_4$ fraction $x_\mathrm{FP}$ (%)" and len(ax.lines) == 3
    fig = plot_class_fractions(class_fractions(labels))
    assert fig.axes[0].get_ylabel() == "share of sample voxels (%)" and len(fig.axes[0].patches) == 3
    m = project_fraction(f, np.ones_like(f), axis=1)
    fig = plot_validation_maps(m, m, np.zeros_like(m), pixel_m=VOXEL_M)
    assert len([a for a in fig.axes if a.images]) == 3
    assert fig.axes[0].get_xlabel() == "x (nm)"
    with pytest.raises(InputError, match="shares lack classes"):
        plot_class_fractions({"mixed": 1.0})
