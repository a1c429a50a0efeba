"""Macrophages as a nanoparticle depot (docs/pharmacology.md §13.8): the kernel against its
pure-Python twin, conservation, the model's ledger, and thread-count independence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import TINY, run_checking_ledgers
from test_io import assert_identical, run_on_one_and_two_threads
from test_nano_carrier import co_release_twin, empty_twin
from tmesim import TMEModel
from tmesim.kernels import codes
from tmesim.kernels import nanoparticles as nk

LIPO = "liposomal_doxorubicin"
LIVE = (codes.PROLIFERATING, codes.QUIESCENT)


def release_to_field_twin(n, kind, state, site, payload, carrier, c_drug, rate, inhibitor, ratio,
                          phi, dt):
    """Slow twin of ``nk.release_to_field``: one cell after the other, in Python floats."""
    from_payload = to_field = to_inhibitor = to_carrier = 0.0
    for i in range(n):
        moved, gain = empty_twin(i, kind, state, payload, carrier, rate, dt)
        if moved <= 0.0:
            continue
        c_drug[site[i]] += phi * moved
        from_payload += moved
        to_field += phi * moved
        to_carrier += gain
        to_inhibitor += co_release_twin(inhibitor, site[i], phi * moved, ratio)
    return from_payload, to_field, to_inhibitor, to_carrier


def depot_case(seed=3, n=200, sites=150):
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 5, n).astype(np.int8)
    state = rng.choice([codes.PROLIFERATING, codes.QUIESCENT, codes.NECROTIC], n).astype(np.int8)
    site = rng.integers(0, sites, n).astype(np.int32)  # shared voxels too: the loop is serial
    payload = (rng.random(n) * 50).astype(np.float32)
    payload[::7] = 0.0
    c_drug = rng.random(sites)
    rate = np.zeros(8)
    rate[codes.MACROPHAGE] = 0.06 / 60.0
    rate[codes.TUMOR] = 0.01 / 60.0
    return kind, state, site, payload, c_drug, rate


def test_release_to_field_matches_its_twin_bit_for_bit():
    kind, state, site, payload, c_drug, rate = depot_case()
    inhib = np.zeros(c_drug.size)
    carrier = (payload[::-1] * 0.3).astype(np.float32)
    args = (kind, state, site)
    p1, e1, c1, i1 = payload.copy(), carrier.copy(), c_drug.copy(), inhib.copy()
    p2, e2, c2, i2 = payload.copy(), carrier.copy(), c_drug.copy(), inhib.copy()
    got = nk.release_to_field(kind.size, *args, p1, e1, c1, rate, i1, 0.5, 0.312, 6.0)
    want = release_to_field_twin(kind.size, *args, p2, e2, c2, rate, i2, 0.5, 0.312, 6.0)
    assert p1.tobytes() == p2.tobytes() and e1.tobytes() == e2.tobytes()
    np.testing.assert_allclose(c1, c2, rtol=0, atol=1e-13)
    np.testing.assert_allclose(i1, i2, rtol=0, atol=1e-13)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert got[0] > 0 and got[2] == pytest.approx(0.5 * got[1])
    # what left the payload stays as emptied carriers (to float32 rounding of the column)
    assert got[3] == pytest.approx(got[0], rel=1e-6)
    assert float((e1.astype(np.float64) - carrier).sum()) == pytest.approx(got[3], rel=1e-12)
    # only live cells of a kind with a rate release; the rest keep their payload exactly
    live = np.isin(state, LIVE) & (rate[kind] > 0)
    assert np.array_equal(p1[~live], payload[~live])
    assert np.all(p1[live & (payload > 0)] < payload[live & (payload > 0)])


def test_release_to_field_conserves_drug_and_follows_the_exponential():
    kind, state, site, payload, c_drug, rate = depot_case(seed=5)
    phi, dt = 0.312, 6.0
    before = c_drug.sum() + phi * payload.astype(np.float64).sum()
    p, c = payload.copy(), c_drug.copy()
    from_payload, to_field, _, _ = nk.release_to_field(
        kind.size, kind, state, site, p, np.zeros_like(p), c, rate, np.zeros(1), 0.0, phi, dt)
    after = c.sum() + phi * p.astype(np.float64).sum()
    assert after == pytest.approx(before, rel=1e-14)
    assert to_field == pytest.approx(phi * from_payload, rel=1e-14)
    # one macrophage alone: exactly exp(-k dt) of its payload stays (to float32 rounding)
    i = int(np.flatnonzero((kind == codes.MACROPHAGE) & np.isin(state, LIVE) & (payload > 0))[0])
    assert p[i] == pytest.approx(payload[i] * math.exp(-0.06 / 60.0 * dt), rel=1e-6)
    # rate 0 everywhere: nothing moves
    p0, c0 = payload.copy(), c_drug.copy()
    e0 = np.zeros_like(p0)
    out = nk.release_to_field(kind.size, kind, state, site, p0, e0, c0, np.zeros(8), np.zeros(1),
                              0.0, phi, dt)
    assert out == (0.0, 0.0, 0.0, 0.0) and p0.tobytes() == payload.tobytes()
    assert not e0.any()
    assert c0.tobytes() == c_drug.tobytes()


def run_liposomes(rate_per_h, hours=12.0):
    m = TMEModel(TINY, **{
        "time.duration_h": hours,
        "therapy": [{"agent": LIPO, "route": "iv", "dose_mg_per_kg": 5.0}],
        f"nanoparticles.{LIPO}.release.macrophage_per_h": rate_per_h,
        "cells.macrophage.initial.count": 60,
    })
    worst = run_checking_ledgers(m)
    c, n = m.cells, m.cells.n
    mac = (c.kind[:n] == codes.MACROPHAGE) & np.isin(c.state[:n], LIVE)
    held = float(c.column("payload")[:n][mac].astype(np.float64).sum())
    return m, held, worst


def test_macrophage_depot_releases_into_the_field_and_the_ledgers_close():
    """With the depot, macrophages hold less payload and more doxorubicin is dosed from the
    carrier than when they hold everything; every ledger closes at every step."""
    m0, held0, worst0 = run_liposomes(0.0)
    m1, held1, worst1 = run_liposomes(0.5)
    assert held0 > 0  # macrophages did take particles up
    assert held1 < 0.8 * held0
    dox0 = m0.therapy.ledger()["doxorubicin"]["dosed"]
    dox1 = m1.therapy.ledger()["doxorubicin"]["dosed"]
    assert dox1 > dox0
    assert max(worst0, worst1) < 1e-11


def test_macrophage_depot_does_not_depend_on_thread_count(tmp_path):
    f = tmp_path / "depot.yaml"
    f.write_text(
        f"extends: {TINY}\nname: depot\n"
        "time: {duration_h: 6.0, record_every_h: 3.0}\n"
        "cells:\n  macrophage:\n    initial: {count: 60}\n"
        f"nanoparticles:\n  {LIPO}:\n    release: {{macrophage_per_h: 0.5}}\n"
        f"therapy:\n  - {{agent: {LIPO}, route: iv, dose_mg_per_kg: 5.0}}\n")
    outs = run_on_one_and_two_threads(f, tmp_path)
    assert_identical(outs[0], outs[1])
