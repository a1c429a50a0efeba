"""Movie of a 500 x 500 run: render time and peak memory against the result file's size.

Run from the repository root::

    python benchmarks/bench_movie.py [--records 200] [--size 500] [--repeat 3] [--keep DIR]

The result file is **synthetic**, written with :class:`tmesim.io.ResultWriter` in the layout
``tmesim run`` writes (root attributes with the resolved scenario, ``/geometry/tissue``,
gzip-compressed ``/fields/<name>`` frames of shape (T, 500, 500), ragged ``/cells``), because a
real 500 x 500 run recording 200 records costs minutes and the renderer only sees the file.
Content: a generated alveolar lung (the packaged lung defaults), a tumour disc growing from 20
to 140 voxels in radius (up to ~60,000 cells, proliferating rim, hypoxic ring, necrotic core),
about 2,500 T cells, macrophages and fibroblasts in every state, an oxygen field depressed by
the tumour and an IFN-gamma field; 200 records.

Timed, each in a fresh process (median of ``--repeat``, 1-minute load average alongside):

* ``tmesim animate OUT.h5 -o m.gif --field oxygen`` end to end;
* ``tmesim.viz.animate(OUT.h5, m.gif, field="oxygen")`` in Python (the call alone);
* peak RSS (``resource.getrusage(...).ru_maxrss``) of each, and of a process that only imports
  matplotlib and tmesim.viz and opens the file, against the file size and the uncompressed size
  of the data, to show that frames are streamed one record at a time.

Target: 200 frames of 500 x 500 in under a minute on 2 cores.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: fresh launcher: runs argv[1:] and prints the child's peak RSS (KiB); small itself, so the
#: child's ru_maxrss (kept across fork + exec on Linux) starts from a small image
LAUNCH = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
w = time.perf_counter() - t
print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

#: Python API child: argv = file, gif, mode ("animate" or "open")
API_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import tmesim.viz
from tmesim.io import load
t_import = time.perf_counter() - t0
res = load(sys.argv[1])
rss_open = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if sys.argv[3] == "animate":
    tmesim.viz.animate(res, sys.argv[2], field="oxygen")
w = time.perf_counter() - t
res.close()
print(json.dumps({"import": t_import, "animate": w, "rss_open_kib": rss_open,
                  "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_result(path: Path, size: int, records: int, seed: int = 0) -> dict:
    """Write the synthetic 500 x 500 result; return sizes of what it holds."""
    from tmesim import __version__
    from tmesim.geometry import TISSUE_CODES, generate_lung
    from tmesim.io import ResultWriter
    from tmesim.kernels import codes
    from tmesim.model import METRIC_UNITS, POPULATIONS
    from tmesim.scenario import dump_scenario, load_scenario

    sc = load_scenario(
        ROOT / "scenarios" / "baseline.yaml",
        [f"domain.shape=[{size}, {size}]", f"time.duration_h={records - 1}",
         "time.record_every_h=1.0", "name=movie_bench"],
    )
    lung = sc.domain.lung
    vox = sc.domain.voxel_um
    tissue, _ = generate_lung(
        (size, size), vox, alveolar_diameter_um=lung.alveolar_diameter_um,
        septum_um=lung.septum_um, capillary_fraction=lung.capillary_fraction, jitter=lung.jitter,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    c = size / 2
    r = np.hypot(yy - c, xx - c)
    order = np.argsort(r, axis=None, kind="stable")
    n_other = 2500
    other_sites = rng.choice(size * size, n_other, replace=False)
    other_kind = rng.choice([codes.TCELL, codes.MACROPHAGE, codes.FIBROBLAST], n_other)
    other_state = rng.integers(0, 2, n_other)
    stored = {"oxygen": "mmHg", "ifng": "ng/mL"}
    w = ResultWriter(
        path,
        attrs={
            "tmesim_version": __version__, "scenario_name": sc.name, "seed": sc.seed,
            "scenario": dump_scenario(sc), "dt_min": sc.time.dt_min, "voxel_um": vox,
            "status": "running",
        },
        shape=(size, size), voxel_um=vox, fields=stored, populations=POPULATIONS,
        metrics=METRIC_UNITS, cells=True, compression=sc.output.compression,
        code_tables={"kind": codes.KIND_NAMES, "state": codes.STATE_NAMES},
        geometry={"tissue": (tissue, {"code_names": list(TISSUE_CODES),
                                      "code_values": list(TISSUE_CODES.values())})},
    )
    n_cells_total = 0
    with w:
        for i in range(records):
            radius = 20 + 120 * i / max(1, records - 1)
            n_t = int(np.pi * radius**2)
            sites = order[:n_t]
            rr = r.ravel()[sites]
            kind = np.where(rng.random(n_t) < 0.05, codes.STEM, codes.TUMOR)
            state = np.where(rr > radius - 8, codes.PROLIFERATING, codes.QUIESCENT)
            state = np.where(rr < radius - 40, codes.NECROTIC, state)
            free = ~np.isin(other_sites, sites)
            all_sites = np.concatenate([sites, other_sites[free]])
            n = len(all_sites)
            n_cells_total += n
            cells = {
                "id": np.arange(n, dtype=np.int64), "parent": np.full(n, -1, np.int64),
                "generation": np.zeros(n, np.int32),
                "kind": np.concatenate([kind, other_kind[free]]).astype(np.int8),
                "state": np.concatenate([state, other_state[free]]).astype(np.int8),
                "x": (all_sites % size).astype(np.int32),
                "y": (all_sites // size).astype(np.int32), "z": np.zeros(n, np.int32),
                "divisions_left": np.zeros(n, np.int32), "pdl1": np.zeros(n, np.float32),
                "phenotype": np.zeros(n, np.float32), "drug": np.zeros(n, np.float32),
                "pgp": np.zeros(n, np.float32), "payload": np.zeros(n, np.float32),
            }
            depth = 30.0 * np.exp(-((r / (radius + 30)) ** 2))
            oxygen = 38.0 - depth + 0.5 * np.sin(xx / 15.0 + i / 10) * np.cos(yy / 23.0)
            ifng = 0.5 * np.exp(-(((r - radius) / 15.0) ** 2)) * (i / records)
            counts = {"tumor": int((kind == codes.TUMOR).sum()), "stem": int((kind == codes.STEM)
                      .sum())}
            w.write_record(float(i), counts, {"oxygen_mean_mmHg": float(oxygen.mean())},
                           {"oxygen": oxygen, "ifng": ifng}, cells)
        w.set_attr("status", "complete")
    field_bytes = records * size * size * 4 * len(stored)
    cell_bytes = n_cells_total * (8 + 8 + 4 + 1 + 1 + 4 * 3 + 4 + 4 * 3)
    return {"file": path.stat().st_size, "fields_raw": field_bytes, "cells_raw": cell_bytes,
            "cells_last": n}


def launch(cmd) -> tuple[float, float, tuple]:
    la = os.getloadavg()[0]
    p = subprocess.run([sys.executable, "-c", LAUNCH, *map(str, cmd)], check=True,
                       capture_output=True, text=True, cwd=ROOT)
    wall, kib = p.stdout.split()
    return float(wall), int(kib) / 1024, (la, os.getloadavg()[0])


def api(path, gif, mode) -> tuple[dict, tuple]:
    la = os.getloadavg()[0]
    p = subprocess.run([sys.executable, "-c", API_CHILD, str(path), str(gif), mode], check=True,
                       capture_output=True, text=True, cwd=ROOT)
    return json.loads(p.stdout.strip().splitlines()[-1]), (la, os.getloadavg()[0])


def med(xs) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.1f}"
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"


def loads(pairs) -> str:
    flat = [x for p in pairs for x in p]
    return f"{min(flat):.1f}-{max(flat):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="folder to keep the result file and the GIF in")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(args.keep or tmp)
        d.mkdir(parents=True, exist_ok=True)
        h5 = d / f"movie_{args.size}.h5"
        gif = d / "m.gif"
        if h5.exists():
            h5.unlink()
        t = time.perf_counter()
        sizes = make_result(h5, args.size, args.records)
        print(f"synthetic result {h5.name}: {args.records} records of {args.size}x{args.size}, "
              f"{sizes['cells_last']} cells in the last; written in {time.perf_counter() - t:.1f}"
              f" s; file {sizes['file'] / 2**20:.0f} MiB, uncompressed fields "
              f"{sizes['fields_raw'] / 2**20:.0f} MiB + cells {sizes['cells_raw'] / 2**20:.0f} MiB")
        cli = [sys.executable, "-m", "tmesim", "animate", h5, "-o", gif, "--field", "oxygen",
               "--overwrite"]
        rows = {"cli": ([], [], []), "api": ([], [], []), "open": ([], [], [])}
        for _ in range(args.repeat):
            w, mib, la = launch(cli)
            rows["cli"][0].append(w)
            rows["cli"][1].append(mib)
            rows["cli"][2].append(la)
            out, la = api(h5, gif, "animate")
            rows["api"][0].append(out["animate"])
            rows["api"][1].append(out["rss_kib"] / 1024)
            rows["api"][2].append(la)
            out, la = api(h5, gif, "open")
            rows["open"][0].append(out["import"])
            rows["open"][1].append(out["rss_kib"] / 1024)
            rows["open"][2].append(la)
        print(f"\nGIF {gif.stat().st_size / 2**20:.1f} MiB, {args.records} frames\n")
        print("| what | wall (s) | peak RSS (MiB) | load avg | target |")
        print("|---|---:|---:|---|---|")
        for key, label in (("cli", "`tmesim animate OUT.h5 -o m.gif --field oxygen` (end to end)"),
                           ("api", "`tmesim.viz.animate(res, 'm.gif', field='oxygen')` (call)"),
                           ("open", "import matplotlib + tmesim.viz, open the file (no frames)")):
            w, m, la = rows[key]
            target = "" if key == "open" else (
                f"< 60 s: {'met' if statistics.median(w) < 60 else 'missed'}")
            print(f"| {label} | {med(w)} | {med(m)} | {loads(la)} | {target} |")
        print(f"| file size | | {sizes['file'] / 2**20:.0f} | | |")
        print(f"| uncompressed fields + cells | | "
              f"{(sizes['fields_raw'] + sizes['cells_raw']) / 2**20:.0f} | | |")


if __name__ == "__main__":
    main()
