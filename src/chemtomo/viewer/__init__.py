"""chemtomo inside napari: a reader for run stores, the demo as sample data, a particle widget.

The plugin is declared by the npe2 manifest ``napari.yaml`` beside this file (entry point
``napari.manifest`` in pyproject.toml) and installed with the ``view`` extra. What the user sees
(layers, scale, colours, the particle table as layer features, a particle's spectrum) is built
by functions that need neither napari nor Qt, so it is tested headless; only the widget's Qt
shell needs a display.
"""

from ._reader import layer_data, napari_get_reader, read_store
from ._sample import demo_sample
from ._spectra import particle_row, particle_spectrum

__all__ = ["demo_sample", "layer_data", "napari_get_reader", "particle_row", "particle_spectrum", "read_store"]
