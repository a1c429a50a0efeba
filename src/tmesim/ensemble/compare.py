"""Replicated comparisons of scenarios (``tmesim compare``) and parameter sweeps (``tmesim sweep``).

Layout of an output folder ``DIR``::

    DIR/<label>/rep_<k>.h5     one result file per replicate, written by one process
    DIR/summary.h5             endpoints, aligned time series and statistics of every replicate
    DIR/summary.txt            the terminal table
    DIR/timeseries.png         key metrics over time, mean and 95 % band per scenario
    DIR/timeseries_<page>.png  every other series, one page per kind: counts, fractions, other
    DIR/sweep_<key>.png        (sweep) every endpoint the scenario names against each swept value
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
    figures = plot_timeseries(data, outdir / "timeseries.png")
    if meta["kind"] == "sweep":
        figures += plot_sweep(data, meta["params"], outdir)
    return EnsembleResult(outdir, summary_path, figures, table, runs, skipped, all_stats)


# --------------------------------------------------------------------------- collection
def collect(groups, replicates, outdir: Path, seeds, errors) -> dict:
    """Read every replicate file: endpoints and time series on a common time axis."""
    from ..io import load
    from ..viz.plots import dose_times

    raw = {}
    times = []
    names: set[str] = set()
    units: dict[str, str] = {}
    doses: dict[str, list] = {}
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
                    for n in series:
                        units.setdefault(n, "cells" if n.startswith("counts/") else res.units(n))
                    if g.label not in doses:  # every replicate of a group has its therapy
                        doses[g.label] = dose_times(res)
            except Exception:
                continue
            raw[(g.label, k)] = (t, {n: np.asarray(v, dtype=np.float64) for n, v in series.items()})
            times.append(t)
            names.update(series)
    axis = np.unique(np.round(np.concatenate(times), 9)) if times else np.zeros(0)
    names_sorted = sorted(names)
    units[BURDEN_AUC] = "cell-days"
    out = {"time_h": axis, "series_names": names_sorted, "units": units, "groups": []}
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
                "doses": doses.get(g.label, []),
            }
        )
    return out


def bounds(name: str, unit: str) -> tuple[float | None, float | None]:
    """The range of an endpoint or series: (0, 1) for fractions (unit ``1``), (0, None) for
    counts and every physical quantity (cells, mmHg, concentrations, lengths), else unbounded."""
    if unit == "1" or name.endswith("_fraction"):
        return (0.0, 1.0)
    if name.startswith(("counts/", "derived/")) or unit:
        return (0.0, None)
    return (None, None)


def compute_stats(data, paired: bool = False) -> dict:
    """Per group and endpoint: n, mean and a 95 % CI within the endpoint's range
    (:func:`stats.range_ci`); against the first group: effect sizes and
    the rank test, and with ``paired`` the paired difference and the signed-rank test."""
    out = {}
    groups = data["groups"]
    if not groups:
        return out
    ref = groups[0]
    units = data.get("units", {})
    for g in groups:
        per = {}
        for name, values in g["endpoints"].items():
            lower, upper = bounds(name, units.get(name, ""))
            m, lo, hi, method = st.range_ci(values, lower=lower, upper=upper)
            entry = {
                "n": int(np.isfinite(values).sum()),
                "mean": m,
                "ci_low": lo,
                "ci_high": hi,
                "ci_method": method,
            }
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
    small = [g["label"] for g in groups if 0 < int(g["complete"].sum()) < st.MIN_REPLICATES]
    if small:
        lines.append("")
        lines.append(
            f"warning: fewer than {st.MIN_REPLICATES} replicates in {', '.join(small)}: the "
            "intervals of means use the wider Student-t method on a log or logit scale, effect "
            "sizes are rough and rank tests can hardly reach p < 0.05; run more replicates "
            "(--replicates 5 or more) before drawing conclusions"
        )
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
            n_ref = int(np.isfinite(groups[0]["endpoints"].get(endpoint, [])).sum())
            n_g = int(np.isfinite(g["endpoints"].get(endpoint, [])).sum())
            lines.append(
                f"  {g['label']} (n {n_g} vs {n_ref}): "
                f"diff {_fmt(s['mean_difference'], '{:+.2f}')} "
                f"[{_fmt(s['mean_difference_ci_low'], '{:+.2f}')}, "
                f"{_fmt(s['mean_difference_ci_high'], '{:+.2f}')}]  "
                f"Hedges g {_fmt(s['hedges_g'], '{:+.2f}')} "
                f"[{_fmt(s['hedges_g_ci_low'], '{:+.2f}')}, {_fmt(s['hedges_g_ci_high'], '{:+.2f}')}]  "
                f"Cliff's delta {_fmt(s['cliffs_delta'], '{:+.2f}')}  "
                f"U {_fmt(s['mann_whitney_u'], '{:g}')} p {_fmt(s['mann_whitney_p'], '{:.3g}')}"
            )
    return lines


# --------------------------------------------------------------------------- figures
#: panels per page of the time-series figures
PAGE_PANELS = 9
#: metrics named after these words are endpoints of a sweep even if its scenario does not name
#: them (the tumour, its delivery and penetration)
SWEEP_ALWAYS = (PRIMARY, BURDEN_AUC)


def _series_band(data, g, name):
    lower, upper = bounds(name, data.get("units", {}).get(name, ""))
    return st.range_band(g["series"][name], lower=lower, upper=upper)


def _ylabel(data, name) -> str:
    unit = data.get("units", {}).get(name, "")
    short = name.split("/", 1)[1].replace("_", " ")
    if unit == "1":
        return f"{short} (0-1)"
    return f"{short} ({unit})" if unit else short


def _interval_note(data) -> str:
    ns = [int(g["complete"].sum()) for g in data["groups"]] or [0]
    n = min(ns)
    span = f"{n}" if max(ns) == n else f"{n}-{max(ns)}"
    text = f"mean and 95% CI over replicates (n = {span})"
    if 0 < n < st.MIN_REPLICATES:
        text += (
            f"; fewer than {st.MIN_REPLICATES} replicates: wide Student-t bands on a log/logit "
            "scale, read with care"
        )
    elif n:
        text += "; percentile bootstrap of the mean, within each quantity's range"
    return text


def _pages(data) -> dict[str, list[str]]:
    """Series names of each time-series figure: key panels first, then by kind."""
    names = data["series_names"]
    units = data.get("units", {})
    key = [n for n in FIGURE_FIRST if n in names]
    key += [n for n in names if re.search(r"deliver|penetration", n) and n not in key]
    rest = [n for n in names if n not in key]
    pages = {
        "": key[:PAGE_PANELS],
        "counts": [n for n in rest if n.startswith("counts/") or units.get(n) == "cells"],
        "fractions": [n for n in rest if units.get(n) == "1" and not n.startswith("counts/")],
    }
    pages["other"] = [n for n in rest if n not in pages["counts"] + pages["fractions"]]
    out = {}
    for kind, page in pages.items():
        for i in range(0, len(page), PAGE_PANELS):
            out[kind + (f"_{i // PAGE_PANELS + 1}" if i else "")] = page[i : i + PAGE_PANELS]
    return {k: v for k, v in out.items() if v or k == ""}


def _suptitle(fig, text: str, fontsize: float = 11) -> None:
    """A figure title wrapped to the figure's width (a long swept key and the small-sample
    note ran off both edges of a one-line title)."""
    import textwrap

    # about 0.55 em per character of DejaVu Sans; 72 points per inch
    per_line = max(20, int(fig.get_figwidth() * 72 / (0.55 * fontsize)) - 4)
    fig.suptitle(textwrap.fill(text, per_line), fontsize=fontsize)


def _figure(nplots: int, ncols: int = 3):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, nplots))
    nrows = max(1, math.ceil(nplots / ncols))
    fig = Figure(figsize=(4.4 * ncols, 3.2 * nrows + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[nplots:]:
        ax.set_visible(False)
    return fig, axes


def _legend_below(fig, axes) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(len(labels), 4),
            frameon=False, fontsize=10,
        )


def _mark_group_doses(ax, groups) -> None:
    """Dose times as vertical lines (:func:`tmesim.viz.plots.mark_doses`): grey where every
    group doses alike, in a group's colour (its label in the legend) where only it does."""
    from ..viz.plots import mark_doses

    per_group = [set(g.get("doses", [])) for g in groups]
    common = set.intersection(*per_group) if per_group else set()
    mark_doses(ax, sorted(common, key=lambda d: d[2]), scale=24.0)
    for i, (g, own) in enumerate(zip(groups, per_group, strict=True)):
        mark_doses(ax, sorted(own - common, key=lambda d: d[2]), scale=24.0,
                   color=f"C{i % 10}", who=g["label"])


