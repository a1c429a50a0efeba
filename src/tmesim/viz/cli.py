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
    _add_look(p)
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
    p.add_argument(
        "--slices",
        nargs="?",
        const="centre",
        metavar="X,Y,Z",
        help="3-D: draw the xy, xz and yz planes through voxel X,Y,Z (default: the centre), "
        "each with the cells it holds",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing image")
    _add_look(p)
    p.set_defaults(func=cmd_snapshot)

    add_sharing(sub)


def add_sharing(sub) -> None:
    """The ``report`` and ``export`` subcommands."""
    p = sub.add_parser("report", help="write a self-contained HTML report of a run or ensemble")
    p.add_argument("source", help="a .h5 file of 'tmesim run' or a compare/sweep output folder")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=cmd_report)

    from .export import FORMATS

    p = sub.add_parser("export", help="export a result file to CSV, VTK (ParaView) or AnnData")
    p.add_argument("file", help="a .h5 file written by 'tmesim run'")
    p.add_argument("--to", required=True, choices=FORMATS, help="target format")
    p.add_argument("-o", "--output", help="stem of the written files (default: FILE without .h5)")
    p.add_argument("--time", help="anndata: time of the exported record (default: the last)")
    p.set_defaults(func=cmd_export)


def cmd_report(args) -> int:
    from ..io.safe import atomic_output
    from .report import report

    with atomic_output(args.output, overwrite=args.overwrite) as tmp:
        report(args.source, tmp)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from .export import export

    record = -1
    if args.time is not None:
        from ..io import load
        from .timeparse import parse_time_h

        with load(args.file) as res:
            record = res.record_at(parse_time_h(args.time))
    paths = export(args.file, args.to, args.output, record=record)
    shown = [str(p) for p in paths[:3]] + ([f"... ({len(paths)} files)"] if len(paths) > 3 else [])
    print("wrote " + ", ".join(shown), file=sys.stderr)
    return 0


def _add_look(p) -> None:
    """Options shared by pictures of the niche (snapshot, animate)."""
    from .frames import CELL_STYLES

    g = p.add_argument_group("look")
    g.add_argument("--z", type=int, help="3-D: the z plane drawn (default: the middle one)")
    g.add_argument("--vmin", type=float, help="field colour limit (default: run-wide minimum)")
    g.add_argument("--vmax", type=float, help="field colour limit (default: run-wide maximum)")
    g.add_argument("--log", action="store_true", help="field on a logarithmic colour scale")
    g.add_argument(
        "--cmap", help="matplotlib colour map of the field (default: light_greys under cells, "
        "so that every cell colour stays visible; viridis with --cells none)",
    )
    g.add_argument(
        "--cells",
        choices=CELL_STYLES,
        default="solid",
        help="how cells are drawn over the field (default solid; outline shows the field inside "
        "groups of cells)",
    )
    g.add_argument(
        "--color-by", dest="color_by", metavar="COLUMN", help="colour cells by a cell column, "
        "e.g. pgp, drug, pdl1, payload, phenotype",
    )
    g.add_argument(
        "--kinds", help="draw only these kinds, comma-separated (tumor,stem,tcell,macrophage,"
        "fibroblast)",
    )


def _look(args) -> dict:
    """The keyword options of FrameRenderer given on the command line."""
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    return {
        "z": args.z,
        "vmin": args.vmin,
        "vmax": args.vmax,
        "log": args.log,
        "cmap": args.cmap,
        "cells": args.cells,
        "color_by": args.color_by,
        "kinds": kinds,
    }


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
            **_look(args),
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
    slices = None
    if args.slices is not None:
        from .slices import parse_voxel

        slices = True if args.slices == "centre" else parse_voxel(args.slices)
    _image_suffix(args.output)
    with atomic_output(args.output, overwrite=args.overwrite) as tmp:
        snapshot(args.file, tmp, time_h=t, field=args.field, projection=args.projection,
                 slices=slices, **_look(args))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
