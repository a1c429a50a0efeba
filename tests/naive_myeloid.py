"""Obviously-correct pure-Python twin of :func:`tmesim.kernels.myeloid.mdsc_decide`, for
bit-for-bit comparison (random draws, scans and moves from :mod:`naive_cells`)."""

from __future__ import annotations

from naive_cells import (
    CLOCK_H,
    DIE,
    ID,
    MOVE,
    NONE,
    REMOVED,
    apply_rules,
    choose_move,
    f32,
    hazard_prob,
    scan,
    uniform,
)

# restated, so that a renumbering in the kernel module is caught
MDSC = 5
B_MIGRATION, B_DEATH = 1, 2
MD_LIFE, MD_MIG, MD_BIAS = 0, 1, 2
P_DEATH, P_MOVE, P_SITE, P_BIAS = 90, 91, 92, 93


def mdsc_decide(n, cells, lattice, chemo, fields, par, rules, keys, intents):
    """Each live MDSC: age by dt; die with probability 1 - exp(-death dt), death = 1/lifespan
    after the rules; else move with probability 1 - exp(-rate dt), rate = the migration rate
    after the rules, to a free neighbour (the highest-chemo one with probability bias)."""
    ids, _, fl, kind, state, site, occ, _ = cells
    shape, blocked = lattice
    dt, seed, step = keys
    action, target = intents.action, intents.target
    nz, ny, nx = (int(s) for s in shape)
    for i in range(n):
        if kind[i] != MDSC:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = int(ids[ID, i])
        s = int(site[i])
        fl[CLOCK_H, i] = f32(fl[CLOCK_H, i] + dt)
        life = par[MD_LIFE]
        death = apply_rules(1.0 / life if life > 0 else 0.0, MDSC, B_DEATH, s, fields, 0.0, rules)
        if uniform(seed, cid, step, P_DEATH) < hazard_prob(death, dt):
            action[i] = DIE
            continue
        rate = apply_rules(par[MD_MIG], MDSC, B_MIGRATION, s, fields, 0.0, rules)
        if uniform(seed, cid, step, P_MOVE) < hazard_prob(rate, dt):
            free, _, _ = scan(s, occ, blocked, kind, state, nz, ny, nx)
            t = choose_move(s, free, cid, nz, ny, nx, chemo, par[MD_BIAS], seed, step, P_BIAS,
                            P_SITE)
            if t >= 0:
                action[i], target[i] = MOVE, t
