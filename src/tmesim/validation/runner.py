"""Run validation cases: replicate their scenarios, compute their read-outs, compare, report.

Replicates go through the ensemble executors (:func:`tmesim.ensemble.executors.execute`):
in this process one after another (the default), on local worker processes, or on a Dask
cluster. Replicate k of every run uses the seed :func:`~tmesim.ensemble.replicate_seed`
``(base_seed, "validation", k)``, so the runs of a case are paired (common random numbers).

Result files are cached under ``WORKDIR/runs/<key>/seed_<seed>.h5``, where ``key`` is a hash
of the resolved scenario without its name, description, seed and output settings: a run that
two cases share (the untreated lung, say) is simulated once, and a changed scenario gets a new
key instead of reusing a stale file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import TmesimError, UsageError
from .cases import RESULT_FILE, Case, load_cases
from .metrics import METRICS, Measurement, RunData

#: the label every case's seeds derive from (so all cases share replicate k's seed)
SEED_LABEL = "validation"
#: scenario keys that do not change what a run computes
_NOT_PHYSICS = ("name", "description", "seed", "output")


@dataclass
class CheckResult:
    """One check of a case: the model measurement against its tolerance."""

    name: str
    measurement: Measurement
    passed: bool


@dataclass
class CaseResult:
    """The outcome of one case."""

    case: Case
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""
    replicates: int = 0
    seeds: list[int] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        """True when every check passed (and nothing failed to run)."""
        return not self.error and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``error``."""
        return "error" if self.error else ("pass" if self.passed else "fail")

    @property
    def as_expected(self) -> bool:
        """True when the case passed, or failed as its ``expected`` entry documents."""
        return self.status == self.case.expected


