"""Obviously-correct pure-Python twins of the cell kernels, for bit-for-bit comparison.

The twins re-implement the rules of tmesim/kernels/{neighbourhood,rules,cancer,immune,agents,
lattice}.py with plain loops over explicit coordinates, written for clarity, not speed. Random
draws use a pure-Python SplitMix64 (:func:`uniform`, :func:`randint`) keyed exactly like
:mod:`tmesim.kernels.random`; the tests check the two generators agree.

Arrays follow the kernels' layout (:mod:`tmesim.kernels.layout`): ``ids`` the int64 block (id,
parent), ``i32`` the int32 block (generation, divisions_left), ``fl`` the float32 block (clock_h,
pdl1, pgp, drug, pgp_base, phenotype, payload, aux), indexed by the layout's named rows. Twins
change their arguments in place like the kernels do.
"""

from __future__ import annotations

import math

import numpy as np

from tmesim.kernels.codes import (
    ACTIVITY_NAMES,
    FIBROBLAST,
    MACROPHAGE,
    NECROTIC,
    PROLIFERATING,
    QUIESCENT,
    REMOVED,
    STEM,
    TCELL,
    TUMOR,
)
from tmesim.kernels.layout import (
    AUX,
    BOUND,
    CARRIER,
    CLOCK_H,
    DIVISIONS_LEFT,
    DRUG,
    GENERATION,
    ICD,
    ID,
    LYTIC_SPENT,
    PARENT,
    PAYLOAD,
    PDL1,
    PHENOTYPE,
    RETAINED,
    TCF1,
    CellArrays,
)

# action codes and purposes, restated (a twin that imported them could not catch a renumbering)
NONE, DIVIDE, MOVE, DIE, KILL = 0, 1, 2, 3, 4
B_DIVISION, B_MIGRATION, B_DEATH, B_KILL = 0, 1, 2, 3

# --------------------------------------------------------------------------- random numbers
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15



def cell_arrays(s) -> CellArrays:
    """The :class:`~tmesim.kernels.layout.CellArrays` of a dict with the keys ``ids``, ``i32``,
    ``f32``, ``kind``, ``state``, ``site``, ``occ`` and, where sites are shared, ``small`` (else
    a length-1 map stands in)."""
    small = s.get("small", np.full(1, -1, np.int32))
    return CellArrays(*(s[k] for k in ("ids", "i32", "f32", "kind", "state", "site", "occ")),
                      small)


#: the kinds on the small-cell layer where sites are shared (restated from the kind modules)
SMALL_KINDS = (TCELL,)

def mix64(z):
    """SplitMix64 finaliser on a Python int (mod 2**64)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def key_hash(seed, a, b, c):
    h = mix64(int(seed) + GOLDEN)
    for w in (a, b, c):
        h = mix64(h ^ ((int(w) + GOLDEN) & MASK64))
    return h


def uniform(seed, cell_id, step, purpose):
    """Uniform on [0, 1): the top 53 bits of the hash of (seed, step, cell id, purpose)."""
    return (key_hash(seed, step, cell_id, purpose) >> 11) / 2.0**53


def randint(seed, cell_id, step, purpose, n):
    """Uniform integer on [0, n)."""
    return min(int(uniform(seed, cell_id, step, purpose) * n), n - 1)


def hazard_prob(rate, dt):
    return 1.0 - math.exp(-rate * dt)


def hill(s, half, n):
    s = float(s)
    if s <= 0.0:
        return 0.0
    if half <= 0.0:
        return 1.0
    x = (s / half) ** n
    return x / (1.0 + x)


def f32(x):
    """Round to float32 and back, as a store into a float32 column does."""
    return float(np.float32(x))


# --------------------------------------------------------------------------- neighbourhoods
def offsets(nz):
    """Neighbour offsets (dz, dy, dx) in kernel order: z, then y, then x, ascending."""
    dzs = (-1, 0, 1) if nz > 1 else (0,)
    return [
        (dz, dy, dx)
        for dz in dzs
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dz, dy, dx) != (0, 0, 0)
    ]


def coords(site, ny, nx):
    z, rem = divmod(int(site), ny * nx)
    y, x = divmod(rem, nx)
    return z, y, x


def neighbour_site(site, q, nz, ny, nx):
    """The ``q``-th neighbour of ``site``, or -1 outside the domain."""
    z, y, x = coords(site, ny, nx)
    dz, dy, dx = offsets(nz)[q]
    zz, yy, xx = z + dz, y + dy, x + dx
    if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
        return (zz * ny + yy) * nx + xx
    return -1


def neighbours(site, nz, ny, nx):
    """``[(q, t)]`` for the in-domain neighbours ``t`` of ``site``."""
    out = []
    for q in range(len(offsets(nz))):
        t = neighbour_site(site, q, nz, ny, nx)
        if t >= 0:
            out.append((q, t))
    return out


def is_blocked(t, blocked):
    """A length-1 ``blocked`` array blocks nothing."""
    return len(blocked) > 1 and bool(blocked[t])


def free_scan(site, occ, blocked, nz, ny, nx):
    mask = 0
    for q, t in neighbours(site, nz, ny, nx):
        if occ[t] < 0 and not is_blocked(t, blocked):
            mask |= 1 << q
    return mask


def is_live_cancer(j, kind, state):
    return int(kind[j]) in (TUMOR, STEM) and int(state[j]) not in (NECROTIC, REMOVED)


def scan(site, occ, blocked, kind, state, nz, ny, nx):
    """``(free, cancer, n_in)`` as :func:`tmesim.kernels.neighbourhood.scan`."""
    free = cancer = n_in = 0
    for q, t in neighbours(site, nz, ny, nx):
        n_in += 1
        j = int(occ[t])
        if j < 0:
            if not is_blocked(t, blocked):
                free |= 1 << q
        elif is_live_cancer(j, kind, state):
            cancer |= 1 << q
    return free, cancer, n_in


def surrounded(site, occ, nz, ny, nx):
    """Inside the domain's edge (all neighbours exist) and every neighbour occupied."""
    nb = neighbours(site, nz, ny, nx)
    return len(nb) == len(offsets(nz)) and all(occ[t] >= 0 for _, t in nb)


