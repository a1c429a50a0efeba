"""Cost of one CG iteration of the implicit transport step, per unknown.

    python benchmarks/bench_cg.py [--hours 30] [--repeat 300]

Runs the baseline for ``--hours`` (one thread), takes each implicit field's system and its
input of the last step, and times ``kernels.implicit.pcg_solve`` on it with no iteration
(set-up, factorisation, residual) and with 1 and 21 iterations (tolerance 0, so each runs its
full count). Prints the set-up time and the time per iteration, also per unknown.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np

from tmesim.kernels import implicit as ki
from tmesim.scenario.loader import load_scenario
from tmesim.simulation import Simulation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=300)
    args = ap.parse_args()
    sim = Simulation(load_scenario("scenarios/baseline.yaml"))
    captured = {}
    for _, part in sim.fields._parts:
        if part is None or part.scheme != "implicit":
            continue
        solve = part._diffuse_implicit

        def spy(dt, sink, part=part, solve=solve):
            captured[part.names[0]] = (part, dt, np.array(part._sink_array(sink)),
                                       part.data.copy())  # fmt: skip
            return solve(dt, sink)

        part._diffuse_implicit = spy
    for _ in range(int(args.hours * 60 / sim.dt_min)):
        sim.step()
    print(f"baseline after {args.hours:g} h, one thread; pcg_solve with tolerance 0")
    print("| field | unknowns | set-up (us) | per iteration (us) | per unknown and iteration (ns) |")
    print("|---|---:|---:|---:|---:|")
    for name, (part, dt, sink, data) in sorted(captured.items()):
        system, _scale, work = part._icoeffs[0]
        vox = system[0]
        u = data[0].copy()
        t = {}
        for its in (0, 1, 21):
            ki.pcg_solve(u, sink[0], dt, system, 0.0, its, work)
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                u[...] = data[0]
                ki.pcg_solve(u, sink[0], dt, system, 0.0, its, work)
            t[its] = (time.perf_counter() - t0) / args.repeat
        per = (t[21] - t[1]) / 20
        print(f"| {name} | {vox.size} | {t[0] * 1e6:.0f} | {per * 1e6:.1f} | "
              f"{per / vox.size * 1e9:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
