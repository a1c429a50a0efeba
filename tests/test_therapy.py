"""Therapies in the model: the dose ledger closes, scenario validation, and the directions the
pharmacology must produce with fixed seeds (docs/pharmacology.md)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tmesim import TMEModel
from tmesim.errors import ScenarioError
from tmesim.kernels import codes
from tmesim.scenario import scenario_from_dict
from tmesim.therapy import LEDGER_KEYS

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.yaml"


def run(hours, therapy, **overrides):
    m = TMEModel(TINY, **{"time.duration_h": hours, "therapy": therapy, **overrides})
    while m.running:
        m.step()
    return m


def ledger_error(m):
    """Largest relative gap between dosed and accounted amounts over the dosed agents."""
    worst = 0.0
    for entry in m.therapy.ledger().values():
        accounted = sum(entry[k] for k in LEDGER_KEYS if k != "dosed")
        if entry["dosed"] == 0:  # before the first dose nothing may be anywhere
            assert accounted == 0
            continue
        worst = max(worst, abs(accounted - entry["dosed"]) / entry["dosed"])
    return worst


ALL_ROUTES = [
    {"agent": "doxorubicin", "route": "iv", "dose_mg_per_kg": 5.0, "start_h": 1.0},
    {"agent": "doxorubicin", "route": "iv", "dose_mg_per_kg": 2.0, "start_h": 3.0,
     "duration_h": 2.0},
    {"agent": "doxorubicin", "route": "inhaled", "dose_mg_per_kg": 1.0, "start_h": 2.0},
    {"agent": "tariquidar", "route": "iv", "dose_mg_per_kg": 2.0, "start_h": 0.5,
     "duration_h": 1.0},
    {"agent": "anti_pdl1", "route": "iv", "dose_mg_per_kg": 10.0, "start_h": 0.0,
     "every_h": 6.0, "count": 2},
]


def test_every_administered_amount_is_accounted_for():
    """plasma + peripheral + cleared + exhaled + tissue + cells + decayed + airway = dosed, at
    every step, for a drug (iv bolus, infusion, inhalation, tissue decay), an inhibitor and an
    antibody, while cells divide, die, move and fill lumens."""
    m = TMEModel(
        TINY,
        **{
            "time.duration_h": 12.0,
            "therapy": ALL_ROUTES,
            "cells.tumor.pgp_mean": 1.0,
            "agents.doxorubicin.decay_per_min": 0.002,
            "agents.doxorubicin.emax_per_h": 0.5,  # deaths return drug to the voxels
        },
    )
    errors = []
    while m.running:
        m.step()
        errors.append(ledger_error(m))
    ledger = m.therapy.ledger()
    dox = ledger["doxorubicin"]
    mass = m.scenario.subject.body_mass_kg
    assert dox["dosed"] == pytest.approx((5.0 + 2.0 + 1.0) * mass, rel=1e-12)
    assert ledger["anti_pdl1"]["dosed"] == pytest.approx(20.0 * mass, rel=1e-12)
    # every bucket is exercised
    for key in ("tissue", "cells", "decayed", "exhaled", "cleared", "peripheral"):
        assert dox[key] > 0, key
    assert max(errors) < 1e-11


def test_inhibitor_raises_intracellular_drug_only_in_pgp_cells():
    dox = [{"agent": "doxorubicin", "dose_mg_per_kg": 5.0, "start_h": 1.0}]
    tq = [{"agent": "tariquidar", "dose_mg_per_kg": 2.0, "start_h": 0.5}]
    high = {"cells.tumor.pgp_mean": 1.0, "cells.stem.pgp_mean": 3.0}
    without = run(6.0, dox, **high).metrics()["intracellular_drug_mean_uM"]
    with_inhibitor = run(6.0, tq + dox, **high).metrics()["intracellular_drug_mean_uM"]
    assert with_inhibitor > 2.0 * without > 0
    # cells without P-gp: the inhibitor has nothing to act on
    none = {"cells.tumor.pgp_mean": 0.0, "cells.stem.pgp_mean": 0.0}
    a = run(6.0, dox, **none).metrics()["intracellular_drug_mean_uM"]
    b = run(6.0, tq + dox, **none).metrics()["intracellular_drug_mean_uM"]
    assert a == b > with_inhibitor


def test_pgp_lowers_intracellular_drug_by_the_pump_to_leak_ratio_near_steady_state():
    """A P-gp level-1 population accumulates about 1/(1 + R) of a P-gp-free one, R = V_max /
    (k K_m) = 4.8, when the drug is far below Km (linear regime). While the slow
    pool fills it takes free drug in at up to a = 0.75 /min beside the membrane (k = 5.1 /min),
    so the pump's share falls to R k / (k + a) (docs/pharmacology.md §6.4)."""
    dox = [{"agent": "doxorubicin", "dose_mg_per_kg": 1.0, "start_h": 0.0, "duration_h": 12.0}]
    exact = {"cells.tumor.pgp_cv": 0.0, "cells.stem.pgp_cv": 0.0}
    free = run(8.0, dox, **exact, **{"cells.tumor.pgp_mean": 0.0, "cells.stem.pgp_mean": 0.0})
    pgp = run(8.0, dox, **exact, **{"cells.tumor.pgp_mean": 1.0, "cells.stem.pgp_mean": 1.0})
    ratio = (
        pgp.metrics()["intracellular_drug_p50_uM"] / free.metrics()["intracellular_drug_p50_uM"]
    )
    dox_cfg = free.scenario.agents["doxorubicin"]
    k, a = 5.1, dox_cfg.retention_uptake_per_h / 60.0
    r = dox_cfg.pgp_vmax_uM_per_min / (k * dox_cfg.pgp_km_uM)
    assert r == pytest.approx(4.8, rel=0.02)
    assert ratio == pytest.approx(1 / (1 + r * k / (k + a)), rel=0.15)


