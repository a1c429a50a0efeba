"""The interactive viewer (``tmesim view``): its widgets redraw what FrameRenderer draws, it
runs in a real headless Chromium (the page renders the lattice, and the time slider, play, the
field and kind pickers and colour-by change what is on screen), it drives a live run, and bad
input is a one-line usage error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import tmesim
from browser import changed_fraction, distinct_colours, pixels_near
from tmesim.cli import main
from tmesim.viz.frames import CATEGORIES, FrameRenderer

if not os.environ.get("CI"):  # the view extra (the test extra has it; under CI it must be there)
    pytest.importorskip("panel")

TUMOUR = dict(CATEGORIES)["tumour"]


# --------------------------------------------------------------------------- without a browser
def test_widgets_redraw_what_the_frame_renderer_draws(tiny_result):
    from tmesim.viz.viewer import Viewer, _rgba32

    v = Viewer(tiny_result)
    try:
        last = v.res.n_records - 1
        assert v.time.value == last and v.field.value == "oxygen"

        def shown():
            return v.image.data["image"][0]

        def expected(record, field="oxygen", **look):
            r = FrameRenderer(v.res, field, figure=False, **look)
            return _rgba32(r.composite(record))

        np.testing.assert_array_equal(shown(), expected(last))
        v.time.value = 1
        np.testing.assert_array_equal(shown(), expected(1))
        assert "record 1 of" in v.clock.object
        v.field.value = "ecm"
        np.testing.assert_array_equal(shown(), expected(1, "ecm"))
        assert v.field_bar.visible and v.field_bar.title.startswith("ecm")
        v.cmap.value = "magma"
        np.testing.assert_array_equal(shown(), expected(1, "ecm", cmap="magma"))
        v.cmap.value = "default"
        v.kinds.value = ["tcell", "macrophage"]
        np.testing.assert_array_equal(shown(), expected(1, "ecm", kinds=["tcell", "macrophage"]))
        v.kinds.value = []
        np.testing.assert_array_equal(shown(), expected(1, "ecm", cells="none"))
        v.kinds.value = ["tumor", "stem", "tcell", "macrophage", "fibroblast"]
        v.color_by.value = "pdl1"
        np.testing.assert_array_equal(shown(), expected(1, "ecm", color_by="pdl1"))
        assert v.cell_bar.visible and "pdl1" in v.cell_bar.title
        v.cells.value = "outline"
        v.field.value = "(none)"
        np.testing.assert_array_equal(shown(), expected(1, None, color_by="pdl1", cells="outline"))
        assert not v.field_bar.visible
        # play steps through the records and stops at the last one
        v.time.value = last - 1
        v.play.value = True
        v._advance()
        assert v.time.value == last
        v._advance()
        assert v.play.value is False and v.time.value == last
    finally:
        v.close()
    import panel as pn

    from tmesim.viz.viewer import app

    assert isinstance(app(tiny_result), pn.layout.Row)  # the page as a notebook cell shows it


def test_the_z_plane_and_projection_of_a_3d_run(tmp_path):
    from tmesim.viz.viewer import Viewer

    out = tmp_path / "v3d.h5"
    tmesim.run("scenarios/tiny.yaml", out, overrides=["domain.shape=[5, 24, 24]",
                                                      "time.duration_h=1"])
    v = Viewer(out)
    try:
        assert v.z.visible and v.z.value == 2
        images = []
        for z in range(5):
            v.z.value = z
            images.append(v.image.data["image"][0].copy())
        assert len({im.tobytes() for im in images}) == 5  # every plane its own picture
        v.projection.value = True
        proj = FrameRenderer(v.res, "oxygen", figure=False, projection=True)
        assert "max projection" in v.clock.object
        assert (v.image.data["image"][0].view(np.uint8).reshape(24, 24, 4)[..., :3]
                == proj.composite(v.res.n_records - 1)).all()
    finally:
        v.close()


def test_a_file_being_written_is_followed():
    from tmesim.live import LiveRun
    from tmesim.viz.viewer import Viewer

    live = LiveRun("scenarios/tiny.yaml", overrides=["time.duration_h=1",
                                                     "time.record_every_h=0.5"]).start()
    v = Viewer(live.path)  # no controls: as for a run written by another process
    try:
        assert v.res.n_records == 1 and v.time.disabled and v._follow.running
        live.play()
        deadline = time.monotonic() + 60
        while live.status()["state"] != "complete":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        v._poll()
        assert v.res.n_records == 3 and v.time.value == 2 and not v.time.disabled
        assert "record 2 of 2" in v.clock.object
        v._poll()
        assert not v._follow.running  # complete: polling stops
    finally:
        v.close()
        live.stop()


def test_bad_input_is_a_one_line_usage_error(tiny_result, tmp_path, capsys):
    import h5py

    def fails(*args, says):
        assert main(["view", *map(str, args), "--no-browser"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tmesim: error:") and says in err and "Traceback" not in err

    fails(tmp_path / "missing.h5", says="not found")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    fails(tmp_path / "other.h5", says="not a tmesim result")
    fails(tiny_result, "--port", "70000", says="not a TCP port")
    fails(tiny_result, "--field", "nope", says="not stored")
    fails(tiny_result, "--seed", "3", says="live run")
    fails("--live", tmp_path / "none.yaml", "--port", "-1", says="not a TCP port")
    fails("--live", tmp_path / "none.yaml", says="none.yaml")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        fails(tiny_result, "--port", busy.getsockname()[1], says="cannot listen")


def test_the_command_serves_until_interrupted(tiny_result):
    env = {**os.environ, "TMESIM_DEBUG": ""}
    # Ctrl-C at its default in the child, as in a terminal: a disposition of SIG_IGN is
    # inherited across exec, and Python then installs no KeyboardInterrupt handler, so the
    # server would never see the signal (the test process may carry SIG_IGN from an earlier
    # test's worker pool)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmesim", "view", str(tiny_result), "--port", "0", "--no-browser"],
        stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = proc.stderr.readline()
        assert "viewer of" in line, line
        url = line.split(" at ")[-1].strip()
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "tmesim viewer" in page and "bokeh" in page.lower()
        proc.send_signal(signal.SIGINT)
        # read the rest of stderr while waiting: a full pipe would keep the process from exiting
        _, rest = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- in Chromium
def _lattice(browser) -> np.ndarray:
    """The screenshot cropped to the lattice figure (the largest canvas on the page)."""
    rects = browser.driver.execute_script(
        "return arguments[0].map(c => {const r = c.getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height];})", browser.deep("canvas")
    )
    left, top, w, h = (round(v) for v in max(rects, key=lambda r: r[2] * r[3]))
    return browser.screenshot()[top : top + h, left : left + w]


def _select(browser, option, value):
    """Pick ``value`` in the <select> that offers ``option``."""
    el = next(e for e in browser.deep("select")
              if option in [o.get_attribute("value") for o in e.find_elements("css selector", "option")])
    browser.driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", el, value)


def _button(browser, text):
    el = next(e for e in browser.deep("button") if e.text.strip() == text)
    browser.driver.execute_script("arguments[0].click();", el)


@pytest.fixture(scope="module")
def served(tiny_result):
    from tmesim.viz.viewer import serve

    server = serve(tiny_result, port=0, open_browser=False, block=False)
    yield server
    server.stop()


def test_the_viewer_renders_and_responds_in_chromium(browser, served, tiny_result):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    with tmesim.load(tiny_result) as res:
        last = res.n_records - 1
    t0 = time.monotonic()
    browser.open(served.url)
    # rendered: the lattice shows many tumour-coloured pixels, far more than a legend swatch
    browser.wait(lambda: browser.deep("canvas") and pixels_near(_lattice(browser), TUMOUR) > 1500,
                 what="the lattice to render")
    load_s = time.monotonic() - t0
    first = _lattice(browser)
    assert distinct_colours(first) > 60 and first.std() > 20
    assert f"record {last} of {last}" in browser.text()

    # the time slider, moved with the keyboard, shows record 0: another picture
    handle = next(h for h in browser.deep(".noUi-handle")
                  if h.is_displayed() and float(h.get_attribute("aria-valuemax")) == last)
    browser.driver.execute_script("arguments[0].focus();", handle)
    ActionChains(browser.driver).send_keys(Keys.HOME).perform()
    browser.wait(lambda: f"record 0 of {last}" in browser.text(), what="record 0")
    browser.wait(lambda: changed_fraction(_lattice(browser), first) > 0.01, what="a new frame")

    # play runs to the last record and stops there, drawing the first picture again
    _button(browser, "\u25b6 play")
    browser.wait(lambda: f"record {last} of {last}" in browser.text(), timeout=30, what="play")
    browser.wait(lambda: "\u25b6 play" in browser.text(), what="play to stop at the end")
    browser.wait(lambda: changed_fraction(_lattice(browser), first) < 0.002, what="last frame")

    # another field: another picture and colour bar
    _select(browser, "ecm", "ecm")
    browser.wait(lambda: "ecm (density)" in browser.text(), what="the ecm colour bar")
    browser.wait(lambda: changed_fraction(_lattice(browser), first) > 0.05, what="the ecm frame")

    # hiding tumour cells removes their colour from the lattice
    _button(browser, "tumour")
    browser.wait(lambda: pixels_near(_lattice(browser), TUMOUR) < 50, what="tumour cells hidden")
    _button(browser, "tumour")
    browser.wait(lambda: pixels_near(_lattice(browser), TUMOUR) > 1500, what="tumour cells back")

    # colour by a cell column: the palette of kinds gives way to the column's colour bar
    _select(browser, "pgp", "pgp")
    browser.wait(lambda: "cells: pgp" in browser.text(), what="the pgp colour bar")
    browser.wait(lambda: pixels_near(_lattice(browser), TUMOUR) < 50, what="cells coloured by pgp")

    # the mouse wheel zooms in: fewer, larger lattice sites fill the figure
    before = _lattice(browser)
    canvas = max(browser.deep("canvas"), key=lambda c: c.size["width"] * c.size["height"])
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    ActionChains(browser.driver).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -400).perform()
    browser.wait(lambda: changed_fraction(_lattice(browser), before) > 0.2, what="a zoomed frame")
    print(f"viewer page rendered in {load_s:.1f} s")


def test_a_live_run_steps_and_plays_in_chromium(browser):
    from tmesim.live import LiveRun
    from tmesim.viz.viewer import serve

    live = LiveRun("scenarios/tiny.yaml", overrides=["time.duration_h=2",
                                                     "time.record_every_h=0.5"]).start()
    server = serve(live.path, live=live, port=0, open_browser=False, block=False)
    try:
        browser.open(server.url)
        browser.wait(lambda: all(w in browser.text() for w in ("paused", "step 1 of 20",
                                                                "record 0 of 0")),
                     what="the paused live run")
        browser.wait(lambda: browser.deep("canvas") and pixels_near(_lattice(browser), TUMOUR)
                     > 1500, what="the first record")
        first = _lattice(browser)
        _button(browser, "step one record")
        browser.wait(lambda: "record 1 of 1" in browser.text(), what="a stepped record")
        assert live.status()["steps"] == 5
        _button(browser, "\u25b6 play")
        browser.wait(lambda: "complete" in browser.text() and "step 20 of 20" in browser.text(),
                     timeout=60, what="the run to complete")
        browser.wait(lambda: "record 4 of 4" in browser.text(), what="the last record")
        assert changed_fraction(_lattice(browser), first) > 0.005
    finally:
        server.stop()
        live.stop()
    assert not live.path.parent.exists()  # the temporary output is gone
