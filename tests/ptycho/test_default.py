"""The default chain (issue 22) on small scans of each probe kind: it converges to the truth
within what the dose allows, never diverges at low dose, and stops by itself, saying why.

Scans: 32² frames, a 6 × 6 raster with random offsets (``conftest.make_scan`` geometry), the
smooth absorbing, phase-shifting blobs of ``conftest.blob_object``; the probe guess handed over is
the truth propagated out of focus (overlap 0.9 with the truth) or stretched 2× (too broad).
"""

import dataclasses
import logging

import numpy as np
import pytest

from chemtomo.core import InputError, Scan
from chemtomo.ptycho import (
    BACKGROUND_ALGORITHM,
    LOW_DOSE_ALGORITHM,
    MID_DOSE_ALGORITHM,
    ConvergenceOptions,
    PtychoOptions,
    default_chain,
    engine,
    reconstruct,
    zone_plate_probe,
)
from chemtomo.ptycho.options import ProbeOptions
from chemtomo.ptycho.probe import probe_from_diffraction, propagate_probe
from chemtomo.simulate.ptychography import diffraction_frames, object_shape

from .conftest import DISTANCE_M, ENERGY_EV, PIXEL_M, N, blob_object

WAVELENGTH_M = 1.23984e-6 / ENERGY_EV


def _propagate(field, lz_px2):
    q = np.fft.fftfreq(field.shape[0])
    h = np.exp(-1j * np.pi * lz_px2 * (q[:, None] ** 2 + q[None, :] ** 2))
    return np.fft.fftshift(np.fft.ifft2(np.fft.fft2(np.fft.ifftshift(field)) * h))


def _probe(kind, n=N):
    y, x = np.indices((n, n)) - n // 2
    r2 = (y * y + x * x).astype(float)
    if kind == "zone plate":
        p = zone_plate_probe((n, n), PIXEL_M, ENERGY_EV, defocus_m=0.3 * n * PIXEL_M * 100e-9 / WAVELENGTH_M)
    elif kind == "gaussian":  # Gaussian with a curved (quadratic-phase) wavefront
        w0 = 0.15 * n
        p = np.exp(-r2 / w0 ** 2 + 3j * r2 / w0 ** 2)
    else:  # a pinhole of radius a, propagated to Fresnel number 1.5
        a = 0.12 * n
        p = _propagate((r2 <= a * a).astype(complex), a * a / 1.5)
    p = np.asarray(p, np.complex128).reshape(n, n)
    return p / np.linalg.norm(p)


def _guess(probe, kind):
    n = probe.shape[0]
    if kind == "exact":
        return (probe / np.linalg.norm(probe)).astype(np.complex64)
    if kind == "disc":  # a flat disc of the beam's diameter 2·sqrt(2<r²>)
        intensity = np.abs(probe) ** 2
        y, x = np.indices(intensity.shape) - n // 2
        d = 2 * np.sqrt(2 * np.sum(intensity * (y * y + x * x)) / intensity.sum())
        g = (np.hypot(y, x) <= d / 2).astype(complex)
        return (g / np.linalg.norm(g)).astype(np.complex64)
    if kind == "defocus":  # propagate until the overlap with the truth is 0.9
        lo, hi = 0.0, 50.0 * n
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            g = _propagate(probe, mid)
            lo, hi = (mid, hi) if abs(np.vdot(g, probe)) / np.linalg.norm(g) > 0.9 else (lo, mid)
        g = _propagate(probe, lo)
    else:  # stretched 2×
        from scipy import ndimage
        c = n // 2 + (np.indices((n, n)) - n // 2) / 2.0
        g = ndimage.map_coordinates(probe.real, c, order=1) + 1j * ndimage.map_coordinates(probe.imag, c, order=1)
    return (g / np.linalg.norm(g)).astype(np.complex64)


