"""Cell kernels against their pure-Python twins (tests/naive_cells.py), bit for bit, and the
counter-based random generator's distribution and stream independence."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import stats

import naive_cells as naive
from conftest import as_the_model_calls
from tmesim import kinds
from tmesim.cells import CellPopulation
from tmesim.kernels import agents as ka
from tmesim.kernels import cancer as kc
from tmesim.kernels import codes, layout
from tmesim.kernels import immune as ki
from tmesim.kernels import lattice as kl
from tmesim.kernels import neighbourhood as nb
from tmesim.kernels import random as kr
from tmesim.kernels.rules import B_DEATH, B_DIVISION, B_KILL, B_MIGRATION, R_NCOLS, apply_rules

# (nz, ny, nx): 2-D, 3-D, and 1-voxel-wide lattices
SHAPES = [(1, 7, 9), (1, 1, 15), (1, 12, 1), (4, 5, 6), (3, 1, 5), (5, 1, 1)]

#: the pool rows of a store with one agent per role (split at a division)
POOLS = np.array(layout.POOLS, np.int64)


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


# --------------------------------------------------------------------------- the whole cell phase
N_F32 = len(layout.block_names("f32"))  # rows of the float32 block

# Lattices with an alveolar-air mask as well as without (shape -> air fraction)
AIR_SHAPES = [(1, 9, 11), (1, 1, 15), (4, 5, 6), (3, 1, 5)]


def cell_state(shape3, rng, fill=0.55, air=False, n_removed=2, share=False):
    """A random population of every kind on a small lattice, with fields and parameters.

    Non-cancer cells sit on tissue; cancer cells may sit in lumens. A few REMOVED rows (not in
    ``occ``) exercise the skip paths. Capacity leaves room for every cell dividing and for
    arrivals. With ``share`` the T cells are on the small-cell layer (``small``), half of them
    moved onto sites that hold a cancer cell; otherwise ``small`` is the length-1 stand-in.
    """
    nz, ny, nx = shape3
    n_sites = nz * ny * nx
    air_mask = np.zeros(1, dtype=bool)
    if air:  # scattered air sites and one lumen whose interior touches no tissue by a face
        lumen = np.zeros(shape3, dtype=bool)
        lumen[tuple(slice(m // 4, m - m // 4) if m >= 3 else slice(None) for m in shape3)] = True
        air_mask = (rng.random(n_sites) < 0.2) | lumen.reshape(-1)
    n = max(2, int(fill * n_sites))
    cap = 2 * n + 40
    sites = rng.choice(n_sites, size=n, replace=False)
    kind = rng.choice([0, 1, 2, 3, 4], n, p=[0.35, 0.15, 0.2, 0.15, 0.15]).astype(np.int8)
    if air:  # only cancer cells may sit on air
        kind[air_mask[sites]] = rng.choice([0, 1], int(air_mask[sites].sum())).astype(np.int8)
    s = {
        "ids": np.zeros((2, cap), np.int64),
        "i32": np.zeros((2, cap), np.int32),
        "f32": np.zeros((len(layout.block_names("f32")), cap), np.float32),
        "kind": np.zeros(cap, np.int8),
        "state": np.zeros(cap, np.int8),
        "site": np.zeros(cap, np.int32),
        "occ": np.full(n_sites, -1, np.int32),
    }
    s["ids"][layout.ID, :n] = rng.permutation(10 * n)[:n]
    s["ids"][layout.PARENT, :n] = -1
    s["i32"][layout.GENERATION, :n] = rng.integers(0, 4, n)
    s["i32"][layout.DIVISIONS_LEFT, :n] = rng.integers(-1, 4, n)
    # the rows of the columns before the DNA-bound pools, drawn as then; bound and retained
    # drug and damage follow the drug without drawing (so that every later draw is unchanged)
    # (the immunogenic-death mark is 0 on every cell until the step it dies; the T-cell lineage
    # is set from the ids, without drawing, half progenitors)
    older = [r for r in range(s["f32"].shape[0])
             if r not in (layout.BOUND, layout.RETAINED, layout.DAMAGE, layout.ICD, layout.TCF1)]
    s["f32"][older, :n] = rng.uniform(0.0, 1.0, (len(older), n)).astype(np.float32)
    s["f32"][layout.TCF1, :n] = s["ids"][layout.ID, :n] % 2
    s["f32"][layout.CLOCK_H, :n] *= 4.0  # clocks up to 4 h (lysis times are 2-3 h below)
    s["f32"][layout.AUX, :n] = rng.integers(0, 2, n)
    s["kind"][:n] = kind
    cancer = (kind == codes.TUMOR) | (kind == codes.STEM)
    st = np.where(
        cancer,
        rng.choice([0, 1, 2], n, p=[0.6, 0.2, 0.2]),
        rng.choice([0, 1], n, p=[0.75, 0.25]),
    ).astype(np.int8)
    s["state"][:n] = st
    s["site"][:n] = sites
    s["occ"][sites] = np.arange(n, dtype=np.int32)
    for i in rng.choice(n, size=min(n_removed, n - 1), replace=False):
        s["state"][i] = codes.REMOVED
        s["occ"][sites[i]] = -1
    f = {
        "oxygen": rng.uniform(0.0, 20.0, n_sites),
        "tgfb": rng.uniform(0.0, 3.0, n_sites),
        "ifng": rng.uniform(0.0, 2.0, n_sites),
        # rounded so that chemotaxis meets ties
        "chemo": np.round(rng.uniform(0.0, 1.0, n_sites), 1),
        "ecm": rng.uniform(0.0, 1.0, n_sites),
        "antibody": rng.uniform(0.0, 2.0, n_sites),
    }
    # no IFN-gamma and no growth factor on part of the lattice and no drug in part of the cells,
    # so that cancer cells at constant rates take the kernel's constant-rate pass (see
    # constant_rate_cells)
    f["ifng"][rng.random(n_sites) < 0.4] = 0.0
    s["f32"][layout.DRUG, :n][rng.random(n) < 0.5] = 0.0
    s["f32"][layout.BOUND, :n] = 100.0 * s["f32"][layout.DRUG, :n]
    s["f32"][layout.RETAINED, :n] = 200.0 * s["f32"][layout.DRUG, :n]
    s["f32"][layout.DAMAGE, :n] = s["f32"][layout.DRUG, :n]
    f["egf"] = np.where(rng.random(n_sites) < 0.2, rng.uniform(0.0, 2.0, n_sites), 0.0)
    f["fields"] = np.stack([f["oxygen"], f["tgfb"], f["ifng"], f["egf"]])
    # CCL2 (macrophage M2 drive and signal-driven arrivals), drawn last to keep the draws above
    f["ccl2"] = np.where(rng.random(n_sites) < 0.3, 0.0, rng.uniform(0.0, 3.0, n_sites))
    s["small"] = np.full(n_sites if share else 1, -1, np.int32)
    if share:  # drawn last, from a stream of its own, to keep every draw above
        share_layer(n, s, air_mask, np.random.default_rng([n, n_sites]))
    return n, s, air_mask, f


def share_layer(n, s, air, rng):
    """Move the T cells of ``s`` from ``occ`` to ``small``, half of them (where they can) onto
    tissue sites (not ``air``) held by a cancer cell and by no other T cell."""
    t_rows = np.flatnonzero((s["kind"][:n] == codes.TCELL) & (s["state"][:n] != codes.REMOVED))
    s["occ"][s["site"][t_rows]] = -1
    live = (s["state"][:n] != codes.REMOVED) & np.isin(s["kind"][:n], [codes.TUMOR, codes.STEM])
    if len(air) > 1:
        live &= ~air[s["site"][:n]]
    cancer_sites = list(rng.permutation(s["site"][:n][live]))
    for i in t_rows:
        if rng.random() < 0.5 and cancer_sites:
            s["site"][i] = cancer_sites.pop()
        s["small"][s["site"][i]] = i


def cancer_params(plastic=True, growth=True, push=True, drug_row=layout.DRUG, second=None,
                  combination=kc.COMBINE_BLISS):
    """Per-kind cancer parameters; ``plastic`` switches tumour-to-stem conversion on (a kind that
    converts never takes the constant-rate pass), ``growth`` the division boost by the growth
    factor (row 3 of the fields of :func:`cell_state`), ``push`` division by pushing (2 sites
    for tumour cells, 3 for stem-like ones). One drug whose hazard reads ``drug_row``; with
    ``second`` (a float32 row) a second drug reading that row, the two combined by
    ``combination``."""
    n_drugs = 1 if second is None else 2
    p = np.zeros((codes.N_KINDS, kc.C_NPARAMS + n_drugs * kc.D_NCOLS))
    for k, vals, drug in (
        (codes.TUMOR, (0.8, 1.5, 0.2, 0.0, 4, 10.0, 5.0, 2.5, 0.5, 3.0, 0.05, 0.5,
                       0.2 if plastic else 0.0, 1.0, 0.05, 1.0, 0.11, 1.26, 0.3,
                       3, 1.5 if growth else 0.0, 0.5, 2 if push else 0),
         (0.3, 0.5, 2.0, 0.7)),
        (codes.STEM, (1.2, 0.7, 0.0, 0.4, 0, 8.0, 4.0, 4.0, 0.3, 2.0, 0.02, 0.5,
                      0.0, 1.0, 0.1, 0.8, 0.3, 2.0, 0.5, 3 if growth else -1, 0.7, 1.0,
                      3 if push else 0),
         (0.2, 0.5, 1.0, 1.0)),
    ):
        p[k, :len(vals)] = vals
        p[k, kc.C_DRUG_COMBINATION] = combination
        # the drug: the cell column its hazard reads, Emax, EC50, Hill power, and the share of
        # its kills that are immunogenic (the death's share is marked in column icd)
        p[k, kc.C_NPARAMS:kc.C_NPARAMS + kc.D_NCOLS] = (drug_row, *drug)
        if second is not None:  # a steeper second drug, not immunogenic
            p[k, kc.C_NPARAMS + kc.D_NCOLS:] = (second, 0.5 * drug[0], 0.3, 3.0, 0.0)
    return p


def holds_drug(f32, k, par):
    """Per row: whether the cell holds a drug its kind ``k`` responds to."""
    out = np.zeros(f32.shape[1], bool)
    for c0 in range(kc.C_NPARAMS, par.shape[1], kc.D_NCOLS):
        rows = par[k, c0 + kc.D_ROW].astype(int)
        out |= (par[k, c0 + kc.D_EMAX] > 0) & ~(f32[rows, np.arange(f32.shape[1])] <= 0)
    return out


def constant_rate_cells(n, s, f, par, rules):
    """Live cancer rows that the kernel's constant-rate pass decides, and those it leaves to the
    general rules (module docstring of kernels/cancer.py): no rule on the kind's death, division
    or migration and no plasticity, pO2 at or above the necrosis threshold, no IFN-gamma, no
    growth factor it responds to, no drug it responds to."""
    kind, state, site = s["kind"][:n], s["state"][:n], s["site"][:n]
    live = np.isin(kind, [codes.TUMOR, codes.STEM]) & (state <= codes.QUIESCENT)
    ruled = {int(r[0]) for r in rules if int(r[2]) in (B_DIVISION, B_MIGRATION, B_DEATH)}
    varies = np.array([k in ruled or (k == codes.TUMOR and par[k, kc.C_PLASTICITY_RATE] > 0)
                       for k in range(codes.N_KINDS)])
    k = kind.astype(int)
    grows = (par[k, kc.C_GF_FIELD] >= 0) & (par[k, kc.C_GF_BOOST] > 0) & (f["egf"][site] > 0)
    fast = (live & ~varies[k] & (f["oxygen"][site] >= par[k, kc.C_NECROSIS])
            & (f["ifng"][site] <= 0) & ~grows
            & ~holds_drug(s["f32"][:, :n], k, par))
    return np.flatnonzero(fast), np.flatnonzero(live & ~fast)


# kill, PD-L1 suppression, exhaustion hours, lifespan, exhausted lifespan, migration, bias, ECM
# half, TGF-b half, antibody Kd, PD-L1 exhaustion gain, lytic store, refill hours, division
# rate, exhaustion spread
T_PAR = np.array([2.0, 0.7, 2.0, 20.0, 5.0, 3.0, 0.5, 0.5, 2.0, 0.4, 0.5, 1.5, 3.0, 0.6, 0.4,
                  0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
# the same with progenitors and effectors (biology.md §5.10): on, arrival fraction, progenitor
# division rate, differentiation probability, progenitor kill factor, effector budget
T_PAR_LINEAGE = T_PAR.copy()
T_PAR_LINEAGE[ki.T_PROGENITOR:ki.T_EFFECTOR_DIVISIONS + 1] = (1.0, 0.5, 0.8, 0.4, 0.3, 2.0)
# T cells on the small-cell layer (sites shared, biology.md §4.10)
T_PAR_SHARE = T_PAR.copy()
T_PAR_SHARE[ki.T_SHARES_SITE] = 1.0
# phagocytosis, to M1, to M2, IFN-g half, TGF-b half, hypoxia, contact, lifespan, migration,
# bias, CCL2 weight, CCL2 half, relaxation, recruited rest, resident rest, resident M2 factor,
# resident lifespan
M_PAR = np.array([1.0, 0.5, 0.3, 1.0, 1.0, 10.0, 1.0, 30.0, 2.0, 0.5, 0.8, 1.5, 0.1, 0.3, 0.4,
                  0.5, 60.0])
F_PAR = np.array([0.5, 1.0, 1.0, 0.2, 1.0])

def rule_table(with_rules):
    """Rules on every behaviour the kernels read: (kind, signal, behaviour, max, half, power)."""
    if not with_rules:
        return np.zeros((0, R_NCOLS))
    return np.array([
        (codes.TUMOR, 1, B_DIVISION, 2.0, 1.0, 2.0),
        (codes.TUMOR, 0, B_DEATH, 0.5, 3.0, 1.0),
        (codes.STEM, -1, B_MIGRATION, 0.1, 0.5, 1.0),
        (codes.TUMOR, 2, B_MIGRATION, 3.0, 1.0, 1.5),
        (codes.TCELL, -1, B_KILL, 0.5, 0.3, 2.0),
        (codes.TCELL, 1, B_DEATH, 0.3, 2.0, 1.0),
        (codes.TCELL, 2, B_MIGRATION, 6.0, 1.0, 1.0),
        (codes.TCELL, 0, B_DIVISION, 0.0, 1.0, 1.0),
        (codes.MACROPHAGE, 2, B_KILL, 3.0, 1.0, 1.0),
        (codes.MACROPHAGE, 0, B_DEATH, 0.2, 5.0, 1.0),
        (codes.MACROPHAGE, 1, B_MIGRATION, 0.5, 1.0, 1.0),
    ], dtype=float)


def copy_state(s):
    return {k: v.copy() for k, v in s.items()}


def assert_same(a, b, what):
    """Integer and boolean arrays bit for bit; float arrays to 1e-12 relative.

    The kernels compile with fastmath 'contract', so LLVM may fuse ``a * b + c`` into one FMA
    on CPUs that have it; such a result differs from the twin's by 1 ulp of float64 (seen:
    2e-16 relative on the ECM update). Every decision (action, target, kind, state, site, ids)
    must still agree exactly.
    """
    for k in a:
        if np.issubdtype(a[k].dtype, np.floating):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-15, err_msg=f"{what}: {k}")
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


def views_of(f) -> ka.FieldViews:
    """The :class:`~tmesim.kernels.agents.FieldViews` of a field dict (the chemokine is also
    what macrophages climb)."""
    return ka.FieldViews(oxygen=f["oxygen"], ifng=f["ifng"], tgfb=f["tgfb"], chemokine=f["chemo"],
                         ecm=f["ecm"], antibody=f["antibody"], ccl2=f["ccl2"],
                         attractant=f["chemo"], all=f["fields"])


def intents_of(w) -> ka.Intents:
    """The :class:`~tmesim.kernels.agents.Intents` of a work dict."""
    return ka.Intents(w["action"], w["target"], w["dkind"], w["ddiv"])


def cell_phase(mod, n, s, air, f, rules, shape, dt, seed, step, w, next_id, par=None,
               t_par=None):
    """One cell phase (the four decide kernels, apply, arrivals) with kernels or twins.

    ``mod`` is a namespace with the kernels or the twins under the kernels' names; ``par`` the
    cancer parameters (default :func:`cancer_params`), ``t_par`` the T-cell ones (default
    :data:`T_PAR`).
    """
    par = cancer_params() if par is None else par
    t_par = T_PAR if t_par is None else t_par
    cells, lattice, keys = naive.cell_arrays(s), ka.Lattice(shape, air), ka.StepKeys(dt, seed, step)
    intents = intents_of(w)
    views = views_of(f)
    mod.cancer_decide(n, cells, lattice, views, par, rules, keys, intents)
    yield "cancer_decide"
    mod.tcell_decide(n, cells, lattice, f["chemo"], f["tgfb"], f["ecm"], f["antibody"], f["fields"],
                     t_par, rules, keys, intents)
    yield "tcell_decide"
    mod.macrophage_decide(n, cells, lattice, views, M_PAR, rules, keys, intents)
    yield "macrophage_decide"
    mod.fibroblast_decide(n, cells, lattice, f["tgfb"], f["ecm"], F_PAR, keys, intents)
    yield "fibroblast_decide"
    push = np.ascontiguousarray(par[:, kc.C_PUSH], dtype=np.int64)
    push_work = np.zeros((ka.PUSH_WORK_ROWS, len(s["occ"]) + 1), np.int64)
    w["result"] = mod.apply_actions(n, intents, cells, lattice, keys, next_id, push, push_work,
                                    POOLS)
    yield "apply_actions"
    m, nid, _ = w["result"]
    entry = np.flatnonzero(~air)[::3] if len(air) > 1 else np.arange(0, len(s["occ"]), 3)
    # T cells arrive on the map of their layer (CellDynamics._arrays)
    small = cells[layout.SMALL]
    t_cells = cells if len(small) == 1 else (*cells[:layout.OCC], small, small)
    w["recruit"] = mod.recruit(3, entry.astype(np.int64), 4, codes.TCELL, 2, t_cells, int(m),
                               int(nid), seed, step, 60)
    yield "recruit"
    # arrivals drawn by a signal: weights with zeros, as for taken or signal-free entry sites
    m, nid, _ = w["recruit"]
    w["cum_weight"] = np.zeros(len(entry))
    w["total_weight"] = mod.entry_weights(entry.astype(np.int64), f["ccl2"], s["occ"], 1.5,
                                          w["cum_weight"])
    yield "entry_weights"
    w["recruit_weighted"] = mod.recruit_weighted(
        4, entry.astype(np.int64), w["cum_weight"], 3, codes.MACROPHAGE, 0, cells, int(m),
        int(nid), seed, step, 64)
    yield "recruit_weighted"


class Kernels:
    """The compiled kernels, called with plain tuples as the model calls them."""

    cancer_decide = staticmethod(as_the_model_calls(kc.cancer_decide))
    tcell_decide = staticmethod(as_the_model_calls(ki.tcell_decide))
    macrophage_decide = staticmethod(as_the_model_calls(ki.macrophage_decide))
    fibroblast_decide = staticmethod(as_the_model_calls(ki.fibroblast_decide))
    apply_actions = staticmethod(as_the_model_calls(ka.apply_actions))
    recruit = staticmethod(as_the_model_calls(ka.recruit))
    recruit_weighted = staticmethod(as_the_model_calls(ka.recruit_weighted))
    entry_weights = staticmethod(ka.entry_weights)


def work(cap):
    return {
        "action": np.zeros(cap, np.int8),
        "target": np.zeros(cap, np.int64),
        "dkind": np.zeros(cap, np.int8),
        "ddiv": np.zeros(cap, np.int32),
    }


def run_twin_comparison(shape3, seed, air, with_rules, twin=naive, n_steps=5, dt=0.5, par=None,
                        t_par=None, share=False):
    """Step kernels and twins side by side, comparing every array after every kernel.

    Without rules tumour cells do not convert (so they too can take the constant-rate pass);
    with rules they do. Returns counts of the actions seen and of the live cancer cells the
    constant-rate and the general path decided, so callers can check what the comparison
    exercised. ``par`` replaces those cancer parameters.
    """
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # fast on a loaded machine; 1 vs 2 threads is tested separately
    try:
        return _run_twin_comparison(shape3, seed, air, with_rules, twin, n_steps, dt, par,
                                    t_par, share)
    finally:
        numba.set_num_threads(threads)


def _run_twin_comparison(shape3, seed, air, with_rules, twin, n_steps, dt, par, t_par, share):
    rng = np.random.default_rng([seed, *shape3, air, with_rules])
    n, s, air_mask, f = cell_state(shape3, rng, air=air, share=share)
    if share:
        t_par = T_PAR_SHARE if t_par is None else t_par
    shape = np.array(shape3, np.int64)
    rules = rule_table(with_rules)
    par = cancer_params(plastic=with_rules) if par is None else par
    t_s, t_f = copy_state(s), copy_state(f)
    next_id = int(s["ids"][layout.ID, :n].max()) + 1
    seen = np.zeros(5, np.int64)
    kills = arrivals = 0
    paths = np.zeros(2, np.int64)  # live cancer cells decided at constant rates, in general
    for step in range(n_steps):
        cap = s["kind"].shape[0]
        w, t_w = work(cap), work(cap)
        paths += [len(x) for x in constant_rate_cells(n, s, f, par, rules)]
        for stage, t_stage in zip(
            cell_phase(Kernels, n, s, air_mask, f, rules, shape, dt, seed, step, w, next_id, par,
                       t_par),
            cell_phase(twin, n, t_s, air_mask, t_f, rules, shape, dt, seed, step, t_w, next_id,
                       par, t_par),
            strict=True,
        ):
            assert stage == t_stage
            assert_same(s, t_s, f"step {step}, {stage}")
            assert_same(f, t_f, f"step {step}, {stage}")
            acted = w["action"][:n] != 0
            np.testing.assert_array_equal(w["action"][:n], t_w["action"][:n], err_msg=stage)
            np.testing.assert_array_equal(w["target"][:n][acted], t_w["target"][:n][acted],
                                          err_msg=stage)
            div = w["action"][:n] == 1
            np.testing.assert_array_equal(w["dkind"][:n][div], t_w["dkind"][:n][div])
            np.testing.assert_array_equal(w["ddiv"][:n][div], t_w["ddiv"][:n][div])
        assert tuple(map(int, w["result"])) == tuple(map(int, t_w["result"]))
        assert tuple(map(int, w["recruit"])) == tuple(map(int, t_w["recruit"]))
        assert tuple(map(int, w["recruit_weighted"])) == tuple(map(int, t_w["recruit_weighted"]))
        np.testing.assert_array_equal(w["cum_weight"], t_w["cum_weight"])
        assert w["total_weight"] == t_w["total_weight"]
        seen += np.bincount(w["action"][:n], minlength=5)
        kills += int(w["result"][2])
        arrivals += int(w["recruit"][2]) + int(w["recruit_weighted"][2])
        m, next_id, _ = (int(x) for x in w["recruit_weighted"])
        check_occupancy(m, s, air_mask)
        n = kl.compact(m, s["ids"], s["i32"], s["f32"], s["kind"], s["state"], s["site"],
                       s["occ"], s["small"])
        n_t = naive.compact(m, t_s["ids"], t_s["i32"], t_s["f32"], t_s["kind"], t_s["state"],
                            t_s["site"], t_s["occ"], t_s["small"])
        assert n == n_t
        assert_same(s, t_s, f"step {step}, compact")
        check_occupancy(n, s, air_mask)
        if s["kind"].shape[0] < 2 * n + 40:  # room for every cell dividing, and arrivals
            for key in ("ids", "i32", "f32", "kind", "state", "site"):
                for d in (s, t_s):
                    grown = np.zeros((*d[key].shape[:-1], 2 * n + 40), d[key].dtype)
                    grown[..., : d[key].shape[-1]] = d[key]
                    d[key] = grown
    return seen, kills, arrivals, paths


def check_occupancy(n, s, air):
    """One cell per site of each layer: ``occ`` is the inverse of ``site`` for the large cells
    (all cells where sites are not shared) and ``small`` for the T cells where they are; no
    map holds anything else; only cancer cells on air."""
    live = np.flatnonzero(s["state"][:n] != codes.REMOVED)
    shared = len(s["small"]) > 1
    on_small = live[s["kind"][live] == codes.TCELL] if shared else live[:0]
    large = np.setdiff1d(live, on_small)
    assert np.all(s["occ"][s["site"][large]] == large)
    assert np.count_nonzero(s["occ"] >= 0) == len(large)
    assert np.all(s["small"][s["site"][on_small]] == on_small)
    assert np.count_nonzero(s["small"] >= 0) == len(on_small)
    if len(air) > 1:
        on_air = live[air[s["site"][live]]]
        assert np.all((s["kind"][on_air] == codes.TUMOR) | (s["kind"][on_air] == codes.STEM))


@pytest.mark.parametrize("shape3", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_rules", [False, True], ids=["plain", "rules"])
def test_cell_phase_matches_twin(shape3, with_rules):
    seen, _, _, _ = run_twin_comparison(shape3, 12345, air=False, with_rules=with_rules)
    assert seen[1:].sum() > 0  # some cell acted


def test_cell_phase_matches_twin_with_the_hazard_on_damage():
    """The drug hazard reading the damage column (a DNA-binding drug) instead of free drug."""
    par = cancer_params(plastic=False, drug_row=layout.DAMAGE)
    seen, _, _, _ = run_twin_comparison(SHAPES[0], 321, air=False, with_rules=False, par=par)
    assert seen[3] > 0  # some cell died


@pytest.mark.parametrize("combination", [kc.COMBINE_BLISS, kc.COMBINE_HIGHEST],
                         ids=["bliss", "highest_single_agent"])
def test_cell_phase_matches_twin_with_two_drugs(combination):
    """Two drugs, the second reading another row (the payload column, which cell_state fills),
    their hazards combined by either rule (docs/pharmacology.md §7.1)."""
    par = cancer_params(plastic=False, second=layout.PAYLOAD, combination=combination)
    seen, _, _, _ = run_twin_comparison(SHAPES[0], 77, air=False, with_rules=False, par=par)
    assert seen[3] > 0  # some cell died


@pytest.mark.parametrize("shape3", [(1, 20, 20), (4, 8, 8)], ids=lambda s: "x".join(map(str, s)))
def test_cell_phase_matches_twin_with_progenitors(shape3):
    """Progenitors and effectors (biology.md §5.10): fates of arrivals and of the products of
    progenitor divisions, progenitor killing, budget-free division, effector bursts."""
    seen, _, _, _ = run_twin_comparison(shape3, 77, air=False, with_rules=True, n_steps=8,
                                        t_par=T_PAR_LINEAGE)
    assert seen[1] > 0 and seen[4] > 0  # divisions and kills


@pytest.mark.parametrize("shape3", AIR_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("seed", [1, 2])
def test_cell_phase_matches_twin_with_air(shape3, seed):
    run_twin_comparison(shape3, seed, air=True, with_rules=seed == 2)


@pytest.mark.parametrize("shape3", [(1, 12, 13), (1, 1, 15), (4, 6, 7)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("air", [False, True], ids=["tissue", "air"])
def test_cell_phase_matches_twin_with_shared_sites(shape3, air):
    """T cells on the small-cell layer (biology.md §4.10): free sites from that layer, targets
    on the own site and the neighbours, arrivals, moves, divisions and deaths on that layer,
    both maps compacted (check_occupancy after every phase)."""
    seen, _, arrivals, _ = run_twin_comparison(shape3, 5, air=air, with_rules=True,
                                               share=True, n_steps=6)
    assert seen[1:].sum() > 0 and arrivals > 0


def test_shared_site_twin_comparison_stacks_t_cells_on_cancer_cells():
    """The comparison above exercises what sharing changes: T cells that move, divide and
    arrive onto sites a large cell holds, and kills of the cancer cell on a T cell's own site."""
    rng = np.random.default_rng([5, 1, 12, 13, False, True])
    n, s, air_mask, f = cell_state((1, 12, 13), rng, share=True)
    t0 = (s["kind"][:n] == codes.TCELL) & (s["state"][:n] != codes.REMOVED)
    assert np.any(s["occ"][s["site"][:n][t0]] >= 0)  # some T cells start on a large cell's site
    shape = np.array((1, 12, 13), np.int64)
    rules = rule_table(True)
    onto_large = own_kills = 0
    for step in range(6):
        w = work(s["kind"].shape[0])
        phase = cell_phase(Kernels, n, s, air_mask, f, rules, shape, 0.5, 5, step, w,
                           int(s["ids"][layout.ID, :n].max()) + 1, None, T_PAR_SHARE)
        for stage in phase:
            if stage == "tcell_decide":
                t = np.flatnonzero((s["kind"][:n] == codes.TCELL) & (w["action"][:n] != 0))
                moving = t[np.isin(w["action"][t], (ka.MOVE, ka.DIVIDE))]
                onto_large += int(np.count_nonzero(s["occ"][w["target"][moving]] >= 0))
                killing = t[w["action"][t] == ka.KILL]
                own_kills += int(np.count_nonzero(s["site"][w["target"][killing]]
                                                  == s["site"][killing]))
        m = int(w["recruit_weighted"][0])
        n = kl.compact(m, s["ids"], s["i32"], s["f32"], s["kind"], s["state"], s["site"],
                       s["occ"], s["small"])
        check_occupancy(n, s, air_mask)
    assert onto_large > 0 and own_kills > 0, (onto_large, own_kills)


