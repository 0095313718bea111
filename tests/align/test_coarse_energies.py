"""Coarse alignment (capture range) and cross-energy registration."""

import numpy as np
import pytest
from align_testdata import misaligned_series

from chemtomo.align import coarse_align, register_energies
from chemtomo.align.coarse import centre_of_rotation_px
from chemtomo.align.energies import resample_to_reference
from chemtomo.align.transform import alignment_error_px
from chemtomo.core.errors import InputError

E1, E2 = 708.2, 710.2


@pytest.fixture(scope="module")
def far():
    # shifts up to a fifth of the field in both directions (6.4 of 32 rows, 9.6 of 48 columns),
    # plus rotation ±1°, scale ±1 %, per-energy offsets ±3 px, noise and intensity drift
    return misaligned_series(max_shift_px=(32 / 5, 48 / 5), seed=11)


def _mask(d):
    return (d.perfect[E1] > 0.05 * d.perfect[E1].max()).any(axis=0)


def test_coarse_captures_a_fifth_of_the_field(far):
    # integer rounding alone leaves ≤ 0.5 px per axis (RMS 0.41 px in 2D); rotation and scale
    # (not fitted by the coarse step) add ≈ 0.2 px RMS on the sample: < 0.6 px RMS
    al = coarse_align(far.raw[E1], far.angles_deg)
    assert al.method == "coarse"
    assert np.all(al.shifts_px == np.round(al.shifts_px))
    assert np.abs(far.shifts_px).max(axis=0).tolist() > [5.5, 8.5]
    err = alignment_error_px((32, 48), far.angles_deg, al.params, far.truth, mask=_mask(far))
    assert err < 0.6


def test_coarse_subpixel_and_rotation_centre(far):
    # without rounding the mass-based estimate is limited by rotation/scale: < 0.35 px RMS
    al = coarse_align(far.raw[E1], far.angles_deg, integer=False)
    assert alignment_error_px((32, 48), far.angles_deg, al.params, far.truth, mask=_mask(far)) < 0.35
    # a series shifted by a constant 3.0 px in x has its rotation centre 3 px further along x
    # (within the 0.1 px of noise and random shifts)
    shifted = np.roll(far.perfect[E1], 3, axis=2)
    assert centre_of_rotation_px(shifted, far.angles_deg) - centre_of_rotation_px(far.perfect[E1], far.angles_deg) == pytest.approx(3.0, abs=0.1)


def test_coarse_tolerates_projections_that_lose_mass(far):
    # two projections lose their outer columns (material leaving the field at high tilt): their
    # shifts stay within 2 px of those found from the intact data, inside the capture range of
    # the reprojection alignment that follows (its phase-correlation start reaches many pixels)
    raw = far.raw[E1].copy()
    raw[[3, 30], :, 34:] = 0.0
    al = coarse_align(raw, far.angles_deg, integer=False)
    good = coarse_align(far.raw[E1], far.angles_deg, integer=False)
    for i in (3, 30):
        assert np.abs(al.shifts_px[i] - good.shifts_px[i]).max() < 2.0


def test_energy_offsets_recovered_despite_chemical_contrast(far):
    # offsets up to ±3 px between energies whose materials swap contrast; joint phase correlation
    # over 36 angles errs < 0.05 px (measured 0.005–0.041 px on eight phantom seeds, 0.038 on
    # this one; the former per-angle median 0.006–0.078 px), bound 0.06 for the noise's spread
    off = register_energies(far.raw, far.angles_deg)
    assert set(off) == {E1, E2}
    np.testing.assert_array_equal(off[E1], [0.0, 0.0])
    np.testing.assert_allclose(off[E2], far.offsets_px[E2], atol=0.06)


def test_filters_compared(far):
    # edges are shared between energies, grey levels are not; phase correlation weights edges
    # by itself. On this data high-pass (difference of Gaussians) and the raw images both land
    # within 0.1 px, while the gradient *magnitude* is biased by 0.3–0.4 px (noise and the
    # contrast-dependent width of its ridges)
    err = {f: np.abs(register_energies(far.raw, far.angles_deg, filter=f)[E2] - far.offsets_px[E2]).max()
           for f in ("gradient", "none", "highpass")}
    assert err["highpass"] < 0.1 and err["none"] < 0.1
    assert err["gradient"] > err["highpass"]


def test_energy_with_other_pixel_size_is_resampled_first(far):
    # E2 recorded with pixels 2 % larger: resampled onto E1's grid, the offset is still found
    # (bilinear resampling of noisy data costs < 0.1 px)
    ratio = 1 / 1.02  # p_ref / p_E
    # simulate the coarser E2 grid: E2 pixel j shows the point of E1 pixel c + (j − c)·1.02
    coarse_e2 = resample_to_reference(far.raw[E2], 1.02)
    tilts = {E1: far.raw[E1], E2: coarse_e2}
    off = register_energies(tilts, far.angles_deg, pixel_m={E1: 10e-9, E2: 10.2e-9})
    np.testing.assert_allclose(off[E2], far.offsets_px[E2], atol=0.06)
    assert ratio == pytest.approx(10e-9 / 10.2e-9)


def test_energy_registration_errors(far):
    with pytest.raises(InputError, match="same angles and projection shape"):
        register_energies({E1: far.raw[E1], E2: far.raw[E2][:, :, :40]}, far.angles_deg)
    with pytest.raises(InputError, match="angles of 710.2 eV differ"):
        register_energies(far.raw, {E1: far.angles_deg, E2: far.angles_deg + 1})
    with pytest.raises(InputError, match="reference_energy"):
        register_energies(far.raw, far.angles_deg, reference_energy=700.0)
    with pytest.raises(InputError, match="pixel size"):
        register_energies(far.raw, far.angles_deg, pixel_m={E1: 1e-8, E2: -1.0})
    with pytest.raises(InputError, match="at least 3 angles"):
        register_energies({E1: far.raw[E1][:2], E2: far.raw[E2][:2]}, far.angles_deg[:2])
