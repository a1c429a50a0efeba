"""Decide kernel of tumour and cancer-stem-like cells (parallel; see :mod:`.agents`).

Rules, per cell, from the state at the start of the step (sources in docs/biology.md):

1. A necrotic cell keeps its site for ``lysis_h``, then is removed.
2. Oxygen: below ``necrosis_mmHg`` the cell turns necrotic with hazard
   ``necrosis_max_per_h * clip((necrosis - pO2) / (necrosis - necrosis_max), 0, 1)``; below
   ``hypoxia_mmHg`` it is quiescent (no division attempts).
3. Apoptosis with hazard ``death_rate + Emax C^h / (EC50^h + C^h)`` on the intracellular drug
   ``C`` (the drug term scaled by ``quiescent_drug_factor`` for quiescent cells), plus rules.
4. Optional plasticity: a tumour cell becomes stem-like with hazard
   ``plasticity_per_h * ([hypoxic] + H(TGF-beta))``.
5. A cell acts only if a neighbouring site is free (contact inhibition). With probability
   ``1 - exp(-division_rate * dt)`` it attempts division into a random free neighbour: a
   stem-like cell makes a stem-like daughter with probability ``symmetric_division_prob``, else a
   tumour daughter with ``max_divisions``; a tumour cell dies at the attempt with probability
   ``death_at_division`` or when no divisions are left, else mother and daughter keep
   ``divisions_left - 1``. Otherwise it moves to a random free neighbour with probability
   ``1 - exp(-migration_rate * dt)``.

Per-kind parameters arrive as rows of ``par`` (``par[kind, C_*]``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel
from .agents import DIE, DIVIDE, MOVE, NONE
from .codes import NECROTIC, PROLIFERATING, QUIESCENT, REMOVED, STEM, TUMOR
from .neighbourhood import cancer_free_scan, hazard_prob, kth_bit, neighbour_site, popcount
from .random import randint, uniform
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
C_DRUG_EMAX = 11
C_DRUG_EC50 = 12
C_DRUG_HILL = 13
C_QUIESCENT_DRUG_FACTOR = 14
C_PLASTICITY_RATE = 15
C_PLASTICITY_TGFB_HALF = 16
C_NPARAMS = 17

PURPOSE_NECROSIS = 4
PURPOSE_DIVIDE = 2
PURPOSE_DIVIDE_SITE = 3
PURPOSE_MIGRATE = 5
PURPOSE_MIGRATE_SITE = 6
PURPOSE_DEATH = 7
PURPOSE_FATE = 8
PURPOSE_APOPTOSIS = 10
PURPOSE_PLASTICITY = 11


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


@kernel(parallel=True)
def cancer_decide(n, ids, i32, f32, kind, state, site, occ, air, shape, oxygen, tgfb, fields, par,
                  rules, dt_h, seed, step, action, target, dkind, ddiv):
    """Decide the step of every tumour and stem-like cell (rows of other kinds are skipped)."""
    nz, ny, nx = shape[0], shape[1], shape[2]
    # per-kind probabilities of the rules with constant rates, computed once per call
    p_div = np.zeros(par.shape[0])
    p_mig = np.zeros(par.shape[0])
    p_die = np.zeros(par.shape[0])
    p_pl_hypoxic = np.zeros(par.shape[0])
    ruled = np.zeros((par.shape[0], 3), dtype=np.bool_)
    for k in range(par.shape[0]):
        p_div[k] = hazard_prob(par[k, C_DIVISION_RATE], dt_h)
        p_mig[k] = hazard_prob(par[k, C_MIGRATION_RATE], dt_h)
        p_die[k] = hazard_prob(par[k, C_DEATH_RATE], dt_h)
        p_pl_hypoxic[k] = hazard_prob(par[k, C_PLASTICITY_RATE] * 1.0, dt_h)
    for r in range(rules.shape[0]):
        b = int(rules[r, R_BEHAVIOUR])
        if b <= B_DEATH:
            ruled[int(rules[r, R_KIND]), b] = True
    for i in prange(n):
        k = kind[i]
        if k != TUMOR and k != STEM:
            continue
        action[i] = NONE
        st = state[i]
        if st == REMOVED:
            continue
        cid = ids[0, i]
        s_i = site[i]
        if st == NECROTIC:
            f32[0, i] += dt_h
            if f32[0, i] >= par[k, C_LYSIS]:
                action[i] = DIE
            continue
        po2 = oxygen[s_i]
        p_nec = necrosis_probability(po2, par[k, C_NECROSIS], par[k, C_NECROSIS_MAX],
                                     par[k, C_NECROSIS_RATE], dt_h)
        if p_nec > 0.0 and uniform(seed, cid, step, PURPOSE_NECROSIS) < p_nec:
            state[i] = NECROTIC
            f32[0, i] = 0.0
            continue
        hypoxic = po2 < par[k, C_HYPOXIA]
        state[i] = QUIESCENT if hypoxic else PROLIFERATING
        f32[0, i] += dt_h
        # apoptosis: baseline + drug (Emax model on intracellular drug) + rules
        death = par[k, C_DEATH_RATE]
        emax = par[k, C_DRUG_EMAX]
        varies = ruled[k, B_DEATH]
        if emax > 0.0:
            drug_term = emax * hill(f32[3, i], par[k, C_DRUG_EC50], par[k, C_DRUG_HILL])
            if hypoxic:
                drug_term *= par[k, C_QUIESCENT_DRUG_FACTOR]
            death += drug_term
            varies = varies or drug_term != 0.0
        if ruled[k, B_DEATH]:
            death = apply_rules(death, k, B_DEATH, s_i, fields, f32[1, i], rules)
        if death > 0.0:
            pdie = hazard_prob(death, dt_h) if varies else p_die[k]
            if uniform(seed, cid, step, PURPOSE_APOPTOSIS) < pdie:
                action[i] = DIE
                continue
        if k == TUMOR and par[k, C_PLASTICITY_RATE] > 0.0:
            s_tgfb = tgfb[s_i]
            if s_tgfb > 0.0:
                drive = hill(s_tgfb, par[k, C_PLASTICITY_TGFB_HALF], 1.0)
                if hypoxic:
                    drive += 1.0
                p_pl = hazard_prob(par[k, C_PLASTICITY_RATE] * drive, dt_h)
            else:  # no TGF-beta: drive is 1 when hypoxic, else 0
                p_pl = p_pl_hypoxic[k] if hypoxic else 0.0
            if p_pl > 0.0 and uniform(seed, cid, step, PURPOSE_PLASTICITY) < p_pl:
                kind[i] = STEM
                k = STEM
        # Division, else migration, each needs a free neighbour. The draws are keyed, so
        # drawing before looking for space gives the same outcome as looking first, and the
        # neighbourhood scan is paid only by the few cells that would act this step.
        pd = p_div[k]
        if ruled[k, B_DIVISION]:
            rate = apply_rules(par[k, C_DIVISION_RATE], k, B_DIVISION, s_i, fields, f32[1, i], rules)
            pd = hazard_prob(rate, dt_h)
        if not hypoxic and uniform(seed, cid, step, PURPOSE_DIVIDE) < pd:
            free = cancer_free_scan(s_i, occ, air, kind, nz, ny, nx)
            nfree = popcount(free)
            if nfree == 0:
                continue
            if k == TUMOR:
                dies = uniform(seed, cid, step, PURPOSE_DEATH) < par[k, C_DEATH_AT_DIVISION]
                if dies or i32[1, i] <= 0:
                    action[i] = DIE
                    continue
                dkind[i] = TUMOR
                ddiv[i] = i32[1, i] - 1
            else:
                if uniform(seed, cid, step, PURPOSE_FATE) < par[k, C_SYMMETRIC]:
                    dkind[i] = STEM
                    ddiv[i] = i32[1, i]
                else:
                    dkind[i] = TUMOR
                    ddiv[i] = np.int32(par[TUMOR, C_MAX_DIVISIONS])
            action[i] = DIVIDE
            q = kth_bit(free, randint(seed, cid, step, PURPOSE_DIVIDE_SITE, nfree))
            target[i] = neighbour_site(s_i, q, nz, ny, nx)
            continue
        pm = p_mig[k]
        if ruled[k, B_MIGRATION]:
            rate = apply_rules(par[k, C_MIGRATION_RATE], k, B_MIGRATION, s_i, fields, f32[1, i], rules)
            pm = hazard_prob(rate, dt_h)
        if pm > 0.0 and uniform(seed, cid, step, PURPOSE_MIGRATE) < pm:
            free = cancer_free_scan(s_i, occ, air, kind, nz, ny, nx)
            nfree = popcount(free)
            if nfree == 0:
                continue
            action[i] = MOVE
            q = kth_bit(free, randint(seed, cid, step, PURPOSE_MIGRATE_SITE, nfree))
            target[i] = neighbour_site(s_i, q, nz, ny, nx)
