"""What the command line prints: progress lines for logs and pipes, the end-of-run summary, and
quiet handling of a reader that goes away (``tmesim inspect out.h5 | head``)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from tmesim.cli import _LineProgress, main
from tmesim.kinds import populations


class _Model:
    """The few attributes a progress display reads."""

    class scenario:
        name = "fake"

    n_steps = 200
    dt_min = 6.0
    running = True
    steps = 0
    time_h = 0.0

    def population_counts(self):
        return dict.fromkeys(populations(), 1)


def _progress_lines(every_pct: float, wall_s) -> list[str]:
    """The lines of a line progress over a whole run of :class:`_Model`, step k ending at
    ``wall_s(k)`` seconds."""
    out = io.StringIO()
    p = _LineProgress(every_pct, stream=out)
    m = _Model()
    for step in range(1, m.n_steps + 1):
        m.steps, m.time_h = step, step * m.dt_min / 60
        m.running = step < m.n_steps
        p(m, wall_s=wall_s(step))
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    return text.splitlines()


def test_line_progress_prints_every_n_percent_with_an_eta():
    lines = _progress_lines(25.0, lambda step: 0.1 * step)
    # a line after the first step (the run has started), then every 25 %
    assert [re.search(r"(\d+\.\d)%", line).group(1) for line in lines] == [
        "0.5", "25.0", "50.0", "75.0", "100.0"
    ]
    assert "eta 0:15" in lines[1] and "elapsed 0:05" in lines[1]  # 5 s for 25 %: 15 s left
    assert "eta ?" in lines[0]  # one step says nothing about the pace yet


def test_the_eta_leaves_out_the_first_step_that_compiles_the_kernels():
    """A first step of 36 s (set-up and compilation) and 0.1 s per step after it: at 10 % the
    ETA is the 180 steps left at 0.1 s, not 36 s scaled to the whole run."""
    lines = _progress_lines(10.0, lambda step: 36.0 + 0.1 * (step - 1))
    line = next(x for x in lines if " 10.0%" in x)
    assert "eta 0:18" in line and "elapsed 0:38" in line


def test_run_to_a_log_prints_lines_and_a_summary(tmp_path):
    out = tmp_path / "t.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "tmesim", "run", "scenarios/tiny.yaml", "-o", str(out),
         "--set", "time.duration_h=6", "--progress-every", "50"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "50.0%" in err and "100.0%" in err and "eta" in err
    assert "\x1b" not in err  # no terminal escapes in a log
    summary = err[err.index("wrote"):]
    assert re.search(r"wall time [\d.]+ s on \d+ Numba thread", summary)
    assert "3 records" in summary and "MB" in summary


def test_bad_progress_interval_is_a_usage_error(capsys):
    assert main(["run", "scenarios/tiny.yaml", "--progress-every", "0"]) == 2
    assert "fix:" in capsys.readouterr().err


def test_broken_pipe_is_quiet(monkeypatch, capsys):
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["schema"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipe")
def test_inspect_into_head_has_no_error(tmp_path):
    proc = subprocess.run(
        f"{sys.executable} -m tmesim schema | head -n 1",
        shell=True, capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.strip() == "{"
    assert "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr
