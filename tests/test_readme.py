"""The README's Python code blocks run as written, from a folder holding the scenario library
(what a reader has after the README's set-up with the ``analysis`` extra, which the ``test``
extra includes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"README block {index} failed:\n{BLOCKS[index]}\n{proc.stderr}"


def test_ci_runs_the_readme_test_command_with_the_browser_tests_required():
    """``.ci/run`` runs the README's test command as written, installs Chromium when missing, and
    sets ``CI`` so that a missing browser fails the browser tests instead of skipping them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Run the tests"):]
    command = re.search(r"```bash\n(.*?)\n```", section, re.S).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines()]
    assert command in lines
    assert "export CI=1" in lines and lines.index("export CI=1") < lines.index(command)
    assert "apt-get install -y -qq chromium chromium-driver" in ci
    assert "set -euo pipefail" in lines  # a failed install stops the run
