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
neighbour is not an unknown). The system is held as the solve reads it, the matrix as its
lower and upper parts, built once per geometry (:func:`system`; per solve only the terms that
depend on the sink and the field are computed, :func:`_setup`); the x neighbours of unknown
``i`` are ``i - 1`` and ``i + 1`` whenever they are unknowns (C order), so they are read
directly, and only the other axes go through index arrays. The solver is conjugate gradients preconditioned with a modified
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


@kernel(exact=True)
def _face_lo(p, v, st, a, gf, ids, n, rf):
    """The face of voxel ``v`` toward its lower neighbour along axis ``a`` (stride ``st``,
    ``p`` the voxel's coordinate on that axis): ``(rf g, neighbour voxel, its unknown index
    or n, inside the grid)``; ``(0, -1, n, False)`` on the domain face."""
    if p > 0:
        w = v - st
        iw = ids[w]
        return rf * gf[a, w], w, (iw if iw >= 0 else n), True
    return 0.0, -1, n, False


@kernel(exact=True)
def _face_hi(p, size, v, st, a, gf, ids, n, rf):
    """As :func:`_face_lo`, toward the upper neighbour (the face after ``v``)."""
    if p < size - 1:
        w = v + st
        iw = ids[w]
        return rf * gf[a, v], w, (iw if iw >= 0 else n), True
    return 0.0, -1, n, False


