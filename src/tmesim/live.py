"""A run stepped in this process under outside control: play, pause, step, stop.

:class:`LiveRun` runs :func:`tmesim.runner.run` on a thread of its own and holds it between
steps through the runner's ``progress`` hook, so the run writes its records exactly as
``tmesim run`` does (to ``OUTPUT.partial``, renamed when complete) and anything that reads
result files can follow it while it goes. ``tmesim view --live`` pairs it with the viewer
(:mod:`tmesim.viz.viewer`), which reads the records, never the model.

>>> live = LiveRun("scenarios/tiny.yaml")      # doctest: +SKIP
>>> live.start(); live.step_record(); live.play(); live.status()   # doctest: +SKIP
>>> live.stop()                                 # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from .errors import TmesimError

__all__ = ["LiveRun", "Stopped"]


class Stopped(KeyboardInterrupt):
    """Raised inside the run's thread by :meth:`LiveRun.stop`; the runner then marks the file
    ``interrupted``, so a run with an output of its own can be continued with ``--resume``."""


class LiveRun:
    """A scenario run on a background thread that waits when told to.

    Parameters
    ----------
    scenario : str, Path, Scenario or None
        Scenario file or object, as for :func:`tmesim.run`.
    output : str or Path, optional
        Where the records go; by default a temporary folder removed by :meth:`stop`.
    overrides, seed, overwrite
        As for :func:`tmesim.run`.
    paused : bool
        Start held after the first step (default), so that a viewer shows the initial record
        until it is told to play or step.
    """

    def __init__(self, scenario=None, output=None, *, overrides=(), seed=None, overwrite=False,
                 paused=True):
        from .runner import check_output, resolve_output, resolve_scenario

        self.scenario = sc = resolve_scenario(scenario, overrides, seed)
        self._tmpdir = None
        if output is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="tmesim-live-"))
            output = self._tmpdir / f"{sc.name}.h5"
        self.path = resolve_output(sc, output)
        check_output(self.path, overwrite)
        self._overwrite = overwrite
        self._cv = threading.Condition()
        self._budget = 0 if paused else None  # steps still allowed; None: no limit
        self._stopping = False
        self._state = "not started"
        self._steps = 0
        self._time_h = 0.0
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- control
    def start(self, timeout: float = 600.0) -> LiveRun:
        """Start the run; return once its first record is in the file (or it failed)."""
        if self._thread is not None:
            return self
        self._state = "starting"
        self._thread = threading.Thread(target=self._run, name="tmesim-live", daemon=True)
        self._thread.start()
        with self._cv:
            self._cv.wait_for(lambda: self._state != "starting", timeout=timeout)
        if self._state == "failed":
            raise TmesimError(f"the live run failed: {self.error}")
        return self

    def play(self) -> None:
        """Run on without limit."""
        self._set_budget(None)

    def pause(self) -> None:
        """Hold the run after its current step."""
        self._set_budget(0)

    def step(self, n: int = 1) -> None:
        """Run ``n`` more steps, then hold."""
        self._set_budget(max(int(n), 0))

    def step_record(self) -> None:
        """Run to the next record, then hold."""
        every = self.scenario.record_every_steps
        self.step(every - self._steps % every or every)

    def stop(self, timeout: float = 60.0) -> None:
        """End the run (between two steps) and remove its temporary folder, if it has one."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def status(self) -> dict:
        """``state`` (starting, running, paused, complete, stopped, failed), ``steps``,
        ``n_steps``, ``time_h`` and ``error``."""
        return {
            "state": self._state,
            "steps": self._steps,
            "n_steps": self.scenario.n_steps,
            "time_h": self._time_h,
            "error": self.error,
        }

    # ---------------------------------------------------------------- the run's thread
    def _set_budget(self, budget) -> None:
        with self._cv:
            self._budget = budget
            self._cv.notify_all()

    def _hook(self, model, wall_s) -> None:
        with self._cv:
            self._steps, self._time_h = int(model.steps), float(model.time_h)
            if self._budget:
                self._budget -= 1
            self._state = "running"
            while self._budget == 0 and not self._stopping and model.running:
                self._state = "paused"
                self._cv.notify_all()
                self._cv.wait()
            if self._stopping and model.running:
                raise Stopped
            self._state = "running"
            self._cv.notify_all()

    def _run(self) -> None:
        from .runner import run

        try:
            run(self.scenario, self.path, overwrite=self._overwrite, progress=self._hook)
            state = "complete"
        except Stopped:
            state = "stopped"
        except (TmesimError, OSError) as exc:
            self.error, state = str(exc), "failed"
        except Exception as exc:  # shown in the viewer rather than lost on a thread
            self.error, state = f"unexpected {type(exc).__name__}: {exc}", "failed"
        with self._cv:
            self._state = state
            self._cv.notify_all()
