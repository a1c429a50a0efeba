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

    def effectors(dt, t_end=48.0):
        q = Priming(cfg)
        q.step(dt, 10.0, 0.0, 100)  # 10 silent deaths at t = 0: antigen 10, danger c0
        arrived = 0.0
        for _ in range(round(t_end / dt) - 1):
            arrived += q.step(dt, 0.0, 0.0, 100)
        return q.effectors, arrived

    # exact, for an antigen far below its half-effect (antigen_loss 0: a constant drive):
    # dE/dt = R h A0 / (A0 + A50) - E / tau, E(0) = 0
    cfg = PrimingConfig(enabled=True, antigen_loss_per_h=1e-12)
    h = cfg.danger_baseline / (1 + cfg.danger_baseline)
    r = cfg.max_primed_per_h * h * 10.0 / (10.0 + cfg.antigen_half_cells)
    t, tau = 48.0, cfg.expansion_h
    exact = r * tau * (1.0 - math.exp(-t / tau))
    errors = [abs(effectors(dt)[0] - exact) for dt in (0.4, 0.2, 0.1)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.1)  # first order
    assert effectors(0.1)[0] == pytest.approx(exact, rel=0.01)


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


def test_burden_rule_stays_the_default():
    sc = load_scenario("scenarios/baseline.yaml")
    assert not sc.cells.tcell.priming.enabled
    assert sc.cells.tcell.chemotaxis_field == "chemokine"
    m = TMEModel(sc, **{"time.duration_h": 0.2, "domain.shape": [40, 40]})
    assert m.dynamics.priming is None and "primed_tcells" not in m.metric_units()


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
                    env={"NUMBA_NUM_THREADS": threads})
        assert r.returncode == 0, r.stderr
        outs.append(out)
    with load(outs[0]) as res:
        assert res.metrics["immunogenic_deaths"][-1] > 0
        assert res.counts["tcell"][-1] > 0  # primed arrivals
    assert_identical(outs[0], outs[1])
