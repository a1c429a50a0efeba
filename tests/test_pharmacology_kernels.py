"""Pharmacology kernels (tmesim/kernels/pharmacology.py) against their pure-Python twins
(tests/naive_pharmacology.py), closed forms, steady states and conservation laws."""

from __future__ import annotations

import math

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
    return n, {"kind": kind, "state": state, "site": site, "drug": drug, "pgp": pgp,
               "bound": np.zeros(cap, np.float32)}


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


NO_BINDING = np.zeros(5)


def exchange_step(kern, n, cells, c_out, inhibitor, k_mem, phi, dt, vmax=VMAX, km=KM, ic50=IC50,
                  bmax=NO_BINDING, kd=None, retention=None):
    """One transport step of voxels that do not diffuse: the cells' terms, each voxel's
    backward-Euler equation solved exactly, then the cells' update. ``kern``: kp or the twin.
    Returns what entered the cells."""
    den = np.zeros(cells["kind"].shape[0])
    sink = np.zeros_like(c_out)
    source = np.zeros_like(c_out)
    for pool in ("bound", "retained"):
        if pool not in cells:
            cells[pool] = np.zeros(cells["kind"].shape[0], np.float32)
    rows = [k_mem, vmax, km, ic50, bmax, np.ones(5) if kd is None else kd]
    if retention is not None:  # (filling rate, release rate, capacity) rows of the slow pool
        rows += list(retention)
    par = np.stack(rows)
    pools = kp.DrugPools(cells["drug"], cells["bound"], cells["retained"])
    membrane = kp.Membrane(par, phi, den)
    kern.membrane_terms(n, cells["kind"], cells["state"], cells["site"], pools, cells["pgp"],
                        inhibitor, membrane, dt, sink, source)
    c_out[:] = (c_out + dt * source) / (1.0 + dt * sink)
    return kern.membrane_update(n, cells["kind"], cells["site"], pools, c_out, membrane, dt)


# --------------------------------------------------------------------------- cell exchange vs twin
@pytest.mark.parametrize("phi", [0.0, 0.31])
@pytest.mark.parametrize("with_inhibitor", [False, True])
@pytest.mark.parametrize("stem_k", [3.0, 0.0])
def test_membrane_exchange_matches_twin(phi, with_inhibitor, stem_k):
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
    for step, dt in enumerate([1.0, 0.5, 6.0, 20.0]):
        moved = exchange_step(kp, n, cells, c_out, inhibitor, k_mem, phi, dt)
        t_moved = exchange_step(naive, n, t_cells, t_c, inhibitor, k_mem, phi, dt)
        d, td = cells["drug"], t_cells["drug"]
        diff = np.abs(d.astype(np.float64) - td.astype(np.float64))
        assert np.all(diff <= f32_ulp(np.maximum(d, td))), step
        np.testing.assert_allclose(c_out, t_c, rtol=1e-12, atol=1e-14)
        assert moved == pytest.approx(t_moved, rel=1e-9, abs=1e-9)
        # rows that are not stepped are untouched, bit for bit
        np.testing.assert_array_equal(d[~stepped], d0[~stepped])
        if phi == 0:
            np.testing.assert_array_equal(c_out, c0)  # a held outside
        for key in ("kind", "state", "site", "pgp"):
            np.testing.assert_array_equal(cells[key], t_cells[key])
    assert np.sum(cells["drug"][stepped] != d0[stepped]) > 0.8 * stepped.sum()
    untouched = np.ones(n_sites, bool)
    untouched[cells["site"][stepped]] = False
    np.testing.assert_array_equal(c_out[untouched], c0[untouched])


