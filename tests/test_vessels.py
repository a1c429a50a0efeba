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


# ----------------------------------------------------------------------------- angiogenesis
@pytest.mark.parametrize("shape3", [(1, 12, 13), (5, 6, 7)])
def test_sprout_targets_match_twin(shape3):
    nz, ny, nx = shape3
    rng = np.random.default_rng([16, *shape3])
    n_sites = nz * ny * nx
    formed = 0
    for density in (0.05, 0.15, 0.4):
        perfused = rng.random(n_sites) < density
        open_ = rng.random(n_sites) < 0.85
        vegf = rng.random(n_sites) * 4.0
        vegf[rng.random(n_sites) < 0.2] = 0.0
        vegf[rng.random(n_sites) < 0.1] = 1.5  # ties between candidates
        sites = np.flatnonzero(perfused).astype(np.int64)
        for p_max, half, hill in ((1.0, 1.0, 1.0), (0.5, 2.0, 2.0), (0.0, 1.0, 2.0)):
            out = np.zeros(len(sites), dtype=np.int64)
            n = kv.sprout_targets(sites, perfused, open_, vegf, nz, ny, nx, (p_max, half, hill),
                                  11, 4, out)
            twin = naive.sprout_targets(sites, perfused, open_, vegf, nz, ny, nx, p_max, half,
                                        hill, 11, 4)
            assert out.tolist() == twin
            assert n == sum(t >= 0 for t in twin)
            formed += n
    assert formed > 0


def test_sprouts_grow_as_threads_toward_vegf():
    # one capillary at the left edge of a row; VEGF rises to the right: the sprout heads right,
    # never into a site another vessel touches
    nz, ny, nx = 1, 5, 6
    perfused = np.zeros(30, bool)
    perfused[2 * nx] = True
    vegf = np.tile(np.arange(nx, dtype=float), ny)
    vegf[1 * nx + 0] = vegf[3 * nx + 0] = 0.0
    out = np.zeros(1, np.int64)
    kv.sprout_targets(np.array([2 * nx], np.int64), perfused, np.ones(30, bool), vegf, nz, ny, nx,
                      (1.0, 1e-9, 1.0), 1, 0, out)
    assert out[0] == 2 * nx + 1
    # a site beside a second vessel is not a candidate
    perfused[1 * nx + 2] = True
    kv.sprout_targets(np.array([2 * nx], np.int64), perfused, np.ones(30, bool), vegf, nz, ny, nx,
                      (1.0, 1e-9, 1.0), 1, 0, out)
    assert out[0] == -1


def test_vegf_withdrawal_and_vessel_traits_match_twins():
    rng = np.random.default_rng(17)
    sites = np.sort(rng.choice(400, 120, replace=False)).astype(np.int64)
    vegf = rng.random(400) * 2.0
    out = np.zeros(len(sites), np.bool_)
    n = kv.vegf_withdrawal(sites, vegf, 1.0, 0.5, 3, 9, out)
    twin = naive.vegf_withdrawal(sites, vegf, 1.0, 0.5, 3, 9)
    assert out.tolist() == twin and 0 < n < len(sites)
    assert not any(out[vegf[sites] >= 1.0])
    leak, perf = np.zeros(len(sites)), np.zeros(len(sites))
    kv.vessel_traits(sites, 0.5, 3, 9, leak, perf)
    twin_leak, twin_perf = naive.vessel_traits(sites, 0.5, 3, 9)
    np.testing.assert_allclose(leak, twin_leak, rtol=1e-12)
    assert perf.tolist() == twin_perf
    # log-normal with median 1 and log-sd sigma; perfusion uniform on [0, 1)
    many, pm = np.zeros(20000), np.zeros(20000)
    kv.vessel_traits(np.arange(20000, dtype=np.int64), 0.5, 3, 9, many, pm)
    assert abs(np.median(np.log(many))) < 0.02
    assert abs(np.std(np.log(many)) - 0.5) < 0.02
    assert pm.min() >= 0.0 and pm.max() < 1.0 and abs(pm.mean() - 0.5) < 0.01


VEGF = {
    "fields.vegf": {"units": "ng/mL", "diffusion_um2_per_min": 6240.0, "decay_per_min": 0.0206,
                    "initial": 0.0},
    "cells.tumor.secretion.vegf": {"release_per_min": 2.0e4},
    "vessels.sprout_speed_um_per_h": 1.0e3,
    "vessels.sprout_vegf_half_ng_per_mL": 0.5,
}


def test_angiogenesis_adds_leaky_perfused_vessels_and_withdrawal_removes_them():
    import numba

    def run(threads, **extra):
        old = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            sim = Simulation(**{**LUNG, "time.duration_h": 3.0}, **VEGF, **extra)
            while sim.running:
                sim.step()
        finally:
            numba.set_num_threads(old)
        return sim

    base = Simulation(**LUNG)
    sim = run(1)
    t = sim.tissue
    new = np.flatnonzero(t.angiogenic)
    assert len(new) > 0
    assert t.perfused[new].all() and t.capillaries[new].all()
    assert not t.lumen[new].any()
    assert not base.tissue.perfused.reshape(-1)[new].any()  # formed during the run
    assert sim.metrics()["angiogenic_sites"] == len(new)
    assert sim.metrics()["perfused_sites"] == t.perfused.sum()
    # each new vessel shares a face with a perfused voxel (the one it grew from, or a later
    # sprout of its own)
    touching = np.zeros(len(new), bool)
    for inside, nb in t.face_neighbours(new):
        touching[inside] |= t.perfused[nb[inside]]
    assert touching.all()
    assert np.array_equal(sim.dynamics.entry_sites, np.flatnonzero(t.perfused))
    # the perfusion of each new vessel scales the oxygen it holds
    o2 = sim.fields.flat("oxygen")
    np.testing.assert_allclose(o2[new], 38.0 * t.perfusion[new])
    assert 0 < t.perfusion[new].min() and t.perfusion[new].max() < 1
    # bit-identical at two threads
    two = run(2)
    np.testing.assert_array_equal(two.tissue.codes, t.codes)
    np.testing.assert_array_equal(two.fields.data, sim.fields.data)
    # VEGF withdrawn (a survival level above any concentration): immature vessels regress at
    # the next check, the host capillaries stay
    v = sim.scenario.vessels.model_copy(update={
        "immature_regression_per_h": 1.0e4, "immature_survival_vegf_ng_per_mL": 1.0e9,
        "sprout_speed_um_per_h": 0.0})
    sim.scenario = sim.scenario.model_copy(update={"vessels": v})
    for _ in range(10):
        sim.step()
    assert not t.angiogenic.any()
    assert not t.perfused[new].any()
    assert np.array_equal(t.perfused, base.tissue.perfused)


def test_angiogenesis_without_vegf_field_warns():
    from tmesim.errors import TmesimWarning

    with pytest.warns(TmesimWarning, match="fields.vegf is not defined"):
        sim = Simulation(**LUNG, **{"vessels.sprout_speed_um_per_h": 8.0})
    while sim.running:
        sim.step()
    assert not sim.tissue.angiogenic.any()
