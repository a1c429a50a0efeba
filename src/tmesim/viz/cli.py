"""Subcommands ``animate``, ``plot`` and ``snapshot`` (wired into :mod:`tmesim.cli`)."""

from __future__ import annotations

import sys


def add_subcommands(sub) -> None:
    """Add the picture subcommands to an argparse subparsers object."""
    p = sub.add_parser("animate", help="write a movie (.gif or .mp4) of a result file")
    p.add_argument("file", help="a .h5 file written by 'tmesim run'")
    p.add_argument("-o", "--output", required=True, help="movie file, .gif or .mp4")
    p.add_argument("--field", help="field drawn under the cells (e.g. oxygen)")
    p.add_argument("--fps", type=int, default=10, help="frames per second (default 10)")
    p.add_argument("--every", type=int, default=1, help="use every K-th record (default 1)")
    p.add_argument("--projection", action="store_true", help="3-D: project along z")
    p.add_argument("--overwrite", action="store_true", help="replace an existing movie")
    p.set_defaults(func=cmd_animate)

    p = sub.add_parser("plot", help="plot populations and metrics over time")
    p.add_argument("file", help="a .h5 file written by 'tmesim run'")
    p.add_argument("-o", "--output", help="image file (default: FILE with .png)")
    p.add_argument("--metric", action="append", dest="metrics", help="metric to plot (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing image")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("snapshot", help="draw one frame of the niche")
    p.add_argument("file", help="a .h5 file written by 'tmesim run'")
    p.add_argument("-o", "--output", required=True, help="image file (.png)")
    p.add_argument("--time", help="time of the frame: 7d, 36h, 90min (default: last record)")
    p.add_argument("--field", help="field drawn under the cells (e.g. oxygen)")
    p.add_argument("--projection", action="store_true", help="3-D: project along z")
    p.add_argument("--overwrite", action="store_true", help="replace an existing image")
    p.set_defaults(func=cmd_snapshot)


def _image_suffix(path) -> None:
    """Refuse an image name whose suffix matplotlib cannot write."""
    from pathlib import Path

    from matplotlib.backend_bases import FigureCanvasBase

    from ..errors import UsageError

    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        raise UsageError(
            f"cannot write an image to {path}: unknown format {('.' + suffix) if suffix else '(none)'}"
            f"\n  fix: end the output name in one of {', '.join('.' + k for k in sorted(kinds))}"
        )


def cmd_animate(args) -> int:
    from ..io.safe import atomic_output
    from .movie import animate

    with atomic_output(args.output, overwrite=args.overwrite) as tmp:
        animate(
            args.file,
            tmp,
            field=args.field,
            fps=args.fps,
            every=args.every,
            projection=args.projection,
        )
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_plot(args) -> int:
    from pathlib import Path

    from ..io.safe import atomic_output
    from .plots import plot_timeseries

    out = args.output or str(Path(args.file).with_suffix(".png"))
    _image_suffix(out)
    with atomic_output(out, overwrite=args.overwrite) as tmp:
        plot_timeseries(args.file, tmp, metrics=args.metrics)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_snapshot(args) -> int:
    from ..io.safe import atomic_output
    from .frames import snapshot
    from .timeparse import parse_time_h

    t = parse_time_h(args.time) if args.time is not None else None
    _image_suffix(args.output)
    with atomic_output(args.output, overwrite=args.overwrite) as tmp:
        snapshot(args.file, tmp, time_h=t, field=args.field, projection=args.projection)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
