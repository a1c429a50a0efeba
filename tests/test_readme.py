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


def test_the_kernel_cache_is_where_the_docs_say(monkeypatch, tmp_path):
    """docs/cluster.md and docs/architecture.md: kernels-<digest> under TMESIM_CACHE_DIR, else
    NUMBA_CACHE_DIR, else $XDG_CACHE_HOME/tmesim, by default ~/.cache/tmesim."""
    from tmesim.kernels._jit import cache_dir, source_digest

    claim = "`NUMBA_CACHE_DIR`, else `$XDG_CACHE_HOME/tmesim`, by default `~/.cache/tmesim`"
    for doc in ("cluster.md", "architecture.md"):
        text = " ".join((ROOT / "docs" / doc).read_text(encoding="utf-8").split())
        assert "`kernels-<digest>`" in text and "`TMESIM_CACHE_DIR`" in text, doc
        assert claim in text, doc
    leaf = f"kernels-{source_digest()}"
    for name in ("TMESIM_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tmesim" / leaf
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tmesim" / leaf
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert cache_dir() == tmp_path / "numba" / leaf
    monkeypatch.setenv("TMESIM_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own" / leaf


def _documented_commands() -> list[tuple[str, str]]:
    """(file, command) of every ``tmesim ...`` line in the bash blocks of the README and the
    docs (continuation lines joined, comments and redirections dropped)."""
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                for part in re.split(r"&&|\|", line.split(" #")[0]):
                    part = part.split(">")[0].strip().removeprefix(".venv/bin/")
                    if part.startswith("tmesim "):
                        out.append((path.name, part))
    return out


def test_every_documented_command_line_parses():
    """Every subcommand and option the README and the docs show exists as written (parsed by
    the real argument parser, not run)."""
    import shlex

    from tmesim.cli import build_parser

    commands = _documented_commands()
    assert len(commands) >= 30
    bad = []
    for name, command in commands:
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit as exc:
            if exc.code:
                bad.append(f"{name}: {command}")
    assert not bad, "\n".join(bad)
