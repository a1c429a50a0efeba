"""Granulocytic MDSCs (docs/biology.md §6a): the decide kernel against its pure-Python twin
(tests/naive_myeloid.py) and on 1 and 2 threads; placement, arrivals drawn by CXCL1, chemotaxis,
death, counting and drawing in the model; the suppression of T-cell killing through the
TGF-beta they release; the depleting antibody (an agent of kind 'signal') acting through a rule
and never taken for the anti-PD-L1 antibody."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import naive_cells
import naive_myeloid as naive
from conftest import as_the_model_calls
from test_cells_kernels import cell_state, copy_state, work
from test_macrophages import check_arrivals_follow_signal
from test_macrophages import lung as macrophage_lung
from tmesim import TMEModel, kinds
from tmesim.io import load
from tmesim.kernels import agents as ka
from tmesim.kernels import codes, layout
from tmesim.kernels import immune as ki
from tmesim.kernels import myeloid as km
from tmesim.kernels.rules import B_DEATH, B_MIGRATION, R_NCOLS
from tmesim.runner import run
from tmesim.viz.frames import FrameRenderer, cell_categories

SHAPES = [(1, 9, 11), (1, 1, 15), (4, 5, 6), (3, 1, 5)]
#: lifespan (h), moves per hour, chemotaxis bias
PAR = np.array([3.0, 4.0, 0.6])
#: the kernel, called with plain tuples as the model calls it (conftest.as_the_model_calls)
mdsc_decide = as_the_model_calls(km.mdsc_decide)


def mdsc_state(shape3, seed, air):
    """A random population of every kind (tests/test_cells_kernels.py) with half of the
    macrophages and fibroblasts turned into MDSCs."""
    rng = np.random.default_rng([seed, *shape3, air])
    n, s, air_mask, f = cell_state(shape3, rng, air=air)
    stroma = np.flatnonzero(np.isin(s["kind"][:n], [codes.MACROPHAGE, codes.FIBROBLAST]))
    s["kind"][stroma[rng.random(len(stroma)) < 0.5]] = codes.MDSC
    return n, s, air_mask, f


def rules(on):
    """Rules on the MDSCs' death (field row 1) and migration (field row 2)."""
    if not on:
        return np.zeros((0, R_NCOLS))
    return np.array([(codes.MDSC, 1, B_DEATH, 2.0, 1.0, 1.0),
                     (codes.MDSC, 2, B_MIGRATION, 0.5, 1.0, 2.0)], dtype=float)


def decide_both(shape3, seed, air, with_rules, twin=naive.mdsc_decide, steps=4, dt=0.5):
    """Kernel and twin side by side over a few steps on the same state (decisions only, the
    state is not advanced between steps but the clocks); return the actions seen."""
    n, s, air_mask, f = mdsc_state(shape3, seed, air)
    t_s = copy_state(s)
    shape = np.array(shape3, np.int64)
    lattice = ka.Lattice(shape, air_mask)
    table = rules(with_rules)
    seen = np.zeros(5, np.int64)
    for step in range(steps):
        keys = ka.StepKeys(dt, seed, step)
        w, t_w = work(s["kind"].shape[0]), work(s["kind"].shape[0])
        arrays = ka_cells(s)
        mdsc_decide(n, arrays, lattice, f["chemo"], f["fields"], PAR, table, keys,
                    ka.Intents(w["action"], w["target"], w["dkind"], w["ddiv"]))
        twin(n, ka_cells(t_s), lattice, f["chemo"], f["fields"], PAR, table, keys,
             ka.Intents(t_w["action"], t_w["target"], t_w["dkind"], t_w["ddiv"]))
        mine = s["kind"][:n] == codes.MDSC
        np.testing.assert_array_equal(w["action"][:n][mine], t_w["action"][:n][mine])
        moved = mine & (w["action"][:n] == ka.MOVE)
        np.testing.assert_array_equal(w["target"][:n][moved], t_w["target"][:n][moved])
        np.testing.assert_array_equal(s["f32"], t_s["f32"])
        # rows of other kinds are left alone
        assert np.all(w["action"][:n][~mine] == 0)
        seen += np.bincount(w["action"][:n][mine & (s["state"][:n] != codes.REMOVED)],
                            minlength=5)
    return seen


def ka_cells(s):
    return naive_cells.cell_arrays(s)