def test_free_doxorubicin_lowers_the_burden():
    """With the human PK set plasma doxorubicin lingers for days and kills a fifth of the
    burden within 48 h; with the mouse set (the default, plasma t1/2 4.1 h) less, but some."""
    untreated = run(48.0, [], seed=3).metrics()["tumor_burden"]
    dox = [{"agent": "doxorubicin", "dose_mg_per_kg": 10.0, "start_h": 1.0}]
    faster = {"agents.doxorubicin.emax_per_h": 0.2}
    human = run(48.0, dox, seed=3, **faster, **{"subject.species": "human"})
    mouse = run(48.0, dox, seed=3, **faster)
    assert human.metrics()["tumor_burden"] < 0.8 * untreated
    assert human.metrics()["tumor_burden"] < mouse.metrics()["tumor_burden"] < untreated
    assert mouse.metrics()["intracellular_drug_mean_uM"] > 0


PDL1_SETUP = {
    "cells.tcell.initial.count": 60,
    "cells.tcell.recruitment.base_per_h": 4.0,
}


def total_kills(m_factory):
    m = m_factory()
    kills = 0
    while m.running:
        m.step()
        kills += m.events["kills"]
    return m, kills


def test_pdl1_blockade_acts_only_where_pdl1_is_expressed():
    ab = [{"agent": "anti_pdl1", "dose_mg_per_kg": 10.0, "start_h": 0.0}]

    def model(therapy, **extra):
        return lambda: TMEModel(
            TINY, **{"time.duration_h": 24.0, "therapy": therapy, **PDL1_SETUP, **extra}
        )

    # PD-L1 expressed (IFN-gamma induced; raised baseline so that it matters from the start)
    expressed = {"cells.tumor.pdl1_baseline": 0.8, "cells.stem.pdl1_baseline": 0.8}
    ctrl, k_ctrl = total_kills(model([], **expressed))
    blocked, k_blocked = total_kills(model(ab, **expressed))
    assert k_blocked > k_ctrl
    assert blocked.metrics()["tumor_burden"] < ctrl.metrics()["tumor_burden"]
    # no PD-L1 at all: the antibody has no target and changes nothing, bit for bit
    absent = {
        "cells.tumor.pdl1_baseline": 0.0, "cells.tumor.pdl1_max": 0.0,
        "cells.stem.pdl1_baseline": 0.0, "cells.stem.pdl1_max": 0.0,
    }
    a, k_a = total_kills(model([], **absent))
    b, k_b = total_kills(model(ab, **absent))
    assert k_a == k_b
    n = a.cells.n
    assert b.cells.n == n
    np.testing.assert_array_equal(a.cells.site[:n], b.cells.site[:n])


