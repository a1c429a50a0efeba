"""Locally one-dimensional (LOD) implicit diffusion-decay sweeps.

The field set is one C-contiguous array ``u[f, z, y, x]`` (2-D runs have ``nz == 1``). One
diffusion step of length ``dt`` applies, axis by axis, the backward-Euler system

    (1 + dt*lam/ndim) u_i - r (u_{i-1} - 2 u_i + u_{i+1}) = u_i_old,   r = D dt / dx**2,

on cell-centred voxels. Boundaries sit on the voxel faces, half a voxel outside the first and
last centres: a Dirichlet value ``g`` adds ``2 r`` to the boundary diagonal and ``2 r g`` to the
right-hand side; a Neumann influx ``q`` (amount per um**2 per min entering the domain) adds
``dt q / dx`` to the right-hand side; zero flux adds nothing.

Two families of kernels solve the tridiagonal systems with the Thomas algorithm:

constant coefficients (``sweep_x``, ``sweep_y``, ``sweep_z``, ``sweep_xy``)
    Forward-elimination factors precomputed once per field and axis (:func:`thomas_factors`).
    The y and z sweeps solve along the *first* axis of a 2-D block whose second axis holds many
    independent lines ("lanes"), so the inner loop runs over contiguous memory and
    vectorises: the y sweep uses the ``(ny, nx)`` plane directly and the z sweep the same kernel
    on the ``(nz, ny*nx)`` view of a field. The x sweep is a serial recurrence along each row;
    it runs eight rows at once so eight independent multiply-add chains overlap.
    In 3-D, ``sweep_xy`` does the x and y sweeps of one ``(f, z)`` plane back to back while it is
    in cache.

variable coefficients (``sweep_var_x``, ``sweep_var_lanes``)
    Per-face conductances (a per-voxel diffusivity factor, harmonic mean on faces, zero on faces
    of non-conducting voxels) and per-voxel identity rows (``free == 0``: interior Dirichlet
    voxels and masked voxels) with the elimination done on the fly.

Lines are independent, so ``prange`` over blocks of lines gives the same bits for any thread
count.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel

#: lanes (columns) handled together in the y and z sweeps (one parallel task)
BLOCK = 64
#: rows per parallel task in the x sweeps (the constant one solves eight at a time)
XBLOCK = 16


@kernel
def thomas_factors(n, r, diag0, lo_diag, hi_diag, cp, inv):
    """Fill ``cp`` and ``inv`` (length ``n``) for the system with off-diagonals ``-r``.

    The diagonal is ``diag0 + 2r`` inside, ``diag0 + r + lo_diag`` on the first row and
    ``diag0 + r + hi_diag`` on the last (``lo_diag``/``hi_diag`` are ``2r`` for a Dirichlet side,
    whose face lies half a voxel away, and ``0`` for a flux side). With ``n == 1`` the single row
    is ``diag0 + lo_diag + hi_diag``.
    """
    for i in range(n):
        b = diag0 + 2.0 * r
        if i == 0:
            b = b - r + lo_diag
        if i == n - 1:
            b = b - r + hi_diag
        if i > 0:
            b = b + r * cp[i - 1]
        inv[i] = 1.0 / b
        cp[i] = -r / b


# ---------------------------------------------------------------------- constant coefficients
@kernel
def _lanes_const(a, x0, x1, rf, cp, inv, lo, hi):
    """Solve along axis 0 of the 2-D array ``a`` for lanes ``x0:x1`` (constant coefficients).

    Rows are taken as 1-D slices indexed from 0 so the compiler can drop the negative-index
    wrap-around checks and vectorise the lane loop.
    """
    n = a.shape[0]
    w = x1 - x0
    first = a[0, x0:x1]
    last = a[n - 1, x0:x1]
    for x in range(w):
        first[x] += lo
    for x in range(w):
        last[x] += hi
    c0 = inv[0]
    for x in range(w):
        first[x] *= c0
    for i in range(1, n):
        ci = inv[i]
        cur = a[i, x0:x1]
        prv = a[i - 1, x0:x1]
        for x in range(w):
            cur[x] = (cur[x] + rf * prv[x]) * ci
    for i in range(n - 2, -1, -1):
        ci = cp[i]
        cur = a[i, x0:x1]
        nxt = a[i + 1, x0:x1]
        for x in range(w):
            cur[x] -= ci * nxt[x]


@kernel
def _row_const(row, rf, cp, inv, lo, hi):
    """Solve one line along x in place (constant coefficients)."""
    nx = row.shape[0]
    row[0] += lo
    row[nx - 1] += hi
    p = row[0] * inv[0]
    row[0] = p
    for i in range(1, nx):
        c = inv[i]
        p = row[i] * c + (rf * c) * p
        row[i] = p
    for i in range(nx - 2, -1, -1):
        p = row[i] - cp[i] * p
        row[i] = p


@kernel
def _rows_const(plane, y0, y1, rf, cp, inv, lo, hi):
    """Solve along x for rows ``y0:y1`` of ``plane``, eight rows at a time.

    The x recurrence is serial along a row, so one row runs at the latency of its dependency
    chain. Eight independent rows advance together, and the forward step is written as
    ``p = u*c + (r*c)*p`` so that the chain is a single multiply-add.
    """
    nx = plane.shape[1]
    y = y0
    while y + 8 <= y1:
        r0 = plane[y]
        r1 = plane[y + 1]
        r2 = plane[y + 2]
        r3 = plane[y + 3]
        r4 = plane[y + 4]
        r5 = plane[y + 5]
        r6 = plane[y + 6]
        r7 = plane[y + 7]
        r0[0] += lo
        r1[0] += lo
        r2[0] += lo
        r3[0] += lo
        r4[0] += lo
        r5[0] += lo
        r6[0] += lo
        r7[0] += lo
        r0[nx - 1] += hi
        r1[nx - 1] += hi
        r2[nx - 1] += hi
        r3[nx - 1] += hi
        r4[nx - 1] += hi
        r5[nx - 1] += hi
        r6[nx - 1] += hi
        r7[nx - 1] += hi
        c = inv[0]
        p0 = r0[0] * c
        p1 = r1[0] * c
        p2 = r2[0] * c
        p3 = r3[0] * c
        p4 = r4[0] * c
        p5 = r5[0] * c
        p6 = r6[0] * c
        p7 = r7[0] * c
        r0[0] = p0
        r1[0] = p1
        r2[0] = p2
        r3[0] = p3
        r4[0] = p4
        r5[0] = p5
        r6[0] = p6
        r7[0] = p7
        for i in range(1, nx):
            c = inv[i]
            a = rf * c
            p0 = r0[i] * c + a * p0
            p1 = r1[i] * c + a * p1
            p2 = r2[i] * c + a * p2
            p3 = r3[i] * c + a * p3
            p4 = r4[i] * c + a * p4
            p5 = r5[i] * c + a * p5
            p6 = r6[i] * c + a * p6
            p7 = r7[i] * c + a * p7
            r0[i] = p0
            r1[i] = p1
            r2[i] = p2
            r3[i] = p3
            r4[i] = p4
            r5[i] = p5
            r6[i] = p6
            r7[i] = p7
        for i in range(nx - 2, -1, -1):
            c = cp[i]
            p0 = r0[i] - c * p0
            p1 = r1[i] - c * p1
            p2 = r2[i] - c * p2
            p3 = r3[i] - c * p3
            p4 = r4[i] - c * p4
            p5 = r5[i] - c * p5
            p6 = r6[i] - c * p6
            p7 = r7[i] - c * p7
            r0[i] = p0
            r1[i] = p1
            r2[i] = p2
            r3[i] = p3
            r4[i] = p4
            r5[i] = p5
            r6[i] = p6
            r7[i] = p7
        y += 8
    while y < y1:
        _row_const(plane[y], rf, cp, inv, lo, hi)
        y += 1


@kernel(parallel=True)
def sweep_x(u, r, cp, inv, lo_rhs, hi_rhs):
    """Implicit sweep along x for every field: ``cp``, ``inv`` are ``(nf, nx)``."""
    nf, nz, ny, _ = u.shape
    nb = (ny + XBLOCK - 1) // XBLOCK
    for task in prange(nf * nz * nb):
        f = task // (nz * nb)
        rem = task - f * nz * nb
        z = rem // nb
        b = rem - z * nb
        y0 = b * XBLOCK
        y1 = min(ny, y0 + XBLOCK)
        _rows_const(u[f, z], y0, y1, r[f], cp[f], inv[f], lo_rhs[f], hi_rhs[f])


@kernel(parallel=True)
def sweep_y(u, r, cp, inv, lo_rhs, hi_rhs):
    """Implicit sweep along y for every field, ``BLOCK`` columns of x at a time."""
    nf, nz, _, nx = u.shape
    nb = (nx + BLOCK - 1) // BLOCK
    for task in prange(nf * nz * nb):
        f = task // (nz * nb)
        rem = task - f * nz * nb
        z = rem // nb
        b = rem - z * nb
        x0 = b * BLOCK
        x1 = min(nx, x0 + BLOCK)
        _lanes_const(u[f, z], x0, x1, r[f], cp[f], inv[f], lo_rhs[f], hi_rhs[f])


@kernel(parallel=True)
def sweep_xy(u, rx, cpx, invx, lox, hix, ry, cpy, invy, loy, hiy):
    """The x sweep then the y sweep of each ``(f, z)`` plane, one plane per task (3-D)."""
    nf, nz, ny, nx = u.shape
    for task in prange(nf * nz):
        f = task // nz
        z = task - f * nz
        plane = u[f, z]
        _rows_const(plane, 0, ny, rx[f], cpx[f], invx[f], lox[f], hix[f])
        for x0 in range(0, nx, BLOCK):
            x1 = min(nx, x0 + BLOCK)
            _lanes_const(plane, x0, x1, ry[f], cpy[f], invy[f], loy[f], hiy[f])


def sweep_z(u, r, cp, inv, lo_rhs, hi_rhs):
    """Implicit sweep along z: the y sweep of the ``(nz, ny*nx)`` view of each field.

    A plain Python wrapper (no kernel of its own): lanes run over ``y*nx + x`` in blocks of
    ``BLOCK``, one parallel task per block.
    """
    nf, nz, ny, nx = u.shape
    sweep_y(u.reshape(nf, 1, nz, ny * nx), r, cp, inv, lo_rhs, hi_rhs)


# ---------------------------------------------------------------------- variable coefficients
@kernel
def _lanes_var(a, g, kf, fr, x0, x1, rf, d0, bc, cp):
    """Solve along axis 0 of ``a`` for lanes ``x0:x1`` with coefficients built on the fly.

    ``bc`` holds the field's six boundary terms ``(lo_c, lo_r, lo_q, hi_c, hi_r, hi_q)``: the
    diagonal, Dirichlet (both times ``kf``) and Neumann terms of the first and the last row.

    ``g[i, x]`` is the conductance factor of the face between rows ``i`` and ``i + 1``; the
    last row's entry must be 0 (there is no face beyond it). ``kf`` is the voxel factor, used
    on the domain faces; ``fr`` is 1 on ordinary rows and 0 on identity rows (held or masked
    voxels). ``cp`` is ``(n, >= x1 - x0)`` scratch. An ordinary row ``i`` reads
    ``-r g[i-1] u[i-1] + (d0 + r g[i-1] + r g[i]) u[i] - r g[i] u[i+1]``. The rows are written
    without branches (multiplying by ``fr``) so the lane loops vectorise.
    """
    lo_c, lo_r, lo_q, hi_c, hi_r, hi_q = bc  # not a parallel kernel: unpacking is safe
    n = a.shape[0]
    w = x1 - x0
    u0 = a[0, x0:x1]
    g0 = g[0, x0:x1]
    k0 = kf[0, x0:x1]
    f0 = fr[0, x0:x1]
    c0 = cp[0]
    hc = hi_c if n == 1 else 0.0
    hr = hi_r if n == 1 else 0.0
    hq = hi_q if n == 1 else 0.0
    for x in range(w):
        fx = f0[x]
        ghi = rf * g0[x]
        b = fx * (d0 + ghi + (lo_c + hc) * k0[x]) + (1.0 - fx)
        rhs = u0[x] + fx * ((lo_r + hr) * k0[x] + lo_q + hq)
        inv = 1.0 / b
        c0[x] = -ghi * fx * inv
        u0[x] = rhs * inv
    for i in range(1, n):
        hc = hi_c if i == n - 1 else 0.0
        hr = hi_r if i == n - 1 else 0.0
        hq = hi_q if i == n - 1 else 0.0
        cur = a[i, x0:x1]
        prv = a[i - 1, x0:x1]
        glo_ = g[i - 1, x0:x1]
        ghi_ = g[i, x0:x1]
        ki = kf[i, x0:x1]
        fi = fr[i, x0:x1]
        cprev = cp[i - 1]
        ccur = cp[i]
        for x in range(w):
            fx = fi[x]
            glo = rf * glo_[x]
            ghi = rf * ghi_[x]
            b = fx * (d0 + glo + ghi + hc * ki[x]) + (1.0 - fx)
            rhs = cur[x] + fx * (hr * ki[x] + hq)
            glo = glo * fx
            inv = 1.0 / (b + glo * cprev[x])
            ccur[x] = -ghi * fx * inv
            cur[x] = (rhs + glo * prv[x]) * inv
    for i in range(n - 2, -1, -1):
        cur = a[i, x0:x1]
        nxt = a[i + 1, x0:x1]
        ci = cp[i]
        for x in range(w):
            cur[x] -= ci[x] * nxt[x]


@kernel(parallel=True)
def sweep_var_lanes(v, g, kf, free, per, r, d0, bc):
    """Variable-coefficient sweep along axis 1 of ``v[p, n, m]`` (lanes along ``m``).

    The y sweep passes ``u.reshape(nf*nz, ny, nx)`` with ``per = nz`` (geometry ``g``, ``kf``
    shaped ``(nz, ny, nx)``); the z sweep ``u.reshape(nf, nz, ny*nx)`` with ``per = 1``
    (geometry ``(1, nz, ny*nx)``). ``free`` (1 ordinary, 0 identity row) has the shape of
    ``v``; field ``f = p // per``. ``bc`` holds the six per-field boundary arrays
    ``(lo_c, lo_r, lo_q, hi_c, hi_r, hi_q)`` (see :func:`_lanes_var`).
    """
    lo_c = bc[0]
    lo_r = bc[1]
    lo_q = bc[2]
    hi_c = bc[3]
    hi_r = bc[4]
    hi_q = bc[5]
    npl, n, m = v.shape
    nb = (m + BLOCK - 1) // BLOCK
    for task in prange(npl * nb):
        p = task // nb
        b = task - p * nb
        f = p // per
        q = p - f * per
        x0 = b * BLOCK
        x1 = min(m, x0 + BLOCK)
        cp = np.empty((n, x1 - x0), dtype=v.dtype)
        _lanes_var(
            v[p], g[q], kf[q], free[p], x0, x1, r[f], d0[f],
            (lo_c[f], lo_r[f], lo_q[f], hi_c[f], hi_r[f], hi_q[f]), cp,
        )  # fmt: skip


@kernel(parallel=True)
def sweep_var_x(u, g, kf, free, r, d0, bc):
    """Variable-coefficient sweep along x: ``g``, ``kf`` are ``(nz, ny, nx)`` (x faces); ``bc``
    as in :func:`sweep_var_lanes`."""
    lo_c = bc[0]
    lo_r = bc[1]
    lo_q = bc[2]
    hi_c = bc[3]
    hi_r = bc[4]
    hi_q = bc[5]
    nf, nz, ny, nx = u.shape
    nb = (ny + XBLOCK - 1) // XBLOCK
    for task in prange(nf * nz * nb):
        f = task // (nz * nb)
        rem = task - f * nz * nb
        z = rem // nb
        b = rem - z * nb
        y0 = b * XBLOCK
        y1 = min(ny, y0 + XBLOCK)
        m = y1 - y0
        buf = np.empty((nx, m), dtype=u.dtype)
        gb = np.empty((nx, m), dtype=g.dtype)
        kb = np.empty((nx, m), dtype=kf.dtype)
        fb = np.empty((nx, m), dtype=free.dtype)
        cp = np.empty((nx, m), dtype=u.dtype)
        for j in range(m):
            for i in range(nx):
                buf[i, j] = u[f, z, y0 + j, i]
                gb[i, j] = g[z, y0 + j, i]
                kb[i, j] = kf[z, y0 + j, i]
                fb[i, j] = free[f, z, y0 + j, i]
        _lanes_var(
            buf, gb, kb, fb, 0, m, r[f], d0[f],
            (lo_c[f], lo_r[f], lo_q[f], hi_c[f], hi_r[f], hi_q[f]), cp,
        )  # fmt: skip
        for j in range(m):
            for i in range(nx):
                u[f, z, y0 + j, i] = buf[i, j]


# ---------------------------------------------------------------------- local terms and guards
@kernel(parallel=True)
def uptake_implicit(u, sink_per_min, dt):
    """Per-voxel first-order sink solved implicitly: ``u <- u / (1 + dt * k)``.

    ``u`` is ``(nf, nz, ny, nx)``, ``sink_per_min`` is ``(nf, nz, ny, nx)``; unconditionally
    stable and positivity-preserving for any ``dt``.
    """
    nf, nz, ny, nx = u.shape
    for task in prange(nf * nz * ny):
        f = task // (nz * ny)
        rem = task - f * nz * ny
        z = rem // ny
        y = rem - z * ny
        for x in range(nx):
            k = sink_per_min[f, z, y, x]
            if k != 0.0:
                u[f, z, y, x] = u[f, z, y, x] / (1.0 + dt * k)


@kernel
def find_invalid(u):
    """Return the flat index of the first NaN, infinite or negative value, or -1.

    Blocks of values are first counted without a branch per value, in a loop the compiler
    vectorises: ``v - v`` is 0 for a finite ``v`` and NaN for an infinite or NaN one, and every
    comparison with NaN is false, so a block is clean when all its values pass
    ``v - v == 0 and v >= 0``. Only a block that is not clean is searched value by value.
    The block's start and length are non-negative by construction, which lets the compiler
    drop its negative-index handling (that, not the arithmetic, kept the loop scalar)."""
    flat = u.reshape(-1)
    n = flat.size
    block = 4096
    for k in range((n + block - 1) // block):
        start = k * block
        m = min(block, n - start)
        good = 0
        for j in range(m):
            v = flat[start + j]
            good += (v - v == 0.0) & (v >= 0.0)
        if good != m:
            for j in range(m):
                v = flat[start + j]
                if not (v >= 0.0) or v == np.inf:
                    return start + j
    return -1


# ---------------------------------------------------------------------- Douglas ADI
# The Douglas (Douglas-Gunn, theta = 1) step in delta form (docs/numerics.md, "Douglas ADI"):
#
#     d0 = dt (A u + b)                    residual of the unsplit operator (douglas_residual*)
#     (I - dt (Ly - K)) d1 = d0            y sweep with the per-voxel sink K (douglas_sweep_y*)
#     (I - dt Lx) d2 = d1                  the LOD x sweep with a unit diagonal, no boundary rhs
#     (I - dt Lz) d3 = d2                  the LOD z sweep, likewise (3-D only)
#     u <- u + d3                          (douglas_add)
#
# A = Lx + Ly + Lz - K, K = lam + sink; b holds the Dirichlet and Neumann boundary terms. A
# fixed point has d0 = 0, i.e. it is the steady state of the unsplit operator.
@kernel(parallel=True)
def douglas_residual(u, d, sink, dt, lam, rx, ry, rz, bx, by, bz):
    """``d = dt (A u + b)`` for constant coefficients; ``u``, ``d``, ``sink`` are ``(nf, nz, ny, nx)``.

    ``rx``, ``ry``, ``rz`` are per-field ``D dt / h**2`` (``rz`` unused when ``nz == 1``); ``b*``
    are ``(4, nf)``: lower-side diagonal (``2r`` Dirichlet), lower-side constant (``2 r g`` or
    ``dt q / h``), then the same for the upper side. Every term already carries the factor dt.
    """
    nf, nz, ny, nx = u.shape
    for task in prange(nf * nz * ny):
        f = task // (nz * ny)
        rem = task - f * nz * ny
        z = rem // ny
        y = rem - z * ny
        uc = u[f, z, y]
        out = d[f, z, y]
        sk = sink[f, z, y]
        dl = dt * lam[f]
        for x in range(nx):
            out[x] = -(dl + dt * sk[x]) * uc[x]
        _add_lane_terms(out, uc, u, f, z, y, nx, ny, ry[f],
                        (by[0, f], by[1, f], by[2, f], by[3, f]))
        if nz > 1 or bz[0, f] != 0.0 or bz[1, f] != 0.0 or bz[2, f] != 0.0 or bz[3, f] != 0.0:
            _add_plane_terms(out, uc, u, f, z, y, nx, nz, rz[f],
                             (bz[0, f], bz[1, f], bz[2, f], bz[3, f]))
        r = rx[f]
        if nx == 1:
            out[0] += bx[1, f] - bx[0, f] * uc[0] + bx[3, f] - bx[2, f] * uc[0]
        else:
            for x in range(1, nx - 1):
                out[x] += r * ((uc[x - 1] - uc[x]) + (uc[x + 1] - uc[x]))
            out[0] += r * (uc[1] - uc[0]) + bx[1, f] - bx[0, f] * uc[0]
            out[nx - 1] += r * (uc[nx - 2] - uc[nx - 1]) + bx[3, f] - bx[2, f] * uc[nx - 1]


@kernel
def _add_lane_terms(out, uc, u, f, z, y, nx, ny, r, bnd):
    """Add the y-axis terms of row ``y`` (constant coefficients; ``bnd`` is the lower diagonal,
    lower constant, upper diagonal and upper constant of the domain faces)."""
    loc, lob, hic, hib = bnd
    if y > 0:
        up = u[f, z, y - 1]
        for x in range(nx):
            out[x] += r * (up[x] - uc[x])
    else:
        for x in range(nx):
            out[x] += lob - loc * uc[x]
    if y < ny - 1:
        dn = u[f, z, y + 1]
        for x in range(nx):
            out[x] += r * (dn[x] - uc[x])
    else:
        for x in range(nx):
            out[x] += hib - hic * uc[x]


@kernel
def _add_plane_terms(out, uc, u, f, z, y, nx, nz, r, bnd):
    """Add the z-axis terms of row ``(z, y)`` (constant coefficients; ``bnd`` as in
    :func:`_add_lane_terms`)."""
    loc, lob, hic, hib = bnd
    if z > 0:
        up = u[f, z - 1, y]
        for x in range(nx):
            out[x] += r * (up[x] - uc[x])
    else:
        for x in range(nx):
            out[x] += lob - loc * uc[x]
    if z < nz - 1:
        dn = u[f, z + 1, y]
        for x in range(nx):
            out[x] += r * (dn[x] - uc[x])
    else:
        for x in range(nx):
            out[x] += hib - hic * uc[x]


@kernel(parallel=True)
def douglas_residual_var(u, d, sink, free, kf, faces, dt, lam, rates, bounds):
    """``d = dt (A u + b)`` with face factors ``faces = (gx, gy, gz)``, each ``(nz, ny, nx)``,
    voxel factor ``kf``, per-field rates ``rates = (rx, ry, rz)`` and boundary terms
    ``bounds = (bx, by, bz)``.

    ``g*[.., i]`` conducts between voxel ``i`` and ``i + 1`` along its axis (0 beyond the last).
    ``b*`` are ``(6, nf)``: lower diagonal coefficient, lower Dirichlet constant (both multiplied
    by ``kf`` of the boundary voxel), lower Neumann constant, then the upper side. Identity rows
    (``free == 0``: held or masked voxels) get ``d = 0``.
    """
    gx = faces[0]
    gy = faces[1]
    gz = faces[2]
    rx = rates[0]
    ry = rates[1]
    rz = rates[2]
    bx = bounds[0]
    by = bounds[1]
    bz = bounds[2]
    nf, nz, ny, nx = u.shape
    for task in prange(nf * nz * ny):
        f = task // (nz * ny)
        rem = task - f * nz * ny
        z = rem // ny
        y = rem - z * ny
        uc = u[f, z, y]
        out = d[f, z, y]
        sk = sink[f, z, y]
        kr = kf[z, y]
        dl = dt * lam[f]
        for x in range(nx):
            out[x] = -(dl + dt * sk[x]) * uc[x]
        r = ry[f]
        if y > 0:
            up = u[f, z, y - 1]
            gl = gy[z, y - 1]
            for x in range(nx):
                out[x] += r * gl[x] * (up[x] - uc[x])
        else:
            for x in range(nx):
                out[x] += kr[x] * (by[1, f] - by[0, f] * uc[x]) + by[2, f]
        if y < ny - 1:
            dn = u[f, z, y + 1]
            gh = gy[z, y]
            for x in range(nx):
                out[x] += r * gh[x] * (dn[x] - uc[x])
        else:
            for x in range(nx):
                out[x] += kr[x] * (by[4, f] - by[3, f] * uc[x]) + by[5, f]
        zb = bz[0, f] != 0.0 or bz[1, f] != 0.0 or bz[2, f] != 0.0
        if nz > 1 or zb or bz[3, f] != 0.0 or bz[4, f] != 0.0 or bz[5, f] != 0.0:
            r = rz[f]
            if z > 0:
                up = u[f, z - 1, y]
                gl = gz[z - 1, y]
                for x in range(nx):
                    out[x] += r * gl[x] * (up[x] - uc[x])
            else:
                for x in range(nx):
                    out[x] += kr[x] * (bz[1, f] - bz[0, f] * uc[x]) + bz[2, f]
            if z < nz - 1:
                dn = u[f, z + 1, y]
                gh = gz[z, y]
                for x in range(nx):
                    out[x] += r * gh[x] * (dn[x] - uc[x])
            else:
                for x in range(nx):
                    out[x] += kr[x] * (bz[4, f] - bz[3, f] * uc[x]) + bz[5, f]
        r = rx[f]
        g = gx[z, y]
        for x in range(nx - 1):
            flux = r * g[x] * (uc[x + 1] - uc[x])
            out[x] += flux
            out[x + 1] -= flux
        out[0] += kr[0] * (bx[1, f] - bx[0, f] * uc[0]) + bx[2, f]
        out[nx - 1] += kr[nx - 1] * (bx[4, f] - bx[3, f] * uc[nx - 1]) + bx[5, f]
        fr = free[f, z, y]
        for x in range(nx):
            out[x] *= fr[x]


@kernel
def _lanes_sink(a, sk, x0, x1, dtf, bdiag, rf, cp):
    """Solve ``(diag + dt sk) d - r (d_{i-1} + d_{i+1}) = a`` along axis 0 for lanes ``x0:x1``.

    ``bdiag[i]`` is the diagonal of row ``i`` without the sink (constant coefficients).
    """
    n = a.shape[0]
    w = x1 - x0
    u0 = a[0, x0:x1]
    s0 = sk[0, x0:x1]
    c0 = cp[0]
    b0 = bdiag[0]
    for x in range(w):
        inv = 1.0 / (b0 + dtf * s0[x])
        c0[x] = -rf * inv
        u0[x] = u0[x] * inv
    for i in range(1, n):
        cur = a[i, x0:x1]
        prv = a[i - 1, x0:x1]
        si = sk[i, x0:x1]
        cprev = cp[i - 1]
        ccur = cp[i]
        bi = bdiag[i]
        for x in range(w):
            inv = 1.0 / (bi + dtf * si[x] + rf * cprev[x])
            ccur[x] = -rf * inv
            cur[x] = (cur[x] + rf * prv[x]) * inv
    for i in range(n - 2, -1, -1):
        cur = a[i, x0:x1]
        nxt = a[i + 1, x0:x1]
        ci = cp[i]
        for x in range(w):
            cur[x] -= ci[x] * nxt[x]


@kernel(parallel=True)
def douglas_sweep_y(d, sink, dt, r, bdiag, cpy, invy):
    """First Douglas factor along y with the per-voxel sink (constant coefficients).

    ``d``, ``sink`` are ``(nf, nz, ny, nx)``; ``bdiag`` ``(nf, ny)`` is ``1 + dt lam`` plus the
    Laplacian and Dirichlet-side diagonal of each row. A block of lanes without any sink uses
    the precomputed Thomas factors ``cpy``, ``invy`` ``(nf, ny)`` of the same system (no
    divisions); the other blocks eliminate on the fly.
    """
    nf, nz, ny, nx = d.shape
    nb = (nx + BLOCK - 1) // BLOCK
    for task in prange(nf * nz * nb):
        f = task // (nz * nb)
        rem = task - f * nz * nb
        z = rem // nb
        b = rem - z * nb
        x0 = b * BLOCK
        x1 = min(nx, x0 + BLOCK)
        sk = sink[f, z]
        has = False
        for i in range(ny):
            row = sk[i, x0:x1]
            for x in range(x1 - x0):
                if row[x] != 0.0:
                    has = True
                    break
            if has:
                break
        if has:
            cp = np.empty((ny, x1 - x0), dtype=d.dtype)
            _lanes_sink(d[f, z], sk, x0, x1, dt, bdiag[f], r[f], cp)
        else:
            _lanes_const(d[f, z], x0, x1, r[f], cpy[f], invy[f], 0.0, 0.0)


@kernel
def _lanes_sink_var(a, sk, g, kf, fr, x0, x1, dtf, rf, d0, diag, cp):
    """Variable-coefficient twin of :func:`_lanes_sink` (see :func:`_lanes_var`), zero rhs terms;
    ``diag`` is the boundary diagonal terms ``(lo_c, hi_c)`` of the first and last row."""
    lo_c, hi_c = diag
    n = a.shape[0]
    w = x1 - x0
    for i in range(n):
        cur = a[i, x0:x1]
        si = sk[i, x0:x1]
        ghi_ = g[i, x0:x1]
        ki = kf[i, x0:x1]
        fi = fr[i, x0:x1]
        ccur = cp[i]
        hc = (hi_c if i == n - 1 else 0.0) + (lo_c if i == 0 else 0.0)
        if i == 0:
            for x in range(w):
                fx = fi[x]
                ghi = rf * ghi_[x]
                b = fx * (d0 + dtf * si[x] + ghi + hc * ki[x]) + (1.0 - fx)
                inv = 1.0 / b
                ccur[x] = -ghi * fx * inv
                cur[x] = cur[x] * inv
        else:
            prv = a[i - 1, x0:x1]
            glo_ = g[i - 1, x0:x1]
            cprev = cp[i - 1]
            for x in range(w):
                fx = fi[x]
                glo = rf * glo_[x]
                ghi = rf * ghi_[x]
                b = fx * (d0 + dtf * si[x] + glo + ghi + hc * ki[x]) + (1.0 - fx)
                glo = glo * fx
                inv = 1.0 / (b + glo * cprev[x])
                ccur[x] = -ghi * fx * inv
                cur[x] = (cur[x] + glo * prv[x]) * inv
    for i in range(n - 2, -1, -1):
        cur = a[i, x0:x1]
        nxt = a[i + 1, x0:x1]
        ci = cp[i]
        for x in range(w):
            cur[x] -= ci[x] * nxt[x]


@kernel(parallel=True)
def douglas_sweep_y_var(d, sink, g, kf, free, dt, r, d0, lo_c, hi_c):
    """Variable-coefficient first Douglas factor along y (``g``, ``kf`` are ``(nz, ny, nx)``)."""
    nf, nz, ny, nx = d.shape
    nb = (nx + BLOCK - 1) // BLOCK
    for task in prange(nf * nz * nb):
        f = task // (nz * nb)
        rem = task - f * nz * nb
        z = rem // nb
        b = rem - z * nb
        x0 = b * BLOCK
        x1 = min(nx, x0 + BLOCK)
        cp = np.empty((ny, x1 - x0), dtype=d.dtype)
        _lanes_sink_var(
            d[f, z], sink[f, z], g[z], kf[z], free[f, z], x0, x1, dt, r[f], d0[f],
            (lo_c[f], hi_c[f]), cp,
        )  # fmt: skip


@kernel(parallel=True)
def douglas_add(u, d):
    """``u += d`` (rows in parallel)."""
    nf, nz, ny, nx = u.shape
    for task in prange(nf * nz * ny):
        f = task // (nz * ny)
        rem = task - f * nz * ny
        z = rem // ny
        y = rem - z * ny
        a = u[f, z, y]
        b = d[f, z, y]
        for x in range(nx):
            a[x] += b[x]


@kernel(parallel=True)
def douglas_negative_rows(u, d, flags):
    """``flags[row] = 1`` where some ``u + d < 0`` in that ``(f, z, y)`` row, else 0."""
    nf, nz, ny, nx = u.shape
    for task in prange(nf * nz * ny):
        f = task // (nz * ny)
        rem = task - f * nz * ny
        z = rem // ny
        y = rem - z * ny
        a = u[f, z, y]
        b = d[f, z, y]
        bad = 0
        for x in range(nx):
            if a[x] + b[x] < 0.0:
                bad = 1
        flags[task] = bad


# ---------------------------------------------------------------------- factored variable path
# With a mask, diffusivity factors or held voxels, the Thomas factors of every line depend on
# the geometry, which changes only where the tissue changes. ``all_line_factors`` computes them
# once (per field and axis, for the lines that changed, from the first changed position on) into
# two arrays shaped like the field:
#
#     inv_i = 1 / (b_i - l_i c_{i-1})   (0 on an identity row),
#     add_i = (boundary right-hand side of row i) inv_i   (the held value on an identity row),
#
# where ``b_i`` is the row's diagonal and ``l_i = r g_{i-1}``, ``h_i = r g_i`` its lower and upper
# face conductances (``g`` the face factors, shared by every field; ``r`` the field's
# ``D dt / h**2``), ``c_i = h_i inv_i``. A sweep is then
#
#     forward:  u_i <- u_i inv_i + add_i + (r g_{i-1} inv_i) u_{i-1}
#     backward: u_i <- u_i + (r g_i inv_i) u_{i+1}
#
# the elimination of ``_lanes_var`` without a division; an identity row (held or masked voxel)
# is set to its value by the forward pass and left alone by the backward one.
#: index of each factor in the first axis of a factor array
F_INV, F_ADD = 0, 1


@kernel(parallel=True)
def sweep_fac_x(u, fac, g, r, src, sink, dt):
    """Factored sweep along x of every row, after the local terms ``u <- (u + dt src) / (1 + dt
    sink)`` (``src``/``sink`` shaped like ``u``, or empty to skip them). ``fac`` is ``(2, nf, nz,
    ny, nx)``, ``g`` the x face factors ``(nz, ny, nx)``, ``r`` per field. The products off the
    recurrence's chain are formed first, so each step of the chain is one multiply-add."""
    nf, nz, ny, nx = u.shape
    local = src.size > 0
    for task in prange(nf * nz * ny):
        f = task // (nz * ny)
        rem = task - f * nz * ny
        z = rem // ny
        y = rem - z * ny
        rf = r[f]
        row = u[f, z, y]
        inv = fac[F_INV, f, z, y]
        add = fac[F_ADD, f, z, y]
        gg = g[z, y]
        if local:
            s = src[f, z, y]
            k = sink[f, z, y]
            for i in range(nx):
                row[i] = (row[i] + dt * s[i]) / (1.0 + dt * k[i])
        pv = row[0] * inv[0] + add[0]
        row[0] = pv
        for i in range(1, nx):
            pv = row[i] * inv[i] + add[i] + (rf * gg[i - 1] * inv[i]) * pv
            row[i] = pv
        for i in range(nx - 2, -1, -1):
            pv = row[i] + (rf * gg[i] * inv[i]) * pv
            row[i] = pv