@kernel(exact=True)
def system(free, g, kf, nd, rf, d0, bt):
    """The compact system of one field, held as the solve reads it.

    ``free`` (``(nz, ny, nx)``, nonzero on unknowns); ``g`` ``(3, nz, ny, nx)`` face factors
    (the face after each voxel along x, y, z); ``kf`` the voxel diffusivity factors (used on
    domain faces); ``nd`` 2 or 3; ``rf = D dt / h**2``; ``d0 = 1 + dt lam``; ``bt`` ``(3, 6)``
    boundary terms per axis x, y, z (lo diagonal, lo Dirichlet right-hand side, lo flux, then
    the same for hi; as in the LOD sweeps).

    Returns ``(vox, cl, cu, jl, ju, diag0, bnd, coupled, kptr, kvox, kcoef)``: ``vox`` the flat
    voxel index of each unknown (ascending, ``n`` of them); the matrix's lower and upper parts,
    ``cl``/``cu`` ``(nd, n)`` (row 0 the x-1/x+1 coefficient ``rf g``, whose neighbour is
    unknown ``i - 1``/``i + 1``; rows 1.. y and z, whose unknowns are ``jl``/``ju``
    ``(nd - 1, n)``; coefficient 0 and the sentinel ``n`` where the neighbour is not an
    unknown); ``diag0`` the diagonal without the sink; ``bnd`` the domain-face right-hand
    side; ``coupled`` each row's sum of its coefficients to unknowns (faces in the order x-1,
    y-1, z-1, x+1, y+1, z+1); and the faces to held neighbours, row ``i``'s being
    ``kptr[i]:kptr[i + 1]`` of ``kvox`` (the neighbour's flat voxel) and ``kcoef`` (``rf g``),
    in the same face order. A row's faces are visited per axis, lower then upper side, for its
    diagonal, and in the face order above for ``coupled`` and the held neighbours: the order of
    the sums is part of the result's bits.
    """
    nz, ny, nx = free.shape
    flat = free.reshape(-1)
    kff = kf.reshape(-1)
    gf = g.reshape(3, -1)
    nvox = flat.size
    ids = np.empty(nvox, dtype=np.int64)
    n = 0
    for v in range(nvox):
        if flat[v] != 0:
            ids[v] = n
            n += 1
        else:
            ids[v] = -1
    m = 2 * nd
    three = nd == 3
    vox = np.empty(n, dtype=np.int64)
    cl = np.empty((nd, n))
    cu = np.empty((nd, n))
    jl = np.empty((nd - 1, n), dtype=np.int32)
    ju = np.empty((nd - 1, n), dtype=np.int32)
    diag0 = np.empty(n)
    bnd = np.zeros(n)
    coupled = np.empty(n)
    kptr = np.empty(n + 1, dtype=np.int64)
    kvox = np.empty(n * m, dtype=np.int64)
    kcoef = np.empty(n * m)
    sy = nx
    sz = ny * nx
    i = 0
    nk = 0
    # written out per face rather than through helper kernels: a helper that takes the
    # output arrays costs their reference counting on every call (2.4x slower)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                v = (z * ny + y) * nx + x
                if flat[v] == 0:
                    continue
                vox[i] = v
                kv = kff[v]
                d = d0
                b = 0.0
                c0, w0, j0, in0 = _face_lo(x, v, 1, 0, gf, ids, n, rf)
                if in0:
                    d += c0
                else:
                    d += bt[0, 0] * kv
                    b += bt[0, 1] * kv + bt[0, 2]
                c3, w3, j3, in3 = _face_hi(x, nx, v, 1, 0, gf, ids, n, rf)
                if in3:
                    d += c3
                else:
                    d += bt[0, 3] * kv
                    b += bt[0, 4] * kv + bt[0, 5]
                c1, w1, j1, in1 = _face_lo(y, v, sy, 1, gf, ids, n, rf)
                if in1:
                    d += c1
                else:
                    d += bt[1, 0] * kv
                    b += bt[1, 1] * kv + bt[1, 2]
                c4, w4, j4, in4 = _face_hi(y, ny, v, sy, 1, gf, ids, n, rf)
                if in4:
                    d += c4
                else:
                    d += bt[1, 3] * kv
                    b += bt[1, 4] * kv + bt[1, 5]
                c2, w2, j2, in2 = 0.0, -1, n, False
                c5, w5, j5, in5 = 0.0, -1, n, False
                if three:
                    c2, w2, j2, in2 = _face_lo(z, v, sz, 2, gf, ids, n, rf)
                    if in2:
                        d += c2
                    else:
                        d += bt[2, 0] * kv
                        b += bt[2, 1] * kv + bt[2, 2]
                    c5, w5, j5, in5 = _face_hi(z, nz, v, sz, 2, gf, ids, n, rf)
                    if in5:
                        d += c5
                    else:
                        d += bt[2, 3] * kv
                        b += bt[2, 4] * kv + bt[2, 5]
                diag0[i] = d
                bnd[i] = b
                kptr[i] = nk
                s = 0.0
                # face order: x-1, y-1, (z-1), x+1, y+1, (z+1)
                if j0 < n:
                    cl[0, i] = c0
                    s += c0
                else:
                    cl[0, i] = 0.0
                    if w0 >= 0:
                        kvox[nk] = w0
                        kcoef[nk] = c0
                        nk += 1
                jl[0, i] = j1
                if j1 < n:
                    cl[1, i] = c1
                    s += c1
                else:
                    cl[1, i] = 0.0
                    if w1 >= 0:
                        kvox[nk] = w1
                        kcoef[nk] = c1
                        nk += 1
                if three:
                    jl[1, i] = j2
                    if j2 < n:
                        cl[2, i] = c2
                        s += c2
                    else:
                        cl[2, i] = 0.0
                        if w2 >= 0:
                            kvox[nk] = w2
                            kcoef[nk] = c2
                            nk += 1
                if j3 < n:
                    cu[0, i] = c3
                    s += c3
                else:
                    cu[0, i] = 0.0
                    if w3 >= 0:
                        kvox[nk] = w3
                        kcoef[nk] = c3
                        nk += 1
                ju[0, i] = j4
                if j4 < n:
                    cu[1, i] = c4
                    s += c4
                else:
                    cu[1, i] = 0.0
                    if w4 >= 0:
                        kvox[nk] = w4
                        kcoef[nk] = c4
                        nk += 1
                if three:
                    ju[1, i] = j5
                    if j5 < n:
                        cu[2, i] = c5
                        s += c5
                    else:
                        cu[2, i] = 0.0
                        if w5 >= 0:
                            kvox[nk] = w5
                            kcoef[nk] = c5
                            nk += 1
                coupled[i] = s
                i += 1
    kptr[n] = nk
    return vox, cl, cu, jl, ju, diag0, bnd, coupled, kptr, kvox[:nk], kcoef[:nk]


