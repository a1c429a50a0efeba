"""The ``tmesim compare`` and ``tmesim sweep`` subcommands.

:func:`add_subcommands` adds them to the ``tmesim`` parser; :func:`main` runs them on their own
(``python -m tmesim.ensemble compare ...``). Handlers return the exit code: 0 when every
replicate is complete, 1 when some failed (the others are kept; run the same command again to
retry them). Bad input raises the project's errors (exit 2 with a message and a fix).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import TmesimError, UsageError


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _env_threads() -> int:
    """``TMESIM_THREADS`` as the default threads per replicate (1 when unset)."""
    text = os.environ.get("TMESIM_THREADS", "").strip()
    try:
        return _positive_int(text) if text else 1
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"TMESIM_THREADS: {exc}\n  fix: set it to a whole number >= 1") from None


def _common(p) -> None:
    p.add_argument(
        "-r",
        "--replicates",
        type=_positive_int,
        required=True,
        metavar="N",
        help="replicates per scenario (or per grid point)",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="output folder (resumed if it exists)"
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="BASE",
        help="base seed; replicate seeds derive from it, the label and the index (default 0)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key for every scenario, value parsed as YAML (repeatable)",
    )
    ex = p.add_mutually_exclusive_group()
    ex.add_argument(
        "--workers",
        type=_positive_int,
        metavar="K",
        help="local worker processes (default: all cores)",
    )
    ex.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask cluster, e.g. tcp://127.0.0.1:8786 (needs tmesim[cluster])",
    )
    ex.add_argument(
        "--dask-local",
        type=_positive_int,
        metavar="K",
        help="start a local Dask cluster of K worker processes (needs tmesim[cluster])",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="T",
        help="Numba threads per replicate (default: TMESIM_THREADS, else 1: one core per worker)",
    )
    p.add_argument(
        "--paired",
        action="store_true",
        help="common random numbers: replicate k of every scenario shares its seed, and the "
        "statistics pair replicate k with replicate k (Wilcoxon signed-rank)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no per-replicate progress lines")


def add_subcommands(subparsers) -> None:
    """Add ``compare`` and ``sweep`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "compare",
        help="run replicates of scenarios and compare them (statistics, table, figure)",
        description="Run N replicates of each scenario and compare them with the first.",
    )
    p.add_argument(
        "scenarios",
        nargs="+",
        metavar="SCENARIO",
        help="scenario YAML files; the first is the reference",
    )
    _common(p)
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser(
        "sweep",
        help="run replicates over a parameter grid",
        description="Run N replicates at every point of a full grid of parameter values.",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file")
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="swept key and its values, parsed as YAML (repeatable; full grid)",
    )
    _common(p)
    p.set_defaults(func=cmd_sweep)


class _Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, res: dict) -> None:
        if self.quiet and res["status"] == "complete":
            return
        what = (
            f"[{res['done']}/{res['total']}] {res['group']} rep {res['index']} (seed {res['seed']})"
        )
        if res["status"] == "complete":
            print(f"{what}: complete in {res['wall_s']:.1f} s", file=sys.stderr, flush=True)
        else:
            print(f"{what}: FAILED: {res['error']}", file=sys.stderr, flush=True)


def _report(res) -> int:
    print(res.table)
    if res.skipped:
        print(
            f"\nskipped {len(res.skipped)} replicate(s) already complete in {res.outdir}",
            file=sys.stderr,
        )
    print(f"wrote {res.summary_path}, " + ", ".join(str(p) for p in res.figures), file=sys.stderr)
    if res.failed:
        print(
            f"tmesim: {len(res.failed)} replicate(s) failed (listed above); the others are kept\n"
            "  fix: correct the cause, then run the same command again: complete replicates are "
            "skipped and only the missing ones run",
            file=sys.stderr,
        )
        return 1
    return 0


def _executor(args) -> dict:
    return {
        "workers": args.workers,
        "scheduler": args.scheduler,
        "dask_local": args.dask_local,
        "threads": args.threads or _env_threads(),
        "base_seed": args.seed,
        "overrides": args.overrides,
        "progress": _Progress(args.quiet),
        "paired": args.paired,
    }


def cmd_compare(args) -> int:
    """``tmesim compare``."""
    from .compare import compare

    return _report(compare(args.scenarios, args.replicates, args.output, **_executor(args)))


def cmd_sweep(args) -> int:
    """``tmesim sweep``."""
    from .compare import sweep

    return _report(
        sweep(args.scenario, args.params, args.replicates, args.output, **_executor(args))
    )


def build_parser() -> argparse.ArgumentParser:
    """A parser with only the ensemble subcommands (for ``python -m tmesim.ensemble``)."""
    parser = argparse.ArgumentParser(prog="tmesim", description="tmesim ensembles")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_subcommands(sub)
    return parser


def main(argv=None) -> int:
    """Run ``compare`` or ``sweep``; return the exit code (errors as ``tmesim.cli.main`` does)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TmesimError as exc:
        print(f"tmesim: error: {exc}", file=sys.stderr)
        if os.environ.get("TMESIM_DEBUG"):
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        print("tmesim: interrupted", file=sys.stderr)
        return 130