@kernel(parallel=True)
def sweep_fac_lanes(v, fac, g, r, per):
    """Factored sweep along axis 1 of ``v[p, n, m]`` (lanes along ``m``); ``fac`` is
    ``(2, p, n, m)``, ``g`` the face factors along the axis ``(q, n, m)`` and field ``f = p //
    per`` uses ``g[p - f * per]`` and ``r[f]``. The y sweep passes ``(nf*nz, ny, nx)`` views
    (``per = nz``), the z sweep ``(nf, nz, ny*nx)`` (``per = 1``)."""
    npl, n, m = v.shape
    nb = (m + BLOCK - 1) // BLOCK
    for task in prange(npl * nb):
        pl = task // nb
        x0 = (task - pl * nb) * BLOCK
        x1 = min(m, x0 + BLOCK)
        f = pl // per
        rf = r[f]
        a = v[pl]
        gg = g[pl - f * per]
        inv = fac[F_INV, pl]
        add = fac[F_ADD, pl]
        for x in range(x0, x1):
            a[0, x] = a[0, x] * inv[0, x] + add[0, x]
        for i in range(1, n):
            for x in range(x0, x1):
                a[i, x] = (a[i, x] * inv[i, x] + add[i, x]
                           + rf * gg[i - 1, x] * inv[i, x] * a[i - 1, x])
        for i in range(n - 2, -1, -1):
            for x in range(x0, x1):
                a[i, x] = a[i, x] + rf * gg[i, x] * inv[i, x] * a[i + 1, x]