@pytest.mark.parametrize("share", [False, True], ids=["one_layer", "shared"])
def test_layer_of_matches_twin(share):
    """The kernel reads a row's layer from the maps (the small map where it holds the row), the
    twin from the row's kind: they agree for every live row of a state with T cells stacked on
    cancer cells."""
    rng = np.random.default_rng(8)
    n, s, _, _ = cell_state((1, 12, 13), rng, share=share)
    small = s["small"]
    assert share == (np.count_nonzero(small >= 0) > 0)
    for i in np.flatnonzero(s["state"][:n] != codes.REMOVED):
        got = ka.layer_of(i, s["site"], s["occ"], small)
        want = naive.layer(i, s["kind"], s["occ"], small)
        assert np.shares_memory(got, want) and len(got) == len(want)


def test_twin_comparison_exercises_every_action():
    """Over a few lattices every action occurs, so the comparisons above are not vacuous."""
    total = np.zeros(5, np.int64)
    kills = arrivals = 0
    for shape3 in [(1, 9, 11), (4, 5, 6)]:
        for air in (False, True):
            seen, k, a, _ = run_twin_comparison(shape3, 7, air=air, with_rules=True)
            total += seen
            kills += k
            arrivals += a
    assert np.all(total[1:] > 0), total
    assert kills > 0 and arrivals > 0


