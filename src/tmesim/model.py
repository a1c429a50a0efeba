"""TMEModel: the tumour microenvironment as a Mesa model.

:class:`TMEModel` is :class:`tmesim.simulation.Simulation` (the phases of a step, the state, the
counts and metrics) as a ``mesa.Model``: Mesa counts its steps and owns its ``rng``, and a
``DataCollector`` records the populations, every metric and the kills once at construction and
after every step, so ``mesa.batch_run`` and Mesa workflows drive it as any Mesa model.
"""

from __future__ import annotations

import mesa

from . import kinds
from .simulation import METRIC_UNITS, PDL1_POSITIVE, POPULATIONS, Simulation
from .tissue import build_tissue

__all__ = ["METRIC_UNITS", "PDL1_POSITIVE", "POPULATIONS", "TMEModel", "build_tissue"]


class TMEModel(Simulation, mesa.Model):
    """Agent-based model of a tumour microenvironment, as a ``mesa.Model``.

    Takes the arguments of :class:`~tmesim.simulation.Simulation`: ``scenario`` (a Scenario, a
    YAML path, a dict of keys, or ``None`` for the packaged default), ``rng`` (the seed) and
    scenario keys as keywords, dotted or with ``__`` for the dots (what ``mesa.batch_run``
    sweeps).

    Examples
    --------
    >>> model = TMEModel(**{"time.duration_h": 1, "domain.shape": [40, 40]})
    >>> while model.running:
    ...     model.step()
    >>> model.steps
    10
    """

    def _start(self, seed: int) -> None:
        mesa.Model.__init__(self, rng=seed)

    def _observe(self) -> None:
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "time_h": "time_h",
                **{p: (lambda m, p=p: m._counts_now()[p]) for p in kinds.populations()},
                **{k: (lambda m, k=k: m._metrics_now()[k]) for k in self.metric_units()},
                "kills": lambda m: m.events["kills"],
            }
        )
        self.datacollector.collect(self)

    def step(self) -> None:
        """Advance one agent step (:meth:`Simulation.step`), then collect the scalars."""
        super().step()
        self.datacollector.collect(self)

    def _counts_now(self) -> dict[str, int]:
        """:meth:`population_counts`, computed once per step for the DataCollector's reporters."""
        if getattr(self, "_counts_step", None) != self.steps:
            self._counts_cache = self.population_counts()
            self._counts_step = self.steps
        return self._counts_cache

    def _metrics_now(self) -> dict[str, float]:
        """:meth:`metrics`, computed once per step for the DataCollector's reporters."""
        if getattr(self, "_metrics_step", None) != self.steps:
            self._metrics_cache = self.metrics()
            self._metrics_step = self.steps
        return self._metrics_cache
