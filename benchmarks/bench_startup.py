"""Wall time of ``tmesim run`` on the tiny scenario with a warm Numba cache.

Run from the repository root::

    python benchmarks/bench_startup.py [--repeat 5]

The first run fills the on-disk kernel cache (it is reported separately as the cold run); the
following runs are timed end to end as a user sees them: interpreter start, ``import tmesim``,
loading compiled kernels from the cache, simulation, HDF5 writing. For reference the same run
reports the cost of importing what ``tmesim run`` imports (``tmesim.runner``: the model without
Mesa, Numba, h5py, pydantic) and of importing the Mesa face (``tmesim.model``); ``import
tmesim`` itself loads only the error classes (the public API is imported on first use).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tiny.h5"
        run = [sys.executable, "-m", "tmesim", "run", "scenarios/tiny.yaml", "-o", str(out)]
        run += ["--overwrite", "--quiet"]
        cold = timed(run)
        warm = [timed(run) for _ in range(args.repeat)]
        imp = [timed([sys.executable, "-c", "import tmesim.runner"]) for _ in range(args.repeat)]
        imp_mesa = [timed([sys.executable, "-c", "import tmesim.model"]) for _ in range(args.repeat)]
        bare = [timed([sys.executable, "-c", "pass"]) for _ in range(args.repeat)]
    print(f"tmesim run scenarios/tiny.yaml, first run (may compile): {cold:.2f} s")
    print(
        f"tmesim run scenarios/tiny.yaml, warm cache: median {statistics.median(warm):.2f} s "
        f"(min {min(warm):.2f}, max {max(warm):.2f}, n={args.repeat}); target < 3 s"
    )
    print(f"python -c 'import tmesim.runner' (what a run imports): median "
          f"{statistics.median(imp):.2f} s")
    print(f"python -c 'import tmesim.model' (with Mesa): median {statistics.median(imp_mesa):.2f} s")
    print(f"python -c 'pass' (interpreter alone): median {statistics.median(bare):.2f} s")


if __name__ == "__main__":
    main()
