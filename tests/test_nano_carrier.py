"""Particle material after release (docs/pharmacology.md §13.12): the emptied-carrier kernels
against pure-Python twins, the particle-material ledger of a run with uptake, release, division,
death and carrier loss, the particle-label metric, that carriers change nothing else, and bad
values of ``carrier_loss_per_h``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import TINY, run_cli
from test_io import datasets
from tmesim import TMEModel
from tmesim.cli import main
from tmesim.errors import ScenarioError
from tmesim.kernels import codes, layout
from tmesim.kernels import nanoparticles as nk
from tmesim.scenario import scenario_from_dict
from tmesim.therapy import LEDGER_KEYS

LIPO = "liposomal_doxorubicin"
LIVE = (codes.PROLIFERATING, codes.QUIESCENT)
KEY = f"nanoparticles.{LIPO}.carrier_loss_per_h"


# --------------------------------------------------------------------------- twins
def _drain_twin(p, k, dt):
    """What first-order loss at ``k`` over ``dt`` leaves of float32 ``p`` and the stored drop."""
    kept = np.float32(float(p) - float(p) * -math.expm1(-k * dt))
    return kept, float(p) - float(kept)


def empty_twin(i, kind, state, payload, carrier, rate, dt):
    """One cell of the release twins: live cell ``i`` releases at ``rate[kind]``, and what left
    its payload stays as emptied carriers. Returns (stored drop of the payload, stored gain of
    the carriers), zeros when nothing moves."""
    k = float(rate[kind[i]])
    if k <= 0.0 or int(state[i]) not in LIVE or float(payload[i]) <= 0.0:
        return 0.0, 0.0
    payload[i], moved = _drain_twin(payload[i], k, dt)
    held = np.float32(float(carrier[i]) + moved)
    gain = float(held) - float(carrier[i])
    carrier[i] = held
    return moved, gain


def co_release_twin(inhibitor, v, released, ratio):
    """A co-loaded inhibitor following ``released`` drug into voxel ``v``; returns what it
    added (0 without an inhibitor field or co-load)."""
    if len(inhibitor) <= 1 or ratio <= 0.0:
        return 0.0
    inhibitor[v] += released * ratio
    return released * ratio


def release_inside_twin(n, kind, state, site, payload, carrier, drug, rate, inhibitor, ratio,
                        phi, dt):
    """Slow twin of ``nk.release_inside``: one cell after the other, in Python floats."""
    to_drug = from_payload = to_inhibitor = to_carrier = 0.0
    for i in range(n):
        moved, gain = empty_twin(i, kind, state, payload, carrier, rate, dt)
        if moved <= 0.0:
            continue
        new = np.float32(float(drug[i]) + moved)
        to_drug += float(new) - float(drug[i])
        drug[i] = new
        from_payload += moved
        to_carrier += gain
        to_inhibitor += co_release_twin(inhibitor, site[i], phi * moved, ratio)
    return to_drug, from_payload, to_inhibitor, to_carrier


def lose_carriers_twin(n, kind, state, carrier, rate, dt):
    lost = 0.0
    for i in range(n):
        k = float(rate[kind[i]])
        if k <= 0.0 or int(state[i]) not in LIVE or float(carrier[i]) <= 0.0:
            continue
        carrier[i], out = _drain_twin(carrier[i], k, dt)
        lost += out
    return lost


def remove_dead_twin(n, state, held):
    total = 0.0
    for i in range(n):
        if int(state[i]) == codes.REMOVED:
            total += float(held[i])
            held[i] = 0.0
    return total


def cells_case(seed=4, n=300, sites=200):
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 5, n).astype(np.int8)
    state = rng.choice([codes.PROLIFERATING, codes.QUIESCENT, codes.NECROTIC, codes.REMOVED],
                       n).astype(np.int8)
    site = rng.integers(0, sites, n).astype(np.int32)
    payload = (rng.random(n) * 40).astype(np.float32)
    payload[::5] = 0.0
    carrier = (rng.random(n) * 30).astype(np.float32)
    carrier[::3] = 0.0
    drug = (rng.random(n) * 5).astype(np.float32)
    rate = np.zeros(8)
    rate[codes.TUMOR] = rate[codes.STEM] = 0.06 / 60.0
    rate[codes.MACROPHAGE] = 0.5 / 60.0
    return kind, state, site, payload, carrier, drug, rate


def test_release_inside_matches_its_twin_and_keeps_the_emptied_particles():
    kind, state, site, payload, carrier, drug, rate = cells_case()
    inhib = np.zeros(200)
    a = [x.copy() for x in (payload, carrier, drug, inhib)]
    b = [x.copy() for x in (payload, carrier, drug, inhib)]
    got = nk.release_inside(kind.size, kind, state, site, a[0], a[1], a[2], rate, a[3], 0.5,
                            0.312, 6.0)
    want = release_inside_twin(kind.size, kind, state, site, b[0], b[1], b[2], rate, b[3], 0.5,
                               0.312, 6.0)
    for x, y in zip(a[:3], b[:3], strict=True):
        assert x.tobytes() == y.tobytes()
    np.testing.assert_allclose(a[3], b[3], rtol=0, atol=1e-13)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert got[1] > 0 and got[3] == pytest.approx(got[1], rel=1e-6)
    # payload + carrier per cell is kept to float32 rounding; dead cells and kinds without a
    # rate are untouched
    before = payload.astype(np.float64) + carrier
    after = a[0].astype(np.float64) + a[1]
    np.testing.assert_allclose(after, before, rtol=1e-6)
    still = ~(np.isin(state, LIVE) & (rate[kind] > 0))
    assert np.array_equal(a[1][still], carrier[still])
    moved = np.isin(state, LIVE) & (rate[kind] > 0) & (payload > 0)
    assert np.all(a[1][moved] > carrier[moved])


def test_lose_carriers_and_remove_dead_match_their_twins():
    kind, state, _site, _payload, carrier, _drug, rate = cells_case(seed=9)
    c1, c2 = carrier.copy(), carrier.copy()
    lost = nk.lose_carriers(kind.size, kind, state, c1, rate, 6.0)
    assert lost == pytest.approx(lose_carriers_twin(kind.size, kind, state, c2, rate, 6.0),
                                 rel=1e-13)
    assert c1.tobytes() == c2.tobytes()
    assert lost > 0
    assert lost == pytest.approx(float((carrier.astype(np.float64) - c1).sum()), rel=1e-12)
    # one macrophage: exp(-k dt) of its carriers stays; dead cells keep theirs
    i = int(np.flatnonzero((kind == codes.MACROPHAGE) & np.isin(state, LIVE) & (carrier > 0))[0])
    assert c1[i] == pytest.approx(carrier[i] * math.exp(-0.5 / 60.0 * 6.0), rel=1e-6)
    dead = ~np.isin(state, LIVE)
    assert np.array_equal(c1[dead], carrier[dead])
    # the removed take theirs with them, nobody else loses any
    h1, h2 = carrier.copy(), carrier.copy()
    gone = nk.remove_dead(kind.size, state, h1)
    assert gone == pytest.approx(remove_dead_twin(kind.size, state, h2), rel=1e-13)
    assert h1.tobytes() == h2.tobytes()
    removed = state == codes.REMOVED
    assert gone > 0 and not h1[removed].any()
    assert np.array_equal(h1[~removed], carrier[~removed])


# --------------------------------------------------------------------------- the model
def test_carrier_layout_is_a_held_pool_of_every_formulation():
    rows, extra = layout.agent_columns({"nanoparticle": ["a", "b"]})
    assert rows["a"]["carrier"] == layout.CARRIER
    assert [c.name for c in extra] == ["payload_b", "carrier_b"]
    pools = layout.pool_rows(extra)
    assert rows["a"]["carrier"] in pools and rows["b"]["carrier"] in pools
    assert layout.division("carrier") == "held" and layout.division("payload") == "pool"


def carrier_run(hours=12.0, **over):
    """The tiny scenario with one liposome dose, fast uptake, release and carrier loss, and a
    potent drug, so that cells take particles up, empty them, divide and die within hours."""
    return TMEModel(TINY, **{
        "time.duration_h": hours,
        "therapy": [{"agent": LIPO, "dose_mg_per_kg": 9.0, "start_h": 0.0}],
        f"nanoparticles.{LIPO}.release.intracellular_per_h": 1.0,
        f"nanoparticles.{LIPO}.tumor_uptake_per_h": 1.0,
        KEY: 0.1,
        "agents.doxorubicin.emax_per_h": 0.5,
        **over,
    })


def test_particle_material_ledger_closes_every_step_with_release_division_death_and_loss():
    m = carrier_run()
    first_new_id = m.cells.next_id  # cells born after this one divided in the run
    worst = worst_carrier = 0.0
    while m.running:
        m.step()
        for name, e in m.therapy.ledger().items():
            if e["dosed"] > 0:
                rest = sum(e[k] for k in LEDGER_KEYS if k != "dosed")
                worst = max(worst, abs(rest - e["dosed"]) / e["dosed"])
            if name == LIPO and e["emptied"] > 0:
                held = e["carriers"] + e["carrier_lost"] + e["carrier_removed"]
                worst_carrier = max(worst_carrier, abs(held - e["emptied"]) / e["emptied"])
    e = m.therapy.ledger()[LIPO]
    assert e["emptied"] > 0 and e["carriers"] > 0
    assert e["carrier_lost"] > 0 and e["carrier_removed"] > 0  # loss and death both acted
    # the released payload became carrier material (float32 rounding of the column apart)
    assert e["emptied"] < e["released"]
    assert worst < 1e-11 and worst_carrier < 1e-11
    # daughters born in the run hold emptied particles: a division split them
    c, n = m.cells, m.cells.n
    born = c.column("id")[:n] >= first_new_id
    assert born.any() and (c.agent_column(LIPO, "carrier")[:n][born] > 0).any()


def test_label_metric_is_carried_particles_plus_carriers_of_live_cancer_cells():
    m = carrier_run(hours=4.0)
    while m.running:
        m.step()
    got = m.therapy.metrics()
    c, n = m.cells, m.cells.n
    live = np.isin(c.kind[:n], (codes.TUMOR, codes.STEM)) & np.isin(c.state[:n], LIVE)
    sites = c.site[:n][live]
    phi = m.therapy.phi
    carried = (m.fields.flat(LIPO)[sites].sum()
               + phi * c.agent_column(LIPO, "payload")[:n][live].astype(np.float64).sum())
    emptied = phi * c.agent_column(LIPO, "carrier")[:n][live].astype(np.float64).sum()
    assert emptied > 0
    assert got["tumor_np_drug_uM"] == pytest.approx(carried / len(sites), rel=1e-12)
    assert got["tumor_np_label_uM"] == pytest.approx((carried + emptied) / len(sites),
                                                     rel=1e-12)
    assert m.metric_units()["tumor_np_label_uM"] == "uM"


def test_carrier_loss_changes_only_the_carriers_and_the_label(tmp_path):
    """Emptied particles act on nothing: runs without and with fast carrier loss give the same
    datasets except the carrier column and the label metric."""
    outs = []
    for rate in (0.0, 0.5):
        f = tmp_path / f"loss{rate}.yaml"
        f.write_text(
            f"extends: {TINY}\nname: carrier\n"
            "time: {duration_h: 6.0, record_every_h: 2.0}\n"
            f"nanoparticles:\n  {LIPO}:\n    carrier_loss_per_h: {rate}\n"
            f"    tumor_uptake_per_h: 1.0\n    release: {{intracellular_per_h: 1.0}}\n"
            f"therapy:\n  - {{agent: {LIPO}, route: iv, dose_mg_per_kg: 9.0}}\n")
        out = tmp_path / f"loss{rate}.h5"
        r = run_cli("run", f, "-o", out, "-q")
        assert r.returncode == 0, r.stderr
        outs.append(datasets(out))
    a, b = outs
    assert sorted(a) == sorted(b)
    differ = sorted(k for k in a if a[k] != b[k])
    assert differ and all("carrier" in k or "np_label" in k for k in differ), differ


@pytest.mark.parametrize("value", ["-0.1", "fast", ".nan"])
def test_a_bad_carrier_loss_exits_2_naming_the_key(value, capsys):
    assert main(["validate", str(TINY), "--set", f"{KEY}={value}"]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "carrier_loss_per_h" in text


def test_carrier_loss_default_and_zero():
    assert scenario_from_dict(None, []).nanoparticles[LIPO].carrier_loss_per_h == 0.01
    assert scenario_from_dict(None, [(KEY, 0.0)]).nanoparticles[LIPO].carrier_loss_per_h == 0.0
    with pytest.raises(ScenarioError):
        scenario_from_dict(None, [(KEY, -1.0)])
