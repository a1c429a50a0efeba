"""Cost of one LOD diffusion step in nanoseconds per voxel-field-step.

Run from the repository root::

    python benchmarks/bench_diffusion.py [--quick] [--precision float64|float32]

Cases follow BioFVM's ``performance_test_substrates`` (physicell.md section 2): dt = 0.01 min,
D ~ U(7.5e4, 1.25e5) um^2/min, decay ~ U(0.05, 0.15) 1/min, 10 um voxels, one Dirichlet side.
For every case the same run reports

* tmesim's Numba kernels with 1 and 2 threads (``FieldSet.diffuse``),
* a plain NumPy implementation of the same scheme (benchmarks/numpy_lod.py, 1 thread),
* the memory-bandwidth bound: the bytes the scheme must move per voxel-field-step divided by
  the copy bandwidth measured here (``np.copyto`` of a 256 MiB array, one thread; two threads
  copying halves for the 2-thread bound). Each pass over the data reads and writes every value
  once (2 * itemsize bytes). Two bounds are given. The LOD bound is one pass per axis, as an
  LOD step sweeps each axis once: two passes in 2-D, three in 3-D (48 B per voxel in float64,
  the bound the transport issue states). The fused bound is what tmesim's 3-D step actually
  needs, two passes, because the x and y sweeps of a z plane are fused while it is in cache;
  in 2-D both bounds are the same.

A second table times the Douglas ADI step (``scheme="douglas"``) on the constant- and
variable-coefficient paths next to LOD on the same inputs: smooth data (1.0), a per-voxel sink
of 3.1 /min on 60 % of the voxels (the oxygen uptake of the packaged defaults) passed to
``diffuse``; the variable path adds a 10 % mask. The positivity guard is on (production
setting); the table reports how many steps it redid with LOD.

Timings are the minimum over repeats (other load on the machine only ever adds time).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_lod
from tmesim.fields import FieldSet, FieldSpec

# BioFVM LOD solver, float64, ns per voxel-field-step with 1 / 2 threads (the numbers)
BIOFVM = {
    ("3-D 100^3", 1): (59.0, 33.0),
    ("3-D 100^3", 4): (17.7, 9.9),
    ("3-D 100^3", 8): (10.6, 5.8),
    ("2-D 1000^2", 1): (36.0, 21.0),
    ("2-D 1000^2", 4): (8.9, 5.9),
}
SHAPES = {"2-D 1000^2": (1000, 1000), "3-D 100^3": (100, 100, 100)}


def make(shape, nf, dtype, seed=1, scheme="lod"):
    rng = np.random.default_rng(seed)
    specs = [
        FieldSpec(
            f"s{i}",
            "a.u.",
            float(rng.uniform(7.5e4, 1.25e5)),
            float(rng.uniform(0.05, 0.15)),
            1.0,
            {"x_min": ("dirichlet", 2.0)},
        )
        for i in range(nf)
    ]
    fs = FieldSet(specs, shape, 10.0, dtype=dtype, scheme=scheme)
    fs.data[...] = rng.uniform(0.5, 1.5, fs.data.shape)
    return fs


def scheme_rows(shape, nf, dtype, steps, repeats, maxthreads):
    """Douglas and LOD, constant and variable path, with a sink: ns per voxel-field-step."""
    rng = np.random.default_rng(2)
    sink = np.where(rng.random((nf, *shape)) < 0.6, 3.1, 0.0).astype(dtype)
    mask = rng.random(shape) < 0.1
    out = []
    for path in ("constant", "variable"):
        for scheme in ("lod", "douglas", "implicit"):
            fs = make(shape, nf, dtype, scheme=scheme)
            fs.data[...] = 1.0
            if path == "variable":
                fs.set_geometry(mask=mask)
            sk = sink.reshape(fs.data.shape)
            fs.diffuse(0.01, sink=sk)  # compile / prepare
            res = {}
            for t in (1, maxthreads):
                numba.set_num_threads(t)
                res[t] = best(
                    lambda fs=fs, sk=sk: [fs.diffuse(0.01, sink=sk) for _ in range(steps)], repeats
                )
                res[t] = res[t] / steps / fs.data.size * 1e9
            numba.set_num_threads(maxthreads)
            st = fs.solver_stats()
            iters = (sum(v["iterations"] for v in st.values())
                     / max(sum(v["solves"] for v in st.values()), 1)) if scheme == "implicit" else 0
            out.append((scheme, path, res[1], res[maxthreads], fs.douglas_fallbacks, iters))
    return out


def lung_rows(repeats):
    """The transport of the lung baseline as runs take it: the scenario's own field set after a
    day of growth (150 x 150 lung mask, capillaries held, the cells' uptake and secretion), one
    agent step's calls of ``FieldSet.diffuse``; each part (implicit oxygen, the LOD fields) in
    us per agent step, next to the same fields without the mask (constant path)."""
    from tmesim.simulation import Simulation

    sim = Simulation(str(Path(__file__).resolve().parents[1] / "scenarios" / "baseline.yaml"),
                     **{"time.duration_h": 24.0})  # fmt: skip
    while sim.running:
        sim.step()
    sub = sim.scenario.diffusion_substeps
    dt = sim.dt_min / sub
    out = []
    for variable in (True, False):
        fs = sim.fields
        if not variable:
            from tmesim.fields import FieldSet

            fs = FieldSet.from_scenario(sim.scenario)
            fs.data[...] = sim.fields.data
        state = fs.data.copy()
        for sl, part in fs._parts:
            if part is None:
                continue
            res = {}
            for t in (1, 2):
                numba.set_num_threads(t)

                def agent_step(part=part, sl=sl):
                    for _ in range(sub if part.scheme == "lod" else 1):
                        part.diffuse(dt if part.scheme == "lod" else sim.dt_min,
                                     sim._sink[sl], sim._source[sl])  # fmt: skip

                res[t] = best(lambda f=agent_step: [f() for _ in range(5)], repeats) / 5 * 1e6
                fs.data[...] = state
            st = part.solver_stats(reset=True)
            iters = (sum(v["iterations"] for v in st.values())
                     / max(sum(v["solves"] for v in st.values()), 1)) if st else 0
            out.append(("lung mask" if variable else "no mask", part.scheme, len(part.names),
                        res[1], res[2], iters))  # fmt: skip
    return out


def best(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def copy_bandwidth(threads, nbytes=256 * 2**20, repeats=5):
    """Bytes read + written per second by a large array copy with ``threads`` threads."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def one():
        if threads == 1:
            np.copyto(dst, src)
            return
        ts = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b])) for a, b in bounds]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    one()
    return 2 * src.nbytes / best(one, repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and cases")
    ap.add_argument("--precision", default="float64", choices=["float64", "float32"])
    args = ap.parse_args(argv)
    dtype = np.dtype(args.precision)
    steps, repeats = (3, 3) if args.quick else (10, 9)
    nfs = (1, 4) if args.quick else (1, 4, 8)
    maxthreads = min(2, numba.config.NUMBA_NUM_THREADS)
    bw = {t: copy_bandwidth(t) for t in (1, 2)}
    print(f"# copy bandwidth: 1 thread {bw[1] / 1e9:.1f} GB/s, 2 threads {bw[2] / 1e9:.1f} GB/s")
    print(f"# precision {dtype}, dt = 0.01 min, {steps} steps per timing, min of {repeats}")
    head = (
        "| case | fields | tmesim 1T | tmesim 2T | NumPy LOD 1T | LOD bound 1T / 2T "
        "| fused bound 1T / 2T | BioFVM 1T / 2T | speed-up vs BioFVM 1T / 2T "
        "| x LOD bound 1T / 2T | x fused bound 1T / 2T |"
    )
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for case, shape in SHAPES.items():
        for nf in nfs:
            fs = make(shape, nf, dtype)
            n = fs.data.size
            fs.diffuse(0.01)  # compile / prepare
            res = {}
            for t in (1, maxthreads):
                numba.set_num_threads(t)
                res[t] = best(lambda fs=fs: [fs.diffuse(0.01) for _ in range(steps)], repeats)
                res[t] = res[t] / steps / n * 1e9
            numba.set_num_threads(maxthreads)
            u = fs.data.copy()
            coeffs = fs._coeffs
            np_steps = 1
            t_np = best(lambda u=u, c=coeffs: numpy_lod.lod_step(u, c), 1 if args.quick else 2)
            t_np = t_np / np_steps / n * 1e9
            # bytes per voxel-field-step: read + write once per pass
            lod_bytes = len(shape) * 2 * dtype.itemsize  # one pass per axis
            fused_bytes = 2 * 2 * dtype.itemsize  # x+y fused per z plane, then z
            l1, l2 = lod_bytes / bw[1] * 1e9, lod_bytes / bw[2] * 1e9
            f1, f2 = fused_bytes / bw[1] * 1e9, fused_bytes / bw[2] * 1e9
            ref = BIOFVM.get((case, nf))
            sp = f"{ref[0] / res[1]:.1f}x / {ref[1] / res[maxthreads]:.1f}x" if ref else "-"
            refs = f"{ref[0]} / {ref[1]}" if ref else "-"
            t1, t2 = res[1], res[maxthreads]
            print(
                f"| {case} | {nf} | {t1:.2f} | {t2:.2f} | {t_np:.1f} "
                f"| {l1:.2f} / {l2:.2f} | {f1:.2f} / {f2:.2f} | {refs} | {sp} "
                f"| {t1 / l1:.1f} / {t2 / l2:.1f} | {t1 / f1:.1f} / {t2 / f2:.1f} |"
            )
            sys.stdout.flush()
    print()
    print("Lung baseline transport, us per 6-min agent step (after 24 h of growth):")
    head = "| geometry | scheme | fields | 1T | 2T | CG iterations per step |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for geo, scheme, nf, t1, t2, iters in lung_rows(repeats):
        print(f"| {geo} | {scheme} | {nf} | {t1:.0f} | {t2:.0f} | {iters:.1f} |")
        sys.stdout.flush()
    print()
    print("Schemes with a sink (60 % of voxels at 3.1 /min), smooth data, guard on, dt 0.01 min:")
    head = "| case | fields | scheme | path | 1T | 2T | LOD fallbacks | CG iterations |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for case, shape in SHAPES.items():
        for nf in (1, 4):
            for scheme, path, t1, t2, nfall, iters in scheme_rows(
                shape, nf, dtype, steps, repeats, maxthreads
            ):
                print(f"| {case} | {nf} | {scheme} | {path} | {t1:.2f} | {t2:.2f} | {nfall} "
                      f"| {iters:.1f} |")  # fmt: skip
                sys.stdout.flush()


if __name__ == "__main__":
    main()