def _scan(probe_kind, guess_kind, dose, seed=0, n=N, side=6, off_grid=False):
    probe = _probe(probe_kind, n)
    intensity = np.abs(probe) ** 2
    y, x = np.indices(intensity.shape)
    d = 2 * np.sqrt(2 * np.sum(intensity * ((y - n // 2) ** 2 + (x - n // 2) ** 2)))  # flat-disc diameter
    rng = np.random.default_rng(seed)
    k = (np.arange(side) - (side - 1) / 2) * 0.35 * d
    raster = np.stack(np.meshgrid(k, k, indexing="ij"), -1).reshape(-1, 2)
    pos = raster + rng.uniform(-0.15, 0.15, raster.shape) * 0.35 * d
    if not off_grid:  # whole pixels; off the grid, the probe sits where the stage put it
        pos = np.rint(pos)
    obj = blob_object(object_shape(pos, (n, n), 6), seed + 1)
    frames = diffraction_frames(obj, probe.astype(np.complex64), pos, dose_photons=dose, seed=seed + 2)
    scan = Scan(frames=frames, positions_m=pos * PIXEL_M, energy_ev=ENERGY_EV, distance_m=DISTANCE_M,
                detector_pixel_m=WAVELENGTH_M * DISTANCE_M / (n * PIXEL_M), probe=_guess(probe, guess_kind)[None])
    photons = np.zeros(obj.shape)  # photons through each object pixel, all frames
    for cy, cx in np.rint(pos).astype(int) + np.array(obj.shape) // 2 - n // 2:
        photons[cy:cy + n, cx:cx + n] += dose * intensity
    return scan, obj, photons


def _od_error(rec, truth, lit):
    """RMS OD (−2 ln|T|) difference on ``lit``, the constant OD offset (air reference) removed."""
    diff = -2 * np.log(np.abs(rec[lit])) + 2 * np.log(np.abs(truth[lit]))
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2)))


@pytest.mark.parametrize("probe_kind, guess_kind", [("zone plate", "defocus"), ("gaussian", "defocus"),
                                                    ("pinhole", "defocus"), ("gaussian", "broad"),
                                                    ("zone plate", "broad")])
def test_the_default_converges_to_the_truth_within_the_dose_limit(probe_kind, guess_kind):
    dose = 1e5
    scan, obj, photons = _scan(probe_kind, guess_kind, dose)
    p = reconstruct(scan, object_shape=obj.shape, frc=False)
    lit = photons >= 0.5 * photons.max()
    # Shot-noise limit of an OD measured with N photons through a pixel of transmission |T|²:
    # σ_OD = 2 σ_|T| / |T| = 1 / sqrt(N |T|²) (an ideal estimator; OD ≤ 1 here, so |T|² ≥ 1/e).
    # The tolerance is 3× that at the dimmest well-lit pixel: a real reconstruction shares the
    # photons between amplitude and phase and between object and probe (√2 each, so ~2×, the
    # errors measured here are 1–1.6 σ); what it must not do is stop near the guess (a 2×-broad
    # guess left as it is ends at 0.25–0.27, ~10 σ) or diverge.
    sigma_od = 1 / np.sqrt(photons[lit].min() / np.e)
    err = _od_error(np.asarray(p.transmission), obj, lit)
    assert not p.info["diverged"]
    assert err < 3 * sigma_od, (probe_kind, guess_kind, err, sigma_od)
    # a 2×-broad guess is resized from the mean diffraction pattern (probe.match_probe_scale);
    # a defocused one of the right size is left alone
    assert p.info["probe_guess_scale"] == pytest.approx(0.5 if guess_kind == "broad" else 1.0)
    # ~100 counts per pixel: the mid-dose chain, whose object is not weighted by a split-half FRC,
    # so with frc=False no halves are reconstructed
    assert p.info["frc_weighting"] is None and p.frc is None


def test_the_default_never_diverges_at_low_dose():
    # 300 photons per frame: a few photons per bright detector pixel, most pixels empty
    scan, obj, photons = _scan("zone plate", "defocus", 300.0)
    p = reconstruct(scan, object_shape=obj.shape, frc=False)
    t = np.asarray(p.transmission)
    lit = photons >= 0.5 * photons.max()
    assert not p.info["diverged"] and p.info["stop_reason"] == "converged"
    assert np.isfinite(t).all() and np.isfinite(p.errors).all()
    # ~10 photons through each well-lit object pixel: the shot-noise limit σ_OD = 1/sqrt(N |T|²)
    # (see above) is ~0.5, more than the object's own OD spread (0.2). A diverged or noise-fitting
    # run ends far above σ (OD errors of several units); a sound one stays within 1.5 σ of the truth
    sigma_od = 1 / np.sqrt(photons[lit].min() / np.e)
    assert _od_error(t, obj, lit) < 1.5 * sigma_od


@pytest.mark.parametrize("seed", [0, 1])
def test_at_low_dose_the_default_weights_the_object_by_its_split_half_frc(seed):
    # 10⁴ photons per frame on 32² frames, ~10 counts per pixel: the low-dose chain, whose
    # converged LSQML has fitted some of the photon noise. PtychoOptions.frc_weighting ("auto")
    # reconstructs the even and odd frames too (frc=False notwithstanding) and weights each ring
    # of the object by √(2 FRC / (1 + FRC)).
    scan, obj, photons = _scan("pinhole", "defocus", 1e4, seed=seed)
    weighted = reconstruct(scan, object_shape=obj.shape, frc=False)
    plain = reconstruct(scan, object_shape=obj.shape, frc=False, options=PtychoOptions(frc_weighting="off"))
    assert weighted.info["algorithm"] == plain.info["algorithm"] == LOW_DOSE_ALGORITHM
    assert weighted.info["frc_weighting"]["option"] == "auto" and plain.info["frc_weighting"] is None
    assert weighted.frc is not None and plain.frc is None  # the halves ran for the weight
    lit = photons >= 0.5 * photons.max()
    e_weighted = _od_error(np.asarray(weighted.transmission), obj, lit)
    e_plain = _od_error(np.asarray(plain.transmission), obj, lit)
    # Measured on seeds 0–2: the weight takes 26–39 % off the OD error here (the noise the
    # solver fitted sits in the rings where the halves disagree). 15 % is the bound: a weight
    # that did nothing, or one that blurred the signal with the noise, would not reach it.
    assert e_weighted < 0.85 * e_plain, (e_weighted, e_plain)


def test_frc_weighting_on_weights_any_chain_and_off_none():
    scan, obj, _ = _scan("zone plate", "defocus", 1e5)
    on = reconstruct(scan, "ePIE:10", object_shape=obj.shape, frc=False, options=PtychoOptions(frc_weighting="on"))
    assert on.info["frc_weighting"]["rule"] == "asked for" and on.frc is not None
    off = reconstruct(scan, "ePIE:10", object_shape=obj.shape, frc=True, options=PtychoOptions(frc_weighting="off"))
    assert off.info["frc_weighting"] is None and off.frc is not None
    # the FRC is the halves', the same whether or not the full scan's object is weighted
    assert np.array_equal(on.frc.correlation, off.frc.correlation)
    assert not np.array_equal(on.transmission, off.transmission)
    with pytest.raises(InputError, match="frc_weighting"):
        reconstruct(scan, "ePIE:1", frc=False, options=PtychoOptions(frc_weighting="yes"))


def test_the_stopping_rule_stops_and_records_why(caplog):
    scan, obj, _ = _scan("zone plate", "defocus", 1e4)
    with caplog.at_level(logging.INFO, logger="chemtomo.ptycho"):
        p = reconstruct(scan, object_shape=obj.shape, frc=False)
    maximum = sum(n for _, n in p.info["stages"])
    assert p.info["stop_reason"] == "converged" and p.info["iterations"] < maximum
    assert len(p.errors) == p.info["iterations"]
    assert any("converged" in r.getMessage() and "stopped after" in r.getMessage() for r in caplog.records)
    # the rule off: the full count, and the record says so
    off = PtychoOptions(convergence=ConvergenceOptions(tolerance=0.0))
    q = reconstruct(scan, "rPIE:35", object_shape=obj.shape, frc=False, options=off)
    assert q.info["iterations"] == 35 and q.info["stop_reason"] == "max_iterations"


def test_a_chain_moves_to_its_next_stage_when_one_converges():
    # rPIE:500 converges long before 500 iterations on this scan; ePIE must still run after it
    scan, obj, _ = _scan("zone plate", "defocus", 1e4)
    p = reconstruct(scan, "rPIE:500,ePIE:3", object_shape=obj.shape, frc=False)
    assert p.info["iterations"] < 500 and p.info["stop_reason"] == "max_iterations"
    # the default's chain at ~100 counts per pixel: its bounded LSQML start (50) hands over to
    # rPIE, then ePIE (the defocus check off: on this scan it starts the chain over at iteration
    # 50, tested below)
    mid, obj, _ = _scan("gaussian", "defocus", 1e5)
    q = reconstruct(mid, object_shape=obj.shape, frc=False, options=PtychoOptions(probe=ProbeOptions(defocus_at=0)))
    assert q.info["algorithm"] == MID_DOSE_ALGORITHM and [s for s, _ in q.info["stages"]] == ["LSQML", "rPIE", "ePIE"]
    ran = q.info["stage_iterations"]  # what each stage ran: LSQML stops at convergence (≥ 30) or 50
    assert [s for s, _ in ran] == ["LSQML", "rPIE", "ePIE"] and sum(n for _, n in ran) == q.info["iterations"]
    assert 30 <= ran[0][1] <= 50 and min(n for _, n in ran) >= 1


def test_a_later_stage_has_its_own_minimum():
    # ConvergenceOptions.min_iterations (30) keeps a chain's first stage from stopping during a
    # slow start; later_min_iterations (by default the same value) does it for the stages after.
    # A second rPIE stage continues the first's converged state, so its error is flat from its
    # first window: held to 30 by default, it stops at the first check past the rule's two windows
    # (20 iterations, 10 per window) with later_min_iterations = 0, and the first stage is the same
    # either way. (ePIE after rPIE, the default chain's pair, was used here until session 37: its
    # first windows still fall by about the rule's 0.2 %, so whether it stopped before 30 turned on
    # the transforms' rounding, pocketfft's or FFTW's.) The defocus check is off (on this scan it
    # starts the chain over at iteration 50; tested below).
    scan, obj, _ = _scan("zone plate", "defocus", 1e5)
    no_check = ProbeOptions(defocus_at=0)
    chain = "rPIE:100,rPIE:100"
    p = reconstruct(scan, chain, object_shape=obj.shape, frc=False, options=PtychoOptions(probe=no_check))
    (_, first), (_, last) = p.info["stage_iterations"]
    assert p.info["stop_reason"] == "converged" and p.info["convergence_rule"] == "relative fall"
    assert first >= 30 and last >= 30, p.info["stage_iterations"]
    short = PtychoOptions(convergence=ConvergenceOptions(later_min_iterations=0), probe=no_check)
    q = reconstruct(scan, chain, object_shape=obj.shape, frc=False, options=short)
    assert q.info["stage_iterations"][0] == ("rPIE", first)
    assert 20 <= q.info["stage_iterations"][1][1] < 30, q.info["stage_iterations"]
    assert q.info["convergence_rule"] == "relative fall"
    # the same run up to q's stop, and each stopped at the first iteration the rule allowed: a
    # windowed fall below 0.2 %, from 20 (q) or 30 (p) iterations into the stage
    n_q = len(q.errors)
    assert np.array_equal(q.errors, p.errors[:n_q])
    e = np.asarray(p.errors, np.float64)

    def flat(k: int) -> bool:  # after k iterations of the second stage
        end = first + k
        new, old = e[end - 10:end].mean(), e[end - 20:end - 10].mean()
        return old - new < 2e-3 * old

    assert [flat(k) for k in range(20, n_q - first + 1)] == [False] * (n_q - first - 20) + [True]
    assert [flat(k) for k in range(30, last + 1)] == [False] * (last - 30) + [True]
    # a larger min_iterations holds the later stages too unless they are given their own
    longer = PtychoOptions(convergence=ConvergenceOptions(min_iterations=40), probe=no_check)
    r = reconstruct(scan, chain, object_shape=obj.shape, frc=False, options=longer)
    assert all(n >= 40 for _, n in r.info["stage_iterations"]), r.info["stage_iterations"]
    with pytest.raises(InputError, match="later_min_iterations"):
        reconstruct(scan, "ePIE:5", object_shape=obj.shape, frc=False,
                    options=PtychoOptions(convergence=ConvergenceOptions(later_min_iterations=-1)))


@pytest.mark.parametrize("dose, chain", [(1e5, LOW_DOSE_ALGORITHM), (1e6, MID_DOSE_ALGORITHM)])
def test_a_guess_out_of_focus_is_carried_to_the_focus_the_data_show(dose, chain):
    # A Gaussian probe with a curved wavefront on 64² frames (7 × 7 frames; 10⁵ photons is ~24
    # counts per pixel, the low-dose chain, 10⁶ the mid-dose one), the guess the truth out of
    # focus (overlap 0.9). At iteration 50 (ProbeOptions.defocus_at) the guess carried to the
    # distance the data favour is the truth to overlap ≥ 0.999 (measured on seeds 0–4; 0.99 allows
    # for the fit on a noisier object), and on this seed the probe refined so far fits the data
    # no better than it: the run starts over from it, the chain from its first stage.
    scan, obj, photons = _scan("gaussian", "defocus", dose, seed=0, n=64, side=7)
    truth = _probe("gaussian", 64)
    p = reconstruct(scan, object_shape=obj.shape, frc=False)
    check = p.info["probe_defocus"]
    carried = propagate_probe(scan.probe, check["lambda_z_px2"])[0]
    assert abs(np.vdot(scan.probe[0], truth)) / np.linalg.norm(scan.probe[0]) < 0.901
    assert abs(np.vdot(carried, truth)) / np.linalg.norm(carried) > 0.99
    assert check["iteration"] == 50 and check["restarted"], check
    assert p.info["algorithm"] == chain
    first = chain.split(":")[0]
    ran = p.info["stage_iterations"]
    assert ran[0] == (first, 50) and ran[1][0] == first and sum(n for _, n in ran) == p.info["iterations"]
    assert len(ran) == len(p.info["stages"]) + 1  # the first stage twice, then the rest of the chain
    # without the check: the refined probe keeps the noise of its first 50 iterations, and the
    # object with it. The restart took 22 % (10⁵) and 11 % (10⁶) off the OD error on this seed
    # (15 % and 6 % on seed 2); 5 % is the least gain this test accepts.
    off = reconstruct(scan, object_shape=obj.shape, frc=False, options=PtychoOptions(probe=ProbeOptions(defocus_at=0)))
    assert off.info["probe_defocus"] is None and len(off.info["stage_iterations"]) == len(off.info["stages"])
    lit = photons >= 0.5 * photons.max()
    err, err_off = (_od_error(np.asarray(q.transmission), obj, lit) for q in (p, off))
    assert err < 0.95 * err_off, (err, err_off)


@pytest.mark.parametrize("convergence", [ConvergenceOptions(tolerance=0.0), ConvergenceOptions(noise_floor=False)])
def test_the_defocus_check_runs_whatever_the_stopping_rule(convergence):
    # The check's allowance comes from the data's Poisson floor, a property of the data, not of
    # the stopping rule: with a fixed count (tolerance 0) or the floor's rule off, the scan of the
    # test above still starts over from the carried guess at iteration 50 (until session 23 the
    # floor was computed only for the rule, and the check was silently skipped).
    scan, obj, _ = _scan("gaussian", "defocus", 1e5, seed=0, n=64, side=7)
    p = reconstruct(scan, "LSQML:60", object_shape=obj.shape, frc=False, options=PtychoOptions(convergence=convergence))
    check = p.info["probe_defocus"]
    assert check is not None and check["iteration"] == 50 and check["restarted"], check
    assert p.info["noise_floor"] > 0 and p.info["floor_target"] is None
    if convergence.tolerance == 0:
        assert p.info["stage_iterations"] == [("LSQML", 50), ("LSQML", 60)]


def test_a_refined_probe_a_few_allowances_ahead_still_restarts_from_the_carried_guess(monkeypatch):
    # The same Gaussian probe at 5·10⁴ photons per frame (about 11 counts per pixel, LSQML:300).
    # At iteration 50 the probe refined so far fits the data better than the carried guess by
    # 1.1–2.5 noise allowances A on seeds 1–5 (ProbeOptions.defocus_margin): the misfits are
    # taken with the object refined alongside that probe, which has adapted to it. With the
    # margin at 1 A (the rule before session 21) the run goes on from its noisy probe; with the
    # default 10 A it starts over from the carried guess and ends 12–18 % lower in OD error on
    # those seeds (this one: 0.0532 against 0.0647). 5 % is the least gain this test accepts.
    # The margin holds only where the carried guess's misfit is near the Poisson floor
    # (engine.NOISE_LIMITED_MISFIT); with that bound below any misfit the rule is 1 A again.
    scan, obj, photons = _scan("gaussian", "defocus", 5e4, seed=2, n=64, side=7)
    lit = photons >= 0.5 * photons.max()
    p = reconstruct(scan, object_shape=obj.shape, frc=False)
    check = p.info["probe_defocus"]
    lead = (check["misfit_propagated"] - check["misfit_current"]) / check["allowance"]
    assert 1 < lead < ProbeOptions().defocus_margin and check["restarted"], check
    assert check["margin"] == pytest.approx(ProbeOptions().defocus_margin * check["allowance"])
    strict = reconstruct(scan, object_shape=obj.shape, frc=False,
                         options=PtychoOptions(probe=ProbeOptions(defocus_margin=1.0)))
    assert not strict.info["probe_defocus"]["restarted"]
    err, err_strict = (_od_error(np.asarray(q.transmission), obj, lit) for q in (p, strict))
    assert err < 0.95 * err_strict, (err, err_strict)
    monkeypatch.setattr(engine, "NOISE_LIMITED_MISFIT", 0.0)
    far = reconstruct(scan, object_shape=obj.shape, frc=False).info["probe_defocus"]
    assert not far["restarted"] and far["margin"] == pytest.approx(far["allowance"])
    with pytest.raises(InputError, match="probe.defocus_margin"):
        reconstruct(scan, "ePIE:5", object_shape=obj.shape, frc=False,
                    options=PtychoOptions(probe=ProbeOptions(defocus_margin=-1.0)))


def test_an_exact_guess_is_left_as_it_is():
    # the guess is the truth: no distance fits the data better than it by more than the noise
    # allowance, so the run goes on undisturbed
    scan, obj, _ = _scan("gaussian", "exact", 1e5, seed=0, n=64, side=7)
    p = reconstruct(scan, object_shape=obj.shape, frc=False)
    check = p.info["probe_defocus"]
    assert check is not None and not check["restarted"]
    assert check["misfit_guess"] - check["misfit_propagated"] < check["allowance"]
    assert len(p.info["stage_iterations"]) == len(p.info["stages"])
    assert p.info["initial_probe"] == "file" and p.info["probe_from_data"] is None  # its far field is the data's
    with pytest.raises(InputError, match="probe.defocus_at"):
        reconstruct(scan, "ePIE:5", object_shape=obj.shape, frc=False,
                    options=PtychoOptions(probe=ProbeOptions(defocus_at=-1)))


def test_a_guess_unlike_the_beam_is_replaced_by_the_probe_the_data_show():
    # A zone plate's beam (its central stop makes the far field an annulus) on 64² frames, the
    # guess a flat disc of the beam's diameter, whose far field (an Airy disc) has a similarity
    # of 0.36–0.37 to the data's (seeds 0, 1), below ProbeOptions.far_field_min = 0.5. The probe
    # is estimated from the mean diffraction pattern and carried to the distance whose object,
    # reconstructed alone from every other central frame, best predicts the frames between: it
    # overlaps the truth 0.976–0.984 on seeds 0–2, where the disc does 0.18 and the estimate in
    # focus 0.76. 0.95 allows for the search's steps (four golden-section steps between
    # neighbours a factor 2 apart).
    scan, obj, photons = _scan("zone plate", "disc", 1e5, seed=0, n=64, side=7)
    truth = _probe("zone plate", 64)
    p = reconstruct(scan, object_shape=obj.shape, frc=False)
    fit = p.info["probe_from_data"]
    assert p.info["initial_probe"] == "diffraction" and fit["guess_similarity"] < 0.5, fit
    assert fit["misfit"] < fit["misfit_in_focus"] and fit["z_m"] != 0
    carried = propagate_probe(probe_from_diffraction(scan.frames)[None], fit["lambda_z_px2"])[0]
    assert abs(np.vdot(carried, truth)) / np.linalg.norm(carried) > 0.95
    # and the object is within the dose limit, as from a good guess (the tolerance of
    # test_the_default_converges_to_the_truth_within_the_dose_limit; 0.8–0.9 σ measured, the disc
    # kept 0.8–1.0 σ: on this small scan the disc is recovered from too, only more slowly)
    lit = photons >= 0.5 * photons.max()
    assert _od_error(np.asarray(p.transmission), obj, lit) < 3 / np.sqrt(photons[lit].min() / np.e)
    # far_field_min = 0 keeps every guess
    keep = reconstruct(scan, "ePIE:2", object_shape=obj.shape, frc=False,
                       options=PtychoOptions(probe=ProbeOptions(far_field_min=0.0)))
    assert keep.info["initial_probe"] == "file" and keep.info["probe_from_data"] is None
    # a scan with no guess is started the same way; one frame is not a ptychography scan
    bare = Scan(frames=scan.frames[:1], positions_m=scan.positions_m[:1], energy_ev=ENERGY_EV, distance_m=DISTANCE_M,
                detector_pixel_m=scan.detector_pixel_m, source="one.cxi")
    with pytest.raises(InputError, match="one.cxi: 1 usable frame"):
        reconstruct(bare, "ePIE:2", frc=False)
    with pytest.raises(InputError, match="probe.far_field_min"):
        reconstruct(scan, "ePIE:2", object_shape=obj.shape, frc=False,
                    options=PtychoOptions(probe=ProbeOptions(far_field_min=1.0)))


def test_the_focus_search_starts_from_the_background_the_data_show():
    # The trial objects of the focus search (reconstruct._fit_data_probe) start from the detector
    # background that the dim pixels show (noise.dim_background), not from the solvers' 0.1
    # counts: ten iterations from 0.1 leave most of a real background to the coherent waves,
    # and the held-out misfit then favours probes carried too far (regime cell 19 without its
    # guess: OD error 1.11 → 0.91 on seeds 2–9). A 2-photon background under 10⁵ photons per
    # frame (25 frames of 64²) is measured at 1.71–1.72 counts on seeds 0–2: the dim quarter's
    # estimate (mean less the diffraction's share) runs 15 % low here; 1.5–2.2 accepts that and
    # nothing near the 0.1 of a start that ignores it. Without a background it stays 0.1.
    scan, obj, _ = _scan("zone plate", "exact", 1e5, seed=0, n=64, side=5)
    rng = np.random.default_rng(7)
    noisy = scan.frames + rng.poisson(2.0, scan.frames.shape).astype(scan.frames.dtype)
    fits = [reconstruct(dataclasses.replace(scan, frames=frames, probe=None), "ePIE:1", object_shape=obj.shape,
                        frc=False).info["probe_from_data"] for frames in (noisy, scan.frames)]
    assert 1.5 < fits[0]["background"] < 2.2, fits[0]
    assert fits[1]["background"] == pytest.approx(0.1), fits[1]


def test_the_focus_search_gives_the_same_bits_on_two_threads_as_on_one_core():
    # Where two cores are free the search's grid runs two trials at a time, one core each
    # (reconstruct._fit_data_probe); inside one_core it runs one after the other. Every kernel
    # gives the same bits whatever its thread count, so the distance chosen (a discrete outcome)
    # and its misfit must be identical, not merely close.
    from chemtomo.core.fft import one_core

    scan, obj, _ = _scan("zone plate", "disc", 1e5, seed=1, n=64, side=5)
    bare = dataclasses.replace(scan, probe=None)
    free = reconstruct(bare, "ePIE:1", object_shape=obj.shape, frc=False).info["probe_from_data"]
    with one_core():
        alone = reconstruct(bare, "ePIE:1", object_shape=obj.shape, frc=False).info["probe_from_data"]
    assert (free["lambda_z_px2"], free["misfit"], free["trials"]) == (alone["lambda_z_px2"], alone["misfit"],
                                                                       alone["trials"])


def test_the_dose_rule_picks_what_it_should():
    # the thresholds (algorithms.LOW_DOSE_COUNTS = 50 counts per pixel, BACKGROUND_SHARE = 0.1);
    # from 50 counts up one chain, however bright (session 12: no separate bright-scan chain)
    assert default_chain(49.0, 0.0)[0] == LOW_DOSE_ALGORITHM
    assert default_chain(51.0, 0.0)[0] == MID_DOSE_ALGORITHM
    assert default_chain(501.0, 0.0)[0] == MID_DOSE_ALGORITHM
    assert default_chain(1e5, 0.0)[0] == MID_DOSE_ALGORITHM
    assert default_chain(500.0, 0.2)[0] == BACKGROUND_ALGORITHM
    # below 50 counts per pixel, a frame of ≥ 3·10⁵ photons (algorithms.MID_DOSE_PHOTONS: large
    # frames spread thin) takes the mid-dose chain; the counts alone (no photon count) keep LSQML
    assert default_chain(15.0, 0.0, 15.0 * 256 ** 2)[0] == MID_DOSE_ALGORITHM
    assert "photons per frame" in default_chain(15.0, 0.0, 15.0 * 256 ** 2)[1]
    assert default_chain(24.0, 0.0, 1e5)[0] == LOW_DOSE_ALGORITHM
    assert default_chain(15.0, 0.0)[0] == LOW_DOSE_ALGORITHM
    assert default_chain(15.0, 0.2, 1e6)[0] == BACKGROUND_ALGORITHM
    # on scans: 10⁴ photons on 32² frames is ~10 counts per pixel, 10⁵ is ~100
    low, _, _ = _scan("zone plate", "defocus", 1e4)
    high, _, _ = _scan("zone plate", "defocus", 1e5)
    p_low = reconstruct(low, "default", frc=False)
    assert p_low.info["algorithm"] == LOW_DOSE_ALGORITHM and "counts per detector pixel" in p_low.info["default_rule"]
    assert reconstruct(high, "LSQML:2", frc=False).info["default_rule"] is None  # a chain given: no rule
    from chemtomo.ptycho.noise import dose_summary
    assert dose_summary(np.sqrt(high.frames))[0] > 50 > dose_summary(np.sqrt(low.frames))[0]
    # a flat background of 2 photons per pixel at 10³ photons per frame (~1 per pixel) carries
    # about two thirds of the counts: RAAR with background retrieval
    rng = np.random.default_rng(0)
    dim, _, _ = _scan("pinhole", "defocus", 1e3)
    frames = (dim.frames + rng.poisson(2.0, dim.frames.shape)).astype(np.float32)
    bg = Scan(frames=frames, positions_m=dim.positions_m, energy_ev=dim.energy_ev, distance_m=dim.distance_m,
              detector_pixel_m=dim.detector_pixel_m, probe=dim.probe)
    p_bg = reconstruct(bg, frc=False)
    assert p_bg.info["algorithm"] == BACKGROUND_ALGORITHM and not p_bg.info["diverged"]
    assert p_bg.info["stop_reason"] == "converged"


def _model_misfit(subpixel, dose):
    """RMS of |F[P·O]| over the frames of an off-grid 32² scan, chemtomo's model with the true
    object and probe and positions binned to 1/subpixel px, minus the exact expected amplitude
    √E[I] (the simulator shifts the probe by each position's exact remainder)."""
    from chemtomo.ptycho.operators import FarFieldModel

    n = N
    # a Gaussian beam: nothing at the frame's edge, so the shifts' periodic wrap adds nothing
    # (the 32² zone plate has 2 % of its power in a 3-px border, whose wrap is a misfit of its own)
    probe = _probe("gaussian", n).astype(np.complex64)
    rng = np.random.default_rng(3)
    pos = rng.uniform(-6, 6, (40, 2))  # off the pixel grid
    obj = blob_object(object_shape(pos, (n, n), 6), 4)
    expected = diffraction_frames(obj, probe, pos, dose_photons=dose, noise=False)
    amplitude = np.sqrt(np.fft.ifftshift(expected, axes=(1, 2))).astype(np.float32)
    model = FarFieldModel(None, np.ones((n, n), bool), obj.shape, subpixel=subpixel, amplitude=amplitude)
    model.set_positions(pos)
    probes = model.shifted_probes((probe * np.float32(np.sqrt(dose)))[None])
    waves = np.empty((len(pos), 1, n, n), np.complex64)
    model.exit_waves(waves, obj, probes, model.all_frames)
    far = np.abs(model.fft_inplace(waves))[:, 0]
    return float(np.sqrt(np.mean((far - amplitude) ** 2)))


def test_sub_pixel_bins_are_a_model_error_that_only_bright_scans_see():
    # The premise of PtychoOptions.subpixel = 0: rounding a position to 1/s px is an error of the
    # model whose amplitude misfit shrinks as 1/s (a shift's first-order change: measured 5.5,
    # 3.3, 1.7 for s = 4, 8, 16), while the photon noise of an amplitude √I is 1/2 whatever the
    # dose. So at 10⁹ photons per frame on 32² frames (~10⁶ counts per pixel) 1/4-px bins leave
    # a misfit far above the noise (> 5σ asked) and 1/16-px bins about 4× less (< 0.4× asked:
    # the second-order terms); at 10⁴ photons (~10 counts per pixel) it is far below the noise.
    bright4, bright16 = _model_misfit(4, 1e9), _model_misfit(16, 1e9)
    assert bright4 > 5 * 0.5
    assert bright16 < 0.4 * bright4
    assert _model_misfit(4, 1e4) < 0.1 * 0.5


def test_the_sub_pixel_bins_follow_the_counts_and_are_recorded():
    # PtychoOptions.subpixel = 0 (the default) picks the bins from the signal's counts per pixel
    # (reconstruct.subpixel_for_counts); a number given is used as it is
    from chemtomo.ptycho.reconstruct import SUBPIXEL_COUNTS, SUBPIXEL_LOW, subpixel_for_counts

    assert subpixel_for_counts(SUBPIXEL_COUNTS[0][0] - 1) == SUBPIXEL_LOW
    assert [subpixel_for_counts(c) for c, _ in SUBPIXEL_COUNTS] == [s for _, s in SUBPIXEL_COUNTS]
    for dose, bins in ((1e4, SUBPIXEL_LOW), (1e6, 8), (1e9, 16)):  # ~10, ~1,000, ~10⁶ counts per pixel
        scan, _, _ = _scan("zone plate", "exact", dose, off_grid=True)
        info = reconstruct(scan, "LSQML:1", frc=False).info
        assert info["subpixel"] == bins and f"1/{bins} px bins" in info["subpixel_rule"]
    given = reconstruct(scan, "LSQML:1", frc=False, options=PtychoOptions(subpixel=2)).info
    assert given["subpixel"] == 2 and given["subpixel_rule"] is None
    with pytest.raises(InputError, match="subpixel"):
        reconstruct(scan, "LSQML:1", frc=False, options=PtychoOptions(subpixel=17))