def test_twin_comparison_exercises_both_cancer_paths():
    """Without rules both paths of cancer_decide decide many cells: the constant-rate pass
    (cells at the per-kind rates) and the general rules (IFN-gamma, drug, low oxygen, plastic
    kinds), and each path sees every action a cancer cell can take."""
    paths = np.zeros(2, np.int64)
    for shape3 in [(1, 9, 11), (4, 5, 6)]:
        for air in (False, True):
            for seed in (3, 4):
                _, _, _, p = run_twin_comparison(shape3, seed, air=air, with_rules=False)
                paths += p
    assert np.all(paths > 50), paths


def test_drug_is_not_read_when_no_kind_responds():
    """With Emax 0 for both cancer kinds the drug a cell holds changes nothing, and the kernel
    does not look at it: cells holding drug then take the constant-rate pass and must still
    match the twin (which always reads the drug)."""
    par = cancer_params(plastic=False)
    par[[codes.TUMOR, codes.STEM], kc.C_NPARAMS + kc.D_EMAX] = 0.0
    paths = np.zeros(2, np.int64)
    for shape3 in [(1, 9, 11), (4, 5, 6)]:
        _, _, _, p = run_twin_comparison(shape3, 5, air=False, with_rules=False, par=par)
        paths += p
    assert paths[0] > 20, paths


