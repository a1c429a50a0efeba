"""Wall time of the lung-niche baseline and of a PhysiCell-sized problem, with a phase profile.

Run from the repository root::

    python benchmarks/bench_niche.py [--quick] [--repeat 3] [--baseline-repeat 3]

Three parts, every timing in a fresh subprocess so that ``NUMBA_NUM_THREADS`` takes effect:

1. **End to end**: ``tmesim run scenarios/baseline.yaml`` (150 x 150 lung, 14 days, every cell
   population and the 6 default fields) as a user runs it, with 2 threads, 2 threads and
   ``OMP_WAIT_POLICY=passive``, and 1 thread. Target: under 60 s on 2 cores.
2. **Profile by phase**: the same run in one process, with the model's phase methods
   (``transport``, ``check_fields``, ``cell_rules``, ``update_tissue``, the DataCollector's
   ``collect``) and the record writing (gathering counts, metrics, fields and cells; the HDF5
   append itself) timed over the whole run.
3. **Against PhysiCell**: ``scenarios/physicell_heterogeneity.yaml`` (100 x 100 tissue, 900
   tumour cells, oxygen only, 10 h), end to end (interpreter start, import, kernels loaded from
   the cache, run, HDF5) and the model alone (a second run in the same process, without HDF5,
   built with ``TMEModel(scenario=dict)``), next to PhysiCell 1.14.2's heterogeneity sample:
   19.5 s with 2 threads, 31 s with 1 on the same kind of machine. Target: >= 20x faster.
   The same problem with the five default cytokine, growth-factor and matrix fields kept is
   timed as well.
   PhysiCell cannot run in this process; if you have timed its sample on the machine at hand
   (its own build, ``max_time`` 600 min, ``omp_num_threads`` 1 or 2), pass those wall times
   with ``--physicell-s 2=SECONDS --physicell-s 1=SECONDS`` to compare against them instead.

Every run starts with an untimed short run that fills the on-disk kernel cache. The machine is
shared, so each row reports the 1-minute load average before and after it; repeats give the
median (min-max).

``--quick``: baseline 48 h instead of 14 days, one repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
PHYSICELL = ROOT / "scenarios" / "physicell_heterogeneity.yaml"
#: PhysiCell 1.14.2 heterogeneity sample on this kind of machine (s), by thread count
PHYSICELL_S = {2: 19.5, 1: 31.0}

#: thread configurations: label -> extra environment
CONFIGS = {
    "2 threads": {"NUMBA_NUM_THREADS": "2"},
    "2 threads, OMP_WAIT_POLICY=passive": {"NUMBA_NUM_THREADS": "2", "OMP_WAIT_POLICY": "passive"},
    "1 thread": {"NUMBA_NUM_THREADS": "1"},
}

PHASES = ("transport", "check_fields", "cell_rules", "update_tissue", "collect")

#: child program of the phase profile: argv = scenario, output, duration_h or ""
PROFILE_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import tmesim
from tmesim.model import TMEModel
from tmesim.runner import open_writer, write_record
from tmesim.scenario import load_scenario
t_import = time.perf_counter() - t0
over = [f"time.duration_h={sys.argv[3]}"] if sys.argv[3] else []
sc = load_scenario(sys.argv[1], over)
T = dict.fromkeys(["build", "transport", "check_fields", "cell_rules", "update_tissue", "collect",
                   "record_gather", "hdf5_write", "total"], 0.0)

def timed(fn, key):
    def w(*a, **k):
        t = time.perf_counter()
        r = fn(*a, **k)
        T[key] += time.perf_counter() - t
        return r
    return w

t = time.perf_counter()
model = TMEModel(sc)
T["build"] = time.perf_counter() - t
for name in ("transport", "check_fields", "cell_rules", "update_tissue"):
    setattr(model, name, timed(getattr(model, name), name))
model.datacollector.collect = timed(model.datacollector.collect, "collect")
t_start = time.perf_counter()
with open_writer(model, sys.argv[2]) as writer:
    writer.write_record = timed(writer.write_record, "hdf5_write")
    every = sc.record_every_steps

    def record():
        t = time.perf_counter()
        h = T["hdf5_write"]
        write_record(model, writer)
        T["record_gather"] += time.perf_counter() - t - (T["hdf5_write"] - h)

    record()
    while model.running:
        model.step()
        if model.steps % every == 0 or not model.running:
            record()
T["total"] = time.perf_counter() - t_start
T["import"] = t_import
T["steps"] = model.steps
T["cells"] = model.cells.n
print(json.dumps(T))
"""

