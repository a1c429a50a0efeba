"""Slow, obviously-correct reference twins of the transport kernels.

Everything here is written as plain loops and dense linear solves in float64, straight from the
equations in docs/numerics.md, with no precomputed factors and no blocking. Tests compare the
Numba kernels against these functions.
"""

from __future__ import annotations

import math

import numpy as np

AXES = (("x", 3), ("y", 2), ("z", 1))  # name and axis of u[f, z, y, x]


def harmonic(a, b):
    """Face conductance factor between two voxels with diffusivity factors a and b."""
    if a <= 0.0 or b <= 0.0:
        return 0.0
    return 2.0 * a * b / (a + b)


def line_system(n, r, d0, kf, fixed, bc_lo, bc_hi, dt, h):
    """Dense matrix A and right-hand-side addition of one 1-D backward-Euler line.

    ``kf`` voxel diffusivity factors (0 = non-conducting), ``fixed`` identity rows,
    ``bc_lo``/``bc_hi``: None (no flux), ("dirichlet", value) or ("neumann", influx).
    """
    a = np.zeros((n, n))
    add = np.zeros(n)
    for i in range(n):
        if fixed[i]:
            a[i, i] = 1.0
            continue
        a[i, i] = d0
        if i > 0:
            w = r * harmonic(kf[i - 1], kf[i])
            a[i, i] += w
            a[i, i - 1] = -w
        if i < n - 1:
            w = r * harmonic(kf[i], kf[i + 1])
            a[i, i] += w
            a[i, i + 1] = -w
        for end, bc in ((0, bc_lo), (n - 1, bc_hi)):
            if i != end or bc is None:
                continue
            kind, val = bc
            if kind == "dirichlet":
                a[i, i] += 2.0 * r * kf[i]
                add[i] += 2.0 * r * kf[i] * val
            else:
                add[i] += dt * val / h
    return a, add


def lod_step(u, D, lam, dt, h, boundary, ndim, kf=None, fixed=None):
    """One LOD step (x, then y, then z) of ``u[f, z, y, x]`` computed line by line.

    ``D``, ``lam``: per-field lists; ``boundary``: per-field dicts side -> (kind, value);
    ``kf``: (nz, ny, nx) voxel diffusivity factor or None; ``fixed``: (nf, nz, ny, nx) bool of
    identity rows or None; ``ndim`` 2 (then nz == 1) or 3.
    """
    u = np.array(u, dtype=np.float64)
    nf, nz, ny, nx = u.shape
    if kf is None:
        kf = np.ones((nz, ny, nx))
    if fixed is None:
        fixed = np.zeros(u.shape, dtype=bool)
    for name, ax in AXES[:ndim]:
        for f in range(nf):
            r = D[f] * dt / h**2
            d0 = 1.0 + dt * lam[f] / ndim
            bc_lo = boundary[f].get(f"{name}_min")
            bc_hi = boundary[f].get(f"{name}_max")
            uf = np.moveaxis(u[f], ax - 1, -1)  # view, swept axis last
            kff = np.moveaxis(kf, ax - 1, -1)
            fxf = np.moveaxis(fixed[f], ax - 1, -1)
            n = uf.shape[-1]
            for i0 in range(uf.shape[0]):
                for i1 in range(uf.shape[1]):
                    a, add = line_system(n, r, d0, kff[i0, i1], fxf[i0, i1], bc_lo, bc_hi, dt, h)
                    uf[i0, i1] = np.linalg.solve(a, uf[i0, i1] + add)
    return u


def uptake(u, k, dt):
    """``u / (1 + dt k)`` voxel by voxel."""
    out = np.array(u, dtype=np.float64)
    flat = out.reshape(-1)
    kk = np.asarray(k, dtype=np.float64).reshape(-1)
    for i in range(flat.size):
        flat[i] = flat[i] / (1.0 + dt * kk[i])
    return out


