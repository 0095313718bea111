"""Tests of the Fe K-edge XANES references (chemtomo.simulate.kedge)."""

import math

import numpy as np
import pytest
import xraydb

from chemtomo.core import InputError
from chemtomo.simulate import KEDGE_PARAMETERS, kedge_absorption, kedge_reference_spectra, normalised_xanes
from chemtomo.simulate.kedge import KEDGE_DENSITY_G_CM3, _power_laws

FINE = np.arange(7080.0, 7200.0, 0.02)


def _half_crossing(e, n):
    """Energy where n first reaches 0.5 (linear interpolation on the fine grid)."""
    i = int(np.argmax(n >= 0.5))
    return e[i - 1] + (0.5 - n[i - 1]) / (n[i] - n[i - 1]) * (e[i] - e[i - 1])


@pytest.mark.parametrize("phase", ["LiFePO4", "FePO4"])
def test_far_from_the_edge_mu_is_the_tabulated_absorption(phase):
    # away from the edge the model is the tables (Elam, all interactions): the power-law fit
    # deviates by < 0.3 %; what the XANES adds there is the arctangent's tail, Δμ·w/(π|E − E0|),
    # below the edge, and the damped oscillation, Δμ·a·e^(−(E − E_wl)/150), above it
    p = KEDGE_PARAMETERS[phase]
    rho = KEDGE_DENSITY_G_CM3[phase]
    for e, tail in ((7000.0, p.step_width_ev / (math.pi * (p.edge_ev - 7000.0))),
                    (7350.0, p.osc_amplitude * math.exp(-(7350.0 - p.wl_ev) / 150.0)
                     + p.step_width_ev / (math.pi * (7350.0 - p.edge_ev)))):
        table = xraydb.material_mu(phase, e, density=rho) * 100.0   # 1/cm -> 1/m
        step = xraydb.material_mu(phase, 7200.0, density=rho) * 100.0 - xraydb.material_mu(phase, 7100.0,
                                                                                      density=rho) * 100.0
        assert abs(kedge_absorption(phase, e) - table) <= 0.003 * table + 1.1 * tail * step


def test_edge_step_is_the_tabulated_fe_k_jump():
    # the K jump of LiFePO4 from the tables: μ just above minus just below 7112 eV (≈ 4.5e4 /m,
    # attenuation length above the edge ≈ 16 µm); the model's backgrounds μ_post − μ_pre at 7112 eV
    # are power laws fitted 40–250 eV away, extrapolated to the edge: within 1 % of the jump
    below = xraydb.material_mu("LiFePO4", 7111.9, density=3.6) * 100.0
    above = xraydb.material_mu("LiFePO4", 7112.1, density=3.6) * 100.0
    (la0, p0), (la1, p1) = _power_laws("LiFePO4")
    model_step = math.exp(la1 + p1 * math.log(7112.0)) - math.exp(la0 + p0 * math.log(7112.0))
    assert 4.0e4 < above - below < 5.0e4
    assert model_step == pytest.approx(above - below, rel=0.01)
    assert 1.0 / above == pytest.approx(16e-6, rel=0.1)


def test_fe3_edge_above_fe2_edge_by_the_chemical_shift():
    # half-step crossing of the normalised spectrum on a 0.02 eV grid (interpolation error
    # < 0.001 eV): the white line pulls it slightly below E0, by the same order for both phases,
    # so the shift stays within 3–5 eV of the literature (4 eV between Fe2+ and Fe3+ phosphates)
    e_lfp = _half_crossing(FINE, normalised_xanes(FINE, KEDGE_PARAMETERS["LiFePO4"]))
    e_fp = _half_crossing(FINE, normalised_xanes(FINE, KEDGE_PARAMETERS["FePO4"]))
    assert 7121.0 < e_lfp < 7124.0 and 7125.0 < e_fp < 7128.0
    assert 3.0 <= e_fp - e_lfp <= 5.0
    # the same from μ itself: the half-height between the pre- and post-edge absorption
    mu = kedge_reference_spectra(FINE)
    for col, e_half in (("LiFePO4", e_lfp), ("FePO4", e_fp)):
        m = mu[col].to_numpy()
        level = 0.5 * (kedge_absorption(col, 7100.0) + kedge_absorption(col, 7170.0))
        assert abs(FINE[np.argmax(m >= level)] - e_half) < 1.0


@pytest.mark.parametrize("phase,wl_lo,wl_hi,height", [("LiFePO4", 7125.0, 7129.0, 1.3), ("FePO4", 7130.0, 7134.0, 1.2)])
def test_white_line_and_pre_edge_present(phase, wl_lo, wl_hi, height):
    # white line: the normalised maximum (≈ 1.35 LFP, ≈ 1.25 FP, as measured) a few eV above the
    # edge; pre-edge: a local maximum in the 1s→3d region 7110–7116 eV, 0.05–0.1 of the step as
    # measured (here on the arctangent tail of ≈ 0.04)
    n = normalised_xanes(FINE, KEDGE_PARAMETERS[phase])
    i = int(np.argmax(n))
    assert wl_lo < FINE[i] < wl_hi and n[i] > height
    pre = (FINE > 7110.0) & (FINE < 7116.0)
    npre = n[pre]
    j = int(np.argmax(np.diff(np.sign(np.diff(npre))) < 0)) + 1   # first local maximum
    assert 0 < j < npre.size - 1 and 0.01 < npre[j] < 0.15


def test_chemical_contrast_at_the_edge():
    # LiFePO4 absorbs more at the Fe2+ edge (7123–7127 eV), FePO4 more at its white line (7132 eV):
    # what unmixing over a XANES stack needs; contrast ≥ 3e4 /m, i.e. 0.03 OD per µm of material
    r = kedge_reference_spectra([7125.0, 7132.0])
    assert r.LiFePO4[0] - r.FePO4[0] > 3.0e4
    assert r.FePO4[1] - r.LiFePO4[1] > 1.0e4
    assert list(r.columns) == ["energy_eV", "LiFePO4", "FePO4"]


def test_bad_input():
    with pytest.raises(InputError, match="phase must be one of"):
        kedge_absorption("NiO", 7100.0)
    with pytest.raises(InputError, match="6950–7400 eV"):
        kedge_absorption("LFP", 708.2)
    with pytest.raises(InputError, match="energies_ev"):
        kedge_reference_spectra([7100.0, float("nan")])
