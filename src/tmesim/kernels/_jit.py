"""The one JIT policy applied to every tmesim kernel.

Every ``@njit`` function in :mod:`tmesim.kernels` is compiled through :func:`kernel`, so caching,
fast-math flags and parallelism are decided here and nowhere else.

Policy
------
cache
    Always on: compiled machine code is stored next to the module (or under ``NUMBA_CACHE_DIR``)
    so a second process loads it instead of compiling.
fastmath
    ``{"nsz", "arcp", "contract", "afn"}``: no ``nnan``/``ninf`` (the NaN guards must keep working)
    and no ``reassoc`` (reductions must not depend on vectorisation or thread count).
parallel
    Kernels declared ``parallel=True`` use ``prange`` over independent lines or cells. Setting the
    environment variable ``TMESIM_PARALLEL=0`` before import compiles them serially instead. Results
    are identical either way: no parallel loop reduces into shared state.
"""

from __future__ import annotations

import os

import numba

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})
PARALLEL = os.environ.get("TMESIM_PARALLEL", "1") not in ("0", "false", "no")


def kernel(fn=None, *, parallel: bool = False):
    """Compile ``fn`` with tmesim's JIT policy.

    Use ``@kernel`` for serial kernels and ``@kernel(parallel=True)`` for kernels with ``prange``.
    """

    def wrap(f):
        return numba.njit(
            cache=True, fastmath=set(FASTMATH), parallel=bool(parallel and PARALLEL), nogil=True
        )(f)

    if fn is not None:
        return wrap(fn)
    return wrap
