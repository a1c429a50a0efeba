"""Small cells on a layer of their own (``domain.small_cells_share_sites``, docs/biology.md
§4.10): with the option on a T cell may arrive on, move onto and divide into a site that a
cancer cell holds, and with it off it may not; both occupancy maps stay the inverse of the
cells' sites through deaths and compaction; a run is the same at any thread count."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from conftest import as_the_model_calls
from test_cells_kernels import T_PAR
from tmesim import kinds
from tmesim.cells import CellPopulation
from tmesim.kernels import agents as ka
from tmesim.kernels import codes, layout
from tmesim.kernels import immune as ki
from tmesim.scenario import load_scenario
from tmesim.simulation import Simulation

TINY = "scenarios/tiny.yaml"
#: the kernels, called with plain tuples as the model calls them (conftest.as_the_model_calls)
tcell_decide = as_the_model_calls(ki.tcell_decide)
apply_actions = as_the_model_calls(ka.apply_actions)


def test_only_t_cells_are_small_and_only_when_sites_are_shared():
    assert kinds.small(False) == ()
    assert kinds.small(True) == (codes.TCELL,)
    assert load_scenario(None).domain.small_cells_share_sites is False


def check_layers(cells):
    """``occ`` holds exactly the live large cells and ``small`` exactly the live small ones
    (every cell in ``occ`` when sites are not shared), each at its site."""
    n = cells.n
    live = np.flatnonzero(cells.state[:n] != codes.REMOVED)
    on_small = live[np.isin(cells.kind[live], cells.small_kinds)]
    large = np.setdiff1d(live, on_small)
    assert np.all(cells.occ[cells.site[large]] == large)
    assert np.count_nonzero(cells.occ >= 0) == len(large)
    if cells.small_kinds:
        assert np.all(cells.small[cells.site[on_small]] == on_small)
        assert np.count_nonzero(cells.small >= 0) == len(on_small)
    else:
        assert len(cells.small) == 1 and cells.small[0] == -1


# --------------------------------------------------------------------------- arrivals
@pytest.mark.parametrize("share", [False, True], ids=["off", "on"])
def test_t_cells_arrive_on_entry_sites_held_by_cancer_cells_only_when_sharing(share):
    m = Simulation(**{
        "domain.shape": [12, 12], "cells.tumor.initial.count": 0,
        "cells.stem.initial.count": 0, "cells.tcell.priming.enabled": False,
        "cells.tcell.recruitment.base_per_h": 400.0,
        "cells.tcell.recruitment.per_1000_tumor_per_h": 0.0,
        "domain.small_cells_share_sites": share,
    })
    dyn, cells = m.dynamics, m.cells
    assert cells.n == 0
    cells.add(codes.TUMOR, dyn.entry_sites, 10)  # every entry site holds a cancer cell
    placed = dyn._recruit(0.1, 0, 3, 0)
    t = np.flatnonzero(cells.kind[: cells.n] == codes.TCELL)
    assert placed == len(t)
    if not share:
        assert placed == 0 and dyn.arrivals_lost[codes.TCELL] > 0
    else:
        assert placed > 0
        assert np.all(cells.kind[cells.occ[cells.site[t]]] == codes.TUMOR)  # stacked
    check_layers(cells)


# --------------------------------------------------------------------------- moves, divisions
def surrounded_t_cell(share, exhausted):
    """A T cell in the middle of a 5 x 5 patch whose every other site holds a tumour cell."""
    pop = CellPopulation((1, 5, 5), capacity=64, share=share)
    centre = 12
    pop.add(codes.TUMOR, np.array([s for s in range(25) if s != centre]), 5)
    pop.add(codes.TCELL, np.array([centre]), 3)
    t = pop.n - 1
    pop.column("id")[:pop.n] = np.arange(pop.n) + 100
    if exhausted:
        pop.state[t] = codes.QUIESCENT
    return pop, t


def t_params(share, kill=0.0, division=0.0):
    p = T_PAR.copy()
    p[ki.T_KILL_RATE] = kill
    p[ki.T_DIVISION_RATE] = division
    p[ki.T_LIFESPAN] = p[ki.T_EXHAUSTED_LIFESPAN] = 0.0  # no deaths
    p[ki.T_EXHAUSTION_H] = 0.0  # never exhausted
    p[ki.T_SHARES_SITE] = 1.0 if share else 0.0
    return p


def t_cell_steps(pop, par, n_steps=30):
    """Decide and apply the T cells of ``pop`` for ``n_steps`` steps (the tumour cells stay);
    returns the actions the T cells chose."""
    shape = np.array(pop.shape3, np.int64)
    lattice = ka.Lattice(shape, np.zeros(1, bool))
    n_sites = pop.n_sites
    zero = np.zeros(n_sites)
    fields = np.zeros((1, n_sites))
    rules = np.zeros((0, 6))
    acts = []
    for step in range(n_steps):
        pop.reserve(2 * pop.n + 1)
        cap = pop.kind.shape[0]
        intents = ka.Intents(np.zeros(cap, np.int8), np.zeros(cap, np.int64),
                             np.zeros(cap, np.int8), np.zeros(cap, np.int32))
        cells = pop.arrays()
        n = pop.n
        tcell_decide(n, cells, lattice, zero, zero, zero, zero, fields, par, rules,
                     ka.StepKeys(0.5, 11, step), intents)
        acts += list(intents.action[:n][pop.kind[:n] == codes.TCELL])
        m, next_id, _ = apply_actions(n, intents, cells, lattice, ka.StepKeys(0.5, 11, step),
                                      pop.next_id, np.zeros(codes.N_KINDS, np.int64),
                                      np.zeros((ka.PUSH_WORK_ROWS, 1), np.int64),
                                      np.zeros(0, np.int64))
        pop.n, pop.next_id = int(m), int(next_id)
        pop.compact()
        check_layers(pop)
    return acts


@pytest.mark.parametrize("share", [False, True], ids=["off", "on"])
def test_an_exhausted_t_cell_walks_onto_cancer_cells_only_when_sharing(share):
    """An exhausted T cell only migrates: boxed in by cancer cells it stays put with one cell
    per site, and walks among them when T cells share sites."""
    pop, t = surrounded_t_cell(share, exhausted=True)
    start = int(pop.site[t])
    acts = t_cell_steps(pop, t_params(share))
    t_now = np.flatnonzero(pop.kind[: pop.n] == codes.TCELL)
    assert len(t_now) == 1
    if share:
        assert ka.MOVE in acts
        assert pop.site[t_now[0]] != start
        assert pop.kind[pop.occ[pop.site[t_now[0]]]] == codes.TUMOR
    else:
        assert ka.MOVE not in acts and pop.site[t_now[0]] == start


@pytest.mark.parametrize("share", [False, True], ids=["off", "on"])
def test_an_engaged_t_cell_divides_among_cancer_cells_only_when_sharing(share):
    """An engaged T cell with no free neighbour never divides with one cell per site; sharing
    sites, its daughters take sites that cancer cells hold (and it engages the cancer cell on
    its own site as well as its neighbours)."""
    pop, _ = surrounded_t_cell(share, exhausted=False)
    acts = t_cell_steps(pop, t_params(share, division=2.0), n_steps=12)
    t_now = np.flatnonzero(pop.kind[: pop.n] == codes.TCELL)
    assert np.all(pop.column("aux")[t_now] == 1.0)  # engaged
    if share:
        assert ka.DIVIDE in acts and len(t_now) > 1
        away = pop.site[t_now][pop.site[t_now] != 12]  # the daughters' sites, off the centre
        assert len(away) > 0 and np.all(pop.occ[away] >= 0)  # each holds a cancer cell too
    else:
        assert ka.DIVIDE not in acts and len(t_now) == 1


def test_a_t_cell_kills_the_cancer_cell_on_its_own_site():
    """A T cell alone with one cancer cell, on the same site, engages and kills it; then only
    the T cell is left, on the small layer."""
    pop = CellPopulation((1, 5, 5), capacity=16, share=True)
    pop.add(codes.TUMOR, np.array([12]), 5)
    pop.add(codes.TCELL, np.array([12]), 3)
    pop.column("id")[:2] = (100, 101)
    acts = t_cell_steps(pop, t_params(True, kill=5.0), n_steps=6)
    assert ka.KILL in acts
    assert pop.counts()[codes.TUMOR].sum() == 0
    assert pop.n == 1 and np.all(pop.occ == -1) and pop.small[pop.site[0]] == 0


# --------------------------------------------------------------------------- the whole model
def tiny_sharing(**kw):
    """The tiny lung with sites shared, many T cells arriving and dying fast, cancer cells
    killed by them (deaths on both layers, compaction every step)."""
    return {
        "domain.small_cells_share_sites": True, "cells.tcell.priming.enabled": False,
        "cells.tcell.recruitment.base_per_h": 60.0, "cells.tcell.lifespan_h": 3.0,
        "cells.tcell.kill_rate_per_h": 3.0, "cells.tcell.division_h": 2.0,
        "cells.tumor.initial.count": 120, **kw,
    }


def test_both_maps_stay_consistent_through_deaths_arrivals_and_compaction():
    m = Simulation(load_scenario(TINY), **tiny_sharing())
    t_deaths = stacked = 0
    for _ in range(40):
        before = set(m.cells.column("id")[: m.cells.n][m.cells.kind[: m.cells.n] == codes.TCELL])
        m.step()
        cells = m.cells
        check_layers(cells)
        t = cells.kind[: cells.n] == codes.TCELL
        t_deaths += len(before - set(cells.column("id")[: cells.n][t]))
        stacked += int(np.count_nonzero(cells.occ[cells.site[: cells.n][t]] >= 0))
    assert t_deaths > 0 and stacked > 0


def test_a_run_with_shared_sites_does_not_depend_on_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    threads = numba.get_num_threads()
    out = []
    try:
        for nt in (1, 2):
            numba.set_num_threads(nt)
            m = Simulation(load_scenario(TINY), **tiny_sharing())
            for _ in range(30):
                m.step()
            out.append((m.cells.snapshot(), m.fields.data.copy(), m.metrics()))
    finally:
        numba.set_num_threads(threads)
    (a, fa, ma), (b, fb, mb) = out
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(fa, fb)
    assert ma.keys() == mb.keys()
    for k in ma:
        np.testing.assert_array_equal(ma[k], mb[k], err_msg=k)
    assert np.any(a["kind"] == codes.TCELL)


def test_layer_of_a_kind():
    shared = CellPopulation((1, 3, 3), share=True)
    single = CellPopulation((1, 3, 3))
    assert shared.layer(codes.TCELL) is shared.small
    assert shared.layer(codes.TUMOR) is shared.occ
    assert single.layer(codes.TCELL) is single.occ
    assert len(single.arrays()[layout.SMALL]) == 1


def test_exchange_maps_of_shared_sites_add_both_cells_of_a_voxel():
    """With shared sites the maps are made layer by layer; they equal the twin's, which adds
    every live cell's terms into its voxel row by row."""
    import naive_cells

    m = Simulation(load_scenario(TINY), **tiny_sharing())
    for _ in range(10):
        m.step()
    cells, dyn = m.cells, m.dynamics
    n_t = cells.kind[: cells.n] == codes.TCELL
    assert np.any(cells.occ[cells.site[: cells.n][n_t]] >= 0)  # some voxels hold two cells
    nf = len(m.fields.names)
    sink, source = np.full((2, nf, cells.n_sites), np.nan)
    dyn.exchange_maps(sink, source)
    t_sink, t_source = np.zeros((2, nf, cells.n_sites))
    naive_cells.exchange_maps(cells.n, cells.kind, cells.state, cells.site,
                              cells.column("phenotype"), cells.column("aux"), dyn.exchange_tables,
                              m.fields.data.reshape(nf, -1), t_sink, t_source)
    np.testing.assert_allclose(sink, t_sink, rtol=1e-12, atol=0)
    np.testing.assert_allclose(source, t_source, rtol=1e-12, atol=0)
