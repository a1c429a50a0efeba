"""The 14-day baseline run, this revision against an earlier one, side by side.

    python benchmarks/bench_versus.py [--against fe1d381] [--hours 336] [--repeat 3]
                                      [--scenario scenarios/baseline.yaml]

Checks out ``--against`` into a temporary git worktree and runs ``tmesim run
scenarios/baseline.yaml`` of each revision (its own code and its own scenario file) in fresh
processes with the same interpreter and packages, alternating the two so that both see the same
machine, with ``NUMBA_NUM_THREADS`` 1 and 2. Each revision's kernel cache is filled by an
untimed short run first. Prints the median (min-max) wall time of each and the speed-up.
``--scenario`` runs another scenario file of this revision against the older revision's
baseline (e.g. ``scenarios/stem_paradox.yaml``, this revision's engine with the older cell
rules, for a like-for-like figure once the baseline's biology has changed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(src: Path, out: Path, threads: int, hours: float | None,
        scenario: str = "scenarios/baseline.yaml") -> float:  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(src / "src"), NUMBA_NUM_THREADS=str(threads))
    env.pop("TMESIM_THREADS", None)
    cmd = [sys.executable, "-m", "tmesim", "run", scenario, "-o", str(out),
           "--overwrite", "-q"]  # fmt: skip
    if hours is not None:
        cmd += ["--set", f"time.duration_h={hours}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=src, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def load1() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="fe1d381")
    ap.add_argument("--hours", type=float, default=None, help="default: the scenario's 14 days")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenario", default="scenarios/baseline.yaml",
                    help="scenario file of this revision (the older one runs its baseline)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against],
                       check=True, cwd=ROOT, capture_output=True)  # fmt: skip
        try:
            out = Path(tmp) / "r.h5"
            for src in (ROOT, old):
                run(src, out, 2, 1.0)
            print(f"baseline{'' if args.hours is None else f' ({args.hours:g} h)'}: this "
                  f"revision ({args.scenario}) against {args.against} (its baseline), wall "
                  f"time of `tmesim run` (s), median (min-max) of {args.repeat}")  # fmt: skip
            print(f"| threads | {args.against} | this revision | speed-up | load before/after |")
            print("|---:|---:|---:|---:|---|")
            for threads in (1, 2):
                t = {"new": [], "old": []}
                l0 = load1()
                for _ in range(args.repeat):
                    t["old"].append(run(old, out, threads, args.hours))
                    t["new"].append(run(ROOT, out, threads, args.hours, args.scenario))
                l1 = load1()

                def fmt(xs):
                    return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"

                ratio = statistics.median(t["old"]) / statistics.median(t["new"])
                print(f"| {threads} | {fmt(t['old'])} | {fmt(t['new'])} | {ratio:.2f}x | "
                      f"{l0:.1f}/{l1:.1f} |")  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           capture_output=True)  # fmt: skip


if __name__ == "__main__":
    main()
