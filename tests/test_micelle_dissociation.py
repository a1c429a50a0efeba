"""Micelles below their critical micelle concentration (docs/pharmacology.md §13.4): the plasma
loss against its closed form, dissociation at the stated rate into the free drug's plasma, the
ledgers, and no change at all while the polymer stays above the CMC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import TINY, run_checking_ledgers, run_cli
from test_io import assert_identical
from tmesim import ScenarioError, TMEModel
from tmesim.cli import main
from tmesim.scenario import scenario_from_dict
from tmesim.therapy import PKModel, PKState, schedule

MICELLE = "ph_micelle_doxorubicin"


# --------------------------------------------------------------------------- the plasma loss
def loss_twin(dose, k_el, k_loss, threshold, times):
    """Slow twin of a one-compartment bolus with the thresholded loss: per interval between the
    requested times, the amount at its start decides whether the loss acts; then the closed
    form ``A e^{-(k + k_l) h}``, of which the share ``k_l / (k + k_l)`` is lost."""
    amount, lost, t = dose, 0.0, 0.0
    for t_next in times:
        h = t_next - t
        k_l = k_loss if amount < threshold else 0.0
        gone = amount * -math.expm1(-(k_el + k_l) * h)
        lost += gone * k_l / (k_el + k_l)
        amount -= gone
        t = t_next
    return amount, lost


def test_loss_below_the_threshold_matches_its_closed_form_and_closes():
    v, k_el, k_loss, dose, threshold = 2.0, math.log(2) / 6.0, 7.7, 10.0, 1.5
    st = PKState(PKModel(v_central_L=v, clearance_L_per_h=k_el * v), schedule(0.0, 99.0, 1, dose))
    times = np.round(np.arange(0.1, 30.0, 0.1), 10)
    total = 0.0
    for t in times:
        total += st.advance(float(t), loss_per_h=k_loss, loss_below_mg=threshold)
    amount, lost = loss_twin(dose, k_el, k_loss, threshold, times)
    assert lost > 0.1 * dose  # the loss did act: ln(10 / 1.5) / k_el = 16 h < 30 h
    assert st.x[0] == pytest.approx(amount, rel=1e-11)
    assert st.lost_mg == pytest.approx(lost, rel=1e-11)
    assert total == st.lost_mg
    assert st.accounted_mg == pytest.approx(st.dosed_mg, rel=1e-13)


def test_a_loss_that_never_acts_changes_no_bit():
    def run(**loss):
        st = PKState(PKModel.from_half_lives(1.25e-3, 6.0), schedule(0.0, 12.0, 3, 0.125))
        for t in np.arange(0.05, 40.0, 0.05):
            st.advance(float(t), **loss)
        return st

    plain, guarded = run(), run(loss_per_h=7.7, loss_below_mg=1e-9)
    assert guarded.lost_mg == 0.0
    assert np.array_equal(plain.x, guarded.x)


def test_received_drug_is_accounted_but_not_dosed():
    st = PKState(PKModel.from_half_lives(1.0, 2.0), schedule(0.0, 99.0, 1, 3.0))
    st.advance(1.0)
    st.receive(0.5)
    st.advance(5.0)
    assert st.dosed_mg == 3.0
    assert st.received_mg == 0.5
    assert st.accounted_mg == pytest.approx(3.0, rel=1e-13)


# --------------------------------------------------------------------------- in the model
def run_micelles(dose_mg_per_kg, hours=2.0, **overrides):
    m = TMEModel(TINY, **{
        "time.duration_h": hours,
        "therapy": [{"agent": MICELLE, "route": "iv", "dose_mg_per_kg": dose_mg_per_kg}],
        **overrides,
    })
    return m, run_checking_ledgers(m)


def test_a_micelle_dosed_below_its_cmc_releases_its_payload_into_plasma_at_the_stated_rate():
    """0.1 mg/kg of drug in micelles: 2 mg/L of drug, 8 mg/L of polymer in plasma, below the
    10 mg/L CMC from the start. The micelles leave plasma at k_el + k_d, the share k_d of them
    as free doxorubicin in its plasma; every ledger closes at every step."""
    hours = 1.0
    m, worst = run_micelles(0.1, hours=hours)
    th = m.therapy
    c, dox = th.by_name[MICELLE], th.by_name["doxorubicin"]
    dose = c.pk.dosed_mg
    assert dose == pytest.approx(0.1 * m.scenario.subject.body_mass_kg)
    k_el = math.log(2) / c.derived["half_life_h"]
    k_d = m.scenario.nanoparticles[MICELLE].dissociation_per_h
    assert k_d == 7.7
    expected = dose * k_d / (k_el + k_d) * -math.expm1(-(k_el + k_d) * hours)
    # the patch's capillaries take a negligible share of the body's plasma
    assert c.dissociated_mg == pytest.approx(expected, rel=1e-4)
    assert c.dissociated_mg > 0.98 * dose  # k_d / (k_el + k_d) = 0.985
    assert dox.pk.received_mg == c.dissociated_mg
    ledger = th.ledger()
    assert ledger["doxorubicin"]["dosed"] >= c.dissociated_mg
    assert ledger[MICELLE]["released"] >= c.dissociated_mg
    assert worst < 1e-11


def test_without_a_cmc_the_same_micelle_keeps_its_payload():
    m, worst = run_micelles(0.1, hours=1.0, **{f"nanoparticles.{MICELLE}.cmc_mg_per_L": None})
    c = m.therapy.by_name[MICELLE]
    assert c.cmc_amount_mg is None
    assert c.dissociated_mg == 0.0
    assert m.therapy.by_name["doxorubicin"].pk.received_mg == 0.0
    assert worst < 1e-11


def test_a_co_loaded_inhibitor_follows_the_dissociated_drug_in_its_molar_ratio():
    m, worst = run_micelles(
        0.1, hours=1.0,
        **{f"nanoparticles.{MICELLE}.payload.inhibitor": "tariquidar",
           f"nanoparticles.{MICELLE}.payload.inhibitor_per_drug": 0.5},
    )
    th = m.therapy
    c, tq = th.by_name[MICELLE], th.by_name["tariquidar"]
    agents = m.scenario.agents
    mol = c.dissociated_mg / agents["doxorubicin"].molar_mass_g_per_mol
    assert tq.pk.received_mg == pytest.approx(0.5 * mol * agents["tariquidar"].molar_mass_g_per_mol,
                                              rel=1e-12)
    assert worst < 1e-11


def test_above_the_cmc_the_result_file_is_identical_to_a_micelle_without_one(tmp_path):
    """5 mg/kg: 400 mg/L of polymer, 40 times the CMC; in 3 h it does not fall below, so the
    file is bit for bit that of the same micelle with the CMC removed."""
    outs = []
    for cmc in ("10.0", "null"):
        f = tmp_path / f"cmc_{cmc}.yaml"
        f.write_text(
            f"extends: {TINY}\nname: above_cmc\n"
            "time: {duration_h: 3.0, record_every_h: 1.5}\n"
            f"nanoparticles:\n  {MICELLE}:\n    cmc_mg_per_L: {cmc}\n"
            f"therapy:\n  - {{agent: {MICELLE}, route: iv, dose_mg_per_kg: 5.0}}\n")
        out = tmp_path / f"cmc_{cmc}.h5"
        r = run_cli("run", f, "-o", out, "-q")
        assert r.returncode == 0, r.stderr
        outs.append(out)
    assert_identical(outs[0], outs[1])


def test_a_cmc_without_the_polymer_mass_exits_2_naming_the_key(capsys):
    key = "nanoparticles.liposomal_doxorubicin.cmc_mg_per_L"
    assert main(["validate", str(TINY), "--set", f"{key}=5"]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    assert "polymer_per_drug" in text
    with pytest.raises(ScenarioError):
        scenario_from_dict(None, [(key, 5.0)])


def test_only_the_micelle_has_a_cmc_in_the_defaults():
    sc = scenario_from_dict(None, [])
    assert sc.nanoparticles[MICELLE].cmc_mg_per_L == 10.0
    assert sc.nanoparticles[MICELLE].polymer_per_drug == 4.0
    assert sc.nanoparticles["liposomal_doxorubicin"].cmc_mg_per_L is None