@kernel
def line_factors(g, kf, fr, hold, rf, d0, bt, out, start, stop):
    """Factors of one line at positions ``start <= i < stop``: ``g``, ``kf``, ``fr``, ``hold``
    1-D along the line (``g[i]``: the face after voxel ``i``; ``hold`` the value of an identity
    row; read at ``start - 1 <= i < stop``); ``bt`` the six boundary terms of the axis (lo diag,
    lo rhs-Dirichlet, lo flux, hi diag, hi rhs-Dirichlet, hi flux); ``out`` ``(2, n)`` holding
    the factors before ``start`` (the elimination at ``start`` needs only ``c_{start-1} = r
    g_{start-1} inv_{start-1}``)."""
    n = g.shape[0]
    cprev = rf * g[start - 1] * out[F_INV, start - 1] if start > 0 else 0.0
    for i in range(start, stop):
        if fr[i] == 0.0:
            out[F_INV, i] = 0.0
            out[F_ADD, i] = hold[i]
            cprev = 0.0
            continue
        glo = rf * g[i - 1] if i > 0 else 0.0
        ghi = rf * g[i] if i < n - 1 else 0.0
        diag = d0 + glo + ghi
        rhs = 0.0
        if i == 0:
            diag += bt[0] * kf[i]
            rhs += bt[1] * kf[i] + bt[2]
        if i == n - 1:
            diag += bt[3] * kf[i]
            rhs += bt[4] * kf[i] + bt[5]
        inv = 1.0 / (diag - glo * cprev)
        out[F_INV, i] = inv
        out[F_ADD, i] = rhs * inv
        cprev = ghi * inv