def test_constant_rate_pass_matches_general_rules():
    """The constant-rate pass is the general rule set at constant rates: a population whose
    cells all qualify (no drug, pO2 above necrosis) decides the same with no IFN-gamma (the
    constant-rate pass) as with IFN-gamma so low that its Hill term underflows to zero (the
    general rules, which compute the same PD-L1 target). Every decision must agree."""
    rng = np.random.default_rng(17)
    n, s, air, f = cell_state((1, 30, 30), rng, air=False)
    f["oxygen"][:] = rng.uniform(6.0, 20.0, f["oxygen"].shape)  # above both necrosis thresholds
    s["f32"][layout.DRUG] = 0.0
    par = cancer_params(plastic=False)
    shape = np.array((1, 30, 30), np.int64)
    out = []
    for ifng in (0.0, 1e-300):  # zero: constant-rate pass; tiny: the general rules
        f2 = copy_state(f)
        f2["ifng"][:] = ifng
        s2 = copy_state(s)
        w = work(s2["kind"].shape[0])
        Kernels.cancer_decide(n, naive.cell_arrays(s2), ka.Lattice(shape, air), views_of(f2),
                              par, rule_table(False), ka.StepKeys(0.5, 9, 4), intents_of(w))
        fast, general = constant_rate_cells(n, s, f2, par, rule_table(False))
        assert len(fast if ifng == 0.0 else general) > 100
        out.append((s2, w))
    (s1, w1), (s2, w2) = out
    assert_same(s1, s2, "constant-rate pass vs general rules")
    np.testing.assert_array_equal(w1["action"][:n], w2["action"][:n])
    acted = w1["action"][:n] != 0
    np.testing.assert_array_equal(w1["target"][:n][acted], w2["target"][:n][acted])
    assert np.count_nonzero(acted) > 10