def test_angiogenic_vessels_are_the_leaky_ones():
    # by default only vessels formed by angiogenesis carry the tumour permeability (EPR), times
    # their own leakiness, and every vessel's exchange scales with its perfusion
    m = TMEModel(TINY, therapy=[{"agent": "doxorubicin", "dose_mg_per_kg": 1.0}])
    th = m.therapy
    th.update_vessels()
    assert not th.tumor_vessel.any()
    dox = th.drug
    np.testing.assert_allclose(dox.vessel_rate, dox.p_normal * th.surface_per_volume)
    free = np.flatnonzero(~m.tissue.perfused & ~m.tissue.lumen)[:3]
    m.tissue.add_vessels(free, np.array([0.5, 1.0, 2.0]), np.array([1.0, 0.5, 0.25]))
    m._perfusion_changed()
    th.update_vessels()
    new = np.isin(th.perfused_sites, free)
    np.testing.assert_array_equal(th.tumor_vessel, new)
    # the wall's rate (the exchange itself is then flow-limited: test_transvascular.py)
    np.testing.assert_allclose(
        dox.wall_rate[new], dox.p_tumor * np.array([0.5, 0.5, 0.5]) * th.surface_per_volume)
    assert np.all(dox.vessel_rate[new] < dox.wall_rate[new])
    np.testing.assert_allclose(dox.vessel_rate[~new], dox.p_normal * th.surface_per_volume)
    # a poorly perfused vessel holds oxygen at its share of the vessel value
    o2 = m.fields["oxygen"].reshape(-1)
    np.testing.assert_allclose(o2[free], 38.0 * np.array([1.0, 0.5, 0.25]))


def test_capillaries_near_the_tumour_are_the_leaky_ones():
    m = TMEModel(
        TINY,
        **{"therapy": [{"agent": "doxorubicin", "dose_mg_per_kg": 1.0}],
           "vessels.tumor_association_um": 40.0,
           "vessels.leaky_vessels": "tumor_associated"},
    )
    th = m.therapy
    th.update_vessels()
    assert 0 < th.tumor_vessel.sum() < len(th.perfused_sites)
    # every flagged capillary is within 40 um of a live cancer cell, every other one is not
    shape = m.cells.shape3[1:]
    n = m.cells.n
    cancer = np.isin(m.cells.kind[:n], (0, 1))
    cy, cx = np.divmod(m.cells.site[:n][cancer], shape[1])
    py, px = np.divmod(th.perfused_sites, shape[1])
    d = np.sqrt((py[:, None] - cy) ** 2 + (px[:, None] - cx) ** 2).min(axis=1) * 20.0
    np.testing.assert_array_equal(th.tumor_vessel, d <= 40.0)


@pytest.mark.parametrize(
    ("pairs", "key"),
    [
        ([("therapy", [{"agent": "cisplatin", "dose_mg_per_kg": 1.0}])], "therapy.0.agent"),
        (
            [
                ("domain.geometry", "tissue"),
                ("therapy", [{"agent": "doxorubicin", "dose_mg_per_kg": 1.0}]),
            ],
            "domain.geometry",
        ),
        ([("agents.tariquidar.pgp_ic50_uM", 0.0)], "agents.tariquidar.pgp_ic50_uM"),
        (
            [("therapy", [{"agent": "doxorubicin", "dose_mg_per_kg": 1.0, "count": 3}])],
            "therapy.0.every_h",
        ),
    ],
)
def test_bad_therapy_input_names_the_key(pairs, key):
    base = [("domain.geometry", "lung"), ("domain.shape", [30, 30])]
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(None, base + pairs)
    assert err.value.key == key


# --------------------------------------------------------------------------- nanoparticles
MICELLE = "ph_micelle_doxorubicin"


