"""Several agents at once: per-agent cell pools, fields, ledgers and metrics, and the rule that
combines the kill hazards of several drugs (docs/pharmacology.md §7.1)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

import tmesim
from test_io import assert_identical, datasets, run_on_one_and_two_threads
from test_therapy import ledger_error
from tmesim import TMEModel
from tmesim.cells import CellPopulation
from tmesim.kernels import agents as ka
from tmesim.kernels import cancer as kc
from tmesim.kernels import codes, layout
from tmesim.kernels.neighbourhood import hazard_prob
from tmesim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.yaml"

#: a test-only second cytotoxic drug: no DNA binding (its hazard reads free drug), no P-gp
#: efflux, cleared in hours, potent enough to kill within a short run
SECOND = {
    "kind": "drug", "units": "uM", "molar_mass_g_per_mol": 300.0,
    "pk": {"v_central_L_per_kg": 1.0, "half_life_h": 2.0},
    "diffusion_um2_per_min": 3000.0, "permeability_um_per_min": 90.0,
    "tumor_permeability_um_per_min": 180.0, "membrane_permeability_um_per_min": 14.4,
    "emax_per_h": 0.5, "ec50_uM": 0.02, "hill": 1.0,
}


def two_drugs(start_h=1.0, **more):
    """Overrides of tiny.yaml dosing doxorubicin and the test drug (``start_h`` of the test
    drug)."""
    return {
        "time.duration_h": 8.0,
        "agents.testdrug": SECOND,
        "therapy": [
            {"agent": "doxorubicin", "dose_mg_per_kg": 5.0, "start_h": 1.0},
            {"agent": "testdrug", "dose_mg_per_kg": 5.0, "start_h": start_h},
        ],
        **more,
    }


def live_cancer(m):
    n = m.cells.n
    return np.isin(m.cells.kind[:n], [codes.TUMOR, codes.STEM]) & np.isin(
        m.cells.state[:n], [codes.PROLIFERATING, codes.QUIESCENT])


# --------------------------------------------------------------------------- the layout
def test_further_agents_get_their_own_columns_after_the_table():
    rows, extra = layout.agent_columns({"drug": ["dox", "b"], "nanoparticle": ["p", "q"]})
    base = len(layout.block_names("f32"))
    # the first of each role holds the table's own columns: one agent per role changes nothing
    assert rows["dox"] == {"drug": layout.DRUG, "bound": layout.BOUND,
                           "retained": layout.RETAINED, "damage": layout.DAMAGE}
    assert rows["p"] == {"payload": layout.PAYLOAD, "carrier": layout.CARRIER}
    assert [c.name for c in extra] == ["drug_b", "bound_b", "retained_b", "damage_b", "payload_q",
                                       "carrier_q"]
    assert rows["b"] == {"drug": base, "bound": base + 1, "retained": base + 2, "damage": base + 3}
    assert rows["q"] == {"payload": base + 4, "carrier": base + 5}
    # damage is copied at a division; the amounts (and the held carriers) are split
    assert layout.pool_rows(extra) == (*layout.POOLS, base, base + 1, base + 2, base + 4,
                                       base + 5)
    assert [r.name for c in extra for r in c.recorded] == [c.name for c in extra]


def test_no_kernel_reads_a_family_column_by_its_named_row():
    """A named row of a per-agent family (``DRUG``, ``PAYLOAD``, ...) is the first agent's only:
    a kernel that read it would ignore every further agent."""
    names = {c.upper() for fam in layout.FAMILIES.values() for c in fam}
    pattern = re.compile(r"\b(" + "|".join(sorted(names)) + r")\b")
    for path in (ROOT / "src" / "tmesim" / "kernels").glob("*.py"):
        if path.name == "layout.py":
            continue
        hits = [line for line in path.read_text().splitlines() if pattern.search(line)]
        assert not hits, f"{path.name}: {hits}"


def test_a_division_splits_every_agents_pools():
    pop = CellPopulation((1, 3, 3), capacity=8,
                         agents={"drug": ["dox", "b"], "nanoparticle": ["p", "q"]})
    assert pop.nbytes_per_cell == CellPopulation((1, 3, 3)).nbytes_per_cell + 6 * 4
    pop.add(codes.TUMOR, np.array([4]), 5)
    f32 = pop.arrays().f32
    f32[:, 0] = 2.0
    cap = pop._cap
    intents = ka.Intents(np.zeros(cap, np.int8), np.zeros(cap, np.int64),
                         np.zeros(cap, np.int8), np.zeros(cap, np.int32))
    intents.action[0], intents.target[0] = ka.DIVIDE, 5
    intents.dkind[0], intents.ddiv[0] = codes.TUMOR, 4
    lattice = ka.Lattice(np.array([1, 3, 3], np.int64), np.zeros(1, bool))
    m, _, _ = ka.apply_actions(1, tuple(intents), tuple(pop.arrays()), tuple(lattice),
                               (0.1, 1, 0), 10, np.zeros(codes.N_KINDS, np.int64),
                               np.zeros((ka.PUSH_WORK_ROWS, 1), np.int64), pop.pools)
    assert m == 2
    for name in ("drug", "bound", "retained", "payload", "carrier", "drug_b", "bound_b",
                 "retained_b", "payload_q", "carrier_q"):
        np.testing.assert_array_equal(pop.column(name)[:2], [1.0, 1.0], err_msg=name)
    for name in ("damage", "damage_b", "pgp"):
        np.testing.assert_array_equal(pop.column(name)[:2], [2.0, 2.0], err_msg=name)
    np.testing.assert_array_equal(pop.column("clock_h")[:2], [0.0, 0.0])
    assert list(pop.snapshot())[-6:] == ["drug_b", "bound_b", "retained_b", "damage_b",
                                         "payload_q", "carrier_q"]


# --------------------------------------------------------------------------- the combination
@pytest.mark.parametrize("hypoxic", [False, True])
def test_bliss_independence_multiplies_the_survivals(hypoxic):
    """Each drug's survival over a step multiplies (Bliss): 1 - p = (1 - p1)(1 - p2), with the
    quiescent factor on each drug; the highest-single-agent rule takes the larger hazard; the
    immunogenic part counts each drug's share."""
    f32 = np.zeros((len(layout.block_names("f32")), 1), np.float32)
    f32[layout.DAMAGE, 0] = 3.0
    f32[layout.PAYLOAD, 0] = 0.7
    dt = 0.5
    for rule in (kc.COMBINE_BLISS, kc.COMBINE_HIGHEST):
        par = np.zeros((codes.N_KINDS, kc.C_NPARAMS + 2 * kc.D_NCOLS))
        k = codes.TUMOR
        par[k, kc.C_QUIESCENT_DRUG_FACTOR] = 0.4
        par[k, kc.C_DRUG_COMBINATION] = rule
        par[k, kc.C_NPARAMS:] = (layout.DAMAGE, 0.3, 2.0, 2.0, 1.0,
                                 layout.PAYLOAD, 0.8, 0.5, 1.0, 0.0)
        h, icd = kc.drug_hazard(f32, 0, k, par, hypoxic)
        q = 0.4 if hypoxic else 1.0
        h1 = q * 0.3 * 3.0**2 / (2.0**2 + 3.0**2)
        h2 = q * 0.8 * 0.7 / (0.5 + 0.7)
        if rule == kc.COMBINE_BLISS:
            p1, p2 = hazard_prob(h1, dt), hazard_prob(h2, dt)
            assert hazard_prob(h, dt) == pytest.approx(1.0 - (1.0 - p1) * (1.0 - p2), rel=1e-6)
            assert h == pytest.approx(h1 + h2, rel=1e-6)
            assert icd == pytest.approx(h1, rel=1e-6)  # only the first drug is immunogenic
        else:
            assert h == pytest.approx(max(h1, h2), rel=1e-6)
            assert icd == (pytest.approx(h1, rel=1e-6) if h1 > h2 else 0.0)
        # one drug: both rules give that drug's hazard
        one = par[:, : kc.C_NPARAMS + kc.D_NCOLS].copy()
        assert kc.drug_hazard(f32, 0, k, one, hypoxic)[0] == pytest.approx(h1, rel=1e-6)


