"""Cost per cell of tmesim's tumour/stem rules against a plain-Mesa reference.

Run from the repository root::

    python benchmarks/bench_cells.py [--quick]

Initial state: a dense disc of N cells (the N lattice sites nearest the centre, 1 % of them
stem-like, the rest tumour cells with ``max_divisions`` left) on a square lattice with room to
grow. Oxygen is uniform at 38 mmHg (above every threshold) and the cell parameters are the
packaged defaults with ``dt = 6 min``.

* tmesim: ``tumor_step`` + ``CellPopulation.compact`` called exactly as ``TMEModel.cell_rules``
  does, with 1 and 2 Numba threads (two copies of the state, stepped alternately so background
  load hits both alike). Kernels are compiled (or loaded from the cache) before timing.
* Mesa: ``benchmarks/mesa_reference.py`` (one ``CellAgent`` per cell, ``shuffle_do``) on the same
  initial state at 10^4 cells, a few steps.
* Reported: the median over timed steps of (step time / cells alive at the start of the step),
  in ns per cell per step; bytes of state per cell; peak RSS of a fresh process that builds 10^6
  cells and runs a few steps (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np

from tmesim.cells import CellPopulation
from tmesim.kernels import codes
from tmesim.kernels.tumor import tumor_step, visiting_order

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

DT_H = 0.1  # 6 min agent step (packaged default)
OXYGEN_MMHG = 38.0
SEED = 12345
STEM_FRACTION = 0.01

#: the packaged defaults of cells.tumor / cells.stem (src/tmesim/scenario/schema.py)
PARAMS = {
    "division_rate_per_h": 1 / 24,
    "migration_rate_per_h": 10 / 24,
    "death_at_division": 0.01,
    "symmetric_division_prob": 0.3,
    "max_divisions": 10,
    "hypoxia_mmHg": 10.0,
    "necrosis_mmHg": 5.0,
    "necrosis_max_mmHg": 2.5,
    "necrosis_max_per_h": 1 / 6,
    "lysis_h": 1440.0,
}

#: (cells, lattice side) per size
SIZES = {10_000: 200, 100_000: 500, 1_000_000: 1500}


# --------------------------------------------------------------------------- initial state
def dense_disc(n: int, side: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Flat sites of the ``n`` lattice sites nearest the centre, and a stem-like mask (1 %)."""
    if n > side * side:
        raise ValueError(f"{n} cells do not fit on {side}x{side}")
    y, x = np.divmod(np.arange(side * side, dtype=np.int64), side)
    c = (side - 1) / 2.0
    d2 = (x - c) ** 2 + (y - c) ** 2
    sites = np.sort(np.lexsort((np.arange(side * side), d2))[:n])
    rng = np.random.default_rng(seed)
    stem = np.zeros(n, dtype=bool)
    stem[rng.choice(n, size=max(1, round(n * STEM_FRACTION)), replace=False)] = True
    return sites, stem


class TmesimCells:
    """A CellPopulation plus the per-kind parameter arrays, stepped like TMEModel.cell_rules."""

    def __init__(self, sites: np.ndarray, stem: np.ndarray, side: int) -> None:
        self.cells = CellPopulation((1, side, side), capacity=len(sites))
        self.cells.add(codes.STEM, sites[stem], 0)
        self.cells.add(codes.TUMOR, sites[~stem], PARAMS["max_divisions"])
        self.oxygen = np.full(side * side, OXYGEN_MMHG)
        self.shape = np.array((1, side, side), dtype=np.int64)
        self.p = {}
        for name, value in PARAMS.items():
            dtype = np.int32 if name == "max_divisions" else np.float64
            arr = np.zeros(codes.N_KINDS, dtype=dtype)
            arr[codes.TUMOR] = value
            arr[codes.STEM] = value
            self.p[name] = arr
        self.p["death_at_division"][codes.STEM] = 0.0
        self.p["symmetric_division_prob"][codes.TUMOR] = 0.0
        self.p["max_divisions"][codes.STEM] = 0
        self.steps = 0

    def step(self) -> None:
        cells, p = self.cells, self.p
        cells.reserve(2 * cells.n + 1)
        cells.n, cells.next_id = tumor_step(
            cells.n,
            cells.column("id"),
            cells.column("parent"),
            cells.column("generation"),
            cells.column("divisions_left"),
            cells.column("clock_h"),
            cells.kind,
            cells.state,
            cells.site,
            cells.occ,
            self.oxygen,
            self.shape,
            p["division_rate_per_h"],
            p["migration_rate_per_h"],
            p["death_at_division"],
            p["symmetric_division_prob"],
            p["max_divisions"],
            p["hypoxia_mmHg"],
            p["necrosis_mmHg"],
            p["necrosis_max_mmHg"],
            p["necrosis_max_per_h"],
            p["lysis_h"],
            DT_H,
            SEED,
            self.steps,
            cells.next_id,
        )
        cells.compact()
        self.steps += 1