def test_nanoparticle_ledgers_close_with_coloaded_inhibitor_and_both_routes():
    """The carrier's ledger (its doses = plasma + ... + released) and the ledgers of the drug and
    the inhibitor it releases (their doses include what carriers released) all close."""
    m = TMEModel(
        TINY,
        **{
            "time.duration_h": 12.0,
            "therapy": [
                {"agent": MICELLE, "dose_mg_per_kg": 5.0, "start_h": 1.0},
                {"agent": MICELLE, "route": "inhaled", "dose_mg_per_kg": 1.0, "start_h": 3.0},
                {"agent": "doxorubicin", "dose_mg_per_kg": 1.0, "start_h": 2.0},
            ],
            "cells.tumor.pgp_mean": 1.0,
            "cells.tumor.receptor_fraction": 0.5,
            f"nanoparticles.{MICELLE}.ligand": True,
            f"nanoparticles.{MICELLE}.payload.inhibitor": "tariquidar",
            f"nanoparticles.{MICELLE}.payload.inhibitor_per_drug": 0.5,
            "agents.doxorubicin.emax_per_h": 0.5,
        },
    )
    errors = []
    while m.running:
        m.step()
        errors.append(ledger_error(m))
    ledger = m.therapy.ledger()
    carrier = ledger[MICELLE]
    for key in ("tissue", "cells", "released", "cleared", "exhaled"):
        assert carrier[key] > 0, key
    assert ledger["tariquidar"]["dosed"] > 0  # only ever released by the particles
    assert ledger["doxorubicin"]["dosed"] > 1.0 * m.scenario.subject.body_mass_kg
    assert max(errors) < 1e-11


def test_nanoparticles_deliver_more_drug_into_pgp_high_cells_than_free_drug():
    """Same dose of doxorubicin, free or in pH-triggered micelles, against P-gp-high cells: the
    particles circulate for hours, so more of the dose reaches the tumour and far more drug ends
    up inside its cells (carried plus released) than P-gp lets free drug accumulate.

    Whether that also kills more depends on how fast particles release their drug inside cells
    and on intracellular retention (docs/pharmacology.md §12); this test checks delivery."""
    # tiny.yaml has no VEGF, so no angiogenic vessels: the capillaries near the tumour stand
    # for its leaky vessels (vessels.leaky_vessels: tumor_associated)
    high = {"cells.tumor.pgp_mean": 1.0, "cells.stem.pgp_mean": 3.0,
            "vessels.leaky_vessels": "tumor_associated"}

    def course(agent):
        m = TMEModel(TINY, **{
            "time.duration_h": 24.0, **high,
            "therapy": [{"agent": agent, "dose_mg_per_kg": 5.0, "start_h": 1.0}],
        })
        auc = 0.0
        while m.running:
            m.step()
            c = m.cells
            n = c.n
            live = np.isin(c.kind[:n], (0, 1)) & np.isin(c.state[:n], (0, 1))
            inside = (c.column("drug")[:n] + c.column("payload")[:n])[live].astype(float)
            auc += inside.mean() * m.dt_min / 60.0
        return auc, m.metrics()["delivered_fraction"]

    auc_free, delivered_free = course("doxorubicin")
    auc_nano, delivered_nano = course(MICELLE)
    assert auc_nano > 10 * auc_free > 0
    # DNA binding keeps free drug in the cells (bound and retained drug count as delivered; the
    # slow pool holds it for a day), so the particles' advantage in delivered drug is far
    # smaller than in free intracellular drug: 2.5-fold at 24 h (was more than 5-fold before the
    # slow pool of docs/pharmacology.md §6.8)
    assert delivered_nano > 2 * delivered_free > 0


def vessel_slab(tmp_path, hours=8.0):
    """A 30 x 60 tissue slab with one capillary column at x = 2, packed with tumour cells."""
    img = np.zeros((30, 60), np.int8)
    img[:, 2] = 2
    np.save(tmp_path / "vessel.npy", img)
    return {
        "name": "slab",
        "time": {"duration_h": hours, "record_every_h": 1.0},
        "domain": {"geometry": "mask", "shape": [30, 60],
                   "mask": {"path": str(tmp_path / "vessel.npy")}},
        "cells": {"tumor": {"initial": {"count": 1200, "placement": "random"}},
                  "stem": {"initial": {"count": 0}}},
        "therapy": [{"agent": MICELLE, "dose_mg_per_kg": 5.0, "start_h": 0.5}],
    }


def test_smaller_particles_penetrate_further_from_vessels(tmp_path):
    base = vessel_slab(tmp_path)
    depth = []
    for size in (10.0, 30.0, 100.0):
        sc = scenario_from_dict(base, [(f"nanoparticles.{MICELLE}.size_nm", size)])
        m = TMEModel(sc)
        while m.running:
            m.step()
        depth.append(m.metrics()["np_penetration_um"])
    assert depth[0] > depth[1] > depth[2] > 0
    assert depth[0] > 2 * depth[2]


