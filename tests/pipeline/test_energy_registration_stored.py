"""The align stage records the energy registration (issue 24, part 1) and the report shows it."""

import numpy as np

from chemtomo.report.html import _section_alignment


def test_align_stage_stores_the_registration_and_the_report_shows_it(reference_run):
    g = reference_run.group_attrs("alignment")
    # the default align.energy_scale is "auto": the estimate is recorded for every energy
    reg = g["energy_registration"]
    energies = sorted(g["energy_offsets_px"], key=float)
    assert sorted(reg["energies"], key=float) == [f"{float(e):g}" for e in energies]
    for e in energies:
        r = reg["energies"][f"{float(e):g}"]
        # the stored offset is the one the later stages apply, and the ratio too
        np.testing.assert_allclose(r["offset_px"], g["energy_offsets_px"][e])
        assert r["pixel_ratio"] == g["energy_pixel_ratio"][e]
        assert np.isfinite(r["pixel_ratio_sigma"])
        if r["scale_kept"]:  # a kept scale comes with its offsets' standard errors; a dropped one
            assert np.all(np.isfinite(r["offset_sigma_px"]))  # is registered offsets-only: none (None)
        else:
            assert r["offset_sigma_px"] == [None, None] or np.all(np.isfinite(r["offset_sigma_px"]))
    assert len(reg["notes"]) == len(energies) - 1  # the auto rule's decision per moving energy
    html = _section_alignment(reference_run)
    assert "Energy registration" in html and html.count("<tr>") == len(energies) + 1
