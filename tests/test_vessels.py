"""Capillary regression inside tumour tissue (kernels/vessels.py, Simulation.remodel_vessels)."""

from __future__ import annotations

import numpy as np
import pytest

import naive_cells as naive
from tmesim import geometry as geo
from tmesim.kernels import vessels as kv
from tmesim.kernels.codes import NECROTIC, REMOVED
from tmesim.simulation import Simulation


def _lattice(shape3, rng, fill):
    """Random cells of every kind and state on a lattice: (occ, kind, state)."""
    n_sites = int(np.prod(shape3))
    n = int(fill * n_sites)
    sites = rng.choice(n_sites, size=n, replace=False)
    kind = rng.integers(0, 5, n).astype(np.int8)
    state = rng.integers(0, 3, n).astype(np.int8)
    state[rng.random(n) < 0.05] = REMOVED
    occ = np.full(n_sites, -1, np.int32)
    occ[sites] = np.arange(n, dtype=np.int32)
    occ[sites[state == REMOVED]] = -1  # removed rows are not on the lattice
    return occ, kind, state


@pytest.mark.parametrize("shape3", [(1, 9, 11), (5, 6, 7)])
def test_capillary_regression_matches_twin(shape3):
    nz, ny, nx = shape3
    rng = np.random.default_rng([15, *shape3])
    n_sites = nz * ny * nx
    seen = set()
    for fill in (0.3, 0.8, 1.0):
        occ, kind, state = _lattice(shape3, rng, fill)
        sites = np.sort(rng.choice(n_sites, size=n_sites // 3, replace=False)).astype(np.int64)
        for min_fraction in (0.0, 0.5, 0.75, 1.0):
            for p in (0.0, 0.4, 1.0):
                out = np.zeros(len(sites), dtype=np.bool_)
                hits = kv.capillary_regression(
                    sites, occ, kind, state, nz, ny, nx, min_fraction, p, 7, 3, out
                )
                twin = naive.capillary_regression(
                    sites, occ, kind, state, nz, ny, nx, min_fraction, p, 7, 3
                )
                assert out.tolist() == twin
                assert hits == sum(twin)
                seen.add((min_fraction, p, 0 < hits < len(sites)))
    # the comparison exercised partial regression, not only all or nothing
    assert any(partial for _, p, partial in seen if 0 < p < 1)


def test_enclosure_counts_necrotic_cancer_not_other_kinds():
    # a 3 x 3 block in 2-D: the centre has 8 neighbours
    occ = np.arange(9, dtype=np.int32)
    kind = np.zeros(9, np.int8)  # tumour everywhere
    state = np.zeros(9, np.int8)
    state[0] = NECROTIC
    assert kv.enclosed_by_cancer(4, occ, kind, state, 1, 3, 3, 1.0)
    kind[1] = 2  # a T cell on one neighbour: 7 of 8
    assert not kv.enclosed_by_cancer(4, occ, kind, state, 1, 3, 3, 1.0)
    assert kv.enclosed_by_cancer(4, occ, kind, state, 1, 3, 3, 0.75)


LUNG = {
    "domain.geometry": "lung",
    "domain.shape": [40, 40],
    "time.duration_h": 2.0,
    "cells.tumor.initial.count": 380,
    "cells.tumor.initial.placement": "random",
    "cells.stem.initial.count": 0,
    "cells.tcell.initial.count": 0,
    "cells.macrophage.initial.count": 0,
    "cells.fibroblast.initial.count": 0,
}


def test_regressed_capillaries_stop_being_perfused():
    kept = Simulation(**LUNG)
    sim = Simulation(**LUNG, **{"vessels.regression_per_h": 1e4,
                                "vessels.regression_cancer_fraction": 0.75})
    before = np.flatnonzero(sim.tissue.codes.reshape(-1) == geo.CAPILLARY)
    assert len(before)
    for _ in range(9):  # checked once per simulated hour: nothing before the 10th 6-min step
        sim.step()
        kept.step()
        assert np.array_equal(np.flatnonzero(sim.tissue.codes.reshape(-1) == geo.CAPILLARY), before)
    sim.step()
    kept.step()
    after = np.flatnonzero(sim.tissue.codes.reshape(-1) == geo.CAPILLARY)
    gone = np.setdiff1d(before, after)
    assert 0 < len(gone) < len(before)
    # nothing regresses with the default hazard of 0
    assert np.array_equal(np.flatnonzero(kept.tissue.codes.reshape(-1) == geo.CAPILLARY), before)
    perfused = np.flatnonzero(np.isin(sim.tissue.codes.reshape(-1), geo.PERFUSED))
    assert not np.isin(gone, sim.dynamics.entry_sites).any()
    assert np.array_equal(sim.dynamics.entry_sites, perfused)
    assert np.array_equal(np.flatnonzero(sim.tissue.perfused), perfused)
    assert not sim.tissue.capillaries[gone].any()
    assert np.array_equal(sim.therapy.perfused_sites, perfused)
    # oxygen is no longer held at the vessel value in the regressed voxels
    o2 = sim.fields.index["oxygen"]
    held, _ = sim.fields._fixed[o2]
    assert np.array_equal(np.sort(held), perfused)
    sim.step()
    o2_map = sim.fields.flat("oxygen")
    assert o2_map[gone].max() < sim.scenario.fields["oxygen"].vessel_value


def test_regression_does_not_depend_on_thread_count():
    import numba

    def run():
        sim = Simulation(**{**LUNG, "time.duration_h": 3.0}, **{
            "vessels.regression_per_h": 0.5, "vessels.regression_cancer_fraction": 0.75})
        while sim.running:
            sim.step()
        return sim.tissue.codes.copy(), sim.fields.data.copy()

    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        t1, f1 = run()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        t2, f2 = run()
    finally:
        numba.set_num_threads(old)
    assert (t1 == geo.TISSUE).sum() > (Simulation(**LUNG).tissue.codes == geo.TISSUE).sum()
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(f1, f2)
