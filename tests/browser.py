"""A real headless browser for the tests: Debian's Chromium driven through its own chromedriver
(selenium), and checks on screenshots.

Where the browser is missing the tests that need it are skipped, except under CI (the ``CI``
environment variable set), where ``.ci/run`` installs it and a missing browser is a failure.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: flags that keep Chromium quiet and self-contained on a machine without a display or network
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1100",
)

#: JavaScript: every element matching a CSS selector, looking inside shadow roots too (Bokeh
#: and Panel draw their widgets in shadow DOM)
_DEEP = """
const sel = arguments[0], out = [];
function walk(root) {
  for (const el of root.querySelectorAll('*')) {
    if (el.matches(sel)) out.push(el);
    if (el.shadowRoot) walk(el.shadowRoot);
  }
}
walk(document);
return out;
"""
#: JavaScript: the text of the page, shadow roots included
_TEXT = """
const parts = [];
function walk(node) {
  if (node.nodeName === 'STYLE' || node.nodeName === 'SCRIPT') return;
  if (node.nodeType === 3) parts.push(node.textContent);
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const c of node.childNodes) walk(c);
}
walk(document.body);
return parts.join(' ');
"""


def unavailable(reason: str):
    """Skip, or fail under CI, where the browser must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)")
    pytest.skip(reason)


class Browser:
    """One headless Chromium for a test module."""

    def __init__(self):
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            unavailable("selenium is not installed (the test extra installs it)")
        if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
            unavailable("Chromium is not installed: apt-get install chromium chromium-driver")
        self._profile = tempfile.mkdtemp(prefix="tmesim-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(60)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def deep(self, selector: str) -> list:
        """Elements matching ``selector``, inside shadow roots too."""
        return self.driver.execute_script(_DEEP, selector)

    def text(self) -> str:
        return " ".join(self.driver.execute_script(_TEXT).split())

    def screenshot(self) -> np.ndarray:
        """The window as an (h, w, 3) uint8 array."""
        from PIL import Image

        png = self.driver.get_screenshot_as_png()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def wait(self, predicate, timeout: float = 30.0, what: str = "the page"):
        """Poll ``predicate()`` until it returns a true value; return that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.2)

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)


def distinct_colours(img: np.ndarray) -> int:
    """Number of distinct RGB colours in an image."""
    flat = img.reshape(-1, 3).astype(np.int64)
    return int(np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]).size)


def pixels_near(img: np.ndarray, rgb, tol: int = 6) -> int:
    """Number of pixels within ``tol`` (per channel, 0-255) of a colour given in 0-1."""
    target = np.round(np.asarray(rgb) * 255).astype(int)
    return int((np.abs(img.astype(int) - target).max(axis=-1) <= tol).sum())


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels that differ between two screenshots (on their common top-left part,
    as a figure grows or shrinks with the width of its colour-bar labels)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:h, :w].astype(int), b[:h, :w].astype(int)
    return float((np.abs(a - b).max(axis=-1) > 8).mean())


def check_html_page(browser, path, *, images: int) -> np.ndarray:
    """Open a local HTML file; assert that it loads, that it has ``images`` <img> elements that
    all decoded to real pictures and that the screenshot is not blank; return the screenshot."""
    browser.open(path.resolve().as_uri())
    browser.wait(lambda: browser.driver.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images)"
        ".every(i => i.complete)"), what="the page and its images")
    sizes = browser.driver.execute_script(
        "return Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == images, sizes
    assert all(w > 200 and h > 200 for w, h in sizes), sizes  # every image decoded
    shot = browser.screenshot()
    assert distinct_colours(shot) > 50 and shot.std() > 10
    return shot