# the twins as written, kept for the mutants below (which replace them on the module)
_CANCER_DECIDE = naive.cancer_decide
_TCELL_DECIDE = naive.tcell_decide
_CHOOSE_MOVE = naive.choose_move
_OFFSETS = naive.offsets


def _wrong_symmetric(*args):
    """Twin of cancer_decide with the symmetric-division probability complemented."""
    par = args[4].copy()
    par[codes.STEM, kc.C_SYMMETRIC] = 1.0 - par[codes.STEM, kc.C_SYMMETRIC]
    return _CANCER_DECIDE(*args[:4], par, *args[5:])


def _wrong_suppression(*args):
    """Twin of tcell_decide without PD-L1 suppression."""
    par = args[8].copy()
    par[ki.T_PDL1_SUPPRESSION] = 0.0
    return _TCELL_DECIDE(*args[:8], par, *args[9:])


def _unlimited_store(*args):
    """Twin of tcell_decide whose lytic store never runs out."""
    par = args[8].copy()
    par[ki.T_LYTIC_STORE] = 0.0
    return _TCELL_DECIDE(*args[:8], par, *args[9:])


def _no_tcell_division(*args):
    """Twin of tcell_decide in which engaged T cells never divide."""
    par = args[8].copy()
    par[ki.T_DIVISION_RATE] = 0.0
    return _TCELL_DECIDE(*args[:8], par, *args[9:])


def _first_on_ties(site, free, cid, nz, ny, nx, chemo, bias, seed, step, p_bias, p_site):
    """choose_move breaking chemokine ties by neighbour order (the rule before the fix)."""
    qs = naive.bits(free)
    if qs and bias > 0.0 and naive.uniform(seed, cid, step, p_bias) < bias:
        sites = [naive.neighbour_site(site, q, nz, ny, nx) for q in qs]
        return max(sites, key=lambda t: (chemo[t], -sites.index(t)))
    return _CHOOSE_MOVE(site, free, cid, nz, ny, nx, chemo, bias, seed, step, p_bias, p_site)


@pytest.mark.parametrize(
    "mutant",
    [
        {"cancer_decide": _wrong_symmetric},
        {"tcell_decide": _wrong_suppression},
        {"tcell_decide": _unlimited_store},
        {"tcell_decide": _no_tcell_division},
        {"choose_move": _first_on_ties},
        {"offsets": lambda nz: _OFFSETS(nz)[::-1]},
        {"affine_order": lambda n, seed, step: list(range(n))},
        {"lumen_reachable": lambda *a: True},
    ],
    ids=["symmetric", "suppression", "lytic_store", "tcell_division", "ties", "neighbour_order", "apply_order", "lumen"],
)
def test_twin_comparison_catches_a_wrong_rule(mutant, monkeypatch):
    """A twin with one wrong rule fails the comparison: the tests above can fail."""
    for name, fn in mutant.items():
        monkeypatch.setattr(naive, name, fn)
    with pytest.raises(AssertionError):
        for shape3 in [(1, 9, 11), (4, 5, 6)]:
            for seed in (1, 2, 3):  # a lumen filled from air alone is rare: seed 3 meets one
                run_twin_comparison(shape3, seed, air=True, with_rules=True)


# --------------------------------------------------------------------------- neighbourhood helpers
@pytest.mark.parametrize("shape3", [*SHAPES, (3, 4, 5)], ids=lambda s: "x".join(map(str, s)))
def test_neighbourhood_helpers_match_twin(shape3):
    nz, ny, nx = shape3
    rng = np.random.default_rng([3, *shape3])
    n_sites = nz * ny * nx
    nq = 26 if nz > 1 else 8
    for q in range(nq):
        for s in range(n_sites):
            assert nb.neighbour_site(s, q, nz, ny, nx) == naive.neighbour_site(s, q, nz, ny, nx)
    for fill in (0.0, 0.4, 0.9):
        _, st, air, _ = cell_state(shape3, rng, fill=max(fill, 0.1), air=True)
        occ, kind, state = st["occ"], st["kind"], st["state"]
        if fill == 0.0:
            occ[:] = -1
        no_air = np.zeros(1, dtype=bool)
        for s in range(n_sites):
            for blocked in (air, no_air):
                assert nb.free_scan(s, occ, blocked, nz, ny, nx) == naive.free_scan(
                    s, occ, blocked, nz, ny, nx)
                assert tuple(nb.scan(s, occ, blocked, kind, state, nz, ny, nx)) == naive.scan(
                    s, occ, blocked, kind, state, nz, ny, nx)
                for moving in (False, True):
                    assert nb.cancer_free_scan(s, occ, blocked, kind, nz, ny, nx, moving) == (
                        naive.cancer_free_scan(s, occ, blocked, kind, nz, ny, nx, moving))
            assert bool(nb.lumen_reachable(s, occ, air, kind, nz, ny, nx, -1)) == (
                naive.lumen_reachable(s, occ, air, kind, nz, ny, nx))
            packed = bool(nb.surrounded(s, occ, nz, ny, nx))
            assert packed == naive.surrounded(s, occ, nz, ny, nx)
            if packed:  # then no scan finds a free neighbour
                assert nb.free_scan(s, occ, no_air, nz, ny, nx) == 0
    # a fully occupied block: only sites off the domain's edge are surrounded
    full = np.zeros(n_sites, np.int32)
    inner = [s for s in range(n_sites) if naive.surrounded(s, full, nz, ny, nx)]
    assert [s for s in range(n_sites) if nb.surrounded(s, full, nz, ny, nx)] == inner
    assert len(inner) == max(nz - 2, 0 if nz > 1 else 1) * max(ny - 2, 0) * max(nx - 2, 0)
    # an empty 3x3x3 block: the centre has 26 neighbours, a corner 7; in 2-D 8 and 3
    free = np.full(27, -1, np.int32)
    none = np.zeros(1, dtype=bool)
    assert nb.popcount(nb.free_scan(13, free, none, 3, 3, 3)) == 26
    assert nb.popcount(nb.free_scan(0, free, none, 3, 3, 3)) == 7
    assert nb.popcount(nb.free_scan(4, free[:9], none, 1, 3, 3)) == 8
    assert nb.popcount(nb.free_scan(0, free[:9], none, 1, 3, 3)) == 3


