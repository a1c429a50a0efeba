"""Neighbourhood helpers shared by the cell kernels (bit masks over the Moore / 26 neighbours)."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .codes import CANCER_MASK, NECROTIC, REMOVED
from .random import randint, uniform


@kernel
def site_coords(site, ny, nx):
    """The lattice coordinates ``(z, y, x)`` of flat ``site``."""
    z = site // (ny * nx)
    rem = site - z * ny * nx
    y = rem // nx
    return z, y, rem - y * nx


@kernel
def neighbour_site(site, q, nz, ny, nx):
    """The ``q``-th neighbour of ``site``, or -1 outside the domain.

    ``q`` runs over ``range(8)`` in 2-D (Moore) and ``range(26)`` in 3-D, in a fixed order.
    """
    z, y, x = site_coords(site, ny, nx)
    return neighbour_site_at(q, z, y, x, nz, ny, nx)


@kernel
def neighbour_site_at(q, z, y, x, nz, ny, nx):
    """:func:`neighbour_site` of the site at coordinates ``(z, y, x)``, which the caller
    knows (no division by the lattice sizes)."""
    if nz > 1:
        r = q if q < 13 else q + 1
        dz = r // 9 - 1
        dy = (r // 3) % 3 - 1
        dx = r % 3 - 1
    else:
        r = q if q < 4 else q + 1
        dz = 0
        dy = r // 3 - 1
        dx = r % 3 - 1
    zz = z + dz
    yy = y + dy
    xx = x + dx
    if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
        return -1
    return (zz * ny + yy) * nx + xx


@kernel
def is_cancer(k):
    """Whether kind code ``k`` is a cancer kind (``codes.CANCER_CODES``)."""
    return (CANCER_MASK >> k) & 1 == 1


@kernel
def is_live_cancer(j, kind, state):
    """A cancer cell (:func:`is_cancer`) that is neither necrotic nor removed."""
    s = state[j]
    return is_cancer(kind[j]) and s != NECROTIC and s != REMOVED


@kernel
def scan(site, occ, blocked, kind, state, nz, ny, nx):
    """One pass over the neighbourhood of ``site``.

    Returns ``(free, cancer, n_in)``: bit ``q`` of ``free`` is set when neighbour ``q`` (the
    order of :func:`neighbour_site`) is inside the domain, empty and not ``blocked`` (alveolar
    air, which only cancer cells may fill; a length-1 ``blocked`` blocks nothing), bit ``q`` of ``cancer`` when it holds a live cancer
    cell; ``n_in`` counts in-domain neighbours.
    """
    z = site // (ny * nx)
    rem = site - z * ny * nx
    y = rem // nx
    x = rem - y * nx
    zlo = -1 if nz > 1 else 0
    zhi = 1 if nz > 1 else 0
    use_block = blocked.shape[0] > 1  # a length-1 array blocks nothing (see free_scan)
    free = np.int64(0)
    cancer = np.int64(0)
    n_in = 0
    q = 0
    for dz in range(zlo, zhi + 1):
        zz = z + dz
        for dy in range(-1, 2):
            yy = y + dy
            for dx in range(-1, 2):
                if dz == 0 and dy == 0 and dx == 0:
                    continue
                xx = x + dx
                if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                    n_in += 1
                    t = (zz * ny + yy) * nx + xx
                    j = occ[t]
                    if j < 0:
                        if not (use_block and blocked[t]):
                            free |= np.int64(1) << q
                    elif is_live_cancer(j, kind, state):
                        cancer |= np.int64(1) << q
                q += 1
    return free, cancer, n_in


@kernel
def _is_free(occ, blocked, use_block, t):
    """1 when site ``t`` is empty and not blocked, else 0 (as int64)."""
    if occ[t] < 0 and not (use_block and blocked[t]):
        return np.int64(1)
    return np.int64(0)


@kernel
def _free_scan(site, occ, blocked, use_block, nz, ny, nx):
    """Bit mask of the free in-domain neighbours of ``site``, ``blocked`` sites excluded."""
    free = np.int64(0)
    if nz == 1:
        y = site // nx
        x = site - y * nx
        if 0 < y < ny - 1 and 0 < x < nx - 1:
            # interior site of a 2-D lattice: eight loads, no bounds checks
            up = site - nx
            down = site + nx
            free |= _is_free(occ, blocked, use_block, up - 1)
            free |= _is_free(occ, blocked, use_block, up) << 1
            free |= _is_free(occ, blocked, use_block, up + 1) << 2
            free |= _is_free(occ, blocked, use_block, site - 1) << 3
            free |= _is_free(occ, blocked, use_block, site + 1) << 4
            free |= _is_free(occ, blocked, use_block, down - 1) << 5
            free |= _is_free(occ, blocked, use_block, down) << 6
            free |= _is_free(occ, blocked, use_block, down + 1) << 7
            return free
        q = 0
        for dy in range(-1, 2):
            yy = y + dy
            for dx in range(-1, 2):
                if dy == 0 and dx == 0:
                    continue
                xx = x + dx
                if 0 <= yy < ny and 0 <= xx < nx:
                    t = yy * nx + xx
                    if occ[t] < 0 and not (use_block and blocked[t]):
                        free |= np.int64(1) << q
                q += 1
        return free
    z = site // (ny * nx)
    rem = site - z * ny * nx
    y = rem // nx
    x = rem - y * nx
    q = 0
    for dz in range(-1, 2):
        zz = z + dz
        for dy in range(-1, 2):
            yy = y + dy
            for dx in range(-1, 2):
                if dz == 0 and dy == 0 and dx == 0:
                    continue
                xx = x + dx
                if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                    t = (zz * ny + yy) * nx + xx
                    if occ[t] < 0 and not (use_block and blocked[t]):
                        free |= np.int64(1) << q
                q += 1
    return free


@kernel
def free_scan(site, occ, blocked, nz, ny, nx):
    """Bit mask of the free in-domain neighbours of ``site`` (order of :func:`neighbour_site`).

    A site ``t`` with ``blocked[t]`` does not count as free; pass a length-1 array to block
    nothing.
    """
    return _free_scan(site, occ, blocked, blocked.shape[0] > 1, nz, ny, nx)


@kernel
def surrounded(site, occ, nz, ny, nx):
    """Whether ``site`` lies inside the domain's edge and every one of its neighbours holds a
    cell: then no scan can find a free neighbour. One load per neighbour and no mask, so the
    cell kernels test it before a full scan (most cells of a dense tumour are surrounded)."""
    if nz > 1:
        plane = ny * nx
        z = site // plane
        rem = site - z * plane
        y = rem // nx
        x = rem - y * nx
        if not (0 < z < nz - 1 and 0 < y < ny - 1 and 0 < x < nx - 1):
            return False
        for dz in (-plane, 0, plane):
            for dy in (-nx, 0, nx):
                base = site + dz + dy
                if occ[base - 1] < 0 or occ[base + 1] < 0:
                    return False
                if (dz != 0 or dy != 0) and occ[base] < 0:
                    return False
        return True
    y = site // nx
    x = site - y * nx
    if not (0 < y < ny - 1 and 0 < x < nx - 1):
        return False
    up = site - nx
    down = site + nx
    return (occ[up - 1] >= 0 and occ[up] >= 0 and occ[up + 1] >= 0 and occ[site - 1] >= 0
            and occ[site + 1] >= 0 and occ[down - 1] >= 0 and occ[down] >= 0
            and occ[down + 1] >= 0)


@kernel
def popcount(mask):
    """Number of set bits."""
    c = 0
    while mask != 0:
        mask &= mask - 1
        c += 1
    return c


@kernel
def kth_bit(mask, k):
    """Position of the ``k``-th set bit (0-based, from the lowest)."""
    q = 0
    while mask != 0:
        if mask & 1:
            if k == 0:
                return q
            k -= 1
        mask >>= 1
        q += 1
    return -1


@kernel
def choose_move(site, free, cid, nz, ny, nx, chemo, bias, seed, step, p_bias, p_site):
    """A free neighbour (``free`` from :func:`scan`): with probability ``bias`` one of highest
    ``chemo`` (ties drawn uniformly, so a flat field gives an unbiased walk), otherwise one
    drawn uniformly. -1 if none is free."""
    nfree = popcount(free)
    if nfree == 0:
        return -1
    if bias > 0.0 and uniform(seed, cid, step, p_bias) < bias:
        best = np.int64(0)
        nbest = 0
        top = 0.0
        m = free
        q = 0
        while m != 0:
            if m & 1:
                v = chemo[neighbour_site(site, q, nz, ny, nx)]
                if nbest == 0 or v > top:
                    top = v
                    best = np.int64(1) << q
                    nbest = 1
                elif v == top:
                    best |= np.int64(1) << q
                    nbest += 1
            m >>= 1
            q += 1
        return neighbour_site(site, kth_bit(best, randint(seed, cid, step, p_site, nbest)), nz,
                              ny, nx)
    return neighbour_site(site, kth_bit(free, randint(seed, cid, step, p_site, nfree)), nz, ny, nx)


@kernel
def hazard_prob(rate_per_h, dt_h):
    """Probability of at least one event of a Poisson process in ``dt_h``."""
    return 1.0 - np.exp(-rate_per_h * dt_h)


@kernel
def draw_below_hazard_prob(u, rate_per_h, dt_h):
    """``u < hazard_prob(rate_per_h, dt_h)``, without the exponential where the draw ``u`` alone
    decides it.

    With ``x = rate_per_h * dt_h``, ``1 - exp(-x)`` falls short of ``x`` by more than
    ``x**2 / 3`` for ``0 < x <= 1``; for ``1e-6 <= x <= 0.5`` that is at least ``3e-13``,
    far above the rounding of ``exp`` and of the subtraction (a few ``1e-16``), so the computed
    probability is below ``x`` and a draw at or above ``x`` is never below it. Every other case
    evaluates the probability, so the answer is that of the plain comparison, bit for bit.
    """
    x = rate_per_h * dt_h
    if u >= x and 1e-6 <= x <= 0.5:
        return False
    return u < hazard_prob(rate_per_h, dt_h)


@kernel
def face_site(site, f, nz, ny, nx):
    """The ``f``-th face neighbour of ``site`` (-z, +z, -y, +y, -x, +x; 2-D: -y, +y, -x, +x),
    or -1 outside the domain."""
    if nz == 1:
        f += 2
    z, y, x = site_coords(site, ny, nx)
    return face_site_at(site, f, z, y, x, nz, ny, nx)


@kernel
def face_site_at(site, f, z, y, x, nz, ny, nx):
    """The face neighbour ``f`` (0-5: -z, +z, -y, +y, -x, +x, also in 2-D) of ``site``, whose
    coordinates ``(z, y, x)`` the caller knows, or -1 outside the domain."""
    d = 1 if f % 2 else -1
    if f < 2:
        inside = 0 <= z + d < nz
        t = site + d * ny * nx
    elif f < 4:
        inside = 0 <= y + d < ny
        t = site + d * nx
    else:
        inside = 0 <= x + d < nx
        t = site + d
    return t if inside else -1


@kernel
def lumen_reachable(t, occ, air, kind, nz, ny, nx, exclude):
    """Whether a cancer cell may fill the air site ``t``: it must share a face with tissue or
    with a lumen site already filled by a cancer cell (lumens fill from the wall inward). The
    site ``exclude`` gives no support (the site a moving cell leaves; -1 for none)."""
    z, y, x = site_coords(t, ny, nx)
    for f in range(0 if nz > 1 else 2, 6):
        s = face_site_at(t, f, z, y, x, nz, ny, nx)
        if s < 0 or s == exclude:
            continue
        if not air[s]:
            return True
        j = occ[s]
        if j >= 0 and is_cancer(kind[j]):
            return True
    return False


@kernel
def cancer_free_scan(site, occ, air, kind, nz, ny, nx, moving):
    """Free neighbours a cancer cell may take: any free tissue site, and free air sites that
    :func:`lumen_reachable` allows. ``air`` of length 1 means the geometry has no air. A
    ``moving`` cell leaves its own site, which then supports no lumen site (else a lone cell
    could walk into the middle of an alveolus)."""
    free = _free_scan(site, occ, air, False, nz, ny, nx)
    if air.shape[0] <= 1 or free == 0:
        return free
    m = free
    q = 0
    while m != 0:
        if m & 1:
            t = neighbour_site(site, q, nz, ny, nx)
            if air[t] and not lumen_reachable(t, occ, air, kind, nz, ny, nx,
                                               site if moving else -1):  # fmt: skip
                free &= ~(np.int64(1) << q)
        m >>= 1
        q += 1
    return free
