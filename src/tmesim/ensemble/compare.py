"""Replicated comparisons of scenarios (``tmesim compare``) and parameter sweeps (``tmesim sweep``).

Layout of an output folder ``DIR``::

    DIR/<label>/rep_<k>.h5     one result file per replicate, written by one process
    DIR/summary.h5             endpoints, aligned time series and statistics of every replicate
    DIR/summary.txt            the terminal table
    DIR/timeseries.png         metrics over time, mean and 95 % band per scenario
    DIR/sweep_<key>.png        (sweep) an endpoint against each swept value
    DIR/ensemble.log           one JSON line per replicate run or skipped

``<label>`` is the scenario file's stem (compare) or a label built from the grid point (sweep).
Running the same command again resumes: replicates whose file is complete are skipped, the
others are run again. A complete file made with a different configuration (other ``--set``,
other seed) is never silently reused: the command stops and asks for another folder.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..errors import OutputError, ScenarioError, UsageError
from ..io.safe import atomic_output
from . import stats as st
from .executors import check_executor, execute, partial_path
from .seeds import PAIRED_LABEL, SEED_SCHEME, check_base_seed, replicate_seed

SUMMARY_FORMAT = "tmesim-ensemble"
SUMMARY_FORMAT_VERSION = 1

#: the endpoint the table, the statistics and the sweep plot are about
PRIMARY = "metrics/tumor_burden"
#: the cumulative tumour burden: the integral of ``PRIMARY`` over the run (trapezoid rule on the
#: recorded times), in cell-days; less sensitive than the final value to where in its course a
#: stochastic trajectory ends
BURDEN_AUC = "derived/tumor_burden_auc_cell_days"
#: endpoints tested against the reference, with the words the table uses for them
TESTED = {PRIMARY: "final tumour burden", BURDEN_AUC: "cumulative tumour burden (cell-days)"}
#: table columns: header -> (regular expression over endpoint names, format); "n/a" when absent
TABLE_COLUMNS = {
    "stem fraction": (r"^metrics/stem_fraction$", "{:.3f}"),
    "delivered fraction": (r"^metrics/.*deliver.*fraction.*$|^metrics/delivered.*$", "{:.3g}"),
    "T cells": (r"^counts/(t_?cells?|cd8.*|t_?cell.*|tcells?)$|^metrics/t_?cells?$", "{:.1f}"),
}
#: panels of the time-series figure, first (then every other metric found)
FIGURE_FIRST = (
    "metrics/tumor_burden",
    "metrics/stem_fraction",
    "metrics/hypoxic_fraction",
    "metrics/necrotic_fraction",
    "metrics/oxygen_mean_mmHg",
)


@dataclass
class Group:
    """One scenario (compare) or one grid point (sweep): replicates share its configuration."""

    label: str
    source: str
    overrides: list = field(default_factory=list)
    params: dict = field(default_factory=dict)


@dataclass
class EnsembleResult:
    """What :func:`compare` and :func:`sweep` return."""

    outdir: Path
    summary_path: Path
    figures: list[Path]
    table: str
    runs: list[dict]
    skipped: list[tuple[str, int]]
    stats: dict

    @property
    def failed(self) -> list[dict]:
        """Replicates that failed in this invocation."""
        return [r for r in self.runs if r["status"] != "complete"]


# --------------------------------------------------------------------------- public API
def compare(
    scenarios: Sequence,
    replicates: int,
    outdir,
    *,
    base_seed: int = 0,
    overrides=(),
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    progress: Callable[[dict], None] | None = None,
    threads: int = 1,
    paired: bool = False,
) -> EnsembleResult:
    """Run ``replicates`` replicates of each scenario and compare them with the first.

    Parameters
    ----------
    scenarios : sequence of str or Path
        Scenario YAML files; the first is the reference. Labels are the file stems.
    replicates : int
        Replicates per scenario.
    outdir : str or Path
        Output folder (created; an existing one is resumed).
    base_seed : int
        Root of every replicate seed (see :mod:`tmesim.ensemble.seeds`).
    overrides : iterable of str
        ``dotted.key=value`` overrides applied to every scenario.
    workers, scheduler, dask_local
        Executor: local processes (default, ``workers`` of them, default all cores), a Dask
        scheduler address, or a local Dask cluster of ``dask_local`` workers. One at most.
    progress : callable, optional
        Called with each replicate's result dict (plus ``done`` and ``total``).
    threads : int
        Numba threads per replicate (default 1).
    paired : bool
        Common random numbers: replicate k of every scenario gets the same seed (the same lung,
        the same initial cells, the same draws until the scenarios diverge), and the statistics
        against the reference are paired (replicate k against replicate k). Default: independent
        seeds per scenario and two-sample statistics.
    """
    if not scenarios:
        raise UsageError(
            "no scenario given\n  fix: tmesim compare A.yaml B.yaml --replicates 5 -o DIR"
        )
    overrides = list(overrides or ())
    groups = []
    seen: dict[str, str] = {}
    for path in scenarios:
        _check_file(path)
        label = _safe_label(Path(path).stem)
        if label in seen:
            raise UsageError(
                f"two scenarios have the same label '{label}': {seen[label]} and {path}\n"
                "  fix: give the scenario files different names"
            )
        seen[label] = str(path)
        groups.append(Group(label=label, source=str(path), overrides=list(overrides)))
    meta = {"kind": "compare", "overrides": overrides, "paired": bool(paired)}
    return _run_ensemble(
        groups,
        replicates,
        outdir,
        base_seed,
        meta,
        workers,
        scheduler,
        dask_local,
        progress,
        threads,
    )


def sweep(
    scenario,
    params,
    replicates: int,
    outdir,
    *,
    base_seed: int = 0,
    overrides=(),
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    progress: Callable[[dict], None] | None = None,
    threads: int = 1,
    paired: bool = False,
) -> EnsembleResult:
    """Run ``replicates`` replicates at every point of a full parameter grid.

    ``params`` is a mapping ``{dotted.key: [values]}`` or a list of ``"key=v1,v2"`` strings
    (values parsed as YAML). The first grid point is the reference of the statistics. ``paired``
    as in :func:`compare`.
    """
    _check_file(scenario)
    grid = parse_params(params)
    overrides = list(overrides or ())
    keys = list(grid)
    groups = []
    labels: set[str] = set()
    points = list(itertools.product(*(grid[k] for k in keys)))
    for i, values in enumerate(points):
        point = dict(zip(keys, values, strict=False))
        label = _safe_label(
            "__".join(f"{k.split('.')[-1]}={_fmt_value(v)}" for k, v in point.items())
        )
        if label in labels or len(label) > 120:
            label = f"p{i:03d}_{label[:100]}"
        labels.add(label)
        groups.append(
            Group(
                label=label,
                source=str(scenario),
                overrides=[*overrides, *point.items()],
                params=point,
            )
        )
    meta = {
        "kind": "sweep",
        "overrides": overrides,
        "params": {k: grid[k] for k in keys},
        "paired": bool(paired),
    }
    return _run_ensemble(
        groups,
        replicates,
        outdir,
        base_seed,
        meta,
        workers,
        scheduler,
        dask_local,
        progress,
        threads,
    )


def parse_params(params) -> dict[str, list]:
    """``["key=v1,v2", ...]`` or ``{key: [values]}`` -> ``{key: [values]}`` (values as YAML)."""
    if isinstance(params, dict):
        items = list(params.items())
    else:
        items = []
        for item in params or ():
            key, sep, raw = str(item).partition("=")
            key = key.strip()
            if not sep or not key or not raw.strip() or any(not p for p in key.split(".")):
                raise ScenarioError(
                    "a --param option must look like KEY=V1,V2,...",
                    file="--param",
                    key=key or None,
                    value=item,
                    expected="a dotted key path, '=', and comma-separated YAML values",
                    fix="write e.g. --param cells.stem.symmetric_division_prob=0.1,0.3,0.5",
                )
            try:
                values = yaml.safe_load(f"[{raw}]")
            except yaml.YAMLError:
                raise ScenarioError(
                    "the values of a --param option are not valid YAML",
                    file="--param",
                    key=key,
                    value=raw,
                    expected="comma-separated YAML values, e.g. 0.1,0.5 or [24,24],[32,32]",
                    fix="quote text values and wrap list values in brackets",
                ) from None
            items.append((key, values))
    if not items:
        raise UsageError(
            "a sweep needs at least one --param\n"
            "  fix: e.g. --param cells.stem.symmetric_division_prob=0.1,0.5"
        )
    grid: dict[str, list] = {}
    for key, values in items:
        if key in grid:
            raise UsageError(
                f"--param {key} is given twice\n  fix: list all its values in one option: "
                f"--param {key}=V1,V2,..."
            )
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise UsageError(f"--param {key} has no values\n  fix: e.g. --param {key}=1,2")
        grid[key] = values
    return grid


# --------------------------------------------------------------------------- orchestration
def _check_file(path) -> None:
    if not Path(path).is_file():
        raise UsageError(
            f"scenario file not found: {path}\n  fix: check the path (e.g. scenarios/tiny.yaml)"
        )


def _safe_label(text: str) -> str:
    label = re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(text)).strip("._") or "scenario"
    return label


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt_value(x) for x in v)
    return str(v)


def _same_config(path: Path, sc_data: dict) -> bool | None:
    """True/False: a complete file made with the same/another configuration; None: not usable."""
    from ..io import load

    try:
        with load(path) as res:
            if not res.complete:
                return None
            return yaml.safe_load(res.scenario_yaml) == sc_data
    except Exception:
        return None


def _plan(groups, replicates, outdir: Path, base_seed: int, paired: bool = False):
    """Resolve every replicate; return (tasks to run, skipped (label, k), seeds per label)."""
    from ..scenario import dump_scenario, load_scenario

    tasks, skipped, seeds = [], [], {}
    for g in groups:
        sc = load_scenario(g.source, g.overrides)
        gdir = outdir / g.label
        seeds[g.label] = []
        for k in range(replicates):
            seed = replicate_seed(base_seed, PAIRED_LABEL if paired else g.label, k)
            seeds[g.label].append(seed)
            sck = sc.model_copy(update={"seed": seed})
            text = dump_scenario(sck)
            out = gdir / f"rep_{k}.h5"
            tmp = partial_path(out)
            if tmp.exists():
                tmp.unlink()
            if out.exists():
                same = _same_config(out, yaml.safe_load(text))
                if same is True:
                    skipped.append((g.label, k))
                    continue
                if same is False:
                    raise UsageError(
                        f"{out} is a complete replicate of a different configuration (other "
                        "scenario, --set, --param or --seed)\n  fix: choose another output folder "
                        "with -o, or delete that folder to start over"
                    )
                out.unlink()  # incomplete or unreadable: redo
            tasks.append(
                {
                    "group": g.label,
                    "index": k,
                    "seed": seed,
                    "scenario_yaml": text,
                    "output": str(out.resolve()),
                }
            )
    return tasks, skipped, seeds


def _make_outdir(outdir: Path, groups) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for g in groups:
            (outdir / g.label).mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder {outdir}: {exc.strerror}\n"
            "  fix: choose a location you can write to with -o"
        ) from None
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output path is not a folder: {outdir}\n  fix: give a folder with -o")


def _log(outdir: Path, event: str, **data) -> None:
    rec = {"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "event": event}
    rec.update(data)
    with open(outdir / "ensemble.log", "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def _run_ensemble(
    groups, replicates, outdir, base_seed, meta, workers, scheduler, dask_local, progress, threads
) -> EnsembleResult:
    if (
        isinstance(replicates, bool)
        or not isinstance(replicates, (int, np.integer))
        or replicates < 1
    ):
        raise UsageError(
            f"--replicates must be a positive integer, got {replicates!r}\n  fix: e.g. --replicates 5"
        )
    replicates = int(replicates)
    base_seed = check_base_seed(base_seed)
    check_executor(workers, scheduler, dask_local)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output path is not a folder: {outdir}\n  fix: give a folder with -o")
    # validate every configuration before creating anything or starting a worker
    tasks, skipped, seeds = _plan(groups, replicates, outdir, base_seed, meta["paired"])
    _make_outdir(outdir, groups)
    for label, k in skipped:
        _log(outdir, "skip", group=label, index=k, seed=seeds[label][k], status="complete")
    total = len(tasks)
    done = 0

    def on_result(res):
        nonlocal done
        done += 1
        _log(
            outdir,
            "run",
            **{
                k: res[k]
                for k in ("group", "index", "seed", "status", "error", "wall_s", "pid", "host")
            },
        )
        if progress is not None:
            progress({**res, "done": done, "total": total})

    runs = (
        execute(
            tasks,
            workers=workers,
            scheduler=scheduler,
            dask_local=dask_local,
            threads=threads,
            on_result=on_result,
        )
        if tasks
        else []
    )
    errors = {(r["group"], r["index"]): r["error"] for r in runs if r["status"] != "complete"}
    data = collect(groups, replicates, outdir, seeds, errors)
    all_stats = compute_stats(data, paired=meta["paired"])
    summary_path = write_summary(
        outdir / "summary.h5", data, all_stats, base_seed, replicates, meta
    )
    table = format_table(data, all_stats, paired=meta["paired"])
    with atomic_output(outdir / "summary.txt", overwrite=True) as tmp:
        tmp.write_text(table + "\n", encoding="utf-8")
    figures = [plot_timeseries(data, outdir / "timeseries.png")]
    if meta["kind"] == "sweep":
        figures += plot_sweep(data, meta["params"], outdir)
    return EnsembleResult(outdir, summary_path, figures, table, runs, skipped, all_stats)


# --------------------------------------------------------------------------- collection
def collect(groups, replicates, outdir: Path, seeds, errors) -> dict:
    """Read every replicate file: endpoints and time series on a common time axis."""
    from ..io import load

    raw = {}
    times = []
    names: set[str] = set()
    for g in groups:
        for k in range(replicates):
            path = outdir / g.label / f"rep_{k}.h5"
            if not path.exists():
                continue
            try:
                with load(path) as res:
                    if not res.complete:
                        continue
                    t = np.asarray(res.time_h, dtype=np.float64)
                    series = {f"counts/{n}": v for n, v in res.counts.items()}
                    series.update({f"metrics/{n}": v for n, v in res.metrics.items()})
            except Exception:
                continue
            raw[(g.label, k)] = (t, {n: np.asarray(v, dtype=np.float64) for n, v in series.items()})
            times.append(t)
            names.update(series)
    axis = np.unique(np.round(np.concatenate(times), 9)) if times else np.zeros(0)
    names_sorted = sorted(names)
    out = {"time_h": axis, "series_names": names_sorted, "groups": []}
    for g in groups:
        nt = axis.size
        ser = {n: np.full((replicates, nt), np.nan) for n in names_sorted}
        end = {n: np.full(replicates, np.nan) for n in names_sorted}
        complete = np.zeros(replicates, dtype=bool)
        err = []
        for k in range(replicates):
            item = raw.get((g.label, k))
            if item is None:
                err.append(errors.get((g.label, k), "missing") or "missing")
                continue
            complete[k] = True
            err.append("")
            t, series = item
            for n, v in series.items():
                if v.size == 0:
                    continue
                if t.size == nt and np.allclose(t, axis, rtol=0, atol=1e-9):
                    ser[n][k] = v
                else:
                    ser[n][k] = np.interp(axis, t, v, left=np.nan, right=np.nan)
                end[n][k] = v[-1]
        if PRIMARY in ser:  # the cumulative burden, on the replicate's own record times
            end[BURDEN_AUC] = np.full(replicates, np.nan)
            for k in range(replicates):
                item = raw.get((g.label, k))
                if item is not None and PRIMARY in item[1] and item[0].size > 1:
                    t, series = item
                    end[BURDEN_AUC][k] = float(np.trapezoid(series[PRIMARY], t)) / 24.0
        out["groups"].append(
            {
                "label": g.label,
                "source": g.source,
                "params": g.params,
                "overrides": [o if isinstance(o, str) else f"{o[0]}={o[1]!r}" for o in g.overrides],
                "seeds": np.asarray(seeds[g.label], dtype=np.uint64),
                "complete": complete,
                "errors": err,
                "series": ser,
                "endpoints": end,
            }
        )
    return out


def compute_stats(data, paired: bool = False) -> dict:
    """Per group and endpoint: n, mean and 95 % CI; against the first group: effect sizes and
    the rank test, and with ``paired`` the paired difference and the signed-rank test."""
    out = {}
    groups = data["groups"]
    if not groups:
        return out
    ref = groups[0]
    for g in groups:
        per = {}
        for name, values in g["endpoints"].items():
            m, lo, hi = st.mean_ci(values)
            entry = {"n": int(np.isfinite(values).sum()), "mean": m, "ci_low": lo, "ci_high": hi}
            if g is not ref and name in TESTED:
                entry.update(st.compare_samples(ref["endpoints"][name], values))
                if paired:
                    entry.update(st.compare_pairs(ref["endpoints"][name], values))
            elif g is not ref:
                entry["percent_change"] = _pct(ref["endpoints"][name], values)
            per[name] = entry
        out[g["label"]] = per
    return out


def _pct(ref, values) -> float:
    r = st.mean_ci(ref)[0]
    v = st.mean_ci(values)[0]
    if not (math.isfinite(r) and math.isfinite(v)) or r == 0:
        return math.nan
    return 100.0 * (v - r) / r


# --------------------------------------------------------------------------- summary file
def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def write_summary(path: Path, data, all_stats, base_seed, replicates, meta) -> Path:
    """Write ``summary.h5`` (atomically: a temporary name, then a rename)."""
    import h5py

    from .. import __version__

    with atomic_output(path, overwrite=True) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = SUMMARY_FORMAT
        f.attrs["format_version"] = SUMMARY_FORMAT_VERSION
        f.attrs["tmesim_version"] = __version__
        f.attrs["kind"] = meta["kind"]
        f.attrs["base_seed"] = int(base_seed)
        f.attrs["replicates"] = int(replicates)
        f.attrs["seed_scheme"] = SEED_SCHEME
        f.attrs["design"] = "paired" if meta.get("paired") else "independent"
        f.attrs["groups"] = json.dumps([g["label"] for g in data["groups"]])
        f.attrs["reference"] = data["groups"][0]["label"] if data["groups"] else ""
        f.attrs["overrides"] = json.dumps(_jsonable(meta.get("overrides", [])))
        if "params" in meta:
            f.attrs["params"] = json.dumps(_jsonable(meta["params"]))
        d = f.create_dataset("time_h", data=data["time_h"])
        d.attrs["units"] = "h"
        for g in data["groups"]:
            gg = f.create_group(f"groups/{g['label']}")
            gg.attrs["source"] = g["source"]
            gg.attrs["params"] = json.dumps(_jsonable(g["params"]))
            gg.attrs["overrides"] = json.dumps(g["overrides"])
            gg.create_dataset("seed", data=g["seeds"])
            gg.create_dataset("complete", data=g["complete"])
            gg.create_dataset("error", data=np.array(g["errors"], dtype=h5py.string_dtype()))
            for name, v in g["endpoints"].items():
                gg.create_dataset(f"endpoints/{name}", data=v)
            for name, v in g["series"].items():
                gg.create_dataset(f"series/{name}", data=v)
            for name, entry in all_stats.get(g["label"], {}).items():
                sg = f.require_group(f"stats/{g['label']}/{name}")
                for k, v in entry.items():
                    sg.attrs[k] = v
    return path


# --------------------------------------------------------------------------- terminal table
def _fmt(v, fmt="{:.1f}") -> str:
    return "n/a" if v is None or not math.isfinite(v) else fmt.format(v)


def _find(endpoints: dict, pattern: str) -> str | None:
    for name in sorted(endpoints):
        if re.match(pattern, name):
            return name
    return None


def format_table(data, all_stats, paired: bool = False) -> str:
    """The per-scenario table and the statistics against the first scenario, as text."""
    groups = data["groups"]
    if not groups:
        return "(no scenario)"
    ref = groups[0]["label"]
    header = ["scenario", "n", "tumour burden (final) mean [95% CI]", f"% vs {ref}"]
    header += list(TABLE_COLUMNS)
    rows = []
    for g in groups:
        s = all_stats[g["label"]]
        b = s.get(PRIMARY, {})
        n_ok = int(g["complete"].sum())
        burden = (
            f"{_fmt(b.get('mean'))} [{_fmt(b.get('ci_low'))}, {_fmt(b.get('ci_high'))}]"
            if b
            else "n/a"
        )
        pct = "ref" if g["label"] == ref else _fmt(b.get("percent_change"), "{:+.1f}%")
        row = [g["label"], f"{n_ok}/{len(g['complete'])}", burden, pct]
        for pattern, fmt in TABLE_COLUMNS.values():
            name = _find(g["endpoints"], pattern)
            row.append(_fmt(s[name]["mean"], fmt) if name else "n/a")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=False)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows
    ]
    for endpoint, words in TESTED.items():
        if len(groups) > 1:
            lines.append("")
            lines += _test_lines(groups, all_stats, endpoint, words, ref, paired)
    missing = [
        f"  {g['label']} rep {k}: {e}" for g in groups for k, e in enumerate(g["errors"]) if e
    ]
    if missing:
        lines.append("")
        lines.append("missing replicates (excluded from the statistics):")
        lines += missing
    return "\n".join(lines)


def _test_lines(groups, all_stats, endpoint, words, ref, paired) -> list[str]:
    """The statistics of one tested endpoint against the reference, one line per scenario."""
    if paired:
        lines = [
            f"{words} against {ref}, paired by replicate (common seeds; bootstrap 95% CI over "
            f"pairs, {st.BOOTSTRAP_RESAMPLES} resamples, seed {st.BOOTSTRAP_SEED}; two-sided "
            "Wilcoxon signed-rank):"
        ]
    else:
        lines = [
            f"{words} against {ref} (bootstrap 95% CI, {st.BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{st.BOOTSTRAP_SEED}; two-sided Mann-Whitney U):"
        ]
    for g in groups[1:]:
        s = all_stats[g["label"]].get(endpoint, {})
        if not s or (paired and "paired_n" not in s):
            lines.append(f"  {g['label']}: n/a")
            continue
        if paired:
            lines.append(
                f"  {g['label']}: {s['paired_n']} pairs  "
                f"diff {_fmt(s['paired_mean_difference'], '{:+.2f}')} "
                f"[{_fmt(s['paired_mean_difference_ci_low'], '{:+.2f}')}, "
                f"{_fmt(s['paired_mean_difference_ci_high'], '{:+.2f}')}]  "
                f"change {_fmt(s['paired_percent_change'], '{:+.1f}%')} "
                f"[{_fmt(s['paired_percent_change_ci_low'], '{:+.1f}%')}, "
                f"{_fmt(s['paired_percent_change_ci_high'], '{:+.1f}%')}]  "
                f"d_z {_fmt(s['paired_cohens_dz'], '{:+.2f}')}  "
                f"W {_fmt(s['wilcoxon_w'], '{:g}')} p {_fmt(s['wilcoxon_p'], '{:.3g}')}"
            )
        else:
            lines.append(
                f"  {g['label']}: diff {_fmt(s['mean_difference'], '{:+.2f}')} "
                f"[{_fmt(s['mean_difference_ci_low'], '{:+.2f}')}, "
                f"{_fmt(s['mean_difference_ci_high'], '{:+.2f}')}]  "
                f"Hedges g {_fmt(s['hedges_g'], '{:+.2f}')} "
                f"[{_fmt(s['hedges_g_ci_low'], '{:+.2f}')}, {_fmt(s['hedges_g_ci_high'], '{:+.2f}')}]  "
                f"Cliff's delta {_fmt(s['cliffs_delta'], '{:+.2f}')}  "
                f"U {_fmt(s['mann_whitney_u'], '{:g}')} p {_fmt(s['mann_whitney_p'], '{:.3g}')}"
            )
    return lines


# --------------------------------------------------------------------------- figures
def _band(values: np.ndarray):
    """Per-column mean and t-based 95 % interval of an (R, T) array with NaNs."""
    import warnings

    n = np.isfinite(values).sum(axis=0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        sd = np.nanstd(values, axis=0, ddof=1)
    tq = np.array([st.t_ppf(0.975, k - 1) if k > 1 else np.nan for k in n])
    half = tq * sd / np.sqrt(np.maximum(n, 1))
    return mean, mean - half, mean + half


def _figure(nplots: int, ncols: int = 3):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, nplots))
    nrows = max(1, math.ceil(nplots / ncols))
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[nplots:]:
        ax.set_visible(False)
    return fig, axes


def plot_timeseries(data, path: Path) -> Path:
    """Each metric over time: mean and 95 % band per group (Agg, no pyplot)."""
    names = [n for n in FIGURE_FIRST if n in data["series_names"]]
    names += [n for n in data["series_names"] if n.startswith("metrics/") and n not in names]
    names += [n for n in data["series_names"] if n.startswith("counts/") and n not in names]
    fig, axes = _figure(max(1, len(names)))
    t = data["time_h"]
    for ax, name in zip(axes, names, strict=False):
        for i, g in enumerate(data["groups"]):
            mean, lo, hi = _band(g["series"][name])
            color = f"C{i % 10}"
            ax.plot(t, mean, color=color, label=g["label"])
            ax.fill_between(t, lo, hi, color=color, alpha=0.25, linewidth=0)
        group, short = name.split("/", 1)
        ax.set_title(short if group == "metrics" else f"{short} (cells)")
        ax.set_xlabel("time (h)")
    if names:
        axes[0].legend(fontsize="small")
    fig.suptitle("mean and 95% CI over replicates")
    _save_figure(fig, path)
    return path


def _save_figure(fig, path: Path) -> None:
    """Save a figure atomically (the ensemble's own outputs are replaced on every run)."""
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100)


