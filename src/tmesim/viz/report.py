"""A self-contained HTML report of a run or of a compare/sweep folder (``tmesim report``).

The page holds everything inline (figures as base64 PNG, no script, no external style sheet), so
it can be mailed or archived as one file: the scenario, the key figures, the tables and the
commands that reproduce them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shlex
from pathlib import Path

from ..errors import UsageError

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
pre { background: #f5f5f5; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
"""


def _png(fig_or_path) -> str:
    """An ``<img>`` tag with the PNG inline."""
    if isinstance(fig_or_path, (str, Path)):
        data = Path(fig_or_path).read_bytes()
        alt = Path(fig_or_path).name
    else:
        buf = io.BytesIO()
        fig_or_path.savefig(buf, format="png", dpi=100)
        data = buf.getvalue()
        alt = "figure"
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, sections: list[tuple[str, str]]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{content}")
    parts.append("</body></html>")
    return "\n".join(parts)


def _run_report(path: Path) -> str:
    import matplotlib.pyplot as plt

    from .. import __version__
    from ..io import load
    from .frames import draw_frame
    from .plots import plot_timeseries

    with load(path) as res:
        info = res.summary()
        name = res.name
        field = "oxygen" if "oxygen" in res.field_names else None
        frame = draw_frame(res, -1, field) if res.n_records else None
        series = plot_timeseries(res) if res.n_records else None
        scenario = res.scenario_yaml
        seed = res.seed
    figures = ""
    for fig in (frame, series):
        if fig is not None:
            figures += _png(fig)
            plt.close(fig)
    span = info["time_h"]
    facts = _table(
        ["", ""],
        [
            ["file", f"{info['path']} ({info['file_size_bytes'] / 1e6:.2f} MB)"],
            ["scenario", f"{name} (seed {seed}, status {info['status']})"],
            ["tmesim", f"{info['tmesim_version']} (report by {__version__})"],
            ["created (UTC)", info["created_utc"]],
            ["records", f"{info['records']}" + (f", {span['start']:g}-{span['end']:g} h" if span else "")],
        ],
    )
    last = _table(
        ["metric", "last record", "units"],
        [
            [k, "-" if m["last"] is None else f"{m['last']:.4g}", m["units"]]
            for k, m in info["metrics"].items()
        ]
        + [[k, v[-1] if v else "-", "cells"] for k, v in info["populations"].items()],
    )
    q = shlex.quote
    commands = "\n".join(
        [
            "# the resolved scenario below, saved as scenario.yaml, reproduces the run bit for bit",
            f"tmesim run scenario.yaml -o {q(Path(path).name)} --seed {seed}",
            f"tmesim snapshot {q(Path(path).name)} -o frame.png"
            + (f" --field {field}" if field else ""),
            f"tmesim plot {q(Path(path).name)} -o timeseries.png",
            f"tmesim report {q(Path(path).name)} -o report.html",
        ]
    )
    return _page(
        f"tmesim run: {name}",
        [
            ("Run", facts),
            ("Figures", figures or "<p>no complete record</p>"),
            ("Last record", last),
            ("Commands that reproduce this page", f"<pre>{html.escape(commands)}</pre>"),
            ("Scenario (resolved)", f"<pre>{html.escape(scenario)}</pre>"),
        ],
    )


def _ensemble_report(folder: Path) -> str:
    import h5py

    summary = folder / "summary.h5"
    with h5py.File(summary, "r") as f:
        a = dict(f.attrs)
        groups = json.loads(a["groups"])
        sources = [str(f[f"groups/{g}"].attrs["source"]) for g in groups]
        overrides = json.loads(a.get("overrides", "[]"))
        params = json.loads(a["params"]) if "params" in a else None
    table = (folder / "summary.txt").read_text(encoding="utf-8") if (folder / "summary.txt").exists() else ""
    figures = "".join(_png(p) for p in sorted(folder.glob("*.png")))
    q = shlex.quote
    sets = "".join(f" --set {q(o)}" for o in overrides)
    design = " --paired" if a.get("design") == "paired" else ""
    if a.get("kind") == "sweep" and params is not None:
        pars = "".join(
            f" --param {q(k + '=' + ','.join(json.dumps(v) for v in vs))}" for k, vs in params.items()
        )
        command = f"tmesim sweep {q(sources[0])}{pars}"
    else:
        command = "tmesim compare " + " ".join(q(s) for s in sources)
    command += (
        f" --replicates {int(a['replicates'])} --seed {int(a['base_seed'])}{design}{sets} "
        f"-o {q(folder.name)}"
    )
    return _page(
        f"tmesim {a.get('kind', 'ensemble')}: {', '.join(groups)}",
        [
            (
                "Design",
                _table(
                    ["", ""],
                    [
                        ["scenarios / grid points", ", ".join(groups)],
                        ["reference", a.get("reference", "")],
                        ["replicates", int(a["replicates"])],
                        ["design", a.get("design", "")],
                        ["base seed", int(a["base_seed"])],
                        ["tmesim", a.get("tmesim_version", "")],
                    ],
                ),
            ),
            ("Table and statistics", f"<pre>{html.escape(table)}</pre>"),
            ("Figures", figures or "<p>no figure in the folder</p>"),
            (
                "Commands that reproduce this page",
                f"<pre>{html.escape(command)}\ntmesim report {q(folder.name)} -o report.html</pre>",
            ),
        ],
    )


def report(source, output) -> Path:
    """Write a self-contained HTML report of a result file or a compare/sweep folder."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    source, output = Path(source), Path(output)
    if source.is_dir():
        if not (source / "summary.h5").exists():
            raise UsageError(
                f"{source} is a folder without summary.h5\n  fix: pass a result file or the "
                "output folder of 'tmesim compare' or 'tmesim sweep'"
            )
        text = _ensemble_report(source)
    else:
        text = _run_report(source)
    output.write_text(text, encoding="utf-8")
    return output