def mesa_model(sites: np.ndarray, stem: np.ndarray, side: int):
    """The plain-Mesa reference on the same initial state and parameters."""
    from mesa_reference import TumorCSCModel, per_step

    y, x = np.divmod(sites, side)
    xy = np.column_stack((x, y)).tolist()
    return TumorCSCModel(
        width=side,
        height=side,
        p_div=per_step(PARAMS["division_rate_per_h"], DT_H),
        p_mig=per_step(PARAMS["migration_rate_per_h"], DT_H),
        p_death=PARAMS["death_at_division"],
        p_symmetric=PARAMS["symmetric_division_prob"],
        max_divisions=PARAMS["max_divisions"],
        oxygen_mmHg=OXYGEN_MMHG,
        hypoxia_mmHg=PARAMS["hypoxia_mmHg"],
        necrosis_mmHg=PARAMS["necrosis_mmHg"],
        necrosis_max_mmHg=PARAMS["necrosis_max_mmHg"],
        p_necrosis_max=per_step(PARAMS["necrosis_max_per_h"], DT_H),
        lysis_steps=math.ceil(PARAMS["lysis_h"] / DT_H),
        stem_cells=[xy[i] for i in np.flatnonzero(stem)],
        tumor_cells=[xy[i] for i in np.flatnonzero(~stem)],
        rng=SEED,
    )


# --------------------------------------------------------------------------- timing
def timed_step(step, count) -> float:
    """ns per cell of one call of ``step``; ``count()`` gives the cells alive before it."""
    n = count()
    t0 = time.perf_counter()
    step()
    return (time.perf_counter() - t0) * 1e9 / n


