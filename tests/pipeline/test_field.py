"""The tilt-series field: the largest centred box that the scan lit well, never a degenerate one."""

import numpy as np

from chemtomo.pipeline.ptycho_stage import _illuminated_half_extent
from chemtomo.ptycho import zone_plate_probe


def test_lit_box_follows_the_raster_and_ignores_central_stop_dips():
    pixel = 6.7e-9
    probe = zone_plate_probe((32, 32), pixel, 708.2, diameter_m=240e-6, defocus_m=-1.5e-6)[None]
    step = 70e-9
    ys, xs = np.meshgrid(np.arange(-2, 3) * step, np.arange(-4, 5) * step, indexing="ij")
    positions = np.stack([ys.ravel(), xs.ravel()], axis=1)  # 5 × 9 raster: ±140 nm × ±280 nm
    hy, hx = _illuminated_half_extent(positions, probe, pixel, (96, 128))
    # the lit box is at least the raster and at most the raster plus the probe's radius (16 px)
    assert 140e-9 <= hy <= 140e-9 + 16 * pixel
    assert 280e-9 <= hx <= 280e-9 + 16 * pixel
    assert hx - hy > 100e-9  # wider than tall, like the raster