def plot_sweep(data, params: dict, outdir: Path, endpoint: str = PRIMARY) -> list[Path]:
    """The final value of ``endpoint`` (mean and 95 % CI) against each swept parameter."""
    paths = []
    keys = list(params)
    for key in keys:
        values = params[key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        pos = {json.dumps(v): (v if numeric else i) for i, v in enumerate(values)}
        fig, axes = _figure(1)
        ax = axes[0]
        others = [k for k in keys if k != key]
        lines: dict[str, list] = {}
        for g in data["groups"]:
            other = ", ".join(f"{k.split('.')[-1]}={_fmt_value(g['params'][k])}" for k in others)
            m, lo, hi = st.mean_ci(g["endpoints"].get(endpoint, np.array([np.nan])))
            lines.setdefault(other, []).append((pos[json.dumps(g["params"][key])], m, lo, hi))
        for i, (other, pts) in enumerate(lines.items()):
            pts.sort(key=lambda p: p[0])
            x = np.array([p[0] for p in pts], dtype=float)
            m = np.array([p[1] for p in pts])
            err = np.array([[p[1] - p[2], p[3] - p[1]] for p in pts]).T
            ax.errorbar(
                x,
                m,
                yerr=np.nan_to_num(err),
                marker="o",
                capsize=3,
                color=f"C{i % 10}",
                label=other or None,
            )
        if not numeric:
            ax.set_xticks(range(len(values)), [_fmt_value(v) for v in values])
        ax.set_xlabel(key)
        ax.set_ylabel(f"final {endpoint.split('/', 1)[1]} (mean, 95% CI)")
        if others:
            ax.legend(fontsize="small")
        p = outdir / f"sweep_{_safe_label(key)}.png"
        _save_figure(fig, p)
        paths.append(p)
    return paths
