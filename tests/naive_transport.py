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
