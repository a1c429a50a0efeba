"""Where replicates run: local worker processes, or Dask (a scheduler address or a local cluster).

Every executor calls the same function, :func:`run_replicate`, once per replicate, with a plain
dict describing it (picklable, and small: the resolved scenario travels as YAML text, so a remote
worker needs tmesim installed and the output folder shared, not the scenario files). A replicate
writes ``rep_<k>.h5.partial`` and renames it to ``rep_<k>.h5`` only when the run is complete, so a
finished file is never half-written and a killed run leaves nothing that looks finished.

Failures are returned as values (``status == "failed"`` with the error message), never raised, so
one failing replicate cannot lose the others.

Threads: a worker runs its replicate with ``NUMBA_NUM_THREADS`` (and the BLAS/OpenMP thread
variables) set to ``threads`` (default 1), so that K workers use K cores and do not
oversubscribe. The variables are set in the parent before worker processes start (they inherit
them); for workers started elsewhere (``dask worker`` on a cluster) :func:`run_replicate` also
calls ``numba.set_num_threads``.

Numba cache: the kernels are compiled with ``cache=True``, so a worker loads machine code from
the on-disk cache (next to the kernel sources, or under ``NUMBA_CACHE_DIR``) instead of
compiling. Workers on one machine share that cache safely; on a network file system give each
node its own ``NUMBA_CACHE_DIR`` on local disk (see docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import UsageError

#: environment variables that bound the threads of one worker
THREAD_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


#: protocols of a Dask scheduler address
SCHEDULER_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def partial_path(output) -> Path:
    """The temporary name a replicate is written under before it is complete."""
    from ..io.safe import partial_path as _partial

    return _partial(output)


def _limit_threads(threads: int) -> None:
    try:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    except Exception:
        pass


def run_replicate(task: dict) -> dict:
    """Run one replicate described by ``task``; return a result dict (never raises).

    ``task`` keys: ``group``, ``index``, ``seed``, ``scenario_yaml`` (the resolved scenario),
    ``output`` (final .h5 path), ``threads``. The result has ``group``, ``index``, ``seed``,
    ``output``, ``status`` ("complete" or "failed"), ``error`` (message or ""), ``wall_s``,
    ``pid`` and ``host``.
    """
    import socket

    t0 = time.perf_counter()
    out = Path(task["output"])
    tmp = partial_path(out)
    result = {
        "group": task["group"],
        "index": int(task["index"]),
        "seed": int(task["seed"]),
        "output": str(out),
        "status": "failed",
        "error": "",
        "wall_s": 0.0,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    try:
        _limit_threads(task.get("threads", 1))
        import yaml

        from ..runner import run
        from ..scenario import scenario_from_dict

        sc = scenario_from_dict(yaml.safe_load(task["scenario_yaml"]), label=task["group"], complete=True)
        run(sc, out, overwrite=True)  # writes out.partial, renamed to out when complete
        result["status"] = "complete"
    except BaseException as exc:
        msg = str(exc).strip() or type(exc).__name__
        result["error"] = f"{type(exc).__name__}: {msg}"
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, KeyboardInterrupt):
            raise
    result["wall_s"] = time.perf_counter() - t0
    return result


@contextlib.contextmanager
def worker_environment(threads: int):
    """Set the thread variables for worker processes started inside the block, then restore."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    try:
        for k in THREAD_VARS:
            os.environ[k] = str(int(threads))
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed(task: dict, message: str) -> dict:
    return {
        "group": task["group"],
        "index": int(task["index"]),
        "seed": int(task["seed"]),
        "output": str(task["output"]),
        "status": "failed",
        "error": message,
        "wall_s": 0.0,
        "pid": -1,
        "host": "",
    }


# --------------------------------------------------------------------------- this process
def run_inline(tasks: list[dict]) -> Iterator[dict]:
    """Run tasks one after another in this process; yield results as they finish.

    No worker start-up and no pickling: the cheapest choice for a few short replicates (the
    quick validation cases), at the price of one core and of sharing this process's memory.
    """
    for task in tasks:
        yield run_replicate(task)


