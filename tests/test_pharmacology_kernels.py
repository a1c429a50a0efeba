"""Pharmacology kernels (tmesim/kernels/pharmacology.py) against their pure-Python twins
(tests/naive_pharmacology.py), closed forms, steady states and conservation laws."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import naive_pharmacology as naive
from tmesim.kernels import codes
from tmesim.kernels import pharmacology as kp

NO_INHIBITOR = np.zeros(1)
# per-kind parameters, indexed by kind code (tumour, stem, tcell, macrophage, fibroblast);
# non-cancer kinds get k > 0 so that only the kind check can skip them
K_MEM = np.array([5.0, 3.0, 4.0, 2.0, 1.0])
VMAX = np.array([8.0, 20.0, 5.0, 5.0, 5.0])
KM = np.array([2.0, 0.7, 1.0, 1.0, 1.0])
IC50 = np.array([0.4, 0.0, 1.0, 1.0, 1.0])  # stem cells are not inhibitable here


def f32_ulp(x):
    return np.spacing(np.abs(np.asarray(x, np.float32))).astype(np.float64)


def fsum(a):
    return math.fsum(np.asarray(a, np.float64).ravel())


def random_cells(rng, n_sites=400, fill=0.6, extra_removed=6):
    """Cells of every kind and state on distinct sites, plus REMOVED rows sharing sites.

    Returns ``n, arrays`` with capacity beyond ``n`` (rows past ``n`` must stay untouched).
    """
    n_live = int(fill * n_sites)
    n = n_live + extra_removed
    cap = n + 5
    kind = np.full(cap, codes.TUMOR, np.int8)
    state = np.zeros(cap, np.int8)
    site = np.zeros(cap, np.int32)
    drug = rng.uniform(0.0, 30.0, cap).astype(np.float32)
    pgp = rng.uniform(0.0, 3.0, cap).astype(np.float32)
    kind[:n] = rng.choice(5, n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    state[:n_live] = rng.choice(4, n_live, p=[0.5, 0.25, 0.15, 0.1])
    state[n_live:n] = codes.REMOVED
    site[:n_live] = rng.choice(n_sites, n_live, replace=False)
    site[n_live:n] = rng.choice(site[:n_live], extra_removed)  # dead rows share live sites
    site[n:] = rng.integers(0, n_sites, cap - n)
    drug[rng.random(cap) < 0.15] = 0.0
    pgp[rng.random(cap) < 0.1] = 0.0
    site[rng.choice(n_live, 2, replace=False)] = -1  # not on the lattice: skipped
    return n, {"kind": kind, "state": state, "site": site, "drug": drug, "pgp": pgp}


def random_field(rng, n_sites, zero_fraction=0.1):
    c = rng.uniform(0.0, 50.0, n_sites)
    c[rng.random(n_sites) < zero_fraction] = 0.0
    return c


def stepped_mask(n, cells, k_mem):
    kind, state, site = cells["kind"], cells["state"], cells["site"]
    cap = kind.shape[0]
    live = np.isin(kind, [codes.TUMOR, codes.STEM]) & np.isin(
        state, [codes.PROLIFERATING, codes.QUIESCENT]
    )
    return live & (k_mem[kind] > 0) & (site >= 0) & (np.arange(cap) < n)


# --------------------------------------------------------------------------- the root and its twin
def test_exchange_root_matches_bisection_twin():
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(3000):
        ci = rng.choice([0.0, rng.uniform(0, 50), 10 ** rng.uniform(-8, 3)])
        ce = rng.choice([0.0, rng.uniform(0, 50), 10 ** rng.uniform(-8, 3)])
        k = 10 ** rng.uniform(-3, 1.5)
        vm = rng.choice([0.0, 10 ** rng.uniform(-3, 3)])
        km = 10 ** rng.uniform(-3, 2)
        phi = rng.choice([0.0, 0.31, rng.uniform(0, 1)])
        dt = rng.choice([6.0, 10 ** rng.uniform(-3, 2)])
        x = kp.exchange_root(ci, ce, k, vm, km, phi, dt)
        ref = naive.exchange_root(ci, ce, k, vm, km, phi, dt)
        assert x >= 0.0
        assert x == pytest.approx(ref, rel=1e-12, abs=1e-300), (ci, ce, k, vm, km, phi, dt)
        checked += ref > 0
    assert checked > 2500


def test_safeguarded_newton_converges_from_any_start():
    """The iteration alone (without the kernel's quadratic starting guess) finds the root."""
    rng = np.random.default_rng(13)
    for _ in range(400):
        ci, ce = rng.uniform(0, 50), 10 ** rng.uniform(-6, 2)
        k, vm = 10 ** rng.uniform(-3, 1.5), 10 ** rng.uniform(-3, 3)
        km, phi, dt = 10 ** rng.uniform(-3, 2), rng.choice([0.0, 0.31]), 10 ** rng.uniform(-2, 1.5)
        ref = naive.exchange_root(ci, ce, k, vm, km, phi, dt)
        # g(x) = a x - b + dt vm x / (km + x), restated from the model
        a = 1.0 + k * dt * (1.0 + phi)
        b = ci + k * dt * (ce + phi * ci)
        hi = b / a
        for x0 in (0.0, hi, 0.5 * hi, 1e-300, hi * (1 - 1e-16), 1e-9 * hi, -1.0, 2 * hi, np.nan):
            x = kp.solve_exchange(a, b, vm * dt, km, x0)
            assert x == pytest.approx(ref, rel=1e-12), (ci, ce, k, vm, km, phi, dt, x0)


def test_exchange_root_closed_forms():
    # no efflux, held outside: linear backward Euler x = (ci + k dt ce) / (1 + k dt)
    assert kp.exchange_root(2.0, 10.0, 5.0, 0.0, 1.0, 0.0, 6.0) == pytest.approx(
        (2.0 + 30.0 * 10.0) / 31.0, rel=1e-15
    )
    # no efflux, phi > 0: x = (ci + k dt T) / (1 + k dt (1 + phi)), T = ce + phi ci
    t = 10.0 + 0.5 * 2.0
    assert kp.exchange_root(2.0, 10.0, 5.0, 0.0, 1.0, 0.5, 6.0) == pytest.approx(
        (2.0 + 30.0 * t) / (1.0 + 30.0 * 1.5), rel=1e-15
    )
    # zero-order pump (km = 0): x = max(0, (ci + k dt ce - vm dt) / (1 + k dt))
    assert kp.exchange_root(2.0, 10.0, 5.0, 1.0, 0.0, 0.0, 6.0) == pytest.approx(
        (2.0 + 300.0 - 6.0) / 31.0, rel=1e-15
    )
    assert kp.exchange_root(2.0, 1.0, 5.0, 100.0, 0.0, 0.0, 6.0) == 0.0
    assert kp.exchange_root(0.0, 0.0, 5.0, 3.0, 1.0, 0.3, 6.0) == 0.0
    # a negative pump capacity counts as none
    assert kp.exchange_root(2.0, 10.0, 5.0, -4.0, 1.0, 0.0, 6.0) == kp.exchange_root(
        2.0, 10.0, 5.0, 0.0, 1.0, 0.0, 6.0
    )


# --------------------------------------------------------------------------- cell exchange vs twin
@pytest.mark.parametrize("phi", [0.0, 0.31])
@pytest.mark.parametrize("with_inhibitor", [False, True])
@pytest.mark.parametrize("stem_k", [3.0, 0.0])
def test_cell_drug_exchange_matches_twin(phi, with_inhibitor, stem_k):
    rng = np.random.default_rng([11, int(phi * 100), with_inhibitor, int(stem_k)])
    n_sites = 400
    n, cells = random_cells(rng, n_sites)
    c_out = random_field(rng, n_sites)
    inhibitor = rng.uniform(0.0, 2.0, n_sites) if with_inhibitor else NO_INHIBITOR
    if with_inhibitor:
        inhibitor[rng.random(n_sites) < 0.2] = 0.0
    k_mem = K_MEM.copy()
    k_mem[codes.STEM] = stem_k
    t_cells = {key: a.copy() for key, a in cells.items()}
    t_c = c_out.copy()
    stepped = stepped_mask(n, cells, k_mem)
    assert stepped.sum() > 60
    c0, d0 = c_out.copy(), cells["drug"].copy()
    for step, dt in enumerate([6.0, 0.5, 6.0, 20.0]):
        args = (k_mem, VMAX, KM, IC50, phi, dt)
        kp.cell_drug_exchange(n, *cells.values(), c_out, inhibitor, *args)
        naive.cell_drug_exchange(n, *t_cells.values(), t_c, inhibitor, *args)
        d, td = cells["drug"], t_cells["drug"]
        # float32 drug: within one float32 ulp of the twin (rounding of two ~1e-15 roots)
        diff = np.abs(d.astype(np.float64) - td.astype(np.float64))
        assert np.all(diff <= f32_ulp(np.maximum(d, td))), step
        assert np.mean(d == td) > 0.99
        # rows that are not stepped are untouched, bit for bit
        np.testing.assert_array_equal(d[~stepped], d0[~stepped])
        # the voxel is charged with exactly what the stored drug changed by
        if phi > 0:
            tol = 1e-12 * np.abs(t_c) + phi * 2.0 * f32_ulp(np.max(td)) * (step + 1)
            assert np.all(np.abs(c_out - t_c) <= tol)
        else:
            np.testing.assert_array_equal(c_out, c0)
        for key in ("kind", "state", "site", "pgp"):
            np.testing.assert_array_equal(cells[key], t_cells[key])
    # something happened, and voxels without a stepped cell did not change
    assert np.sum(cells["drug"][stepped] != d0[stepped]) > 0.8 * stepped.sum()
    untouched = np.ones(n_sites, bool)
    untouched[cells["site"][stepped]] = False
    np.testing.assert_array_equal(c_out[untouched], c0[untouched])


def test_cell_drug_exchange_single_step_bookkeeping():
    """One step: c_out' = c_out - phi (drug' - drug), drug' = float32(root), by hand."""
    rng = np.random.default_rng(5)
    n, cells = random_cells(rng, 300)
    c_out = random_field(rng, 300)
    inhibitor = rng.uniform(0.0, 2.0, 300)
    phi, dt = 0.31, 6.0
    c0, d0 = c_out.copy(), cells["drug"].copy()
    kp.cell_drug_exchange(n, *cells.values(), c_out, inhibitor, K_MEM, VMAX, KM, IC50, phi, dt)
    for i in np.flatnonzero(stepped_mask(n, cells, K_MEM)):
        kd, s = cells["kind"][i], cells["site"][i]
        f_i = 1.0 if IC50[kd] <= 0 else IC50[kd] / (inhibitor[s] + IC50[kd])
        vm = VMAX[kd] * float(cells["pgp"][i]) * f_i
        x = naive.exchange_root(float(d0[i]), c0[s], K_MEM[kd], vm, KM[kd], phi, dt)
        assert abs(float(cells["drug"][i]) - x) <= f32_ulp(x)
        # (to round-off: the kernel may fuse the multiply-add)
        expected = c0[s] - phi * (float(cells["drug"][i]) - float(d0[i]))
        assert c_out[s] == pytest.approx(expected, rel=4e-16, abs=4e-16 * c0[s])


# --------------------------------------------------------------------------- steady states
def test_steady_state_uptake_solves_its_equation():
    rng = np.random.default_rng(3)
    for _ in range(2000):
        c_e = 10 ** rng.uniform(-6, 3)
        k = 10 ** rng.uniform(-3, 1.5)
        vm = 10 ** rng.uniform(-3, 3)
        km = 10 ** rng.uniform(-3, 2)
        x = kp.steady_state_uptake(c_e, k, vm, km)
        assert 0.0 < x < c_e
        assert x == pytest.approx(naive.steady_state_uptake(c_e, k, vm, km), rel=1e-12)
        # residual of the quadratic, relative to its largest term
        scale = k * x * x + abs(k * km + vm - k * c_e) * x + k * c_e * km
        res = k * x * x + (k * km + vm - k * c_e) * x - k * c_e * km
        assert abs(res) <= 1e-13 * scale
    assert kp.steady_state_uptake(7.5, 5.0, 0.0, 2.0) == 7.5
    assert kp.steady_state_uptake(0.0, 5.0, 3.0, 2.0) == 0.0


@pytest.mark.parametrize(("k", "vm", "km"), [(5.0, 8.0, 2.0), (0.3, 40.0, 10.0), (2.0, 1.0, 50.0)])
def test_steady_state_uptake_linear_regime(k, vm, km):
    """For c_e << km, C_i / C_e -> 1 / (1 + R), R = vmax / (k km); error O(c_e / km)."""
    r = vm / (k * km)
    for c_e in (1e-3 * km, 1e-6 * km):
        ratio = kp.steady_state_uptake(c_e, k, vm, km) / c_e
        assert ratio == pytest.approx(1.0 / (1.0 + r), rel=3 * c_e / km)
    # and well away from it, the ratio is much closer to 1 (the pump saturates)
    assert kp.steady_state_uptake(1e3 * km, k, vm, km) / (1e3 * km) > 1.0 / (1.0 + r)


@pytest.mark.parametrize("inhibitor_level", [None, 0.0, 0.4, 3.0])
def test_held_outside_converges_to_steady_state(inhibitor_level):
    """Repeated steps with phi = 0 settle on steady_state_uptake; the inhibitor raises it."""
    k_mem = np.array([5.0, 5.0, 0.0, 0.0, 0.0])
    vmax = np.array([8.0, 8.0, 0.0, 0.0, 0.0])
    km = np.array([2.0, 2.0, 1.0, 1.0, 1.0])
    ic50 = np.array([0.4, 0.4, 0.0, 0.0, 0.0])
    pgp_level, c_e = 1.5, 10.0
    kind = np.array([codes.TUMOR], np.int8)
    state = np.array([codes.QUIESCENT], np.int8)
    site = np.array([1], np.int32)
    drug = np.zeros(1, np.float32)
    pgp = np.array([pgp_level], np.float32)
    c_out = np.array([0.0, c_e, 0.0])
    inhibitor = NO_INHIBITOR if inhibitor_level is None else np.array([9.0, inhibitor_level, 9.0])
    history = []
    for _ in range(40):
        kp.cell_drug_exchange(1, kind, state, site, drug, pgp, c_out, inhibitor,
                              k_mem, vmax, km, ic50, 0.0, 6.0)
        history.append(float(drug[0]))
    assert c_out.tolist() == [0.0, c_e, 0.0]
    assert np.all(np.diff(history) >= 0)  # monotone uptake from zero
    f_i = 1.0 if inhibitor_level is None else 0.4 / (inhibitor_level + 0.4)
    expected_ss = naive.steady_state_uptake(c_e, 5.0, 8.0 * pgp_level * f_i, 2.0)
    assert kp.steady_state_uptake(c_e, 5.0, 8.0 * pgp_level * f_i, 2.0) == pytest.approx(
        expected_ss, rel=1e-12
    )
    assert history[-1] == pytest.approx(expected_ss, rel=2.5e-7)
    # the backward-Euler fixed point is the steady state: stepping it changes nothing
    assert history[-1] == history[-2]
    no_inhibitor_ss = naive.steady_state_uptake(c_e, 5.0, 8.0 * pgp_level, 2.0)
    if inhibitor_level:
        assert history[-1] > no_inhibitor_ss * (1 + 1e-3)
        assert history[-1] < c_e
    else:
        assert history[-1] == pytest.approx(no_inhibitor_ss, rel=2.5e-7)


# --------------------------------------------------------------------------- conservation
@pytest.mark.parametrize("with_inhibitor", [False, True])
def test_exchange_conserves_mass_and_stays_positive(with_inhibitor):
    rng = np.random.default_rng([23, with_inhibitor])
    n_sites, phi = 2000, 0.31
    n, cells = random_cells(rng, n_sites, fill=0.7)
    cells["drug"][rng.random(cells["drug"].shape[0]) < 0.3] = 0.0
    c_out = random_field(rng, n_sites, zero_fraction=0.3)
    inhibitor = rng.uniform(0.0, 1.0, n_sites) if with_inhibitor else NO_INHIBITOR
    stepped = stepped_mask(n, cells, K_MEM)

    def mass():
        return fsum(c_out) + phi * fsum(cells["drug"])

    m0 = mass()
    for step in range(200):
        dt = (6.0, 0.1, 30.0)[step % 3]
        kp.cell_drug_exchange(n, *cells.values(), c_out, inhibitor, K_MEM, VMAX, KM, IC50, phi,
                              dt)
        assert c_out.min() >= 0.0
        assert cells["drug"].min() >= 0.0
    assert abs(mass() - m0) <= 1e-12 * m0
    # the cells equilibrated: one more step barely changes them
    before = cells["drug"].copy()
    kp.cell_drug_exchange(n, *cells.values(), c_out, inhibitor, K_MEM, VMAX, KM, IC50, phi, 6.0)
    np.testing.assert_allclose(cells["drug"][stepped], before[stepped], rtol=1e-6, atol=1e-30)


def test_release_removed_matches_twin_and_conserves_mass():
    rng = np.random.default_rng(17)
    n_sites, phi = 300, 0.31
    n, cells = random_cells(rng, n_sites, extra_removed=20)
    cells["site"][n - 1] = -1  # a removed row off the lattice keeps its drug
    cells["state"][n - 1] = codes.REMOVED
    cells["drug"][n - 1] = 4.0
    cells["state"][n:] = codes.REMOVED  # rows past n must not be touched
    state, site, drug = cells["state"], cells["site"], cells["drug"]
    c_out = random_field(rng, n_sites)
    t_drug, t_c = drug.copy(), c_out.copy()
    d0, c0 = drug.copy(), c_out.copy()
    m0 = fsum(c_out) + phi * fsum(drug)
    released = kp.release_removed(n, state, site, drug, c_out, phi)
    t_released = naive.release_removed(n, state, site, t_drug, t_c, phi)
    rows = (state == codes.REMOVED) & (np.arange(len(state)) < n) & (site >= 0)
    assert rows.sum() > 20 and np.count_nonzero(d0[rows]) > 15
    expected = phi * fsum(d0[rows])
    assert released == pytest.approx(expected, rel=1e-14)
    assert released == pytest.approx(t_released, rel=1e-14)
    np.testing.assert_array_equal(drug[rows], 0.0)
    np.testing.assert_array_equal(drug[~rows], d0[~rows])
    np.testing.assert_array_equal(drug, t_drug)
    np.testing.assert_allclose(c_out, t_c, rtol=1e-14)
    gain = np.zeros(n_sites)
    np.add.at(gain, site[rows], phi * d0[rows].astype(np.float64))
    np.testing.assert_allclose(c_out - c0, gain, rtol=1e-9, atol=1e-12)
    assert fsum(c_out) + phi * fsum(drug) == pytest.approx(m0, rel=1e-13)
    assert kp.release_removed(n, state, site, drug, c_out, phi) == 0.0  # nothing left


# --------------------------------------------------------------------------- vessels and decay
def test_vessel_exchange_is_exact_exponential():
    rng = np.random.default_rng(29)
    n_sites = 500
    c = random_field(rng, n_sites)
    sites = rng.choice(n_sites, 60, replace=False).astype(np.int64)
    rate = 10 ** rng.uniform(-3, 0, 60)
    rate[:3] = 0.0  # a closed vessel changes nothing
    c_plasma = 12.5
    c0 = c.copy()
    t_c = c.copy()
    dts = [0.5, 6.0, 0.01, 17.0, 2.25]
    for dt in dts:
        before = fsum(c)
        net = kp.vessel_exchange(c, sites, rate, c_plasma, dt)
        t_net = naive.vessel_exchange(t_c, sites, rate, c_plasma, dt)
        assert net == pytest.approx(fsum(c) - before, rel=1e-12, abs=1e-10)
        assert net == pytest.approx(t_net, rel=1e-12, abs=1e-12)
        # relative to the larger of the voxel and the plasma (c' = c_p + (c - c_p) f cancels)
        np.testing.assert_allclose(c, t_c, rtol=1e-14, atol=1e-14 * c_plasma)
    expected = c0.copy()
    expected[sites] = c_plasma + (c0[sites] - c_plasma) * np.exp(-rate * sum(dts))
    np.testing.assert_allclose(c, expected, rtol=1e-12, atol=1e-13 * c_plasma)
    np.testing.assert_array_equal(c[sites[:3]], c0[sites[:3]])
    others = np.setdiff1d(np.arange(n_sites), sites)
    np.testing.assert_array_equal(c[others], c0[others])
    # uptake into empty tissue is positive, loss into clean plasma is negative
    empty = np.zeros(4)
    assert kp.vessel_exchange(empty, np.arange(4), np.full(4, 0.1), 3.0, 1.0) > 0
    assert kp.vessel_exchange(empty, np.arange(4), np.full(4, 0.1), 0.0, 1.0) < 0
    assert empty.min() > 0


def test_vessel_exchange_listed_twice_relaxes_twice():
    c = np.array([1.0, 5.0])
    kp.vessel_exchange(c, np.array([0, 0]), np.array([0.2, 0.3]), 9.0, 2.0)
    assert c[0] == pytest.approx(9.0 + (1.0 - 9.0) * math.exp(-(0.2 + 0.3) * 2.0), rel=1e-14)
    assert c[1] == 5.0


def test_decay_exact_returns_what_it_removed():
    rng = np.random.default_rng(31)
    c = random_field(rng, 1000)
    c0 = c.copy()
    t_c = c.copy()
    total = 0.0
    for lam, dt in [(0.01, 6.0), (0.5, 0.3), (0.0, 5.0), (2e-4, 100.0)]:
        before = fsum(c)
        removed = kp.decay_exact(c, lam, dt)
        t_removed = naive.decay_exact(t_c, lam, dt)
        assert removed == pytest.approx(before - fsum(c), rel=1e-12, abs=1e-12)
        assert removed == pytest.approx(t_removed, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(c, t_c, rtol=1e-14)
        total += removed
    lam_dt = 0.01 * 6.0 + 0.5 * 0.3 + 2e-4 * 100.0
    np.testing.assert_allclose(c, c0 * math.exp(-lam_dt), rtol=1e-13)
    assert total == pytest.approx(fsum(c0) * (1.0 - math.exp(-lam_dt)), rel=1e-12)
    assert kp.decay_exact(c, 0.0, 3.0) == 0.0


# --------------------------------------------------------------------------- threads
def test_cell_drug_exchange_does_not_depend_on_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    results = []
    threads = numba.get_num_threads()
    for nt in (1, 2):
        numba.set_num_threads(nt)
        try:
            rng = np.random.default_rng(41)
            n_sites = 20000
            n, cells = random_cells(rng, n_sites, fill=0.8)
            c_out = random_field(rng, n_sites)
            inhibitor = rng.uniform(0.0, 1.0, n_sites)
            for dt in (6.0, 0.5, 6.0):
                kp.cell_drug_exchange(n, *cells.values(), c_out, inhibitor, K_MEM, VMAX, KM,
                                      IC50, 0.31, dt)
            results.append((cells["drug"], c_out))
        finally:
            numba.set_num_threads(threads)
    assert numba.get_num_threads() == threads
    (d1, c1), (d2, c2) = results
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(c1, c2)
