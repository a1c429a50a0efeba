"""Validation cases: one folder per published experiment, read from declarative files.

A case folder ``validation/<name>/`` holds

* ``case.yaml``: what is run and compared (below);
* ``data.yaml``: the published numbers, with full citations and how they were read;
* one or more scenario files, loaded by the normal scenario loader;
* ``result.json``: the last model result, written by ``tmesim validation run``.

``case.yaml``::

    name: invitro_doubling          # the folder's name
    title: Doubling time in culture
    speed: quick                    # quick (runs in the default test suite) or slow
    replicates: 3                   # default number of seeded replicates of every run
    question: ...                   # what the experiment measured, in words
    readout: ...                    # how the model quantity is computed
    runs:                           # label -> scenario file and optional overrides
      culture: {scenario: scenario.yaml, set: {time.duration_h: 72}}
    checks:                         # each: a named metric, its published value, a tolerance
      - name: doubling_time
        metric: doubling_time       # a function of tmesim.validation.metrics
        args: {run: culture, from_h: 12, to_h: 72}
        published: doubling_time    # a quantity of data.yaml
        tolerance: {within: [12, 20]}   # or {at_least: x}, {at_most: x}
        why: ...                    # why this tolerance
    expected: {result: fail, reason: ...}   # only for a documented model failure
    note: ...                       # optional: what else the runs showed

Everything is checked when a case is loaded; a mistake raises :class:`~tmesim.errors.UsageError`
(exit code 2 on the command line) naming the file and the key.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import UsageError

#: the file that makes a folder a case
CASE_FILE = "case.yaml"
DATA_FILE = "data.yaml"
RESULT_FILE = "result.json"
SPEEDS = ("quick", "slow")
TOLERANCE_KINDS = ("within", "at_least", "at_most")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Run:
    """One scenario of a case: replicated with the case's seeds."""

    label: str
    scenario: Path
    overrides: tuple = ()