def bench_tmesim(n: int, side: int, steps: int) -> dict:
    """Median ns/cell/step with 1 and 2 threads, plus a breakdown of one kernel step."""
    sites, stem = dense_disc(n, side)
    pops = {1: TmesimCells(sites, stem, side), 2: TmesimCells(sites, stem, side)}
    samples = {1: [], 2: []}
    for t, pop in pops.items():  # one untimed step each (page faults of the first reserve)
        numba.set_num_threads(t)
        pop.step()
    for _ in range(steps):
        for t, pop in pops.items():
            numba.set_num_threads(t)
            samples[t].append(timed_step(pop.step, lambda pop=pop: pop.cells.n))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    # breakdown on a copy of the state: visiting order alone, compaction alone
    pop = pops[1]
    c = pop.cells
    order_ns, compact_ns = [], []
    for k in range(max(3, steps // 2)):
        t0 = time.perf_counter()
        visiting_order(c.n, c.column("id"), SEED, 1000 + k)
        order_ns.append((time.perf_counter() - t0) * 1e9 / c.n)
        t0 = time.perf_counter()
        c.compact()  # nothing to remove: the pass over all rows and the occ refresh
        compact_ns.append((time.perf_counter() - t0) * 1e9 / c.n)
    return {
        "n": n,
        "side": side,
        "ns": {t: statistics.median(s) for t, s in samples.items()},
        "ns_min": {t: min(s) for t, s in samples.items()},
        "ns_max": {t: max(s) for t, s in samples.items()},
        "order_ns": statistics.median(order_ns),
        "compact_ns": statistics.median(compact_ns),
        "n_final": pops[1].cells.n,
        "nbytes_per_cell": pops[1].cells.nbytes_per_cell,
    }


def bench_mesa(n: int, side: int, steps: int) -> dict:
    sites, stem = dense_disc(n, side)
    t0 = time.perf_counter()
    model = mesa_model(sites, stem, side)
    build_s = time.perf_counter() - t0
    model.step()  # warm-up (first touch of the cached neighbourhoods)
    samples = [timed_step(model.step, lambda: len(model.agents)) for _ in range(steps)]
    return {
        "n": n,
        "side": side,
        "ns": statistics.median(samples),
        "ns_min": min(samples),
        "ns_max": max(samples),
        "build_s": build_s,
        "n_final": len(model.agents),
    }


# --------------------------------------------------------------------------- memory
def proc_status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB (0 if unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_child(n: int, side: int, steps: int) -> None:
    """Run in a fresh process: build ``n`` cells, step, print peak RSS as JSON."""
    after_import = proc_status_kib("VmRSS")
    sites, stem = dense_disc(n, side)
    pop = TmesimCells(sites, stem, side)
    del sites, stem
    for _ in range(steps):
        pop.step()
    print(
        json.dumps(
            {
                "n": n,
                "side": side,
                "steps": steps,
                "n_final": pop.cells.n,
                "capacity": pop.cells._cap,
                "rss_after_import_kib": after_import,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "vm_hwm_kib": proc_status_kib("VmHWM"),
                "kernel_cache_hits": int(sum(tumor_step.stats.cache_hits.values())),
            }
        )
    )


def measure_memory(n: int, side: int, steps: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child"]
    out = subprocess.run(
        [*cmd, str(n), str(side), str(steps)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_ns(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def report(tm: list[dict], me: dict, mem: list[dict], args) -> str:
    ref = next(r for r in tm if r["n"] == me["n"])
    speedup = {t: me["ns"] / ref["ns"][t] for t in (1, 2)}
    lines = [
        f"Machine: {os.cpu_count()} cores (`nproc` {len(os.sched_getaffinity(0))}), "
        f"{cpu_model()}; Python {platform.python_version()}, numba {numba.__version__}, "
        f"numpy {np.__version__}, mesa {__import__('mesa').__version__}. "
        f"Uniform oxygen {OXYGEN_MMHG:g} mmHg, dt {DT_H * 60:g} min, packaged cell defaults, "
        f"seed {SEED}.",
        "",
        "| cells | lattice | tmesim 1 thread (ns/cell/step) | tmesim 2 threads | "
        "of which visiting order | compaction | plain Mesa (ns/cell/step) | speed-up | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in tm:
        mesa_cell = sp = "—"
        if r["n"] == me["n"]:
            mesa_cell = f"{fmt_ns(me['ns'])} ({fmt_ns(me['ns_min'])}–{fmt_ns(me['ns_max'])})"
            sp = f"{speedup[1]:,.0f}× (1 t) / {speedup[2]:,.0f}× (2 t)"
        target = "≥ 300× vs Mesa" if r["n"] == me["n"] else "flat ns/cell"
        lines.append(
            f"| {r['n']:,} | {r['side']}² | {fmt_ns(r['ns'][1])} "
            f"({fmt_ns(r['ns_min'][1])}–{fmt_ns(r['ns_max'][1])}) | {fmt_ns(r['ns'][2])} "
            f"({fmt_ns(r['ns_min'][2])}–{fmt_ns(r['ns_max'][2])}) | {fmt_ns(r['order_ns'])} | "
            f"{fmt_ns(r['compact_ns'])} | {mesa_cell} | {sp} | {target} |"
        )
    lo = min(r["ns"][1] for r in tm)
    hi = max(r["ns"][1] for r in tm)
    lines += [
        "",
        "| quantity | value | target |",
        "|---|---:|---|",
        f"| cost linearity (1 thread, max/min ns/cell/step over sizes) | {hi / lo:.2f} | "
        "≈ 1 (flat) |",
        f"| speed-up over plain Mesa at {me['n']:,} cells (1 thread) | {speedup[1]:,.0f}× | "
        "≥ 300× |",
        f"| bytes of state per cell (`CellPopulation.nbytes_per_cell`) | "
        f"{tm[0]['nbytes_per_cell']} | ≤ 64 |",
    ]
    for m in mem:
        label = "full lattice" if m["n"] == m["side"] ** 2 else "dense disc"
        lines.append(
            f"| peak RSS, fresh process, {m['n']:,} cells on {m['side']}² ({label}), "
            f"{m['steps']} steps | {m['peak_rss_kib'] / 1024:,.0f} MiB "
            f"(VmHWM {m['vm_hwm_kib'] / 1024:,.0f} MiB; after imports "
            f"{m['rss_after_import_kib'] / 1024:,.0f} MiB; row capacity "
            f"{m['capacity']:,}) | < 1024 MiB |"
        )
    lines += [
        f"| plain Mesa model construction, {me['n']:,} cells on {me['side']}² | "
        f"{me['build_s']:.1f} s | — |",
    ]
    steps = f"{args.steps_small}/{args.steps_mid}/{args.steps_large}"
    lines += [
        "",
        f"tmesim: median of {steps} timed steps (10^4/10^5/10^6) after one untimed step, range in "
        f"brackets; Mesa: median of {args.mesa_steps} steps after one warm-up step. "
        'The "visiting order" and "compaction" columns time those parts alone '
        "(hash + argsort of the cell ids; a compaction pass with nothing to remove).",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4 and 10^5 cells, fewer steps")
    ap.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    sizes = dict(SIZES)
    if args.quick:
        sizes.pop(1_000_000)
        args.steps_small, args.steps_mid, args.steps_large, args.mesa_steps = 10, 5, 3, 2
    else:
        args.steps_small, args.steps_mid, args.steps_large, args.mesa_steps = 30, 15, 7, 5
    per_size = {10_000: args.steps_small, 100_000: args.steps_mid, 1_000_000: args.steps_large}

    # peak memory first: Linux keeps ru_maxrss across fork + exec, so a child spawned after
    # this process has grown would report this process's size, not its own
    mem_runs = (
        [(1_000_000, 1000, 3)] if args.quick else [(1_000_000, 1000, 3), (1_000_000, 1500, 3)]
    )
    mem = []
    for n, side, steps in mem_runs:
        m = measure_memory(n, side, steps)
        print(
            f"memory {n:,} cells on {side}²: peak RSS {m['peak_rss_kib'] / 1024:.0f} MiB",
            flush=True,
        )
        mem.append(m)

    # compile (or load from the cache) every kernel on a small population
    t0 = time.perf_counter()
    warm = TmesimCells(*dense_disc(500, 50), 50)
    for _ in range(3):
        warm.step()
    visiting_order(warm.cells.n, warm.cells.column("id"), SEED, 0)
    print(f"warm-up (compile or cache load): {time.perf_counter() - t0:.2f} s", flush=True)

    tm = []
    for n, side in sizes.items():
        r = bench_tmesim(n, side, per_size[n])
        print(
            f"tmesim {n:>9,} cells on {side}²: {r['ns'][1]:.1f} ns/cell/step (1 thread), "
            f"{r['ns'][2]:.1f} (2 threads); order {r['order_ns']:.1f}, compact "
            f"{r['compact_ns']:.1f}; cells after: {r['n_final']:,}",
            flush=True,
        )
        tm.append(r)

    me = bench_mesa(10_000, SIZES[10_000], args.mesa_steps)
    print(
        f"mesa   {me['n']:>9,} cells on {me['side']}²: {me['ns']:.0f} ns/cell/step "
        f"(build {me['build_s']:.1f} s); cells after: {me['n_final']:,}",
        flush=True,
    )

    print()
    print(report(tm, me, mem, args))


if __name__ == "__main__":
    main()