def test_membrane_step_is_backward_euler_with_the_efflux_slope_of_the_current_drug():
    """C_i' = C_i + dt [k (C_e' - C_i') - vm C_i' / (km + C_i)], C_e' = C_e - phi (C_i' - C_i),
    checked by hand for every cell of one step."""
    rng = np.random.default_rng(5)
    n, cells = random_cells(rng, 300)
    c_out = random_field(rng, 300)
    inhibitor = rng.uniform(0.0, 2.0, 300)
    phi, dt = 0.31, 1.0
    c0, d0 = c_out.copy(), cells["drug"].astype(np.float64)
    moved = exchange_step(kp, n, cells, c_out, inhibitor, K_MEM, phi, dt)
    stepped = stepped_mask(n, cells, K_MEM)
    for i in np.flatnonzero(stepped):
        kd, s = cells["kind"][i], cells["site"][i]
        f_i = 1.0 if IC50[kd] <= 0 else IC50[kd] / (inhibitor[s] + IC50[kd])
        vm = VMAX[kd] * float(cells["pgp"][i]) * f_i
        x = (d0[i] + dt * K_MEM[kd] * c_out[s]) / (1 + dt * (K_MEM[kd] + vm / (KM[kd] + d0[i])))
        assert abs(float(cells["drug"][i]) - x) <= f32_ulp(x)
        rhs = d0[i] + dt * (K_MEM[kd] * (c_out[s] - x) - vm * x / (KM[kd] + d0[i]))
        assert x == pytest.approx(rhs, rel=1e-12)
        assert c_out[s] == pytest.approx(c0[s] - phi * (x - d0[i]), rel=1e-12, abs=1e-12)
    assert moved == pytest.approx(
        phi * float(np.sum(cells["drug"][stepped].astype(np.float64) - d0[stepped])), rel=1e-12
    )


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
    cells = {"kind": kind, "state": state, "site": site, "drug": drug, "pgp": pgp}
    for _ in range(40):
        exchange_step(kp, 1, cells, c_out, inhibitor, k_mem, 0.0, 6.0, vmax, km, ic50)
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
def test_membrane_exchange_conserves_mass_and_stays_positive(with_inhibitor):
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
        exchange_step(kp, n, cells, c_out, inhibitor, K_MEM, phi, dt)
        assert c_out.min() >= 0.0
        assert cells["drug"].min() >= 0.0
    # conserved up to the float32 rounding of the stored drug
    assert abs(mass() - m0) <= 1e-6 * m0
    # the cells equilibrated: one more step barely changes them
    before = cells["drug"].copy()
    exchange_step(kp, n, cells, c_out, inhibitor, K_MEM, phi, 6.0)
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


# --------------------------------------------------------------------------- vessels
def test_vessel_flux_matches_twin():
    rng = np.random.default_rng(13)
    c = rng.uniform(0.0, 5.0, 500)
    sites = rng.choice(500, 80, replace=False)
    rate = rng.uniform(0.0, 9.0, 80)
    got = kp.vessel_flux(c, sites, rate, 2.5, 0.7)
    assert got == pytest.approx(naive.vessel_flux(c, sites, rate, 2.5, 0.7), rel=1e-12)
    assert kp.vessel_flux(np.zeros(4), np.arange(4), np.full(4, 0.1), 3.0, 1.0) > 0
    assert kp.vessel_flux(np.ones(4), np.arange(4), np.full(4, 0.1), 0.0, 1.0) < 0


# --------------------------------------------------------------------------- DNA binding, damage
BMAX = np.array([275.0, 150.0, 90.0, 90.0, 90.0])
KD_BIND = np.array([1.08, 0.3, 1.0, 1.0, 1.0])


def test_bound_at_equilibrium_is_the_saturable_binding_solution():
    """B = bmax C / (kd + C) with C = T - B, against the bisection twin and the analytic form."""
    rng = np.random.default_rng(41)
    for _ in range(3000):
        total = 10 ** rng.uniform(-8, 4)
        bmax = 10 ** rng.uniform(-2, 3)
        kd = 10 ** rng.uniform(-3, 2)
        b = kp.bound_at_equilibrium(total, bmax, kd)
        c = total - b
        assert 0.0 <= b <= min(total, bmax)
        assert b == pytest.approx(naive.bound_at_equilibrium(total, bmax, kd), rel=1e-10)
        assert b == pytest.approx(bmax * c / (kd + c), rel=1e-9, abs=1e-300)
    assert kp.bound_at_equilibrium(0.0, 5.0, 1.0) == 0.0
    assert kp.bound_at_equilibrium(7.0, 0.0, 1.0) == 0.0


