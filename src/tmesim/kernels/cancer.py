"""Decide kernel of tumour and cancer-stem-like cells (parallel; see :mod:`.agents`).

Rules, per cell, from the state at the start of the step (sources in docs/biology.md):

0. PD-L1 of a live cell relaxes toward ``base + (max - base) * H(IFN-gamma)`` (exact solution of
   ``dP/dt = rate * (target - P)`` over the step).
1. A necrotic cell keeps its site for ``lysis_h``, then is removed.
2. Oxygen: below ``necrosis_mmHg`` the cell turns necrotic with hazard
   ``necrosis_max_per_h * clip((necrosis - pO2) / (necrosis - necrosis_max), 0, 1)``; below
   ``hypoxia_mmHg`` it is quiescent (no division attempts).
3. Apoptosis with hazard ``death_rate + h_drugs``, plus rules, where each dosed drug ``j``
   adds ``h_j = Emax_j C_j^h_j / (EC50_j^h_j + C_j^h_j)`` on its intracellular drug or damage
   ``C_j`` (scaled by ``quiescent_drug_factor`` for quiescent cells), combined over the drugs
   by ``par[k, C_DRUG_COMBINATION]``: Bliss independence (``COMBINE_BLISS``: the hazards add,
   so the survival of a step is the product of each drug's survival) or the highest single
   drug (``COMBINE_HIGHEST``: ``max_j h_j``).
4. Optional plasticity: a tumour cell becomes stem-like with hazard
   ``plasticity_per_h * ([hypoxic] + H(TGF-beta))``.
5. A cell moves only if a neighbouring site is free, and divides only if one is free or its kind
   pushes (``push_distance_um > 0``: the daughter's site is then made by
   :func:`.agents.push_chain` when the division is applied; otherwise contact inhibition). With
   probability ``1 - exp(-r_div * dt)`` it attempts division into a random free neighbour, where
   ``r_div = division_rate * (1 + growth_factor_boost * G / (G + growth_factor_half))`` with G
   the growth factor (field ``par[k, C_GF_FIELD]``, EGF from M2 macrophages) at its site: a
   stem-like cell makes a stem-like daughter with probability ``symmetric_division_prob``, else a
   tumour daughter with ``max_divisions``; a tumour cell dies at the attempt with probability
   ``death_at_division`` or when no divisions are left, else mother and daughter keep
   ``divisions_left - 1``. Otherwise it moves to a random free neighbour with probability
   ``1 - exp(-migration_rate * dt)``.

Per-kind parameters arrive as rows of ``par`` (``par[kind, C_*]``); the columns from
``C_NPARAMS`` on are the kind's response to each dosed drug, ``D_NCOLS`` per drug
(``par[kind, C_NPARAMS + j * D_NCOLS + D_*]``), so ``par`` has ``C_NPARAMS + n_drugs * D_NCOLS``
columns.

The work is split by what a cell needs. Pass 1a (:func:`_classify`) reads each cell's voxel and
drug and sorts out the cells whose rates are the per-kind constants of this call (see
:func:`_constant_rates`): no rule and no plasticity for its kind, pO2 at or above the necrosis
threshold, no IFN-gamma and no growth factor it responds to at its site, and no intracellular
drug it responds to. Pass 1b
(:func:`_decide_rows`) applies the rules to those cells and to necrotic ones: no transcendental
function, no neighbourhood and no branch on a draw, so the loop vectorises; a cell that would
divide or move is marked, and every other live cell is marked for the full rule set. Pass 2 visits
only the marked cells, block by block right after pass 1b: the full rules where needed, then the
search for free space. Draws are keyed, so this split gives the same outcome, bit for bit, as one
pass in rule order.
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
    MOVE,
    NONE,
    SEED,
    SHAPE,
    STEP,
    TARGET,
    V_ALL,
    V_IFNG,
    V_OXYGEN,
    V_TGFB,
)
from .codes import NECROTIC, PROLIFERATING, QUIESCENT, STEM, TUMOR
from .layout import CLOCK_H, DIVISIONS_LEFT, F32, I32, ICD, ID, IDS, KIND, OCC, PDL1, SITE, STATE
from .neighbourhood import (
    cancer_free_scan,
    draw_below_hazard_prob,
    hazard_prob,
    is_cancer,
    kth_bit,
    neighbour_site,
    popcount,
    surrounded,
)
from .random import cell_key, randint_of, uniform_of
from .rules import B_DEATH, B_DIVISION, B_MIGRATION, R_BEHAVIOUR, R_KIND, apply_rules, hill

C_DIVISION_RATE = 0
C_MIGRATION_RATE = 1
C_DEATH_AT_DIVISION = 2
C_SYMMETRIC = 3
C_MAX_DIVISIONS = 4
C_HYPOXIA = 5
C_NECROSIS = 6
C_NECROSIS_MAX = 7
C_NECROSIS_RATE = 8
C_LYSIS = 9
C_DEATH_RATE = 10
C_QUIESCENT_DRUG_FACTOR = 11
C_PLASTICITY_RATE = 12
C_PLASTICITY_TGFB_HALF = 13
C_PDL1_BASE = 14
C_PDL1_MAX = 15
C_PDL1_EC50 = 16
C_PDL1_HILL = 17
C_PDL1_RATE = 18
C_GF_FIELD = 19  # index of the growth-factor field in ``fields`` (-1: none)
C_GF_BOOST = 20  # relative rise of the division rate at saturating growth factor
C_GF_HALF = 21  # growth factor giving half that rise
C_PUSH = 22  # push distance in sites (0: contact inhibition)
C_DRUG_COMBINATION = 23  # how the hazards of several drugs combine: COMBINE_*
C_NPARAMS = 24  # columns before the drugs' blocks

#: rule of C_DRUG_COMBINATION: Bliss independence (hazards add: survival multiplies)
COMBINE_BLISS = 0
#: rule of C_DRUG_COMBINATION: the highest single drug's hazard
COMBINE_HIGHEST = 1

# columns of a drug's block, par[k, C_NPARAMS + j * D_NCOLS + D_*]
D_ROW = 0  # row of ``f32`` the drug's hazard reads: its free drug, or its damage with binding
D_EMAX = 1  # maximal hazard (1/h; 0: the kind does not respond to it)
D_EC50 = 2  # free drug (uM) or damage (uM h) at half the maximal hazard
D_HILL = 3
D_IMMUNOGENIC = 4  # share of the drug's kills that are immunogenic (ICD), 0-1
D_NCOLS = 5

PURPOSE_NECROSIS = 4
PURPOSE_DIVIDE = 2
PURPOSE_DIVIDE_SITE = 3
PURPOSE_MIGRATE = 5
PURPOSE_MIGRATE_SITE = 6
PURPOSE_DEATH = 7
PURPOSE_FATE = 8
PURPOSE_APOPTOSIS = 10
PURPOSE_PLASTICITY = 11

# columns of the table of per-kind constants (_constant_rates)
K_P_DIVIDE = 0  # per-step probability of a division attempt at the base rate
K_P_MIGRATE = 1  # per-step probability of a move at the base rate
K_P_DIE = 2  # per-step probability of apoptosis at the base rate
K_P_PLASTIC = 3  # per-step probability of conversion at full drive
K_PDL1_KEEP = 4  # exp(-pdl1_rate * dt)
K_RULED_DIVISION = 5  # 1 when a rule changes the division rate of the kind
K_RULED_MIGRATION = 6
K_RULED_DEATH = 7
K_GENERAL = 8  # 1 when the kind's rates are not all constant (rules, plasticity)
K_NCOLS = 9

# internal codes between the passes (never returned: each becomes an action code)
_NORMOXIC = 0  # pass 1a classes
_HYPOXIC = 1
_WANT_DIVIDE = 5  # pass 1b marks, resolved in pass 2
_WANT_MOVE = 6
_GENERAL = 7

#: rows per block of the decide passes 1b and 2 (a block stays in cache between them)
BLOCK = 1024


@kernel
def necrosis_probability(po2, thr, thr_max, rate_max_per_h, dt_h):
    """Per-step probability of turning necrotic at oxygen ``po2`` (mmHg)."""
    if po2 >= thr:
        return 0.0
    if po2 <= thr_max or thr <= thr_max:
        frac = 1.0
    else:
        frac = (thr - po2) / (thr - thr_max)
    return 1.0 - np.exp(-rate_max_per_h * frac * dt_h)


@kernel
def _constant_rates(par, rules, dt_h):
    """Per-kind constants of one call: probabilities at the base rates, the PD-L1 decay factor,
    and which behaviours rules change (rows are kinds, columns ``K_*``)."""
    out = np.zeros((par.shape[0], K_NCOLS))
    for k in range(par.shape[0]):
        out[k, K_P_DIVIDE] = hazard_prob(par[k, C_DIVISION_RATE], dt_h)
        out[k, K_P_MIGRATE] = hazard_prob(par[k, C_MIGRATION_RATE], dt_h)
        out[k, K_P_DIE] = hazard_prob(par[k, C_DEATH_RATE], dt_h)
        out[k, K_P_PLASTIC] = hazard_prob(par[k, C_PLASTICITY_RATE], dt_h)
        out[k, K_PDL1_KEEP] = np.exp(-par[k, C_PDL1_RATE] * dt_h)
        if k == TUMOR and par[k, C_PLASTICITY_RATE] > 0.0:
            out[k, K_GENERAL] = 1.0
    for r in range(rules.shape[0]):
        k = int(rules[r, R_KIND])
        b = int(rules[r, R_BEHAVIOUR])
        col = -1
        if b == B_DIVISION:
            col = K_RULED_DIVISION
        elif b == B_MIGRATION:
            col = K_RULED_MIGRATION
        elif b == B_DEATH:
            col = K_RULED_DEATH
        if col >= 0:
            out[k, col] = 1.0
            out[k, K_GENERAL] = 1.0
    return out


@kernel
def _growth_field(par, fields):
    """The growth-factor field the cancer kinds respond to, as a flat array of the sites (a
    length-1 array of zeros when no kind responds to one)."""
    for k in (TUMOR, STEM):
        g = int(par[k, C_GF_FIELD])
        if g >= 0 and par[k, C_GF_BOOST] > 0.0:
            return fields[g]
    return np.zeros(1, fields.dtype)


@kernel
def n_drugs(par):
    """Number of dosed drugs whose blocks ``par`` holds (columns from ``C_NPARAMS`` on)."""
    return (par.shape[1] - C_NPARAMS) // D_NCOLS


@kernel
def drug_hazard(f32, i, k, par, hypoxic):
    """``(h, icd)``: the apoptosis hazard (1/h) that the dosed drugs give cell ``i`` of kind
    ``k``, and its immunogenic part.

    Each drug ``j`` whose ``D_EMAX`` is positive for the kind gives
    ``h_j = Emax_j H(f32[D_ROW_j, i]; EC50_j, n_j)`` (its free drug or its damage), times
    ``C_QUIESCENT_DRUG_FACTOR`` when ``hypoxic``. With ``par[k, C_DRUG_COMBINATION]`` ==
    ``COMBINE_BLISS`` ``h = sum_j h_j``: hazards add, so the survival of a step,
    ``exp(-h dt)``, is the product of each drug's survival ``exp(-h_j dt)`` (Bliss
    independence); with ``COMBINE_HIGHEST`` ``h = max_j h_j``. ``icd = sum_j immunogenic_j
    h_j`` over the drugs counted (with ``COMBINE_HIGHEST``, the one that gives ``h``).
    """
    total = 0.0
    icd = 0.0
    highest = par[k, C_DRUG_COMBINATION] == COMBINE_HIGHEST
    for j in range(n_drugs(par)):
        c0 = C_NPARAMS + j * D_NCOLS
        emax = par[k, c0 + D_EMAX]
        if not emax > 0.0:
            continue
        term = emax * hill(f32[np.int64(par[k, c0 + D_ROW]), i], par[k, c0 + D_EC50],
                           par[k, c0 + D_HILL])
        if hypoxic:
            term *= par[k, C_QUIESCENT_DRUG_FACTOR]
        if not highest:
            total += term
            icd += par[k, c0 + D_IMMUNOGENIC] * term
        elif term > total:
            total = term
            icd = par[k, c0 + D_IMMUNOGENIC] * term
    return total, icd


@kernel
def _holds_drug(f32, i, k, par):
    """Whether cell ``i`` of kind ``k`` holds a drug it responds to (its ``D_ROW`` not at or
    below 0)."""
    for j in range(n_drugs(par)):
        c0 = C_NPARAMS + j * D_NCOLS
        if par[k, c0 + D_EMAX] > 0.0 and not f32[np.int64(par[k, c0 + D_ROW]), i] <= 0.0:
            return True
    return False


@kernel(parallel=True)
def _classify(n, kind, site, oxygen, ifng, f32, growth, par, rates, action):
    """Pass 1a of :func:`cancer_decide`: what each cancer cell's voxel and drug say, into
    ``action[i]`` (a class, not an action yet): ``_GENERAL`` when the cell's rates are not the
    per-kind constants, else ``_HYPOXIC`` or ``_NORMOXIC``. Gathers only, apart from pass 1b so
    that pass 1b vectorises. ``growth`` is :func:`_growth_field`: a cell with growth factor at its
    site divides faster and takes the general path."""
    t, st = TUMOR, STEM
    growth_matters = growth.shape[0] > 1
    # per-kind constants as scalars (a table lookup per cell costs more). A cell takes the
    # general path when its pO2 is not at or above safe (never, for a kind with rules or
    # plasticity), when its voxel holds IFN-gamma, or when it holds a drug it responds to
    # (the drug columns are not read when no kind responds to a drug).
    safe_t = np.inf if rates[t, K_GENERAL] != 0.0 else par[t, C_NECROSIS]
    safe_s = np.inf if rates[st, K_GENERAL] != 0.0 else par[st, C_NECROSIS]
    drug_matters = False
    for j in range(n_drugs(par)):
        c0 = C_NPARAMS + j * D_NCOLS
        drug_matters = drug_matters or par[t, c0 + D_EMAX] > 0.0 or par[st, c0 + D_EMAX] > 0.0
    hyp_t, hyp_s = par[t, C_HYPOXIA], par[st, C_HYPOXIA]
    for i in prange(n):
        k = kind[i]
        stem = k == STEM
        s_i = site[i]
        po2 = oxygen[s_i]
        c = _HYPOXIC if po2 < (hyp_s if stem else hyp_t) else _NORMOXIC
        if not po2 >= (safe_s if stem else safe_t) or ifng[s_i] > 0.0:
            c = _GENERAL
        elif growth_matters and growth[s_i] > 0.0:
            c = _GENERAL
        elif drug_matters and is_cancer(k) and _holds_drug(f32, i, k, par):
            c = _GENERAL
        if is_cancer(k):
            action[i] = c


@kernel(parallel=True)
def _decide_rows(n, cells, lattice, views, par, rules, rates, keys, intents, clock, pdl1,
                 cell_id):
    """Passes 1b and 2 of :func:`cancer_decide`, a block of rows at a time (the block stays in
    cache between the two passes); ``clock``, ``pdl1`` and ``cell_id`` are rows of ``f32`` and
    ``ids`` passed apart, so that pass 1b vectorises. Threads take chunks of consecutive blocks;
    a chunk allocates the list of marked rows of pass 2 once.

    Pass 1b: lysis, and the rules of the live cells that :func:`_classify` found at constant
    rates; it marks ``_WANT_DIVIDE``, ``_WANT_MOVE`` or ``_GENERAL``. No branch depends on a
    draw, so the loop vectorises; rows that do not use their draws drop them (keyed draws have
    no state to disturb). Apoptosis at the base rate, which overrides those marks, is a loop of
    its own that runs only when a kind has a death rate (the packaged default has none), so
    that its draw is not paid for nothing. Pass 2: the marked cells: the full rules where needed, then the
    neighbourhood.
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
    shape = lattice[SHAPE]
    air = lattice[BLOCKED]
    dt_h = keys[DT_H]
    seed = keys[SEED]
    step = keys[STEP]
    action = intents[ACTION]
    target = intents[TARGET]
    dkind = intents[DKIND]
    ddiv = intents[DDIV]
    oxygen = views[V_OXYGEN]
    tgfb = views[V_TGFB]
    ifng = views[V_IFNG]
    fields = views[V_ALL]
    nz, ny, nx = shape[0], shape[1], shape[2]
    t, st = TUMOR, STEM
    lysis_t, lysis_s = par[t, C_LYSIS], par[st, C_LYSIS]
    base_t, base_s = par[t, C_PDL1_BASE], par[st, C_PDL1_BASE]
    keep_t, keep_s = rates[t, K_PDL1_KEEP], rates[st, K_PDL1_KEEP]
    dies_t, dies_s = par[t, C_DEATH_RATE] > 0.0, par[st, C_DEATH_RATE] > 0.0
    p_die_t, p_die_s = rates[t, K_P_DIE], rates[st, K_P_DIE]
    p_div_t, p_div_s = rates[t, K_P_DIVIDE], rates[st, K_P_DIVIDE]
    p_mig_t, p_mig_s = rates[t, K_P_MIGRATE], rates[st, K_P_MIGRATE]
    n_blocks = (n + BLOCK - 1) // BLOCK
    n_chunks = min(n_blocks, 64)  # chunks of consecutive blocks, each with one list of rows
    for chunk in prange(n_chunks):
        marked = np.empty(BLOCK, np.int64)
        for block in range(chunk * n_blocks // n_chunks, (chunk + 1) * n_blocks // n_chunks):
            # unsigned row indices: no negative-index wrap-around, so pass 1b vectorises
            lo = np.uint64(block * BLOCK)
            hi = np.uint64(min(block * BLOCK + BLOCK, n))
            for i in range(lo, hi):  # pass 1b
                k = kind[i]
                now = state[i]
                cancer = is_cancer(k)
                stem = k == STEM
                c = action[i]
                necrotic = now == NECROTIC
                live = now == PROLIFERATING or now == QUIESCENT
                fast = cancer and live and c != _GENERAL
                hypoxic = c == _HYPOXIC
                aged = np.float32(clock[i] + dt_h)
                if cancer and (necrotic or fast):
                    clock[i] = aged
                if fast:  # no IFN-gamma here: the PD-L1 target is the baseline
                    tgt = base_s if stem else base_t
                    pdl1[i] = tgt + (pdl1[i] - tgt) * (keep_s if stem else keep_t)
                    state[i] = QUIESCENT if hypoxic else PROLIFERATING
                key = cell_key(seed, step, cell_id[i])
                mark = NONE
                if uniform_of(key, PURPOSE_MIGRATE) < (p_mig_s if stem else p_mig_t):
                    mark = _WANT_MOVE
                if not hypoxic and uniform_of(key, PURPOSE_DIVIDE) < (p_div_s if stem else p_div_t):
                    mark = _WANT_DIVIDE  # division is tried first, so it overrides a move
                if not fast:
                    mark = _GENERAL if cancer and live else NONE
                if necrotic and aged >= (lysis_s if stem else lysis_t):
                    mark = DIE
                if cancer:
                    action[i] = mark
            if dies_t or dies_s:  # apoptosis at the base rate comes before both
                for i in range(lo, hi):
                    k = kind[i]
                    stem = k == STEM
                    now = state[i]
                    fast = (is_cancer(k) and (now == PROLIFERATING or now == QUIESCENT)
                            and action[i] != _GENERAL)
                    if fast and (dies_s if stem else dies_t) and uniform_of(
                            cell_key(seed, step, cell_id[i]), PURPOSE_APOPTOSIS) < (
                            p_die_s if stem else p_die_t):
                        action[i] = DIE
            # pass 2 over the marked rows, listed first by a loop without branches (which rows are
            # marked changes every step, so a branch per row would often be mispredicted)
            m = 0
            for i in range(lo, hi):
                marked[m] = i
                m += action[i] >= _WANT_DIVIDE
            for j in range(m):
                i = marked[j]
                mark = action[i]
                k = kind[i]
                if not is_cancer(k):
                    continue
                key = cell_key(seed, step, ids[ID, i])  # shared by the cell's draws
                s_i = site[i]
                if mark == _GENERAL:
                    s = ifng[s_i]
                    tgt = par[k, C_PDL1_BASE]
                    if s > 0.0:
                        tgt += (par[k, C_PDL1_MAX] - tgt) * hill(s, par[k, C_PDL1_EC50],
                                                                 par[k, C_PDL1_HILL])
                    f32[PDL1, i] = tgt + (f32[PDL1, i] - tgt) * rates[k, K_PDL1_KEEP]
                    po2 = oxygen[s_i]
                    p_nec = necrosis_probability(po2, par[k, C_NECROSIS], par[k, C_NECROSIS_MAX],
                                                 par[k, C_NECROSIS_RATE], dt_h)
                    if p_nec > 0.0 and uniform_of(key, PURPOSE_NECROSIS) < p_nec:
                        state[i] = NECROTIC
                        f32[CLOCK_H, i] = 0.0
                        action[i] = NONE
                        continue
                    hypoxic = po2 < par[k, C_HYPOXIA]
                    state[i] = QUIESCENT if hypoxic else PROLIFERATING
                    f32[CLOCK_H, i] += dt_h
                    # apoptosis: baseline + the dosed drugs (Emax models on intracellular drug
                    # or damage, combined by the scenario's rule) + rules; icd is the
                    # immunogenic part of the hazard (biology.md §5.8)
                    death = par[k, C_DEATH_RATE]
                    varies = rates[k, K_RULED_DEATH] != 0.0
                    drug_term, icd = drug_hazard(f32, i, k, par, hypoxic)
                    death += drug_term
                    varies = varies or drug_term != 0.0
                    if rates[k, K_RULED_DEATH] != 0.0:
                        death = apply_rules(death, k, B_DEATH, s_i, fields, f32[PDL1, i], rules)
                    if death > 0.0:
                        pdie = hazard_prob(death, dt_h) if varies else rates[k, K_P_DIE]
                        if uniform_of(key, PURPOSE_APOPTOSIS) < pdie:
                            action[i] = DIE
                            if icd > 0.0:  # competing hazards: the share of the death by ICD
                                f32[ICD, i] = min(1.0, icd / death)
                            continue
                    if k == TUMOR and par[k, C_PLASTICITY_RATE] > 0.0:
                        s_tgfb = tgfb[s_i]
                        if s_tgfb > 0.0:
                            drive = hill(s_tgfb, par[k, C_PLASTICITY_TGFB_HALF], 1.0)
                            if hypoxic:
                                drive += 1.0
                            p_pl = hazard_prob(par[k, C_PLASTICITY_RATE] * drive, dt_h)
                        else:  # no TGF-beta: drive is 1 when hypoxic, else 0
                            p_pl = rates[k, K_P_PLASTIC] if hypoxic else 0.0
                        if p_pl > 0.0 and uniform_of(key, PURPOSE_PLASTICITY) < p_pl:
                            kind[i] = STEM
                            k = STEM
                    mark = NONE
                    pd = rates[k, K_P_DIVIDE]
                    rate = par[k, C_DIVISION_RATE]
                    varies = rates[k, K_RULED_DIVISION] != 0.0
                    g = int(par[k, C_GF_FIELD])
                    if g >= 0 and par[k, C_GF_BOOST] > 0.0 and fields[g, s_i] > 0.0:
                        rate *= 1.0 + par[k, C_GF_BOOST] * hill(fields[g, s_i], par[k, C_GF_HALF],
                                                                1.0)
                        varies = True
                    if rates[k, K_RULED_DIVISION] != 0.0:
                        rate = apply_rules(rate, k, B_DIVISION, s_i, fields, f32[PDL1, i], rules)
                    if hypoxic:
                        divides = False
                    elif varies:  # most draws settle it without the exponential
                        divides = draw_below_hazard_prob(uniform_of(key, PURPOSE_DIVIDE), rate,
                                                         dt_h)
                    else:
                        divides = uniform_of(key, PURPOSE_DIVIDE) < pd
                    if divides:
                        mark = _WANT_DIVIDE
                    else:
                        pm = rates[k, K_P_MIGRATE]
                        if rates[k, K_RULED_MIGRATION] != 0.0:
                            rate = apply_rules(par[k, C_MIGRATION_RATE], k, B_MIGRATION, s_i,
                                               fields, f32[PDL1, i], rules)
                            pm = hazard_prob(rate, dt_h)
                        if pm > 0.0 and uniform_of(key, PURPOSE_MIGRATE) < pm:
                            mark = _WANT_MOVE
                    if mark == NONE:
                        action[i] = NONE
                        continue
                # division, else migration: each needs a free neighbour (contact inhibition),
                # except a division of a kind that pushes (apply_actions finds the space)
                push = mark == _WANT_DIVIDE and par[k, C_PUSH] > 0.0
                if surrounded(s_i, occ, nz, ny, nx):
                    free = np.int64(0)
                else:
                    free = cancer_free_scan(s_i, occ, air, kind, nz, ny, nx, mark == _WANT_MOVE)
                nfree = popcount(free)
                if nfree == 0 and not push:
                    action[i] = NONE
                    continue
                if mark == _WANT_MOVE:
                    action[i] = MOVE
                    q = kth_bit(free, randint_of(key, PURPOSE_MIGRATE_SITE, nfree))
                    target[i] = neighbour_site(s_i, q, nz, ny, nx)
                    continue
                if k == TUMOR:
                    dies = uniform_of(key, PURPOSE_DEATH) < par[k, C_DEATH_AT_DIVISION]
                    if dies or i32[DIVISIONS_LEFT, i] <= 0:
                        action[i] = DIE
                        continue
                    dkind[i] = TUMOR
                    ddiv[i] = i32[DIVISIONS_LEFT, i] - 1
                else:
                    if uniform_of(key, PURPOSE_FATE) < par[k, C_SYMMETRIC]:
                        dkind[i] = STEM
                        ddiv[i] = i32[DIVISIONS_LEFT, i]
                    else:
                        dkind[i] = TUMOR
                        ddiv[i] = np.int32(par[TUMOR, C_MAX_DIVISIONS])
                action[i] = DIVIDE
                if nfree == 0:
                    target[i] = -1  # no free neighbour: the daughter is placed by pushing
                    continue
                q = kth_bit(free, randint_of(key, PURPOSE_DIVIDE_SITE, nfree))
                target[i] = neighbour_site(s_i, q, nz, ny, nx)


@kernel
def cancer_decide(n, cells, lattice, views, par, rules, keys, intents):
    """Decide the step of every tumour and stem-like cell (rows of other kinds are skipped).

    ``cells`` are the cell arrays (:class:`.layout.CellArrays`), ``lattice`` the
    :class:`.agents.Lattice`, ``views`` the :class:`.agents.FieldViews` (``oxygen``, ``tgfb``,
    ``ifng`` and ``all`` are read), ``keys`` the :class:`.agents.StepKeys`, ``intents`` the
    :class:`.agents.Intents` written. ``f32`` rows used: ``CLOCK_H``, ``PDL1`` (updated first), and the row
    that each drug's ``D_ROW`` names (its free intracellular drug, or its damage; the same for
    both kinds; :func:`drug_hazard`). The passes run in
    parallel over the rows (:func:`_classify`, :func:`_decide_rows`).
    """
    ids, f32 = cells[IDS], cells[F32]
    rates = _constant_rates(par, rules, keys[DT_H])
    # pass 1a is a kernel of its own: numba would fuse adjacent loops over the rows into one, and
    # its gathers would then keep pass 1b from vectorising
    _classify(n, cells[KIND], cells[SITE], views[V_OXYGEN], views[V_IFNG], f32,
              _growth_field(par, views[V_ALL]), par, rates, intents[ACTION])
    _decide_rows(n, cells, lattice, views, par, rules, rates, keys, intents, f32[CLOCK_H],
                 f32[PDL1], ids[ID])