def test_bit_helpers_match_twin():
    rng = np.random.default_rng(5)
    for mask in [0, 1, 2**25, 2**26 - 1, *rng.integers(0, 2**26, 200).tolist()]:
        assert nb.popcount(mask) == naive.popcount(mask) == bin(mask).count("1")
        for k in range(-1, 28):
            assert nb.kth_bit(mask, k) == naive.kth_bit(mask, k) if k >= 0 else True
    assert nb.kth_bit(0b10110, 2) == 4 and nb.kth_bit(0b10110, 3) == -1


def test_length_one_blocked_array_blocks_nothing():
    """``blocked`` of length 1 means 'no air'; the scans must not read past it (regression: scan
    used to index it at every site and so read whatever lay after it in memory)."""
    backing = np.ones(50, dtype=bool)
    backing[0] = False
    blocked = backing[:1]  # what follows the array in memory is all True
    occ = np.full(49, -1, np.int32)
    kind = np.zeros(1, np.int8)
    state = np.zeros(1, np.int8)
    free, cancer, n_in = nb.scan(24, occ, blocked, kind, state, 1, 7, 7)
    assert (free, cancer, n_in) == (255, 0, 8)
    assert nb.free_scan(24, occ, blocked, 1, 7, 7) == 255
    assert nb.cancer_free_scan(24, occ, blocked, kind, 1, 7, 7, False) == 255


def test_choose_move_breaks_ties_uniformly():
    """In a flat field a 'biased' move is still a uniform draw over the free neighbours."""
    chemo = np.zeros(9)
    hits = np.bincount(
        [nb.choose_move(4, 255, c, 1, 3, 3, chemo, 1.0, 1, 0, 35, 34) for c in range(8000)],
        minlength=9)
    assert hits[4] == 0
    # 8000 draws over 8 sites: expected 1000 each; chi-square at the 1e-3 level
    assert stats.chisquare(np.delete(hits, 4)).pvalue > 1e-3
    chemo[8] = 1.0  # a unique maximum is always taken
    assert {nb.choose_move(4, 255, c, 1, 3, 3, chemo, 1.0, 1, 0, 35, 34) for c in range(50)} == {8}


# --------------------------------------------------------------------------- rules, exchange
def test_apply_rules_matches_twin():
    rng = np.random.default_rng(9)
    fields = rng.uniform(0, 3, (3, 20))
    for _ in range(300):
        nr = int(rng.integers(0, 5))
        rules = np.column_stack([
            rng.integers(0, 2, nr), rng.integers(-1, 3, nr), rng.integers(0, 3, nr),
            rng.uniform(0, 4, nr), rng.uniform(0.1, 2, nr), rng.uniform(0.5, 3, nr),
        ]).astype(float)
        args = (float(rng.uniform(0, 2)), int(rng.integers(0, 2)), int(rng.integers(0, 3)),
                int(rng.integers(0, 20)), fields, float(rng.uniform(0, 1)), rules)
        np.testing.assert_allclose(apply_rules(*args), naive.apply_rules(*args), rtol=1e-14)
    # a single rule is PhysiCell's Hill response: base + (max - base) s^n / (half^n + s^n)
    one = np.array([[0, 0, 0, 3.0, 2.0, 2.0]])
    f = np.array([[2.0]])
    assert apply_rules(1.0, 0, 0, 0, f, 0.0, one) == pytest.approx(2.0)
    assert apply_rules(1.0, 1, 0, 0, f, 0.0, one) == 1.0  # other kind: untouched


@pytest.mark.parametrize("shape3", [(1, 9, 11), (4, 5, 6)], ids=["2d", "3d"])
def test_exchange_maps_match_twin(shape3):
    rng = np.random.default_rng(4)
    n, s, _, _ = cell_state(shape3, rng, fill=0.8)
    nf = 3
    tables = [rng.uniform(0, 2, (codes.N_KINDS, nf)) for _ in range(4)]
    # every activity, also on kinds that do not have it in the model
    activity = np.array(kinds.activities(), np.int8)
    for act in (activity, np.roll(activity, 1), np.zeros_like(activity)):
        _exchange_maps_match_twin(n, s, tables, act, shape3)


def _exchange_maps_match_twin(n, s, tables, activity, shape3):
    nf = tables[0].shape[1]
    n_sites = math.prod(shape3)
    out = [np.zeros((nf, n_sites)) for _ in range(4)]
    # field 1 induces the release of field 2 by every kind (as IFN-gamma induces CXCL10), with
    # a field of its own that is 0 on some sites
    induction = np.full((3, codes.N_KINDS, nf), -1.0)
    induction[:, :, 2] = np.array([1.0, 0.7, 1.5])[:, None]
    fields = np.random.default_rng(5).uniform(-0.5, 2.0, (nf, n_sites)).clip(0.0)
    rest = (s["f32"][layout.PHENOTYPE], s["f32"][layout.AUX],
            kl.ExchangeTables(*tables, activity, induction), fields)
    # the kernel writes every voxel (its maps need not be cleared); the twin adds each row's
    # terms into cleared maps
    out[0][:] = np.nan
    out[1][:] = np.nan
    kl.exchange_maps(n, s["kind"], s["state"], s["occ"], *rest, out[0], out[1])
    naive.exchange_maps(n, s["kind"], s["state"], s["site"], *rest, out[2], out[3])
    np.testing.assert_allclose(out[0], out[2], rtol=1e-14)
    np.testing.assert_allclose(out[1], out[3], rtol=1e-14)
    dead = (s["state"][:n] == codes.REMOVED) | (s["state"][:n] == codes.NECROTIC)
    assert np.all(out[0][:, s["site"][:n][dead]] == 0.0)


# --------------------------------------------------------------------------- threads
def test_decide_kernels_do_not_depend_on_thread_count():
    """The parallel decide kernels give identical results on 1 and 2 threads."""
    results = []
    threads = numba.get_num_threads()
    for nt in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(nt)
        try:
            out = []
            # (1, 80, 80) holds several blocks of rows of the cancer kernel; without rules
            # (and plasticity) its constant-rate pass decides part of the cells
            for shape3, ruled, t_par in [((1, 40, 40), True, T_PAR), ((8, 10, 12), True, T_PAR),
                                         ((1, 80, 80), True, T_PAR), ((1, 80, 80), False, T_PAR),
                                         ((1, 40, 40), True, T_PAR_LINEAGE)]:
                rng = np.random.default_rng(21)
                n, s, air, f = cell_state(shape3, rng, fill=0.5, air=True)
                w = work(s["kind"].shape[0])
                for _ in cell_phase(Kernels, n, s, air, f, rule_table(ruled),
                                    np.array(shape3, np.int64), 0.5, 3, 1, w, 10**6,
                                    cancer_params(plastic=ruled), t_par):
                    pass
                out.append((s, f, w))
            results.append(out)
        finally:
            numba.set_num_threads(threads)
    for (s1, f1, w1), (s2, f2, w2) in zip(*results, strict=True):
        for d1, d2 in ((s1, s2), (f1, f2), (w1, w2)):
            for k in d1:
                np.testing.assert_array_equal(np.asarray(d1[k]), np.asarray(d2[k]), err_msg=k)
    assert numba.config.NUMBA_NUM_THREADS >= 2 or pytest.skip("one thread only")