def plot_timeseries(data, path: Path) -> list[Path]:
    """Metrics over time, mean and 95 % band per group, on pages of at most
    :data:`PAGE_PANELS` panels: ``path`` holds the key panels, ``<stem>_<page>.png`` the counts,
    the fractions and the rest. Bands stay within each quantity's range. Returns the paths."""
    from ..viz.plots import fraction_axis

    path = Path(path)
    t = data["time_h"] / 24.0
    written = []
    for page, names in _pages(data).items():
        fig, axes = _figure(max(1, len(names)))
        for ax, name in zip(axes, names, strict=False):
            for i, g in enumerate(data["groups"]):
                mean, lo, hi = _series_band(data, g, name)
                color = f"C{i % 10}"
                ax.plot(t, mean, color=color, label=g["label"], lw=1.6)
                ax.fill_between(t, lo, hi, color=color, alpha=0.22, linewidth=0)
            if data.get("units", {}).get(name) == "1":  # from 0, at most 1, small ones legible
                fraction_axis(ax)
            _mark_group_doses(ax, data["groups"])
            ax.set_title(name.split("/", 1)[1].replace("_", " "), fontsize=10)
            ax.set_ylabel(_ylabel(data, name), fontsize=9)
            ax.set_xlabel("time (days)")
            ax.grid(alpha=0.3, lw=0.5)
        if names:
            _legend_below(fig, axes)
        title = {"": "key metrics"}.get(page, page.replace("_", " "))
        _suptitle(fig, f"{title}: {_interval_note(data)}")
        out = path if page == "" else path.with_name(f"{path.stem}_{page}{path.suffix}")
        _save_figure(fig, out)
        written.append(out)
    return written


