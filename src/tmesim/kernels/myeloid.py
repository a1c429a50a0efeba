"""Decide kernel of granulocytic myeloid-derived suppressor cells (PMN-MDSCs, tumour-recruited
neutrophils).

The kernel follows :mod:`tmesim.kernels.agents`: it reads the state at the start of the step,
updates only the acting cell's own row and records one intended action. An MDSC ages, dies at
its lifespan hazard (which the scenario's rules may raise, e.g. by a depleting antibody), and
otherwise crawls, part of its moves up the gradient of the chemokine that recruited it. It
suppresses T cells only through what it releases into the fields (``cells.mdsc.secretion``):
TGF-beta, which the T-cell kernel reads, and in scenarios a contact-range signal that the rules
read (docs/biology.md §6a).
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from .agents import ACTION, BLOCKED, DIE, DT_H, MOVE, NONE, SEED, SHAPE, STEP, TARGET
from .codes import MDSC, REMOVED
from .layout import CLOCK_H, F32, ID, IDS, KIND, OCC, SITE, STATE
from .neighbourhood import choose_move, hazard_prob, scan
from .random import uniform
from .rules import B_DEATH, B_MIGRATION, apply_rules

# --- MDSC parameter vector
MD_LIFESPAN = 0  # mean lifespan in tissue (h; <= 0: not lost)
MD_MIGRATION_RATE = 1  # moves per hour
MD_CHEMOTAXIS_BIAS = 2  # probability that a move goes to the free neighbour of highest chemokine
MD_NPARAMS = 3

PURPOSE_MD_DEATH = 90
PURPOSE_MD_MOVE = 91
PURPOSE_MD_SITE = 92
PURPOSE_MD_BIAS = 93


@kernel(parallel=True)
def mdsc_decide(n, cells, lattice, chemo, fields, par, rules, keys, intents):
    """Granulocytic MDSCs: death at the hazard ``1 / lifespan`` (after the rules on
    ``death_rate``), else a move at the rate ``migration_rate`` (after its rules), toward the
    free neighbour of highest ``chemo`` with probability ``chemotaxis_bias``.

    ``chemo`` is the flat view of the recruiting chemokine (CXCL1-type; a zero array without
    it); ``cells``, ``lattice``, ``keys`` and ``intents`` as in :func:`.cancer.cancer_decide`.
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
        if kind[i] != MDSC:
            continue
        action[i] = NONE
        if state[i] == REMOVED:
            continue
        cid = ids[ID, i]
        s_i = site[i]
        f32[CLOCK_H, i] += dt_h
        life = par[MD_LIFESPAN]
        death = apply_rules(1.0 / life if life > 0 else 0.0, MDSC, B_DEATH, s_i, fields, 0.0,
                            rules)
        if uniform(seed, cid, step, PURPOSE_MD_DEATH) < hazard_prob(death, dt_h):
            action[i] = DIE
            continue
        rate = apply_rules(par[MD_MIGRATION_RATE], MDSC, B_MIGRATION, s_i, fields, 0.0, rules)
        if uniform(seed, cid, step, PURPOSE_MD_MOVE) < hazard_prob(rate, dt_h):
            free, _cancer, _nall = scan(s_i, occ, blocked, kind, state, nz, ny, nx)
            t = choose_move(s_i, free, cid, nz, ny, nx, chemo, par[MD_CHEMOTAXIS_BIAS], seed,
                            step, PURPOSE_MD_BIAS, PURPOSE_MD_SITE)
            if t >= 0:
                action[i] = MOVE
                target[i] = t
