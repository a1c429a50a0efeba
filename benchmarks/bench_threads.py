"""Threads under load: a 2-thread run must not collapse when other processes use the cores.

Runs ``tmesim run`` of the baseline scenario (24 h by default) in a fresh process with 1 and 2
Numba threads, on an idle machine and with ``--busy`` processes spinning in the background (two
by default, the case of a 2-core machine shared with other work), under two OpenMP wait
policies: tmesim's default (``OMP_WAIT_POLICY=PASSIVE``: waiting threads sleep) and the OpenMP
runtime's own default (threads spin for a while before they sleep), which is what tmesim used
before. Reports the wall time of each run and the ratio of the 2-thread to the 1-thread time.

    python benchmarks/bench_threads.py [--hours 24] [--busy 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {
    "passive (tmesim default)": {"OMP_WAIT_POLICY": "PASSIVE"},
    "runtime default (spin, then sleep)": {"OMP_WAIT_POLICY": ""},
    "spin 10,000 then sleep": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"},
    "spin 100,000 then sleep": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "100000"},
}


def run_once(hours: float, threads: int, policy: dict, out: Path) -> float:
    env = dict(os.environ, **policy)
    env.pop("TMESIM_THREADS", None)
    cmd = [sys.executable, "-m", "tmesim", "run", str(ROOT / "scenarios" / "baseline.yaml"),
           "-o", str(out), "--overwrite", "-q", "--threads", str(threads),
           "--set", f"time.duration_h={hours}"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t0


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--busy", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.h5"
        run_once(1.0, 1, POLICIES["passive (tmesim default)"], out)  # warm the kernel cache
        rows = []
        for load in ("idle", f"{args.busy} busy processes"):
            procs = busy(args.busy) if load != "idle" else []
            try:
                for name, policy in POLICIES.items():
                    t = {}
                    for threads in (1, 2):
                        t[threads] = min(run_once(args.hours, threads, policy, out)
                                         for _ in range(args.repeat))  # fmt: skip
                    rows.append((load, name, t[1], t[2], t[2] / t[1]))
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    print(f"baseline, {args.hours:g} h, wall time of `tmesim run` (s), min of {args.repeat}")
    print("| machine | OpenMP wait policy | 1 thread | 2 threads | 2T / 1T |")
    print("|---|---|---:|---:|---:|")
    for load, name, t1, t2, ratio in rows:
        print(f"| {load} | {name} | {t1:.1f} | {t2:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