# --------------------------------------------------------------------------- whole runs
def test_two_drugs_each_keep_their_pools_ledger_and_metrics():
    m = TMEModel(TINY, **two_drugs())
    assert m.scenario.pool_roles["drug"] == ["doxorubicin", "testdrug"]
    errors = []
    while m.running:
        m.step()
        errors.append(ledger_error(m))
    assert max(errors) < 1e-11  # every agent's ledger closes, every step
    ledger = m.therapy.ledger()
    for name in ("doxorubicin", "testdrug"):
        assert ledger[name]["cells"] > 0, name
        assert ledger[name]["tissue"] > 0, name
    live = live_cancer(m)
    n = m.cells.n
    col = m.cells.column
    # doxorubicin binds DNA and builds damage; the test drug only enters cells
    assert col("damage")[:n][live].max() > 0
    assert col("drug_testdrug")[:n][live].max() > 0
    assert not col("bound_testdrug")[:n].any() and not col("damage_testdrug")[:n].any()
    metrics = m.metrics()
    units = m.metric_units()
    for key in ("intracellular_drug_mean_uM", "delivered_fraction", "tumor_drug_total_uM"):
        assert metrics[key] > 0 and metrics[f"{key}_testdrug"] > 0, key
        assert units[f"{key}_testdrug"] == units[key]
    assert metrics["testdrug_plasma"] > 0


