"""Obviously-correct pure-Python twins of the cell kernels, for bit-for-bit comparison.

They use the same counter-based draws (the ``.py_func`` of :mod:`tmesim.kernels.random`), the same
rules in the same order, and loops written for clarity, not speed. See tmesim/kernels/tumor.py
and tmesim/kernels/lattice.py for the rules they mirror.
"""

from __future__ import annotations

import math

import numpy as np

from tmesim.kernels import random as kr
from tmesim.kernels.codes import NECROTIC, PROLIFERATING, QUIESCENT, REMOVED, STEM, TUMOR

uniform = kr.uniform.py_func
randint = kr.randint.py_func


def free_neighbours(site, occ, nz, ny, nx):
    """Free sites among the Moore (2-D) / 26 (3-D) neighbours of ``site``, ascending."""
    z, rem = divmod(int(site), ny * nx)
    y, x = divmod(rem, nx)
    out = []
    for other in range(nz * ny * nx):
        oz, orem = divmod(other, ny * nx)
        oy, ox = divmod(orem, nx)
        if other == site:
            continue
        if abs(oz - z) <= 1 and abs(oy - y) <= 1 and abs(ox - x) <= 1 and occ[other] < 0:
            out.append(other)
    return out


def visiting_order(n, cell_id, seed, step):
    keys = [uniform(seed, int(cell_id[i]), step, kr.PURPOSE_ORDER) for i in range(n)]
    return sorted(range(n), key=lambda i: (keys[i], i))


def necrosis_probability(po2, thr, thr_max, rate_max_per_h, dt_h):
    if po2 >= thr:
        return 0.0
    frac = 1.0 if (po2 <= thr_max or thr <= thr_max) else (thr - po2) / (thr - thr_max)
    return 1.0 - math.exp(-rate_max_per_h * frac * dt_h)


def _add_f32(a, i, dt):
    a[i] = np.float32(float(a[i]) + dt)


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
    """Twin of :func:`tmesim.kernels.tumor.tumor_step` (arrays are changed in place)."""
    nz, ny, nx = (int(s) for s in shape)
    m = n
    for i in visiting_order(n, cell_id, seed, step):
        k = int(kind[i])
        if k not in (TUMOR, STEM) or state[i] == REMOVED:
            continue
        cid = int(cell_id[i])
        if state[i] == NECROTIC:
            _add_f32(clock_h, i, dt_h)
            if float(clock_h[i]) >= lysis_h[k]:
                state[i] = REMOVED
                occ[site[i]] = -1
            continue
        po2 = float(oxygen[site[i]])
        p_nec = necrosis_probability(
            po2, necrosis_mmHg[k], necrosis_max_mmHg[k], necrosis_max_per_h[k], dt_h
        )
        if p_nec > 0.0 and uniform(seed, cid, step, kr.PURPOSE_NECROSIS) < p_nec:
            state[i] = NECROTIC
            clock_h[i] = 0.0
            continue
        hypoxic = po2 < hypoxia_mmHg[k]
        state[i] = QUIESCENT if hypoxic else PROLIFERATING
        _add_f32(clock_h, i, dt_h)
        free = free_neighbours(site[i], occ, nz, ny, nx)
        if not free:
            continue
        p_div = 1.0 - math.exp(-division_rate_per_h[k] * dt_h)
        if not hypoxic and uniform(seed, cid, step, kr.PURPOSE_DIVIDE) < p_div:
            if k == TUMOR:
                dies = uniform(seed, cid, step, kr.PURPOSE_DEATH) < death_at_division[k]
                if dies or divisions_left[i] <= 0:
                    state[i] = REMOVED
                    occ[site[i]] = -1
                    continue
                divisions_left[i] -= 1
                d_kind, d_div = TUMOR, divisions_left[i]
            elif uniform(seed, cid, step, kr.PURPOSE_FATE) < symmetric_division_prob[k]:
                d_kind, d_div = STEM, divisions_left[i]
            else:
                d_kind, d_div = TUMOR, max_divisions[TUMOR]
            target = free[randint(seed, cid, step, kr.PURPOSE_DIVIDE_SITE, len(free))]
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
        p_mig = 1.0 - math.exp(-migration_rate_per_h[k] * dt_h)
        if p_mig > 0.0 and uniform(seed, cid, step, kr.PURPOSE_MIGRATE) < p_mig:
            target = free[randint(seed, cid, step, kr.PURPOSE_MIGRATE_SITE, len(free))]
            occ[site[i]] = -1
            site[i] = target
            occ[target] = i
    return m, next_id


def compact(n, arrays_i64, arrays_i32, arrays_f32, kind, state, site, occ):
    """Twin of :func:`tmesim.kernels.lattice.compact`."""
    keep = [i for i in range(n) if state[i] != REMOVED]
    for block in (arrays_i64, arrays_i32, arrays_f32):
        block[:, : len(keep)] = block[:, keep].copy()
    for a in (kind, state, site):
        a[: len(keep)] = a[keep].copy()
    for j in range(len(keep)):
        occ[site[j]] = j
    return len(keep)


def sink_map(n, kind, state, site, uptake_by_kind, sink):
    """Twin of :func:`tmesim.kernels.lattice.sink_map`."""
    sink[:] = 0.0
    for i in range(n):
        if state[i] in (PROLIFERATING, QUIESCENT):
            sink[site[i]] += uptake_by_kind[kind[i]]


def count_by_kind_state(n, kind, state, n_kinds, n_states):
    """Twin of :func:`tmesim.kernels.lattice.count_by_kind_state`."""
    out = np.zeros((n_kinds, n_states), dtype=np.int64)
    for i in range(n):
        out[kind[i], state[i]] += 1
    return out
