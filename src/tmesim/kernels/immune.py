"""Decide kernels of CD8 T cells, macrophages and fibroblasts (PD-L1 of cancer cells relaxes in
:func:`tmesim.kernels.cancer.cancer_decide`).

Every kernel follows :mod:`tmesim.kernels.agents`: it reads the state at the start of the step,
updates only the acting cell's own row, and records one intended action. Parameters arrive as a
float64 vector per kind, indexed by the constants below (rates per hour, times in hours,
concentrations in the field's units); field arrays are flat per-site views (a zero array stands
in for a field the scenario does not define). The rules and their sources are in
docs/biology.md.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel
from .agents import (
    ACTION,
    BLOCKED,
    DDIV,
    DIE,
    DIVIDE,
    DKIND,
    DT_H,
    KILL,
    MOVE,
    NONE,
    SEED,
    SHAPE,
    STEP,
    TARGET,
    V_ALL,
    V_ATTRACTANT,
    V_CCL2,
    V_IFNG,
    V_OXYGEN,
    V_TGFB,
)
from .codes import (
    FIBROBLAST,
    MACROPHAGE,
    PROLIFERATING,
    QUIESCENT,
    REMOVED,
    TCELL,
)
from .layout import (
    AUX,
    CLOCK_H,
    DIVISIONS_LEFT,
    F32,
    I32,
    ID,
    IDS,
    KIND,
    LYTIC_SPENT,
    OCC,
    PDL1,
    PHENOTYPE,
    SITE,
    SMALL,
    STATE,
    TCF1,
)
from .neighbourhood import (
    choose_move,
    free_scan,
    hazard_prob,
    is_live_cancer,
    kth_bit,
    neighbour_site,
    popcount,
    scan,
)
from .random import randint, uniform
from .rules import B_DEATH, B_DIVISION, B_KILL, B_MIGRATION, apply_rules, hill

# --- T-cell parameter vector
T_KILL_RATE = 0  # killing rate per engaged hour at zero PD-L1 and TGF-beta (1/h)
T_PDL1_SUPPRESSION = 1  # fraction of killing (and of division) lost at full effective PD-L1
T_EXHAUSTION_H = 2  # engaged hours at zero PD-L1 that exhaust a T cell (h; <= 0: never)
T_LIFESPAN = 3  # mean lifespan of an active T cell (h)
T_EXHAUSTED_LIFESPAN = 4  # mean remaining life of an exhausted T cell (h)
T_MIGRATION_RATE = 5  # moves per hour in matrix-free tissue
T_CHEMOTAXIS_BIAS = 6  # probability that a move goes to the free neighbour of highest chemokine
T_ECM_HALF = 7  # matrix density that halves motility
T_TGFB_HALF = 8  # TGF-beta that halves killing (ng/mL)
T_ANTIBODY_KD = 9  # anti-PD-L1 dissociation constant (field units)
T_PDL1_EXHAUSTION_GAIN = 10  # extra exhaustion tempo at full effective PD-L1 (1 doubles it)
T_LYTIC_STORE = 11  # lytic granule store in kills' worth (<= 0: unlimited)
T_LYTIC_RECOVERY_H = 12  # time constant of the store's refilling (h)
T_DIVISION_RATE = 13  # division rate of an engaged T cell at zero PD-L1 (1/h)
T_EXHAUSTION_SPREAD = 14  # half-width of the per-cell exhaustion threshold, around 1
T_PROGENITOR = 15  # 1: the progenitor model of docs/biology.md §5.10 is on; 0: off
T_ARRIVAL_PROGENITOR = 16  # probability that an arriving (or initial) T cell is a progenitor
T_PROGENITOR_DIVISION_RATE = 17  # division rate of an engaged progenitor at zero PD-L1 (1/h)
T_DIFFERENTIATION_PROB = 18  # probability that a product of a progenitor division is an effector
T_PROGENITOR_KILL_FACTOR = 19  # killing of a progenitor relative to an effector's
T_EFFECTOR_DIVISIONS = 20  # division budget of a new effector (-1: unlimited)
T_SHARES_SITE = 21  # 1: T cells are on the small-cell layer (docs/biology.md §4.10); 0: not
T_NPARAMS = 22

# --- macrophage parameter vector
M_PHAGOCYTOSIS_RATE = 0  # killing rate of a fully M1 macrophage in contact (1/h)
M_TO_M1_RATE = 1  # polarisation rate toward M1 at saturating IFN-gamma (1/h)
M_TO_M2_RATE = 2  # polarisation rate toward M2 per unit M2 drive (1/h)
M_IFNG_HALF = 3  # IFN-gamma half-effect (ng/mL)
M_TGFB_HALF = 4  # TGF-beta half-effect (ng/mL)
M_HYPOXIA_MMHG = 5  # below this pO2 hypoxia (the lactate proxy) adds one unit of M2 drive
M_CONTACT_WEIGHT = 6  # M2 drive of full tumour contact
M_LIFESPAN = 7  # mean lifespan of a recruited (monocyte-derived) macrophage (h; <= 0: none)
M_MIGRATION_RATE = 8  # moves per hour
M_CHEMOTAXIS_BIAS = 9
M_CCL2_WEIGHT = 10  # M2 drive at saturating tumour-derived CCL2
M_CCL2_HALF = 11  # CCL2 half-effect (field units)
M_RELAXATION_RATE = 12  # return toward the resting polarisation without drive (1/h)
M_RECRUITED_REST = 13  # resting polarisation of a recruited macrophage
M_RESIDENT_REST = 14  # resting polarisation of a resident macrophage
M_RESIDENT_M2_FACTOR = 15  # multiplies the M2 rate of resident macrophages
M_RESIDENT_LIFESPAN = 16  # mean lifespan of a resident macrophage (h; <= 0: not lost)
M_NPARAMS = 17

# --- fibroblast parameter vector
F_ACTIVATION_RATE = 0  # activation rate at saturating drive (1/h)
F_TGFB_HALF = 1  # TGF-beta half-effect (ng/mL)
F_CONTACT_WEIGHT = 2  # activation drive of full tumour contact
F_ECM_DEPOSITION = 3  # matrix deposited per hour by a fully activated CAF (density units / h)
F_MIGRATION_RATE = 4  # moves per hour
F_NPARAMS = 5

PURPOSE_T_DEATH = 30
PURPOSE_T_KILL = 31
PURPOSE_T_TARGET = 32
PURPOSE_T_MOVE = 33
PURPOSE_T_SITE = 34
PURPOSE_T_BIAS = 35
PURPOSE_T_DIVIDE = 36
PURPOSE_T_DAUGHTER = 37
PURPOSE_T_THRESHOLD = 38  # drawn with step 0: a fixed property of the cell
PURPOSE_T_FATE = 39  # progenitor or effector, drawn once, at the cell's first step
PURPOSE_M_DEATH = 40
PURPOSE_M_KILL = 41
PURPOSE_M_TARGET = 42
PURPOSE_M_MOVE = 43
PURPOSE_M_SITE = 44
PURPOSE_M_BIAS = 45
PURPOSE_F_MOVE = 50
PURPOSE_F_SITE = 51


@kernel(parallel=True)
def tcell_decide(n, cells, lattice, chemo, tgfb, ecm, antibody, fields, par, rules, keys, intents):
    """CD8 T cells: lifespan, killing of an adjacent cancer cell (PD-L1 and TGF-beta suppressed)
    from a lytic store that refills, antigen-driven exhaustion and expansion, biased random walk
    up the chemokine gradient.

    ``f32[LYTIC_SPENT]`` is the part of the lytic store spent (kills' worth; it relaxes to 0 with
    time constant ``par[T_LYTIC_RECOVERY_H]``; a kill spends one unit, and with less than one
    unit left the kill hazard scales with what is left); ``f32[PHENOTYPE]``
    the antigen exposure in units of ``par[T_EXHAUSTION_H]`` engaged hours (exhausted, state
    QUIESCENT, at the cell's threshold, uniform in 1 +- ``par[T_EXHAUSTION_SPREAD]`` and fixed
    per cell); ``i32[DIVISIONS_LEFT]`` the divisions left (-1: unlimited); ``f32[AUX]`` is 1
    while engaged with a target (engaged, non-exhausted T cells secrete IFN-gamma).

    With ``par[T_PROGENITOR]`` on, ``f32[TCF1]`` is 1 for a stem-like progenitor and 0 for an
    effector (docs/biology.md §5.10). A cell draws its fate at the start of its first step after
    it appeared (``clock_h`` still 0): an arrival or initial cell (not engaged) is a progenitor
    with probability ``par[T_ARRIVAL_PROGENITOR]``; each product of a progenitor division
    (engaged, since T cells divide only while engaged) becomes an effector with probability
    ``par[T_DIFFERENTIATION_PROB]``, with a fresh budget of ``par[T_EFFECTOR_DIVISIONS]``. An
    engaged progenitor kills at ``par[T_PROGENITOR_KILL_FACTOR]`` times the effector's hazard,
    gathers no exposure and divides, without a budget, at ``par[T_PROGENITOR_DIVISION_RATE]``
    restrained by PD-L1; effectors divide at ``par[T_DIVISION_RATE]`` whatever the PD-L1.

    With ``par[T_SHARES_SITE]`` on, T cells are on the small-cell layer (``cells[SMALL]``,
    docs/biology.md §4.10): a free site is one that is not blocked and holds no T cell, whatever
    large cell is there, and the live cancer cell on the T cell's own site is a target besides
    those of its neighbours (drawn uniformly among them all, the own site counted last).

    ``cells``, ``lattice``, ``keys`` and ``intents`` as in :func:`.cancer.cancer_decide`.
    """
    # one per statement: Numba drops writes, inside prange, to arrays taken from a tuple by
    # unpacking (``a, b = t``), and keeps those to arrays taken by position
    ids = cells[IDS]
    i32 = cells[I32]
    f32 = cells[F32]
    kind = cells[KIND]
    state = cells[STATE]
    site = cells[SITE]
    occ = cells[OCC]
    small = cells[SMALL]
    shape = lattice[SHAPE]
    blocked = lattice[BLOCKED]
    dt_h = keys[DT_H]
    seed = keys[SEED]
    step = keys[STEP]
    action = intents[ACTION]
    target = intents[TARGET]
    dkind = intents[DKIND]
    ddiv = intents[DDIV]
    nz, ny, nx = shape[0], shape[1], shape[2]
    shares = par[T_SHARES_SITE] > 0.0
    store = par[T_LYTIC_STORE]
    refill = np.exp(-dt_h / par[T_LYTIC_RECOVERY_H]) if par[T_LYTIC_RECOVERY_H] > 0.0 else 0.0
    lineage = par[T_PROGENITOR] > 0.0
    effector_budget = np.int32(par[T_EFFECTOR_DIVISIONS])
    for i in prange(n):
        if kind[i] != TCELL:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = ids[ID, i]
        s_i = site[i]
        fresh = f32[CLOCK_H, i] == 0.0  # arrived, placed or divided in the last step
        divided = f32[AUX, i] > 0.5  # ... and then engaged: the product of a division
        f32[CLOCK_H, i] += dt_h
        f32[AUX, i] = 0.0
        exhausted = state[i] == QUIESCENT
        if lineage and fresh and not exhausted:
            u = uniform(seed, cid, step, PURPOSE_T_FATE)
            if not divided:
                f32[TCF1, i] = 1.0 if u < par[T_ARRIVAL_PROGENITOR] else 0.0
            elif f32[TCF1, i] > 0.5 and u < par[T_DIFFERENTIATION_PROB]:
                f32[TCF1, i] = 0.0
                i32[DIVISIONS_LEFT, i] = effector_budget
        progenitor = lineage and f32[TCF1, i] > 0.5
        life = par[T_EXHAUSTED_LIFESPAN] if exhausted else par[T_LIFESPAN]
        death = apply_rules(1.0 / life if life > 0 else 0.0, TCELL, B_DEATH, s_i, fields, 0.0,
                            rules)
        if uniform(seed, cid, step, PURPOSE_T_DEATH) < hazard_prob(death, dt_h):
            action[i] = DIE
            continue
        f32[LYTIC_SPENT, i] *= refill
        free, cancer, _ = scan(s_i, occ, blocked, kind, state, nz, ny, nx)
        nt = popcount(cancer)
        here = -1  # the live cancer cell sharing the site
        if shares:
            free = free_scan(s_i, small, blocked, nz, ny, nx)
            if occ[s_i] >= 0 and is_live_cancer(occ[s_i], kind, state):
                here = occ[s_i]
        if not exhausted and (nt > 0 or here >= 0):
            k = randint(seed, cid, step, PURPOSE_T_TARGET, nt + (here >= 0))
            j = here if k == nt else occ[neighbour_site(s_i, kth_bit(cancer, k), nz, ny, nx)]
            ab_occ = 0.0
            if par[T_ANTIBODY_KD] > 0.0:
                a = antibody[site[j]]
                ab_occ = a / (a + par[T_ANTIBODY_KD])
            pdl1_eff = f32[PDL1, j] * (1.0 - ab_occ)
            signal = 1.0 - par[T_PDL1_SUPPRESSION] * pdl1_eff
            f32[AUX, i] = 1.0
            if par[T_EXHAUSTION_H] > 0.0 and not progenitor:
                f32[PHENOTYPE, i] += ((1.0 + par[T_PDL1_EXHAUSTION_GAIN] * pdl1_eff) * dt_h
                                      / par[T_EXHAUSTION_H])
                threshold = 1.0 + par[T_EXHAUSTION_SPREAD] * (
                    2.0 * uniform(seed, cid, 0, PURPOSE_T_THRESHOLD) - 1.0)
                if f32[PHENOTYPE, i] >= threshold:
                    state[i] = QUIESCENT
            # below one kill's worth left, the hazard falls with the granules at hand
            armed = 1.0 if store <= 0.0 else min(1.0, max(0.0, store - f32[LYTIC_SPENT, i]))
            if armed > 0.0:
                kill = apply_rules(par[T_KILL_RATE], TCELL, B_KILL, s_i, fields, pdl1_eff, rules)
                kill *= signal * armed
                if progenitor:
                    kill *= par[T_PROGENITOR_KILL_FACTOR]
                if par[T_TGFB_HALF] > 0.0:
                    kill /= 1.0 + tgfb[s_i] / par[T_TGFB_HALF]
                if uniform(seed, cid, step, PURPOSE_T_KILL) < hazard_prob(kill, dt_h):
                    action[i] = KILL
                    target[i] = j
                    f32[LYTIC_SPENT, i] += 1.0
                    continue
            nfree = popcount(free)
            left = i32[DIVISIONS_LEFT, i]
            # rules (e.g. MDSC suppression, biology.md §6a) act on the base rate, before PD-L1
            if progenitor:  # self-renewing: no budget; PD-L1 restrains (biology.md §5.10)
                division = apply_rules(par[T_PROGENITOR_DIVISION_RATE], TCELL, B_DIVISION, s_i,
                                       fields, pdl1_eff, rules) * signal
            elif lineage:  # an effector's programmed burst, whatever the PD-L1
                division = apply_rules(par[T_DIVISION_RATE], TCELL, B_DIVISION, s_i, fields,
                                       pdl1_eff, rules)
            else:
                division = apply_rules(par[T_DIVISION_RATE], TCELL, B_DIVISION, s_i, fields,
                                       pdl1_eff, rules) * signal
            if ((progenitor or left != 0) and nfree > 0 and uniform(
                    seed, cid, step, PURPOSE_T_DIVIDE) < hazard_prob(division, dt_h)):
                action[i] = DIVIDE
                target[i] = neighbour_site(
                    s_i, kth_bit(free, randint(seed, cid, step, PURPOSE_T_DAUGHTER, nfree)),
                    nz, ny, nx)
                dkind[i] = TCELL
                if progenitor:
                    ddiv[i] = left
                else:
                    ddiv[i] = left - 1 if left > 0 else -1
            continue
        rate = apply_rules(par[T_MIGRATION_RATE], TCELL, B_MIGRATION, s_i, fields, 0.0, rules)
        if par[T_ECM_HALF] > 0.0:
            rate /= 1.0 + ecm[s_i] / par[T_ECM_HALF]
        if uniform(seed, cid, step, PURPOSE_T_MOVE) < hazard_prob(rate, dt_h):
            t = choose_move(s_i, free, cid, nz, ny, nx, chemo, par[T_CHEMOTAXIS_BIAS], seed, step,
                            PURPOSE_T_BIAS, PURPOSE_T_SITE)
            if t >= 0:
                action[i] = MOVE
                target[i] = t


@kernel(parallel=True)
def macrophage_decide(n, cells, lattice, views, par, rules, keys, intents):
    """Macrophages: continuous M1 <-> M2 polarisation, M1 phagocytosis, lifespan, migration.

    ``f32[PHENOTYPE]`` is the polarisation ``p`` (0 = M1, 1 = M2), integrated exactly over
    the step for ``dp/dt = k2 S2 (1 - p) - k1 S1 p + k0 (p_rest - p)`` with ``S1 = H(IFN-gamma)``,
    ``S2 = w_c * (tumour contact) + [pO2 < hypoxia] + w_ccl2 * H(CCL2) + H(TGF-beta)`` and ``k0``
    the return to the resting polarisation ``p_rest`` without drive. ``f32[AUX]`` is 1 for
    a resident macrophage (present from the start: its own resting polarisation, M2 rate factor
    and lifespan, and a random walk) and 0 for a recruited, monocyte-derived one (which climbs
    ``attractant``, the CCL2 gradient). State QUIESCENT marks M2 (``p > 0.5``). ``views`` is
    the :class:`.agents.FieldViews` (``oxygen``, ``ifng``, ``tgfb``, ``ccl2``, ``attractant``
    and ``all`` are read).
    """
    # one per statement: Numba drops writes, inside prange, to arrays taken from a tuple by
    # unpacking (``a, b = t``), and keeps those to arrays taken by position
    ids = cells[IDS]
    f32 = cells[F32]
    kind = cells[KIND]
    state = cells[STATE]
    site = cells[SITE]
    occ = cells[OCC]
    shape = lattice[SHAPE]
    blocked = lattice[BLOCKED]
    dt_h = keys[DT_H]
    seed = keys[SEED]
    step = keys[STEP]
    action = intents[ACTION]
    target = intents[TARGET]
    chemo = views[V_ATTRACTANT]
    ifng = views[V_IFNG]
    tgfb = views[V_TGFB]
    oxygen = views[V_OXYGEN]
    ccl2 = views[V_CCL2]
    fields = views[V_ALL]
    nz, ny, nx = shape[0], shape[1], shape[2]
    for i in prange(n):
        if kind[i] != MACROPHAGE:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = ids[ID, i]
        s_i = site[i]
        f32[CLOCK_H, i] += dt_h
        resident = f32[AUX, i] > 0.5
        free, cancer, nall = scan(s_i, occ, blocked, kind, state, nz, ny, nx)
        nt = popcount(cancer)
        contact = nt / nall if nall > 0 else 0.0
        s1 = hill(ifng[s_i], par[M_IFNG_HALF], 1.0)
        s2 = (par[M_CONTACT_WEIGHT] * contact + hill(tgfb[s_i], par[M_TGFB_HALF], 1.0)
              + par[M_CCL2_WEIGHT] * hill(ccl2[s_i], par[M_CCL2_HALF], 1.0))
        if oxygen[s_i] < par[M_HYPOXIA_MMHG]:
            s2 += 1.0
        k1 = par[M_TO_M1_RATE] * s1
        k2 = par[M_TO_M2_RATE] * s2
        k0 = par[M_RELAXATION_RATE]
        if resident:
            k2 *= par[M_RESIDENT_M2_FACTOR]
            rest = par[M_RESIDENT_REST]
            life = par[M_RESIDENT_LIFESPAN]
        else:
            rest = par[M_RECRUITED_REST]
            life = par[M_LIFESPAN]
        ktot = k1 + k2 + k0
        if ktot > 0.0:
            p_inf = (k2 + k0 * rest) / ktot
            f32[PHENOTYPE, i] = p_inf + (f32[PHENOTYPE, i] - p_inf) * np.exp(-ktot * dt_h)
        p = f32[PHENOTYPE, i]
        state[i] = PROLIFERATING if p <= 0.5 else QUIESCENT
        death = apply_rules(1.0 / life if life > 0 else 0.0, MACROPHAGE, B_DEATH, s_i, fields,
                            0.0, rules)
        if uniform(seed, cid, step, PURPOSE_M_DEATH) < hazard_prob(death, dt_h):
            action[i] = DIE
            continue
        if nt > 0:
            kill = apply_rules(par[M_PHAGOCYTOSIS_RATE] * (1.0 - p), MACROPHAGE, B_KILL, s_i,
                               fields, 0.0, rules)
            if uniform(seed, cid, step, PURPOSE_M_KILL) < hazard_prob(kill, dt_h):
                k = randint(seed, cid, step, PURPOSE_M_TARGET, nt)
                action[i] = KILL
                target[i] = occ[neighbour_site(s_i, kth_bit(cancer, k), nz, ny, nx)]
                continue
        rate = apply_rules(par[M_MIGRATION_RATE], MACROPHAGE, B_MIGRATION, s_i, fields, 0.0,
                           rules)
        if uniform(seed, cid, step, PURPOSE_M_MOVE) < hazard_prob(rate, dt_h):
            # recruited (CCR2-high) cells climb the CCL2 gradient; residents walk at random
            bias = 0.0 if resident else par[M_CHEMOTAXIS_BIAS]
            t = choose_move(s_i, free, cid, nz, ny, nx, chemo, bias, seed, step, PURPOSE_M_BIAS,
                            PURPOSE_M_SITE)
            if t >= 0:
                action[i] = MOVE
                target[i] = t


@kernel(parallel=True)
def fibroblast_decide(n, cells, lattice, tgfb, ecm, par, keys, intents):
    """Fibroblasts: activation to CAFs by TGF-beta and tumour contact; CAFs deposit matrix.

    ``f32[PHENOTYPE]`` is the activation ``a`` in [0, 1] with ``da/dt = k D (1 - a)``,
    ``D = H(TGF-beta) + w * contact`` (integrated exactly); ``a > 0.5`` is a CAF (state
    QUIESCENT). Matrix at the cell's own site follows ``d ecm/dt = deposition * a * (1 - ecm)``
    (each site holds one cell, so no two threads write the same voxel).
    """
    # one per statement: Numba drops writes, inside prange, to arrays taken from a tuple by
    # unpacking (``a, b = t``), and keeps those to arrays taken by position
    ids = cells[IDS]
    f32 = cells[F32]
    kind = cells[KIND]
    state = cells[STATE]
    site = cells[SITE]
    occ = cells[OCC]
    shape = lattice[SHAPE]
    blocked = lattice[BLOCKED]
    dt_h = keys[DT_H]
    seed = keys[SEED]
    step = keys[STEP]
    action = intents[ACTION]
    target = intents[TARGET]
    nz, ny, nx = shape[0], shape[1], shape[2]
    for i in prange(n):
        if kind[i] != FIBROBLAST:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = ids[ID, i]
        s_i = site[i]
        f32[CLOCK_H, i] += dt_h
        free, cancer, nall = scan(s_i, occ, blocked, kind, state, nz, ny, nx)
        contact = popcount(cancer) / nall if nall > 0 else 0.0
        drive = hill(tgfb[s_i], par[F_TGFB_HALF], 1.0) + par[F_CONTACT_WEIGHT] * contact
        a = 1.0 - (1.0 - f32[PHENOTYPE, i]) * np.exp(-par[F_ACTIVATION_RATE] * drive * dt_h)
        f32[PHENOTYPE, i] = a
        state[i] = QUIESCENT if a > 0.5 else PROLIFERATING
        if ecm.shape[0] > 1 and par[F_ECM_DEPOSITION] > 0.0:
            ecm[s_i] = 1.0 - (1.0 - ecm[s_i]) * np.exp(-par[F_ECM_DEPOSITION] * a * dt_h)
        rate = par[F_MIGRATION_RATE]
        if rate > 0.0 and uniform(seed, cid, step, PURPOSE_F_MOVE) < hazard_prob(rate, dt_h):
            t = choose_move(s_i, free, cid, nz, ny, nx, ecm, 0.0, seed, step, PURPOSE_F_MOVE,
                            PURPOSE_F_SITE)
            if t >= 0:
                action[i] = MOVE
                target[i] = t