def test_penetration_is_nan_without_vessels_and_inhaled_particles_still_arrive(tmp_path):
    img = np.zeros((20, 30), np.int8)
    img[8:12, 10:20] = 1  # an alveolar lumen: its walls are the surfaces inhaled doses reach
    np.save(tmp_path / "novessel.npy", img)
    m = TMEModel(
        {
            "name": "no_vessel",
            "time": {"duration_h": 2.0, "record_every_h": 1.0},
            "domain": {"geometry": "mask", "shape": [20, 30],
                       "mask": {"path": str(tmp_path / "novessel.npy")}},
            "cells": {"tumor": {"initial": {"count": 200, "placement": "random"}},
                      "stem": {"initial": {"count": 0}}},
            "therapy": [{"agent": MICELLE, "route": "inhaled", "dose_mg_per_kg": 1.0,
                         "start_h": 0.5}],
        }
    )
    while m.running:
        m.step()
    met = m.metrics()
    assert math.isnan(met["np_penetration_um"])
    assert met["delivered_fraction"] > 0
    assert ledger_error(m) < 1e-11


def particles_per_cell(m):
    """Internalised particles plus released drug per live cancer cell, keyed by cell id, with
    the receptor status of each (the kernel's own keyed draw)."""
    from tmesim.kernels.nanoparticles import receptor_positive

    c = m.cells
    n = c.n
    live = np.isin(c.kind[:n], (0, 1)) & np.isin(c.state[:n], (0, 1))
    load = (c.column("payload")[:n] + c.column("drug")[:n])[live].astype(float)
    ids = c.column("id")[:n][live]
    frac = m.scenario.cells.tumor.receptor_fraction
    return {
        int(i): (x, bool(receptor_positive(m.seed, int(i), frac)))
        for i, x in zip(ids, load, strict=True)
    }


def test_a_ligand_raises_uptake_only_in_receptor_positive_cells():
    """At 60 nm the ligand's size rule gives its full gain (5), at 30 nm almost none (1.01,
    Sykes et al. 2014): receptor-positive cells take up more only at 60 nm."""
    def course(ligand, fraction, size_nm=60.0):
        m = TMEModel(TINY, **{
            "time.duration_h": 6.0,
            "cells.tumor.receptor_fraction": fraction,
            "cells.stem.receptor_fraction": fraction,
            f"nanoparticles.{MICELLE}.ligand": ligand,
            f"nanoparticles.{MICELLE}.size_nm": size_nm,
            "therapy": [{"agent": MICELLE, "dose_mg_per_kg": 5.0, "start_h": 0.0}],
        })
        while m.running:
            m.step()
        return m

    def gains(size_nm):
        plain = particles_per_cell(course(False, 0.5, size_nm))
        ligand = particles_per_cell(course(True, 0.5, size_nm))
        common = sorted(set(plain) & set(ligand))
        assert len(common) > 0.9 * len(plain)
        pos = np.array([plain[i][1] for i in common])
        gain = np.array([ligand[i][0] / plain[i][0] for i in common])
        assert 0 < pos.sum() < len(pos)
        return gain[pos], gain[~pos]

    pos, neg = gains(60.0)
    assert np.median(pos) > 2.0
    assert np.median(neg) == pytest.approx(1.0, abs=0.2)
    pos, neg = gains(30.0)
    assert np.median(pos) == pytest.approx(1.0, abs=0.05)
    # without receptor-positive cells the ligand changes nothing, bit for bit
    assert particles_per_cell(course(False, 0.0)) == particles_per_cell(course(True, 0.0))


def mean_pgp(m):
    c = m.cells
    n = c.n
    live = np.isin(c.kind[:n], (0, 1)) & np.isin(c.state[:n], (0, 1))
    return float(c.column("pgp")[:n][live].mean())