def lumen_reachable(t, occ, air, kind, nz, ny, nx, exclude=-1):
    """An air site next (by a face) to tissue or to a lumen site filled by a cancer cell."""
    z, y, x = coords(t, ny, nx)
    for dz, dy, dx in ((-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)):
        zz, yy, xx = z + dz, y + dy, x + dx
        if not (0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx):
            continue
        s = (zz * ny + yy) * nx + xx
        if s == exclude:  # the site a moving cell leaves supports nothing
            continue
        if not air[s]:
            return True
        if occ[s] >= 0 and int(kind[occ[s]]) in (TUMOR, STEM):
            return True
    return False


def cancer_free_scan(site, occ, air, kind, nz, ny, nx, moving=False):
    mask = 0
    for q, t in neighbours(site, nz, ny, nx):
        if occ[t] >= 0:
            continue
        if len(air) > 1 and air[t] and not lumen_reachable(t, occ, air, kind, nz, ny, nx,
                                                           site if moving else -1):
            continue
        mask |= 1 << q
    return mask


def bits(mask):
    """Positions of the set bits, lowest first."""
    return [q for q in range(64) if (mask >> q) & 1]


def popcount(mask):
    return len(bits(mask))


def kth_bit(mask, k):
    b = bits(mask)
    return b[k] if 0 <= k < len(b) else -1


def choose_move(site, free, cid, nz, ny, nx, chemo, bias, seed, step, p_bias, p_site):
    """With probability ``bias`` a free neighbour of highest ``chemo`` (ties drawn uniformly),
    otherwise a free neighbour drawn uniformly; -1 if none is free."""
    qs = bits(free)
    if not qs:
        return -1
    sites = [neighbour_site(site, q, nz, ny, nx) for q in qs]
    if bias > 0.0 and uniform(seed, cid, step, p_bias) < bias:
        top = max(chemo[s] for s in sites)
        best = [s for s in sites if chemo[s] == top]
        return best[randint(seed, cid, step, p_site, len(best))]
    return sites[randint(seed, cid, step, p_site, len(sites))]


# --------------------------------------------------------------------------- rules
def apply_rules(base, kind, behaviour, site, fields, pdl1, rules):
    b = float(base)
    for r in rules:
        if int(r[0]) != kind or int(r[2]) != behaviour:
            continue
        sig = int(r[1])
        s = fields[sig, site] if sig >= 0 else pdl1
        b = b + (r[3] - b) * hill(s, r[4], r[5])
    return b


# --------------------------------------------------------------------------- cancer cells
# columns of the per-kind parameter table (kernels/cancer.py)
(C_DIV, C_MIG, C_DAD, C_SYM, C_MAXDIV, C_HYP, C_NEC, C_NECMAX, C_NECRATE, C_LYSIS, C_DEATH,
 C_QDF, C_PLAST, C_PLAST_HALF, C_PDL1_BASE, C_PDL1_MAX, C_PDL1_EC50, C_PDL1_HILL, C_PDL1_RATE,
 C_GF_FIELD, C_GF_BOOST, C_GF_HALF, C_PUSH, C_COMBINE, C_NPARAMS) = range(25)
# a block of columns per dosed drug from C_NPARAMS on: the row its hazard reads, Emax, EC50,
# Hill power, immunogenic share
D_ROW, D_EMAX, D_EC50, D_HILL, D_ICD, D_NCOLS = range(6)


def drug_terms(fl, i, k, par, hypoxic):
    """``(hazard, immunogenic part)`` of the dosed drugs: each drug's Emax term, summed (Bliss
    independence: survivals multiply) or, with ``par[k, C_COMBINE] == 1``, the largest."""
    terms = []
    for c0 in range(C_NPARAMS, par.shape[1], D_NCOLS):
        if par[k, c0 + D_EMAX] > 0.0:
            signal = fl[int(par[k, c0 + D_ROW]), i]  # free drug or damage
            t = par[k, c0 + D_EMAX] * hill(signal, par[k, c0 + D_EC50], par[k, c0 + D_HILL])
            terms.append((t * par[k, C_QDF] if hypoxic else t, par[k, c0 + D_ICD]))
    if not terms:
        return 0.0, 0.0
    if par[k, C_COMBINE] == 1:
        t, share = max(terms, key=lambda x: x[0])
        return t, share * t
    return sum(t for t, _ in terms), sum(share * t for t, share in terms)


def necrosis_probability(po2, thr, thr_max, rate_max, dt):
    if po2 >= thr:
        return 0.0
    frac = 1.0 if (po2 <= thr_max or thr <= thr_max) else (thr - po2) / (thr - thr_max)
    return 1.0 - math.exp(-rate_max * frac * dt)