# --------------------------------------------------------------------------- local processes
def run_local(tasks: list[dict], workers: int | None = None) -> Iterator[dict]:
    """Run tasks in a pool of 'spawn' worker processes; yield results as they finish."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if not tasks:
        return
    n = min(int(workers or os.cpu_count() or 1), len(tasks))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=n, mp_context=ctx, initializer=_watch_parent, initargs=(os.getpid(),)
    ) as pool:
        futures = {pool.submit(run_replicate, t): t for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except BrokenProcessPool:
                yield _failed(futures[fut], "worker process died (killed or out of memory)")
            except Exception as exc:
                yield _failed(futures[fut], f"{type(exc).__name__}: {exc}")


def _watch_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """In a worker: end this process when the parent that started it is gone (killed), so
    that no worker is left waiting for tasks forever."""
    import threading

    def watch():
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="tmesim-parent-watch", daemon=True).start()


# --------------------------------------------------------------------------- Dask
def _dask():
    try:
        from dask import distributed
    except ImportError:
        raise UsageError(
            "Dask is not installed, so --scheduler and --dask-local are unavailable\n"
            "  fix: pip install 'tmesim[cluster]' (or pip install 'dask[distributed]'), or use "
            "--workers K for local processes"
        ) from None
    return distributed


def run_dask(
    tasks: list[dict], *, scheduler: str | None = None, dask_local: int | None = None
) -> Iterator[dict]:
    """Run tasks on a Dask cluster: at ``scheduler``, or a local cluster of ``dask_local`` workers."""
    if not tasks:
        return
    distributed = _dask()
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(distributed.Client(scheduler, timeout="30s"))
            except OSError as exc:
                raise UsageError(
                    f"cannot connect to the Dask scheduler at {scheduler}: {exc}\n"
                    "  fix: start one with 'dask scheduler' and give its address, e.g. "
                    "--scheduler tcp://127.0.0.1:8786"
                ) from None
        else:
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=int(dask_local),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=50,
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        keys = [f"tmesim-{t['group']}-rep{t['index']}-{t['seed']}" for t in tasks]
        futures = client.map(run_replicate, tasks, key=keys, pure=False, retries=0)
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=False)}
        for fut in distributed.as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:
                yield _failed(by_key[fut.key], f"{type(exc).__name__}: {exc}")


def execute(
    tasks: Iterable[dict],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    threads: int = 1,
    on_result: Callable[[dict], None] | None = None,
    inline: bool = False,
) -> list[dict]:
    """Run ``tasks`` on the chosen executor; call ``on_result`` as each finishes; return all.

    ``inline=True`` (with no other executor chosen) runs them in this process, one at a time.
    """
    check_executor(workers, scheduler, dask_local)
    tasks = list(tasks)
    for t in tasks:
        t.setdefault("threads", threads)
    results = []
    here = inline and workers is None and not (scheduler or dask_local)
    # worker processes read the thread variables when they start; this process must not see
    # them change (Numba re-reads NUMBA_NUM_THREADS when it compiles and refuses a new value
    # once its threads run), so an inline run limits its threads with set_num_threads alone
    with contextlib.nullcontext() if here else worker_environment(threads):
        if here:
            it = run_inline(tasks)
        elif scheduler or dask_local:
            it = run_dask(tasks, scheduler=scheduler, dask_local=dask_local)
        else:
            it = run_local(tasks, workers)
        for res in it:
            results.append(res)
            if on_result is not None:
                on_result(res)
    return results


def check_executor(workers, scheduler, dask_local) -> None:
    """Raise a UsageError unless at most one executor is chosen, with sensible values."""
    chosen = [
        name
        for name, v in (
            ("--workers", workers),
            ("--scheduler", scheduler),
            ("--dask-local", dask_local),
        )
        if v is not None
    ]
    if len(chosen) > 1:
        raise UsageError(
            f"choose one executor, got {' and '.join(chosen)}\n"
            "  fix: pass only one of --workers K, --scheduler ADDRESS, --dask-local K"
        )
    for name, v in (("--workers", workers), ("--dask-local", dask_local)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise UsageError(f"{name} must be a positive integer, got {v!r}\n  fix: e.g. {name} 2")
    if scheduler is not None and not str(scheduler).strip():
        raise UsageError(
            "--scheduler needs an address\n  fix: e.g. --scheduler tcp://127.0.0.1:8786"
        )
    scheme = str(scheduler).partition("://")[0] if "://" in str(scheduler or "") else None
    if scheme is not None and scheme not in SCHEDULER_SCHEMES:
        raise UsageError(
            f"--scheduler {scheduler!r}: unknown protocol {scheme!r}\n"
            f"  fix: use one of {', '.join(s + '://' for s in SCHEDULER_SCHEMES)}, e.g. "
            "--scheduler tcp://127.0.0.1:8786"
        )