def find_invalid(u):
    """Flat index of the first value that is NaN, infinite or negative, else -1."""
    flat = np.asarray(u).reshape(-1)
    for i in range(flat.size):
        v = float(flat[i])
        if math.isnan(v) or math.isinf(v) or v < 0.0:
            return i
    return -1


def cell_exchange(u, n, site, sec, target, upt, export, vol_ratio, vvox, internal, dt):
    """BioFVM cell update, one cell after another: returns new (u (nf, nvox), internal)."""
    u = np.array(u, dtype=np.float64)
    internal = np.array(internal, dtype=np.float64)
    for c in range(n):
        s = int(site[c])
        if s < 0:
            continue
        for f in range(u.shape[0]):
            rho = u[f, s]
            k = dt * vol_ratio[c]
            new = (rho + k * sec[c, f] * target[c, f]) / (1.0 + k * (sec[c, f] + upt[c, f]))
            new += dt * export[c, f] / vvox
            u[f, s] = new
            internal[c, f] += (rho - new) * vvox
    return u, internal


# ---------------------------------------------------------------------- Douglas ADI (dense)
def axis_operators(shape3, D, dt, h, boundary, ndim, kf=None, fixed=None):
    """Dense ``dt * L_axis`` (linear part) and ``dt * b_axis`` (boundary part) of one field.

    ``shape3`` is ``(nz, ny, nx)``; voxels are numbered in C order. Built from
    :func:`line_system` with ``d0 = 1``: ``dt L = I - a`` on ordinary rows, 0 on identity rows
    (``fixed``). Returns ``{name: (dtL, dtb)}`` for the active axes.
    """
    nz, ny, nx = shape3
    nv = nz * ny * nx
    if kf is None:
        kf = np.ones(shape3)
    if fixed is None:
        fixed = np.zeros(shape3, dtype=bool)
    idx = np.arange(nv).reshape(shape3)
    r = D * dt / h**2
    out = {}
    for name, ax in AXES[:ndim]:
        dtl = np.zeros((nv, nv))
        dtb = np.zeros(nv)
        ids = np.moveaxis(idx, ax - 1, -1)
        kff = np.moveaxis(kf, ax - 1, -1)
        fxf = np.moveaxis(fixed, ax - 1, -1)
        bc_lo = boundary.get(f"{name}_min")
        bc_hi = boundary.get(f"{name}_max")
        for i0 in range(ids.shape[0]):
            for i1 in range(ids.shape[1]):
                line = ids[i0, i1]
                a, add = line_system(
                    len(line), r, 1.0, kff[i0, i1], fxf[i0, i1], bc_lo, bc_hi, dt, h
                )
                blk = np.eye(len(line)) - a
                blk[fxf[i0, i1]] = 0.0
                add = np.where(fxf[i0, i1], 0.0, add)
                dtl[np.ix_(line, line)] = blk
                dtb[line] = add
        out[name] = (dtl, dtb)
    return out


def douglas_step(u, D, lam, dt, h, boundary, ndim, sink=None, kf=None, fixed=None):
    """One Douglas (theta = 1) ADI step of ``u[f, z, y, x]``, dense, in the non-delta form.

    With ``A1 = Ly - K`` (K = lam + sink, the first factor), ``A2 = Lx``, ``A3 = Lz`` and all
    boundary terms ``b``:

        (I - dt A1) v1 = u + dt (A2 + A3) u + dt b
        (I - dt A2) v2 = v1 - dt A2 u
        (I - dt A3) u' = v2 - dt A3 u

    Identity rows (``fixed``) keep their value. Arguments as in :func:`lod_step`.
    """
    u = np.array(u, dtype=np.float64)
    nf, nz, ny, nx = u.shape
    if fixed is None:
        fixed = np.zeros(u.shape, dtype=bool)
    if sink is None:
        sink = np.zeros(u.shape)
    nv = nz * ny * nx
    eye = np.eye(nv)
    for f in range(nf):
        ops = axis_operators((nz, ny, nx), D[f], dt, h, boundary[f], ndim, kf, fixed[f])
        free = ~fixed[f].reshape(-1)
        dtk = np.diag(dt * (lam[f] + np.asarray(sink[f], dtype=np.float64).reshape(-1)) * free)
        zero = np.zeros((nv, nv))
        ly, lx = ops["y"][0], ops["x"][0]
        lz = ops["z"][0] if ndim == 3 else zero
        b = sum(v[1] for v in ops.values())
        un = u[f].reshape(-1)
        v1 = np.linalg.solve(eye - (ly - dtk), un + (lx + lz) @ un + b)
        v2 = np.linalg.solve(eye - lx, v1 - lx @ un)
        u[f] = np.linalg.solve(eye - lz, v2 - lz @ un).reshape(nz, ny, nx)
    return u


