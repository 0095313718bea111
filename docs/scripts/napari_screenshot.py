"""Screenshot of napari with a chemtomo run store opened through the plugin (for the docs).

Needs the `view` extra and a display (on a headless machine: ``xvfb-run -a``):

    xvfb-run -a -s "-screen 0 1700x1050x24" python docs/scripts/napari_screenshot.py demo-run/run.zarr docs/_static/napari_store.png

Opens the store as ``napari RUN.zarr`` does, docks the particle widget, selects the particle with
the most voxels, shows one slice of the chemical map over μ, and saves the window.
"""

import sys

import napari


def main(store: str, out: str) -> None:
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="chemtomo", show=True)
    viewer.window._qt_window.resize(1600, 950)
    viewer.open(store, plugin="chemtomo")
    viewer.window.add_plugin_dock_widget("chemtomo", "Particle statistics")
    particles = viewer.layers["particles"]
    table = particles.features
    label = int(table.loc[table["n_voxels"].idxmax(), "index"])
    particles.visible = True
    particles.selected_label = label
    z_nm, y_nm, x_nm = (table.loc[table["index"] == label, c].iloc[0]
                        for c in ("centroid_z_nm", "centroid_y_nm", "centroid_x_nm"))
    viewer.dims.set_point(0, z_nm)  # the slice through the particle's centre (layer coordinates in nm)
    viewer.layers["FePO4 fraction"].visible = True
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(out, canvas_only=False, flash=False)
    print(f"wrote {out}: particle {label} selected")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