def cancer_decide(n, cells, lattice, views, par, rules, keys, intents):
    ids, i32, fl, kind, state, site, occ, _ = cells
    oxygen, ifng, tgfb, _chemokine, _ecm, _antibody, _ccl2, _attractant, fields = views
    shape, air = lattice
    dt, seed, step = keys
    action, target, dkind, ddiv = intents
    nz, ny, nx = (int(s) for s in shape)
    for i in range(n):
        k = int(kind[i])
        if k not in (TUMOR, STEM):
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = int(ids[ID, i])
        s = int(site[i])
        if state[i] == NECROTIC:  # lysis clock
            fl[CLOCK_H, i] = f32(fl[CLOCK_H, i] + dt)
            if fl[CLOCK_H, i] >= par[k, C_LYSIS]:
                action[i] = DIE
            continue
        # PD-L1 relaxes toward its IFN-gamma-set target (exact over the step)
        base, top = par[k, C_PDL1_BASE], par[k, C_PDL1_MAX]
        tgt = base + (top - base) * hill(ifng[s], par[k, C_PDL1_EC50], par[k, C_PDL1_HILL])
        fl[PDL1, i] = f32(tgt + (float(fl[PDL1, i]) - tgt) * math.exp(-par[k, C_PDL1_RATE] * dt))
        po2 = oxygen[s]
        p = necrosis_probability(po2, par[k, C_NEC], par[k, C_NECMAX], par[k, C_NECRATE], dt)
        if p > 0.0 and uniform(seed, cid, step, 4) < p:
            state[i] = NECROTIC
            fl[CLOCK_H, i] = 0.0
            continue
        hypoxic = po2 < par[k, C_HYP]
        state[i] = QUIESCENT if hypoxic else PROLIFERATING
        fl[CLOCK_H, i] = f32(fl[CLOCK_H, i] + dt)
        term, icd = drug_terms(fl, i, k, par, hypoxic)
        death = par[k, C_DEATH] + term
        death = apply_rules(death, k, B_DEATH, s, fields, fl[PDL1, i], rules)
        if death > 0.0 and uniform(seed, cid, step, 10) < hazard_prob(death, dt):
            action[i] = DIE
            # the drugs' immunogenic share of the hazard marks the death (ICD)
            if icd > 0.0:
                fl[ICD, i] = f32(min(1.0, icd / death))
            continue
        if k == TUMOR and par[k, C_PLAST] > 0.0:
            drive = hill(tgfb[s], par[k, C_PLAST_HALF], 1.0) + (1.0 if hypoxic else 0.0)
            if uniform(seed, cid, step, 11) < hazard_prob(par[k, C_PLAST] * drive, dt):
                kind[i] = STEM
                k = STEM
        free = cancer_free_scan(s, occ, air, kind, nz, ny, nx)
        nfree = popcount(free)
        if nfree == 0 and par[k, C_PUSH] <= 0:  # contact inhibition
            continue
        div_rate = par[k, C_DIV]
        g = int(par[k, C_GF_FIELD])
        if g >= 0:  # growth factor (EGF from M2 macrophages) raises the division rate
            div_rate *= 1.0 + par[k, C_GF_BOOST] * hill(fields[g, s], par[k, C_GF_HALF], 1.0)
        div_rate = apply_rules(div_rate, k, B_DIVISION, s, fields, fl[PDL1, i], rules)
        if not hypoxic and uniform(seed, cid, step, 2) < hazard_prob(div_rate, dt):
            if k == TUMOR:
                if uniform(seed, cid, step, 7) < par[k, C_DAD] or i32[DIVISIONS_LEFT, i] <= 0:
                    action[i] = DIE
                    continue
                dkind[i], ddiv[i] = TUMOR, i32[DIVISIONS_LEFT, i] - 1
            elif uniform(seed, cid, step, 8) < par[k, C_SYM]:
                dkind[i], ddiv[i] = STEM, i32[DIVISIONS_LEFT, i]
            else:
                dkind[i], ddiv[i] = TUMOR, int(par[TUMOR, C_MAXDIV])
            action[i] = DIVIDE
            target[i] = (neighbour_site(s, kth_bit(free, randint(seed, cid, step, 3, nfree)),
                                        nz, ny, nx) if nfree else -1)  # -1: push when applied
            continue
        if nfree == 0:
            continue
        mig_rate = apply_rules(par[k, C_MIG], k, B_MIGRATION, s, fields, fl[PDL1, i], rules)
        pm = hazard_prob(mig_rate, dt)
        if pm > 0.0 and uniform(seed, cid, step, 5) < pm:
            free = cancer_free_scan(s, occ, air, kind, nz, ny, nx, moving=True)
            nfree = popcount(free)
            if nfree == 0:
                continue
            action[i] = MOVE
            target[i] = neighbour_site(s, kth_bit(free, randint(seed, cid, step, 6, nfree)),
                                       nz, ny, nx)


# --------------------------------------------------------------------------- immune cells
(T_KILL, T_SUPP, T_EXH_H, T_LIFE, T_XLIFE, T_MIG, T_BIAS, T_ECM, T_TGFB, T_KD, T_EXH_GAIN,
 T_STORE, T_REFILL_H, T_DIV, T_EXH_SPREAD, T_PROG, T_PROG_ARRIVE, T_PROG_DIV, T_DIFF, T_PROG_KILL,
 T_EFF_DIV, T_SHARE) = range(22)
