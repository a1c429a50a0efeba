"""Pictures of a run, drawn only from what :mod:`tmesim.io` wrote.

- :func:`draw_frame` / :func:`snapshot`: one record of the niche (tissue, cells, a field);
- :func:`animate`: a GIF (no external program) or MP4 (needs the ``movie`` extra) of the run;
- :func:`plot_timeseries`: populations and metrics over time.

All functions take a result path or an open :class:`tmesim.io.Results` and work in notebooks.
"""

from .frames import CATEGORIES, FrameRenderer, cell_categories, draw_frame, snapshot
from .movie import animate
from .plots import plot_timeseries
from .timeparse import parse_time_h

__all__ = [
    "CATEGORIES",
    "FrameRenderer",
    "animate",
    "cell_categories",
    "draw_frame",
    "parse_time_h",
    "plot_timeseries",
    "snapshot",
]
