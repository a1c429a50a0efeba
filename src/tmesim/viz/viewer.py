"""An interactive viewer of a result file in the browser or in Jupyter (``tmesim view``).

Built on Panel (the ``view`` extra): a Bokeh figure of the lattice with zoom and pan, a time
slider with play and pause, pickers for the field, its colour scale, the cell kinds shown, the
cell style and a cell column to colour by, a z-plane slider and a projection switch for 3-D
runs, and the populations over time with the current time marked.

The lattice image is :meth:`FrameRenderer.composite` of the record and plane shown, so the
viewer draws exactly the colours, scales and cell styles of ``tmesim snapshot``. Like the rest
of :mod:`tmesim.viz` it reads only the result file. A run that is still being written (by
``tmesim run`` in another process, or by a :class:`tmesim.live.LiveRun` given as ``live``) is
followed: new records appear as they are written, and ``live`` adds step, play and pause
buttons that drive the run.

>>> from tmesim.viz.viewer import app, serve      # doctest: +SKIP
>>> app("out.h5")                                 # in a notebook cell   # doctest: +SKIP
>>> serve("out.h5", port=5006)                    # a browser tab; Ctrl-C ends it   # doctest: +SKIP
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np

from .. import kinds as registry
from ..errors import UsageError
from ..io import load
from .frames import CELL_STYLES, FrameRenderer, cell_columns

#: entry of the colour-map picker that takes the renderer's default (light greys under cells,
#: viridis without cells: :func:`tmesim.viz.frames.default_field_cmap`)
AUTO_CMAP = "default"
#: colour maps offered for the field
FIELD_CMAPS = (AUTO_CMAP, "light_greys", "viridis", "magma", "cividis", "plasma", "Greys")
#: entry of the colour-by picker that keeps the palette of kinds and states
BY_KIND = "kind and state"
#: entry of the field picker that draws no field
NO_FIELD = "(none)"


def _panel():
    try:
        import panel as pn
    except ImportError:
        raise UsageError(
            "the viewer needs the Python package panel\n  fix: pip install 'tmesim[view]' "
            "(or pip install panel)"
        ) from None
    return pn


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(round(255 * float(c)) for c in rgb[:3]))


def _palette(cmap, n: int = 256) -> list[str]:
    return [_hex(c) for c in cmap(np.linspace(0.0, 1.0, n))]


def _rgba32(rgb: np.ndarray) -> np.ndarray:
    """An (h, w, 3) uint8 image as the (h, w) uint32 array of Bokeh's ``image_rgba``."""
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out.view(np.uint32)[..., 0]


