"""Populations and metrics over time."""

from __future__ import annotations

from pathlib import Path

from .frames import _open


def plot_timeseries(source, output=None, *, metrics=None, days=True):
    """Plot counts (left) and chosen metrics (right) against time; return the figure.

    ``metrics`` defaults to every stored metric that is a fraction or a field statistic. The
    figure is saved to ``output`` when given.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    res, owned = _open(source)
    try:
        t = res.time_h / (24.0 if days else 1.0)
        counts = res.counts
        all_metrics = res.metrics
        chosen = metrics or [k for k in all_metrics if k != "tumor_burden"]
        missing = [m for m in chosen if m not in all_metrics]
        if missing:
            from ..errors import UsageError

            raise UsageError(
                f"metric(s) not in {res.path}: {', '.join(missing)}\n  fix: choose from "
                f"{', '.join(all_metrics)}"
            )
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for name, series in counts.items():
            ax1.plot(t, series, label=name)
        ax1.set_xlabel("time (days)" if days else "time (h)")
        ax1.set_ylabel("cells")
        ax1.set_title("populations")
        ax1.legend(frameon=False)
        for name in chosen:
            ax2.plot(t, all_metrics[name], label=f"{name} ({res.units(f'metrics/{name}')})")
        ax2.set_xlabel(ax1.get_xlabel())
        ax2.set_title("metrics")
        ax2.legend(frameon=False, fontsize=8)
        fig.suptitle(f"{res.name} (seed {res.seed})")
        fig.tight_layout()
        if output is not None:
            fig.savefig(Path(output), dpi=120)
        return fig
    finally:
        if owned:
            res.close()
