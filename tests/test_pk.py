"""Systemic PK against closed forms, and the exact mass balance of every administered dose."""

from __future__ import annotations

import numpy as np
import pytest

from tmesim.therapy import PKModel, PKState, expm, schedule


def test_expm_matches_diagonalisation():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    w, v = np.linalg.eig(a)
    ref = (v @ np.diag(np.exp(w)) @ np.linalg.inv(v)).real
    np.testing.assert_allclose(expm(a), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(expm(np.zeros((3, 3))), np.eye(3))


def test_one_compartment_bolus_decays_exponentially():
    m = PKModel(v_central_L=10.0, clearance_L_per_h=2.0)  # k = 0.2 / h
    st = PKState(m, schedule(0.0, 24.0, 1, 100.0))
    for t in (0.5, 3.0, 12.0, 30.0):
        st.advance(t)
        assert st.plasma_mg_per_L == pytest.approx(10.0 * np.exp(-0.2 * t), rel=1e-12)
    assert st.accounted_mg == pytest.approx(st.dosed_mg, rel=1e-13)


def test_infusion_reaches_plateau_rate_over_clearance():
    m = PKModel(v_central_L=5.0, clearance_L_per_h=1.0)  # k = 0.2 / h
    st = PKState(m, schedule(0.0, 1000.0, 1, 500.0, duration_h=100.0))  # 5 mg/h for 100 h
    st.advance(50.0)
    expected = 5.0 / 1.0 * (1 - np.exp(-0.2 * 50.0))  # R / CL (1 - e^{-kt})
    assert st.plasma_mg_per_L == pytest.approx(expected, rel=1e-12)
    st.advance(99.0)
    assert st.plasma_mg_per_L == pytest.approx(5.0, rel=1e-8)
    assert st.dosed_mg == pytest.approx(495.0, rel=1e-12)
    assert st.accounted_mg == pytest.approx(st.dosed_mg, rel=1e-13)


def test_repeated_doses_accumulate_as_a_geometric_series():
    k, tau, n, d, v = 0.1, 12.0, 6, 50.0, 10.0
    m = PKModel(v_central_L=v, clearance_L_per_h=k * v)
    st = PKState(m, schedule(0.0, tau, n, d))
    st.advance((n - 1) * tau)  # the n-th dose has just been given
    peak = d / v * (1 - np.exp(-n * k * tau)) / (1 - np.exp(-k * tau))
    assert st.plasma_mg_per_L == pytest.approx(peak, rel=1e-12)
    assert st.dosed_mg == pytest.approx(n * d)


def test_two_compartment_bolus_is_biexponential():
    m = PKModel.from_half_lives(20.0, 30.0, alpha_half_life_h=5 / 60, v_peripheral_L=800.0)
    st = PKState(m, schedule(0.0, 100.0, 1, 60.0))
    mat = m.matrix()[:2, :2]
    w, vecs = np.linalg.eig(mat)
    alpha, beta = np.sort(-w)[::-1]
    assert np.log(2) / alpha == pytest.approx(5 / 60, rel=1e-9)
    assert np.log(2) / beta == pytest.approx(30.0, rel=1e-9)
    coef = np.linalg.solve(vecs, [60.0, 0.0])
    for t in (0.05, 0.5, 4.0, 48.0):
        st.advance(t)
        ref = (vecs @ (coef * np.exp(w * t)))[0] / 20.0
        assert st.plasma_mg_per_L == pytest.approx(ref, rel=1e-10)
    assert st.accounted_mg == pytest.approx(st.dosed_mg, rel=1e-12)


def test_tissue_sink_is_accounted_for():
    m = PKModel(v_central_L=10.0, clearance_L_per_h=2.0)
    st = PKState(m, schedule(0.0, 6.0, 4, 25.0, duration_h=1.0))
    for t in np.arange(0.5, 30.0, 0.7):
        st.advance(float(t), sink_L_per_h=0.3)
    assert st.to_tissue_mg > 0
    assert st.accounted_mg == pytest.approx(st.dosed_mg, rel=1e-12)
    assert st.dosed_mg == pytest.approx(100.0)


def test_doxorubicin_defaults_give_the_label_clearance():
    """With the packaged two-compartment doxorubicin (V_c 0.5, V_p 24.5 L/kg, 5 min and 30 h
    half-lives) the elimination clearance lies in the label's 324-809 mL/min/m^2, i.e. about
    0.48-1.2 L/h/kg for an adult (1.8 m^2, 70 kg)."""
    from tmesim.scenario import scenario_from_dict

    pk = scenario_from_dict(None, []).agents["doxorubicin"].pk
    m = PKModel.from_half_lives(
        pk.v_central_L_per_kg, pk.half_life_h, alpha_half_life_h=pk.alpha_half_life_h,
        v_peripheral_L=pk.v_peripheral_L_per_kg,
    )
    assert 0.48 <= m.clearance_L_per_h <= 1.2
