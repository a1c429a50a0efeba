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
    """With the packaged human two-compartment doxorubicin (V_c 0.5, V_p 24.5 L/kg, 5 min and 30 h
    half-lives) the elimination clearance lies in the label's 324-809 mL/min/m^2, i.e. about
    0.48-1.2 L/h/kg for an adult (1.8 m^2, 70 kg)."""
    from tmesim.scenario import scenario_from_dict

    pk = scenario_from_dict(None, [("subject.species", "human")]).agents["doxorubicin"].pk
    m = PKModel.from_half_lives(
        pk.v_central_L_per_kg, pk.half_life_h, alpha_half_life_h=pk.alpha_half_life_h,
        v_peripheral_L=pk.v_peripheral_L_per_kg,
    )
    assert 0.48 <= m.clearance_L_per_h <= 1.2


# --------------------------------------------------------------------------- species sets
def _scenario(*overrides):
    from tmesim.scenario import scenario_from_dict

    return scenario_from_dict(None, list(overrides))


def _model(pk, mass=1.0):
    return PKModel.from_half_lives(
        pk.v_central_L_per_kg * mass, pk.half_life_h, alpha_half_life_h=pk.alpha_half_life_h,
        v_peripheral_L=None if pk.v_peripheral_L_per_kg is None
        else pk.v_peripheral_L_per_kg * mass,
    )


def test_the_species_picks_its_pk_set_and_mouse_is_the_default():
    mouse, human = _scenario(), _scenario(("subject.species", "human"))
    assert mouse.subject.species == "mouse"
    for name in ("doxorubicin", "tariquidar", "anti_pdl1"):
        assert mouse.agents[name].pk == mouse.species["mouse"].agents[name]
        assert human.agents[name].pk == human.species["human"].agents[name]
        # the mouse clears every agent faster than the human
        assert mouse.agents[name].pk.half_life_h < human.agents[name].pk.half_life_h
    assert human.agents["doxorubicin"].pk.half_life_h == 30.0  # the US label's value
    assert mouse.agents["doxorubicin"].pk.half_life_h == 4.1


def test_mouse_doxorubicin_is_the_label_set_scaled_by_allometry():
    """Volumes per kg as in humans, half-lives x (0.025 / 70)^0.25: the clearance per kg is
    the human one x (70 / 0.025)^0.25 = 7.3, to the rounding of the two half-lives."""
    mouse = _model(_scenario().agents["doxorubicin"].pk)
    human = _model(_scenario(("subject.species", "human")).agents["doxorubicin"].pk)
    ratio = mouse.clearance_L_per_h / human.clearance_L_per_h
    assert ratio == pytest.approx((70 / 0.025) ** 0.25, rel=0.02)
    assert 4.5 < mouse.clearance_L_per_h < 5.5  # L/h/kg


def test_mouse_doxorubicin_bolus_follows_the_closed_form():
    """A 9 mg/kg bolus in a 25 g mouse: C(t) = D/V_c [(alpha - k21) e^-alpha t
    + (k21 - beta) e^-beta t] / (alpha - beta), with alpha and beta from the set's half-lives."""
    pk = _scenario().agents["doxorubicin"].pk
    mass, dose = 0.025, 9.0 * 0.025
    m = _model(pk, mass)
    alpha, beta = np.log(2) / pk.alpha_half_life_h, np.log(2) / pk.half_life_h
    k21 = m.q_L_per_h / m.v_peripheral_L
    st = PKState(m, schedule(0.0, 100.0, 1, dose))
    for t in (0.005, 0.05, 0.5, 4.0, 24.0):
        st.advance(t)
        ref = dose / m.v_central_L * ((alpha - k21) * np.exp(-alpha * t)
                                      + (k21 - beta) * np.exp(-beta * t)) / (alpha - beta)
        assert st.plasma_mg_per_L == pytest.approx(ref, rel=1e-8)
    assert st.accounted_mg == pytest.approx(dose, rel=1e-12)


def test_an_agents_own_pk_keys_override_its_species_set_key_by_key():
    sc = _scenario(("agents.doxorubicin.pk", {"half_life_h": 10.0}))
    pk, base = sc.agents["doxorubicin"].pk, sc.species["mouse"].agents["doxorubicin"]
    assert pk.half_life_h == 10.0
    assert pk.alpha_half_life_h == base.alpha_half_life_h
    assert pk.v_peripheral_L_per_kg == base.v_peripheral_L_per_kg
    one = _scenario(("agents.doxorubicin.pk", {"v_central_L_per_kg": 2.0, "half_life_h": 1.0,
                                                "alpha_half_life_h": None,
                                                "v_peripheral_L_per_kg": None}))
    assert one.agents["doxorubicin"].pk.alpha_half_life_h is None


def test_a_bad_species_or_a_missing_pk_is_a_clear_error():
    from tmesim.errors import ScenarioError

    with pytest.raises(ScenarioError) as err:
        _scenario(("subject.species", "mose"))
    assert "did you mean 'mouse'" in str(err.value)
    agent = {"kind": "drug", "molar_mass_g_per_mol": 500.0, "diffusion_um2_per_min": 1.0,
             "permeability_um_per_min": 1.0, "tumor_permeability_um_per_min": 1.0}
    with pytest.raises(ScenarioError) as err:
        _scenario(("agents.epirubicin", agent))
    assert "agents.epirubicin.pk" in str(err.value)
    # a species of the user's own, with its own sets, is accepted
    rat = {"agents": {"doxorubicin": {"v_central_L_per_kg": 1.0, "half_life_h": 8.0}},
           "nanoparticle_peg_half_life_h": 12.0, "nanoparticle_bare_half_life_h": 1.0}
    sc = _scenario(("species.rat", rat), ("subject.species", "rat"),
                   ("agents.tariquidar.pk", {"v_central_L_per_kg": 10.0, "half_life_h": 6.0}),
                   ("agents.anti_pdl1.pk", {"v_central_L_per_kg": 0.05, "half_life_h": 100.0}))
    assert sc.agents["doxorubicin"].pk.half_life_h == 8.0


def test_particle_circulation_is_the_species_mps_clearance_scaled_by_size():
    from tmesim.therapy.particles import circulation_half_life_h, transport_of

    mouse, human = _scenario(), _scenario(("subject.species", "human"))
    assert transport_of(mouse, "liposomal_doxorubicin")["half_life_h"] == 20.0
    assert transport_of(human, "liposomal_doxorubicin")["half_life_h"] == 45.0
    assert transport_of(mouse, "ph_micelle_doxorubicin")["half_life_h"] == pytest.approx(6.0)
    sp = mouse.species_set
    assert circulation_half_life_h(100.0, False, sp) == 2.0
    assert circulation_half_life_h(3.0, True, sp) == sp.renal_half_life_h
    assert circulation_half_life_h(400.0, True, sp) == pytest.approx(10.0)  # 1/d above 200 nm
    assert circulation_half_life_h(10.0, True, sp) == pytest.approx(5.0)    # a quarter
    fixed = _scenario(("nanoparticles.liposomal_doxorubicin.half_life_h", 7.0))
    assert transport_of(fixed, "liposomal_doxorubicin")["half_life_h"] == 7.0