def test_the_second_drug_kills_and_highest_single_agent_kills_less():
    """With the potent test drug added to doxorubicin, Bliss independence kills more cells
    than the highest single agent alone (same seed: the same draws), which kills more than
    doxorubicin alone."""
    deaths = {}
    for label, kw in (("dox", {"therapy": two_drugs()["therapy"][:1],
                               "time.duration_h": 8.0}),
                      ("highest", two_drugs(drug_combination="highest_single_agent")),
                      ("bliss", two_drugs())):
        m = TMEModel(TINY, **kw)
        ids = set()
        while m.running:
            before = set(m.cells.column("id")[: m.cells.n][live_cancer(m)].tolist())
            m.step()
            ids |= before - set(m.cells.column("id")[: m.cells.n].tolist())
        deaths[label] = len(ids)
    assert deaths["bliss"] >= deaths["highest"] >= deaths["dox"]
    assert deaths["bliss"] > deaths["dox"]


@pytest.mark.filterwarnings("ignore:therapy.1")  # the second drug's dose is never given
def test_a_further_agent_leaves_the_first_drug_bit_identical(tmp_path):
    """A second drug dosed after the end of the run takes its own field, columns and metrics
    and changes no bit of the rest: the first drug keeps the column table's own columns."""
    one = tmp_path / "one.h5"
    both = tmp_path / "both.h5"
    kw = two_drugs(start_h=100.0)
    tmesim.run(load_scenario(TINY, [("therapy", kw["therapy"][:1]), ("time.duration_h", 8.0)]),
               one)
    tmesim.run(load_scenario(TINY, list(kw.items())), both)
    a, b = datasets(one), datasets(both)
    extra = set(b) - set(a)
    assert set(a) <= set(b)
    assert {"cells/drug_testdrug", "cells/damage_testdrug", "fields/testdrug",
            "metrics/intracellular_drug_mean_uM_testdrug"} <= extra
    for name in a:
        assert a[name] == b[name], f"dataset {name} differs"


def test_two_drug_run_does_not_depend_on_the_thread_count(tmp_path):
    f = tmp_path / "two.yaml"
    f.write_text(
        f"extends: {TINY}\nname: two_drugs\ntime: {{duration_h: 6.0, record_every_h: 2.0}}\n"
        "drug_combination: bliss\n"
        "agents:\n  testdrug: " + repr(SECOND).replace("'", '"') + "\n"
        "therapy:\n"
        "  - {agent: doxorubicin, dose_mg_per_kg: 5.0, start_h: 1.0}\n"
        "  - {agent: testdrug, dose_mg_per_kg: 5.0, start_h: 1.0}\n"
        "  - {agent: liposomal_doxorubicin, dose_mg_per_kg: 5.0, start_h: 1.0}\n")
    outs = run_on_one_and_two_threads(f, tmp_path)
    assert_identical(outs[0], outs[1])
    with h5py.File(outs[0], "r") as h:
        assert np.asarray(h["cells/drug_testdrug"]).max() > 0


def test_free_and_liposomal_doxorubicin_share_the_drug_and_close_their_ledgers():
    """The same molecule given free and in liposomes is one drug: one field and one set of
    pools (doses add, no Bliss between a drug and itself), and a second formulation carrying
    it has its own field, particle pool and ledger."""
    m = TMEModel(TINY, **{
        "time.duration_h": 8.0,
        "therapy": [
            {"agent": "doxorubicin", "dose_mg_per_kg": 2.5, "start_h": 1.0},
            {"agent": "liposomal_doxorubicin", "dose_mg_per_kg": 2.5, "start_h": 1.0},
            {"agent": "ph_micelle_doxorubicin", "dose_mg_per_kg": 2.5, "start_h": 1.0},
        ],
    })
    assert m.scenario.pool_roles == {
        "drug": ["doxorubicin"],
        "nanoparticle": ["liposomal_doxorubicin", "ph_micelle_doxorubicin"]}
    errors = []
    while m.running:
        m.step()
        errors.append(ledger_error(m))
    assert max(errors) < 1e-11
    ledger = m.therapy.ledger()
    for name in ("liposomal_doxorubicin", "ph_micelle_doxorubicin"):
        assert ledger[name]["tissue"] > 0, name
    assert ledger["doxorubicin"]["dosed"] > 2.5 * m.scenario.subject.body_mass_kg
    n = m.cells.n
    assert m.cells.column("payload")[:n].any()
    assert m.cells.column("payload_ph_micelle_doxorubicin")[:n].any()
    assert not math.isnan(m.metrics()["np_penetration_um"])