@pytest.mark.parametrize("shape3", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("air", [False, True], ids=["tissue", "air"])
@pytest.mark.parametrize("with_rules", [False, True], ids=["plain", "rules"])
def test_mdsc_decide_matches_twin(shape3, air, with_rules):
    decide_both(shape3, 11, air, with_rules)


def test_twin_comparison_sees_deaths_moves_and_stays():
    seen = np.zeros(5, np.int64)
    for shape3 in SHAPES:
        for air in (False, True):
            seen += decide_both(shape3, 5, air, True)
    assert seen[ka.NONE] > 0 and seen[ka.MOVE] > 0 and seen[ka.DIE] > 0, seen
    assert seen[ka.DIVIDE] == 0 and seen[ka.KILL] == 0


def _no_chemotaxis(n, cells, lattice, chemo, fields, par, rules, keys, intents):
    """A wrong twin: MDSCs ignore the chemokine."""
    naive.mdsc_decide(n, cells, lattice, chemo, fields, np.array([par[0], par[1], 0.0]), rules,
                      keys, intents)


def _no_rules(n, cells, lattice, chemo, fields, par, rules, keys, intents):
    """A wrong twin: the rules do not reach the MDSCs."""
    naive.mdsc_decide(n, cells, lattice, chemo, fields, par, rules[:0], keys, intents)


@pytest.mark.parametrize("mutant", [_no_chemotaxis, _no_rules])
def test_twin_comparison_catches_a_wrong_rule(mutant):
    with pytest.raises(AssertionError):
        for shape3 in SHAPES:
            decide_both(shape3, 5, False, True, twin=mutant)


def test_mdsc_decide_does_not_depend_on_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    out = []
    threads = numba.get_num_threads()
    for nt in (1, 2):
        numba.set_num_threads(nt)
        try:
            n, s, air, f = mdsc_state((1, 60, 60), 3, True)
            w = work(s["kind"].shape[0])
            mdsc_decide(n, ka_cells(s), ka.Lattice(np.array((1, 60, 60), np.int64), air),
                        f["chemo"], f["fields"], PAR, rules(True), ka.StepKeys(0.5, 9, 2),
                        ka.Intents(w["action"], w["target"], w["dkind"], w["ddiv"]))
            out.append((s, w))
        finally:
            numba.set_num_threads(threads)
    for d1, d2 in zip(out[0], out[1], strict=True):
        for k in d1:
            np.testing.assert_array_equal(d1[k], d2[k], err_msg=k)


def test_mdscs_climb_the_chemokine_gradient():
    """One MDSC with bias 1 on a row whose chemokine rises to the right walks right only."""
    nx = 60  # longer than 40 moves
    s = {
        "ids": np.zeros((2, 2), np.int64), "i32": np.zeros((2, 2), np.int32),
        "f32": np.zeros((8, 2), np.float32), "kind": np.full(2, codes.MDSC, np.int8),
        "state": np.zeros(2, np.int8), "site": np.zeros(2, np.int32),
        "occ": np.full(nx, -1, np.int32),
    }
    s["ids"][layout.ID, 0] = 17
    s["site"][0], s["occ"][0] = 0, 0
    chemo = np.arange(nx, dtype=float)
    lattice = ka.Lattice(np.array((1, 1, nx), np.int64), np.zeros(1, bool))
    par = np.array([0.0, 50.0, 1.0])  # no death, a move almost every step, always up
    for step in range(40):
        w = work(2)
        mdsc_decide(1, ka_cells(s), lattice, chemo, np.zeros((1, nx)), par,
                    np.zeros((0, R_NCOLS)), ka.StepKeys(0.5, 1, step),
                    ka.Intents(w["action"], w["target"], w["dkind"], w["ddiv"]))
        if w["action"][0] == ka.MOVE:
            assert w["target"][0] == s["site"][0] + 1
            s["occ"][s["site"][0]], s["occ"][w["target"][0]] = -1, 0
            s["site"][0] = w["target"][0]
    assert s["site"][0] > 25


# --------------------------------------------------------------------------- in the model
def lung(**kw):
    """The small lung patch of tests/test_macrophages.py, with no monocyte arrivals and no MDSC
    chemotaxis (no field cxcl1) unless asked for."""
    return macrophage_lung(**{"cells.macrophage.recruitment.per_site_per_h": 0.0,
                              "cells.mdsc.chemotaxis_bias": 0.0, **kw})


def test_mdscs_are_off_by_default():
    from tmesim.scenario import load_scenario

    sc = load_scenario("scenarios/baseline.yaml")
    m = sc.cells.mdsc
    assert m.initial.count == 0 and m.recruitment.per_site_per_h == 0
    assert m.recruitment.base_per_h == 0 and m.recruitment.per_1000_tumor_per_h == 0


def test_mdscs_are_placed_move_die_counted_recorded_and_drawn(tmp_path):
    out = run("scenarios/tiny.yaml", tmp_path / "mdsc.h5", overrides=[
        "time.duration_h=24", "time.record_every_h=6", "cells.mdsc.initial.count=40",
        "cells.mdsc.initial.placement=random", "cells.mdsc.lifespan_h=12",
        "cells.mdsc.chemotaxis_bias=0"])
    with load(out) as res:
        counts = res.counts["mdsc"]
        assert counts[0] == 40
        # no arrivals, a 12 h lifespan: about 40 exp(-2) = 5.4 left after 24 h
        assert counts[-1] < 20 and np.all(np.diff(counts) <= 0), counts
        assert list(res.f["cells"].attrs["kind_codes"])[codes.MDSC] == "mdsc"
        first, last = res.cells(0), res.cells(res.n_records - 1)
        ids0 = first["id"][first["kind"] == codes.MDSC]
        ids1 = last["id"][last["kind"] == codes.MDSC]
        assert set(ids1) <= set(ids0)
        xy0 = {int(i): (x, y) for i, x, y in zip(first["id"], first["x"], first["y"], strict=True)}
        moved = sum(xy0[int(i)] != (x, y) for i, x, y in
                    zip(last["id"], last["x"], last["y"], strict=True) if int(i) in set(ids1))
        assert moved > 0
        # drawn in its own colour, with its own legend entry
        mine = last["kind"] == codes.MDSC
        labels = [label for label, _, _ in kinds.legend()]
        assert np.all(cell_categories(last)[mine] == labels.index("MDSC (granulocytic)"))
        r = FrameRenderer(res, figure=False, kinds=["mdsc"])
        assert [label for label, _ in r.legend_entries()[0]] == ["MDSC (granulocytic)"]
        img = r.cell_image(res.n_records - 1)
        drawn = img[..., 3] > 0
        assert drawn.sum() == counts[-1]
        colour = kinds.by_name("mdsc").looks[0].colour
        want = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        assert np.allclose(img[drawn][:, :3], want, atol=1e-6)


def cxcl1_lung(**kw):
    """:func:`lung` with a field cxcl1 and MDSC arrivals drawn by it."""
    return lung(**{
        "fields.cxcl1": {"units": "ng/mL", "diffusion_um2_per_min": 1800.0,
                         "decay_per_min": 0.01},
        "cells.mdsc.recruitment.signal": "cxcl1",
        "cells.mdsc.recruitment.per_site_per_h": 0.05,
        "cells.mdsc.chemotaxis_bias": 0.5,
        **kw,
    })


def test_mdscs_arrive_where_cxcl1_is_in_proportion_to_its_hill_term():
    m = TMEModel(**cxcl1_lung())
    check_arrivals_follow_signal(m, "cxcl1", codes.MDSC, 0.05,
                                 m.scenario.cells.mdsc.recruitment.signal_half, 300)


def test_without_cxcl1_the_chemotaxis_is_switched_off_and_said_to_be():
    with pytest.warns(UserWarning, match="MDSC chemotaxis"):
        m = TMEModel(**lung(**{"cells.mdsc.initial.count": 5, "cells.mdsc.chemotaxis_bias": 0.5}))
    assert m.dynamics.md_par[km.MD_CHEMOTAXIS_BIAS] == 0.0


def _kills(**kw):
    """Kills by T cells over 36 h next to a tumour cluster, same seed every call."""
    m = TMEModel(**lung(**{
        "domain.geometry": "tissue", "time.duration_h": 36.0,
        "cells.tumor.initial.count": 150, "cells.tumor.initial.placement": "center",
        "cells.tcell.initial.count": 60, "cells.tcell.initial.placement": "disc",
        "cells.tcell.initial.radius_um": 200.0, "cells.tcell.lytic_store_kills": 0.0,  # unlimited
        "cells.fibroblast.initial.count": 0, "cells.macrophage.initial.count": 0,
        # the contact-range suppression of scenarios/mdsc_targeting.yaml
        "fields.ros": {"units": "a.u.", "diffusion_um2_per_min": 1000.0, "decay_per_min": 2.5},
        "rules": [{"cell": "tcell", "signal": "ros", "direction": "decreases",
                   "behaviour": "kill_rate", "max": 0.0, "half_max": 1.0}],
        **kw,
    }))
    kills = 0
    while m.running:
        m.step()
        kills += m.events["kills"]
    return kills


def test_mdscs_near_t_cells_reduce_killing():
    """The same tumour and T cells (same seed) with no MDSCs, with MDSCs that release nothing,
    and with MDSCs that release the contact-range signal ros that the scenario's rule reads:
    only the releasing MDSCs cut the kills (MDSCs taking sites next to the tumour do not)."""
    mdsc = {"cells.mdsc.initial.count": 200, "cells.mdsc.initial.placement": "disc",
            "cells.mdsc.initial.radius_um": 240.0}
    none = _kills()
    silent = _kills(**mdsc, **{"cells.mdsc.secretion.tgfb.release_per_min": 0.0})
    loud = _kills(**mdsc, **{"cells.mdsc.secretion.ros.release_per_min": 300000.0})
    assert none > 30
    assert silent > 0.7 * none, (none, silent)
    assert loud < 0.7 * silent and loud < 0.7 * none, (none, silent, loud)


def _tcells_after_expansion(**kw):
    """T cells left after 36 h of expansion against a tumour cluster (killing off, long-lived
    T cells dividing every 6 h while engaged), under the scenario's rule on T-cell division."""
    m = TMEModel(**lung(**{
        "domain.geometry": "tissue", "time.duration_h": 36.0,
        "cells.tumor.initial.count": 150, "cells.tumor.initial.placement": "center",
        "cells.tcell.initial.count": 60, "cells.tcell.initial.placement": "disc",
        "cells.tcell.initial.radius_um": 200.0, "cells.tcell.kill_rate_per_h": 0.0,
        "cells.tcell.division_h": 6.0, "cells.tcell.lifespan_h": 1e5,
        "cells.tcell.recruitment.per_1000_tumor_per_h": 0.0,
        "cells.tcell.priming.enabled": False,
        "cells.fibroblast.initial.count": 0, "cells.macrophage.initial.count": 0,
        "fields.ros": {"units": "a.u.", "diffusion_um2_per_min": 1000.0, "decay_per_min": 2.5},
        "rules": [{"cell": "tcell", "signal": "ros", "direction": "decreases",
                   "behaviour": "division_rate", "max": 0.0, "half_max": 1.0}],
        **kw,
    }))
    while m.running:
        m.step()
    return m.population_counts()["tcell"]


def test_mdscs_near_t_cells_reduce_their_expansion():
    """As the killing test, for the rule of mdsc_targeting.yaml on T-cell division: T cells
    expand against the tumour with no MDSCs and with MDSCs that release nothing, and markedly
    less next to MDSCs that release ros."""
    mdsc = {"cells.mdsc.initial.count": 200, "cells.mdsc.initial.placement": "disc",
            "cells.mdsc.initial.radius_um": 240.0}
    none = _tcells_after_expansion() - 60
    silent = _tcells_after_expansion(**mdsc,
                                     **{"cells.mdsc.secretion.tgfb.release_per_min": 0.0}) - 60
    loud = _tcells_after_expansion(**mdsc,
                                   **{"cells.mdsc.secretion.ros.release_per_min": 300000.0}) - 60
    assert none > 30, none  # T cells gained by division
    assert silent > 0.7 * none, (none, silent)
    assert loud < 0.7 * silent and loud < 0.7 * none, (none, silent, loud)


def test_ros_release_puts_one_unit_next_to_an_mdsc():
    """The release of scenarios/mdsc_targeting.yaml gives about 1 a.u. on the sites next to a
    lone MDSC and about 3.8 on its own site (docs/biology.md §6a)."""
    m = TMEModel(**lung(**{
        "domain.geometry": "tissue", "time.duration_h": 1.0,
        "cells.fibroblast.initial.count": 0, "cells.macrophage.initial.count": 0,
        "cells.mdsc.initial.count": 1, "cells.mdsc.initial.placement": "center",
        "cells.mdsc.speed_um_per_min": 0.0, "cells.mdsc.lifespan_h": 1e6,
        "fields.ros": {"units": "a.u.", "diffusion_um2_per_min": 1000.0, "decay_per_min": 2.5},
        "cells.mdsc.secretion.ros.release_per_min": 300000.0,
    }))
    while m.running:
        m.step()
    ros = m.fields["ros"].reshape(40, 40)
    y, x = np.unravel_index(int(m.cells.site[0]), (40, 40))
    assert ros[y, x] == pytest.approx(3.8, rel=0.1)
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        assert ros[y + dy, x + dx] == pytest.approx(1.0, rel=0.1)


def test_a_signal_agent_acts_only_through_its_rule_and_is_not_anti_pdl1():
    """anti_ly6g (kind 'signal') dosed with a rule on the MDSCs' death: they are depleted;
    dosed without the rule: nothing happens to them; and the T cells' antibody stays
    anti_pdl1 (not dosed here, so its affinity is off)."""
    agent = {"kind": "signal", "units": "nM", "molar_mass_g_per_mol": 150000.0,
             "pk": {"v_central_L_per_kg": 0.05, "half_life_h": 72.0},
             "diffusion_um2_per_min": 600.0, "permeability_um_per_min": 0.056,
             "tumor_permeability_um_per_min": 0.168}
    base = {"cells.mdsc.initial.count": 60, "cells.mdsc.initial.placement": "random",
            "time.duration_h": 12.0, "agents.anti_ly6g": agent,
            "therapy": [{"agent": "anti_ly6g", "route": "iv", "dose_mg_per_kg": 10.0,
                         "start_h": 0.0}]}
    rule = [{"cell": "mdsc", "signal": "anti_ly6g", "direction": "increases",
             "behaviour": "death_rate", "max": 0.5, "half_max": 1.0}]
    left = []
    for extra in ({}, {"rules": rule}):
        m = TMEModel(**lung(**base, **extra))
        assert m.dynamics.antibody == "anti_pdl1"
        assert m.dynamics.t_par[ki.T_ANTIBODY_KD] == 0.0  # no anti-PD-L1 dosed
        while m.running:
            m.step()
        assert m.fields["anti_ly6g"].max() > 1.0
        left.append(m.population_counts()["mdsc"])
    # 12 h at the 24 h lifespan keeps about 60 exp(-0.5) = 36; the rule leaves few
    assert left[0] > 25 and left[1] < 0.5 * left[0], left


def test_mdsc_run_is_bit_identical_on_one_and_two_threads(tmp_path):
    """MDSCs recruited by CXCL1 and suppressing through ros, as in mdsc_targeting.yaml, on a
    small lung patch: the same file on 1 and 2 threads."""
    from conftest import run_cli
    from test_io import assert_identical

    cxcl1 = "{units: ng/mL, diffusion_um2_per_min: 1800.0, decay_per_min: 0.01}"
    ros = "{units: a.u., diffusion_um2_per_min: 1000.0, decay_per_min: 2.5}"
    rule = ("[{cell: tcell, signal: ros, direction: decreases, behaviour: kill_rate, max: 0.0, "
            "half_max: 1.0}, {cell: tcell, signal: ros, direction: decreases, "
            "behaviour: division_rate, max: 0.0, half_max: 1.0}]")
    sets = [f"fields.cxcl1={cxcl1}", f"fields.ros={ros}", f"rules={rule}",
            "cells.tumor.secretion.cxcl1={release_per_min: 1000.0}",
            "cells.mdsc.secretion.ros={release_per_min: 300000.0}",
            "cells.mdsc.recruitment={signal: cxcl1, per_site_per_h: 0.5, signal_half: 1.0}",
            "cells.mdsc.initial.count=10", "cells.tcell.initial.count=20"]
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads{threads}.h5"
        args = [a for s in sets for a in ("--set", s)]
        r = run_cli("run", "scenarios/tiny.yaml", "-o", out, "-q", *args,
                    env={"NUMBA_NUM_THREADS": threads})
        assert r.returncode == 0, r.stderr
        outs.append(out)
    with load(outs[0]) as res:
        assert res.counts["mdsc"][-1] > 10  # arrivals
    assert_identical(outs[0], outs[1])