(M_PHAG, M_TO1, M_TO2, M_IFNG, M_TGFB, M_HYP, M_CONTACT, M_LIFE, M_MIG, M_BIAS, M_CCL2_W,
 M_CCL2_HALF, M_RELAX, M_REST_RECRUITED, M_REST_RESIDENT, M_RESIDENT_M2, M_RESIDENT_LIFE) = range(17)
(F_ACT, F_TGFB, F_CONTACT, F_ECM, F_MIG) = range(5)


def tcell_decide(n, cells, lattice, chemo, tgfb, ecm, antibody, fields, par, rules, keys, intents):
    ids, i32, fl, kind, state, site, occ, small = cells
    shape, blocked = lattice
    dt, seed, step = keys
    action, target, dkind, ddiv = intents
    nz, ny, nx = (int(s) for s in shape)
    store, refill_h = par[T_STORE], par[T_REFILL_H]
    for i in range(n):
        if kind[i] != TCELL:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = int(ids[ID, i])
        s = int(site[i])
        # a cell new since the last step (clock 0) draws its fate; it was engaged if it is the
        # product of a division (T cells divide only while engaged)
        new, from_division = fl[CLOCK_H, i] == 0.0, fl[AUX, i] > 0.5
        fl[CLOCK_H, i] = f32(fl[CLOCK_H, i] + dt)
        fl[AUX, i] = 0.0
        exhausted = state[i] == QUIESCENT
        lineage = par[T_PROG] > 0.0
        if lineage and new and not exhausted:
            u = uniform(seed, cid, step, 39)
            if not from_division:  # arrived or placed
                fl[TCF1, i] = 1.0 if u < par[T_PROG_ARRIVE] else 0.0
            elif fl[TCF1, i] > 0.5 and u < par[T_DIFF]:  # a progenitor's product differentiates
                fl[TCF1, i] = 0.0
                i32[DIVISIONS_LEFT, i] = int(par[T_EFF_DIV])
        progenitor = lineage and fl[TCF1, i] > 0.5
        life = par[T_XLIFE] if exhausted else par[T_LIFE]
        death = apply_rules(1.0 / life if life > 0 else 0.0, TCELL, B_DEATH, s, fields, 0.0, rules)
        if uniform(seed, cid, step, 30) < hazard_prob(death, dt):
            action[i] = DIE
            continue
        # the spent part of the lytic store decays exponentially toward 0 (a full store)
        fl[LYTIC_SPENT, i] = f32(float(fl[LYTIC_SPENT, i])
                                 * (math.exp(-dt / refill_h) if refill_h > 0 else 0.0))
        free, cancer, _ = scan(s, occ, blocked, kind, state, nz, ny, nx)
        # the live cancer cells it may engage: on the neighbouring sites and, where T cells
        # share sites, on its own site (counted last)
        targets = [int(occ[neighbour_site(s, q, nz, ny, nx)]) for q in bits(cancer)]
        if par[T_SHARE] > 0.0:
            # free: not blocked and no T cell there, whatever large cell is
            free = free_scan(s, small, blocked, nz, ny, nx)
            if occ[s] >= 0 and is_live_cancer(int(occ[s]), kind, state):
                targets.append(int(occ[s]))
        if not exhausted and targets:
            j = targets[randint(seed, cid, step, 32, len(targets))]
            occupancy = 0.0
            if par[T_KD] > 0.0:
                a = antibody[site[j]]
                occupancy = a / (a + par[T_KD])
            pdl1 = float(fl[PDL1, j]) * (1.0 - occupancy)
            fl[AUX, i] = 1.0
            if par[T_EXH_H] > 0.0 and not progenitor:  # exposure, in units of what exhausts
                fl[PHENOTYPE, i] = f32(float(fl[PHENOTYPE, i])
                                       + (1.0 + par[T_EXH_GAIN] * pdl1) * dt / par[T_EXH_H])
                # the cell's own threshold: keyed with step 0, so fixed for its life
                threshold = 1.0 + par[T_EXH_SPREAD] * (2.0 * uniform(seed, cid, 0, 38) - 1.0)
                if fl[PHENOTYPE, i] >= threshold:
                    state[i] = QUIESCENT
            left = store - float(fl[LYTIC_SPENT, i])  # kills' worth of granules at hand
            armed = 1.0 if store <= 0.0 else min(1.0, max(0.0, left))
            if armed > 0.0:
                kill = apply_rules(par[T_KILL], TCELL, B_KILL, s, fields, pdl1, rules)
                kill *= (1.0 - par[T_SUPP] * pdl1) * armed
                if progenitor:
                    kill *= par[T_PROG_KILL]
                if par[T_TGFB] > 0.0:
                    kill /= 1.0 + tgfb[s] / par[T_TGFB]
                if uniform(seed, cid, step, 31) < hazard_prob(kill, dt):
                    action[i], target[i] = KILL, j
                    fl[LYTIC_SPENT, i] = f32(float(fl[LYTIC_SPENT, i]) + 1.0)
                    continue
            free_q = bits(free)
            left = int(i32[DIVISIONS_LEFT, i])
            # rules first (on the base rate), then the PD-L1 restraint
            if progenitor:  # PD-L1 restrains the progenitors' division, which has no budget
                division = (apply_rules(par[T_PROG_DIV], TCELL, B_DIVISION, s, fields, pdl1, rules)
                            * (1.0 - par[T_SUPP] * pdl1))
            elif lineage:  # effectors of the progenitor model: a burst PD-L1 does not touch
                division = apply_rules(par[T_DIV], TCELL, B_DIVISION, s, fields, pdl1, rules)
            else:
                division = (apply_rules(par[T_DIV], TCELL, B_DIVISION, s, fields, pdl1, rules)
                            * (1.0 - par[T_SUPP] * pdl1))
            if ((progenitor or left != 0) and free_q
                    and uniform(seed, cid, step, 36) < hazard_prob(division, dt)):
                action[i] = DIVIDE
                target[i] = neighbour_site(s, free_q[randint(seed, cid, step, 37, len(free_q))],
                                           nz, ny, nx)
                dkind[i] = TCELL
                ddiv[i] = left if progenitor else (left - 1 if left > 0 else -1)
            continue  # an engaged T cell stays put
        rate = apply_rules(par[T_MIG], TCELL, B_MIGRATION, s, fields, 0.0, rules)
        if par[T_ECM] > 0.0:
            rate /= 1.0 + ecm[s] / par[T_ECM]
        if uniform(seed, cid, step, 33) < hazard_prob(rate, dt):
            t = choose_move(s, free, cid, nz, ny, nx, chemo, par[T_BIAS], seed, step, 35, 34)
            if t >= 0:
                action[i], target[i] = MOVE, t


