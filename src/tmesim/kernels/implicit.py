"""Unsplit backward-Euler transport steps, solved by preconditioned conjugate gradients.

One step of length ``dt`` of a field ``u`` solves, on the voxels that are neither masked nor
held (the *unknowns*),

    A u' = u + bnd + (held neighbours),
    A = (1 + dt (lam + s_i)) I + rf L_g + (Dirichlet face terms),

where ``s_i`` is the per-voxel sink (1/min), ``rf = D dt / h**2`` and ``L_g`` the second
difference whose face between voxels ``i`` and ``j`` conducts with the geometry factor ``g_ij``
(the harmonic mean of the two voxels' diffusivity factors; 0 next to a masked voxel). Held
voxels keep their value and enter their neighbours' right-hand side; masked voxels stay at 0.

``A`` is symmetric and an M-matrix whose every row exceeds the sum of its off-diagonal
magnitudes by ``delta_i >= 1`` (``A 1 = delta``). Hence (docs/numerics.md, "Implicit
transport"):

* the exact solution is non-negative whenever ``u``, the held values and ``bnd`` are;
* for any iterate with residual ``r``, ``|u' - u*| <= max_i |r_i| / delta_i`` in every voxel
  (``A^-1 >= 0`` and ``A 1 = delta``), so stopping on that number bounds the error of the solve
  in field units;
* the fixed point of the step is the steady state of the unsplit operator, for any ``dt``.

The unknowns are numbered in the grid's C order and stored compactly, each with its face
neighbours (lower ones first: x-1, y-1, z-1, then x+1, y+1, z+1; the sentinel ``n`` where the
neighbour is not an unknown). The solver is conjugate gradients preconditioned with a modified
incomplete factorisation (MILU(0) with relaxation ``omega``: ``A ~ (E + L) E^-1 (E + U)``, the
pivots ``E`` absorbing ``omega`` times the dropped fill), which keeps the iteration count low on
fine grids. Everything runs serially in a fixed order, so the bits do not depend on the
number of threads.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

#: relaxation of the modified incomplete factorisation (1: row sums kept exactly)
OMEGA = 0.95
#: rows of the work array :func:`pcg_solve` needs
N_WORK = 9


@kernel
def system(free, g, kf, nd, rf, d0, bt):
    """The compact system of one field: its unknowns, their neighbours and coefficients.

    ``free`` (``(nz, ny, nx)``, nonzero on unknowns); ``g`` ``(3, nz, ny, nx)`` face factors
    (the face after each voxel along x, y, z); ``kf`` the voxel diffusivity factors (used on
    domain faces); ``nd`` 2 or 3; ``rf = D dt / h**2``; ``d0 = 1 + dt lam``; ``bt`` ``(3, 6)``
    boundary terms per axis x, y, z (lo diagonal, lo Dirichlet right-hand side, lo flux, then
    the same for hi; as in the LOD sweeps).

    Returns ``vox`` (flat voxel index of each unknown, ascending), ``nb`` (``(n, 2 nd)``
    unknown index of each face neighbour, lower ones first, ``n`` where the neighbour is not an
    unknown), ``nbv`` (the neighbour's flat voxel index, -1 outside the grid), ``gn`` (the
    face factor of each of those faces, 0 outside), ``diag0`` (the diagonal without the sink)
    and ``bnd`` (the domain-face right-hand side).
    """
    nz, ny, nx = free.shape
    flat = free.reshape(-1)
    kff = kf.reshape(-1)
    gf = g.reshape(3, -1)
    nvox = flat.size
    ids = np.full(nvox, -1, dtype=np.int64)
    n = 0
    for v in range(nvox):
        if flat[v] != 0:
            ids[v] = n
            n += 1
    m = 2 * nd
    vox = np.empty(n, dtype=np.int64)
    nb = np.empty((n, m), dtype=np.int32)
    nbv = np.empty((n, m), dtype=np.int64)
    gn = np.zeros((n, m))
    diag0 = np.empty(n)
    bnd = np.zeros(n)
    strides = np.array([1, nx, ny * nx], dtype=np.int64)
    pos = np.empty(3, dtype=np.int64)
    size = np.array([nx, ny, nz], dtype=np.int64)
    for v in range(nvox):
        i = ids[v]
        if i < 0:
            continue
        vox[i] = v
        pos[0] = v % nx
        pos[1] = (v // nx) % ny
        pos[2] = v // (ny * nx)
        d = d0
        for a in range(nd):
            for side in range(2):
                k = a + side * nd
                if side == 0 and pos[a] > 0:
                    w = v - strides[a]
                    gw = gf[a, w]
                elif side == 1 and pos[a] < size[a] - 1:
                    w = v + strides[a]
                    gw = gf[a, v]
                else:
                    # a domain face: its boundary condition
                    nb[i, k] = n
                    nbv[i, k] = -1
                    d += bt[a, 3 * side] * kff[v]
                    bnd[i] += bt[a, 3 * side + 1] * kff[v] + bt[a, 3 * side + 2]
                    continue
                nbv[i, k] = w
                nb[i, k] = ids[w] if ids[w] >= 0 else n
                gn[i, k] = gw
                d += rf * gw
        diag0[i] = d
    return vox, nb, nbv, gn, diag0, bnd


@kernel
def _setup(u, sink, dt, rf, vox, nb, nbv, gn, diag0, bnd, work, cn):
    """Start values ``x``, right-hand side ``b``, diagonal ``d``, row excess ``delta`` and the
    off-diagonal magnitudes ``cn = rf * gn`` (0 towards a neighbour that is not an unknown)."""
    n = vox.size
    m = nb.shape[1]
    uf = u.reshape(-1)
    sf = sink.reshape(-1)
    x, b, d, delta = work[0], work[1], work[2], work[3]
    for i in range(n):
        v = vox[i]
        di = diag0[i] + dt * sf[v]
        known = 0.0
        coupled = 0.0
        for k in range(m):
            c = rf * gn[i, k]
            if nb[i, k] < n:
                coupled += c
                cn[i, k] = c
            else:
                cn[i, k] = 0.0
                if nbv[i, k] >= 0:
                    known += c * uf[nbv[i, k]]
        x[i] = uf[v]
        b[i] = uf[v] + bnd[i] + known
        d[i] = di
        delta[i] = di - coupled
    x[n] = 0.0


@kernel
def _factor(d, nb, cn, omega, einv):
    """Inverse pivots ``einv`` of the modified incomplete factorisation of ``A`` (natural
    order): ``e_i = d_i - sum_j a_ij (a_ji + omega * (row j's other upper entries)) / e_j`` over
    the lower neighbours ``j`` of ``i``."""
    n = nb.shape[0]
    m = nb.shape[1]
    h = m // 2
    for i in range(n):
        ei = d[i]
        for k in range(h):
            j = nb[i, k]
            if j >= n:
                continue
            # row j's upper part: a_ji (the entry pointing back at i) plus the dropped fill
            fill = 0.0
            aji = 0.0
            for kk in range(h, m):
                if nb[j, kk] == i:
                    aji = cn[j, kk]
                else:
                    fill += cn[j, kk]
            ei -= cn[i, k] * (aji + omega * fill) * einv[j]
        einv[i] = 1.0 / ei


@kernel
def _residual(x, b, d, nb, cn, delta, r):
    """``r = b - A x``; returns ``max |r_i| / delta_i``."""
    n = nb.shape[0]
    m = nb.shape[1]
    worst = 0.0
    for i in range(n):
        s = 0.0
        for k in range(m):
            s += cn[i, k] * x[nb[i, k]]
        ri = b[i] - d[i] * x[i] + s
        r[i] = ri
        worst = max(worst, abs(ri) / delta[i])
    return worst


@kernel
def _precondition(r, einv, nb, cn, zz):
    """``zz = ((E + L) E^-1 (E + U))^-1 r`` by a forward and a backward sweep; returns
    ``r . zz``. ``zz[n]`` must be 0 (the sentinel neighbour)."""
    n = nb.shape[0]
    m = nb.shape[1]
    h = m // 2
    for i in range(n):
        s = r[i]
        for k in range(h):
            s += cn[i, k] * zz[nb[i, k]]
        zz[i] = s * einv[i]
    rz = 0.0
    for i in range(n - 1, -1, -1):
        s = 0.0
        for k in range(h, m):
            s += cn[i, k] * zz[nb[i, k]]
        zi = zz[i] + s * einv[i]
        zz[i] = zi
        rz += r[i] * zi
    return rz


@kernel
def _matvec(p, d, nb, cn, q):
    """``q = A p``; returns ``p . q``. ``p[n]`` must be 0."""
    n = nb.shape[0]
    m = nb.shape[1]
    pq = 0.0
    for i in range(n):
        s = 0.0
        for k in range(m):
            s += cn[i, k] * p[nb[i, k]]
        qi = d[i] * p[i] - s
        q[i] = qi
        pq += p[i] * qi
    return pq


@kernel
def pcg_solve(u, sink, dt, rf, vox, nb, nbv, gn, diag0, bnd, tol, maxit, work):
    """One backward-Euler step of one field ``u`` (``(nz, ny, nx)``), in place.

    ``vox``, ``nb``, ``nbv``, ``gn``, ``diag0`` and ``bnd`` from :func:`system`; ``work``
    ``(N_WORK, n + 1)`` float64. ``u`` is the warm start on entry. Iterates until the error
    bound ``max |r_i| / delta_i`` is at most ``tol`` (field units), checking the true residual
    whenever the updated one says so and restarting from it, or until ``maxit`` iterations.
    Negative values within the tolerance of the (non-negative) exact solution are set to 0.

    Returns ``(iterations, error bound, negatives set to 0)``.
    """
    n = vox.size
    cn = np.empty(nb.shape)
    _setup(u, sink, dt, rf, vox, nb, nbv, gn, diag0, bnd, work, cn)
    x, b, d, delta, r, zz, p, q, einv = (
        work[0], work[1], work[2], work[3], work[4], work[5], work[6], work[7], work[8]
    )
    p[n] = 0.0
    zz[n] = 0.0
    _factor(d, nb, cn, OMEGA, einv)
    worst = _residual(x, b, d, nb, cn, delta, r)
    it = 0
    while worst > tol and it < maxit:
        rz = _precondition(r, einv, nb, cn, zz)
        for i in range(n):
            p[i] = zz[i]
        while it < maxit:
            pq = _matvec(p, d, nb, cn, q)
            if not (pq > 0.0) or not (rz > 0.0):
                break
            alpha = rz / pq
            est = 0.0
            for i in range(n):
                x[i] += alpha * p[i]
                ri = r[i] - alpha * q[i]
                r[i] = ri
                est = max(est, abs(ri) / delta[i])
            it += 1
            if est <= tol:
                break
            rz_new = _precondition(r, einv, nb, cn, zz)
            beta = rz_new / rz
            rz = rz_new
            for i in range(n):
                p[i] = zz[i] + beta * p[i]
        # the updated residual drifts from the true one: check it, restart from it if needed
        prev = worst
        worst = _residual(x, b, d, nb, cn, delta, r)
        if worst > tol and not (worst < prev):
            break  # round-off floor: no progress is possible
    uf = u.reshape(-1)
    clipped = 0
    for i in range(n):
        v = x[i]
        if v < 0.0:
            v = 0.0
            clipped += 1
        uf[vox[i]] = v
    return it, worst, clipped
