"""One figure per validation case: the model read-out of each check drawn against the data.

Model replicates are thin blue lines (Okabe-Ito blue) with their mean in bold; the published
value or range is a vermilion line or band; the tolerance is dotted grey; the model value is a
dashed blue line on the axis that carries the quantity.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .cases import fmt

MODEL = "#0072B2"
DATA = "#D55E00"
TOL = "#777777"


def _range(q: dict) -> tuple[float | None, float | None]:
    lo, hi = q.get("low"), q.get("high")
    if lo is None and hi is None and q.get("value") is not None:
        lo = hi = q["value"]
    return lo, hi


def _curves(ax, plot: dict) -> None:
    xs, ys = plot.get("xs") or [], plot.get("ys") or []
    marker = plot.get("marker")
    for x, y in zip(xs, ys, strict=False):
        ax.plot(x, y, color=MODEL, lw=0.8, alpha=0.45, marker=marker, ms=3)
    same = xs and all(len(x) == len(xs[0]) and np.allclose(x, xs[0]) for x in xs)
    if same and len(ys) > 1:
        ax.plot(xs[0], np.mean(np.asarray(ys, float), axis=0), color=MODEL, lw=2,
                marker=marker, ms=4, label="model (mean)")
    elif xs:
        ax.lines[-1].set_label("model")


def _band(ax, axis: str, lo, hi, label: str, color: str, alpha: float) -> None:
    if lo is None or hi is None:
        return
    if lo == hi:
        (ax.axvline if axis == "x" else ax.axhline)(lo, color=color, lw=2, label=label)
    else:
        (ax.axvspan if axis == "x" else ax.axhspan)(lo, hi, color=color, alpha=alpha,
                                                    label=label)


def _tolerance(ax, axis: str, tol) -> None:
    line = ax.axvline if axis == "x" else ax.axhline
    for v in (tol.low, tol.high):
        if math.isfinite(v):
            line(v, color=TOL, ls=":", lw=1.2)


def _panel(ax, spec, q: dict, cr) -> None:
    m, plot = cr.measurement, cr.measurement.plot
    kind = plot.get("type", "axis")
    lo, hi = _range(q)
    if kind not in ("clones", "arms"):
        _curves(ax, plot)
    if kind == "axis":
        axis = plot.get("axis", "x")
        _band(ax, axis, lo, hi, "published", DATA, 0.25)
        _tolerance(ax, axis, spec.tolerance)
        if math.isfinite(m.value):
            (ax.axvline if axis == "x" else ax.axhline)(m.value, color=MODEL, ls="--", lw=1.2)
    elif kind == "growth":
        t0, t1 = plot.get("fit_from_h"), plot.get("fit_to_h")
        ys = np.asarray(plot["ys"], float)
        if t0 is not None and lo and hi and len(plot["xs"]):
            x = np.asarray(plot["xs"][0], float)
            n0 = float(np.mean(ys[:, int(np.argmin(abs(x - t0)))]))
            tt = np.linspace(t0, t1, 50)
            ax.fill_between(tt, n0 * 2 ** ((tt - t0) / hi), n0 * 2 ** ((tt - t0) / lo),
                            color=DATA, alpha=0.25, label="published doubling")
        for t in plot.get("marks_h", []):
            ax.axvline(t, color=TOL, ls=":", lw=1.2)
    elif kind in ("slope", "slope_time"):
        # the quantity is a slope (kills per T-cell day) or its inverse (T-cell hours per kill)
        def slope(v):
            return 1.0 / v if kind == "slope_time" else v

        xmax = max((max(x) for x in plot["xs"] if len(x)), default=1.0)
        xx = np.array([0.0, xmax])
        if lo is not None and hi is not None:
            ax.fill_between(xx, slope(lo) * xx, slope(hi) * xx, color=DATA, alpha=0.25,
                            label="published")
        for v in (spec.tolerance.low, spec.tolerance.high):
            if math.isfinite(v) and v > 0:
                ax.plot(xx, slope(v) * xx, color=TOL, ls=":", lw=1.2)
        ymax = max((max(y) for y in plot["ys"] if len(y)), default=1.0)
        ax.set_ylim(0, 1.15 * ymax)
    elif kind == "clones":
        rng = np.random.default_rng(0)
        for i, sizes in enumerate(plot["groups"].values()):
            s = np.maximum(np.asarray(sizes, float), 0.8)
            ax.scatter(i + rng.uniform(-0.15, 0.15, s.size), s, color=MODEL, s=12, alpha=0.7)
        ax.set_xticks(range(len(plot["groups"])), list(plot["groups"]))
        ax.set_xlim(-0.6, len(plot["groups"]) - 0.4)
    elif kind == "arms":
        for name, (x, y) in plot["groups"].items():
            ax.plot(x, y, lw=1.5, label=name)
        for t in plot.get("marks_h", []):
            ax.axvline(t, color=TOL, ls=":", lw=1.2)
    elif kind == "windows":
        for a, b in plot.get("windows", []):
            ax.axvspan(a, b, color=TOL, alpha=0.15)
    if plot.get("hline") is not None:
        ax.axhline(plot["hline"], color=TOL, ls="--", lw=1)
    if plot.get("logx"):
        ax.set_xscale("log")
    if plot.get("logy"):
        ax.set_yscale("log")
    ax.set_xlabel(plot.get("xlabel", ""))
    ax.set_ylabel(plot.get("ylabel", ""))
    value = m.display or f"{fmt(m.value)}"
    if lo is None and hi is None:
        pub = q.get("direction", "qualitative")
    else:
        pub = f"{fmt(lo)}–{fmt(hi)}" if lo != hi else fmt(lo)
    verdict = "PASS" if cr.passed else "FAIL"
    ax.set_title(
        f"{spec.name}: {verdict}\nmodel {value} · published {pub} · tolerance "
        f"{spec.tolerance.text()}",
        fontsize=8,
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best", frameon=False)


#: a case figure wraps its panels into rows of at most this many
PANELS_PER_ROW = 5


def draw_case(result, path) -> Path:
    """Draw one panel per check of ``result`` (a :class:`~.runner.CaseResult`) into ``path``,
    at most :data:`PANELS_PER_ROW` to a row."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io.safe import atomic_output

    case = result.case
    n = len(result.checks)
    ncols = min(n, PANELS_PER_ROW)
    nrows = -(-n // ncols)
    # rows of panels a little smaller than a single row's, to keep the file small
    w, h = (4.2, 3.4) if nrows == 1 else (3.3, 2.75)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(5.0, w * ncols), h * nrows),
                             squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax, spec, cr in zip(axes.ravel(), case.checks, result.checks, strict=False):
        _panel(ax, spec, case.quantity(spec.published), cr)
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
    fig.suptitle(case.title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
