"""Cell kernels against their pure-Python twins (tests/naive_cells.py), bit for bit, and the
counter-based random generator's distribution and stream independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import naive_cells as naive
from tmesim.cells import CellPopulation
from tmesim.kernels import codes
from tmesim.kernels import lattice as kl
from tmesim.kernels import random as kr
from tmesim.kernels.tumor import tumor_step

# (nz, ny, nx): 2-D, 3-D, and 1-voxel-wide lattices
SHAPES = [(1, 7, 9), (1, 1, 15), (1, 12, 1), (4, 5, 6), (3, 1, 5), (5, 1, 1)]


def random_population(shape3, rng, fill=0.5):
    """A random lattice state with tumour, stem and necrotic cells; capacity for divisions."""
    n_sites = math.prod(shape3)
    n = max(1, int(fill * n_sites))
    cap = 2 * n + 1
    sites = rng.choice(n_sites, size=n, replace=False)
    a = {
        "cell_id": np.zeros(cap, np.int64),
        "parent": np.full(cap, -1, np.int64),
        "generation": np.zeros(cap, np.int32),
        "divisions_left": np.zeros(cap, np.int32),
        "clock_h": np.zeros(cap, np.float32),
        "kind": np.zeros(cap, np.int8),
        "state": np.zeros(cap, np.int8),
        "site": np.zeros(cap, np.int32),
    }
    a["cell_id"][:n] = rng.permutation(10 * n)[:n]
    a["generation"][:n] = rng.integers(0, 4, n)
    a["divisions_left"][:n] = rng.integers(0, 3, n)
    a["clock_h"][:n] = rng.uniform(0, 3, n).astype(np.float32)
    a["kind"][:n] = rng.choice([codes.TUMOR, codes.STEM], n, p=[0.7, 0.3])
    a["state"][:n] = rng.choice(
        [codes.PROLIFERATING, codes.QUIESCENT, codes.NECROTIC], n, p=[0.6, 0.2, 0.2]
    )
    a["site"][:n] = sites
    occ = np.full(n_sites, -1, np.int32)
    occ[sites] = np.arange(n, dtype=np.int32)
    a["occ"] = occ
    oxygen = rng.uniform(0.0, 20.0, n_sites)
    return n, a, oxygen


def params():
    def per_kind(tumor, stem):
        p = np.zeros(codes.N_KINDS)
        p[codes.TUMOR], p[codes.STEM] = tumor, stem
        return p

    return {
        "division_rate_per_h": per_kind(0.8, 1.2),
        "migration_rate_per_h": per_kind(1.5, 0.7),
        "death_at_division": per_kind(0.2, 0.0),
        "symmetric_division_prob": per_kind(0.0, 0.4),
        "max_divisions": np.array([4, 0, 0, 0, 0], np.int32),
        "hypoxia_mmHg": per_kind(10.0, 8.0),
        "necrosis_mmHg": per_kind(5.0, 4.0),
        "necrosis_max_mmHg": per_kind(2.5, 4.0),  # stem: equal thresholds, a step function
        "necrosis_max_per_h": per_kind(0.5, 0.3),
        "lysis_h": per_kind(3.0, 2.0),
    }


def call(fn, n, a, oxygen, shape3, p, dt_h, seed, step, next_id):
    return fn(
        n,
        a["cell_id"],
        a["parent"],
        a["generation"],
        a["divisions_left"],
        a["clock_h"],
        a["kind"],
        a["state"],
        a["site"],
        a["occ"],
        oxygen,
        np.array(shape3, np.int64),
        p["division_rate_per_h"],
        p["migration_rate_per_h"],
        p["death_at_division"],
        p["symmetric_division_prob"],
        p["max_divisions"],
        p["hypoxia_mmHg"],
        p["necrosis_mmHg"],
        p["necrosis_max_mmHg"],
        p["necrosis_max_per_h"],
        p["lysis_h"],
        dt_h,
        seed,
        step,
        next_id,
    )


def compact_dict(n, a):
    """Compact a dict-of-columns population with the kernel (used between steps)."""
    i64 = np.stack([a["cell_id"], a["parent"]])
    i32 = np.stack([a["generation"], a["divisions_left"]])
    f32 = a["clock_h"][None].copy()
    n = kl.compact(n, i64, i32, f32, a["kind"], a["state"], a["site"], a["occ"])
    a["cell_id"][:], a["parent"][:] = i64
    a["generation"][:], a["divisions_left"][:] = i32
    a["clock_h"][:] = f32[0]
    return n


def grow(n, a, cap):
    for k, v in a.items():
        if k != "occ" and len(v) < cap:
            b = np.zeros(cap, v.dtype)
            b[: len(v)] = v
            a[k] = b


@pytest.mark.parametrize("shape3", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("seed", [0, 12345])
def test_tumor_step_matches_twin(shape3, seed):
    rng = np.random.default_rng([seed, *shape3])
    n, a, oxygen = random_population(shape3, rng)
    b = {k: v.copy() for k, v in a.items()}
    p = params()
    next_a = next_b = int(a["cell_id"][:n].max()) + 1
    n_a = n_b = n
    changed = 0
    for step in range(6):
        n0 = n_a
        before = {k: v[:n_a].copy() for k, v in a.items() if k != "occ"}
        grow(n_a, a, 2 * n_a + 1)
        grow(n_b, b, 2 * n_b + 1)
        n_a, next_a = call(tumor_step, n_a, a, oxygen, shape3, p, 0.5, seed, step, next_a)
        n_b, next_b = call(naive.tumor_step, n_b, b, oxygen, shape3, p, 0.5, seed, step, next_b)
        assert (n_a, next_a) == (n_b, next_b)
        for k in a:
            np.testing.assert_array_equal(a[k][: len(b[k])][:n_a], b[k][:n_b], err_msg=k)
        np.testing.assert_array_equal(a["occ"], b["occ"])
        # the occupancy map is consistent with the live cells
        live = np.flatnonzero(a["state"][:n_a] != codes.REMOVED)
        assert np.all(a["occ"][a["site"][live]] == live)
        assert np.count_nonzero(a["occ"] >= 0) == len(live)
        changed += n_a != n0 or any(
            not np.array_equal(before[k], a[k][:n0]) for k in ("site", "state")
        )
        n_a = compact_dict(n_a, a)
        n_b = compact_dict(n_b, b)
        assert n_a == n_b
    assert changed >= 3  # the comparison exercised real activity


@pytest.mark.parametrize("shape3", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_free_neighbours_matches_twin(shape3):
    rng = np.random.default_rng(7)
    nz, ny, nx = shape3
    n_sites = nz * ny * nx
    for fill in (0.0, 0.3, 0.8):
        occ = np.where(rng.random(n_sites) < fill, 1, -1).astype(np.int32)
        out = np.empty(26, np.int64)
        for s in range(n_sites):
            k = kl.free_neighbours(s, occ, nz, ny, nx, out)
            assert list(out[:k]) == naive.free_neighbours(s, occ, nz, ny, nx)
    # an empty 3x3x3 block: the centre has 26 neighbours, a corner 7; in 2-D 8 and 3
    out = np.empty(26, np.int64)
    assert kl.free_neighbours(13, np.full(27, -1, np.int32), 3, 3, 3, out) == 26
    assert kl.free_neighbours(0, np.full(27, -1, np.int32), 3, 3, 3, out) == 7
    assert kl.free_neighbours(4, np.full(9, -1, np.int32), 1, 3, 3, out) == 8
    assert kl.free_neighbours(0, np.full(9, -1, np.int32), 1, 3, 3, out) == 3


@pytest.mark.parametrize("shape3", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_compact_matches_twin(shape3):
    rng = np.random.default_rng(3)
    n, a, _ = random_population(shape3, rng, fill=0.7)
    a["state"][:n][rng.random(n) < 0.4] = codes.REMOVED
    for i in np.flatnonzero(a["state"][:n] == codes.REMOVED):
        a["occ"][a["site"][i]] = -1
    blocks = [
        np.stack([a["cell_id"], a["parent"]]),
        np.stack([a["generation"], a["divisions_left"]]),
        np.stack([a["clock_h"], rng.random(len(a["clock_h"])).astype(np.float32)]),
    ]
    arrays = [a["kind"], a["state"], a["site"], a["occ"]]
    twin = [x.copy() for x in blocks + arrays]
    expected = int(np.count_nonzero(a["state"][:n] != codes.REMOVED))
    m = kl.compact(n, *blocks, *arrays)
    m_twin = naive.compact(n, *twin)
    assert m == m_twin == expected
    for x, y in zip(blocks + arrays, twin, strict=True):
        np.testing.assert_array_equal(x[..., :m], y[..., :m])
    np.testing.assert_array_equal(a["occ"], twin[-1])
    assert np.all(a["state"][:m] != codes.REMOVED)


def test_sink_map_and_counts_match_twin():
    rng = np.random.default_rng(11)
    for shape3 in SHAPES:
        n, a, _ = random_population(shape3, rng, fill=0.9)
        a["state"][:n][rng.random(n) < 0.1] = codes.REMOVED
        uptake = rng.random(codes.N_KINDS)
        sink, sink_twin = np.empty(math.prod(shape3)), np.empty(math.prod(shape3))
        kl.sink_map(n, a["kind"], a["state"], a["site"], uptake, sink)
        naive.sink_map(n, a["kind"], a["state"], a["site"], uptake, sink_twin)
        np.testing.assert_array_equal(sink, sink_twin)
        viable = a["state"][:n] <= codes.QUIESCENT
        assert np.count_nonzero(sink) == np.count_nonzero(viable)
        got = kl.count_by_kind_state(n, a["kind"], a["state"], codes.N_KINDS, 4)
        want = naive.count_by_kind_state(n, a["kind"], a["state"], codes.N_KINDS, 4)
        np.testing.assert_array_equal(got, want)
        assert got.sum() == n


def test_cell_population_compact_keeps_every_column():
    pop = CellPopulation((1, 6, 6), capacity=4)
    pop.add(codes.TUMOR, np.array([0, 5, 10, 20]), divisions_left=3)
    pop.state[1] = codes.REMOVED
    pop.occ[5] = -1
    pop.compact()
    assert pop.n == 3
    np.testing.assert_array_equal(pop.column("id")[:3], [0, 2, 3])
    np.testing.assert_array_equal(pop.site[:3], [0, 10, 20])
    np.testing.assert_array_equal(pop.occ[[0, 10, 20]], [0, 1, 2])
    assert pop.occ[5] == -1
    counts = pop.counts()
    assert counts[codes.TUMOR, codes.PROLIFERATING] == 3


# --------------------------------------------------------------------------- random numbers
N_DRAWS = 40_000


def draws(seed=2024, step=3, purpose=kr.PURPOSE_DIVIDE, ids=None):
    ids = range(N_DRAWS) if ids is None else ids
    return np.array([kr.uniform(seed, i, step, purpose) for i in ids])


def test_py_func_matches_compiled():
    for key in [(0, 0, 0, 1), (5, 2**40, 17, 8), (2**62, 3, 2**31, 2)]:
        assert kr.uniform.py_func(*key) == kr.uniform(*key)
        assert kr.randint.py_func(*key, 7) == kr.randint(*key, 7)


def test_uniform_distribution():
    u = draws()
    assert u.min() >= 0.0 and u.max() < 1.0
    # Kolmogorov-Smirnov and chi-square (50 bins) against U(0, 1); fixed seed, so the p-values
    # are fixed numbers: a failure at the 1e-3 level means a broken generator, not bad luck
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    counts, _ = np.histogram(u, bins=50, range=(0, 1))
    assert stats.chisquare(counts).pvalue > 1e-3
    assert abs(u.mean() - 0.5) < 0.01
    assert len(np.unique(u)) == N_DRAWS


def test_randint_is_uniform_and_in_range():
    k = np.array([kr.randint(9, i, 0, kr.PURPOSE_MIGRATE_SITE, 7) for i in range(N_DRAWS)])
    assert k.min() == 0 and k.max() == 6
    assert stats.chisquare(np.bincount(k, minlength=7)).pvalue > 1e-3
    assert kr.randint(1, 2, 3, 4, 1) == 0


@pytest.mark.parametrize(
    "other",
    [
        {"purpose": kr.PURPOSE_MIGRATE},
        {"purpose": kr.PURPOSE_NECROSIS},
        {"seed": 2025},
        {"step": 4},
        {"ids": range(1, N_DRAWS + 1)},  # neighbouring cell ids
    ],
    ids=["purpose_migrate", "purpose_necrosis", "seed", "step", "cell_id"],
)
def test_streams_are_independent(other):
    base = draws()
    alt = draws(**other)
    assert not np.array_equal(base, alt)
    # correlation of independent uniforms: sd 1/sqrt(N) = 0.005; bound at 4 sd
    assert abs(np.corrcoef(base, alt)[0, 1]) < 0.02
    # joint distribution: a 5x5 contingency table is consistent with independence
    table = np.histogram2d(base, alt, bins=5, range=[[0, 1], [0, 1]])[0]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    assert abs(np.mean(base < alt) - 0.5) < 0.02


def test_draw_is_a_pure_function_of_the_key():
    assert kr.uniform(1, 2, 3, 4) == kr.uniform(1, 2, 3, 4)
    assert len({kr.uniform(1, 2, 3, p) for p in range(1, 10)}) == 9
