"""Immunogenic cell death, lymph-node priming and CXCL9/10 (docs/biology.md §5.8-5.9)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import naive_cells as naive
from conftest import run_cli
from test_io import assert_identical
from tmesim import TMEModel
from tmesim.errors import ScenarioError
from tmesim.io import load
from tmesim.kernels import codes
from tmesim.kernels import lattice as kl
from tmesim.priming import Priming
from tmesim.scenario import load_scenario
from tmesim.scenario.cells_schema import Priming as PrimingConfig

PRIMING = "scenarios/immune_priming.yaml"
#: free doxorubicin at hour 1, so that a day shows its deaths
DOX_EARLY = ("therapy=[{agent: doxorubicin, route: iv, dose_mg_per_kg: 5.0, start_h: 1.0, "
             "every_h: 72.0, count: 1}]")


# --------------------------------------------------------------------------- the ledger
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_death_ledger_matches_twin(seed):
    rng = np.random.default_rng(seed)
    n = 400
    kind = rng.integers(0, codes.N_KINDS, n).astype(np.int8)
    state = rng.integers(0, len(codes.STATE_NAMES), n).astype(np.int8)
    icd = np.where(rng.random(n) < 0.3, rng.random(n), 0.0).astype(np.float32)
    got = kl.death_ledger(n, kind, state, icd)
    want = naive.death_ledger(n, kind, state, icd)
    assert got[0] == want[0] and got[1] == pytest.approx(want[1], rel=1e-12)
    removed_cancer = (state == codes.REMOVED) & np.isin(kind, codes.CANCER_CODES)
    assert got[0] == removed_cancer.sum() > 0  # not vacuous: some rows count, others do not
    assert 0.0 < got[1] < got[0]


# --------------------------------------------------------------------------- the compartment
def test_priming_compartment_solves_its_equations():
    """Danger and antigen are exact exponentials; the effectors follow the linear ODE (backward
    Euler converges to its exact solution at first order)."""
    cfg = PrimingConfig(enabled=True)
    p = Priming(cfg)
    # no death: nothing is primed and the danger stays at its baseline
    for _ in range(10):
        assert p.step(0.1, 0.0, 0.0, 100) == 0.0
    assert p.danger == cfg.danger_baseline and p.antigen == 0.0
    # an immunogenic pulse raises the danger by delta I / N and it relaxes exactly
    p.step(0.1, 4.0, 2.0, 1000)
    c1 = cfg.danger_baseline + cfg.danger_per_icd_death * 2.0 / 1000
    assert p.danger == pytest.approx(c1, rel=1e-12)
    p.step(5.0, 0.0, 0.0, 1000)
    want = cfg.danger_baseline + (c1 - cfg.danger_baseline) * math.exp(-cfg.danger_decay_per_h * 5)
    assert p.danger == pytest.approx(want, rel=1e-12)
    assert p.antigen == pytest.approx(4.0 * math.exp(-cfg.antigen_loss_per_h * 5.0), rel=1e-12)

    def run(dt, cfg, burden=100, t_end=48.0):
        q = Priming(cfg)
        arrived = q.step(dt, 10.0, 0.0, burden)  # 10 silent deaths at t = 0: antigen 10, c0
        for _ in range(round(t_end / dt) - 1):
            arrived += q.step(dt, 0.0, 0.0, burden)
        return q.expanding, q.circulating, arrived

    # exact, for an antigen far below its half-effect (antigen_loss 0: a constant drive r):
    # dP/dt = r - P / tau, dB/dt = P / tau - K B with K = k_out + q_in N, P(0) = B(0) = 0
    cfg = PrimingConfig(enabled=True, antigen_loss_per_h=1e-12, blood_loss_per_h=0.05,
                        capture_half_cells=400.0)
    h = cfg.danger_baseline / (1 + cfg.danger_baseline)
    r = cfg.max_primed_per_h * h * 10.0 / (10.0 + cfg.antigen_half_cells)
    t, tau, n = 48.0, cfg.expansion_h, 100
    q_in = cfg.blood_loss_per_h / cfg.capture_half_cells
    k = cfg.blood_loss_per_h + q_in * n
    a = k - 1.0 / tau
    exact_p = r * tau * (1.0 - math.exp(-t / tau))
    exact_b = r / k * (1.0 - math.exp(-k * t)) - r / a * (math.exp(-t / tau) - math.exp(-k * t))
    exact_in = q_in * n * r * (t / k - (1.0 - math.exp(-k * t)) / k**2
                               - (tau * (1.0 - math.exp(-t / tau))
                                  - (1.0 - math.exp(-k * t)) / k) / a)
    for i, exact in enumerate((exact_p, exact_b, exact_in)):
        errors = [abs(run(dt, cfg)[i] - exact) for dt in (0.4, 0.2, 0.1)]
        assert errors[0] > errors[1] > errors[2]
        assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.1)  # first order
        assert run(0.1, cfg)[i] == pytest.approx(exact, rel=0.01)


def test_circulating_cells_are_conserved_and_never_negative():
    """What leaves the node in a step enters the blood; what leaves the blood is lost or enters
    the tumour (backward Euler keeps the balance to rounding), and a huge step stays >= 0."""
    cfg = PrimingConfig(enabled=True)
    p = Priming(cfg)
    left = entered = lost = 0.0
    for i in range(500):
        b0 = p.circulating
        burden = 50 + 40 * i
        arrived = p.step(0.5, 3.0, 0.5 if i % 7 == 0 else 0.0, burden)
        left += 0.5 * p.expanding / cfg.expansion_h
        lost += 0.5 * cfg.blood_loss_per_h * p.circulating
        entered += arrived
        assert arrived == pytest.approx(
            0.5 * cfg.blood_loss_per_h / cfg.capture_half_cells * burden * p.circulating,
            rel=1e-12)
        assert p.circulating >= 0.0 and b0 >= 0.0
    assert left == pytest.approx(entered + lost + p.circulating, rel=1e-9)
    assert entered > 0 and lost > 0  # both outlets used
    q = Priming(cfg)
    q.step(1.0, 500.0, 500.0, 10)
    assert q.step(1e6, 0.0, 0.0, 10**7) >= 0.0 and q.circulating >= 0.0


def test_influx_scales_with_the_tumour_and_saturates():
    """At a steady node output the tumour takes N / (N + capture_half_cells) of the circulating
    primed cells: in proportion to N for a small colony, nearly all of them for a large
    tumour (QSP-IO: entry in proportion to tumour volume)."""
    cfg = PrimingConfig(enabled=True)
    n50 = cfg.capture_half_cells

    def steady_rate(burden):
        p = Priming(cfg)
        p.step(1.0, 400.0, 0.0, burden)  # antigen, then no more deaths
        for _ in range(3000):  # far past tau and 1 / k_out; antigen barely decays
            rate = p.step(1.0, 0.0, 0.0, burden)
        out = p.expanding / cfg.expansion_h  # cells leaving the node per hour
        return rate, out

    for burden in (20, 40, 200, 2 * n50, 50 * n50):
        rate, out = steady_rate(burden)
        assert rate == pytest.approx(out * burden / (burden + n50), rel=0.02)
    small = [steady_rate(b)[0] for b in (20, 40, 80)]
    assert small[1] / small[0] == pytest.approx(2.0, rel=0.02)  # proportional at small N
    assert small[2] / small[0] == pytest.approx(4.0, rel=0.02)
    large = [steady_rate(b)[0] for b in (50 * n50, 100 * n50)]
    assert large[1] / large[0] == pytest.approx(1.0, abs=0.03)  # saturates at large N
    assert large[0] > 100 * small[0]


def test_immunogenic_deaths_prime_more_than_silent_ones():
    """The same deaths prime more T cells when they are immunogenic."""
    cfg = PrimingConfig(enabled=True)
    out = []
    for share in (0.0, 1.0):
        p = Priming(cfg)
        arrived = sum(p.step(0.1, 2.0 if i < 50 else 0.0, 2.0 * share if i < 50 else 0.0, 500)
                      for i in range(960))
        out.append(arrived)
    assert out[1] > 1.5 * out[0] > 0  # maturation c/(1+c): 1/2 at baseline, near 1 with ICD


# --------------------------------------------------------------------------- in the model
def test_doxorubicin_deaths_are_immunogenic_and_raise_priming():
    out = {}
    for share in (1.0, 0.0):
        # the human PK set keeps the drug in plasma long enough for a day's deaths to count, and
        # exchanging the total plasma drug (not its unbound quarter) gives enough of them
        sc = load_scenario(PRIMING, [DOX_EARLY, f"agents.doxorubicin.immunogenic={share}",
                                     "subject.species=human",
                                     "agents.doxorubicin.plasma_unbound_fraction=1.0"])
        m = TMEModel(sc, **{"time.duration_h": 24.0, "domain.shape": [60, 60], "seed": 3})
        while m.running:
            m.step()
        out[share] = m.metrics()
    on, off = out[1.0], out[0.0]
    # the cell phase is the same (nothing primed has arrived yet), only the marks differ
    assert on["cancer_deaths"] == off["cancer_deaths"] > 5
    assert off["immunogenic_deaths"] == 0.0
    # (the others: deaths at division, natural apoptosis, necrotic lysis)
    assert 2.0 < on["immunogenic_deaths"] < on["cancer_deaths"]
    assert on["priming_danger"] > 100 * off["priming_danger"]
    assert on["primed_tcells"] > 1.5 * off["primed_tcells"] > 0


def test_node_is_the_default_and_the_burden_rule_stays_available():
    sc = load_scenario("scenarios/baseline.yaml")
    assert sc.cells.tcell.priming.enabled
    m = TMEModel(sc, **{"time.duration_h": 0.2, "domain.shape": [40, 40]})
    assert m.dynamics.priming is not None and "circulating_tcells" in m.metric_units()
    m = TMEModel(sc, **{"time.duration_h": 0.2, "domain.shape": [40, 40],
                        "cells.tcell.priming.enabled": False})
    assert m.dynamics.priming is None and "primed_tcells" not in m.metric_units()


def test_seeded_stem_colony_survives_the_default_node():
    """A colony seeded from one stem-like cell on a small patch is not cleared by the T cells
    the node sends it: they enter in proportion to its size (with the entry of a large
    metastasis, an earlier absolute rate, it was cleared by 500 h)."""
    from test_biology import small_ca

    kw = small_ca(1, 0, 500, **{"seed": 0, "cells.tumor.max_divisions": 4})
    del kw["cells.tcell.priming.enabled"]  # the default node, arrivals on the domain edge
    m = TMEModel(**kw)
    assert m.dynamics.priming is not None
    curve, arrived = [], 0
    while m.running:
        m.step()
        arrived += m.events["arrivals"]
        c = m.population_counts()
        curve.append(c["tumor"] + c["stem"])
    assert curve[-1] > 200 and curve[-1] > curve[125]  # still growing at 500 h
    assert arrived > 0  # not vacuous: the node sent T cells


# --------------------------------------------------------------------------- CXCL9/10
def test_cxcl10_is_released_where_ifng_is():
    """Induced release: no IFN-gamma, no CXCL10; with IFN-gamma around engaged T cells, CXCL10
    appears and T cells climb it."""
    m = TMEModel(load_scenario(PRIMING), **{"time.duration_h": 0.5, "domain.shape": [40, 40],
                                           "cells.tcell.initial.count": 0})
    while m.running:
        m.step()
    assert m.fields["ifng"].max() == 0.0 and m.fields["cxcl10"].max() == 0.0
    m = TMEModel(load_scenario(PRIMING), **{"time.duration_h": 6.0, "domain.shape": [40, 40],
                                           "cells.tcell.initial.count": 40,
                                           "cells.tumor.initial.count": 200})
    while m.running:
        m.step()
    assert m.fields["ifng"].max() > 0.0 and m.fields["cxcl10"].max() > 0.0


def test_chemotaxis_field_must_exist_and_its_removal_is_announced(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("cells:\n  tcell:\n    chemotaxis_field: cxcl9\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    assert e.value.key == "cells.tcell.chemotaxis_field"
    g = tmp_path / "induced.yaml"
    g.write_text("cells:\n  tumor:\n    secretion:\n      chemokine: {release_per_min: 1.0, "
                 "induced_by: ifnγ}\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(g)
    assert e.value.key == "cells.tumor.secretion.chemokine.induced_by"
    h = tmp_path / "no_cxcl10.yaml"
    h.write_text(f"extends: {PRIMING_ABS}\nfields:\n  cxcl10: null\n")
    with pytest.warns(UserWarning, match="T-cell chemotaxis up CXCL9/10"):
        m = TMEModel(load_scenario(h), **{"time.duration_h": 0.2, "domain.shape": [40, 40]})
    from tmesim.kernels import immune as ki

    assert m.dynamics.t_par[ki.T_CHEMOTAXIS_BIAS] == 0.0


PRIMING_ABS = str(__import__("pathlib").Path(__file__).resolve().parents[1] / PRIMING)


def test_priming_run_is_bit_identical_on_one_and_two_threads(tmp_path):
    """Priming, CXCL10 and immunogenic doxorubicin on a small patch: the same file on 1 and 2
    threads."""
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads{threads}.h5"
        r = run_cli("run", PRIMING, "-o", out, "-q", "--set", "time.duration_h=36",
                    "--set", "domain.shape=[50,50]", "--set", DOX_EARLY,
                    "--set", "subject.species=human",  # a day of drug, so that some die of it
                    "--set", "agents.doxorubicin.plasma_unbound_fraction=1.0",  # and enough of it
                    # a node that sends a small tumour T cells within 36 h
                    "--set", "cells.tcell.priming.max_primed_per_h=2000",
                    "--set", "cells.tcell.priming.capture_half_cells=100",
                    env={"NUMBA_NUM_THREADS": threads})
        assert r.returncode == 0, r.stderr
        outs.append(out)
    with load(outs[0]) as res:
        assert res.metrics["immunogenic_deaths"][-1] > 0
        assert res.counts["tcell"][-1] > 0  # primed arrivals
    assert_identical(outs[0], outs[1])


# --------------------------------------------------------------------------- MDSCs in the node
def test_mdsc_suppression_of_priming_has_its_closed_form():
    """S = 1 / (1 + rho / rho50), rho = MDSCs per live cancer cell (at least one cancer cell);
    exactly 1 without MDSCs; it scales the drive, so one step from an empty node expands S
    times as many cells."""
    cfg = PrimingConfig(enabled=True, mdsc_half_per_cancer_cell=0.05)
    p = Priming(cfg)
    assert p.suppression(0, 0) == 1.0 and p.suppression(0, 500) == 1.0
    assert p.suppression(50, 1000) == pytest.approx(0.5, rel=1e-15)
    assert p.suppression(300, 1000) == pytest.approx(1.0 / 7.0, rel=1e-15)
    assert p.suppression(3, 0) == pytest.approx(1.0 / (1.0 + 3.0 / 0.05), rel=1e-15)  # N >= 1
    assert p.suppression(10, 1000) > p.suppression(20, 1000) > p.suppression(40, 1000) > 0.0
    free, held = Priming(cfg), Priming(cfg)
    free.step(0.1, 50.0, 0.0, 1000)
    held.step(0.1, 50.0, 0.0, 1000, mdscs=300)
    assert free.expanding > 0.0 and free.metrics()["priming_mdsc_factor"] == 1.0
    assert held.metrics()["priming_mdsc_factor"] == pytest.approx(1.0 / 7.0, rel=1e-15)
    assert held.expanding == pytest.approx(free.expanding / 7.0, rel=1e-12)
    # with no MDSCs the step is the one without the argument, bit for bit
    again = Priming(cfg)
    again.step(0.1, 50.0, 0.0, 1000, mdscs=0)
    assert again.expanding == free.expanding and again.circulating == free.circulating


def test_mdscs_in_the_tissue_lower_priming_and_their_removal_restores_it(tmp_path):
    """Placed MDSCs (long-lived, still) lower the node's output; the same run without them (as
    after depletion) primes more, and its factor is exactly 1 at every record."""
    common = ["-q", "--set", "time.duration_h=36", "--set", "time.record_every_h=6",
              "--set", "domain.shape=[50,50]", "--set", DOX_EARLY,
              "--set", "subject.species=human",
              "--set", "agents.doxorubicin.plasma_unbound_fraction=1.0",
              "--set", "cells.tcell.priming.max_primed_per_h=2000",
              "--set", "cells.tcell.priming.capture_half_cells=100"]
    mdsc = ["--set", "cells.mdsc.initial.placement=random", "--set", "cells.mdsc.lifespan_h=1e4",
            "--set", "cells.mdsc.chemotaxis_bias=0"]
    outs = {}
    for name, count in (("with", 60), ("depleted", 0)):
        out = tmp_path / f"{name}.h5"
        r = run_cli("run", PRIMING, "-o", out, *common, *mdsc,
                    "--set", f"cells.mdsc.initial.count={count}")
        assert r.returncode == 0, r.stderr
        outs[name] = out
    with load(outs["with"]) as a, load(outs["depleted"]) as b:
        fa, fb = a.metrics["priming_mdsc_factor"], b.metrics["priming_mdsc_factor"]
        assert np.all(fb == 1.0)
        assert a.counts["mdsc"][-1] > 0 and np.all(fa[1:] < 1.0) and np.all(fa > 0.0)
        assert b.metrics["cancer_deaths"][-1] > 0  # something to prime on
        pa, pb = a.metrics["primed_tcells"][-1], b.metrics["primed_tcells"][-1]
        assert pb > 1.2 * pa > 0.0, (pa, pb)


# --------------------------------------------------------------------------- arrivals ledger
def test_arrivals_are_booked_placed_or_lost_and_free_entry_sites_counted():
    """Every drawn arrival is booked as placed on a free entry site or lost because the sites
    it tried were taken (biology.md §5.2): on a small plain patch whose edge sites (the entry
    sites) fill within the first hour, the placed T cells are exactly the live ones (no death,
    no division without cancer cells), placed plus lost is the Poisson total, and
    ``free_entry_sites`` is the number of edge sites without a cell."""
    rate, hours, side = 200.0, 3.0, 12
    m = TMEModel(**{
        "domain.shape": [side, side], "time.duration_h": hours, "time.record_every_h": hours,
        "cells.tumor.initial.count": 0, "cells.stem.initial.count": 0,
        "cells.macrophage.initial.count": 0, "cells.fibroblast.initial.count": 0,
        "cells.macrophage.recruitment.per_site_per_h": 0.0,
        "cells.tcell.priming.enabled": False,
        "cells.tcell.recruitment.per_1000_tumor_per_h": 0.0,
        "cells.tcell.recruitment.base_per_h": rate, "cells.tcell.lifespan_h": 1e9,
    })
    edge = np.zeros((side, side), dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    placed_events = 0
    while m.running:
        m.step()
        placed_events += m.events["arrivals"]
        got = m.metrics()
        n = m.cells.n
        taken = np.zeros(side * side, dtype=bool)
        taken[m.cells.site[:n]] = True
        assert got["free_entry_sites"] == np.sum(edge.reshape(-1) & ~taken)
    got = m.metrics()
    assert got["tcell_arrivals"] == placed_events == got["tcell_count"]
    drawn = got["tcell_arrivals"] + got["tcell_arrivals_lost"]
    assert abs(drawn - rate * hours) < 5.0 * math.sqrt(rate * hours)
    assert got["tcell_arrivals_lost"] >= drawn - side * side > 0  # the patch cannot hold them