def macrophage_decide(n, cells, lattice, views, par, rules, keys, intents):
    ids, _, fl, kind, state, site, occ, _ = cells
    oxygen, ifng, tgfb, _chemokine, _ecm, _antibody, ccl2, chemo, fields = views
    shape, blocked = lattice
    dt, seed, step = keys
    action, target = intents.action, intents.target
    nz, ny, nx = (int(s) for s in shape)
    for i in range(n):
        if kind[i] != MACROPHAGE:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = int(ids[ID, i])
        s = int(site[i])
        fl[CLOCK_H, i] = f32(fl[CLOCK_H, i] + dt)
        resident = fl[AUX, i] > 0.5  # aux: 1 for a resident macrophage
        free, cancer, n_in = scan(s, occ, blocked, kind, state, nz, ny, nx)
        nt = popcount(cancer)
        contact = nt / n_in if n_in > 0 else 0.0
        s1 = hill(ifng[s], par[M_IFNG], 1.0)
        s2 = (par[M_CONTACT] * contact + hill(tgfb[s], par[M_TGFB], 1.0)
              + par[M_CCL2_W] * hill(ccl2[s], par[M_CCL2_HALF], 1.0))
        if oxygen[s] < par[M_HYP]:
            s2 += 1.0
        k1, k2, k0 = par[M_TO1] * s1, par[M_TO2] * s2, par[M_RELAX]
        if resident:
            k2 *= par[M_RESIDENT_M2]
        rest = par[M_REST_RESIDENT] if resident else par[M_REST_RECRUITED]
        life = par[M_RESIDENT_LIFE] if resident else par[M_LIFE]
        if k1 + k2 + k0 > 0.0:  # exact solution of dp/dt = k2 (1 - p) - k1 p + k0 (rest - p)
            p_inf = (k2 + k0 * rest) / (k1 + k2 + k0)
            fl[PHENOTYPE, i] = f32(p_inf + (float(fl[PHENOTYPE, i]) - p_inf) * math.exp(-(k1 + k2 + k0) * dt))
        p = float(fl[PHENOTYPE, i])
        state[i] = PROLIFERATING if p <= 0.5 else QUIESCENT
        death = apply_rules(1.0 / life if life > 0 else 0.0, MACROPHAGE, B_DEATH, s, fields, 0.0,
                            rules)
        if uniform(seed, cid, step, 40) < hazard_prob(death, dt):
            action[i] = DIE
            continue
        if nt > 0:
            kill = apply_rules(par[M_PHAG] * (1.0 - p), MACROPHAGE, B_KILL, s, fields, 0.0, rules)
            if uniform(seed, cid, step, 41) < hazard_prob(kill, dt):
                q = bits(cancer)[randint(seed, cid, step, 42, nt)]
                action[i], target[i] = KILL, int(occ[neighbour_site(s, q, nz, ny, nx)])
                continue
        rate = apply_rules(par[M_MIG], MACROPHAGE, B_MIGRATION, s, fields, 0.0, rules)
        if uniform(seed, cid, step, 43) < hazard_prob(rate, dt):
            bias = 0.0 if resident else par[M_BIAS]  # residents walk at random
            t = choose_move(s, free, cid, nz, ny, nx, chemo, bias, seed, step, 45, 44)
            if t >= 0:
                action[i], target[i] = MOVE, t


def fibroblast_decide(n, cells, lattice, tgfb, ecm, par, keys, intents):
    ids, _, fl, kind, state, site, occ, _ = cells
    shape, blocked = lattice
    dt, seed, step = keys
    action, target = intents.action, intents.target
    nz, ny, nx = (int(s) for s in shape)
    for i in range(n):
        if kind[i] != FIBROBLAST:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = int(ids[ID, i])
        s = int(site[i])
        fl[CLOCK_H, i] = f32(fl[CLOCK_H, i] + dt)
        free, cancer, n_in = scan(s, occ, blocked, kind, state, nz, ny, nx)
        contact = popcount(cancer) / n_in if n_in > 0 else 0.0
        drive = hill(tgfb[s], par[F_TGFB], 1.0) + par[F_CONTACT] * contact
        a = 1.0 - (1.0 - float(fl[PHENOTYPE, i])) * math.exp(-par[F_ACT] * drive * dt)
        fl[PHENOTYPE, i] = a  # stored as float32; the rules below use the float64 value
        state[i] = QUIESCENT if a > 0.5 else PROLIFERATING
        if len(ecm) > 1 and par[F_ECM] > 0.0:
            ecm[s] = 1.0 - (1.0 - ecm[s]) * math.exp(-par[F_ECM] * a * dt)
        rate = par[F_MIG]
        if rate > 0.0 and uniform(seed, cid, step, 50) < hazard_prob(rate, dt):
            t = choose_move(s, free, cid, nz, ny, nx, ecm, 0.0, seed, step, 50, 51)
            if t >= 0:
                action[i], target[i] = MOVE, t