def unsplit_operator(shape3, D, lam, h, boundary, ndim, sink=None, kf=None, fixed=None):
    """Dense ``A = L - K`` and ``b`` of one field's unsplit semi-discrete operator ``A u + b``.

    ``D``, ``lam``: scalars; ``boundary``: dict side -> (kind, value); ``sink`` (nz, ny, nx) or
    None; ``kf`` (nz, ny, nx) or None; ``fixed`` (nz, ny, nx) bool of identity rows or None.
    Identity rows of ``A`` and ``b`` are 0.
    """
    if fixed is None:
        fixed = np.zeros(shape3, dtype=bool)
    ops = axis_operators(shape3, D, 1.0, h, boundary, ndim, kf, fixed)  # dt = 1: dt L = L
    fx = fixed.reshape(-1)
    k = lam + (0.0 if sink is None else np.asarray(sink, dtype=np.float64).reshape(-1))
    a = sum(v[0] for v in ops.values()) - np.diag(np.where(fx, 0.0, k))
    b = sum(v[1] for v in ops.values())
    return a, b


def unsplit_residual(u, D, lam, h, boundary, ndim, sink=None, kf=None, fixed=None):
    """``(L - K) u + b`` of every field of ``u[f, z, y, x]`` (0 on identity rows).

    Arguments as in :func:`lod_step`; ``sink`` ``(nf, nz, ny, nx)`` or None.
    """
    u = np.asarray(u, dtype=np.float64)
    out = np.zeros(u.shape)
    for f in range(u.shape[0]):
        a, b = unsplit_operator(
            u.shape[1:], D[f], lam[f], h, boundary[f], ndim,
            None if sink is None else sink[f], kf, None if fixed is None else fixed[f],
        )  # fmt: skip
        out[f] = (a @ u[f].reshape(-1) + b).reshape(u.shape[1:])
    return out


def douglas_iteration_matrix(shape3, D, lam, dt, h, boundary, ndim, sink=None, kf=None, fixed=None):
    """Iteration matrix ``T = I + P^-1 dt A`` of the Douglas step of one field, on free rows.

    ``P = (I - dt (Ly - K)) (I - dt Lx) (I - dt Lz)``: a Douglas step maps the error
    ``e = u - u*`` to ``T e``, so the spectral radius of ``T`` is the asymptotic convergence rate
    per step towards the steady state. Arguments as in :func:`unsplit_operator`.
    """
    nz, ny, nx = shape3
    nv = nz * ny * nx
    if fixed is None:
        fixed = np.zeros(shape3, dtype=bool)
    ops = axis_operators(shape3, D, dt, h, boundary, ndim, kf, fixed)
    fx = fixed.reshape(-1)
    k = lam + (0.0 if sink is None else np.asarray(sink, dtype=np.float64).reshape(-1))
    dtk = np.diag(np.where(fx, 0.0, dt * k))
    eye = np.eye(nv)
    lz = ops["z"][0] if ndim == 3 else np.zeros((nv, nv))
    p = (eye - (ops["y"][0] - dtk)) @ (eye - ops["x"][0]) @ (eye - lz)
    t = eye + np.linalg.solve(p, ops["x"][0] + ops["y"][0] + lz - dtk)
    free = np.flatnonzero(~fx)
    return t[np.ix_(free, free)]


