"""Every solver option against a two-family chain: no option may break the run or its record.

Session 23 found one option silently switching another feature off (``tolerance = 0`` skipped the
defocus check, ``test_default.py``). This sweep runs a chain of both solver families
(``LSQML:20,rPIE:20``, with a detector background that the solvers retrieve) once per option
changed from its default, and checks what every run must keep whatever the options: a finite
object and probe, a stop reason from the documented set, and a record whose per-stage iteration
counts add up to the run's and to its error curve. A sweep of these variants over every solver
(ePIE, rPIE, mPIE, LSQML, RAAR, DM, ML, the default) on scans with and without background, with
and without the split-half FRC, raised nothing (`/tmp` driver, session 23); this keeps the cheap
part of it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from chemtomo.ptycho import PtychoOptions, reconstruct

from .conftest import make_scan

R = dataclasses.replace
BASE = PtychoOptions()
VARIANTS = {
    "poisson likelihood": R(BASE, likelihood="poisson"),
    "two probe modes": R(BASE, probe=R(BASE.probe, n_modes=2)),
    "probe fixed": R(BASE, probe=R(BASE.probe, refine=False)),
    "probe support": R(BASE, probe=R(BASE.probe, support=0.8)),
    "defocus check at 10": R(BASE, probe=R(BASE.probe, defocus_at=10)),
    "positions fixed": R(BASE, positions=R(BASE.positions, refine=False)),
    "positions in every stage": R(BASE, positions=R(BASE.positions, final_stage_only=False, start=0, every=1)),
    "background not retrieved": R(BASE, background=R(BASE.background, retrieve=False)),
    "background shared": R(BASE, background=R(BASE.background, projection="share")),
    "background subtracted": R(BASE, background=R(BASE.background, projection="subtract")),
    "fixed count": R(BASE, convergence=R(BASE.convergence, tolerance=0.0)),
    "no floor rule": R(BASE, convergence=R(BASE.convergence, noise_floor=False)),
    "discrepancy principle": R(BASE, convergence=R(BASE.convergence, discrepancy_counts=1e9)),
    "not averaged": R(BASE, convergence=R(BASE.convergence, average=False)),
    "whole-pixel shifts": R(BASE, subpixel=1),
    "LSQML momentum and step": R(BASE, lsqml=R(BASE.lsqml, momentum=0.5, max_step=0.5)),
}


@pytest.fixture(scope="module")
def scan():
    return make_scan(dose=1e5, seed=1, grid=5, background_counts=0.5).scan


@pytest.mark.parametrize("name", list(VARIANTS))
def test_an_option_changed_alone_keeps_the_run_and_its_record_whole(scan, name):
    p = reconstruct(scan, "LSQML:20,rPIE:20", frc=False, options=VARIANTS[name], seed=0)
    info = p.info
    assert np.isfinite(np.asarray(p.transmission)).all() and np.isfinite(np.asarray(p.probe)).all()
    assert info["stop_reason"] in ("converged", "diverged", "max_iterations")
    assert sum(n for _, n in info["stage_iterations"]) == info["iterations"] == len(p.errors)
    assert 0 < info["iterations"] <= 40 + VARIANTS[name].probe.defocus_at  # a restart repeats at most that many
