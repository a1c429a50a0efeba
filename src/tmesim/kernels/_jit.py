"""The one JIT policy applied to every tmesim kernel.

Every ``@njit`` function in :mod:`tmesim.kernels` is compiled through :func:`kernel`, so caching,
fast-math flags and parallelism are decided here and nowhere else.

Policy
------
cache
    Always on: compiled machine code is stored on disk so a second process loads it instead of
    compiling. The cache lives in ``kernels-<digest>`` under ``TMESIM_CACHE_DIR`` (else
    ``NUMBA_CACHE_DIR``, else ``~/.cache/tmesim``), where the digest covers every kernel source
    file, the numba version and this policy. Numba keys its cache on the calling function's own
    file only, so a change to a helper in another kernel module would otherwise reuse stale
    machine code; any change to any kernel file here gives a fresh directory instead.
fastmath
    ``{"nsz", "arcp", "contract", "afn"}``: no ``nnan``/``ninf`` (the NaN guards must keep working)
    and no ``reassoc`` (reductions must not depend on vectorisation or thread count).
    ``@kernel(exact=True)`` also drops ``contract`` and ``arcp`` (``FASTMATH_EXACT``): where
    multiply-adds may be fused depends on inlining, which differed between a kernel compiled in
    the running process and the same kernel loaded from the cache, by the last bits of the
    implicit solver's results; its stopping test can turn that into a different iteration count.
    The implicit solver's kernels use it.
parallel
    Kernels declared ``parallel=True`` use ``prange`` over independent lines or cells. Setting the
    environment variable ``TMESIM_PARALLEL=0`` before import compiles them serially instead. Results
    are identical either way: no parallel loop reduces into shared state.
threads
    :func:`set_threads` (``tmesim run --threads N``, or the environment variable
    ``TMESIM_THREADS``) sets how many threads the parallel kernels use; the default is Numba's
    (one per core). The OpenMP threads that wait between parallel regions sleep instead of
    spinning (``OMP_WAIT_POLICY=PASSIVE`` unless set otherwise): on a machine that also runs
    other work, spinning threads take the cores the working ones need and a two-thread run
    became several times slower than a one-thread run (benchmarks/RESULTS.md, "Threads under
    load"). :class:`threads_at_most` runs a block on fewer threads where parallel regions are
    too short to pay for waking a thread (the cell kernels below 30,000 cells).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

# before any OpenMP runtime is loaded (Numba loads it at the first parallel kernel call)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})
#: kernels whose results steer an iteration (the implicit solver's stopping test): no fused
#: multiply-adds and no reciprocals, which LLVM applies differently in a kernel compiled in the
#: running process and in the same kernel loaded from the cache
FASTMATH_EXACT = FASTMATH - {"arcp", "contract"}
PARALLEL = os.environ.get("TMESIM_PARALLEL", "1") not in ("0", "false", "no")


def source_digest(folder: Path = Path(__file__).parent) -> str:
    """Digest of every kernel source file, the numba version and the JIT policy."""
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(numba.__version__.encode())
    h.update(repr((sorted(FASTMATH), sorted(FASTMATH_EXACT), PARALLEL)).encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """Where compiled kernels are cached (see the module docstring)."""
    base = os.environ.get("TMESIM_CACHE_DIR") or os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = os.path.join(xdg, "tmesim")
    return Path(base) / f"kernels-{source_digest()}"


def _use_cache_dir() -> None:
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # not writable: numba's default location next to the sources is used
    numba.config.CACHE_DIR = str(path)


_use_cache_dir()


def kernel(fn=None, *, parallel: bool = False, exact: bool = False):
    """Compile ``fn`` with tmesim's JIT policy.

    Use ``@kernel`` for serial kernels and ``@kernel(parallel=True)`` for kernels with ``prange``;
    ``exact=True`` for kernels whose results steer an iteration (``FASTMATH_EXACT``).
    """
    flags = FASTMATH_EXACT if exact else FASTMATH

    def wrap(f):
        return numba.njit(
            cache=True, fastmath=set(flags), parallel=bool(parallel and PARALLEL), nogil=True
        )(f)

    if fn is not None:
        return wrap(fn)
    return wrap


def max_threads() -> int:
    """The most threads the parallel kernels can use in this process (``NUMBA_NUM_THREADS``)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads in the parallel kernels (``None``: ``TMESIM_THREADS`` if set, else
    leave Numba's default); return the number in use. Raises ``ValueError`` for ``n < 1`` or
    more than :func:`max_threads`."""
    if n is None:
        env = os.environ.get("TMESIM_THREADS", "").strip()
        if not env:
            return numba.get_num_threads()
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"TMESIM_THREADS must be a whole number, got {env!r}") from None
    n = int(n)
    if not 1 <= n <= max_threads():
        raise ValueError(f"threads must be between 1 and {max_threads()} on this machine, got {n}")
    numba.set_num_threads(n)
    return n


class threads_at_most:
    """Context manager: run the parallel kernels with at most ``n`` threads inside the block
    (the setting is per thread; results do not depend on it). Short parallel regions cost more
    than they save when a waiting thread must first be woken (``OMP_WAIT_POLICY=PASSIVE``)."""

    def __init__(self, n: int):
        self.n = max(1, int(n))
        self.saved = None

    def __enter__(self):
        self.saved = numba.get_num_threads()
        if self.n < self.saved:
            numba.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self.saved)
        return False