@kernel(exact=True)
def _setup(u, sink, dt, system, x, b, d, idelta):
    """The step's start values and the terms that depend on the step's sink and field.

    ``system`` as :func:`system` returns it. ``x``: the start (``u``); ``b`` the right-hand
    side (``u``, the domain faces and the held neighbours' ``rf g u``); ``d`` the diagonal with
    the sink; ``idelta`` ``1 / delta_i``, ``delta_i = d_i - coupled_i``."""
    vox, _cl, _cu, _jl, _ju, diag0, bnd, coupled, kptr, kvox, kcoef = system
    n = vox.size
    uf = u.reshape(-1)
    sf = sink.reshape(-1)
    for i in range(n):
        v = vox[i]
        di = diag0[i] + dt * sf[v]
        known = 0.0
        for t in range(kptr[i], kptr[i + 1]):
            known += kcoef[t] * uf[kvox[t]]
        x[i] = uf[v]
        b[i] = uf[v] + bnd[i] + known
        d[i] = di
        idelta[i] = 1.0 / (di - coupled[i])
    x[n] = 0.0


@kernel(exact=True)
def _factor(d, cl, cu, jl, omega, einv, lf, uf, upper):
    """Inverse pivots ``einv`` of the modified incomplete factorisation of ``A`` (natural
    order), ``e_i = d_i - sum_j a_ij (a_ji + omega * (row j's other upper entries)) / e_j``
    over the lower neighbours ``j`` of ``i`` (``a_ji = a_ij``: ``A`` is symmetric), and the
    sweep coefficients scaled by them, ``lf = einv * cl``, ``uf = einv * cu``. ``upper``
    (``n + 1``) is work space: each row's sum of upper entries (0 at the sentinel ``n``)."""
    h, n = cl.shape
    three = h == 3
    for i in range(n):
        t = cu[0, i] + cu[1, i]
        if three:
            t += cu[2, i]
        upper[i] = t
    upper[n] = 0.0
    einv[n] = 0.0
    for i in range(n):
        # a term with a zero coefficient (no such neighbour: the sentinel row) adds nothing
        c = cl[1, i]
        j = jl[0, i]
        ei = d[i] - c * (c + omega * (upper[j] - c)) * einv[j]
        if three:
            c = cl[2, i]
            j = jl[1, i]
            ei -= c * (c + omega * (upper[j] - c)) * einv[j]
        if i > 0:
            c = cl[0, i]
            ei -= c * (c + omega * (upper[i - 1] - c)) * einv[i - 1]
        e = 1.0 / ei
        einv[i] = e
        for k in range(h):
            lf[k, i] = e * cl[k, i]
            uf[k, i] = e * cu[k, i]


# The kernels below write the y (and, in 3-D, z) terms out rather than looping over axes: a
# loop over a short second axis of the coefficient arrays costs more than the arithmetic.
@kernel(exact=True)
def _residual(x, b, d, cl, cu, jl, ju, idelta, r):
    """``r = b - A x``; returns ``max |r_i| / delta_i``."""
    h, n = cl.shape
    three = h == 3
    worst = 0.0
    for i in range(n):
        s = (
            b[i]
            - d[i] * x[i]
            + cu[0, i] * x[i + 1]
            + cl[1, i] * x[jl[0, i]]
            + cu[1, i] * x[ju[0, i]]
        )
        if i > 0:
            s += cl[0, i] * x[i - 1]
        if three:
            s += cl[2, i] * x[jl[1, i]] + cu[2, i] * x[ju[1, i]]
        r[i] = s
        worst = max(worst, abs(s) * idelta[i])
    return worst


@kernel(exact=True)
def _forward(r, einv, lf, jl, y):
    """The forward sweep of the preconditioner, ``y = (E + L)^-1 r``."""
    h, n = lf.shape
    three = h == 3
    prev = 0.0
    for i in range(n):
        s = r[i] * einv[i] + lf[1, i] * y[jl[0, i]]
        if three:
            s += lf[2, i] * y[jl[1, i]]
        prev = s + lf[0, i] * prev
        y[i] = prev


@kernel(exact=True)
def _backward(y, uf, ju, z, r):
    """The backward sweep, ``z = (E + U)^-1 E y``: with the forward sweep, ``z = M^-1 r``
    for ``M = (E + L) E^-1 (E + U)``. Returns ``r . z``. ``z[n]`` must be 0."""
    h, n = uf.shape
    three = h == 3
    nxt = 0.0
    rz = 0.0
    for i in range(n - 1, -1, -1):
        s = y[i] + uf[1, i] * z[ju[0, i]]
        if three:
            s += uf[2, i] * z[ju[1, i]]
        nxt = s + uf[0, i] * nxt
        z[i] = nxt
        rz += r[i] * nxt
    return rz