def steady_state(shape3, D, lam, h, boundary, ndim, sink=None, kf=None, fixed=None, held=None):
    """Steady state of the unsplit discrete operator, one dense direct solve per field.

    Solves ``(L - K) u + b = 0`` on ordinary rows and ``u = held`` on identity rows (``held``:
    ``(nf, nz, ny, nx)`` values, 0 where None). Returns ``(nf, nz, ny, nx)``.
    """
    nf = len(D)
    if fixed is None:
        fixed = np.zeros((nf, *shape3), dtype=bool)
    out = np.zeros((nf, *shape3))
    for f in range(nf):
        a, b = unsplit_operator(
            shape3, D[f], lam[f], h, boundary[f], ndim,
            None if sink is None else sink[f], kf, fixed[f],
        )  # fmt: skip
        fx = fixed[f].reshape(-1)
        ids = np.flatnonzero(fx)
        a[ids] = 0.0
        a[ids, ids] = 1.0
        rhs = -b
        if held is not None:
            rhs = np.where(fx, held[f].reshape(-1), rhs)
        else:
            rhs = np.where(fx, 0.0, rhs)
        out[f] = np.linalg.solve(a, rhs).reshape(shape3)
    return out


# ---------------------------------------------------------------------- implicit (dense)
def backward_euler_step(u, D, lam, dt, h, boundary, ndim, sink=None, kf=None, fixed=None):
    """One unsplit backward-Euler step of ``u[f, z, y, x]``, one dense direct solve per field.

    Solves ``(I - dt (L - K)) u' = u + dt b`` on ordinary rows (``K = lam + sink``) and keeps
    identity rows (``fixed``) at their value. Arguments as in :func:`lod_step`; ``sink``
    ``(nf, nz, ny, nx)`` or None.
    """
    u = np.array(u, dtype=np.float64)
    nf = u.shape[0]
    for f in range(nf):
        fx = np.zeros(u.shape[1:], dtype=bool) if fixed is None else fixed[f]
        a, b = unsplit_operator(
            u.shape[1:], D[f], lam[f], h, boundary[f], ndim,
            None if sink is None else sink[f], kf, fx,
        )  # fmt: skip
        m = np.eye(a.shape[0]) - dt * a
        rhs = u[f].reshape(-1) + dt * b
        ids = np.flatnonzero(fx.reshape(-1))
        m[ids] = 0.0
        m[ids, ids] = 1.0
        rhs[ids] = u[f].reshape(-1)[ids]
        u[f] = np.linalg.solve(m, rhs).reshape(u.shape[1:])
    return u


def fill_from_face_neighbours(data, sites, masked, shape3, rows):
    """Twin of kernels.lattice.fill_from_face_neighbours: each site's unmasked face neighbours,
    walked by geometry.face_neighbours (-z, +z, -y, +y, -x, +x), summed, then averaged."""
    from tmesim.geometry import face_neighbours

    total = np.zeros((data.shape[0], len(sites)))
    count = np.zeros(len(sites))
    for inside, nb in face_neighbours(sites, shape3):
        for j in range(len(sites)):
            if inside[j] and not masked[nb[j]]:
                total[:, j] += data[:, nb[j]]
                count[j] += 1
    for j, s in enumerate(sites):
        if count[j]:
            for r in rows:
                data[r, s] = total[r, j] / count[j]