# --------------------------------------------------------------------------- apply, recruit
def affine_order(n, seed, step):
    """The visiting order: ``k -> (a k + b) mod n`` with ``a`` coprime to ``n``."""
    if n <= 1:
        return list(range(n))
    h = key_hash(seed, n, step, 20)
    a = h % (n - 1) + 1
    while math.gcd(a, n) != 1:
        a = a % (n - 1) + 1
    b = (h >> 32) % n
    order = [(a * k + b) % n for k in range(n)]
    assert sorted(order) == list(range(n))
    return order


def may_enter(t, mover, occ, air, kind, nz, ny, nx):
    """Alveolar air only for cancer cells, and free air only where a lumen may fill."""
    if len(air) <= 1 or not air[t]:
        return True
    if mover not in (TUMOR, STEM):
        return False
    return occ[t] >= 0 or lumen_reachable(t, occ, air, kind, nz, ny, nx)


def push_chain(s0, mother_kind, radius, occ, site, kind, air, shape, seed, cid, step):
    """Breadth-first search from s0 through occupied sites, at most ``radius`` steps, for the
    nearest free sites; draw one (in the order found) and shift the cells along the path."""
    nz, ny, nx = (int(v) for v in shape)
    nnb = 26 if nz > 1 else 8
    parent = {s0: None}
    layer = [s0]
    for _ in range(radius):
        nxt = []
        for p in layer:
            mover = mother_kind if p == s0 else int(kind[occ[p]])
            for q in range(nnb):
                t = neighbour_site(p, q, nz, ny, nx)
                if t < 0 or t in parent or not may_enter(t, mover, occ, air, kind, nz, ny, nx):
                    continue
                parent[t] = p
                nxt.append(t)
        free = [t for t in nxt if occ[t] < 0]
        if free:
            t = free[randint(seed, cid, step, 22, len(free))]
            path = [t]
            while parent[path[-1]] != s0:
                path.append(parent[path[-1]])
            # path: free end ... first site; each cell moves one site towards the free end
            for a, b in zip(path[1:], path[:-1], strict=True):
                j = occ[a]
                occ[b] = j
                site[j] = b
            occ[path[-1]] = -1
            return path[-1]
        layer = nxt
        if not layer:
            return -1
    return -1


def layer(i, kind, occ, small):
    """The map of row ``i``'s layer: small kinds on ``small`` where sites are shared."""
    return small if len(small) > 1 and kind[i] in SMALL_KINDS else occ


def apply_actions(n, intents, cells, lattice, keys, next_id, push, push_work, pools=None):
    action, target, dkind, ddiv = intents
    ids, i32, fl, kind, state, site, occ, small = cells
    shape, blocked = lattice
    seed, step = keys.seed, keys.step
    nz, ny, nx = (int(s) for s in shape)
    m = n
    kills = 0
    for i in affine_order(n, seed, step):
        act = int(action[i])
        if act == NONE or state[i] == REMOVED:
            continue
        own = layer(i, kind, occ, small)
        if act == DIE:
            state[i] = REMOVED
            own[site[i]] = -1
        elif act == KILL:
            j = int(target[i])
            if state[j] not in (REMOVED, NECROTIC):
                state[j] = REMOVED
                layer(j, kind, occ, small)[site[j]] = -1
                kills += 1
        else:
            t = int(target[i])
            if t < 0 or own[t] >= 0:  # none or taken earlier this step: retry on a free one
                if kind[i] in (TUMOR, STEM):
                    free = cancer_free_scan(site[i], occ, blocked, kind, nz, ny, nx, act == MOVE)
                else:
                    free = free_scan(site[i], own, blocked, nz, ny, nx)
                qs = bits(free)
                if qs:
                    t = neighbour_site(site[i], qs[randint(seed, ids[ID, i], step, 21, len(qs))],
                                       nz, ny, nx)
                elif act == DIVIDE and push[kind[i]] > 0:
                    t = push_chain(int(site[i]), int(kind[i]), int(push[kind[i]]), occ, site,
                                   kind, blocked, shape, seed, int(ids[ID, i]), step)
                    if t < 0:
                        continue
                else:
                    continue
            if act == MOVE:
                own[site[i]] = -1
                site[i] = t
                own[t] = i
                continue
            # DIVIDE into row m
            fl[:, m] = fl[:, i]
            fl[CLOCK_H, m] = fl[CLOCK_H, i] = 0.0
            fl[ICD, m] = fl[ICD, i] = 0.0  # the mark of an immunogenic death is no heirloom
            # drug pools and payload split equally (and the pools of further agents, if given)
            for c in ((DRUG, BOUND, RETAINED, PAYLOAD, CARRIER) if pools is None else pools):
                fl[c, i] = fl[c, m] = f32(0.5 * float(fl[c, i]))
            ids[ID, m], ids[PARENT, m] = next_id, ids[ID, i]
            i32[GENERATION, m] = i32[GENERATION, i] + 1
            if kind[i] in (TUMOR, TCELL):  # tumour and T-cell mothers spend a division
                i32[DIVISIONS_LEFT, i] = ddiv[i]
            i32[DIVISIONS_LEFT, m] = ddiv[i]
            kind[m] = dkind[i]
            state[m] = PROLIFERATING
            site[m] = t
            own[t] = m  # the daughter's kind is on the mother's layer
            next_id += 1
            m += 1
    return m, next_id, kills


