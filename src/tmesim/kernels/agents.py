"""Deciding in parallel, applying in a deterministic order.

Cell kernels run in two phases:

1. *decide* (``prange`` over cells): each cell reads the state at the start of the step (the
   occupancy map is not modified) and writes one intended action into ``action[i]`` with its
   ``target`` (a site for DIVIDE and MOVE, a row for KILL) and, for DIVIDE, the daughter's kind
   and division budget. A cell may update its own row (clocks, phenotype) but nothing else.
   Random draws are keyed by (seed, cell id, step, purpose), so decisions do not depend on the
   thread count or on which thread handled which cell.
2. *apply* (:func:`apply_actions`, serial): intents are applied in a pseudo-random order, the
   affine permutation ``k -> (a k + b) mod n`` with ``a`` coprime to ``n`` drawn per step. A
   division or move whose target was taken earlier in the same step retries once on a free
   neighbour (drawn with its own key); a kill whose target is already gone is dropped. A
   division with no free neighbour by a kind that pushes makes room by :func:`push_chain`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import kernel
from .codes import NECROTIC, PROLIFERATING, REMOVED, STEM
from .layout import DIVISIONS_LEFT, GENERATION, ID, PARENT, RESET_AT_DIVISION
from .neighbourhood import (
    cancer_free_scan,
    free_scan,
    is_cancer,
    kth_bit,
    lumen_reachable,
    neighbour_site,
    neighbour_site_at,
    popcount,
    site_coords,
)
from .random import key_hash, randint, uniform

NONE = 0
DIVIDE = 1
MOVE = 2
DIE = 3
KILL = 4

PURPOSE_AFFINE = 20
PURPOSE_RETRY = 21
PURPOSE_PUSH = 22

#: rows of the work array of :func:`push_chain` (visit stamps, parents, queue), each with one
#: entry per site plus one (the last entry of row 0 holds the stamp counter)
PUSH_WORK_ROWS = 3


class Intents(NamedTuple):
    """What the decide kernels write per row and :func:`apply_actions` applies: the ``action``
    code, its ``target`` (a site for DIVIDE and MOVE, a row for KILL) and, for DIVIDE, the
    daughter's kind ``dkind`` and division budget ``ddiv``.

    Like :class:`.layout.CellArrays`, this, :class:`Lattice`, :class:`StepKeys` and
    :class:`FieldViews` are read by position in the kernels (the constants below), and the
    model passes plain tuples."""

    action: object
    target: object
    dkind: object
    ddiv: object


class Lattice(NamedTuple):
    """The lattice as the cell kernels see it: ``shape`` ``(nz, ny, nx)`` (int64) and ``blocked``,
    the sites only cancer cells may enter (alveolar air; a length-1 array when there is none)."""

    shape: object
    blocked: object


class StepKeys(NamedTuple):
    """The step a kernel decides: its length ``dt_h`` in hours, and the ``seed`` and ``step``
    that key every random draw (:mod:`.random`)."""

    dt_h: float
    seed: int
    step: int


class FieldViews(NamedTuple):
    """The fields as the decide kernels read them (built once per field array by
    ``CellDynamics._field_views``): flat views, one value per site, of ``oxygen`` (mmHg),
    ``ifng``, ``tgfb``, ``chemokine``, ``ecm``, ``antibody`` (summed over the antibodies dosed),
    ``ccl2`` and ``attractant`` (what recruited macrophages climb: CCL2 where the scenario has
    it, else the chemokine), each a zero map where the scenario lacks the field; and ``all``,
    every field as a row of an ``(n_fields, n_sites)`` array, for the rules and the growth
    factors."""

    oxygen: object
    ifng: object
    tgfb: object
    chemokine: object
    ecm: object
    antibody: object
    ccl2: object
    attractant: object
    all: object


# positions in Intents, Lattice, StepKeys and FieldViews
ACTION = Intents._fields.index("action")
TARGET = Intents._fields.index("target")
DKIND = Intents._fields.index("dkind")
DDIV = Intents._fields.index("ddiv")
SHAPE = Lattice._fields.index("shape")
BLOCKED = Lattice._fields.index("blocked")
DT_H = StepKeys._fields.index("dt_h")
SEED = StepKeys._fields.index("seed")
STEP = StepKeys._fields.index("step")
V_OXYGEN = FieldViews._fields.index("oxygen")
V_IFNG = FieldViews._fields.index("ifng")
V_TGFB = FieldViews._fields.index("tgfb")
V_CHEMOKINE = FieldViews._fields.index("chemokine")
V_ECM = FieldViews._fields.index("ecm")
V_ANTIBODY = FieldViews._fields.index("antibody")
V_CCL2 = FieldViews._fields.index("ccl2")
V_ATTRACTANT = FieldViews._fields.index("attractant")
V_ALL = FieldViews._fields.index("all")


@kernel
def _gcd(a, b):
    while b != 0:
        a, b = b, a % b
    return a


@kernel
def affine_order(n, seed, step):
    """``(a, b)`` such that ``k -> (a k + b) mod n`` permutes ``range(n)``, drawn per step."""
    if n <= 1:
        return np.int64(1), np.int64(0)
    h = key_hash(seed, n, step, PURPOSE_AFFINE)
    a = np.int64(h % np.uint64(n - 1)) + 1
    while _gcd(a, n) != 1:
        a = a % (n - 1) + 1
    b = np.int64((h >> np.uint64(32)) % np.uint64(n))
    return a, b


@kernel
def apply_actions(n, intents, cells, lattice, keys, next_id, push, push_work, pools):
    """Apply the :class:`Intents` of ``n`` cells to the cell arrays (:class:`.layout.CellArrays`); return
    ``(new_n, next_id, n_kills)`` (``keys.dt_h`` is not used).

    ``ids``, ``i32`` and ``f32`` are the int64, int32 and float32 blocks of the cell store
    (:mod:`.layout`): the daughter copies the mother's float rows, the rows of
    ``RESET_AT_DIVISION`` (the clock) restart in both and the rows ``pools`` (int64; the
    drug and particle pools of every dosed agent, :attr:`tmesim.cells.CellPopulation.pools`)
    are split equally between them. ``blocked``
    marks sites only cancer cells may enter (alveolar air). ``push`` holds per kind the push
    distance in sites (0: the kind does not push) and ``push_work`` the work array of
    :func:`push_chain`. Capacity must be at least ``2 * n``.

    A cell on the small-cell layer (``small`` of the cells, where sites are shared) frees,
    takes and looks for free sites on that layer (:func:`layer_of`), and its daughter goes
    there too; every other cell, and every push, uses ``occ``.
    """
    action, target, dkind, ddiv = intents
    ids, i32, f32, kind, state, site, occ, small = cells
    shape, blocked = lattice
    seed, step = keys[SEED], keys[STEP]
    nz, ny, nx = shape[0], shape[1], shape[2]
    a, b = affine_order(n, seed, step)
    m = n
    kills = 0
    # Rows are visited in the order k -> (a k + b) mod n, stepped by a without a division. Most
    # rows do nothing, so a tight loop collects the acting ones, in that order, a batch at a
    # time, and a second loop applies them (action is not changed here, so this is the order
    # and the outcome of one loop over all rows).
    batch = np.empty(min(n, 1024), np.int64)
    row = b - a
    k = 0
    while k < n:
        found = 0
        while k < n and found < batch.shape[0]:
            row += a
            if row >= n:
                row -= n
            batch[found] = row
            found += action[row] != NONE
            k += 1
        for f in range(found):
            i = batch[f]
            act = action[i]
            if state[i] == REMOVED:
                continue
            if act == DIE:
                state[i] = REMOVED
                layer_of(i, site, occ, small)[site[i]] = -1
                continue
            if act == KILL:
                j = target[i]
                if state[j] != REMOVED and state[j] != NECROTIC:
                    state[j] = REMOVED
                    layer_of(j, site, occ, small)[site[j]] = -1
                    kills += 1
                continue
            t = target[i]
            own = layer_of(i, site, occ, small)
            if t < 0 or own[t] >= 0:
                if is_cancer(kind[i]):
                    free = cancer_free_scan(site[i], occ, blocked, kind, nz, ny, nx, act == MOVE)
                else:
                    free = free_scan(site[i], own, blocked, nz, ny, nx)
                nfree = popcount(free)
                if nfree > 0:
                    q = kth_bit(free, randint(seed, ids[ID, i], step, PURPOSE_RETRY, nfree))
                    t = neighbour_site(site[i], q, nz, ny, nx)
                elif act == DIVIDE and push[kind[i]] > 0:
                    t = push_chain(site[i], kind[i], push[kind[i]], occ, site, kind, lattice,
                                   keys, ids[ID, i], push_work)  # fmt: skip
                    if t < 0:
                        continue
                else:
                    continue
            if act == MOVE:
                own[site[i]] = -1
                site[i] = t
                own[t] = i
                continue
            # DIVIDE: the daughter copies the mother's float state, then splits conserved
            # amounts
            for c in range(f32.shape[0]):
                f32[c, m] = f32[c, i]
            for c in RESET_AT_DIVISION:
                f32[c, m] = 0.0
                f32[c, i] = 0.0
            for c in pools:
                half = 0.5 * f32[c, i]
                f32[c, i] = half
                f32[c, m] = half
            ids[ID, m] = next_id
            ids[PARENT, m] = ids[ID, i]
            i32[GENERATION, m] = i32[GENERATION, i] + 1
            if kind[i] != STEM:  # a stem-like mother keeps its (unused) budget
                i32[DIVISIONS_LEFT, i] = ddiv[i]
            i32[DIVISIONS_LEFT, m] = ddiv[i]
            kind[m] = dkind[i]
            state[m] = PROLIFERATING
            site[m] = t
            own[t] = m
            next_id += 1
            m += 1
    return m, next_id, kills


@kernel
def layer_of(i, site, occ, small):
    """The occupancy map that holds row ``i``: ``small`` (the small-cell layer; length 1 when
    sites are not shared) where it does, else ``occ``."""
    if small.shape[0] > 1 and small[site[i]] == i:
        return small
    return occ


@kernel
def _entry_site(entry_sites, cum_weight, seed, draw, step, purpose):
    """The entry site of one draw: uniform when ``cum_weight`` is empty, else weighted."""
    ne = entry_sites.shape[0]
    if cum_weight.shape[0] == 0:
        return entry_sites[randint(seed, draw, step, purpose, ne)]
    u = uniform(seed, draw, step, purpose) * cum_weight[ne - 1]
    return entry_sites[weighted_index(cum_weight, u)]


@kernel
def _arrivals(k, entry_sites, cum_weight, cap_attempts, new_kind, init_div, cells, n, next_id, seed,
              step, purpose):
    """Place up to ``k`` cells, each trying up to ``cap_attempts`` drawn entry sites (free on
    the map in the occupancy slot of ``cells``: ``occ``, or the small-cell layer for the
    arrivals of a small kind, :meth:`tmesim.behaviour.CellDynamics._arrays`)."""
    ids, i32, f32, kind, state, site, occ, _small = cells
    placed = 0
    for a in range(k):
        for t in range(cap_attempts):
            s = _entry_site(entry_sites, cum_weight, seed, a * cap_attempts + t, step, purpose)
            if occ[s] < 0:
                ids[ID, n] = next_id
                ids[PARENT, n] = -1
                i32[GENERATION, n] = 0
                i32[DIVISIONS_LEFT, n] = init_div
                for c in range(f32.shape[0]):
                    f32[c, n] = 0.0
                kind[n] = new_kind
                state[n] = PROLIFERATING
                site[n] = s
                occ[s] = n
                n += 1
                next_id += 1
                placed += 1
                break
    return n, next_id, placed


@kernel
def _may_enter(t, mover, occ, air, kind, nz, ny, nx):
    """Whether a cell of kind ``mover`` may be pushed into site ``t``: alveolar air only for
    cancer cells, and a free air site only where a lumen may fill (:func:`lumen_reachable`)."""
    if air.shape[0] <= 1 or not air[t]:
        return True
    if not is_cancer(mover):
        return False
    return occ[t] >= 0 or lumen_reachable(t, occ, air, kind, nz, ny, nx, -1)


@kernel
def push_chain(s0, mother_kind, radius, occ, site, kind, lattice, keys, cid, work):
    """Make room next to ``s0`` for a daughter by pushing: find the free sites nearest to
    ``s0`` (breadth-first over the neighbourhood of :func:`neighbour_site`, through occupied
    sites, at most ``radius`` steps), draw one of them, and move each cell on the path one site
    towards it. Returns the site next to ``s0`` now empty (the daughter's), or -1 when no free
    site is within reach.

    A cell may be pushed into a site only if it may enter it (:func:`_may_enter`; the daughter,
    of the mother's cancer kind, enters the first site). The search visits sites in a fixed
    order, so the result does not depend on anything but the lattice and the keyed draw.
    ``lattice`` is the :class:`Lattice` (its ``blocked`` sites are the air only cancer cells
    enter), ``keys`` the :class:`StepKeys` and ``cid`` the mother's id that key the draw;
    ``work`` is ``(PUSH_WORK_ROWS, n_sites + 1)`` int64, zero at first and kept between calls.
    """
    shape, air = lattice
    nz, ny, nx = shape[0], shape[1], shape[2]
    seed, step = keys[SEED], keys[STEP]
    nsites = occ.shape[0]
    stamp_of = work[0]
    parent = work[1]
    queue = work[2]
    stamp_of[nsites] += 1
    stamp = stamp_of[nsites]
    nnb = 26 if nz > 1 else 8
    stamp_of[s0] = stamp
    queue[0] = s0
    head = 0
    tail = 1
    for _depth in range(radius):
        layer_end = tail
        first_free = tail  # free sites found at this depth are queued apart, from here on
        nfree = 0
        for h in range(head, layer_end):
            p = queue[h]
            mover = mother_kind if p == s0 else kind[occ[p]]
            pz, py, px = site_coords(p, ny, nx)
            for q in range(nnb):
                t = neighbour_site_at(q, pz, py, px, nz, ny, nx)
                if t < 0 or stamp_of[t] == stamp:
                    continue
                if not _may_enter(t, mover, occ, air, kind, nz, ny, nx):
                    continue
                stamp_of[t] = stamp
                parent[t] = p
                queue[tail] = t
                tail += 1
                if occ[t] < 0:
                    nfree += 1
        if nfree > 0:
            # the free sites of this layer, in the order found; draw one
            k = randint(seed, cid, step, PURPOSE_PUSH, nfree)
            t = -1
            for h in range(first_free, tail):
                if occ[queue[h]] < 0:
                    if k == 0:
                        t = queue[h]
                        break
                    k -= 1
            # move the cells along the path, from the free end back to s0
            while parent[t] != s0:
                p = parent[t]
                j = occ[p]
                occ[t] = j
                site[j] = t
                t = p
            occ[t] = -1
            return t
        head = layer_end
        if head == tail:
            return -1
    return -1


@kernel
def recruit(k, entry_sites, cap_attempts, new_kind, init_div, cells, n, next_id, seed, step,
            purpose):
    """Place up to ``k`` new cells of ``new_kind`` on free entry sites drawn at random into the
    cell arrays ``cells`` (:class:`.layout.CellArrays`) (``n`` rows in use).

    Each arrival tries up to ``cap_attempts`` random entry sites and is lost if all are taken.
    Returns ``(new_n, next_id, placed)``.
    """
    if entry_sites.shape[0] == 0:
        return n, next_id, 0
    return _arrivals(k, entry_sites, np.empty(0), cap_attempts, new_kind, init_div, cells, n,
                     next_id, seed, step, purpose)


@kernel
def weighted_index(cum_weight, u):
    """The first index ``j`` with ``cum_weight[j] > u`` (binary search; ``cum_weight`` is
    non-decreasing), so index ``j`` is drawn with probability ``weight[j] / total`` for ``u``
    uniform on ``[0, total)``; the last index if none (``u`` at or above the total)."""
    lo = 0
    hi = cum_weight.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum_weight[mid] > u:
            hi = mid
        else:
            lo = mid + 1
    return lo


@kernel
def entry_weights(entry_sites, signal, occ, half, cum_weight):
    """Write into ``cum_weight`` the running sum over the entry sites of their weight
    ``H(signal; half) = signal / (signal + half)`` (0 where the site is taken or the signal is
    0); return the total, the expected arrivals per unit rate."""
    total = 0.0
    for j in range(entry_sites.shape[0]):
        s = entry_sites[j]
        c = signal[s]
        if occ[s] < 0 and c > 0.0:
            total += c / (c + half)
        cum_weight[j] = total
    return total


@kernel
def recruit_weighted(k, entry_sites, cum_weight, cap_attempts, new_kind, init_div, cells, n,
                     next_id, seed, step, purpose):
    """Place up to ``k`` new cells of ``new_kind`` on entry sites drawn with probability
    proportional to a weight: ``cum_weight[j]`` is the sum of the weights of
    ``entry_sites[: j + 1]`` (a site of weight 0 is never drawn).

    Each arrival tries up to ``cap_attempts`` draws and is lost if every site drawn is taken.
    Returns ``(new_n, next_id, placed)``.
    """
    ne = entry_sites.shape[0]
    if ne == 0 or not cum_weight[ne - 1] > 0.0:
        return n, next_id, 0
    return _arrivals(k, entry_sites, cum_weight, cap_attempts, new_kind, init_div, cells, n,
                     next_id, seed, step, purpose)