@pytest.mark.parametrize("phi", [0.0, 0.31])
def test_membrane_exchange_with_binding_matches_twin(phi):
    rng = np.random.default_rng([29, int(phi * 100)])
    n_sites = 400
    n, cells = random_cells(rng, n_sites)
    cells["bound"][:] = rng.uniform(0.0, 100.0, cells["bound"].shape[0]).astype(np.float32)
    c_out = random_field(rng, n_sites)
    inhibitor = rng.uniform(0.0, 2.0, n_sites)
    t_cells = {key: a.copy() for key, a in cells.items()}
    t_c = c_out.copy()
    stepped = stepped_mask(n, cells, K_MEM)
    b0 = cells["bound"].copy()
    for step, dt in enumerate([1.0, 0.5, 6.0, 20.0]):
        moved = exchange_step(kp, n, cells, c_out, inhibitor, K_MEM, phi, dt, bmax=BMAX,
                              kd=KD_BIND)
        t_moved = exchange_step(naive, n, t_cells, t_c, inhibitor, K_MEM, phi, dt, bmax=BMAX,
                                kd=KD_BIND)
        for key in ("drug", "bound"):
            a, b = cells[key].astype(np.float64), t_cells[key].astype(np.float64)
            # float32 storage after float64 arithmetic that differs in the last bits
            assert np.all(np.abs(a - b) <= 4 * f32_ulp(np.maximum(a, b)) + 1e-12), (step, key)
        np.testing.assert_allclose(c_out, t_c, rtol=1e-9, atol=1e-12)
        assert moved == pytest.approx(t_moved, rel=1e-6, abs=1e-6)
        np.testing.assert_array_equal(cells["bound"][~stepped], b0[~stepped])
        assert cells["drug"].min() >= 0 and cells["bound"].min() >= 0
    # stepped cells end at binding equilibrium: the stored bound drug is the equilibrium of the
    # stored total (the free drug, a small difference of float32 values, is not compared)
    for i in np.flatnonzero(stepped):
        kd = cells["kind"][i]
        c, b = float(cells["drug"][i]), float(cells["bound"][i])
        eq = naive.bound_at_equilibrium(c + b, BMAX[kd], KD_BIND[kd])
        assert abs(b - eq) <= 4 * float(f32_ulp(c + b))


def test_held_outside_with_binding_settles_on_the_analytic_equilibrium():
    """A cell against a held outside: free drug at steady_state_uptake (P-gp acts on free drug
    only) and bound drug at bmax C / (kd + C); total / outside is the accumulation ratio."""
    k_mem = np.array([5.0, 5.0, 0.0, 0.0, 0.0])
    vmax = np.array([8.0, 8.0, 0.0, 0.0, 0.0])
    km = np.array([2.0, 2.0, 1.0, 1.0, 1.0])
    ic50 = np.zeros(5)
    bmax = np.array([275.0, 275.0, 0.0, 0.0, 0.0])
    kdb = np.array([1.08, 1.08, 1.0, 1.0, 1.0])
    for pgp_level, c_e in ((0.0, 0.1), (0.0, 1.0), (1.0, 1.0), (0.5, 20.0)):
        cells = {"kind": np.array([codes.TUMOR], np.int8),
                 "state": np.array([codes.PROLIFERATING], np.int8),
                 "site": np.array([1], np.int32), "drug": np.zeros(1, np.float32),
                 "pgp": np.array([pgp_level], np.float32), "bound": np.zeros(1, np.float32)}
        c_out = np.array([0.0, c_e, 0.0])
        for _ in range(2000):
            exchange_step(kp, 1, cells, c_out, NO_INHIBITOR, k_mem, 0.0, 1.0, vmax, km, ic50,
                          bmax=bmax, kd=kdb)
        free = kp.steady_state_uptake(c_e, 5.0, 8.0 * pgp_level, 2.0)
        ulp = float(f32_ulp(cells["drug"][0] + cells["bound"][0]))
        assert float(cells["drug"][0]) == pytest.approx(free, abs=4 * ulp)
        assert float(cells["bound"][0]) == pytest.approx(275.0 * free / (1.08 + free), rel=1e-6)
        if pgp_level == 0.0:  # P-gp-free cells hold 1 + bmax / (kd + C_e) times the outside
            total = float(cells["drug"][0]) + float(cells["bound"][0])
            assert total / c_e == pytest.approx(1.0 + 275.0 / (1.08 + c_e), rel=1e-5)