def _arrive(s, new_kind, init_div, ids, i32, fl, kind, state, site, occ, n, next_id):
    ids[:, n] = (next_id, -1)
    i32[:, n] = (0, init_div)
    fl[:, n] = 0.0
    kind[n], state[n], site[n] = new_kind, PROLIFERATING, s
    occ[s] = n


def recruit(k, entry_sites, cap_attempts, new_kind, init_div, cells, n, next_id, seed, step,
            purpose):
    ids, i32, fl, kind, state, site, occ, _ = cells
    placed = 0
    if len(entry_sites) == 0:
        return n, next_id, 0
    for a in range(k):
        for t in range(cap_attempts):
            s = int(entry_sites[randint(seed, a * cap_attempts + t, step, purpose,
                                        len(entry_sites))])
            if occ[s] < 0:
                _arrive(s, new_kind, init_div, ids, i32, fl, kind, state, site, occ, n, next_id)
                n, next_id, placed = n + 1, next_id + 1, placed + 1
                break
    return n, next_id, placed


def entry_weights(entry_sites, signal, occ, half, cum_weight):
    """Twin of :func:`tmesim.kernels.agents.entry_weights`."""
    total = 0.0
    for j, s in enumerate(entry_sites):
        c = float(signal[s])
        if occ[s] < 0 and c > 0.0:
            total += c / (c + half)
        cum_weight[j] = total
    return total


def recruit_weighted(k, entry_sites, cum_weight, cap_attempts, new_kind, init_div, cells, n,
                     next_id, seed, step, purpose):
    """Twin of :func:`tmesim.kernels.agents.recruit_weighted`: the site drawn is the first whose
    running sum of weights exceeds ``u * total`` (a linear scan)."""
    ids, i32, fl, kind, state, site, occ, _ = cells
    placed = 0
    if len(entry_sites) == 0 or not cum_weight[-1] > 0.0:
        return n, next_id, 0
    total = float(cum_weight[-1])
    for a in range(k):
        for t in range(cap_attempts):
            u = uniform(seed, a * cap_attempts + t, step, purpose) * total
            j = next((j for j, c in enumerate(cum_weight) if c > u), len(cum_weight) - 1)
            s = int(entry_sites[j])
            if occ[s] < 0:
                _arrive(s, new_kind, init_div, ids, i32, fl, kind, state, site, occ, n, next_id)
                n, next_id, placed = n + 1, next_id + 1, placed + 1
                break
    return n, next_id, placed


def exchange_maps(n, kind, state, site, phenotype, aux, tables, fields, sink, source):
    """Twin of :func:`tmesim.kernels.lattice.exchange_maps`, row by row into maps that must be
    zero on entry (the kernel walks the sites through ``occ`` and writes every voxel)."""
    (sink_by_kind, source_by_kind, release_by_kind, hypoxic_by_kind, activity_by_kind,
     induction) = tables
    for i in range(n):
        if state[i] in (REMOVED, NECROTIC):
            continue
        k = int(kind[i])
        s = int(site[i])
        hypoxic = False
        mode = ACTIVITY_NAMES[activity_by_kind[k]]
        if mode == "engagement":  # T cells
            act = float(aux[i]) if state[i] == PROLIFERATING else 0.0
        elif mode == "m2":  # macrophages: M2 activity
            act = max(0.0, 2.0 * float(phenotype[i]) - 1.0)
        elif mode == "activation":  # fibroblasts
            act = float(phenotype[i])
        else:
            act = 1.0
            hypoxic = state[i] == QUIESCENT  # a quiescent cancer cell is hypoxic
        for f in range(sink.shape[0]):
            sink[f, s] += sink_by_kind[k, f]
            factor = hypoxic_by_kind[k, f] if hypoxic else 1.0
            g = int(induction[0, k, f])
            if g >= 0:  # release induced by another field (CXCL10 by IFN-gamma)
                factor *= hill(fields[g, s], induction[1, k, f], induction[2, k, f])
            source[f, s] += source_by_kind[k, f] + act * release_by_kind[k, f] * factor


def death_ledger(n, kind, state, icd):
    """Twin of :func:`tmesim.kernels.lattice.death_ledger`: cancer rows removed this step, and
    the sum of their immunogenic shares."""
    gone = [i for i in range(n) if state[i] == REMOVED and int(kind[i]) in (TUMOR, STEM)]
    return float(len(gone)), float(sum(float(icd[i]) for i in gone))


# --------------------------------------------------------------------------- lattice
def free_neighbours(site, occ, nz, ny, nx):
    """Free sites among the Moore (2-D) / 26 (3-D) neighbours of ``site``, ascending."""
    z, y, x = coords(site, ny, nx)
    out = []
    for other in range(nz * ny * nx):
        oz, oy, ox = coords(other, ny, nx)
        if other == site:
            continue
        if abs(oz - z) <= 1 and abs(oy - y) <= 1 and abs(ox - x) <= 1 and occ[other] < 0:
            out.append(other)
    return out


