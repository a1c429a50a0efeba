"""Plain NumPy version of tmesim's LOD diffusion step, for comparison in the benchmark.

Same scheme, layout and precomputed Thomas factors as :mod:`tmesim.kernels.diffusion`, but the
recurrences run as NumPy operations vectorised over all lines of all fields at once (one
Python-level iteration per position along the swept axis).
"""

from __future__ import annotations

import numpy as np


def sweep(u: np.ndarray, axis: int, r, cp, inv, lo, hi) -> None:
    """Backward-Euler Thomas solve along ``axis`` (1: z, 2: y, 3: x) of ``u[f, z, y, x]``.

    ``r``, ``lo``, ``hi`` are per field ``(nf,)``; ``cp``, ``inv`` are ``(nf, n)``.
    """
    v = np.moveaxis(u, axis, 1)  # a view: (nf, n, ...)
    n = v.shape[1]
    extra = (slice(None),) + (None,) * (v.ndim - 2)
    rr = np.asarray(r)[extra]
    v[:, 0] += np.asarray(lo)[extra]
    v[:, n - 1] += np.asarray(hi)[extra]
    v[:, 0] *= inv[:, 0][extra]
    for i in range(1, n):
        v[:, i] += rr * v[:, i - 1]
        v[:, i] *= inv[:, i][extra]
    for i in range(n - 2, -1, -1):
        v[:, i] -= cp[:, i][extra] * v[:, i + 1]


def lod_step(u: np.ndarray, coeffs: dict) -> None:
    """One step: x, y (and z) sweeps; ``coeffs[name] = (r, cp, inv, lo, hi)`` as in FieldSet."""
    for name, axis in (("x", 3), ("y", 2), ("z", 1)):
        if name in coeffs:
            sweep(u, axis, *coeffs[name])