@kernel(exact=True)
def _matvec(p, d, cl, cu, jl, ju, q):
    """``q = A p``; returns ``p . q``. ``p[n]`` must be 0."""
    h, n = cl.shape
    three = h == 3
    pq = 0.0
    for i in range(n):
        s = d[i] * p[i] - cu[0, i] * p[i + 1] - cl[1, i] * p[jl[0, i]] - cu[1, i] * p[ju[0, i]]
        if i > 0:
            s -= cl[0, i] * p[i - 1]
        if three:
            s -= cl[2, i] * p[jl[1, i]] + cu[2, i] * p[ju[1, i]]
        q[i] = s
        pq += p[i] * s
    return pq


@kernel(exact=True)
def _update(x, r, p, q, alpha, idelta, einv, lf, jl, y):
    """``x += alpha p``, ``r -= alpha q``, fused with the forward sweep on the new ``r``
    (:func:`_forward`); returns ``max |r_i| / delta_i``. ``y`` may share ``q``'s memory: row
    ``i`` reads ``q[i]`` before it writes ``y[i]`` and reads only rows below ``i`` of ``y``."""
    h, n = lf.shape
    three = h == 3
    est = 0.0
    prev = 0.0
    for i in range(n):
        x[i] += alpha * p[i]
        ri = r[i] - alpha * q[i]
        r[i] = ri
        est = max(est, abs(ri) * idelta[i])
        s = ri * einv[i] + lf[1, i] * y[jl[0, i]]
        if three:
            s += lf[2, i] * y[jl[1, i]]
        prev = s + lf[0, i] * prev
        y[i] = prev
    return est


@kernel(exact=True)
def pcg_solve(u, sink, dt, system, tol, maxit, work):
    """One backward-Euler step of one field ``u`` (``(nz, ny, nx)``), in place.

    ``system``: as :func:`system` returns it (2-D or 3-D), built for this ``dt``;
    ``work`` ``(N_WORK, n + 1)`` float64 (or wider). ``u`` is the warm start on entry. Iterates
    until the error bound ``max |r_i| / delta_i`` is at most ``tol`` (field units), checking
    the true residual whenever the updated one says so and restarting from it, or until
    ``maxit`` iterations. Negative values within the tolerance of the (non-negative) exact
    solution are set to 0.

    Returns ``(iterations, error bound, negatives set to 0)``.
    """
    vox, cl, cu, jl, ju = system[0], system[1], system[2], system[3], system[4]
    n = vox.size
    h = cl.shape[0]
    lf = np.empty((h, n))
    uf = np.empty((h, n))
    x, b, d, idelta, r, z, p, q, einv = (
        work[0],
        work[1],
        work[2],
        work[3],
        work[4],
        work[5],
        work[6],
        work[7],
        work[8],
    )
    y = q  # the forward sweep's result, consumed by the backward sweep before q is written
    _setup(u, sink, dt, system, x, b, d, idelta)
    p[n] = 0.0
    z[n] = 0.0
    y[n] = 0.0
    _factor(d, cl, cu, jl, OMEGA, einv, lf, uf, z)  # z: work space until the first sweep
    worst = _residual(x, b, d, cl, cu, jl, ju, idelta, r)
    it = 0
    while worst > tol and it < maxit:
        _forward(r, einv, lf, jl, y)
        rz = _backward(y, uf, ju, z, r)
        for i in range(n):
            p[i] = z[i]
        while it < maxit:
            pq = _matvec(p, d, cl, cu, jl, ju, q)
            if not (pq > 0.0) or not (rz > 0.0):
                break
            est = _update(x, r, p, q, rz / pq, idelta, einv, lf, jl, y)
            it += 1
            if est <= tol:
                break
            rz_new = _backward(y, uf, ju, z, r)
            beta = rz_new / rz
            rz = rz_new
            for i in range(n):
                p[i] = z[i] + beta * p[i]
        # the updated residual drifts from the true one: check it, restart from it if needed
        prev = worst
        worst = _residual(x, b, d, cl, cu, jl, ju, idelta, r)
        if worst > tol and not (worst < prev):
            break  # round-off floor: no progress is possible
    out = u.reshape(-1)
    clipped = 0
    for i in range(n):
        v = x[i]
        if v < 0.0:
            v = 0.0
            clipped += 1
        out[vox[i]] = v
    return it, worst, clipped
