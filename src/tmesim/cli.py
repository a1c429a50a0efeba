"""The ``tmesim`` command line: a thin shell over library functions.

Exit codes: 0 success, 1 runtime failure, 2 bad input or usage. Errors print a message that
names the problem and its fix, without a traceback (set ``TMESIM_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import __version__
from .errors import TmesimError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line hint on usage errors."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"tmesim: error: {message}\n  fix: run '{self.prog} --help' for usage\n")


def _add_set(p):
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, value parsed as YAML (repeatable), e.g. time.duration_h=48",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="tmesim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tmesim {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="run a scenario and write an HDF5 file")
    p.add_argument("scenario", nargs="?", help="scenario YAML file")
    p.add_argument(
        "--resume",
        metavar="OUT.h5",
        help="continue the unfinished run of OUT.h5 (its records are in OUT.h5.partial)",
    )
    p.add_argument("-o", "--output", help="output .h5 file (default: the scenario's output.path)")
    p.add_argument("--seed", type=int, help="random seed (replaces the scenario's seed)")
    _add_set(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of the parallel kernels (default: TMESIM_THREADS, else one per core)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="PCT",
        help="when stderr is not a terminal (a log file, a batch job): one progress line every "
        "PCT %% of the run, with its ETA (default 10)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a scenario without running it")
    p.add_argument("scenario", nargs="+", help="scenario YAML file(s)")
    _add_set(p)
    p.add_argument("--print", action="store_true", help="print the fully resolved scenario")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("inspect", help="summarise a result file")
    p.add_argument("file", help="a .h5 file written by 'tmesim run'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("schema", help="print the scenario JSON Schema (or Markdown reference)")
    p.add_argument("--markdown", action="store_true", help="the key reference as Markdown")
    p.set_defaults(func=cmd_schema)

    from .ensemble.cli import add_subcommands as add_ensemble
    from .validation.cli import add_subcommands as add_validation
    from .viz.cli import add_subcommands as add_viz

    add_viz(sub)
    add_ensemble(sub)
    add_validation(sub)

    p = sub.add_parser(
        "view", help="interactive viewer of a result file, or of a run as it goes, in the browser"
    )
    p.add_argument("source", help="a .h5 file written by 'tmesim run' (with --live: a scenario)")
    p.add_argument(
        "--live",
        action="store_true",
        help="run the scenario in this process and view it as it goes, with play, pause and "
        "step (records go to a temporary file unless -o is given)",
    )
    p.add_argument("-o", "--output", help="--live: keep the records in this .h5 file")
    p.add_argument("--seed", type=int, help="--live: random seed (replaces the scenario's)")
    _add_set(p)
    p.add_argument("--overwrite", action="store_true", help="--live: replace an existing -o file")
    p.add_argument("--threads", type=int, metavar="N", help="--live: threads of the kernels")
    p.add_argument("--field", help="field shown first (default: oxygen)")
    p.add_argument("--port", type=int, default=5006, help="TCP port (default 5006; 0: any free)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.set_defaults(func=cmd_view)
    return parser


# --------------------------------------------------------------------------- commands
def use_threads(n) -> int:
    """Apply ``--threads`` (or ``TMESIM_THREADS``); a bad count is a usage error."""
    from .kernels._jit import set_threads

    try:
        return set_threads(n)
    except ValueError as exc:
        raise UsageError(
            f"{exc}\n  fix: pass --threads with a number from 1 to the machine's cores"
        ) from None


def cmd_run(args) -> int:
    from .runner import resume, run

    if args.resume is not None and (
        args.scenario or args.output or args.overrides or args.seed is not None
    ):
        raise UsageError(
            "--resume takes the scenario, seed and output from the unfinished file\n"
            "  fix: run 'tmesim run --resume OUT.h5' without a scenario, -o, --seed or --set"
        )
    if args.resume is None and args.scenario is None:
        raise UsageError("no scenario given\n  fix: tmesim run SCENARIO.yaml [-o OUT.h5]")
    use_threads(args.threads)
    if not 0 < args.progress_every <= 100:
        raise UsageError(
            f"--progress-every must lie in (0, 100], got {args.progress_every:g}\n  fix: e.g. "
            "--progress-every 5"
        )
    progress = None
    if not args.quiet:
        progress = _Progress() if sys.stderr.isatty() else _LineProgress(args.progress_every)
    t0 = time.perf_counter()
    try:
        if args.resume is not None:
            path = resume(args.resume, overwrite=args.overwrite, progress=progress)
        else:
            path = run(
                args.scenario,
                args.output,
                overrides=args.overrides,
                seed=args.seed,
                overwrite=args.overwrite,
                progress=progress,
            )
    finally:
        if progress is not None:
            progress.close()
    from .io import load

    if not args.quiet:
        print(run_summary(path, time.perf_counter() - t0), file=sys.stderr)
    with load(path) as res:  # a solve that missed its tolerance is reported even with -q
        for line in res.solver_warnings():
            print(f"tmesim: warning: {line}", file=sys.stderr)
    return 0


def run_summary(path, wall_s: float) -> str:
    """The end-of-run lines: output, wall time, threads, records, simulated span, file size."""
    import numba

    from .io import load

    with load(path) as res:
        info = res.summary()
    span = info["time_h"]
    simulated = f"{span['end'] - span['start']:g} h simulated" if span else "no record"
    return (
        f"wrote {path}\n"
        f"  wall time {wall_s:.1f} s on {numba.get_num_threads()} Numba thread(s); "
        f"{info['records']} records, {simulated}; file {info['file_size_bytes'] / 1e6:.2f} MB"
    )


def cmd_view(args) -> int:
    from .viz.viewer import check_port, serve

    opts = {"port": args.port, "host": args.host, "open_browser": not args.no_browser,
            "field": args.field}
    if not args.live:
        if args.output or args.overrides or args.seed is not None or args.threads is not None:
            raise UsageError(
                "-o, --set, --seed and --threads apply to a live run\n  fix: add --live and "
                "give a scenario, or drop them to view a result file"
            )
        serve(args.source, **opts)
        return 0
    from .live import LiveRun

    check_port(args.port)
    use_threads(args.threads)
    live = LiveRun(args.source, args.output, overrides=args.overrides, seed=args.seed,
                   overwrite=args.overwrite)
    try:
        live.start()
        serve(live.path, live=live, **opts)
    finally:
        live.stop()
    return 0


def cmd_validate(args) -> int:
    from .resources import check_memory
    from .scenario import dump_scenario, load_scenario, warn_about

    for path in args.scenario:
        sc = load_scenario(path, args.overrides)
        check_memory(sc, label=path)
        warn_about(sc)
        if sc.domain.geometry == "mask":
            from .geometry import load_mask

            load_mask(sc.domain.mask.path, sc.domain.shape, sc.domain.mask.codes)
        if args.print:
            sys.stdout.write(dump_scenario(sc))
        else:
            print(f"{path}: valid ({sc.name}, {sc.n_steps} steps, shape {sc.domain.shape})")
    return 0


def cmd_inspect(args) -> int:
    from .io import load

    with load(args.file) as res:
        info = res.summary()
    if args.json:
        print(json.dumps(info, indent=2, allow_nan=False))
        return 0
    print(f"file:      {info['path']} ({info['file_size_bytes'] / 1e6:.2f} MB)")
    print(f"scenario:  {info['scenario_name']} (seed {info['seed']}, status {info['status']})")
    print(f"tmesim:    {info['tmesim_version']} (format {info['format_version']})")
    span = info["time_h"]
    if span:
        start, end = (("non-finite" if v is None else f"{v:g}") for v in span.values())
        print(f"time:      {start} h .. {end} h in {info['records']} records")
    else:
        print("time:      no complete record")
    print("populations:")
    for name, series in info["populations"].items():
        shown = series if len(series) <= 6 else [*series[:3], "...", *series[-2:]]
        last = series[-1] if series else "-"
        print(f"  {name:<12} last {last!s:>8}   {' '.join(map(str, shown))}")
    print("metrics (last record):")
    for name, m in info["metrics"].items():
        last = "-" if m["last"] is None else f"{m['last']:.4g}"
        print(f"  {name:<20} {last:>10} {m['units']}")
    print("fields:")
    for name, fi in info["fields"].items():
        print(f"  {name:<12} {fi['units']:<8} shape {tuple(fi['shape'])} per record")
    if info["solver"]:
        print("transport solves:")
        for name, st in info["solver"].items():
            print(
                f"  {name:<12} {st['solves']} solves, {st['iterations_mean']:.1f} iterations "
                f"(max {st['iterations_max']}), error bound <= {st['error_bound_max']:.1e} "
                f"of scale, {st['failures']} failed, {st['fallbacks']} fallbacks"
            )
    for line in info["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def cmd_schema(args) -> int:
    from .scenario.reference import json_schema, markdown_reference

    if args.markdown:
        sys.stdout.write(markdown_reference())
    else:
        print(json.dumps(json_schema(), indent=2))
    return 0


# --------------------------------------------------------------------------- progress
class _Progress:
    """Progress bar on stderr: simulated time, cell counts, ETA (rich)."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[sim]}"),
            TextColumn("{task.fields[cells]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = None
        self._last = 0.0

    def __call__(self, model, wall_s):
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(
                model.scenario.name, total=model.n_steps, sim="", cells=""
            )
        now = time.perf_counter()
        if now - self._last < 0.1 and model.running:
            return
        self._last = now
        pop = model.population_counts()
        self._progress.update(
            self._task,
            completed=model.steps,
            sim=f"day {model.time_h / 24:.2f}/{model.n_steps * model.dt_min / 1440:.2f}",
            cells=_populations(pop),
        )

    def close(self):
        if self._task is not None:
            self._progress.stop()


def _populations(pop: dict) -> str:
    """The populations of a progress line: each registered kind by its short label, then the
    necrotic cells."""
    from . import kinds

    return " ".join([*(f"{k.short} {pop[k.name]}" for k in kinds.all_kinds()),
                     f"necrotic {pop['necrotic']}"])


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class _LineProgress:
    """Progress for logs and pipes: one plain line every ``every_pct`` % of the steps, with the
    elapsed time, an ETA, the simulated day and the populations.

    The ETA is the mean pace of the steps after the first one, times the steps left: the first
    step carries the set-up and, on a fresh install, the compilation of the kernels (tens of
    seconds), which would otherwise inflate the ETA of a whole run; it is ``?`` until a second
    step has run."""

    def __init__(self, every_pct: float = 10.0, stream=None):
        self.every = every_pct
        self.stream = stream
        self._next = 0.0
        self._first = None  # (steps, wall_s) at the first call

    def __call__(self, model, wall_s):
        if self._first is None:
            self._first = (model.steps, wall_s)
        pct = 100.0 * model.steps / max(model.n_steps, 1)
        if pct + 1e-9 < self._next and model.running:
            return
        while self._next <= pct + 1e-9:
            self._next += self.every
        done = model.steps - self._first[0]
        eta = float("nan")
        if done > 0:
            eta = (wall_s - self._first[1]) / done * (model.n_steps - model.steps)
        pop = model.population_counts()
        line = (
            f"{model.scenario.name}: {pct:5.1f}%  day {model.time_h / 24:.2f}/"
            f"{model.n_steps * model.dt_min / 1440:.2f}  elapsed {_clock(wall_s)}  "
            f"eta {_clock(eta) if eta == eta else '?'}  {_populations(pop)}"
        )
        print(line, file=self.stream or sys.stderr, flush=True)

    def close(self):
        pass


# --------------------------------------------------------------------------- entry point
def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    import warnings

    from .errors import TmesimWarning

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(os.environ.get("TMESIM_DEBUG"))
    with warnings.catch_warnings():
        warnings.simplefilter("always", TmesimWarning)
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except BrokenPipeError:
            # the reader went away (``tmesim inspect out.h5 | head``): stop quietly; point
            # stdout at /dev/null so that the interpreter's final flush does not fail again
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            return 0
        except TmesimError as exc:
            print(f"tmesim: error: {exc}", file=sys.stderr)
            if debug:
                raise
            if getattr(exc, "abandon_process", False):
                # HDF5 may crash tidying up a file whose writes failed: end here
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(exc.exit_code)
            return exc.exit_code
        except KeyboardInterrupt:
            print("tmesim: interrupted", file=sys.stderr)
            _note_partial(args)
            return 130
        except OSError as exc:
            if debug:
                raise
            print(f"tmesim: error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # never a traceback: one line, and how to see more
            if debug:
                raise
            print(
                f"tmesim: error: unexpected {type(exc).__name__}: {exc}\n"
                "  fix: rerun with TMESIM_DEBUG=1 to see where, and report it",
                file=sys.stderr,
            )
            return 1


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from .errors import TmesimWarning

    if issubclass(category, TmesimWarning):
        print(f"tmesim: warning: {message}", file=sys.stderr)
    else:
        print(f"tmesim: warning: {category.__name__}: {message}", file=sys.stderr)


def _note_partial(args) -> None:
    """After an interrupted run: where its records are and how to continue."""
    out = getattr(args, "resume", None) or getattr(args, "output", None)
    if getattr(args, "func", None) is cmd_run and out:
        print(
            f"  records so far are in {out}.partial; continue with 'tmesim run --resume {out}'",
            file=sys.stderr,
        )


__all__ = ["UsageError", "build_parser", "main"]
