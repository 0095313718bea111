"""guess_orientation: a scan stored under a wrong position convention is recognised.

The scan is the shared small simulation (blobs on air, 32-px frames, 7 × 7 raster) with the
object's phase negative relative to air, as for X-rays with δ > 0, and its positions stored as
a writer with x and y exchanged and y negated would store them; reading it back needs
``swap_xy = flip_x = true``.
"""

import numpy as np
import pytest

from chemtomo.core import InputError, Scan, energy_to_wavelength
from chemtomo.ptycho import zone_plate_probe
from chemtomo.ptycho.orientation import CONVENTIONS, apply_convention, guess_orientation
from chemtomo.simulate.ptychography import (
    diffraction_frames,
    object_shape,
    raster_positions,
)

from .conftest import DISTANCE_M, ENERGY_EV, PIXEL_M, N, blob_object

TRUE = (True, True, False)  # swap_xy, flip_x, flip_y


def stored_positions(actual, swap_xy, flip_x, flip_y):
    """What a file holds if reading it with these flags gives ``actual`` (inverse of apply_convention)."""
    q = actual.copy()
    q[:, 0] = -q[:, 0] if flip_y else q[:, 0]
    q[:, 1] = -q[:, 1] if flip_x else q[:, 1]
    return q[:, ::-1].copy() if swap_xy else q


@pytest.fixture(scope="module")
def misoriented_scan():
    wavelength = energy_to_wavelength(ENERGY_EV)
    probe = zone_plate_probe((N, N), PIXEL_M, ENERGY_EV, defocus_m=0.3 * N * PIXEL_M * 100e-9 / wavelength)
    _, actual = raster_positions((6 * 5.0 * PIXEL_M,) * 2, 5.0 * PIXEL_M, jitter_m=0.3 * PIXEL_M, seed=0)
    pos_px = actual / PIXEL_M
    obj = np.conj(blob_object(object_shape(pos_px, (N, N), 6), 1))  # phase ≤ 0 relative to air
    frames = diffraction_frames(obj, probe, pos_px, dose_photons=1e5, seed=2)
    return Scan(frames=frames, positions_m=stored_positions(actual, *TRUE), energy_ev=ENERGY_EV,
                distance_m=DISTANCE_M, detector_pixel_m=wavelength * DISTANCE_M / (N * PIXEL_M))


def test_stored_positions_inverts_apply_convention():
    p = np.random.default_rng(0).standard_normal((5, 2))
    for flags in CONVENTIONS:
        back = apply_convention(stored_positions(p, *flags), swap_xy=flags[0], flip_x=flags[1], flip_y=flags[2])
        np.testing.assert_array_equal(back, p)


@pytest.mark.parametrize("frame_px", [None, 24])
def test_the_true_convention_wins_with_a_margin(misoriented_scan, frame_px):
    g = guess_orientation(misoriented_scan, algorithm="RAAR:20", frame_px=frame_px)
    assert g.best.flags == TRUE
    assert {t.flags for t in g.trials} == set(CONVENTIONS)
    # Measured on this scan: the wrong pairs end with 7-8x the data error of the right pair
    # (RAAR:20, whole and 24-px frames). A wrong convention cannot fit the overlaps, so its error
    # stays near the start; 3x leaves room for other seeds while staying far above the ~1.1
    # spread within a degenerate pair.
    assert g.margin > 3.0
    # The twin (both axes negated) is degenerate in far-field data: equal error up to iteration
    # noise (measured 1.08), resolved by the phase sign (air-referenced phase ≤ 0 here).
    assert g.twin_ratio < 1.3
    twin = next(t for t in g.trials if t.flags == g.best.twin)
    assert g.best.mean_phase_rad < 0 < twin.mean_phase_rad


def test_too_few_frames_is_refused(misoriented_scan):
    import dataclasses

    few = dataclasses.replace(misoriented_scan, frames=misoriented_scan.frames[:8],
                              positions_m=misoriented_scan.positions_m[:8], source="few.cxi")
    with pytest.raises(InputError, match="few.cxi.*at least 9"):
        guess_orientation(few)
    with pytest.raises(InputError, match="frame_px"):
        guess_orientation(misoriented_scan, frame_px=4)


def test_cli_prints_the_table_and_the_input_flags(misoriented_scan, tmp_path):
    from typer.testing import CliRunner

    from chemtomo.cli import app
    from chemtomo.io import write_scan

    path = write_scan(tmp_path / "scan.cxi", misoriented_scan)
    r = CliRunner().invoke(app, ["ptycho", str(path), "--guess-orientation"])
    assert r.exit_code == 0, r.output
    assert "<- best" in r.stdout and "(twin of best)" in r.stdout
    assert "[input]\nswap_xy = true\nflip_x = true\nflip_y = false" in r.stdout
    r = CliRunner().invoke(app, ["ptycho", str(path)])
    assert r.exit_code == 1 and "--out" in r.output
