"""Cost per cell of tmesim's cell phase against a plain-Mesa reference.

Run from the repository root::

    python benchmarks/bench_cells.py [--quick]

What is timed: one cell phase of a step, :meth:`tmesim.behaviour.CellDynamics.step`, the exact
call ``TMEModel.cell_rules`` makes (the breakdown times the parts of that same call through its
``lap`` hook). It runs the census of kinds, the parallel cancer decide
kernel (PD-L1 relaxation included; the T-cell, macrophage and fibroblast kernels are skipped,
since the census finds no such cells), the serial ``apply_actions``, the arrival step
(recruitment set to zero, so it is skipped) and the compaction.

Initial state: a dense disc of N cells (the N lattice sites nearest the centre; 1 % stem-like,
the rest tumour cells with ``max_divisions`` left) on a square 2-D lattice with room to grow.
Every packaged field is present; oxygen is uniform at 38 mmHg (above every threshold), the
others are at their initial values. Cell parameters are the packaged defaults, ``dt = 6 min``,
except that T-cell and macrophage recruitment are switched off so that, like the Mesa
reference, only tumour and stem-like cells exist.

* tmesim with 1 and 2 Numba threads (``numba.set_num_threads``): two copies of the state,
  stepped alternately so background load hits both alike. Kernels are compiled (or loaded from
  the disk cache) on a small population first; the first step of each copy is not timed.
* Mesa: ``benchmarks/mesa_reference.py`` (one ``CellAgent`` per cell, ``shuffle_do``) with the
  same initial state and per-step probabilities at 10^4 cells, in the same process.
* Reported: the median over timed steps of (step time / cells alive at the start of the step)
  in ns per cell per step; a per-kernel breakdown of the tmesim phase; bytes of state per cell;
  peak RSS of a fresh process that builds 10^6 cells on 1000 x 1000 and runs a few steps; the
  load average before and after.
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

from tmesim.behaviour import CellDynamics
from tmesim.cells import CellPopulation
from tmesim.fields import FieldSet
from tmesim.kernels import cancer as kc
from tmesim.kernels import codes
from tmesim.scenario import scenario_from_dict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

OXYGEN_MMHG = 38.0
SEED = 12345
STEM_FRACTION = 0.01

#: (cells, lattice side) per size
SIZES = {10_000: 200, 100_000: 500, 1_000_000: 1500}


def scenario(side: int):
    """Packaged defaults on a ``side`` x ``side`` lattice, no initial cells, no recruitment."""
    pairs = [("domain.shape", [side, side]), ("seed", SEED)]
    for kind in ("tumor", "stem", "tcell", "macrophage", "fibroblast"):
        pairs.append((f"cells.{kind}.initial.count", 0))
    for kind in ("tcell", "macrophage"):
        pairs.append((f"cells.{kind}.recruitment.base_per_h", 0.0))
        pairs.append((f"cells.{kind}.recruitment.per_1000_tumor_per_h", 0.0))
    return scenario_from_dict(None, pairs, label="bench_cells")


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
    """A CellPopulation with its FieldSet and CellDynamics, stepped like TMEModel.cell_rules."""

    def __init__(self, sites: np.ndarray, stem: np.ndarray, side: int) -> None:
        self.sc = sc = scenario(side)
        self.fields = FieldSet.from_scenario(sc)
        self.fields.flat("oxygen")[:] = OXYGEN_MMHG
        self.cells = CellPopulation((1, side, side), capacity=len(sites))
        self.dyn = CellDynamics(sc, self.fields, self.cells)
        c = sc.cells
        self.cells.add(codes.STEM, sites[stem], 0)
        self.cells.add(codes.TUMOR, sites[~stem], c.tumor.max_divisions)
        kinds = self.cells.kind[: self.cells.n]
        self.cells.column("pdl1")[: self.cells.n] = np.where(
            kinds == codes.STEM, c.stem.pdl1_baseline, c.tumor.pdl1_baseline
        )
        self.dt_h = sc.time.dt_min / 60.0
        self.steps = 0

    def step(self) -> None:
        self.dyn.step(self.dt_h, self.steps, SEED)
        self.steps += 1

    def breakdown(self) -> dict[str, float]:
        """One step of :meth:`CellDynamics.step` with each of its parts timed (ns/cell)."""
        out = {}
        n0 = self.cells.n
        last = [time.perf_counter()]

        def lap(name: str) -> None:
            now = time.perf_counter()
            out[name] = now - last[0]
            last[0] = now

        self.dyn.step(self.dt_h, self.steps, SEED, lap=lap)
        self.steps += 1
        return {k: v * 1e9 / n0 for k, v in out.items()}


def mesa_model(sites: np.ndarray, stem: np.ndarray, side: int, draw_first: bool = False):
    """The plain-Mesa reference on the same initial state and per-step probabilities:
    ``shuffle_do`` (each cell sees the moves of those before it), or with ``draw_first`` the
    same order of events as tmesim (every cell decides on the step's starting state, then the
    intents are applied in a random order with a retry)."""
    from mesa_reference import DrawFirstTumorModel, TumorCSCModel, per_step

    sc = scenario(side)
    ct, cs = sc.cells.tumor, sc.cells.stem
    dt_h = sc.time.dt_min / 60.0
    y, x = np.divmod(sites, side)
    xy = np.column_stack((x, y)).tolist()
    return (DrawFirstTumorModel if draw_first else TumorCSCModel)(
        width=side,
        height=side,
        p_div=per_step(ct.division_rate_per_h, dt_h),
        p_mig=per_step(ct.migration_rate_per_h, dt_h),
        p_death=ct.death_at_division,
        p_symmetric=cs.symmetric_division_prob,
        max_divisions=ct.max_divisions,
        oxygen_mmHg=OXYGEN_MMHG,
        hypoxia_mmHg=ct.hypoxia_mmHg,
        necrosis_mmHg=ct.necrosis_mmHg,
        necrosis_max_mmHg=ct.necrosis_max_mmHg,
        p_necrosis_max=per_step(ct.necrosis_max_per_h, dt_h),
        lysis_steps=math.ceil(ct.lysis_h / dt_h),
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
    """Median ns/cell/step with 1 and 2 threads, plus a per-kernel breakdown."""
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
    parts = {}
    for t, pop in pops.items():
        numba.set_num_threads(t)
        runs = [pop.breakdown() for _ in range(3)]
        parts[t] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return {
        "n": n,
        "side": side,
        "ns": {t: statistics.median(s) for t, s in samples.items()},
        "ns_min": {t: min(s) for t, s in samples.items()},
        "ns_max": {t: max(s) for t, s in samples.items()},
        "parts": parts,
        "n_final": pops[1].cells.n,
        "nbytes_per_cell": pops[1].cells.nbytes_per_cell,
    }


def bench_mesa(n: int, side: int, steps: int, draw_first: bool = False) -> dict:
    """Mesa ns/cell/step, and the speed-up of tmesim measured pairwise: each timed Mesa step is
    followed by three timed tmesim steps per thread count on the same initial state, so a burst
    of background load falls on both sides of a ratio."""
    sites, stem = dense_disc(n, side)
    t0 = time.perf_counter()
    model = mesa_model(sites, stem, side, draw_first)
    build_s = time.perf_counter() - t0
    model.step()  # warm-up (first touch of the cached neighbourhoods)
    pops = {1: TmesimCells(sites, stem, side), 2: TmesimCells(sites, stem, side)}
    for t, pop in pops.items():
        numba.set_num_threads(t)
        pop.step()
    samples, ratios = [], {1: [], 2: []}
    for _ in range(steps):
        mesa_ns = timed_step(model.step, lambda: len(model.agents))
        samples.append(mesa_ns)
        for t, pop in pops.items():
            numba.set_num_threads(t)
            tm_ns = statistics.median(
                timed_step(pop.step, lambda pop=pop: pop.cells.n) for _ in range(3)
            )
            ratios[t].append(mesa_ns / tm_ns)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return {
        "n": n,
        "side": side,
        "ns": statistics.median(samples),
        "ns_min": min(samples),
        "ns_max": max(samples),
        "speedup": {t: statistics.median(r) for t, r in ratios.items()},
        "speedup_min": {t: min(r) for t, r in ratios.items()},
        "speedup_max": {t: max(r) for t, r in ratios.items()},
        "build_s": build_s,
        "n_final": len(model.agents),
        "label": "plain Mesa, draw-first order (as tmesim)" if draw_first
        else "plain Mesa, `shuffle_do`",
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
    built = proc_status_kib("VmRSS")
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
                "fields_mib": pop.fields.data.nbytes / 2**20,
                "rss_after_import_kib": after_import,
                "rss_built_kib": built,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "vm_hwm_kib": proc_status_kib("VmHWM"),
                "kernel_cache_hits": int(sum(kc.cancer_decide.stats.cache_hits.values())),
                # every allocation the population made: capacity slack, work arrays, lattice
                "bytes_per_live_cell": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        - after_import) * 1024 / max(pop.cells.n, 1),
                "bytes_per_live_cell_without_fields": (
                    (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - after_import) * 1024
                    - pop.fields.data.nbytes) / max(pop.cells.n, 1),
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


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def report(tm: list[dict], mes: list[dict], mem: list[dict], loads: list[str], args) -> str:
    me = mes[0]
    speedup = me["speedup"]
    lines = [
        f"Machine: {os.cpu_count()} cores (affinity {len(os.sched_getaffinity(0))}), "
        f"{cpu_model()}; Python {platform.python_version()}, numba {numba.__version__} "
        f"({numba.config.THREADING_LAYER} threading layer requested), numpy {np.__version__}, "
        f"mesa {__import__('mesa').__version__}. Load average (1/5/15 min) before, between and "
        f"after the parts: {'; '.join(loads)}.",
        "",
        "| cells | lattice | tmesim 1 thread (ns/cell/step) | tmesim 2 threads | "
        "plain Mesa (ns/cell/step) | speed-up | target |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in tm:
        mesa_cell = sp = "—"
        if r["n"] == me["n"]:
            mesa_cell = f"{fmt_ns(me['ns'])} ({fmt_ns(me['ns_min'])}–{fmt_ns(me['ns_max'])})"
            sp = (
                f"{speedup[1]:,.0f}× ({me['speedup_min'][1]:,.0f}–{me['speedup_max'][1]:,.0f}) "
                f"(1 t) / {speedup[2]:,.0f}× ({me['speedup_min'][2]:,.0f}–"
                f"{me['speedup_max'][2]:,.0f}) (2 t)"
            )
        target = "≥ 300× vs Mesa" if r["n"] == me["n"] else "flat ns/cell"
        lines.append(
            f"| {r['n']:,} | {r['side']}² | {fmt_ns(r['ns'][1])} "
            f"({fmt_ns(r['ns_min'][1])}–{fmt_ns(r['ns_max'][1])}) | {fmt_ns(r['ns'][2])} "
            f"({fmt_ns(r['ns_min'][2])}–{fmt_ns(r['ns_max'][2])}) | {mesa_cell} | {sp} | "
            f"{target} |"
        )
    lines += [
        "",
        f"Plain-Mesa references at {me['n']:,} cells (ns/cell/step, and tmesim's paired "
        "speed-up, 1 thread / 2 threads):",
        "",
        "| reference | ns/cell/step | speed-up 1 thread | speed-up 2 threads |",
        "|---|---:|---:|---:|",
    ]
    for m in mes:
        lines.append(
            f"| {m['label']} | {fmt_ns(m['ns'])} ({fmt_ns(m['ns_min'])}–{fmt_ns(m['ns_max'])}) "
            f"| {m['speedup'][1]:,.0f}× ({m['speedup_min'][1]:,.0f}–{m['speedup_max'][1]:,.0f}) "
            f"| {m['speedup'][2]:,.0f}× ({m['speedup_min'][2]:,.0f}–{m['speedup_max'][2]:,.0f}) |"
        )
    names = list(tm[0]["parts"][1])
    lines += [
        "",
        "Breakdown of one step, each kernel timed alone (ns/cell, median of 3 steps; "
        "1 thread / 2 threads):",
        "",
        "| part | " + " | ".join(f"{r['n']:,}" for r in tm) + " |",
        "|---|" + "---:|" * len(tm),
    ]
    for k in names:
        cells = [f"{fmt_ns(r['parts'][1][k])} / {fmt_ns(r['parts'][2][k])}" for r in tm]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lo = min(r["ns"][1] for r in tm)
    hi = max(r["ns"][1] for r in tm)
    lines += [
        "",
        "| quantity | value | target |",
        "|---|---:|---|",
        f"| speed-up over plain Mesa at {me['n']:,} cells, paired (1 thread / 2 threads) | "
        f"{speedup[1]:,.0f}× / {speedup[2]:,.0f}× | ≥ 300× |",
        f"| cost linearity (1 thread, max/min ns/cell/step over sizes) | {hi / lo:.2f} | "
        "≈ 1 (flat) |",
        f"| bytes of state per cell (`CellPopulation.nbytes_per_cell`) | "
        f"{tm[0]['nbytes_per_cell']} | ≤ 64 |",
    ]
    for m in mem:
        label = "full lattice" if m["n"] == m["side"] ** 2 else "dense disc"
        lines.append(
            f"| peak RSS, fresh process, {m['n']:,} cells on {m['side']}² ({label}), "
            f"{m['steps']} steps | {m['peak_rss_kib'] / 1024:,.0f} MiB "
            f"(after imports {m['rss_after_import_kib'] / 1024:,.0f} MiB; fields "
            f"{m['fields_mib']:,.0f} MiB; row capacity {m['capacity']:,}) | < 1024 MiB |"
        )
        lines.append(
            f"| memory per live cell, every allocation after imports (peak RSS growth / "
            f"{m['n_final']:,} live cells), with / without the field array | "
            f"{m['bytes_per_live_cell']:,.0f} B / {m['bytes_per_live_cell_without_fields']:,.0f} B "
            "| — |"
        )
    lines += [
        f"| plain Mesa model construction, {me['n']:,} cells on {me['side']}² | "
        f"{me['build_s']:.1f} s | — |",
    ]
    steps = f"{args.steps_small}/{args.steps_mid}/{args.steps_large}"
    lines += [
        "",
        f"tmesim: median of {steps} timed steps (10^4/10^5/10^6) after one untimed step, "
        f"min–max in brackets; Mesa: median of {args.mesa_steps} steps after one warm-up step. "
        "Speed-up: median (min–max) over those Mesa steps of the ratio of each Mesa step to the "
        "median of the three tmesim steps timed right after it.",
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

    loads = [load()]
    sizes = dict(SIZES)
    if args.quick:
        sizes.pop(1_000_000)
        args.steps_small, args.steps_mid, args.steps_large, args.mesa_steps = 10, 5, 3, 3
    else:
        args.steps_small, args.steps_mid, args.steps_large, args.mesa_steps = 30, 15, 7, 9
    per_size = {10_000: args.steps_small, 100_000: args.steps_mid, 1_000_000: args.steps_large}

    # peak memory first: Linux keeps ru_maxrss across fork + exec, so a child spawned after
    # this process has grown would report this process's size, not its own
    mem = []
    for n, side, steps in [(1_000_000, 1000, 3)]:
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
    warm.breakdown()
    print(f"warm-up (compile or cache load): {time.perf_counter() - t0:.2f} s", flush=True)

    tm = []
    for n, side in sizes.items():
        r = bench_tmesim(n, side, per_size[n])
        loads.append(load())
        print(
            f"tmesim {n:>9,} cells on {side}²: {r['ns'][1]:.1f} ns/cell/step (1 thread), "
            f"{r['ns'][2]:.1f} (2 threads); cells after: {r['n_final']:,}; load {loads[-1]}",
            flush=True,
        )
        tm.append(r)

    mes = []
    for draw_first in (True, False):
        me = bench_mesa(10_000, SIZES[10_000], args.mesa_steps, draw_first)
        loads.append(load())
        print(
            f"mesa   {me['n']:>9,} cells on {me['side']}² ({me['label']}): {me['ns']:.0f} "
            f"ns/cell/step (build {me['build_s']:.1f} s); cells after: {me['n_final']:,}; "
            f"load {loads[-1]}",
            flush=True,
        )
        mes.append(me)

    print()
    print(report(tm, mes, mem, loads, args))


if __name__ == "__main__":
    main()
