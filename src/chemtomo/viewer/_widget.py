"""The particle widget: the selected particle's measurements and spectrum, in napari.

Select a particle in the ``particles`` labels layer (the picker tool, or type its label in the
layer controls): the widget shows its row of the particle table with units, and a plot of its mean
μ per energy with the fitted mixture of the reference spectra (:mod:`._spectra`). The Qt here is
only a shell around those headless functions.
"""

from __future__ import annotations

from ._reader import STORE_KEY
from ._spectra import particle_row, particle_spectrum

__all__ = ["ParticleWidget"]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


try:  # Qt comes with the `view` extra; without it the class exists but is never built
    from qtpy.QtWidgets import QWidget
except Exception:  # noqa: BLE001 - qtpy raises its own error type when no binding is installed
    QWidget = object


class ParticleWidget(QWidget):
    """The selected particle's table row and spectrum; napari passes the viewer as ``napari_viewer``."""

    def __init__(self, napari_viewer):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
        from qtpy.QtWidgets import QLabel, QTableWidget, QVBoxLayout

        super().__init__()
        self.viewer = napari_viewer
        self.title = QLabel("Select a particle in the 'particles' layer")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["quantity", "value", "unit"])
        self.figure = Figure(figsize=(4, 3), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        layout = QVBoxLayout(self)
        for w in (self.title, self.table, self.canvas):
            layout.addWidget(w)
        self._layer = None
        napari_viewer.layers.events.inserted.connect(lambda _e: self._connect())
        napari_viewer.layers.events.removed.connect(lambda _e: self._connect())
        self._connect()

    def _connect(self):
        layer = next((ly for ly in self.viewer.layers if ly.name == "particles" and STORE_KEY in ly.metadata), None)
        if layer is self._layer:
            return
        self._layer = layer
        if layer is not None:
            layer.events.selected_label.connect(lambda _e: self.show_particle(layer.selected_label))
            self.show_particle(layer.selected_label)

    def show_particle(self, label: int):
        """Show particle ``label``: its table row with units, and its spectrum with the reference fit."""
        from qtpy.QtWidgets import QTableWidgetItem

        from ..particles.measure import table_units

        layer = self._layer
        row = particle_row(getattr(layer, "features", None), label) if layer is not None else None
        self.figure.clear()
        if row is None:
            self.title.setText(f"Particle {label}: not in the particle table")
            self.table.setRowCount(0)
            self.canvas.draw_idle()
            return
        units = table_units()
        self.title.setText(f"Particle {label}")
        self.table.setRowCount(len(row))
        for i, (k, v) in enumerate(row.items()):
            for j, text in enumerate((k, _fmt(v), units.get(k, ""))):
                self.table.setItem(i, j, QTableWidgetItem(text))
        spec = particle_spectrum(layer.metadata[STORE_KEY], label)
        ax = self.figure.add_subplot()
        ax.plot(spec.energies_eV, spec.mu_per_m * 1e-6, "o-", label="particle mean")
        if spec.phases:
            ax.plot(spec.energies_eV, spec.model_per_m * 1e-6, "k--", label="reference fit")
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("μ (1/µm)")
        ax.set_title(f"{spec.n_voxels} voxels")
        ax.legend(fontsize="small")
        self.canvas.draw_idle()
