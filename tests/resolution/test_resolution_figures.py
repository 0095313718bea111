"""Tests of chemtomo.resolution.plot_curve."""

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from chemtomo.core import Curve, InputError
from chemtomo.resolution import frc, plot_curve


def _curve(resolution_m):
    f = np.arange(1, 33) * 1.5e6  # cycles per metre (10 nm pixels, 64 px)
    corr = np.clip(1.2 - f / 2.5e7, -0.1, 1)
    return Curve(f, corr, np.full(32, 0.1716), resolution_m, np.arange(1, 33) * 6, "half-bit")


def test_plot_curve_draws_curves_in_per_nm_and_prints_resolution_in_nm():
    curve = _curve(11.04e-9)
    fig = plot_curve(curve, title="FSC at 708.2 eV")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "spatial frequency (1/nm)" and ax.get_title() == "FSC at 708.2 eV"
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["correlation"].get_xdata(), curve.frequency_per_m * 1e-9)
    np.testing.assert_allclose(lines["½-bit threshold"].get_ydata(), curve.threshold)
    texts = [t.get_text() for t in ax.texts]
    assert any("resolution 11.0 nm (½-bit)" in t for t in texts)
    # The crossing is marked at 1/(2 × 11.04 nm) = 0.0453 /nm.
    assert any(np.allclose(line.get_xdata(), 1 / (2 * 11.04)) for line in ax.get_lines())


def test_plot_curve_without_crossing_reports_nyquist_bound_and_uses_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    out = plot_curve(_curve(float("nan")), ax=ax)
    assert out is fig
    assert any("no crossing up to Nyquist: resolution ≤ 10.4 nm" in t.get_text() for t in ax.texts)


def test_plot_curve_renders_with_agg():
    # Rendering exercises the half-period top axis and the layout engine end to end.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64))
    fig = plot_curve(frc(a, a + rng.standard_normal((64, 64)), 10e-9))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height()
    assert width > 100 and height > 100
    assert np.asarray(canvas.buffer_rgba()).std() > 0  # something was drawn


def test_plotting_never_imports_pyplot():
    # The figure module must work in headless pipelines without pyplot's global state; checked
    # in a fresh interpreter because other tests in this session may have imported pyplot.
    code = ("import sys, numpy as np; from chemtomo.resolution import frc, plot_curve; "
            "a = np.random.default_rng(0).standard_normal((16, 16)); plot_curve(frc(a, a + 1e-3 * a[::-1], 1e-9)); "
            "sys.exit('matplotlib.pyplot' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_plot_curve_refuses_non_curves():
    with pytest.raises(InputError, match=r"plot_curve: curve must be a chemtomo.core.Curve, got dict"):
        plot_curve({"resolution_m": 1e-8})