class Viewer:
    """The viewer of one result file: Panel widgets around a Bokeh figure.

    Parameters
    ----------
    path : str or Path
        A result file (or the output of a run being written: its ``.partial`` is read).
    live : object, optional
        Controls of the run writing ``path`` (a :class:`tmesim.live.LiveRun`: ``play()``,
        ``pause()``, ``step_record()``, ``status()``).
    field : str, optional
        Field shown first (default: oxygen when stored).
    interval_ms : int
        Pace of play, and of polling a run that is being written.
    """

    def __init__(self, path, *, live=None, field: str | None = None, interval_ms: int = 400):
        pn = _panel()
        self.path = Path(path)
        self.live = live
        self.res = load(self.path)
        self._renderer = None
        self._key = None
        self._callbacks = []
        res = self.res
        fields = res.field_names
        if field is not None and field not in fields:
            raise UsageError(
                f"field '{field}' is not stored in {res.path}\n  fix: choose one of "
                f"{', '.join(fields) or '(none stored)'}"
            )
        first = field or ("oxygen" if "oxygen" in fields else NO_FIELD)
        nz, ny, nx = FrameRenderer(res, figure=False, cells="none").grid.shape
        self.shape = (nz, ny, nx)
        w = pn.widgets
        last = max(res.n_records - 1, 0)
        self.time = w.IntSlider(label="record", start=0, end=max(last, 1), value=last,
                                disabled=last == 0, sizing_mode="stretch_width")
        self.play = w.Toggle(label="\u25b6 play", color="primary", width=110)
        self.field = w.Select(label="field", options=[NO_FIELD, *fields], value=first)
        self.log = w.Checkbox(label="log colour scale", value=False)
        self.cmap = w.Select(label="field colour map", options=list(FIELD_CMAPS), value=AUTO_CMAP)
        self.cells = w.RadioButtonGroup(label="cells", options=list(CELL_STYLES), value="solid")
        self.kinds = w.CheckButtonGroup(
            label="cell kinds", options={k.label: k.name for k in registry.all_kinds()},
            value=list(registry.names()), orientation="vertical",
        )
        self.color_by = w.Select(label="colour cells by", options=[BY_KIND, *cell_columns(res)],
                                 value=BY_KIND)
        self.z = w.IntSlider(label="z plane", start=0, end=max(nz - 1, 1), value=nz // 2,
                             visible=nz > 1)
        self.projection = w.Checkbox(label="max projection along z", value=False, visible=nz > 1)
        self.step = w.Button(label="step one record", visible=live is not None, width=140)
        self.clock = pn.pane.Markdown("", margin=(0, 10))
        self.status = pn.pane.Markdown("", visible=live is not None, margin=(0, 10))
        self.message = pn.pane.Markdown("", margin=(0, 10), styles={"color": "#a00"})
        self.legend = pn.pane.HTML("", width=200)
        self._build_figures(nx, ny)
        look = [self.field, self.log, self.cmap, self.cells, self.kinds, self.color_by, self.z,
                self.projection]
        for widget in look:
            widget.param.watch(self._redraw, "value")
        self.time.param.watch(self._redraw, "value")
        self.play.param.watch(self._on_play, "value")
        self.step.on_click(self._on_step)
        self._tick = pn.state.add_periodic_callback(self._advance, period=interval_ms,
                                                    start=False)
        self._callbacks.append(self._tick)
        self._follow = None
        if live is not None or not res.complete:
            self._follow = pn.state.add_periodic_callback(self._poll, period=interval_ms)
            self._callbacks.append(self._follow)
        controls = pn.Column(
            pn.pane.Markdown(f"### {res.name}", margin=(0, 10)),
            self.status,
            pn.Row(self.play, self.step),
            self.field, self.cmap, self.log,
            pn.pane.Markdown("**cells**", margin=(0, 10)), self.cells, self.color_by,
            pn.pane.Markdown("**cell kinds shown**", margin=(0, 10)), self.kinds,
            self.z, self.projection,
            width=300,
        )
        self.layout = pn.Row(
            controls,
            pn.Column(self.time, self.clock, self.message, pn.pane.Bokeh(self.fig),
                      pn.pane.Bokeh(self.series)),
            self.legend,
        )
        self._redraw()

    # ---------------------------------------------------------------- figures
    def _build_figures(self, nx, ny) -> None:
        from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper, Range1d, Span
        from bokeh.plotting import figure

        v = self._voxel = float(self.res.f.attrs["voxel_um"])
        width, height = nx * v, ny * v
        scale = 620 / max(width, height)
        self.fig = figure(
            x_range=Range1d(0, width, bounds=(0, width)),
            y_range=Range1d(height, 0, bounds=(0, height)),  # y down, as in snapshots
            frame_width=round(width * scale), frame_height=round(height * scale),
            tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
            x_axis_label="x (\u00b5m)", y_axis_label="y (\u00b5m)", toolbar_location="above",
        )
        self.image = ColumnDataSource({"image": [np.zeros((ny, nx), np.uint32)]})
        self.fig.image_rgba(image="image", x=0, y=0, dw=width, dh=height, source=self.image)
        self.field_bar = ColorBar(color_mapper=LinearColorMapper(palette=["#000000"]), width=14,
                                  title="", visible=False)
        self.cell_bar = ColorBar(color_mapper=LinearColorMapper(palette=["#000000"]), width=14,
                                 title="", visible=False)
        self.fig.add_layout(self.field_bar, "right")
        self.fig.add_layout(self.cell_bar, "right")
        series = figure(height=220, width=self.fig.frame_width + 140, x_axis_label="day",
                        y_axis_label="cells", toolbar_location=None)
        counts = self.res.counts
        days = self.res.time_h / 24.0
        colours = registry.population_colours()
        self.lines = {}
        for name, values in counts.items():
            src = ColumnDataSource({"day": days, "n": values})
            series.line("day", "n", source=src, color=colours.get(name, "#888888"),
                        legend_label=name, line_width=2)
            self.lines[name] = src
        series.legend.label_text_font_size = "8pt"
        series.add_layout(series.legend[0], "right")  # beside the curves, not over them
        self.now = Span(location=0, dimension="height", line_color="black", line_dash="dashed")
        series.add_layout(self.now)
        self.series = series

    def _colour_bar(self, bar, norm, cmap, title) -> None:
        from bokeh.models import LinearColorMapper, LogColorMapper

        if norm is None:
            bar.visible = False
            return
        kind = LogColorMapper if type(norm).__name__ == "LogNorm" else LinearColorMapper
        bar.color_mapper = kind(palette=_palette(cmap), low=norm.vmin, high=norm.vmax)
        bar.title = title
        bar.visible = True

    # ---------------------------------------------------------------- drawing
    def look(self) -> dict:
        """The keyword options of :class:`FrameRenderer` chosen in the widgets."""
        kinds = list(self.kinds.value)
        return {
            "field": None if self.field.value == NO_FIELD else self.field.value,
            "log": bool(self.log.value),
            "cmap": None if self.cmap.value == AUTO_CMAP else self.cmap.value,
            "cells": self.cells.value,
            "color_by": None if self.color_by.value == BY_KIND else self.color_by.value,
            "kinds": None if len(kinds) == registry.count() else (kinds or ["none"]),
            "z": int(self.z.value) if self.shape[0] > 1 else None,
            "projection": bool(self.projection.value),
        }

    def renderer(self) -> FrameRenderer:
        """The renderer of the current look (rebuilt when the look or the records change)."""
        look = self.look()
        key = (repr(sorted(look.items())), self.res.n_records)
        if key != self._key:
            field = look.pop("field")
            kinds = look["kinds"]
            if kinds == ["none"]:  # every kind hidden: draw no cells
                look.update(kinds=None, cells="none")
            self._renderer = FrameRenderer(self.res, field, figure=False, **look)
            self._key = key
        return self._renderer

    def _redraw(self, *_events) -> None:
        from ..errors import TmesimError

        record = min(int(self.time.value), self.res.n_records - 1)
        try:
            r = self.renderer()
            rgb = r.composite(record)
        except TmesimError as exc:  # e.g. no positive value for a log scale: say so, keep going
            self.message.object = str(exc).split("\n")[0]
            return
        self.message.object = ""
        self.image.data = {"image": [_rgba32(rgb)]}
        self._colour_bar(self.field_bar, r.field_norm, r.field_cmap,
                         r.field_label + {"neither": ""}.get(r.field_extend, " (clipped)"))
        self._colour_bar(self.cell_bar, r._cell_norm, r._cell_cmap, r.cell_label)
        t = float(self.res.time_h[record])
        plane = ""
        if self.shape[0] > 1:
            plane = "  \u00b7  max projection" if r.projection else f"  \u00b7  z plane {r.mid}"
        shown = "".join(f"  \u00b7  {label}" for label in (r.field_label, r.cell_label) if label)
        self.clock.object = (f"**day {t / 24:.2f}** ({t:g} h)  \u00b7  record {record} of "
                             f"{self.res.n_records - 1}{plane}{shown}")
        self.now.location = t / 24.0
        self.legend.object = self._legend_html(r)

    @staticmethod
    def _legend_html(r: FrameRenderer) -> str:
        cells, tissue = r.legend_entries()

        def block(title, entries):
            rows = "".join(
                f'<div><span style="display:inline-block;width:14px;height:14px;'
                f'background:{_hex(c)};border:1px solid #777;margin-right:6px;'
                f'vertical-align:middle"></span>{n}</div>'
                for n, c in entries
            )
            return f"<p style='margin:8px 0 2px'><b>{title}</b></p>{rows}" if entries else ""

        return block("cells", cells) + block("tissue", tissue)

    # ---------------------------------------------------------------- time and the live run
    def _on_play(self, event) -> None:
        self.play.label = "\u23f8 pause" if event.new else "\u25b6 play"
        if self.live is not None:
            (self.live.play if event.new else self.live.pause)()
            return
        if event.new:
            if self.time.value >= self.res.n_records - 1:
                self.time.value = 0
            self._tick.start()
        elif self._tick.running:
            self._tick.stop()

    def _on_step(self, _event) -> None:
        if self.live is not None:
            self.play.value = False
            self.live.step_record()

    def _advance(self) -> None:
        if self.time.value < self.res.n_records - 1:
            self.time.value += 1
        else:
            self.play.value = False

    def _poll(self) -> None:
        """Follow a run that is being written: new records, and the live run's state."""
        if self.live is not None:
            st = self.live.status()
            text = f"**{st['state']}**, step {st['steps']} of {st['n_steps']}"
            if st["error"]:
                text += f": {st['error'].splitlines()[0]}"
            self.status.object = text
            if st["state"] in ("complete", "failed", "stopped") and self.play.value:
                self.play.value = False
        try:
            fresh = load(self.path)
        except UsageError:
            return
        if fresh.n_records <= self.res.n_records:
            if fresh.complete and self.live is None and self._follow.running:
                self._follow.stop()  # the run in another process is done: nothing more comes
            fresh.close()
            return
        following = self.time.value >= self.res.n_records - 1
        self.res.close()
        self.res = fresh
        last = fresh.n_records - 1
        self.time.param.update(end=max(last, 1), disabled=last == 0)
        for name, src in self.lines.items():
            src.data = {"day": fresh.time_h / 24.0, "n": fresh.counts[name]}
        if following:
            self.time.value = last  # redraws
        else:
            self._redraw()

    def close(self) -> None:
        """Stop the callbacks and close the file."""
        for cb in self._callbacks:
            if cb.running:
                cb.stop()
        self.res.close()


