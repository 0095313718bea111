"""CXI detector geometry: basis_vectors and corner_position, written with plain h5py.

Each writer convention below stores the same experiment (frames, mask, probe, translations)
with the detector transposed and/or mirrored in the file and says so in ``basis_vectors``;
read_scan must return exactly the scan of the CXI default orientation.
"""

import itertools
import warnings

import h5py
import numpy as np
import pytest

from chemtomo.core import InputError, Scan
from chemtomo.core.units import ev_to_joule
from chemtomo.io import read_scan, read_scan_geometry, write_scan
from chemtomo.io.cxi_geometry import _mirror

DET = "entry_1/instrument_1/detector_1"
PY, PX = 20e-6, 25e-6          # unequal on purpose: a transpose must swap them
H, W = 8, 10                   # non-square, even and even: a transpose changes the shape


def default_experiment(seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.poisson(30, size=(5, H, W)).astype(np.float32)
    mask = rng.random((H, W)) > 0.1
    probe = (rng.standard_normal((2, H, W)) + 1j * rng.standard_normal((2, H, W))).astype(np.complex64)
    translation = np.column_stack([rng.uniform(-1e-6, 1e-6, 5), rng.uniform(-1e-6, 1e-6, 5), np.zeros(5)])
    return frames, mask, probe, translation


def write_oriented(path, transpose, flip_rows, flip_cols, *, basis_shape=(2, 3), distance=0.1, corner=None,
                   pixel_sizes=True):
    """The default experiment stored in another detector orientation, with the basis that says so."""
    frames, mask, probe, translation = default_experiment()

    def to_file(a):  # inverse of to_lab_orientation: mirror in the default frame, then transpose
        if flip_rows:
            a = _mirror(a, a.ndim - 2)
        if flip_cols:
            a = _mirror(a, a.ndim - 1)
        return np.swapaxes(a, -1, -2) if transpose else a

    row = np.array([0.0, -PY, 0.0]) * (-1 if flip_rows else 1)
    col = np.array([-PX, 0.0, 0.0]) * (-1 if flip_cols else 1)
    basis = np.stack([col, row]) if transpose else np.stack([row, col])
    if basis_shape == (3, 2):
        basis = basis.T
    elif basis_shape == (3, 3):
        basis = np.vstack([[0.0, 0.0, 0.0], basis])
    with h5py.File(path, "w") as f:
        f["entry_1/data_1/data"] = to_file(frames)
        f["entry_1/sample_1/geometry_1/translation"] = translation
        f["entry_1/instrument_1/source_1/energy"] = ev_to_joule(708.0)
        if distance is not None:
            f[f"{DET}/distance"] = distance
        f[f"{DET}/basis_vectors"] = basis
        if pixel_sizes:
            f[f"{DET}/x_pixel_size"] = np.linalg.norm(basis.T[1] if basis_shape == (3, 2) else basis[-1])
            f[f"{DET}/y_pixel_size"] = np.linalg.norm(basis.T[0] if basis_shape == (3, 2) else basis[-2])
        f[f"{DET}/mask"] = (~to_file(mask)).astype(np.uint8)
        f["entry_1/instrument_1/source_1/probe"] = to_file(probe)
        if corner is not None:
            f[f"{DET}/corner_position"] = corner
    return path


@pytest.mark.parametrize("transpose,flip_rows,flip_cols", list(itertools.product([False, True], repeat=3)))
def test_every_axis_aligned_orientation_reads_as_the_default(tmp_path, transpose, flip_rows, flip_cols):
    frames, mask, probe, translation = default_experiment()
    s = read_scan(write_oriented(tmp_path / "s.cxi", transpose, flip_rows, flip_cols))
    # exact: transposes and k → −k mirrors only move samples
    np.testing.assert_array_equal(s.frames, frames)
    np.testing.assert_array_equal(s.mask, mask)
    np.testing.assert_array_equal(s.probe, probe)
    np.testing.assert_array_equal(s.positions_m, translation[:, [1, 0]])
    assert s.detector_pixel_yx_m == pytest.approx((PY, PX), rel=1e-12)
    g = read_scan_geometry(tmp_path / "s.cxi")
    assert g["frame_shape"] == (H, W)
    assert (g["geometry"].transpose, g["geometry"].flip_rows, g["geometry"].flip_cols) == \
        (transpose, flip_rows, flip_cols)


@pytest.mark.parametrize("shape", [(3, 2), (3, 3)])
def test_cdtools_column_basis_and_three_row_basis_are_understood(tmp_path, shape):
    frames, *_ = default_experiment()
    s = read_scan(write_oriented(tmp_path / "s.cxi", True, True, False, basis_shape=shape))
    np.testing.assert_array_equal(s.frames, frames)


@pytest.mark.parametrize("n", [8, 9])
def test_mirroring_a_centred_frame_is_the_diffraction_of_the_mirrored_exit_wave(n):
    """The physics behind flip_rows: |F[ψ(−y)]|(k) = |F[ψ]|(−k), about the zero-frequency pixel n // 2."""
    rng = np.random.default_rng(n)
    psi = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    mirrored_wave = np.roll(psi[::-1], 1, axis=0)  # ψ(−y) about array index 0 (unshifted)
    intensity = np.abs(np.fft.fftshift(np.fft.fft2(psi))) ** 2
    expected = np.abs(np.fft.fftshift(np.fft.fft2(mirrored_wave))) ** 2
    np.testing.assert_allclose(_mirror(intensity, 0), expected, rtol=1e-10)  # float64 FFT round-off


def test_distance_from_corner_position_and_beam_centre(tmp_path):
    # direct beam on pixel (H//2, W//2) in the default orientation: corner at +(½ + n//2) pixels in x and y
    corner = np.array([(W // 2 + 0.5) * PX, (H // 2 + 0.5) * PY, 0.123])
    p = write_oriented(tmp_path / "s.cxi", False, False, False, distance=None, corner=corner)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = read_scan(p)
        g = read_scan_geometry(p)["geometry"]
    assert s.distance_m == pytest.approx(0.123, rel=1e-12)
    assert g.beam_centre_px == pytest.approx((H // 2, W // 2), abs=1e-9)


def test_corner_with_beam_off_centre_or_other_distance_warns(tmp_path):
    corner = np.array([2.5 * PX, 2.5 * PY, 0.2])  # beam on pixel (2, 2), 0.2 m vs distance 0.1 m
    p = write_oriented(tmp_path / "s.cxi", False, False, False, corner=corner)
    with pytest.warns(RuntimeWarning) as record:
        s = read_scan(p)
    text = " ".join(str(w.message) for w in record)
    assert "using /distance" in text and "direct beam at pixel (2.0, 2.0)" in text
    assert s.distance_m == 0.1


def test_write_scan_records_the_default_basis_and_a_centred_corner(tmp_path):
    frames, _, _, translation = default_experiment()
    scan = Scan(frames=frames, positions_m=translation[:, [1, 0]], energy_ev=708.0, distance_m=0.1,
                detector_pixel_m=PY, detector_pixel_yx_m=(PY, PX))
    p = write_scan(tmp_path / "w.cxi", scan)
    with h5py.File(p) as f:
        np.testing.assert_array_equal(f[f"{DET}/basis_vectors"][()], [[0, -PY, 0], [-PX, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the corner agrees with distance and centre: no warning
        g = read_scan_geometry(p)["geometry"]
    assert g.is_default and g.beam_centre_px == pytest.approx((H // 2, W // 2), abs=1e-9)


def _write_basis(path, basis, **extra):
    frames, *_ = default_experiment()
    with h5py.File(path, "w") as f:
        f["entry_1/data_1/data"] = frames
        f["entry_1/sample_1/geometry_1/translation"] = np.zeros((5, 3))
        f["entry_1/instrument_1/source_1/energy"] = ev_to_joule(708.0)
        f[f"{DET}/basis_vectors"] = np.asarray(basis, float)
        for k, v in extra.items():
            f[f"{DET}/{k}"] = v
    return path


@pytest.mark.parametrize("basis,extra,message", [
    ([[0, -PY * np.cos(0.09), PY * np.sin(0.09)], [-PX, 0, 0]], {"distance": 0.1}, "leaves the x–y plane by 5.16°"),
    ([[PY * np.sin(0.09), -PY * np.cos(0.09), 0], [-PX, 0, 0]], {"distance": 0.1}, "rotated 5.16° from the y axis"),
    ([[-PY, 0, 0], [-PX, 0, 0]], {"distance": 0.1}, "both run along x"),
    ([[0, 0, 0], [-PX, 0, 0]], {"distance": 0.1}, "the row vector is zero"),
    ([[0, -PY, 0], [-PX, 0, 0]], {"distance": 0.1, "x_pixel_size": 2 * PX}, "disagrees with the length"),
    ([[0, -PY, 0], [-PX, 0, 0]], {}, "no /entry_1/instrument_1/detector_1/corner_position"),
    ([[0, -PY, 0], [-PX, 0, 0]], {"corner_position": [1.0, 2.0]}, "expected three finite numbers"),
    ([[0, -PY, 0, 1], [-PX, 0, 0, 1]], {"distance": 0.1}, "expected (2, 3)"),
])
def test_bad_detector_geometry_is_refused_naming_the_field(tmp_path, basis, extra, message):
    p = _write_basis(tmp_path / "bad.cxi", basis, **extra)
    with pytest.raises(InputError, match="bad.cxi") as err:
        read_scan(p)
    assert message in str(err.value)