def test_python_splitmix_matches_kernel():
    rng = np.random.default_rng(1)
    for key in [(0, 0, 0, 1), (5, 2**40, 17, 8), (2**62, 3, 2**31, 2),
                *rng.integers(0, 2**62, (200, 4)).tolist()]:
        assert naive.uniform(*key) == kr.uniform(*key)
        assert naive.randint(*key, 7) == kr.randint(*key, 7)
        assert naive.key_hash(*key) == int(kr.key_hash(*key))
        # the split form: one key per cell and step, then one mix per draw
        seed, cid, step, purpose = key
        cell = np.uint64(kr.cell_key(seed, step, cid))
        assert kr.uniform_of(cell, purpose) == naive.uniform(*key)
        for n in (1, 7, 26):
            assert kr.randint_of(cell, purpose, n) == naive.randint(*key, n)


def test_draw_below_hazard_prob_is_the_plain_comparison():
    """The comparison that skips the exponential answers as ``u < hazard_prob`` does, also
    for draws between the probability and ``rate * dt`` and at the ends of the skipped range."""
    rng = np.random.default_rng(17)
    dts = (0.1, 0.5, 1.0)
    rates = np.concatenate([[0.0, 1e-6, 1e-5, 0.5, 1.0, 5.0], 10 ** rng.uniform(-8, 1.5, 400)])
    skipped = 0
    for dt in dts:
        for rate in rates:
            x = rate * dt
            p = nb.hazard_prob(rate, dt)
            near = [p, np.nextafter(p, 0.0), np.nextafter(p, 1.0), x, np.nextafter(x, 0.0),
                    np.nextafter(x, 1.0), 0.5 * (p + x)]
            for u in [*rng.random(20), *(v for v in near if 0.0 <= v < 1.0)]:
                assert nb.draw_below_hazard_prob(u, rate, dt) == (u < p), (u, rate, dt)
                skipped += u >= x and 1e-6 <= x <= 0.5
    assert skipped > 1000  # the exponential was skipped often


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
@pytest.mark.parametrize("removed", ["random", "none", "first", "last", "all"])
@pytest.mark.parametrize("share", [False, True], ids=["one_layer", "shared"])
def test_compact_matches_twin(shape3, removed, share):
    """Compaction against its twin; with sites shared, a third of the cells are T cells on the
    small-cell layer, half of them on a site that a large cell holds too."""
    rng = np.random.default_rng(3)
    n, a, _ = random_population(shape3, rng, fill=0.7)
    n_sites = math.prod(shape3)
    small = np.full(n_sites if share else 1, -1, np.int32)
    if share:
        t_rows = np.flatnonzero(rng.random(n) < 0.3)
        a["kind"][t_rows] = codes.TCELL
        a["state"][t_rows] = codes.PROLIFERATING
        a["occ"][a["site"][t_rows]] = -1
        large = a["site"][:n][a["kind"][:n] != codes.TCELL]
        for i in t_rows:
            if rng.random() < 0.5 and len(large):  # onto a large cell's site, if no T cell
                s = large[rng.integers(len(large))]
                if small[s] < 0:
                    a["site"][i] = s
            small[a["site"][i]] = i
    gone = {"random": rng.random(n) < 0.4, "none": np.zeros(n, bool),
            "first": np.arange(n) == 0, "last": np.arange(n) == n - 1,
            "all": np.ones(n, bool)}[removed]
    a["state"][:n][gone] = codes.REMOVED
    for i in np.flatnonzero(a["state"][:n] == codes.REMOVED):
        (small if share and a["kind"][i] == codes.TCELL else a["occ"])[a["site"][i]] = -1
    blocks = [
        np.stack([a["cell_id"], a["parent"]]),
        np.stack([a["generation"], a["divisions_left"]]),
        np.stack([a["clock_h"], rng.random(len(a["clock_h"])).astype(np.float32)]),
    ]
    arrays = [a["kind"], a["state"], a["site"], a["occ"], small]
    twin = [x.copy() for x in blocks + arrays]
    before = [x.copy() for x in blocks + arrays]
    expected = int(np.count_nonzero(~gone))
    m = kl.compact(n, *blocks, *arrays)
    m_twin = naive.compact(n, *twin)
    assert m == m_twin == expected
    for x, y in zip(blocks + arrays, twin, strict=True):
        np.testing.assert_array_equal(x[..., :m], y[..., :m])
    np.testing.assert_array_equal(a["occ"], twin[-2])
    np.testing.assert_array_equal(small, twin[-1])
    assert np.all(a["state"][:m] != codes.REMOVED)
    if removed == "none":  # nothing moves
        for x, y in zip(blocks + arrays, before, strict=True):
            np.testing.assert_array_equal(x, y)
    if share:
        check_occupancy(m, {"state": a["state"], "kind": a["kind"], "site": a["site"],
                            "occ": a["occ"], "small": small}, np.zeros(1, bool))
        stacked = np.intersect1d(a["site"][:m][a["kind"][:m] == codes.TCELL],
                                 a["site"][:m][a["kind"][:m] != codes.TCELL])
        if removed in ("random", "none"):
            assert len(stacked) > 0 or n_sites < 50  # the larger lattices share sites


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