ZOSUQUIDAR = {  # a test-only second inhibitor
    "kind": "inhibitor", "units": "uM", "molar_mass_g_per_mol": 527.6, "pgp_ic50_uM": 0.06,
    "pk": {"v_central_L_per_kg": 10.0, "half_life_h": 3.0}, "diffusion_um2_per_min": 3000.0,
    "permeability_um_per_min": 90.0, "tumor_permeability_um_per_min": 180.0,
}
ANTI_PDL1_B = {  # a test-only second anti-PD-L1 antibody
    "kind": "antibody", "units": "nM", "molar_mass_g_per_mol": 146000.0,
    "pk": {"v_central_L_per_kg": 0.05, "half_life_h": 86.0}, "diffusion_um2_per_min": 600.0,
    "permeability_um_per_min": 0.056, "tumor_permeability_um_per_min": 0.168,
}


def test_two_inhibitors_act_as_one_equivalent_concentration():
    """Two inhibitors competing for P-gp leave ``1 / (1 + I_1/IC50_1 + I_2/IC50_2)`` of its
    activity: P-gp sees the first inhibitor at ``I_1 + I_2 IC50_1 / IC50_2``; each has its own
    ledger."""
    m = TMEModel(TINY, **{
        "time.duration_h": 4.0, "agents.zosuquidar": ZOSUQUIDAR,
        "cells.tumor.pgp_mean": 1.0,
        "therapy": [{"agent": "tariquidar", "dose_mg_per_kg": 2.0, "start_h": 0.5},
                    {"agent": "zosuquidar", "dose_mg_per_kg": 2.0, "start_h": 0.5},
                    {"agent": "doxorubicin", "dose_mg_per_kg": 5.0, "start_h": 1.0}]})
    errors = []
    while m.running:
        m.step()
        errors.append(ledger_error(m))
    assert max(errors) < 1e-11
    th = m.therapy
    i1, i2 = th.fields.flat("tariquidar"), th.fields.flat("zosuquidar")
    assert i2.max() > 0
    eq = th._inhibitor_field()
    np.testing.assert_allclose(eq, i1 + i2 * 0.025 / 0.06, rtol=1e-12)
    left = 0.025 / (eq + 0.025)
    np.testing.assert_allclose(left, 1.0 / (1.0 + i1 / 0.025 + i2 / 0.06), rtol=1e-12)


def test_two_antibodies_block_pdl1_by_their_summed_concentration():
    m = TMEModel(TINY, **{
        "time.duration_h": 4.0, "agents.anti_pdl1_b": ANTI_PDL1_B,
        "therapy": [{"agent": "anti_pdl1", "dose_mg_per_kg": 10.0, "start_h": 0.5},
                    {"agent": "anti_pdl1_b", "dose_mg_per_kg": 10.0, "start_h": 0.5}]})
    while m.running:
        m.step()
    dyn = m.dynamics
    assert dyn.antibodies == ["anti_pdl1", "anti_pdl1_b"]
    a, b = m.fields.flat("anti_pdl1"), m.fields.flat("anti_pdl1_b")
    assert b.max() > 0
    antibody_view = dyn._field_views()[ka.V_ANTIBODY]
    assert antibody_view is dyn._antibody_sum
    np.testing.assert_allclose(antibody_view, a + b, rtol=1e-6)
    assert max(ledger_error(m), 0.0) < 1e-11


def test_two_sirna_formulations_knock_pgp_down_together():
    """Two formulations carrying siRNA: each cell's P-gp target takes the product of the two
    remaining fractions, so P-gp falls further than with either formulation alone, and the
    pgp kernel reads both particle pools."""
    def run(which):
        over = {
            "time.duration_h": 12.0, "cells.tumor.pgp_mean": 1.0,
            "therapy": [{"agent": w, "dose_mg_per_kg": 5.0, "start_h": 0.5} for w in which]}
        for w in which:
            over[f"nanoparticles.{w}.payload.sirna_knockdown"] = 0.9
        m = TMEModel(TINY, **over)
        while m.running:
            m.step()
        n = m.cells.n
        live = np.isin(m.cells.kind[:n], [codes.TUMOR, codes.STEM])
        return m, float(m.cells.column("pgp")[:n][live].mean())

    both, p_both = run(["liposomal_doxorubicin", "ph_micelle_doxorubicin"])
    assert [a.name for a in both.therapy.sirna] == ["liposomal_doxorubicin",
                                                    "ph_micelle_doxorubicin"]
    assert both.therapy._sirna_payloads().shape[0] == 2
    _, p_lipo = run(["liposomal_doxorubicin"])
    _, p_micelle = run(["ph_micelle_doxorubicin"])
    assert p_both < min(p_lipo, p_micelle) < 1.0