@dataclass(frozen=True)
class Tolerance:
    """The band a model value must fall in: ``within [low, high]``, ``at_least``, ``at_most``."""

    kind: str
    low: float = -math.inf
    high: float = math.inf

    def accepts(self, value: float) -> bool:
        """True when ``value`` is a number inside the band (NaN never is)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return self.low <= value <= self.high

    def text(self, units: str = "") -> str:
        """The band in words, e.g. ``12-20 h`` or ``>= 0.6``."""
        u = f" {units}" if units and units != "1" else ""
        if self.kind == "within":
            return f"{fmt(self.low)}–{fmt(self.high)}{u}"
        if self.kind == "at_least":
            return f"≥ {fmt(self.low)}{u}"
        return f"≤ {fmt(self.high)}{u}"


@dataclass(frozen=True)
class Check:
    """A metric of the model compared with a published quantity under a tolerance."""

    name: str
    metric: str
    args: dict
    published: str
    tolerance: Tolerance
    why: str


@dataclass(frozen=True)
class Case:
    """A validation case, as read from its folder."""

    name: str
    folder: Path
    title: str
    speed: str
    replicates: int
    question: str
    readout: str
    runs: dict[str, Run]
    checks: tuple[Check, ...]
    data: dict
    expected: str = "pass"
    reason: str = ""
    note: str = ""

    @property
    def quick(self) -> bool:
        return self.speed == "quick"

    def quantity(self, key: str) -> dict:
        """The published quantity ``key`` of ``data.yaml``."""
        return self.data["quantities"][key]


def fmt(x) -> str:
    """A number for tables: up to 3 significant figures, no trailing zeros."""
    if x is None:
        return "n/a"
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.2e}"
    return f"{x:.3g}"


# --------------------------------------------------------------------------- loading
def _bad(path: Path, key: str, problem: str, fix: str) -> UsageError:
    return UsageError(f"{path}: {key}: {problem}\n  fix: {fix}")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"missing file {path}\n  fix: every case folder needs {path.name}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML ({exc})\n  fix: correct the file") from None
    if not isinstance(data, dict):
        raise _bad(path, "(top)", "expected a mapping", "write key: value pairs")
    return data


def _text(d: dict, key: str, path: Path) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip():
        raise _bad(path, key, "missing or empty", f"give {key} as text")
    return " ".join(v.split())


def _number(v, path: Path, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(float(v)):
        raise _bad(path, key, f"expected a number, got {v!r}", "write a number")
    return float(v)


def _tolerance(spec, path: Path, key: str) -> Tolerance:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in TOLERANCE_KINDS:
        raise _bad(
            path, key, f"expected one of {', '.join(TOLERANCE_KINDS)}, got {spec!r}",
            "write e.g. {within: [12, 20]} or {at_least: 0.6}",
        )
    kind, v = next(iter(spec.items()))
    if kind == "within":
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise _bad(path, f"{key}.within", "expected [low, high]", "write [low, high]")
        lo, hi = (_number(x, path, f"{key}.within") for x in v)
        if not lo <= hi:
            raise _bad(path, f"{key}.within", "low is above high", "swap the bounds")
        return Tolerance("within", lo, hi)
    x = _number(v, path, f"{key}.{kind}")
    return Tolerance(kind, low=x) if kind == "at_least" else Tolerance(kind, high=x)


def _check_data(data: dict, path: Path) -> None:
    cites = data.get("citations")
    if not isinstance(cites, list) or not cites:
        raise _bad(path, "citations", "missing", "list the papers: id, reference, doi, read")
    ids = set()
    for i, c in enumerate(cites):
        if not isinstance(c, dict):
            raise _bad(path, f"citations.{i}", "expected a mapping", "give id and reference")
        for k in ("id", "reference", "read"):
            if not isinstance(c.get(k), str) or not c[k].strip():
                raise _bad(path, f"citations.{i}.{k}", "missing or empty", f"give {k} as text")
        ids.add(c["id"])
    qs = data.get("quantities")
    if not isinstance(qs, dict) or not qs:
        raise _bad(path, "quantities", "missing", "give each published quantity by name")
    for name, q in qs.items():
        key = f"quantities.{name}"
        if not isinstance(q, dict):
            raise _bad(path, key, "expected a mapping", "give text, units, value or range")
        _text(q, "text", path)
        if "units" not in q:
            raise _bad(path, f"{key}.units", "missing", "give the units ('1' for a ratio)")
        for k in ("value", "low", "high"):
            if q.get(k) is not None:
                _number(q[k], path, f"{key}.{k}")
        for src in q.get("sources", []):
            if src not in ids:
                raise _bad(path, f"{key}.sources", f"unknown citation {src!r}",
                           f"use one of {sorted(ids)}")


def load_case(folder) -> Case:
    """Read and check the case in ``folder``."""
    folder = Path(folder)
    path = folder / CASE_FILE
    d = _read_yaml(path)
    name = d.get("name")
    if name != folder.name or not isinstance(name, str) or not _NAME.match(name):
        raise _bad(path, "name", f"must equal the folder name {folder.name!r} (lower case, _)",
                   f"write name: {folder.name}")
    speed = d.get("speed")
    if speed not in SPEEDS:
        raise _bad(path, "speed", f"expected quick or slow, got {speed!r}", "write speed: quick")
    reps = d.get("replicates")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise _bad(path, "replicates", f"expected a positive integer, got {reps!r}",
                   "write replicates: 3")
    runs = {}
    if not isinstance(d.get("runs"), dict) or not d["runs"]:
        raise _bad(path, "runs", "missing", "give at least one run: {label: {scenario: FILE}}")
    for label, spec in d["runs"].items():
        key = f"runs.{label}"
        if not isinstance(spec, dict) or not isinstance(spec.get("scenario"), str):
            raise _bad(path, key, "expected {scenario: FILE, set: {...}}", "name a scenario file")
        scen = folder / spec["scenario"]
        if not scen.is_file():
            raise _bad(path, f"{key}.scenario", f"file not found: {scen}",
                       "give a path relative to the case folder")
        sets = spec.get("set") or {}
        if not isinstance(sets, dict):
            raise _bad(path, f"{key}.set", "expected a mapping of dotted keys", "write {k: v}")
        runs[str(label)] = Run(str(label), scen, tuple(sets.items()))
    data = _read_yaml(folder / DATA_FILE)
    _check_data(data, folder / DATA_FILE)
    checks = []
    if not isinstance(d.get("checks"), list) or not d["checks"]:
        raise _bad(path, "checks", "missing", "give at least one check")
    from .metrics import METRICS, RUN_ARGS, RUN_LIST_ARGS

    for i, c in enumerate(d["checks"]):
        key = f"checks.{i}"
        if not isinstance(c, dict):
            raise _bad(path, key, "expected a mapping", "give name, metric, published, tolerance")
        metric = c.get("metric")
        if metric not in METRICS:
            raise _bad(path, f"{key}.metric", f"unknown metric {metric!r}",
                       f"use one of {', '.join(sorted(METRICS))}")
        pub = c.get("published")
        if pub not in data["quantities"]:
            raise _bad(path, f"{key}.published", f"{pub!r} is not a quantity of data.yaml",
                       f"use one of {', '.join(data['quantities'])}")
        args = c.get("args") or {}
        try:
            inspect.signature(METRICS[metric]).bind(None, **args)
        except TypeError as exc:
            raise _bad(path, f"{key}.args", f"do not fit metric {metric!r}: {exc}",
                       f"see tmesim.validation.metrics.{METRICS[metric].__name__}") from None
        named = [(k, v) for k, v in args.items() if k in RUN_ARGS]
        named += [(k, v) for k in RUN_LIST_ARGS for v in args.get(k) or ()]
        for k, v in named:
            if v not in runs:
                raise _bad(path, f"{key}.args.{k}", f"unknown run {v!r}",
                           f"use one of {', '.join(runs)}")
        checks.append(
            Check(
                name=_text(c, "name", path),
                metric=metric,
                args=dict(args),
                published=pub,
                tolerance=_tolerance(c.get("tolerance"), path, f"{key}.tolerance"),
                why=_text(c, "why", path),
            )
        )
    expected, reason = "pass", ""
    if d.get("expected") is not None:
        exp = d["expected"]
        if not isinstance(exp, dict) or exp.get("result") not in ("pass", "fail"):
            raise _bad(path, "expected", "expected {result: fail, reason: ...}",
                       "state the documented model reason for a failure")
        expected = exp["result"]
        if expected == "fail":
            reason = _text(exp, "reason", path)
    return Case(
        name=name,
        folder=folder,
        title=_text(d, "title", path),
        speed=speed,
        replicates=reps,
        question=_text(d, "question", path),
        readout=_text(d, "readout", path),
        runs=runs,
        checks=tuple(checks),
        data=data,
        expected=expected,
        reason=reason,
        note=_text(d, "note", path) if d.get("note") is not None else "",
    )


def find_cases(root) -> list[Path]:
    """The case folders under ``root`` (folders holding a ``case.yaml``), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(
            f"validation folder not found: {root}\n  fix: run from the repository root, or pass "
            "--root DIR (the folder that holds one sub-folder per case)"
        )
    return sorted(p.parent for p in root.glob(f"*/{CASE_FILE}"))


def load_cases(root, names=None, *, quick: bool = False) -> list[Case]:
    """Load the cases under ``root``: all, those named, or (``quick``) only the quick ones."""
    folders = {p.name: p for p in find_cases(root)}
    if not folders:
        raise UsageError(f"no case folders under {root}\n  fix: pass the validation folder")
    if names:
        unknown = [n for n in names if n not in folders]
        if unknown:
            raise UsageError(
                f"unknown case {', '.join(repr(n) for n in unknown)}\n"
                f"  fix: use one of {', '.join(folders)}"
            )
        folders = {n: folders[n] for n in dict.fromkeys(names)}
    cases = [load_case(p) for p in folders.values()]
    if quick:
        cases = [c for c in cases if c.quick]
    return cases