def app(path, *, live=None, field: str | None = None, interval_ms: int = 400):
    """The viewer's Panel layout, e.g. to show in a notebook cell (load ``pn.extension()``)."""
    return Viewer(path, live=live, field=field, interval_ms=interval_ms).layout


class ViewerServer:
    """A viewer served on a thread of its own: ``url``, ``port`` and :meth:`stop`."""

    def __init__(self, server, loop, thread, host):
        self._server, self._loop, self._thread = server, loop, thread
        self.port = int(server.port)
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}/"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread."""
        if self._thread.is_alive():
            self._loop.add_callback(self._server.stop)
            self._loop.add_callback(self._loop.stop)
            self._thread.join(timeout)


def check_port(port) -> int:
    """``port`` as an int from 0 to 65535, else a UsageError."""
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = -1
    if not 0 <= port <= 65535:
        raise UsageError(
            f"port {port} is not a TCP port\n  fix: give --port from 1024 to 65535, or 0 for "
            "any free port"
        )
    return port


def _start(make, port: int, host: str) -> ViewerServer:
    """Start a Panel server of the app ``make()`` on a new thread; raise UsageError when it
    cannot listen."""
    pn = _panel()
    from panel.io.server import get_server
    from tornado.ioloop import IOLoop

    ready = threading.Event()
    box = {}

    def run():
        import asyncio

        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            origins = ["localhost", "127.0.0.1", host]  # any port
            server = get_server(make, port=port, address=host, loop=loop, show=False,
                                start=False, title="tmesim viewer", verbose=False,
                                websocket_origin=["*"] if host in ("0.0.0.0", "") else origins)
            server.start()
        except (OSError, OverflowError) as exc:
            box["error"] = exc
            ready.set()
            return
        box["server"], box["loop"] = server, loop
        ready.set()
        loop.start()
        loop.close(all_fds=True)

    pn.extension()
    thread = threading.Thread(target=run, name="tmesim-viewer", daemon=True)
    thread.start()
    ready.wait()
    if "error" in box:
        exc = box["error"]
        raise UsageError(
            f"the viewer cannot listen on {host} port {port}: "
            f"{getattr(exc, 'strerror', None) or exc}\n  fix: choose another --port (0 picks a "
            "free one), or check --host"
        )
    return ViewerServer(box["server"], box["loop"], thread, host)


