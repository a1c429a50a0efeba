"""Tumour and stem-like cell rules on the lattice (one agent step).

The rules follow the lattice cancer-stem-cell automaton of Enderling and Hahnfeldt as coded by
Poleszczuk (see docs/biology.md), with the oxygen dependence of PhysiCell's standard phenotype:

1. Cells are visited once, in a random order drawn from the counter-based generator.
2. Oxygen first: below ``necrosis_mmHg`` a cell turns necrotic with hazard
   ``necrosis_max_per_h * clip((necrosis_mmHg - pO2) / (necrosis_mmHg - necrosis_max_mmHg), 0, 1)``;
   below ``hypoxia_mmHg`` it is quiescent and does not attempt division.
3. A cell acts only if a neighbouring site is free (contact inhibition).
4. With probability ``1 - exp(-division_rate * dt)`` it attempts division into a random free
   neighbour. A stem-like cell makes a stem-like daughter with probability
   ``symmetric_division_prob``, otherwise a tumour daughter with ``max_divisions`` left. A tumour
   cell dies at the attempt with probability ``death_at_division``, or when it has no divisions
   left; otherwise both mother and daughter keep ``divisions_left - 1``.
5. Otherwise, with probability ``1 - exp(-migration_rate * dt)``, it moves to a random free
   neighbour.
6. Necrotic cells keep their site for ``lysis_h`` hours, then free it.

All parameters arrive as per-kind arrays indexed by the kind code, in internal units (hours for
rates and times, mmHg for oxygen).
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .codes import NECROTIC, PROLIFERATING, QUIESCENT, REMOVED, STEM, TUMOR
from .lattice import free_neighbours
from .random import (
    PURPOSE_DEATH,
    PURPOSE_DIVIDE,
    PURPOSE_DIVIDE_SITE,
    PURPOSE_FATE,
    PURPOSE_MIGRATE,
    PURPOSE_MIGRATE_SITE,
    PURPOSE_NECROSIS,
    PURPOSE_ORDER,
    randint,
    uniform,
)


@kernel
def visiting_order(n, cell_id, seed, step):
    """A random permutation of ``range(n)`` that depends only on cell ids, seed and step."""
    keys = np.empty(n, dtype=np.float64)
    for i in range(n):
        keys[i] = uniform(seed, cell_id[i], step, PURPOSE_ORDER)
    return np.argsort(keys, kind="mergesort")


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
def tumor_step(
    n,
    cell_id,
    parent,
    generation,
    divisions_left,
    clock_h,
    kind,
    state,
    site,
    occ,
    oxygen,
    shape,
    division_rate_per_h,
    migration_rate_per_h,
    death_at_division,
    symmetric_division_prob,
    max_divisions,
    hypoxia_mmHg,
    necrosis_mmHg,
    necrosis_max_mmHg,
    necrosis_max_per_h,
    lysis_h,
    dt_h,
    seed,
    step,
    next_id,
):
    """Advance tumour and stem-like cells by one agent step of ``dt_h`` hours.

    Arrays must have capacity for ``2 * n`` rows (each cell divides at most once per step).
    ``oxygen`` is the flat pO2 (mmHg) per site. Returns ``(new_n, next_id)``; removed cells are
    marked ``REMOVED`` and must be compacted by the caller.
    """
    nz, ny, nx = shape[0], shape[1], shape[2]
    order = visiting_order(n, cell_id, seed, step)
    nb = np.empty(26, dtype=np.int64)
    m = n
    for oi in range(n):
        i = order[oi]
        k = kind[i]
        if k != TUMOR and k != STEM:
            continue
        st = state[i]
        if st == REMOVED:
            continue
        cid = cell_id[i]
        if st == NECROTIC:
            clock_h[i] += dt_h
            if clock_h[i] >= lysis_h[k]:
                state[i] = REMOVED
                occ[site[i]] = -1
            continue
        po2 = oxygen[site[i]]
        p_nec = necrosis_probability(
            po2, necrosis_mmHg[k], necrosis_max_mmHg[k], necrosis_max_per_h[k], dt_h
        )
        if p_nec > 0.0 and uniform(seed, cid, step, PURPOSE_NECROSIS) < p_nec:
            state[i] = NECROTIC
            clock_h[i] = 0.0
            continue
        hypoxic = po2 < hypoxia_mmHg[k]
        state[i] = QUIESCENT if hypoxic else PROLIFERATING
        clock_h[i] += dt_h
        nfree = free_neighbours(site[i], occ, nz, ny, nx, nb)
        if nfree == 0:
            continue
        p_div = 1.0 - np.exp(-division_rate_per_h[k] * dt_h)
        if not hypoxic and uniform(seed, cid, step, PURPOSE_DIVIDE) < p_div:
            if k == TUMOR:
                dies = uniform(seed, cid, step, PURPOSE_DEATH) < death_at_division[k]
                if dies or divisions_left[i] <= 0:
                    state[i] = REMOVED
                    occ[site[i]] = -1
                    continue
                divisions_left[i] -= 1
                d_kind = TUMOR
                d_div = divisions_left[i]
            else:
                if uniform(seed, cid, step, PURPOSE_FATE) < symmetric_division_prob[k]:
                    d_kind = STEM
                    d_div = divisions_left[i]
                else:
                    d_kind = TUMOR
                    d_div = max_divisions[TUMOR]
            target = nb[randint(seed, cid, step, PURPOSE_DIVIDE_SITE, nfree)]
            cell_id[m] = next_id
            parent[m] = cid
            generation[m] = generation[i] + 1
            divisions_left[m] = d_div
            clock_h[m] = 0.0
            clock_h[i] = 0.0
            kind[m] = d_kind
            state[m] = PROLIFERATING
            site[m] = target
            occ[target] = m
            next_id += 1
            m += 1
            continue
        p_mig = 1.0 - np.exp(-migration_rate_per_h[k] * dt_h)
        if p_mig > 0.0 and uniform(seed, cid, step, PURPOSE_MIGRATE) < p_mig:
            target = nb[randint(seed, cid, step, PURPOSE_MIGRATE_SITE, nfree)]
            occ[site[i]] = -1
            site[i] = target
            occ[target] = i
    return m, next_id
