"""Lattice helpers: flat site indices, Moore / 26-neighbourhoods, occupancy and compaction.

Sites are flat C-order indices into a ``(nz, ny, nx)`` lattice (``nz == 1`` in 2-D). The
neighbourhood is Moore (8 sites) in 2-D and the 26-neighbourhood in 3-D; sites outside the
domain count as occupied.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from ._jit import kernel
from .codes import (
    ACT_ACTIVATION,
    ACT_ENGAGEMENT,
    ACT_M2,
    NECROTIC,
    PROLIFERATING,
    QUIESCENT,
    REMOVED,
)
from .neighbourhood import face_site_at, is_cancer
from .rules import hill


@kernel
def free_neighbours(site, occ, nz, ny, nx, out):
    """Write the free neighbour sites of ``site`` into ``out`` (length >= 26); return their count.

    The order is fixed (z, then y, then x offsets, ascending), so a random index into ``out``
    picks a neighbour reproducibly.
    """
    z = site // (ny * nx)
    rem = site - z * ny * nx
    y = rem // nx
    x = rem - y * nx
    zlo = -1 if nz > 1 else 0
    zhi = 1 if nz > 1 else 0
    k = 0
    for dz in range(zlo, zhi + 1):
        zz = z + dz
        if zz < 0 or zz >= nz:
            continue
        for dy in range(-1, 2):
            yy = y + dy
            if yy < 0 or yy >= ny:
                continue
            for dx in range(-1, 2):
                if dz == 0 and dy == 0 and dx == 0:
                    continue
                xx = x + dx
                if xx < 0 or xx >= nx:
                    continue
                s = (zz * ny + yy) * nx + xx
                if occ[s] < 0:
                    out[k] = s
                    k += 1
    return k


@kernel
def compact(n, arrays_i64, arrays_i32, arrays_f32, kind, state, site, occ, small):
    """Drop rows whose state is REMOVED, keeping order; refresh the occupancy map of moved rows:
    ``small`` (the small-cell layer) where it holds the row, else ``occ``; a length-1 ``small``
    means that sites are not shared.

    ``arrays_*`` are 2-D stacks of per-cell columns of one dtype (``(ncols, capacity)``), so one
    kernel compacts every column. Returns the new count.

    Rows before the first removed one stay put, and nothing is copied when no row is removed.
    The rows kept after it are listed once, then each column is moved along that list on its
    own, so every copy runs along one contiguous column (a row-by-row copy would touch every
    column at each row).
    """
    j0 = 0
    while j0 < n and state[j0] != REMOVED:
        j0 += 1
    if j0 == n:
        return n
    keep = np.empty(n - j0, np.int64)
    m = 0
    for i in range(j0, n):
        keep[m] = i
        m += state[i] != REMOVED
    # each row moves down (keep[t] >= j0 + t), so copying in ascending order reads every row
    # before it is overwritten
    for c in range(arrays_i64.shape[0]):
        _move_rows(arrays_i64[c], keep, m, j0)
    for c in range(arrays_i32.shape[0]):
        _move_rows(arrays_i32[c], keep, m, j0)
    for c in range(arrays_f32.shape[0]):
        _move_rows(arrays_f32[c], keep, m, j0)
    _move_rows(kind, keep, m, j0)
    _move_rows(state, keep, m, j0)
    _move_rows(site, keep, m, j0)
    shared = small.shape[0] > 1
    for t in range(m):
        j = j0 + t
        if shared and small[site[j]] == keep[t]:  # the small layer holds the row's old index
            small[site[j]] = j
        else:
            occ[site[j]] = j
    return j0 + m


@kernel
def _move_rows(col, keep, m, j0):
    """``col[j0 + t] = col[keep[t]]`` for ``t < m``, in ascending order."""
    for t in range(m):
        col[j0 + t] = col[keep[t]]


@kernel
def occupancy(n, site, occ):
    """Rebuild the occupancy map from scratch: ``occ[s]`` is the row at site ``s`` or -1."""
    occ[:] = -1
    for i in range(n):
        occ[site[i]] = i


@kernel
def sink_map(n, kind, state, site, uptake_by_kind, sink):
    """Accumulate per-voxel uptake rates (1/min) of viable cells into ``sink`` (flat)."""
    sink[:] = 0.0
    for i in range(n):
        st = state[i]
        if st == 0 or st == 1:
            sink[site[i]] += uptake_by_kind[kind[i]]


@kernel
def count_by_kind_state(n, kind, state, n_kinds, n_states):
    """Counts of cells per (kind, state) pair."""
    out = np.zeros((n_kinds, n_states), dtype=np.int64)
    for i in range(n):
        out[kind[i], state[i]] += 1
    return out


@kernel
def census(n, kind, state):
    """``(present, live_cancer)`` of rows ``[:n]``: bit ``k`` of ``present`` is set when some row
    has kind ``k``; ``live_cancer`` counts tumour and stem-like cells that are proliferating or
    quiescent. One pass with no stores, so it costs far less than :func:`count_by_kind_state`."""
    present = np.int64(0)
    live_cancer = 0
    for i in range(n):
        k = kind[i]
        present |= np.int64(1) << k
        if is_cancer(k) and (state[i] == PROLIFERATING or state[i] == QUIESCENT):
            live_cancer += 1
    return present, live_cancer


class ExchangeTables(NamedTuple):
    """The per-kind tables of :func:`exchange_maps`, ``(n_kinds, nf)`` unless said: ``sink``
    (1/min), ``source`` (units/min), ``release`` (units/min per cell), ``hypoxic`` (release
    factor of hypoxic cells), ``activity`` (``(n_kinds,)`` int8, ``codes.ACT_*``) and
    ``induction`` (``(3, n_kinds, nf)``: inducing field index or -1, its EC50, its Hill
    exponent)."""

    sink: object
    source: object
    release: object
    hypoxic: object
    activity: object
    induction: object


@kernel(parallel=True)
def exchange_maps(n, kind, state, occ, phenotype, aux, tables, fields, sink, source):
    """Per-voxel coupling of cells to fields, from the per-kind :class:`ExchangeTables`
    (one cell per site).

    ``sink[f, s]`` (1/min) is ``V_c/V_v (U + S)`` and ``source[f, s]`` (field units/min)
    ``V_c/V_v S T + a E / V_v`` of the live, non-necrotic cell on site ``s`` (row ``occ[s]``
    below ``n``; -1: none), 0 where there is none, where the activity ``a`` scales the release
    as ``activity_by_kind[k]`` (``codes.ACT_*``) says: 1
    (``ACT_PLAIN``; ``hypoxic_by_kind[k, f]`` for a cell that is quiescent, i.e. hypoxic: cancer
    cells), engagement (``aux``) for active cells and 0 for exhausted ones (``ACT_ENGAGEMENT``:
    T cells), the M2 activity ``max(0, 2 p - 1)`` of the polarisation ``p`` (``phenotype``;
    nothing at or below the M1/M2 midpoint, 1 when fully M2: ``ACT_M2``, macrophages) and the
    activation (``phenotype``; ``ACT_ACTIVATION``, fibroblasts); ``sink_by_kind`` etc. are the
    fields of ``tables``. A release may also be induced by another field: ``induction[0, k, f]`` is the index of the inducing field in ``fields``
    (``(nf, n_sites)``; -1: none) and the release is multiplied by the Hill function
    ``H(fields[g, s]; induction[1, k, f], induction[2, k, f])`` of the inducer at the cell's
    site (CXCL9/10 induced by IFN-gamma, docs/biology.md §5.9). Every entry of both maps is
    written, so they need not be cleared first. The loop runs over the sites, in parallel,
    each writing its own voxel, so the maps are written in order, one row at a time.
    """
    # the tables are only read; locals keep the loop free of tuple fields
    sink_by_kind = tables.sink
    source_by_kind = tables.source
    release_by_kind = tables.release
    hypoxic_by_kind = tables.hypoxic
    activity_by_kind = tables.activity
    induction = tables.induction
    nf = sink.shape[0]
    for s in prange(sink.shape[1]):
        i = occ[s]
        st = state[i] if 0 <= i < n else REMOVED
        if st == REMOVED or st == NECROTIC:
            for f in range(nf):
                sink[f, s] = 0.0
                source[f, s] = 0.0
            continue
        k = kind[i]
        act = 1.0
        hypoxic = False
        mode = activity_by_kind[k]
        if mode == ACT_ENGAGEMENT:
            act = aux[i] if st == PROLIFERATING else 0.0
        elif mode == ACT_M2:
            act = max(0.0, 2.0 * phenotype[i] - 1.0)
        elif mode == ACT_ACTIVATION:
            act = phenotype[i]
        elif st == QUIESCENT:
            hypoxic = True
        for f in range(nf):
            sink[f, s] = sink_by_kind[k, f]
            rel = act * release_by_kind[k, f]
            if hypoxic:
                rel *= hypoxic_by_kind[k, f]
            g = np.int64(induction[0, k, f])
            if g >= 0 and rel != 0.0:
                rel *= hill(fields[g, s], induction[1, k, f], induction[2, k, f])
            source[f, s] = source_by_kind[k, f] + rel


@kernel
def update_empty_lumen(sites, occ, kind, empty, filled, emptied):
    """Bring the empty-lumen set up to date in place and report what changed (serial).

    ``sites`` are the lumen sites (flat, ascending); ``empty`` (bool, one per lattice site) is
    true at the lumen sites no cancer cell fills (:func:`is_cancer` of the kind of the cell in
    ``occ``, -1 for none) and false everywhere else, and stays so. Lumen sites that a cancer
    cell filled since the last call go to ``filled``, those left without one to ``emptied``
    (both ascending, each at least as long as ``sites``). Returns ``(n_filled, n_emptied)``.
    """
    nf = 0
    ne = 0
    for t in range(sites.size):
        s = sites[t]
        j = occ[s]
        now = not (j >= 0 and is_cancer(kind[j]))
        if now != empty[s]:
            empty[s] = now
            if now:
                emptied[ne] = s
                ne += 1
            else:
                filled[nf] = s
                nf += 1
    return nf, ne


@kernel
def fill_from_face_neighbours(data, sites, masked, nz, ny, nx, rows):
    """Give each of ``sites`` the mean of its unmasked face neighbours (serial).

    ``data`` ``(nf, nz * ny * nx)``; for every site ``s`` of ``sites`` and every row ``r`` of
    ``rows``, ``data[r, s]`` becomes the mean of ``data[r, t]`` over the face neighbours ``t`` of
    ``s`` inside the lattice with ``masked[t]`` false, summed in the order -z, +z, -y, +y, -x,
    +x; a site without such a neighbour keeps its values. Every mean is taken before any is
    written, so sites next to each other read each other's old values.
    """
    nf = data.shape[0]
    m = sites.shape[0]
    total = np.zeros((nf, m))
    count = np.zeros(m, dtype=np.int64)
    plane = ny * nx
    for t in range(m):
        s = sites[t]
        z = s // plane
        y = (s // nx) % ny
        x = s % nx
        for d in range(6):
            nb = face_site_at(s, d, z, y, x, nz, ny, nx)
            if nb < 0 or masked[nb]:
                continue
            for r in range(nf):
                total[r, t] += data[r, nb]
            count[t] += 1
    for t in range(m):
        if count[t] == 0:
            continue
        for r in rows:
            data[r, sites[t]] = total[r, t] / count[t]


@kernel
def death_ledger(n, kind, state, icd):
    """``(deaths, immunogenic)`` of the cancer cells removed in this step (rows whose state is
    ``REMOVED`` before compaction): their number, and the sum of their immunogenic shares
    ``icd`` (the ``icd`` column; docs/biology.md §5.8). Serial, in row order, so the sums do
    not depend on the thread count."""
    deaths = 0.0
    immunogenic = 0.0
    for i in range(n):
        if state[i] == REMOVED and is_cancer(kind[i]):
            deaths += 1.0
            immunogenic += icd[i]
    return deaths, immunogenic
