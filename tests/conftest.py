"""Shared fixtures: Numba warm-up once per session, and one tiny result file for read-only tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
TINY = SCENARIOS / "tiny.yaml"


def run_cli(*args, cwd=None, env=None, timeout=300):
    """Run ``python -m tmesim ARGS`` as a real subprocess; return the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TMESIM_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "tmesim", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def as_the_model_calls(kernel):
    """``kernel``, called with its named-tuple arguments (``CellArrays``, ``Lattice``,
    ``FieldViews``, ``StepKeys``, ``Intents``) as the plain tuples the model passes
    (behaviour.py). Numba types a named tuple apart from a plain one, so a test calling with
    named tuples would compile, and test, a second specialisation of every kernel it calls."""

    def call(*args):
        return kernel(*(tuple(a) if isinstance(a, tuple) else a for a in args))

    call.__wrapped__ = kernel
    return call


def kill_when(args, ready, timeout=120):
    """Start ``args``; SIGKILL it as soon as ``ready()`` is true; return the process."""
    import signal
    import time

    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never wrote enough records"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc


def run_checking_ledgers(model) -> float:
    """Step ``model`` to its end; return the worst relative gap, over steps and dosed agents,
    between an agent's ledger entries and its ``dosed`` (docs/pharmacology.md §9)."""
    from tmesim.therapy import LEDGER_KEYS

    worst = 0.0
    while model.running:
        model.step()
        for entry in model.therapy.ledger().values():
            if entry["dosed"] > 0:
                accounted = sum(entry[k] for k in LEDGER_KEYS if k != "dosed")
                worst = max(worst, abs(accounted - entry["dosed"]) / entry["dosed"])
    return worst


@pytest.fixture(scope="session", autouse=True)
def warm_numba_kernels():
    """Compile (or load from cache) every kernel a step uses, once per test session."""
    from tmesim import TMEModel

    model = TMEModel(TINY, **{"time.duration_h": 0.2})
    model.step()
    return model


@pytest.fixture(scope="session")
def tiny_result(tmp_path_factory) -> Path:
    """scenarios/tiny.yaml run once through the command line (in process) into a tmp dir."""
    from tmesim.cli import main

    path = tmp_path_factory.mktemp("tiny") / "tiny.h5"
    rc = main(["run", str(TINY), "-o", str(path), "-q"])
    assert rc == 0
    assert path.is_file()
    return path


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (tests/browser.py); skipped where it is missing, except under CI."""
    from browser import Browser

    b = Browser()
    yield b
    b.close()