def test_membrane_exchange_with_binding_conserves_mass():
    rng = np.random.default_rng(31)
    n_sites, phi = 2000, 0.31
    n, cells = random_cells(rng, n_sites, fill=0.7)
    cells["bound"][:] = rng.uniform(0.0, 50.0, cells["bound"].shape[0]).astype(np.float32)
    c_out = random_field(rng, n_sites, zero_fraction=0.3)
    inhibitor = rng.uniform(0.0, 1.0, n_sites)

    def mass():
        return fsum(c_out) + phi * (fsum(cells["drug"]) + fsum(cells["bound"]))

    m0 = mass()
    for step in range(100):
        dt = (6.0, 0.1, 30.0, 1.0)[step % 4]
        before = fsum(c_out)
        moved = exchange_step(kp, n, cells, c_out, inhibitor, K_MEM, phi, dt, bmax=BMAX,
                              kd=KD_BIND)
        # what the kernel reports as moved into cells is what left the voxels, up to the
        # float32 rounding of the stored pools
        ulps = phi * float(np.sum(f32_ulp(cells["drug"]) + f32_ulp(cells["bound"])))
        assert abs(moved - (before - fsum(c_out))) <= ulps
        assert c_out.min() >= 0.0 and cells["drug"].min() >= 0.0
    assert abs(mass() - m0) <= 1e-6 * m0


@pytest.mark.parametrize("lam", [0.0, 0.01, 0.3])
def test_damage_step_matches_twin_and_closed_form(lam):
    rng = np.random.default_rng([7, int(lam * 100)])
    n, cells = random_cells(rng, 300)
    bound = rng.uniform(0.0, 200.0, cells["kind"].shape[0]).astype(np.float32)
    damage = rng.uniform(0.0, 3000.0, cells["kind"].shape[0]).astype(np.float32)
    repair = np.array([lam, 2 * lam, 1.0, 1.0, 1.0])
    t_damage = damage.copy()
    d0 = damage.copy()
    retained = rng.uniform(0.0, 400.0, cells["kind"].shape[0]).astype(np.float32)
    kp.damage_step(n, cells["kind"], cells["state"], bound, retained, damage, repair, 0.1)
    naive.damage_step(n, cells["kind"], cells["state"], bound, retained, t_damage, repair, 0.1)
    np.testing.assert_allclose(damage, t_damage, rtol=2e-7)
    live = stepped_mask(n, cells, np.ones(5))
    live |= (np.isin(cells["kind"], [codes.TUMOR, codes.STEM])
             & np.isin(cells["state"], [codes.PROLIFERATING, codes.QUIESCENT])
             & (np.arange(len(damage)) < n))
    np.testing.assert_array_equal(damage[~live], d0[~live])
    # many small steps of a held B reach B / lam (or grow by B t without repair)
    d = np.zeros(1, np.float32)
    one = (np.array([codes.TUMOR], np.int8), np.array([codes.PROLIFERATING], np.int8))
    for _ in range(1000):
        kp.damage_step(1, *one, np.array([20.0], np.float32), np.array([30.0], np.float32), d,
                       repair, 0.1)
    expected = 50.0 * 100.0 if lam == 0 else 50.0 / lam * (1 - math.exp(-lam * 100.0))
    assert float(d[0]) == pytest.approx(expected, rel=1e-4)


