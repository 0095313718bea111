"""The plugin inside napari, headless: where the `view` extra and pytest-qt are installed, skipped
otherwise (CI installs neither). The reader and the widget run on napari's ViewerModel under the
offscreen Qt platform (no OpenGL needed); the full Qt viewer (`make_napari_viewer`, whose canvas
needs OpenGL) runs where a display is available, e.g. under `xvfb-run`."""

import os

import numpy as np
import pytest

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")



@pytest.fixture(autouse=True)
def _plugins_discovered():
    """What napari does when its Qt viewer starts: find the installed npe2 plugins."""
    import npe2

    npe2.PluginManager.instance().discover(include_npe1=False)


NAMES = ["μ 708.2 eV (1/m)", "μ 710.2 eV (1/m)", "FePO4 fraction", "density",
         "classes (1 LFP-rich, 2 mixed, 3 FP-rich)", "particles"]


def _check_layers(viewer, labels):
    assert [ly.name for ly in viewer.layers] == NAMES
    particles = viewer.layers["particles"]
    assert tuple(particles.scale) == (6.7, 6.7, 6.7) and str(particles.units[0]) == "nanometer"
    assert list(particles.features["index"]) == [1, 2]
    np.testing.assert_array_equal(np.asarray(particles.data), np.transpose(labels, (1, 0, 2)))
    classes = viewer.layers[NAMES[4]]
    assert classes.colormap.map(np.array([0]))[0][3] == 0  # outside the sample: transparent


def test_napari_opens_a_store_through_the_plugin(run_store):
    from napari.components import ViewerModel

    path, mu, labels, table = run_store
    viewer = ViewerModel()
    viewer.open(str(path), plugin="chemtomo")  # npe2 finds the reader through the entry point
    _check_layers(viewer, labels)


def test_particle_widget_follows_the_selected_label(qtbot, run_store):
    from napari.components import ViewerModel

    from chemtomo.viewer._widget import ParticleWidget

    viewer = ViewerModel()
    viewer.open(str(run_store[0]), plugin="chemtomo")
    widget = ParticleWidget(viewer)
    qtbot.addWidget(widget)
    viewer.layers["particles"].selected_label = 2
    assert widget.title.text() == "Particle 2"
    cells = {widget.table.item(i, 0).text(): widget.table.item(i, 1).text() for i in range(widget.table.rowCount())}
    assert cells["label"] == "2" and float(cells["mean_fp_fraction"]) == pytest.approx(0.5, abs=1e-4)
    assert len(widget.figure.axes) == 1 and len(widget.figure.axes[0].lines) == 2  # particle and reference fit
    viewer.layers["particles"].selected_label = 5
    assert widget.title.text() == "Particle 5: not in the particle table"


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="napari's Qt canvas needs OpenGL: run under xvfb-run")
def test_qt_viewer_opens_a_store(make_napari_viewer, run_store):
    viewer = make_napari_viewer()
    viewer.open(str(run_store[0]), plugin="chemtomo")
    _check_layers(viewer, run_store[2])
    viewer.window.add_plugin_dock_widget("chemtomo", "Particle statistics")