def test_sirna_in_particles_lowers_pgp_and_drug_exposure_can_induce_it():
    micelle = [{"agent": MICELLE, "dose_mg_per_kg": 5.0, "start_h": 0.0}]
    base = {"cells.tumor.pgp_mean": 1.0, "cells.stem.pgp_mean": 1.0}
    plain = run(24.0, micelle, **base)
    sirna = run(24.0, micelle, **base, **{f"nanoparticles.{MICELLE}.payload.sirna_knockdown": 0.9})
    assert mean_pgp(sirna) < 0.8 * mean_pgp(plain)
    assert (
        sirna.metrics()["intracellular_drug_mean_uM"]
        > plain.metrics()["intracellular_drug_mean_uM"]
    )
    # without siRNA or induction the P-gp level of every cell stays what it was at birth
    c = plain.cells
    np.testing.assert_array_equal(c.column("pgp")[: c.n], c.column("pgp_base")[: c.n])
    dox = [{"agent": "doxorubicin", "dose_mg_per_kg": 10.0, "start_h": 0.0, "duration_h": 24.0}]
    induced = run(24.0, dox, **base, **{"cells.tumor.pgp_induction_max": 2.0,
                                        "cells.stem.pgp_induction_max": 2.0,
                                        "cells.tumor.pgp_induction_ec50_uM": 0.001,
                                        "cells.stem.pgp_induction_ec50_uM": 0.001})
    assert mean_pgp(induced) > 1.3 * mean_pgp(run(24.0, dox, **base))


def test_pdl1_blockade_without_pdl1_changes_no_record_bit_for_bit(tmp_path):
    """Checkpoint blockade does nothing when PD-L1 is absent: with pdl1_baseline and pdl1_max 0
    for both cancer kinds, the same seed with and without anti-PD-L1 writes identical cell,
    count and metric datasets (and identical fields, but for the antibody's own), bit for bit,
    while T cells engage, kill, divide and exhaust."""
    import h5py

    absent = ("cells:\n"
              "  tumor: {pdl1_baseline: 0.0, pdl1_max: 0.0}\n"
              "  stem: {pdl1_baseline: 0.0, pdl1_max: 0.0}\n"
              "  tcell:\n"
              "    initial: {count: 60, placement: random}\n"
              "    recruitment: {base_per_h: 4.0}\n"
              "    exhaustion_antigen_h: 6.0\n"
              "    division_h: 6.0\n"
              "time: {duration_h: 24.0, record_every_h: 3.0}\n"
              "output: {cells: true}\n")
    dose = ("therapy:\n  - {agent: anti_pdl1, route: iv, dose_mg_per_kg: 10.0, start_h: 0.0,"
            " every_h: 6.0, count: 3}\n")
    outs = {}
    for label, extra in (("control", ""), ("blocked", dose)):
        f = tmp_path / f"{label}.yaml"
        f.write_text(f"extends: {TINY}\nname: {label}\n{absent}{extra}")
        outs[label] = tmesim_run(f, tmp_path / f"{label}.h5")

    def read(path):
        out = {}
        with h5py.File(path, "r") as h:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and name.split("/")[0] in (
                        "cells", "counts", "metrics", "fields", "time_h"):
                    out[name] = np.ascontiguousarray(obj[()]).tobytes()
            h.visititems(visit)
        return out

    a, b = read(outs["control"]), read(outs["blocked"])
    extra = set(b) - set(a)  # the antibody's field and the therapy's own read-outs
    assert "fields/anti_pdl1" in extra and set(a) <= set(b), extra
    assert all(k.startswith(("fields/anti_pdl1", "metrics/")) for k in extra), extra
    assert any(k.startswith("cells/") for k in a) and any(k.startswith("metrics/") for k in a)
    for name in a:
        assert a[name] == b[name], f"{name} differs with anti-PD-L1 although PD-L1 is absent"
    # the antibody was there, and T cells did engage, kill and exhaust
    with h5py.File(outs["blocked"], "r") as h:
        assert np.asarray(h["fields/anti_pdl1"]).max() > 0
        kinds = np.asarray(h["cells/kind"])
        states = np.asarray(h["cells/state"])
        gen = np.asarray(h["cells/generation"])
    tcell = kinds == 2
    assert np.any(states[tcell] == 1)  # exhausted T cells
    assert np.any(gen[tcell] > 0)  # T-cell daughters


def tmesim_run(scenario, out):
    from tmesim import run

    return run(scenario, out)