def test_census_matches_twin_and_counts():
    rng = np.random.default_rng(12)
    for shape3 in SHAPES:
        n, s, _, _ = cell_state(shape3, rng, fill=float(rng.uniform(0.1, 0.9)))
        for m in (0, 1, n // 2, n):  # prefixes: kinds come and go
            got = tuple(int(x) for x in kl.census(m, s["kind"], s["state"]))
            assert got == naive.census(m, s["kind"], s["state"])
            counts = kl.count_by_kind_state(m, s["kind"], s["state"], codes.N_KINDS, 4)
            kinds = np.flatnonzero(counts.sum(axis=1))
            assert got[0] == int(sum(1 << int(k) for k in kinds))
            assert got[1] == int(counts[[codes.TUMOR, codes.STEM]][:, :2].sum())
    kind = np.array([codes.MACROPHAGE, codes.TUMOR, codes.STEM], np.int8)
    state = np.array([codes.PROLIFERATING, codes.NECROTIC, codes.QUIESCENT], np.int8)
    assert tuple(kl.census(3, kind, state)) == (0b1011, 1)
    assert tuple(kl.census(0, kind, state)) == (0, 0)


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


# --------------------------------------------------------------------------- pushing
def dense_lattice(rng, shape, fill, with_air):
    """A lattice ``fill`` full of cells of every kind (cancer mostly), optionally with air."""
    nz, ny, nx = shape
    n_sites = nz * ny * nx
    occ = np.full(n_sites, -1, np.int32)
    sites = np.flatnonzero(rng.random(n_sites) < fill)
    n = sites.size
    occ[sites] = np.arange(n, dtype=np.int32)
    site = sites.astype(np.int64)
    kind = rng.choice([codes.TUMOR, codes.STEM, codes.TCELL, codes.MACROPHAGE], n,
                      p=[0.7, 0.1, 0.1, 0.1]).astype(np.int8)
    air = (rng.random(n_sites) < 0.3) if with_air else np.zeros(1, bool)
    if with_air:  # normal cells never sit in air
        bad = air[site] & ~np.isin(kind, [codes.TUMOR, codes.STEM])
        kind[bad] = codes.TUMOR
    return occ, site, kind, air


@pytest.mark.parametrize("shape", [(1, 14, 15), (5, 6, 7)])
@pytest.mark.parametrize("with_air", [False, True])
def test_push_chain_matches_twin_and_moves_each_cell_one_site(shape, with_air):
    rng = np.random.default_rng(7)
    nz, ny, nx = shape
    pushed = 0
    for trial in range(60):
        occ, site, kind, air = dense_lattice(rng, shape, rng.uniform(0.85, 1.0), with_air)
        cancer = np.flatnonzero(np.isin(kind, [codes.TUMOR, codes.STEM]))
        i = int(rng.choice(cancer))
        radius = int(rng.integers(1, 4))
        work = np.zeros((ka.PUSH_WORK_ROWS, occ.size + 1), np.int64)
        a_occ, a_site = occ.copy(), site.copy()
        t = ka.push_chain(int(site[i]), int(kind[i]), radius, a_occ, a_site, kind,
                          ka.Lattice(np.array(shape, np.int64), air), ka.StepKeys(0.0, 3, trial),
                          i, work)
        b_occ, b_site = occ.copy(), site.copy()
        u = naive.push_chain(int(site[i]), int(kind[i]), radius, b_occ, b_site, kind, air, shape,
                             3, i, trial)
        assert t == u
        np.testing.assert_array_equal(a_occ, b_occ)
        np.testing.assert_array_equal(a_site, b_site)
        moved = np.flatnonzero(a_site != site)
        if t < 0:
            assert moved.size == 0
            continue
        pushed += 1
        # the daughter's site is next to the mother and now empty; every cell kept its row and
        # moved by at most one site; no normal cell entered air; occupancy is consistent
        assert a_occ[t] == -1
        assert t in [nb.neighbour_site(int(site[i]), q, nz, ny, nx)
                     for q in range(26 if nz > 1 else 8)]
        assert a_site[i] == site[i]
        for j in moved:
            assert int(a_site[j]) in [nb.neighbour_site(int(site[j]), q, nz, ny, nx)
                                      for q in range(26 if nz > 1 else 8)]
            if with_air and air[a_site[j]]:
                assert kind[j] in (codes.TUMOR, codes.STEM)
        assert moved.size <= radius - 1
        assert np.array_equal(np.sort(a_occ[a_occ >= 0]), np.arange(site.size))
        assert np.all(a_occ[a_site] == np.arange(site.size))
    assert pushed > 10


def test_push_reaches_the_nearest_free_site_and_no_further():
    """A 2-D lattice of 9 x 9 cells with one free site at lattice distance 3 from the centre
    (Chebyshev, the neighbourhood's metric): a push radius of 2 finds nothing, 3 finds it."""
    occ = np.arange(81, dtype=np.int32)
    site = np.arange(81, dtype=np.int64)
    kind = np.full(81, codes.TUMOR, np.int8)
    free_site = 4 * 9 + 7  # (y 4, x 7): three steps from the centre (4, 4)
    occ[free_site] = -1
    occ[:9] = -1  # the top row is free too but 4 steps away
    air = np.zeros(1, bool)
    work = np.zeros((ka.PUSH_WORK_ROWS, 82), np.int64)
    centre = 40
    lattice = ka.Lattice(np.array([1, 9, 9], np.int64), air)
    keys = ka.StepKeys(0.0, 0, 0)
    assert ka.push_chain(centre, codes.TUMOR, 2, occ.copy(), site.copy(), kind, lattice, keys, 0,
                         work) == -1
    o, s = occ.copy(), site.copy()
    t = ka.push_chain(centre, codes.TUMOR, 3, o, s, kind, lattice, keys, 0, work)
    # the daughter's site is next to the centre; the free site is now taken, and the two cells
    # between moved one site each (paths of three steps are not unique in this metric)
    assert t in [nb.neighbour_site(centre, q, 1, 9, 9) for q in range(8)]
    assert o[t] == -1 and o[free_site] >= 0
    assert int(np.sum(s != site)) == 2


def test_surrounded_cell_divides_only_when_its_kind_pushes():
    """In a full lattice, cancer cells divide (by pushing) only when push_distance > 0."""
    shape = np.array([1, 12, 12], np.int64)
    n_sites = 144
    counts = {}
    for push in (False, True):
        par = cancer_params(plastic=False, growth=False, push=push)
        par[:, kc.C_DIVISION_RATE] = 50.0
        par[codes.TUMOR, kc.C_DEATH_AT_DIVISION] = 0.0
        s = {"ids": np.zeros((2, 2 * n_sites), np.int64), "i32": np.zeros((2, 2 * n_sites), np.int32),
             "f32": np.zeros((len(layout.block_names("f32")), 2 * n_sites), np.float32),
             "kind": np.zeros(2 * n_sites, np.int8),
             "state": np.zeros(2 * n_sites, np.int8), "site": np.zeros(2 * n_sites, np.int32),
             "occ": np.full(n_sites, -1, np.int32)}
        # a 6 x 6 block of tumour cells in the middle, all surrounded but the rim
        block = [(y * 12 + x) for y in range(3, 9) for x in range(3, 9)]
        n = len(block)
        s["ids"][layout.ID, :n] = np.arange(n)
        s["ids"][layout.PARENT, :n] = -1
        s["i32"][layout.DIVISIONS_LEFT, :n] = 5
        s["kind"][:n] = codes.TUMOR
        s["site"][:n] = block
        s["occ"][block] = np.arange(n, dtype=np.int32)
        f = {k: np.full(n_sites, 30.0 if k == "oxygen" else 0.0) for k in
             ("oxygen", "tgfb", "ifng", "chemo", "ecm", "antibody", "egf", "ccl2")}
        f["fields"] = np.stack([f["oxygen"], f["tgfb"], f["ifng"], f["egf"]])
        w = work(2 * n_sites)
        inner = [i for i in range(n) if 4 <= block[i] // 12 <= 7 and 4 <= block[i] % 12 <= 7]
        for _ in cell_phase(Kernels, n, s, np.zeros(1, bool), f, rule_table(False), shape, 0.1,
                            5, 1, w, n, par):
            pass
        counts[push] = int(w["result"][0]) - n
        acted = w["action"][inner]
        if push:
            assert np.any(acted == ka.DIVIDE) and np.all(w["target"][inner][acted == ka.DIVIDE] == -1)
        else:
            assert not np.any(acted == ka.DIVIDE)
    assert counts[True] > counts[False] > 0


def test_a_moving_cell_does_not_support_the_lumen_site_it_walks_into():
    """Lumens fill from the wall inward: a cancer cell in a lumen next to the wall may divide
    deeper into it (its own site supports the daughter's), but not walk deeper (the site it
    leaves would support nothing), so a lone cell cannot wander into the middle of an air
    space."""
    nz, ny, nx = 1, 7, 7
    air = np.ones(ny * nx, bool)
    air[np.arange(ny) * nx] = False  # column x = 0 is tissue
    occ = np.full(ny * nx, -1, np.int32)
    kind = np.array([codes.TUMOR], np.int8)
    s = 3 * nx + 1  # in the lumen, by a face next to the tissue at (3, 0)
    occ[s] = 0
    deeper = 3 * nx + 2
    q_deeper = [nb.neighbour_site(s, q, nz, ny, nx) for q in range(8)].index(deeper)
    for fn in (nb.cancer_free_scan, naive.cancer_free_scan):
        assert fn(s, occ, air, kind, nz, ny, nx, False) >> q_deeper & 1  # a daughter may
        assert not fn(s, occ, air, kind, nz, ny, nx, True) >> q_deeper & 1  # a move may not
        # sites by a face next to the tissue stay open to a move
        up = 2 * nx + 1
        q_up = [nb.neighbour_site(s, q, nz, ny, nx) for q in range(8)].index(up)
        assert fn(s, occ, air, kind, nz, ny, nx, True) >> q_up & 1


@pytest.mark.parametrize("shape3", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_site_coords_and_neighbours_from_them_match_twin(shape3):
    """site_coords against numpy's unravel_index on every site, and the neighbour walks that
    start from the coordinates (neighbour_site_at, face_site_at) against the twin's
    neighbour_site and a plain face step."""
    nz, ny, nx = shape3
    for s in range(nz * ny * nx):
        z, y, x = nb.site_coords(s, ny, nx)
        assert (z, y, x) == tuple(int(v) for v in np.unravel_index(s, shape3))
        for q in range(26 if nz > 1 else 8):
            assert nb.neighbour_site_at(q, z, y, x, nz, ny, nx) == naive.neighbour_site(
                s, q, nz, ny, nx)
        for f in range(6):
            dz, dy, dx = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)][f]
            inside = 0 <= z + dz < nz and 0 <= y + dy < ny and 0 <= x + dx < nx
            want = ((z + dz) * ny + y + dy) * nx + x + dx if inside else -1
            assert nb.face_site_at(s, f, z, y, x, nz, ny, nx) == want