#: child program of the model-alone timing: argv = scenario YAML, repeats
MODEL_CHILD = r"""
import json, sys, time
import yaml
t0 = time.perf_counter()
import tmesim
t_import = time.perf_counter() - t0
with open(sys.argv[1]) as fh:
    data = yaml.safe_load(fh)
out = {"import": t_import, "runs": []}
for i in range(int(sys.argv[2]) + 1):   # the first run loads the kernels from the disk cache
    t = time.perf_counter()
    model = tmesim.TMEModel(scenario=data)
    b = time.perf_counter()
    while model.running:
        model.step()
    e = time.perf_counter()
    out["runs"].append({"build": b - t, "steps": e - b, "total": e - t})
out["fields"] = list(model.fields.names)
out["cells"] = model.cells.n
print(json.dumps(out))
"""


def load1() -> float:
    return os.getloadavg()[0]


def child_env(extra: dict) -> dict:
    env = dict(os.environ)
    for k in ("NUMBA_NUM_THREADS", "OMP_WAIT_POLICY"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_cli(scenario: Path, out: Path, env: dict, sets=()) -> tuple[float, float, tuple]:
    """``tmesim run``: return (end-to-end s, the file's wall_time_s, load before/after)."""
    cmd = [sys.executable, "-m", "tmesim", "run", str(scenario), "-o", str(out)]
    cmd += ["--overwrite", "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    la = load1()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=child_env(env), stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    import h5py

    with h5py.File(out, "r") as f:
        model_s = float(f.attrs["wall_time_s"])
    return wall, model_s, (la, load1())


def run_child(code: str, args, env: dict) -> tuple[dict, tuple]:
    la = load1()
    p = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        check=True, cwd=ROOT, env=child_env(env), capture_output=True, text=True,
    )
    return json.loads(p.stdout.strip().splitlines()[-1]), (la, load1())


def med(xs) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def loads(pairs) -> str:
    flat = [x for p in pairs for x in p]
    return f"{min(flat):.1f}-{max(flat):.1f}"


def warm_cache(tmp: Path) -> None:
    """Fill the kernel cache for both scenarios (compiles only if the cache is stale)."""
    for sc in (BASELINE, PHYSICELL):
        for env in (CONFIGS["2 threads"], CONFIGS["1 thread"]):
            run_cli(sc, tmp / "warm.h5", env, sets=["time.duration_h=1"])


def with_default_fields(tmp: Path) -> Path:
    """The PhysiCell scenario with its ``null`` field removals dropped (all 6 default fields)."""
    data = yaml.safe_load(PHYSICELL.read_text())
    data["fields"] = {k: v for k, v in (data.get("fields") or {}).items() if v is not None}
    data["name"] = "physicell_heterogeneity_all_fields"
    path = tmp / "physicell_all_fields.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def at_physicell_step(tmp: Path) -> Path:
    """The PhysiCell scenario with PhysiCell's own transport numerics: oxygen by LOD sweeps at
    its diffusion step of 0.01 min (600 sub-steps per 6-min agent step), the same work as
    BioFVM does, instead of tmesim's one implicit solve per agent step."""
    data = yaml.safe_load(PHYSICELL.read_text())
    data["name"] = "physicell_heterogeneity_at_0_01_min"
    data["numerics"] = {"diffusion_dt_min": 0.01}
    data["fields"]["oxygen"] = {"scheme": "lod", "substeps": None}
    path = tmp / "physicell_at_physicell_step.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def part_end_to_end(tmp: Path, duration, repeat: int) -> None:
    print(f"\n## End to end: tmesim run {BASELINE.relative_to(ROOT)}"
          f"{'' if duration is None else f' --set time.duration_h={duration}'}\n")
    print("| threads | wall (s) | model loop, file's wall_time_s (s) | load avg | target |")
    print("|---|---:|---:|---|---|")
    sets = [] if duration is None else [f"time.duration_h={duration}"]
    for label, env in CONFIGS.items():
        walls, models, la = [], [], []
        for _ in range(repeat):
            w, m, lp = run_cli(BASELINE, tmp / "baseline.h5", env, sets)
            walls.append(w)
            models.append(m)
            la.append(lp)
        ok = "met" if statistics.median(walls) < 60 else "missed"
        print(f"| {label} | {med(walls)} | {med(models)} | {loads(la)} | < 60 s: {ok} |",
              flush=True)


def part_profile(tmp: Path, duration, env_label: str) -> None:
    T, la = run_child(PROFILE_CHILD, [BASELINE, tmp / "prof.h5", duration or ""],
                      CONFIGS[env_label])
    total = T["total"]
    print(f"\n## Profile by phase ({env_label}; {T['steps']} steps, {T['cells']} cells at the end,"
          f" load avg {loads([la])})\n")
    print("| phase | s | % of run loop |")
    print("|---|---:|---:|")
    rows = [(p, T[p]) for p in PHASES]
    rows += [("record: gather counts, metrics, fields, cells", T["record_gather"]),
             ("record: HDF5 append + flush", T["hdf5_write"])]
    other = total - sum(v for _, v in rows)
    rows += [("other (Mesa step wrapper, loop)", other)]
    for name, v in rows:
        print(f"| {name} | {v:.2f} | {100 * v / total:.1f} |")
    print(f"| **run loop total** | **{total:.2f}** | 100 |")
    print(f"| (model construction) | {T['build']:.2f} | |")
    print(f"| (import tmesim) | {T['import']:.2f} | |", flush=True)


def part_physicell(tmp: Path, repeat: int, physicell_s: dict) -> None:
    five = with_default_fields(tmp)
    own = at_physicell_step(tmp)
    print("\n## Against PhysiCell 1.14.2 heterogeneity sample (2-D 100x100, ~900 cells, 10 h)\n")
    print("| variant | threads | tmesim run, end to end (s) | model loop incl. HDF5, "
          "wall_time_s (s) | model alone, warm process (s) | PhysiCell (s) | speed-up "
          "end to end / model alone | load avg |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for name, sc in (("oxygen only", PHYSICELL), ("6 default fields", five),
                     ("oxygen only, LOD at PhysiCell's 0.01 min", own)):
        for label, env in CONFIGS.items():
            walls, models, la = [], [], []
            for _ in range(repeat):
                w, m, lp = run_cli(sc, tmp / "pc.h5", env)
                walls.append(w)
                models.append(m)
                la.append(lp)
            out, lp = run_child(MODEL_CHILD, [sc, repeat], env)
            la.append(lp)
            alone = [r["total"] for r in out["runs"][1:]]
            pc = physicell_s[int(env["NUMBA_NUM_THREADS"])]
            ratio = f"{pc / statistics.median(walls):.1f}x / {pc / statistics.median(alone):.0f}x"
            print(f"| {name} ({len(out['fields'])} field(s)) | {label} | {med(walls)} | "
                  f"{med(models)} | {med(alone)} | {pc} | {ratio} | {loads(la)} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="baseline 48 h, one repeat")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of the PhysiCell runs")
    ap.add_argument("--baseline-repeat", type=int, default=3, help="repeats of the 14-day run")
    ap.add_argument("--profile-threads", default="1 thread", choices=list(CONFIGS))
    ap.add_argument("--skip", action="append", default=[],
                    choices=["end-to-end", "profile", "physicell"])
    ap.add_argument("--physicell-s", action="append", default=[], metavar="THREADS=SECONDS",
                    help="PhysiCell's wall time measured on this machine (default: the figures "
                    "of the same kind of machine, 2=19.5 and 1=31)")
    args = ap.parse_args()
    physicell_s = dict(PHYSICELL_S)
    for item in args.physicell_s:
        threads, _, seconds = item.partition("=")
        physicell_s[int(threads)] = float(seconds)
    duration = 48.0 if args.quick else None
    repeat = 1 if args.quick else args.repeat
    brepeat = 1 if args.quick else args.baseline_repeat
    print(f"nproc {os.cpu_count()}, python {sys.version.split()[0]}, load avg {load1():.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm_cache(tmp)
        if "physicell" not in args.skip:
            part_physicell(tmp, repeat, physicell_s)
        if "profile" not in args.skip:
            part_profile(tmp, duration, args.profile_threads)
        if "end-to-end" not in args.skip:
            part_end_to_end(tmp, duration, brepeat)


if __name__ == "__main__":
    main()
