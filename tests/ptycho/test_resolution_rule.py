"""The split-half resolution rule (``ConvergenceOptions.resolution_tolerance``, ``reconstruct(frc=True)``).

The full scan and its even and odd halves run side by side; every ``window`` iterations the
halves' FRC is measured once and the last stage of all three stops when the ½-bit resolution
improved by less than the tolerance. These tests check that the rule only decides *where* the
runs stop (not how they get there), that it is deterministic, and that it cannot hang."""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from chemtomo.ptycho import ConvergenceOptions, PositionOptions, ProbeOptions, PtychoOptions, reconstruct
from chemtomo.ptycho.reconstruct import _ResolutionStop

from .test_default import _scan

#: Only the resolution rule can stop a stage: the relative fall needs a fall below 1e-12 of the
#: error, the Poisson floor is off, and the rule's own error gate (a fall below 100 % per window)
#: always passes.
ONLY_RESOLUTION = ConvergenceOptions(tolerance=1e-12, noise_floor=False, min_iterations=20,
                                     resolution_tolerance=0.05, resolution_error_fall=1.0)


def test_the_resolution_rule_stops_the_three_runs_where_the_frc_levels_off():
    scan, obj, _ = _scan("zone plate", "defocus", 1e5)
    # positions held: a refinement step can raise the error for a window, which the relative-fall
    # rule (a fall below 1e-12) then reads as levelled off, and this test is of the other rule
    # and the last iterate, not the average of the last ones (``ConvergenceOptions.average``), so
    # that the run can be compared bit for bit with one of a fixed count below; the defocus check
    # off, so that the run's iterations are the rule's (a restart at 50 counts them again)
    only = dataclasses.replace(ONLY_RESOLUTION, average=False)
    held = PositionOptions(refine=False)
    options = PtychoOptions(convergence=only, positions=held, probe=ProbeOptions(defocus_at=0))
    p = reconstruct(scan, "rPIE:200", object_shape=obj.shape, frc=True, options=options)
    checks = p.info["resolution_checks"]
    stop = checks["levelled_at"]
    assert p.info["convergence_rule"] == "resolution" and p.info["iterations"] == stop
    assert stop % 10 == 0 and 20 <= stop < 200
    # the rule as documented: every check from min_iterations on added at least 5 % to the halves'
    # shared information until the one that stopped, which did not
    bits = {it: b for it, _, b in checks["checks"]}
    its = sorted(bits)
    assert its[-1] == stop
    for prev, it in zip(its, its[1:]):
        grew = bits[it] >= bits[prev] * 1.05
        assert grew == (it != stop) or it < 20, (prev, it, bits[prev], bits[it])
    # it decides only where to stop: the full scan is, bit for bit, the same run with a fixed count
    fixed = PtychoOptions(convergence=ConvergenceOptions(tolerance=0.0), positions=held,
                          probe=ProbeOptions(defocus_at=0))
    q = reconstruct(scan, f"rPIE:{stop}", object_shape=obj.shape, frc=False, options=fixed)
    assert np.array_equal(np.asarray(p.transmission), np.asarray(q.transmission))
    # and it does not depend on which thread got where first
    again = reconstruct(scan, "rPIE:200", object_shape=obj.shape, frc=True, options=options)
    assert np.array_equal(np.asarray(p.transmission), np.asarray(again.transmission))
    assert again.info["resolution_checks"] == checks


def test_the_resolution_rule_stops_only_the_last_stage_of_a_chain():
    scan, obj, _ = _scan("zone plate", "defocus", 1e5)
    options = PtychoOptions(convergence=ONLY_RESOLUTION)
    p = reconstruct(scan, "rPIE:60,ePIE:100", object_shape=obj.shape, frc=True, options=options)
    # rPIE's 60 iterations run in full whatever the FRC did meanwhile; ePIE then stops at a check
    assert p.info["iterations"] > 60
    assert p.info["iterations"] == 160 or p.info["convergence_rule"] == "resolution"


def test_halves_that_fail_never_leave_the_full_scan_waiting():
    rule = _ResolutionStop(10, 0.02, 30, (1e-8, 1e-8))
    rule.finished(0, None, None)
    rule.finished(1, None, None)
    run = types.SimpleNamespace(iteration=10, final_stage=True)
    assert rule.full_monitor(run) is False  # returns at once: no decision can come any more


def test_a_stage_that_another_rule_ends_on_a_check_iteration_still_hands_in_its_object():
    # With a window of one iteration every iteration is a check, so rPIE's relative-fall rule ends
    # its stage on one. Each half must still hand in its object there, or the other half waits
    # for ever: run in a thread so that a hang fails the test instead of the suite.
    import threading

    scan, obj, _ = _scan("zone plate", "defocus", 1e5)
    options = PtychoOptions(convergence=ConvergenceOptions(window=1, tolerance=1e-2, noise_floor=False,
                                                           min_iterations=5, resolution_tolerance=1e-9))
    out = []
    worker = threading.Thread(target=lambda: out.append(
        reconstruct(scan, "rPIE:200,ePIE:30", object_shape=obj.shape, frc=True, options=options)), daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the three runs hung"
    p = out[0]
    assert p.info["iterations"] < 230  # rPIE ended by its rule, ePIE ran after it