def compact(n, arrays_i64, arrays_i32, arrays_f32, kind, state, site, occ, small):
    """Twin of :func:`tmesim.kernels.lattice.compact` (each kept row written into the map of
    its kind's layer)."""
    keep = [i for i in range(n) if state[i] != REMOVED]
    for block in (arrays_i64, arrays_i32, arrays_f32):
        block[:, : len(keep)] = block[:, keep].copy()
    for a in (kind, state, site):
        a[: len(keep)] = a[keep].copy()
    for j in range(len(keep)):
        layer(j, kind, occ, small)[site[j]] = j
    return len(keep)


def sink_map(n, kind, state, site, uptake_by_kind, sink):
    """Twin of :func:`tmesim.kernels.lattice.sink_map`."""
    sink[:] = 0.0
    for i in range(n):
        if state[i] in (PROLIFERATING, QUIESCENT):
            sink[site[i]] += uptake_by_kind[kind[i]]


def census(n, kind, state):
    """Twin of :func:`tmesim.kernels.lattice.census`: kinds present (bit mask), live cancer cells."""
    kinds = {int(kind[i]) for i in range(n)}
    live = sum(1 for i in range(n)
               if int(kind[i]) in (TUMOR, STEM) and int(state[i]) in (PROLIFERATING, QUIESCENT))
    return sum(1 << k for k in kinds), live


def count_by_kind_state(n, kind, state, n_kinds, n_states):
    """Twin of :func:`tmesim.kernels.lattice.count_by_kind_state`."""
    out = np.zeros((n_kinds, n_states), dtype=np.int64)
    for i in range(n):
        out[kind[i], state[i]] += 1
    return out


# --------------------------------------------------------------------------- capillary regression
PURPOSE_REGRESS = 80


def capillary_regression(sites, occ, kind, state, nz, ny, nx, min_fraction, p, seed, step):
    """Twin of kernels/vessels.py: the capillaries that regress this step (a list of bools).

    A capillary is enclosed when at least ``min_fraction`` of its in-domain neighbours hold a
    tumour or stem-like cell that has not been removed; an enclosed one regresses when its
    draw keyed by (seed, site, step) falls below ``p``.
    """
    out = []
    for s in sites:
        around = neighbours(int(s), nz, ny, nx)
        cancer = 0
        for _, t in around:
            j = int(occ[t])
            if j >= 0 and int(kind[j]) in (TUMOR, STEM) and int(state[j]) != REMOVED:
                cancer += 1
        enclosed = len(around) > 0 and cancer >= min_fraction * len(around)
        out.append(enclosed and uniform(seed, int(s), step, PURPOSE_REGRESS) < p)
    return out


# --------------------------------------------------------------------------- angiogenesis
PURPOSE_SPROUT, PURPOSE_WITHDRAW, PURPOSE_LEAK_A, PURPOSE_LEAK_B, PURPOSE_PERFUSION = (
    81, 82, 83, 84, 85)


def _faces(site, nz, ny, nx):
    """Face neighbours of ``site`` in the order -z, +z, -y, +y, -x, +x (2-D: y and x only)."""
    z, rem = divmod(site, ny * nx)
    y, x = divmod(rem, nx)
    axes = ((0, nz), (1, ny), (2, nx)) if nz > 1 else ((1, ny), (2, nx))
    out = []
    for axis, n in axes:
        for d in (-1, 1):
            c = [z, y, x]
            c[axis] += d
            if 0 <= c[axis] < n:
                out.append((c[0] * ny + c[1]) * nx + c[2])
    return out


def sprout_targets(sites, perfused, open_, vegf, nz, ny, nx, p_max, half, hill, seed, step):
    """Twin of kernels/vessels.py ``sprout_targets``: the new vessel site of each perfused site
    (or -1). A candidate face neighbour is open, not perfused, and touched by no perfused site
    but the parent; the one with most VEGF (first on ties) forms with p_max * Hill(VEGF)."""
    out = []
    for s in sites:
        s = int(s)
        cands = [
            t for t in _faces(s, nz, ny, nx)
            if open_[t] and not perfused[t]
            and not any(perfused[u] for _, u in neighbours(t, nz, ny, nx) if u != s)
        ]
        if not cands:
            out.append(-1)
            continue
        best = max(cands, key=lambda t: (vegf[t], -cands.index(t)))
        v = float(vegf[best])
        p = p_max * v**hill / (v**hill + half**hill) if v > 0 else 0.0
        out.append(best if v > 0 and uniform(seed, s, step, PURPOSE_SPROUT) < p else -1)
    return out


def vegf_withdrawal(sites, vegf, survival, p, seed, step):
    """Twin of kernels/vessels.py ``vegf_withdrawal`` (a list of bools)."""
    return [bool(vegf[s] < survival and uniform(seed, int(s), step, PURPOSE_WITHDRAW) < p)
            for s in sites]


def vessel_traits(sites, sigma, seed, step):
    """Twin of kernels/vessels.py ``vessel_traits``: (leakiness, perfusion) lists; leakiness is
    exp(sigma * z), z standard normal by Box-Muller from two keyed uniforms, perfusion a keyed
    uniform."""
    leak, perf = [], []
    for s in sites:
        u1 = uniform(seed, int(s), step, PURPOSE_LEAK_A)
        u2 = uniform(seed, int(s), step, PURPOSE_LEAK_B)
        z = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
        leak.append(math.exp(sigma * z))
        perf.append(uniform(seed, int(s), step, PURPOSE_PERFUSION))
    return leak, perf
