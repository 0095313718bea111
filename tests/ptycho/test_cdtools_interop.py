"""A scan written by cdtools (its own CXI writer) reads and reconstructs as chemtomo's own file.

cdtools stores probe translations negated (CXI sample translations), its detector basis as
3 × 2 columns, the energy as float32 joules and the mask as CXI flags; these tests check that
chemtomo's reading of all of them gives the same scan, and that cdtools' own geometry code
puts the probe at the same object pixels as chemtomo does. Skipped where cdtools (with torch)
is not installed: CI installs only ``.[dev]``; ``pip install -e .[anchors]`` brings it.
"""

import numpy as np
import pytest

from chemtomo.io import read_scan, write_scan
from chemtomo.io.cxi_geometry import _mirror
from chemtomo.ptycho import reconstruct

from .conftest import make_scan

cdtools = pytest.importorskip("cdtools")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def scan():
    mask = np.ones((32, 32), bool)
    mask[3, 5] = mask[20, 7] = False  # dead pixels: the mask convention must survive both writers
    return make_scan(mask=mask, seed=4).scan


def write_with_cdtools(path, scan, *, transposed_mirrored=False):
    """The scan through cdtools' Ptycho2DDataset.to_cxi; optionally with the detector stored
    transposed and row-mirrored, as a beamline whose camera is mounted that way would."""
    py, px = scan.detector_pixel_yx_m or (scan.detector_pixel_m, scan.detector_pixel_m)
    row, col = np.array([0.0, -py, 0.0]), np.array([-px, 0.0, 0.0])
    frames, mask = scan.frames, scan.mask
    if transposed_mirrored:
        frames, mask = _mirror(frames, 1).swapaxes(1, 2), _mirror(mask, 0).T
        row = -row
        row, col = col, row  # file rows now run along x
    basis = np.stack([row, col]).T  # cdtools' 3 × 2 columns
    n = scan.n_frames
    probe_translations = -np.column_stack([scan.positions_m[:, 1], scan.positions_m[:, 0], np.zeros(n)])
    ds = cdtools.datasets.Ptycho2DDataset(
        probe_translations, torch.as_tensor(np.ascontiguousarray(frames)), wavelength=scan.wavelength_m,
        detector_geometry={"distance": scan.distance_m, "basis": torch.as_tensor(basis)},
        mask=np.ascontiguousarray(mask))
    ds.to_cxi(path)
    return path


@pytest.mark.parametrize("transposed_mirrored", [False, True])
def test_cdtools_file_reads_and_reconstructs_as_chemtomo_file(tmp_path, scan, transposed_mirrored):
    ours = read_scan(write_scan(tmp_path / "chemtomo.cxi", scan))
    theirs = read_scan(write_with_cdtools(tmp_path / "cdtools.cxi", scan, transposed_mirrored=transposed_mirrored))
    np.testing.assert_array_equal(theirs.frames, ours.frames)
    np.testing.assert_array_equal(theirs.mask, ours.mask)
    # cdtools stores translations as float32: |t| ~ 2e-7 m, so ≤ 2e-7 × 6e-8 ≈ 1e-14 m apart
    np.testing.assert_allclose(theirs.positions_m, ours.positions_m, rtol=0, atol=1e-13)
    # energy as float32 joules: relative 6e-8
    assert theirs.energy_ev == pytest.approx(ours.energy_ev, rel=1e-6)
    assert theirs.pixel_yx_m == pytest.approx(ours.pixel_yx_m, rel=1e-6)
    a = reconstruct(ours, "RAAR:15", frc=False)
    b = reconstruct(theirs, "RAAR:15", frc=False)
    assert a.transmission.shape == b.transmission.shape
    # positions differ by < 1e-6 px (float32 translations and energy), the solvers are deterministic:
    # the two reconstructions agree to float32 round-off amplified over 15 iterations
    np.testing.assert_allclose(b.transmission, a.transmission, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b.errors, a.errors, rtol=1e-4)


def test_cdtools_places_the_probe_where_chemtomo_does(tmp_path, scan):
    """cdtools' own geometry (exit-wave basis from the detector basis, then translations to pixels)
    on chemtomo's file gives chemtomo's positions in object pixels, up to cdtools' offset."""
    from cdtools.tools import initializers, interactions

    path = write_scan(tmp_path / "chemtomo.cxi", scan)
    ds = cdtools.datasets.Ptycho2DDataset.from_cxi(path)
    geometry = ds.detector_geometry
    obj_basis = initializers.exit_wave_geometry(torch.as_tensor(geometry["basis"], dtype=torch.float32),
                                                ds.patterns.shape[-2:], ds.wavelength, geometry["distance"])
    theirs = interactions.translations_to_pixel(obj_basis, ds.translations).numpy().astype(np.float64)
    ours = read_scan(path)
    ours_px = ours.positions_m / np.asarray(ours.pixel_yx_m)
    # float32 throughout cdtools: positions of ~15 px agree to ~1e-5 px
    np.testing.assert_allclose(theirs - theirs.mean(0), ours_px - ours_px.mean(0), rtol=0, atol=1e-4)
