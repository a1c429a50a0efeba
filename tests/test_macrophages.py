"""Tumour-educated macrophages (docs/biology.md §6): monocytes recruited where tumour-derived
CCL2 is, resident alveolar macrophages distinct from recruited ones (placed, flagged, recorded,
counted), the M2 activity that scales what macrophages release, and the hypoxic rise of the
CCL2 release of cancer cells. The polarisation rule itself is tested against its exact
solution in tests/test_biology.py."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from conftest import TINY, as_the_model_calls, run_cli
from tmesim import TMEModel, kinds
from tmesim import geometry as geo
from tmesim.cells import CellPopulation
from tmesim.errors import ScenarioError
from tmesim.kernels import agents as ka
from tmesim.kernels import codes
from tmesim.kernels import lattice as kl
from tmesim.scenario import load_scenario


def empty_population(n_sites, cap):
    """The arrays of an empty :class:`CellPopulation` on ``n_sites`` sites, as kernels take them."""
    return CellPopulation((1, 1, n_sites), capacity=cap).arrays()


# --------------------------------------------------------------------------- weighted arrivals
#: the kernel, called with plain tuples as the model calls it (conftest.as_the_model_calls)
recruit_weighted = as_the_model_calls(ka.recruit_weighted)


def test_weighted_arrivals_are_drawn_in_proportion_to_the_weights():
    """One arrival per step on an empty lattice lands on entry site j with probability
    w_j / sum(w); sites of weight 0 are never drawn."""
    entry = np.array([3, 7, 11, 20, 25, 31], np.int64)
    w = np.array([0.0, 1.0, 3.0, 0.0, 0.5, 2.5])
    cum = np.cumsum(w)
    hits = np.zeros(len(entry), np.int64)
    trials = 20_000
    for step in range(trials):
        p = empty_population(40, 2)
        n, next_id, placed = recruit_weighted(
            1, entry, cum, 8, codes.MACROPHAGE, 0, p, 0, 0, 5, step, 64)
        assert (n, next_id, placed) == (1, 1, 1)
        assert p.kind[0] == codes.MACROPHAGE and p.occ[p.site[0]] == 0
        hits[np.flatnonzero(entry == p.site[0])[0]] += 1
    assert hits[w == 0].sum() == 0
    expected = w / w.sum()
    sd = np.sqrt(expected * (1 - expected) / trials)
    assert np.all(np.abs(hits / trials - expected) <= 4 * sd + 1e-12), hits


def test_weighted_arrivals_without_weight_or_room_are_lost():
    entry = np.array([1, 2, 3], np.int64)
    p = empty_population(10, 8)
    none = recruit_weighted(3, entry, np.zeros(3), 8, codes.MACROPHAGE, 0, p, 0, 0, 1, 0, 64)
    assert tuple(map(int, none)) == (0, 0, 0)
    # one site of weight: the first arrival takes it, the others find it taken and are lost
    got = recruit_weighted(3, entry, np.array([0.0, 1.0, 1.0]), 8, codes.MACROPHAGE, 0, p, 0,
                           0, 1, 0, 64)
    assert tuple(map(int, got)) == (1, 1, 1) and p.occ[2] == 0


# --------------------------------------------------------------------------- in the model
def lung(**kw):
    """A small lung patch with no cells unless asked for, no T-cell arrivals."""
    return {
        "domain.geometry": "lung", "domain.shape": [40, 40], "seed": 3,
        "domain.lung.alveolar_diameter_um": 100.0,
        "time.dt_min": 30.0, "numerics.diffusion_dt_min": 10.0, "time.duration_h": 48.0,
        "time.record_every_h": 12.0,
        "cells.tumor.initial.count": 0, "cells.stem.initial.count": 0,
        "cells.tcell.recruitment.per_1000_tumor_per_h": 0.0,
        "cells.tcell.priming.enabled": False,
        **kw,
    }


def check_arrivals_follow_signal(m, field, kind, per_site, half, steps, check=None):
    """Step only the arrivals of ``m`` with ``field`` at 20 on the capillaries of the left half
    and 0 elsewhere: every arrival, of ``kind``, lands on a left capillary (``check(start,
    stop)`` may test the new rows further), and the count over ``steps`` steps of 0.5 h is
    Poisson with mean per_site x sum H(20; half) x dt x steps."""
    dyn = m.dynamics
    signal = m.fields.flat(field)
    entry = dyn.entry_sites
    assert np.all(m.tissue.codes.reshape(-1)[entry] == geo.CAPILLARY)
    left = (entry % 40) < 20
    signal[entry[left]] = 20.0
    dt_h = 0.5
    arrivals = 0
    for step in range(steps):
        start = m.cells.n
        arrivals += dyn._recruit(dt_h, step, 7, 0)
        new = m.cells.site[start : m.cells.n]
        assert np.all(np.isin(new, entry[left]))
        assert np.all(m.cells.kind[start : m.cells.n] == kind)
        if check is not None:
            check(start, m.cells.n)
        m.cells.state[start : m.cells.n] = codes.REMOVED  # keep the sites free
        m.cells.occ[new] = -1
        m.cells.compact()
    mean = per_site * left.sum() * 20.0 / (20.0 + half) * dt_h * steps
    assert abs(arrivals - mean) <= 4 * math.sqrt(mean), (arrivals, mean)


def test_monocytes_arrive_where_ccl2_is_in_proportion_to_its_hill_term():
    """Arrivals at free capillaries with rate per_site x H(CCL2; half) each: none where CCL2 is
    0, and a mean count per step of per_site x sum H x dt."""
    m = TMEModel(**lung(**{"cells.macrophage.recruitment.per_site_per_h": 0.05}))

    def recruited(start, stop):
        assert np.all(m.cells.column("aux")[start:stop] == 0)  # recruited, not resident
        np.testing.assert_allclose(m.cells.column("phenotype")[start:stop],
                                   m.scenario.cells.macrophage.recruited_polarisation, rtol=1e-6)

    check_arrivals_follow_signal(m, "ccl2", codes.MACROPHAGE, 0.05,
                                 m.scenario.cells.macrophage.recruitment.signal_half, 400,
                                 recruited)


def test_without_a_tumour_no_monocyte_arrives_and_no_macrophage_turns_m2():
    """A lung without cancer cells holds no CCL2: no monocytes are recruited, and resident
    macrophages stay at their resting polarisation (no M2 from day 0, no self-education)."""
    m = TMEModel(**lung(**{"cells.macrophage.initial.count": 30,
                           "cells.macrophage.initial.placement": "alveolar",
                           "cells.fibroblast.initial.count": 30}))
    while m.running:
        m.step()
        met = m.metrics()
        assert met["macrophage_m2_fraction"] == 0.0
        assert met["macrophage_recruited_count"] == 0.0
    assert met["macrophage_resident_count"] == 30.0
    assert np.all(m.fields["ccl2"] == 0.0) and np.all(m.fields["tgfb"] == 0.0)
    mac = m.cells.kind[: m.cells.n] == codes.MACROPHAGE
    np.testing.assert_allclose(m.cells.column("phenotype")[: m.cells.n][mac],
                               m.scenario.cells.macrophage.initial_polarisation, rtol=1e-6)


def test_residents_start_on_alveolar_surfaces_and_are_told_apart_from_recruits(tmp_path):
    """Initial macrophages are the resident alveolar ones: on tissue next to air, flagged in
    /cells/resident (1), counted in macrophage_resident_count; monocytes recruited later carry
    0 and are counted in macrophage_recruited_count."""
    out = tmp_path / "tiny.h5"
    r = run_cli("run", TINY, "-o", out, "-q", "--set", "time.duration_h=24",
                "--set", "cells.macrophage.recruitment.per_site_per_h=0.05")
    assert r.returncode == 0, r.stderr
    sc = load_scenario(TINY)
    tissue = TMEModel(TINY).tissue.codes
    surface = geo.alveolar_surface(tissue)
    with h5py.File(out, "r") as f:
        g = f["cells"]
        off = g["offsets"][()]
        first = slice(off[0], off[1])
        kind, res = g["kind"][first], g["resident"][first]
        mac = kind == codes.MACROPHAGE
        assert mac.sum() == sc.cells.macrophage.initial.count
        assert np.all(res[mac] == 1) and np.all(res[~mac] == 0)
        assert np.all(surface[g["y"][first][mac], g["x"][first][mac]])
        resident_ids = set(g["id"][first][mac].tolist())
        last = slice(off[-2], off[-1])
        kind, res, ids = g["kind"][last], g["resident"][last], g["id"][last]
        mac = kind == codes.MACROPHAGE
        assert np.all((res[mac] == 1) == np.isin(ids[mac], list(resident_ids)))
        assert (res[mac] == 0).sum() > 0, "no monocyte arrived"
        assert f["metrics/macrophage_recruited_count"][-1] == (res[mac] == 0).sum()
        assert f["metrics/macrophage_resident_count"][-1] == (res[mac] == 1).sum()


def test_alveolar_placement_needs_air():
    with pytest.raises(ScenarioError, match="alveolar"):
        TMEModel(**{"domain.geometry": "tissue", "domain.shape": [20, 20],
                    "cells.macrophage.initial.count": 5,
                    "cells.macrophage.initial.placement": "alveolar"})


# --------------------------------------------------------------------------- release
def test_release_scales_with_m2_activity_and_hypoxia_raises_cancer_ccl2():
    """A macrophage releases nothing at or below the M1/M2 midpoint and (2p - 1) x E above it;
    a quiescent (hypoxic) cancer cell releases hypoxic_release_factor x E, a proliferating one
    E."""
    n = 5
    kind = np.array([codes.MACROPHAGE] * 3 + [codes.TUMOR] * 2, np.int8)
    state = np.array([0, 0, 1, 0, 1], np.int8)
    site = np.arange(n, dtype=np.int32)
    pheno = np.array([0.3, 0.5, 0.9, 0, 0], np.float32)
    aux = np.zeros(n, np.float32)
    zero = np.zeros((codes.N_KINDS, 1))
    release = np.zeros((codes.N_KINDS, 1))
    release[[codes.MACROPHAGE, codes.TUMOR], 0] = 2.0
    hypoxic = np.ones((codes.N_KINDS, 1))
    hypoxic[codes.TUMOR, 0] = 3.0
    sink, source = np.zeros((1, n)), np.zeros((1, n))
    activity = np.array(kinds.activities(), np.int8)
    tables = kl.ExchangeTables(zero, zero, release, hypoxic, activity,
                               np.full((3, codes.N_KINDS, 1), -1.0))
    occ = site.copy()  # cell i on site i
    kl.exchange_maps(n, kind, state, occ, pheno, aux, tables, np.zeros((1, n)), sink, source)
    np.testing.assert_allclose(source[0], [0.0, 0.0, 2.0 * (2 * 0.9 - 1), 2.0, 6.0], rtol=1e-6)


# --------------------------------------------------------------------------- scenario keys
def test_recruitment_signal_must_be_a_field_and_removing_the_field_drops_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cells:\n  macrophage:\n    recruitment: {signal: nothing}\n")
    with pytest.raises(ScenarioError, match=r"recruitment\.signal"):
        load_scenario(bad)
    gone = tmp_path / "gone.yaml"
    gone.write_text("fields:\n  ccl2: null\n")
    sc = load_scenario(gone)
    assert sc.cells.macrophage.recruitment.signal is None
    assert "ccl2" not in sc.cells.tumor.secretion


def test_only_cancer_cells_release_more_when_hypoxic(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cells:\n  fibroblast:\n    secretion:\n"
                   "      ccl2: {release_per_min: 10.0, hypoxic_release_factor: 2.0}\n")
    with pytest.raises(ScenarioError, match="hypoxic_release_factor"):
        load_scenario(bad)
