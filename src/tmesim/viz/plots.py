"""Populations and metrics over time: one panel per unit, dose times marked."""

from __future__ import annotations

from pathlib import Path

from .frames import _open

#: the panel of fractions that peak far below the others (e.g. a delivered fraction of 1e-7
#: beside hypoxic fractions of 0.1)
SMALL_FRACTIONS = "1 (small)"
#: panel titles and y-axis labels of the units metrics are stored with
UNIT_LABELS = {
    "cells": ("populations and cell counts", "cells"),
    "1": ("fractions", "fraction (0-1)"),
    SMALL_FRACTIONS: ("small fractions", "fraction"),
    "mmHg": ("oxygen", "oxygen (mmHg)"),
}
#: the counts group is drawn on the cell-count panel
COUNT_UNIT = "cells"
#: a panel of counts whose series peak more than this factor apart is drawn on a symmetric-log
#: axis (linear below one cell), so that a few stem cells or T cells are not flattened on the
#: axis of a thousand tumour cells
COUNT_DECADES = 100.0


def spans_decades(series) -> bool:
    """Whether the positive peaks of ``[(label, values)]`` lie more than :data:`COUNT_DECADES`
    apart."""
    peaks = [p for p in (_peak(v) for _, v in series) if p > 0]
    return len(peaks) > 1 and max(peaks) > COUNT_DECADES * min(peaks)


def fraction_axis(ax) -> None:
    """A fraction's y axis: from 0 to just above the largest value drawn (at most 1), so that a
    fraction of 10^-7 is as legible as one of 0.5; 0 to 0.05 when every value is 0."""
    top = float(ax.dataLim.y1) if ax.dataLim.height >= 0 else float("nan")
    if not top > 0:
        top = 0.05
    ax.set_ylim(0.0, min(1.02, top * 1.08))


def dose_times(res) -> list[tuple[str, str, float]]:
    """``(agent, route, time_h)`` of every administration of the run's scenario, by time."""
    import yaml

    data = yaml.safe_load(res.scenario_yaml) or {}
    out = []
    for adm in data.get("therapy") or []:
        start = float(adm.get("start_h", 0.0))
        every = float(adm.get("every_h", 0.0))
        for i in range(int(adm.get("count", 1))):
            out.append((str(adm.get("agent", "?")), str(adm.get("route", "iv")), start + i * every))
    return sorted(out, key=lambda a: a[2])


def mark_doses(ax, doses, *, scale=1.0, color="0.35", who=None) -> None:
    """Vertical lines (grey, or ``color``) at the dose times (hours divided by ``scale``), one
    line style per agent, each agent named once in the legend (with ``who`` after it, for the
    doses of one scenario among several)."""
    styles = (":", "--", "-.", (0, (1, 3)))
    agents = list(dict.fromkeys(a for a, _, _ in doses))
    named = set()
    for agent, route, t in doses:
        ax.axvline(
            t / scale,
            color=color,
            ls=styles[agents.index(agent) % len(styles)],
            lw=1.0,
            zorder=0,
            label=None if agent in named else (
                f"dose: {agent} ({route})" + (f", {who}" if who else "")),
        )
        named.add(agent)


def _groups(res, metrics) -> dict[str, list[tuple[str, object]]]:
    """Series grouped by unit: unit -> [(label, values)], counts on the cell-count panel."""
    groups: dict[str, list] = {COUNT_UNIT: [(n, v) for n, v in res.counts.items()]}
    for name in metrics:
        unit = res.units(f"metrics/{name}") or "(no unit)"
        groups.setdefault(unit, []).append((name, res.metrics[name]))
    fractions = groups.get("1", [])
    if spans_decades(fractions):
        # fractions that peak COUNT_DECADES below the largest get a panel of their own (those
        # that stay 0 keep the main one), each panel on a linear axis from 0
        top = max(_peak(v) for _, v in fractions)
        small = [0.0 < _peak(v) < top / COUNT_DECADES for _, v in fractions]
        groups["1"] = [f for f, low in zip(fractions, small, strict=True) if not low]
        groups[SMALL_FRACTIONS] = [f for f, low in zip(fractions, small, strict=True) if low]
    return {u: s for u, s in groups.items() if s}


def _peak(values) -> float:
    """The largest finite value of a series (0 when none is positive)."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size and v.max() > 0 else 0.0


def plot_timeseries(source, output=None, *, metrics=None, days=True):
    """Plot counts and metrics against time, one panel per unit; return the figure.

    Counts and every metric in cells share a panel (on a symmetric-log axis when their peaks
    span more than :data:`COUNT_DECADES`); fractions (unit 1) share one from 0 to their largest
    value, and those that peak :data:`COUNT_DECADES` below the largest get a second one;
    each other unit gets its own labelled panel. Dose times of the scenario's therapy are drawn
    as dotted lines. ``metrics`` defaults to every stored metric. The figure is saved to
    ``output`` when given.
    """
    import math

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    res, owned = _open(source)
    try:
        scale = 24.0 if days else 1.0
        t = res.time_h / scale
        all_metrics = res.metrics
        chosen = metrics or list(all_metrics)
        missing = [m for m in chosen if m not in all_metrics]
        if missing:
            from ..errors import UsageError

            raise UsageError(
                f"metric(s) not in {res.path}: {', '.join(missing)}\n  fix: choose from "
                f"{', '.join(all_metrics)}"
            )
        groups = _groups(res, chosen)
        doses = dose_times(res)
        ncols = 2 if len(groups) > 1 else 1
        nrows = math.ceil(len(groups) / ncols)
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(7.2 * ncols, 3.6 * nrows), squeeze=False, layout="constrained"
        )
        axes = axes.ravel()
        for ax in axes[len(groups) :]:
            ax.set_visible(False)
        for ax, (unit, series) in zip(axes, groups.items(), strict=False):
            title, ylabel = UNIT_LABELS.get(unit, (unit, unit))
            for i, (name, values) in enumerate(series):
                ax.plot(t, values, color=f"C{i % 10}", lw=1.6, label=name.replace("_", " "))
            if unit in ("1", SMALL_FRACTIONS):  # from 0, at most 1
                fraction_axis(ax)
            if unit == COUNT_UNIT and spans_decades(series):
                ax.set_yscale("symlog", linthresh=1.0, linscale=0.5)
                ax.set_ylim(bottom=0.0)
                ylabel += " (log scale above 1)"
            if doses:
                mark_doses(ax, doses, scale=scale)
            ax.set_title(title, loc="left", fontsize=11)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("time (days)" if days else "time (h)")
            ax.grid(alpha=0.3, lw=0.5)
            ax.legend(
                loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                handlelength=1.6,
            )
        fig.suptitle(f"{res.name} (seed {res.seed})", fontsize=12)
        if output is not None:
            fig.savefig(Path(output), dpi=120)
        return fig
    finally:
        if owned:
            res.close()