def serve(path, *, port: int = 5006, host: str = "127.0.0.1", open_browser: bool = True,
          block: bool = True, live=None, field: str | None = None, interval_ms: int = 400):
    """Serve the viewer of a result file at ``http://HOST:PORT/``.

    With ``block`` (the command line) serve until Ctrl-C and return None; else return a
    :class:`ViewerServer` to :meth:`~ViewerServer.stop` later. ``port=0`` picks a free port.
    ``live`` is a started :class:`tmesim.live.LiveRun` whose output is ``path``.
    """
    port = check_port(port)
    with load(path) as res:  # a missing or foreign file is a usage error before serving
        if res.n_records == 0:
            raise UsageError(f"{res.path} holds no complete record\n  fix: run the scenario first")
        if field is not None and field not in res.field_names:
            raise UsageError(
                f"field '{field}' is not stored in {res.path}\n  fix: choose one of "
                f"{', '.join(res.field_names) or '(none stored)'}"
            )

    def make():
        import panel as pn

        viewer = Viewer(path, live=live, field=field, interval_ms=interval_ms)
        pn.state.on_session_destroyed(lambda _ctx: viewer.close())
        return viewer.layout

    server = _start(make, port, host)
    print(f"tmesim: viewer of {path} at {server.url}", file=sys.stderr)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    if not block:
        return server
    print("  press Ctrl-C to stop", file=sys.stderr)
    try:
        while server._thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return None


__all__ = ["Viewer", "ViewerServer", "app", "check_port", "serve"]