def run_key(scenario) -> str:
    """A hash of what a resolved scenario computes (not its name, seed or output)."""
    from ..scenario import dump_scenario

    data = yaml.safe_load(dump_scenario(scenario))
    for k in _NOT_PHYSICS:
        data.pop(k, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _complete(path: Path) -> bool:
    from ..io import load

    try:
        with load(path) as res:
            return bool(res.complete)
    except Exception:
        return False


def plan(cases: list[Case], replicates: int | None, workdir, base_seed: int = 0):
    """Resolve every replicate of every run; return (tasks to run, files per case and run).

    Files already complete are not run again; a replicate that two cases share is one task.
    """
    from ..ensemble.executors import partial_path
    from ..ensemble.seeds import replicate_seed
    from ..scenario import dump_scenario, load_scenario

    workdir = Path(workdir)
    tasks: dict[str, dict] = {}
    files: dict[str, dict[str, list[Path]]] = {}
    for case in cases:
        n = replicates or case.replicates
        seeds = [replicate_seed(base_seed, SEED_LABEL, k) for k in range(n)]
        files[case.name] = {}
        for run in case.runs.values():
            sc = load_scenario(run.scenario, list(run.overrides))
            key = run_key(sc)
            paths = []
            for k, seed in enumerate(seeds):
                out = (workdir / "runs" / key / f"seed_{seed}.h5").resolve()
                paths.append(out)
                if str(out) in tasks or _complete(out):
                    continue
                if partial_path(out).exists():
                    partial_path(out).unlink()
                tasks[str(out)] = {
                    "group": f"{case.name}/{run.label}",
                    "index": k,
                    "seed": seed,
                    "scenario_yaml": dump_scenario(sc.model_copy(update={"seed": seed})),
                    "output": str(out),
                }
            files[case.name][run.label] = paths
    return list(tasks.values()), files


def evaluate(case: Case, files: dict[str, list[Path]]) -> CaseResult:
    """Compute the case's checks from complete result files."""
    result = CaseResult(case)
    data = RunData(files)
    for check in case.checks:
        try:
            m = METRICS[check.metric](data, **check.args)
        except TmesimError as exc:
            result.error = f"{check.name}: {exc}"
            return result
        result.checks.append(CheckResult(check.name, m, check.tolerance.accepts(m.value)))
    return result


def run_validation(
    root="validation",
    names=None,
    *,
    quick: bool = False,
    replicates: int | None = None,
    workdir="results/validation",
    base_seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    threads: int = 1,
    write: bool = True,
    figures="docs/images/validation",
    docs="docs/validation.md",
    progress: Callable[[dict], None] | None = None,
) -> list[CaseResult]:
    """Run the validation cases under ``root`` and compare them with their published data.

    Parameters
    ----------
    root : folder holding one sub-folder per case (``validation/``).
    names : case names to run (default: all).
    quick : only the quick cases.
    replicates : replicates of every run (default: each case's own ``replicates``).
    workdir : where result files are kept (and reused when complete).
    base_seed : root of the replicate seeds.
    workers, scheduler, dask_local : executor, as for ``tmesim compare``; with none of them the
        replicates run in this process, one after another.
    threads : Numba threads per replicate.
    write : write ``result.json`` into each case folder, the case figures into ``figures`` and
        regenerate ``docs`` (the tests pass False and read the returned results).
    progress : called with each replicate's result dict (plus ``done`` and ``total``).
    """
    from ..ensemble.executors import check_executor, execute
    from ..ensemble.seeds import check_base_seed

    if replicates is not None and (
        isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1
    ):
        raise UsageError(
            f"--replicates must be a positive integer, got {replicates!r}\n  fix: e.g. "
            "--replicates 3"
        )
    base_seed = check_base_seed(base_seed)
    check_executor(workers, scheduler, dask_local)
    cases = load_cases(root, names, quick=quick)
    if not cases:
        raise UsageError(
            "no case to run: --quick keeps only quick cases, and none was selected\n"
            "  fix: drop --quick, or name quick cases with --case"
        )
    tasks, files = plan(cases, replicates, workdir, base_seed)
    done = 0

    def on_result(res):
        nonlocal done
        done += 1
        if progress is not None:
            progress({**res, "done": done, "total": len(tasks)})

    runs = execute(
        tasks,
        workers=workers,
        scheduler=scheduler,
        dask_local=dask_local,
        threads=threads,
        on_result=on_result,
        inline=True,
    )
    failed = {r["output"]: r["error"] for r in runs if r["status"] != "complete"}
    walls = {r["output"]: r["wall_s"] for r in runs}
    results = []
    for case in cases:
        case_files = files[case.name]
        paths = [str(p) for ps in case_files.values() for p in ps]
        errors = [failed[p] for p in paths if p in failed]
        if errors:
            res = CaseResult(case, error=f"a replicate failed: {errors[0]}")
        else:
            res = evaluate(case, case_files)
        res.replicates = replicates or case.replicates
        res.seeds = _seeds(base_seed, res.replicates)
        res.wall_s = sum(walls.get(p, 0.0) for p in paths)
        results.append(res)
    if write:
        for res in results:
            write_result(res, base_seed, figures)
        from .report import write_docs

        write_docs(root, docs, figures)
    return results


def _seeds(base_seed: int, n: int) -> list[int]:
    from ..ensemble.seeds import replicate_seed

    return [replicate_seed(base_seed, SEED_LABEL, k) for k in range(n)]


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else ("inf" if x > 0 else ("-inf" if x < 0 else "nan"))


def result_dict(res: CaseResult, base_seed: int = 0, figure: str | None = None) -> dict:
    """The JSON-ready record of a case result (what ``result.json`` holds)."""
    from .. import __version__

    case = res.case
    checks = []
    for spec, cr in zip(case.checks, res.checks, strict=False):
        m = cr.measurement
        checks.append({
            "name": spec.name,
            "metric": spec.metric,
            "units": m.units,
            "value": _num(m.value),
            "low": _num(m.low),
            "high": _num(m.high),
            "display": m.display,
            "per_replicate": [_num(v) for v in m.per_replicate],
            "published": spec.published,
            "tolerance": spec.tolerance.text(m.units),
            "passed": cr.passed,
        })
    return {
        "case": case.name,
        "speed": case.speed,
        "status": res.status,
        "expected": case.expected,
        "error": res.error,
        "replicates": res.replicates,
        "base_seed": base_seed,
        "seeds": res.seeds,
        "tmesim_version": __version__,
        "date": _dt.date.today().isoformat(),
        "figure": figure,
        "checks": checks,
    }


def write_result(res: CaseResult, base_seed: int, figures) -> Path:
    """Write the case's figure (when it has measurements) and its ``result.json``."""
    from .figures import draw_case

    fig = None
    if res.checks:
        fig_path = Path(figures) / f"{res.case.name}.png"
        draw_case(res, fig_path)
        fig = fig_path.name
    from ..io.safe import atomic_output

    out = res.case.folder / RESULT_FILE
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(result_dict(res, base_seed, fig), indent=1) + "\n",
                       encoding="utf-8")
    return out