def changed_faces(changed, kf, shape3, nd):
    """Per axis (x, y, z), the faces of the voxels ``changed`` (each named by the voxel before
    it along the axis, ascending, no repeats) and their conductances ``2 a b / (a + b)``
    (0 where both factors are 0), by plain loops over every voxel's two faces per axis."""
    nz, ny, nx = shape3
    flat = np.asarray(kf, dtype=np.float64).reshape(-1)
    out = []
    for stride, n in ((1, nx), (nx, ny), (ny * nx, nz))[:nd]:
        faces = set()
        for v in changed:
            p = (int(v) // stride) % n
            if p < n - 1:
                faces.add(int(v))
            if p > 0:
                faces.add(int(v) - stride)
        fs = sorted(faces)
        g = []
        for f in fs:
            lo, hi = float(flat[f]), float(flat[f + stride])
            g.append(2.0 * lo * hi / (lo + hi) if lo + hi > 0 else 0.0)
        out.append((np.array(fs, dtype=np.int64), np.array(g)))
    return out


def compact_system(free, g, kf, nd, rf, d0, bt):
    """The compact system of ``kernels.implicit.system``, built from its definition.

    The unknowns are the voxels with ``free != 0`` in C order. For every unknown and every face,
    visited per axis (x, y, z), lower side then upper side: an interior face conducts ``rf g``
    (``g`` of the face: the lower voxel's entry of ``g``) and adds it to the diagonal; a domain
    face adds its boundary terms ``bt[a, 3 side:3 side + 3]`` to the diagonal and the right-hand
    side instead. Then, in the face order x-1, y-1, z-1, x+1, y+1, z+1, a face to an unknown
    enters the lower/upper coefficient and ``coupled``, and a face to a voxel that is not an
    unknown is listed as a held neighbour (even with a zero coefficient). Returns the same
    tuple as the kernel."""
    nz, ny, nx = free.shape
    cells = [(z, y, x) for z in range(nz) for y in range(ny) for x in range(nx)
             if free[z, y, x] != 0]  # fmt: skip
    index = {c: i for i, c in enumerate(cells)}
    n = len(cells)
    size = (nx, ny, nz)
    flat = lambda z, y, x: (z * ny + y) * nx + x  # noqa: E731
    vox = np.array([flat(*c) for c in cells], dtype=np.int64)
    cl = np.zeros((nd, n))
    cu = np.zeros((nd, n))
    jl = np.full((nd - 1, n), n, dtype=np.int32)
    ju = np.full((nd - 1, n), n, dtype=np.int32)
    diag0 = np.zeros(n)
    bnd = np.zeros(n)
    coupled = np.zeros(n)
    kptr = [0]
    kvox, kcoef = [], []
    for i, (z, y, x) in enumerate(cells):
        pos = (x, y, z)
        faces = {}  # (axis, side) -> (coefficient, neighbour (z, y, x)) for interior faces
        d = d0
        b = 0.0
        for a in range(nd):
            for side in (0, 1):
                step = [0, 0, 0]
                step[a] = -1 if side == 0 else 1
                p = pos[a] + step[a]
                if 0 <= p < size[a]:
                    nb = (z + step[2], y + step[1], x + step[0])
                    face_owner = nb if side == 0 else (z, y, x)
                    c = rf * g[a][face_owner]
                    faces[a, side] = (c, nb)
                    d += c
                else:
                    d += bt[a, 3 * side] * kf[z, y, x]
                    b += bt[a, 3 * side + 1] * kf[z, y, x] + bt[a, 3 * side + 2]
        diag0[i] = d
        bnd[i] = b
        s = 0.0
        for side in (0, 1):
            for a in range(nd):
                if (a, side) not in faces:
                    continue
                c, nb = faces[a, side]
                if nb in index:
                    (cl if side == 0 else cu)[a, i] = c
                    if a > 0:
                        (jl if side == 0 else ju)[a - 1, i] = index[nb]
                    s += c
                else:
                    kvox.append(flat(*nb))
                    kcoef.append(c)
        coupled[i] = s
        kptr.append(len(kvox))
    return (vox, cl, cu, jl, ju, diag0, bnd, coupled, np.array(kptr, dtype=np.int64),
            np.array(kvox, dtype=np.int64), np.array(kcoef, dtype=np.float64))