def _save_figure(fig, path: Path) -> None:
    """Save a figure atomically (the ensemble's own outputs are replaced on every run)."""
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100)


def sweep_endpoints(data) -> list[str]:
    """Endpoints drawn by :func:`plot_sweep`: the tumour burden and its cumulative value, every
    endpoint the scenario file names in its text (its opening comments state the question and
    the expected answer), and the table's delivered fraction when stored."""
    names = sorted({n for g in data["groups"] for n in g["endpoints"]})
    chosen = [n for n in SWEEP_ALWAYS if n in names]
    text = ""
    for g in data["groups"][:1]:
        try:
            text = Path(g["source"]).read_text(encoding="utf-8")
        except (OSError, TypeError):
            text = ""
    words = set(re.findall(r"[a-z][a-z0-9_]+", text))
    chosen += [n for n in names if n.split("/", 1)[1] in words and n not in chosen]
    deliver = _find(dict.fromkeys(names), TABLE_COLUMNS["delivered fraction"][0])
    if deliver and deliver not in chosen:
        chosen.append(deliver)
    return chosen


def plot_sweep(data, params: dict, outdir: Path, endpoints=None) -> list[Path]:
    """Every endpoint of :func:`sweep_endpoints` (mean and 95 % CI within its range) against
    each swept parameter, one figure per parameter; a log axis where a positive parameter spans
    a factor of 10 or more."""
    paths = []
    keys = list(params)
    endpoints = list(endpoints) if endpoints is not None else sweep_endpoints(data)
    units = data.get("units", {})
    for key in keys:
        values = params[key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        pos = {json.dumps(v): (v if numeric else i) for i, v in enumerate(values)}
        logx = numeric and min(values) > 0 and max(values) / min(values) >= 10
        fig, axes = _figure(max(1, len(endpoints)))
        others = [k for k in keys if k != key]
        for ax, endpoint in zip(axes, endpoints, strict=False):
            lower, upper = bounds(endpoint, units.get(endpoint, ""))
            lines: dict[str, list] = {}
            for g in data["groups"]:
                other = ", ".join(
                    f"{k.split('.')[-1]}={_fmt_value(g['params'][k])}" for k in others
                )
                m, lo, hi, _ = st.range_ci(
                    g["endpoints"].get(endpoint, np.array([np.nan])), lower=lower, upper=upper
                )
                lines.setdefault(other, []).append((pos[json.dumps(g["params"][key])], m, lo, hi))
            for i, (other, pts) in enumerate(lines.items()):
                pts.sort(key=lambda p: p[0])
                x = np.array([p[0] for p in pts], dtype=float)
                m = np.array([p[1] for p in pts])
                err = np.array([[p[1] - p[2], p[3] - p[1]] for p in pts]).T
                ax.errorbar(
                    x, m, yerr=np.nan_to_num(err), marker="o", capsize=3, color=f"C{i % 10}",
                    label=other or None,
                )
            if logx:
                ax.set_xscale("log")
                ax.set_xticks(values, [_fmt_value(v) for v in values])
                ax.minorticks_off()
            elif not numeric:
                ax.set_xticks(range(len(values)), [_fmt_value(v) for v in values])
            ax.set_xlabel(key.split(".")[-1] if len(key) > 30 else key)
            final = "" if endpoint.startswith("derived/") else "final "
            ax.set_ylabel(final + _ylabel(data, endpoint), fontsize=9)
            ax.grid(alpha=0.3, lw=0.5)
        if others:
            _legend_below(fig, axes)
        _suptitle(fig, f"sweep of {key}: {_interval_note(data)}")
        p = outdir / f"sweep_{_safe_label(key)}.png"
        _save_figure(fig, p)
        paths.append(p)
    return paths