def test_bound_drug_and_damage_do_not_depend_on_thread_count():
    """A doxorubicin course with DNA binding and damage gives bit-identical cells and fields at
    1 and 2 threads."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    dose = [{"agent": "doxorubicin", "route": "iv", "dose_mg_per_kg": 5.0, "start_h": 0.5}]
    out = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            m = run(8.0, dose, seed=5)
            n = m.cells.n
            out.append([m.cells.column(c)[:n].copy()
                        for c in ("drug", "bound", "retained", "damage")]
                       + [m.fields.flat("doxorubicin").copy(), m.cells.site[:n].copy()])
    finally:
        numba.set_num_threads(old)
    assert float(out[0][2].max()) > 0.0  # the slow pool filled
    assert float(out[0][3].max()) > 0.0  # the course did damage cells
    for a, b in zip(out[0], out[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_cells_hold_bound_drug_and_pgp_lowers_it():
    """With DNA binding, cells hold far more bound than free drug after a bolus, and P-gp (acting
    on the free drug) lowers what they hold."""
    dose = [{"agent": "doxorubicin", "route": "iv", "dose_mg_per_kg": 5.0, "start_h": 0.5}]

    def held(pgp):
        m = run(6.0, dose, seed=2, **{"cells.tumor.pgp_mean": pgp, "cells.stem.pgp_mean": pgp})
        n = m.cells.n
        live = np.isin(m.cells.kind[:n], (0, 1)) & np.isin(m.cells.state[:n], (0, 1))
        return (float(m.cells.column("drug")[:n][live].mean()),
                float(m.cells.column("bound")[:n][live].mean()))

    free0, bound0 = held(0.0)
    free1, bound1 = held(1.0)
    assert bound0 > 20 * free0 > 0
    assert free1 < free0
    assert bound1 < 0.8 * bound0


def test_tumour_drug_metrics_are_the_drug_per_tumour_voxel():
    """tumor_drug_total_uM, tumor_drug_bound_uM and tumor_np_drug_uM against a direct sum over
    live cancer cells of the free-drug and particle fields at their voxels and their free,
    bound (fast and retained) and internalised drug (docs/pharmacology.md §10), during a
    micelle course."""
    m = TMEModel(TINY, **{"time.duration_h": 6.0, "vessels.leaky_vessels": "tumor_associated",
                          "therapy": [{"agent": MICELLE, "dose_mg_per_kg": 5.0,
                                       "start_h": 0.5}]})
    while m.running:
        m.step()
    c, th = m.cells, m.therapy
    n = c.n
    live = np.isin(c.kind[:n], (0, 1)) & np.isin(c.state[:n], (0, 1))
    sites = c.site[:n][live]
    total = bound = carried = 0.0
    for i in np.flatnonzero(live):
        s = c.site[i]
        particles = th.fields.flat(MICELLE)[s] + th.phi * float(c.column("payload")[i])
        dna = float(c.column("bound")[i]) + float(c.column("retained")[i])
        total += th.fields.flat("doxorubicin")[s] + th.phi * (float(c.column("drug")[i]) + dna)
        total += particles
        bound += th.phi * dna
        carried += particles
    got = th.metrics()
    assert len(sites) > 0 and bound > 0
    assert got["tumor_drug_total_uM"] == pytest.approx(total / len(sites), rel=1e-5)
    assert got["tumor_drug_bound_uM"] == pytest.approx(bound / len(sites), rel=1e-5)
    assert got["tumor_np_drug_uM"] == pytest.approx(carried / len(sites), rel=1e-5)
    assert got["tumor_drug_total_uM"] > got["tumor_np_drug_uM"] > 0
    assert set(got) == set(th.metric_units()) and th.metric_units()["tumor_np_drug_uM"] == "uM"
    assert got["tumor_drug_total_uM"] > got["tumor_drug_bound_uM"]


def test_slow_pool_keeps_drug_after_the_medium_is_gone_and_the_ledger_closes():
    """A P-gp-free culture after a bolus: the retained (slow) pool outlasts the free and bound
    drug once the plasma has cleared, and the ledger, which counts all three pools as cell
    inventory, still closes."""
    dose = [{"agent": "doxorubicin", "route": "iv", "dose_mg_per_kg": 5.0, "start_h": 0.5}]
    m = run(24.0, dose, seed=3)
    n = m.cells.n
    state = m.cells.state[:n]
    live = np.isin(m.cells.kind[:n], [codes.TUMOR, codes.STEM]) & np.isin(
        state, [codes.PROLIFERATING, codes.QUIESCENT])
    retained = float(m.cells.column("retained")[:n][live].mean())
    fast = float((m.cells.column("drug")[:n] + m.cells.column("bound")[:n])[live].mean())
    assert retained > fast > 0.0
    assert ledger_error(m) < 1e-11
