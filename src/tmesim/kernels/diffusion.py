"""Locally one-dimensional (LOD) implicit diffusion-decay sweeps.

The field set is one C-contiguous array ``u[f, z, y, x]`` (2-D runs have ``nz == 1``). One
diffusion step of length ``dt`` applies, axis by axis, the backward-Euler system

    (1 + dt*lam/ndim) u_i - r (u_{i-1} - 2 u_i + u_{i+1}) = u_i_old,   r = D dt / dx**2,

on cell-centred voxels. Boundaries sit on the voxel faces, half a voxel outside the first and
last centres: a Dirichlet value ``g`` adds ``2 r`` to the boundary diagonal and ``2 r g`` to the
right-hand side; a Neumann influx ``q`` (amount per um**2 per min entering the domain) adds
``dt q / dx`` to the right-hand side; zero flux adds nothing. The tridiagonal systems are solved
by the Thomas algorithm with forward-elimination factors precomputed once per field and axis
(:func:`thomas_factors`). The y and z sweeps walk whole rows at a time so the inner loop runs
over contiguous x and vectorises; lines are independent, so ``prange`` gives the same bits for
any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel

#: columns handled together in the y and z sweeps (one parallel task)
BLOCK = 64


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


@kernel(parallel=True)
def sweep_x(u, r, cp, inv, lo_rhs, hi_rhs):
    """Implicit sweep along x for every field: ``cp``, ``inv`` are ``(nf, nx)``."""
    nf, nz, ny, nx = u.shape
    for line in prange(nf * nz * ny):
        f = line // (nz * ny)
        rem = line - f * nz * ny
        z = rem // ny
        y = rem - z * ny
        row = u[f, z, y]
        rf = r[f]
        row[0] += lo_rhs[f]
        row[nx - 1] += hi_rhs[f]
        prev = row[0] * inv[f, 0]
        row[0] = prev
        for i in range(1, nx):
            prev = (row[i] + rf * prev) * inv[f, i]
            row[i] = prev
        for i in range(nx - 2, -1, -1):
            row[i] -= cp[f, i] * row[i + 1]


@kernel(parallel=True)
def sweep_y(u, r, cp, inv, lo_rhs, hi_rhs):
    """Implicit sweep along y for every field, ``BLOCK`` columns of x at a time."""
    nf, nz, ny, nx = u.shape
    nb = (nx + BLOCK - 1) // BLOCK
    for task in prange(nf * nz * nb):
        f = task // (nz * nb)
        rem = task - f * nz * nb
        z = rem // nb
        b = rem - z * nb
        x0 = b * BLOCK
        x1 = min(nx, x0 + BLOCK)
        plane = u[f, z]
        rf = r[f]
        lo = lo_rhs[f]
        hi = hi_rhs[f]
        for x in range(x0, x1):
            plane[0, x] += lo
        for x in range(x0, x1):
            plane[ny - 1, x] += hi
        c0 = inv[f, 0]
        for x in range(x0, x1):
            plane[0, x] *= c0
        for i in range(1, ny):
            ci = inv[f, i]
            for x in range(x0, x1):
                plane[i, x] = (plane[i, x] + rf * plane[i - 1, x]) * ci
        for i in range(ny - 2, -1, -1):
            ci = cp[f, i]
            for x in range(x0, x1):
                plane[i, x] -= ci * plane[i + 1, x]


@kernel(parallel=True)
def sweep_z(u, r, cp, inv, lo_rhs, hi_rhs):
    """Implicit sweep along z for every field, ``BLOCK`` columns of x at a time."""
    nf, nz, ny, nx = u.shape
    nb = (nx + BLOCK - 1) // BLOCK
    for task in prange(nf * ny * nb):
        f = task // (ny * nb)
        rem = task - f * ny * nb
        y = rem // nb
        b = rem - y * nb
        x0 = b * BLOCK
        x1 = min(nx, x0 + BLOCK)
        vol = u[f]
        rf = r[f]
        lo = lo_rhs[f]
        hi = hi_rhs[f]
        for x in range(x0, x1):
            vol[0, y, x] += lo
        for x in range(x0, x1):
            vol[nz - 1, y, x] += hi
        c0 = inv[f, 0]
        for x in range(x0, x1):
            vol[0, y, x] *= c0
        for k in range(1, nz):
            ck = inv[f, k]
            for x in range(x0, x1):
                vol[k, y, x] = (vol[k, y, x] + rf * vol[k - 1, y, x]) * ck
        for k in range(nz - 2, -1, -1):
            ck = cp[f, k]
            for x in range(x0, x1):
                vol[k, y, x] -= ck * vol[k + 1, y, x]


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
    """Return the flat index of the first NaN, infinite or negative value, or -1."""
    flat = u.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        if not (v >= 0.0) or v == np.inf:
            return i
    return -1
