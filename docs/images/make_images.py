"""Make the pictures in docs/images/ with the code of this revision.

    .venv/bin/python docs/images/make_images.py

Every picture comes from the command line, as a user would type it (the commands are printed),
on short runs of the packaged scenarios: four simulated days, one core, about two minutes in all
(a little over one minute of CPU).
The viewer screenshot needs the ``view`` extra, selenium (both in the ``test`` extra) and
Debian's Chromium (``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCENARIOS = ROOT / "scenarios"
#: the largest PNG kept in the repository
MAX_BYTES = 300_000
DAYS = 4


def tmesim(*args) -> None:
    """Run one tmesim command (printed first) with one thread; stop on failure."""
    cmd = ["tmesim", *map(str, args)]
    print("$ " + shlex.join(cmd), flush=True)
    env = {**os.environ, "TMESIM_THREADS": "1", "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-m", "tmesim", *cmd[1:]], check=True, cwd=ROOT, env=env)


def shrink(png: Path) -> None:
    """Quantise a PNG to 256 colours when it is larger than MAX_BYTES."""
    from PIL import Image

    if png.stat().st_size > MAX_BYTES:
        Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)
    size = png.stat().st_size
    assert size <= MAX_BYTES, f"{png} is {size} bytes"
    print(f"  {png.relative_to(ROOT)}: {size / 1000:.0f} kB")


def viewer_screenshot(result: Path, out: Path) -> None:
    """The viewer of ``result`` in headless Chromium, as a PNG."""
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import Browser, pixels_near
    from tmesim.viz.frames import CATEGORIES
    from tmesim.viz.viewer import serve

    print(f"$ tmesim view {result.name} --no-browser   # and a screenshot in headless Chromium")
    server = serve(result, port=0, open_browser=False, block=False)
    browser = Browser()
    browser.driver.set_window_size(1400, 1250)
    try:
        browser.open(server.url)
        tumour = dict(CATEGORIES)["tumour"]
        browser.wait(lambda: browser.deep("canvas") and pixels_near(browser.screenshot(), tumour)
                     > 500, what="the viewer to render")
        time.sleep(1.0)
        browser.driver.get_screenshot_as_file(str(out))
    finally:
        browser.close()
        server.stop()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tmesim-images-"))
    try:
        make(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make(tmp: Path) -> None:
    hours = f"time.duration_h={24 * DAYS}"

    # the untreated niche after four days, oxygen under the cells
    base = tmp / "baseline.h5"
    tmesim("run", SCENARIOS / "baseline.yaml", "-o", base, "--set", hours, "--set",
           "time.record_every_h=6", "-q")
    tmesim("snapshot", base, "--field", "oxygen", "-o", HERE / "snapshot.png", "--overwrite")

    # does tariquidar help against a P-gp-high metastasis? The packaged pair dose from day 5;
    # here from day 1, so that four days show the doses' effect
    early = {
        "pgp_high_free_doxorubicin": "[{agent: doxorubicin, dose_mg_per_kg: 5.0, start_h: 24.0,"
        " every_h: 48.0, count: 2}]",
        "pgp_inhibition": "[{agent: tariquidar, dose_mg_per_kg: 2.0, start_h: 23.0, every_h: 48.0,"
        " count: 2}, {agent: doxorubicin, dose_mg_per_kg: 5.0, start_h: 24.0, every_h: 48.0,"
        " count: 2}]",
    }
    pair = []
    for name, therapy in early.items():
        path = tmp / f"{name}.yaml"
        path.write_text(f"extends: {SCENARIOS / name}.yaml\nname: {name}\ntherapy: {therapy}\n")
        pair.append(path)
    cmp = tmp / "cmp"
    tmesim("compare", *pair, "--replicates", 3, "--paired", "--set", "domain.shape=[80,80]",
           "--set", hours, "--set", "time.record_every_h=3", "--workers", 1, "-o", cmp, "-q")
    (HERE / "compare.png").write_bytes((cmp / "timeseries.png").read_bytes())

    # one treated replicate over time, the doses marked
    tmesim("plot", cmp / "pgp_inhibition" / "rep_0.h5", "-o", HERE / "plot.png", "--overwrite")

    # a 3-D patch: orthogonal slices through its centre
    cube = tmp / "cube.h5"
    tmesim("run", SCENARIOS / "tiny.yaml", "-o", cube, "--set", "domain.shape=[12,40,40]",
           "--set", "time.duration_h=24", "-q")
    tmesim("snapshot", cube, "--slices", "--field", "oxygen", "-o", HERE / "slices.png",
           "--overwrite")

    viewer_screenshot(base, HERE / "viewer.png")
    for name in ("snapshot", "plot", "compare", "slices", "viewer"):
        shrink(HERE / f"{name}.png")


if __name__ == "__main__":
    main()
