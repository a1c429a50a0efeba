"""``tmesim validation run|list|report`` (wired into :mod:`tmesim.cli`).

Handlers return the exit code: 0 when every case that ran behaved as its case file expects
(passed, or failed with a documented model reason), 1 otherwise. Bad input raises the
project's errors (exit code 2 with a message and a fix).
"""

from __future__ import annotations

import sys


def add_subcommands(sub) -> None:
    """Add ``validation`` and its own subcommands to an argparse subparsers object."""
    from ..ensemble.cli import _env_threads, _positive_int, _seed

    p = sub.add_parser(
        "validation",
        help="compare the model with published experiments (validation/ -> docs/validation.md)",
        description="Run, list or report the validation cases under validation/.",
    )
    vsub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    vsub.required = True

    r = vsub.add_parser("run", help="run cases, compare with the data, rewrite the docs page")
    r.add_argument("--quick", action="store_true", help="only the quick cases")
    r.add_argument("--case", dest="cases", action="append", metavar="NAME",
                   help="run this case (repeatable; default: all)")
    r.add_argument("-r", "--replicates", type=_positive_int, metavar="N",
                   help="replicates of every run (default: each case's own)")
    ex = r.add_mutually_exclusive_group()
    ex.add_argument("--workers", type=_positive_int, metavar="K",
                    help="local worker processes (default: one after another in this process)")
    ex.add_argument("--scheduler", metavar="ADDRESS",
                    help="run on a Dask cluster, e.g. tcp://127.0.0.1:8786")
    ex.add_argument("--dask-local", type=_positive_int, metavar="K",
                    help="start a local Dask cluster of K worker processes")
    r.add_argument("--threads", type=_positive_int, metavar="T",
                   help="Numba threads per replicate (default: TMESIM_THREADS, else 1)")
    r.add_argument("--seed", type=_seed, default=0, metavar="BASE",
                   help="base seed of the replicates (default 0)")
    _paths(r)
    r.add_argument("--workdir", default="results/validation", metavar="DIR",
                   help="result files, reused when complete (default results/validation)")
    r.add_argument("--no-write", action="store_true",
                   help="print the results only: leave result.json, figures and docs alone")
    r.add_argument("-q", "--quiet", action="store_true", help="no per-replicate lines")
    r.set_defaults(func=cmd_run, env_threads=_env_threads)

    ls = vsub.add_parser("list", help="list the cases with their speed and last result")
    _paths(ls)
    ls.set_defaults(func=cmd_list)

    rep = vsub.add_parser("report", help="rewrite docs/validation.md from the stored results")
    _paths(rep)
    rep.set_defaults(func=cmd_report)


def _paths(p) -> None:
    p.add_argument("--root", default="validation", metavar="DIR",
                   help="folder of the case folders (default validation)")
    p.add_argument("--docs", default="docs/validation.md", metavar="FILE",
                   help="the page to regenerate (default docs/validation.md)")
    p.add_argument("--figures", default="docs/images/validation", metavar="DIR",
                   help="where case figures go (default docs/images/validation)")


def _progress(quiet: bool):
    def show(res: dict) -> None:
        if quiet and res["status"] == "complete":
            return
        what = f"[{res['done']}/{res['total']}] {res['group']} rep {res['index']}"
        if res["status"] == "complete":
            print(f"{what}: complete in {res['wall_s']:.1f} s", file=sys.stderr, flush=True)
        else:
            print(f"{what}: FAILED: {res['error']}", file=sys.stderr, flush=True)

    return show


def _line(res) -> str:
    checks = "; ".join(
        f"{c.name} = {c.measurement.display or f'{c.measurement.value:.4g}'} "
        f"({'pass' if c.passed else 'fail'})"
        for c in res.checks
    )
    known = " (known)" if res.status == "fail" and res.case.expected == "fail" else ""
    return f"{res.case.name:28s} {res.status}{known:8s} {checks or res.error}"


def cmd_run(args) -> int:
    """``tmesim validation run``."""
    from .runner import run_validation

    results = run_validation(
        args.root,
        args.cases,
        quick=args.quick,
        replicates=args.replicates,
        workdir=args.workdir,
        base_seed=args.seed,
        workers=args.workers,
        scheduler=args.scheduler,
        dask_local=args.dask_local,
        threads=args.threads or args.env_threads(),
        write=not args.no_write,
        figures=args.figures,
        docs=args.docs,
        progress=_progress(args.quiet),
    )
    for res in results:
        print(_line(res))
    if not args.no_write:
        print(f"wrote {args.docs} and the case results", file=sys.stderr)
    unexpected = [r for r in results if not r.as_expected]
    if unexpected:
        print(
            f"tmesim: {len(unexpected)} case(s) did not behave as their case file expects: "
            f"{', '.join(r.case.name for r in unexpected)}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_list(args) -> int:
    """``tmesim validation list``."""
    from .cases import load_cases
    from .report import _load_result

    for case in load_cases(args.root):
        res = _load_result(case)
        last = "not run" if res is None else f"{res['status']} ({res['date']})"
        known = ", known failure" if case.expected == "fail" else ""
        print(f"{case.name:28s} {case.speed:6s} {last}{known}  {case.title}")
    return 0


def cmd_report(args) -> int:
    """``tmesim validation report``."""
    from .report import write_docs

    print(f"wrote {write_docs(args.root, args.docs, args.figures)}", file=sys.stderr)
    return 0
