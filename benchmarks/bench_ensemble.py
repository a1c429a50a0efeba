"""Replicates per minute of ``tmesim compare`` with 1 and 2 local worker processes.

Run from the repository root::

    python benchmarks/bench_ensemble.py [--replicates 8] [--duration-h 48] [--size 60]

Each configuration runs ``--replicates`` replicates of scenarios/tiny.yaml (on a ``--size``
square lattice, one scenario) into a fresh folder, through :func:`tmesim.ensemble.compare`, and reports wall time
end to end (pool start-up, kernel loading from the Numba disk cache, runs, summary, figure) and
replicates per minute. Every worker has one Numba thread. A warm-up run first fills the kernel
cache, so no configuration pays for compilation. It also prints the per-replicate wall times a
worker reports: the first replicate of a worker includes loading kernels from the cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tmesim.ensemble import compare

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.yaml"


def timed(workers: int, replicates: int, duration_h: float, size: int, base: Path, tag: str):
    sets = [f"time.duration_h={duration_h}", f"domain.shape=[{size},{size}]", "output.cells=false"]
    t0 = time.perf_counter()
    res = compare([TINY], replicates, base / tag, overrides=sets, workers=workers)
    wall = time.perf_counter() - t0
    assert not res.failed, res.failed
    per = sorted(r["wall_s"] for r in res.runs)
    return wall, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--duration-h", type=float, default=48.0)
    ap.add_argument("--size", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        timed(1, 1, 1.0, args.size, base, "warmup")
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        rates = {}
        for workers in (1, 2):
            wall, per = timed(
                workers, args.replicates, args.duration_h, args.size, base, f"w{workers}"
            )
            rates[workers] = 60.0 * args.replicates / wall
            print(
                f"workers={workers}: {args.replicates} replicates in {wall:.1f} s = "
                f"{rates[workers]:.1f} replicates/min; per replicate median {statistics.median(per):.2f} s, "
                f"max {per[-1]:.2f} s (first of a worker, incl. cache load)"
            )
        print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
