"""What a run says about its transport solves and threads: /diagnostics in the result file,
`tmesim inspect`'s summary and warnings, `--threads` and TMESIM_THREADS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numba
import numpy as np
import pytest

import tmesim
from conftest import SCENARIOS
from tmesim.cli import main
from tmesim.io.writer import DIAGNOSTICS


def test_diagnostics_recorded_per_record(tiny_result):
    with h5py.File(tiny_result, "r") as f:
        g = f["diagnostics"]
        assert list(g) == ["chemokine", "oxygen"]
        assert set(g["oxygen"]) == set(DIAGNOSTICS)
        solves = g["oxygen/solves"][:]
        assert g["oxygen/solves"].attrs["units"] == "1"
    with tmesim.load(tiny_result) as res:
        d = res.diagnostics["oxygen"]
        steps_per_record = round(res.time_h[1] * 60 / res.scenario.time.dt_min)
        # one implicit oxygen step per agent step; record 0 comes before any step
        assert list(solves) == [0, *[steps_per_record] * (res.n_records - 1)]
        assert np.all(d["failures"] == 0)
        assert np.all(d["max_residual"] <= res.scenario.numerics.solver_rtol)
        assert np.all(d["max_iterations"][1:] >= 1)
        assert res.solver_warnings() == []


def test_inspect_shows_solves(tiny_result, capsys):
    assert main(["inspect", str(tiny_result)]) == 0
    out = capsys.readouterr()
    assert "transport solves:" in out.out
    assert "oxygen" in out.out.split("transport solves:")[1]
    assert "warning" not in out.err
    assert main(["inspect", "--json", str(tiny_result)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["solver"]["oxygen"]["failures"] == 0
    assert info["warnings"] == []


def test_failed_solves_are_reported(tmp_path, capsys):
    out = tmp_path / "f.h5"
    rc = main(["run", str(SCENARIOS / "tiny.yaml"), "-o", str(out), "--set",
               "time.duration_h=0.6", "--set", "numerics.solver_max_iterations=1",
               "--set", "numerics.solver_rtol=1.0e-15"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "warning: oxygen:" in err and "stopped above their tolerance" in err
    with tmesim.load(out) as res:
        assert res.diagnostics["oxygen"]["failures"].sum() > 0
    assert main(["inspect", str(out)]) == 0
    assert "raise numerics.solver_max_iterations" in capsys.readouterr().err


def test_run_summary_names_threads_and_wall_time(tmp_path, capsys):
    old = numba.get_num_threads()
    try:
        out = tmp_path / "t.h5"
        assert main(["run", str(SCENARIOS / "tiny.yaml"), "-o", str(out), "--threads", "1",
                     "--set", "time.duration_h=0.6"]) == 0  # fmt: skip
        err = capsys.readouterr().err
        assert "wall time " in err and " s on 1 Numba thread(s); 2 records" in err
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize("bad", ["0", "-2", "100000"])
def test_bad_thread_count_is_a_usage_error(tmp_path, capsys, bad):
    rc = main(["run", str(SCENARIOS / "tiny.yaml"), "-o", str(tmp_path / "x.h5"),
               "--threads", bad])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "threads must be between 1 and" in err and "fix:" in err
    assert not (tmp_path / "x.h5").exists()


def test_tmesim_threads_environment(tmp_path, capsys, monkeypatch):
    old = numba.get_num_threads()
    try:
        monkeypatch.setenv("TMESIM_THREADS", "1")
        out = tmp_path / "e.h5"
        assert main(["run", str(SCENARIOS / "tiny.yaml"), "-o", str(out),
                     "--set", "time.duration_h=0.6"]) == 0  # fmt: skip
        assert " s on 1 Numba thread(s)" in capsys.readouterr().err
        monkeypatch.setenv("TMESIM_THREADS", "lots")
        assert main(["run", str(SCENARIOS / "tiny.yaml"), "-o", str(tmp_path / "f.h5")]) == 2
        assert "TMESIM_THREADS must be a whole number" in capsys.readouterr().err
    finally:
        numba.set_num_threads(old)


def test_waiting_threads_sleep_by_default():
    """Unless the user chose a policy, OpenMP threads that wait sleep (set before OpenMP loads)."""
    code = "import os, tmesim.kernels._jit; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PASSIVE", out.stderr
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ACTIVE", out.stderr