# --------------------------------------------------------------------------- the slow pool
# filling rate per unit free drug (1/min), release rate (1/min), capacity (uM) by kind; the
# stem-like kind has no slow pool, and non-cancer kinds get one that only the kind check skips
RETENTION = (np.array([0.3, 0.0, 0.3, 0.3, 0.3]), np.array([0.0005, 0.0, 0.01, 0.01, 0.01]),
             np.array([1100.0, 0.0, 500.0, 500.0, 500.0]))


@pytest.mark.parametrize("phi", [0.0, 0.31])
def test_membrane_exchange_with_slow_pool_matches_twin(phi):
    rng = np.random.default_rng([37, int(phi * 100)])
    n_sites = 400
    n, cells = random_cells(rng, n_sites)
    cap = cells["kind"].shape[0]
    cells["bound"] = rng.uniform(0.0, 100.0, cap).astype(np.float32)
    cells["retained"] = rng.uniform(0.0, 1200.0, cap).astype(np.float32)  # some above capacity
    c_out = random_field(rng, n_sites)
    inhibitor = rng.uniform(0.0, 2.0, n_sites)
    t_cells = {key: a.copy() for key, a in cells.items()}
    t_c = c_out.copy()
    stepped = stepped_mask(n, cells, K_MEM)
    slow = stepped & (cells["kind"] == codes.TUMOR)
    s0 = cells["retained"].copy()
    for step, dt in enumerate([1.0, 0.5, 6.0, 20.0]):
        moved = exchange_step(kp, n, cells, c_out, inhibitor, K_MEM, phi, dt, bmax=BMAX,
                              kd=KD_BIND, retention=RETENTION)
        t_moved = exchange_step(naive, n, t_cells, t_c, inhibitor, K_MEM, phi, dt, bmax=BMAX,
                                kd=KD_BIND, retention=RETENTION)
        for key in ("drug", "bound", "retained"):
            a, b = cells[key].astype(np.float64), t_cells[key].astype(np.float64)
            assert np.all(np.abs(a - b) <= 4 * f32_ulp(np.maximum(a, b)) + 1e-12), (step, key)
        np.testing.assert_allclose(c_out, t_c, rtol=1e-9, atol=1e-12)
        assert moved == pytest.approx(t_moved, rel=1e-6, abs=1e-6)
        # only the live tumour cells (the kind with a slow pool) change it
        np.testing.assert_array_equal(cells["retained"][~slow], s0[~slow])
        assert min(cells[k].min() for k in ("drug", "bound", "retained")) >= 0
    assert np.sum(cells["retained"][slow] != s0[slow]) > 0.8 * slow.sum()


def test_held_outside_with_slow_pool_settles_on_the_analytic_equilibrium():
    """Against a held outside every pool reaches its equilibrium with the free drug C (set by
    the membrane and the pump alone): B = bmax C / (kd + C) and S = smax C / (C + r smax / a)."""
    a, r, smax = 0.3, 0.0005, 1100.0
    ret = (np.full(5, a), np.full(5, r), np.full(5, smax))
    for pgp_level, c_e in ((0.0, 0.1), (0.0, 1.0), (1.0, 1.0), (0.5, 20.0)):
        cells = {"kind": np.array([codes.TUMOR], np.int8),
                 "state": np.array([codes.PROLIFERATING], np.int8),
                 "site": np.array([1], np.int32), "drug": np.zeros(1, np.float32),
                 "pgp": np.array([pgp_level], np.float32), "bound": np.zeros(1, np.float32),
                 "retained": np.zeros(1, np.float32)}
        c_out = np.array([0.0, c_e, 0.0])
        for _ in range(3000):  # 3000 steps of 10 min: 15 release half-lives of 23 h
            exchange_step(kp, 1, cells, c_out, NO_INHIBITOR, K_MEM, 0.0, 10.0, VMAX, KM, IC50,
                          bmax=np.full(5, 275.0), kd=np.full(5, 1.08), retention=ret)
        free = kp.steady_state_uptake(c_e, K_MEM[0], VMAX[0] * pgp_level, KM[0])
        ulp = float(f32_ulp(cells["drug"][0] + cells["bound"][0]))
        assert float(cells["drug"][0]) == pytest.approx(free, abs=4 * ulp)
        assert float(cells["bound"][0]) == pytest.approx(275.0 * free / (1.08 + free), rel=1e-5)
        expected = smax * free / (free + r * smax / a)
        assert float(cells["retained"][0]) == pytest.approx(expected, rel=1e-5)


def test_slow_pool_releases_with_its_half_life_after_washout():
    """Loaded, then against a drug-free outside: the free and bound drug leave within minutes
    and the slow pool empties as exp(-r t) (the fast pools hold almost nothing while it does),
    so total cell drug halves in about ln 2 / r."""
    r = math.log(2.0) / (25.0 * 60.0)
    ret = (np.full(5, 0.3), np.full(5, r), np.full(5, 1100.0))
    cells = {"kind": np.array([codes.TUMOR], np.int8),
             "state": np.array([codes.PROLIFERATING], np.int8),
             "site": np.array([1], np.int32), "drug": np.zeros(1, np.float32),
             "pgp": np.zeros(1, np.float32), "bound": np.zeros(1, np.float32),
             "retained": np.zeros(1, np.float32)}
    pars = dict(bmax=np.full(5, 275.0), kd=np.full(5, 1.08), retention=ret)
    c_out = np.array([0.0, 1.0, 0.0])
    for _ in range(240):  # a 4-h pulse at 1 uM
        exchange_step(kp, 1, cells, c_out, NO_INHIBITOR, K_MEM, 0.0, 1.0, **pars)
    c_out[1] = 0.0
    for _ in range(36):  # 6 h of washout take the fast pools out
        exchange_step(kp, 1, cells, c_out, NO_INHIBITOR, K_MEM, 0.0, 10.0, **pars)
    s0 = float(cells["retained"][0])
    fast0 = float(cells["drug"][0] + cells["bound"][0])
    assert s0 > 10.0 * fast0
    for _ in range(150):  # 25 h
        exchange_step(kp, 1, cells, c_out, NO_INHIBITOR, K_MEM, 0.0, 10.0, **pars)
    total = float(cells["drug"][0] + cells["bound"][0] + cells["retained"][0])
    # released drug leaves through the membrane (k) or is taken up again (a (1 - S / smax)), so
    # the pool empties at r k / (k + a (1 - S / smax)): a half-life of 25 h stretched by 5 %;
    # backward Euler over 10-min steps adds 0.2 %
    k, room = K_MEM[0], 1.0 - s0 / 1100.0
    assert total / (s0 + fast0) == pytest.approx(0.5 ** (k / (k + 0.3 * room)), rel=0.005)


def test_membrane_exchange_with_slow_pool_conserves_mass():
    rng = np.random.default_rng(43)
    n_sites, phi = 2000, 0.31
    n, cells = random_cells(rng, n_sites, fill=0.7)
    cap = cells["kind"].shape[0]
    cells["bound"] = rng.uniform(0.0, 50.0, cap).astype(np.float32)
    cells["retained"] = rng.uniform(0.0, 600.0, cap).astype(np.float32)
    c_out = random_field(rng, n_sites, zero_fraction=0.3)
    inhibitor = rng.uniform(0.0, 1.0, n_sites)
    pools = ("drug", "bound", "retained")

    def mass():
        return fsum(c_out) + phi * sum(fsum(cells[k]) for k in pools)

    m0 = mass()
    for step in range(100):
        dt = (6.0, 0.1, 30.0, 1.0)[step % 4]
        before = fsum(c_out)
        moved = exchange_step(kp, n, cells, c_out, inhibitor, K_MEM, phi, dt, bmax=BMAX,
                              kd=KD_BIND, retention=RETENTION)
        ulps = phi * float(sum(np.sum(f32_ulp(cells[k])) for k in pools))
        assert abs(moved - (before - fsum(c_out))) <= ulps
        assert c_out.min() >= 0.0 and min(cells[k].min() for k in pools) >= 0.0
    assert abs(mass() - m0) <= 1e-6 * m0