@kernel(exact=True)
def changed_faces(changed, kf, nz, ny, nx, nd, faces, g):
    """The faces of the voxels ``changed`` (flat, ascending) along each axis and their
    conductances, the harmonic mean ``2 a b / (a + b)`` of the factors ``kf`` (flat) either
    side (0 where both are 0). A face is named by the voxel before it along its axis (x, y, z).

    ``faces`` and ``g`` ``(nd, 2 * changed.size)`` receive, row by row, the faces in ascending
    order without repeats; returns the count per axis (``nd`` int64). Division stays a
    division (``exact``), so the values are those of the same expression in numpy.
    """
    m = changed.size
    out = np.zeros(nd, dtype=np.int64)
    shape = (nx, ny, nz)
    cand = np.empty(2 * m, dtype=np.int64)
    for a in range(nd):
        stride = 1 if a == 0 else (nx if a == 1 else ny * nx)
        n = shape[a]
        k = 0
        for t in range(m):
            v = changed[t]
            p = (v // stride) % n
            if p < n - 1:
                cand[k] = v
                k += 1
            if p > 0:
                cand[k] = v - stride
                k += 1
        cand[:k].sort()
        c = 0
        for t in range(k):
            f = cand[t]
            if c > 0 and faces[a, c - 1] == f:
                continue
            faces[a, c] = f
            lo = kf[f]
            hi = kf[f + stride]
            den = lo + hi
            g[a, c] = 2.0 * lo * hi / den if den > 0 else 0.0
            c += 1
        out[a] = c
    return out


@kernel
def all_line_factors(g, kf, free, hold, r, d0, bt, fac, voxels, every_line):
    """Factors of every field along every axis, of every line (``every_line``) or of the lines
    through the flat ``voxels``. A change at positions ``p_first..p_last`` of a line leaves the
    factors before ``p_first - 1`` as they are (the face ``p - 1 | p`` enters row ``p - 1``),
    and those from the first identity row after ``p_last`` on too (the elimination restarts at
    an identity row: held or masked voxels cut a line into independent pieces), so only that
    stretch is recomputed, field by field.

    ``g`` ``(nd, nz, ny, nx)`` face factors per axis (x, y, z); ``kf`` ``(nz, ny, nx)``;
    ``free``, ``hold`` ``(nf, nz, ny, nx)``; ``r``, ``d0`` ``(nd, nf)``; ``bt`` ``(nd, nf, 6)``
    boundary terms; ``fac`` ``(nd, 2, nf, nz, ny, nx)``.
    """
    nd = g.shape[0]
    nf, nz, ny, nx = free.shape
    shape = (nx, ny, nz)
    stride = (1, nx, ny * nx)
    gf = g.reshape(nd, -1)
    kff = kf.reshape(-1)
    frf = free.reshape(nf, -1)
    hof = hold.reshape(nf, -1)
    nvox = nz * ny * nx
    facr = fac.reshape(nd, 2, nf, nvox)
    for a in range(nd):
        n = shape[a]
        st = stride[a]
        # lines named by their first voxel, each with the first and last position to recompute
        if every_line:
            bases = np.empty(nvox // n, dtype=np.int64)
            k = 0
            for v in range(nvox):
                if (v // st) % n == 0:
                    bases[k] = v
                    k += 1
            first = np.zeros(bases.size, dtype=np.int64)
            last = np.full(bases.size, n - 1, dtype=np.int64)
        else:
            keys = np.empty(voxels.size, dtype=np.int64)
            pos = np.empty(voxels.size, dtype=np.int64)
            for t in range(voxels.size):
                v = voxels[t]
                p = (v // st) % n
                keys[t] = v - p * st
                pos[t] = p
            order = np.argsort(keys)
            bases = np.empty(voxels.size, dtype=np.int64)
            first = np.empty(voxels.size, dtype=np.int64)
            last = np.empty(voxels.size, dtype=np.int64)
            k = -1
            for t in order:
                if k < 0 or bases[k] != keys[t]:
                    k += 1
                    bases[k] = keys[t]
                    first[k] = max(pos[t] - 1, 0)
                    last[k] = pos[t]
                else:
                    first[k] = min(first[k], max(pos[t] - 1, 0))
                    last[k] = max(last[k], pos[t])
            bases = bases[: k + 1]
            first = first[: k + 1]
            last = last[: k + 1]
        gl = np.empty(n)
        kl = np.empty(n)
        fl = np.empty(n)
        hl = np.empty(n)
        out = np.empty((2, n))
        for t in range(bases.size):
            base = bases[t]
            s0 = first[t]
            lo = max(s0 - 1, 0)
            for f in range(nf):
                # the first identity row after the last change ends the stretch
                stop = last[t] + 1
                while stop < n and frf[f, base + stop * st] != 0.0:
                    stop += 1
                for i in range(lo, stop):
                    w = base + i * st
                    gl[i] = gf[a, w]
                    kl[i] = kff[w]
                    fl[i] = frf[f, w]
                    hl[i] = hof[f, w]
                    out[0, i] = facr[a, 0, f, w]
                line_factors(gl, kl, fl, hl, r[a, f], d0[a, f], bt[a, f], out, s0, stop)
                for i in range(s0, stop):
                    w = base + i * st
                    facr[a, 0, f, w] = out[0, i]
                    facr[a, 1, f, w] = out[1, i]
