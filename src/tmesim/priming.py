"""Priming of CD8 T cells in a lumped lymph node (docs/biology.md §5.8).

Three scalar states, stepped once per agent step after the cell phase has removed the dead:

* ``danger`` ``c`` (units of the concentration that matures half the antigen-presenting cells):
  relaxes to its baseline ``c0`` at ``k_c`` and jumps by ``delta * I / N`` per step, where ``I``
  is the number of immunogenic deaths of the step (the sum of their immunogenic shares) and ``N``
  the live cancer cells, the volume the danger signal is diluted in;
* ``antigen`` ``A`` (cancer-cell equivalents of antigen presented by mature dendritic cells in
  the node): every cancer death adds one, lost at ``k_A`` (the death of mature APCs);
* ``effectors`` ``E`` (primed CD8 T cells expanding in the node and in transit):
  ``dE/dt = R H(c) A / (A + A50) - E / tau`` with ``H(c) = c / (1 + c)``: at most ``R`` primed
  cells per hour, half of it at ``A50`` cell-equivalents of antigen; they enter the tissue at
  ``E / tau``.

``c`` and ``A`` are solved exactly for inputs that arrive at the end of the step; ``E`` by one
backward-Euler step (unconditionally stable, never negative). No random numbers: the arrivals
drawn from ``E / tau`` use the keyed Poisson stream of :class:`tmesim.behaviour.CellDynamics`.
"""

from __future__ import annotations

import math
from typing import ClassVar


class Priming:
    """The priming compartment of one recruited kind (CD8 T cells), from ``cells.tcell.priming``."""

    #: metrics it adds to a run (name -> unit), in :meth:`metrics` order
    METRIC_UNITS: ClassVar[dict[str, str]] = {
        "priming_danger": "1",
        "priming_antigen": "cells",
        "primed_tcells": "cells",
        "cancer_deaths": "cells",
        "immunogenic_deaths": "cells",
    }

    def __init__(self, cfg):
        self.c0 = cfg.danger_baseline
        self.k_c = cfg.danger_decay_per_h
        self.delta = cfg.danger_per_icd_death
        self.k_a = cfg.antigen_loss_per_h
        self.max_per_h = cfg.max_primed_per_h
        self.a50 = cfg.antigen_half_cells
        self.tau = cfg.expansion_h
        self.danger = self.c0
        self.antigen = 0.0
        self.effectors = 0.0
        self.deaths = 0.0
        self.immunogenic = 0.0

    def maturation(self) -> float:
        """The share of antigen-presenting cells matured by the danger signal, ``c / (1 + c)``."""
        return self.danger / (1.0 + self.danger)

    def step(self, dt_h: float, deaths: float, immunogenic: float, burden: int) -> float:
        """Advance the compartment by ``dt_h`` hours with the step's cancer ``deaths`` and
        ``immunogenic`` deaths among ``burden`` live cancer cells; return the expected number of
        primed T cells entering the tissue in the step."""
        self.deaths += deaths
        self.immunogenic += immunogenic
        self.danger = self.c0 + (self.danger - self.c0) * math.exp(-self.k_c * dt_h)
        if immunogenic > 0.0:
            self.danger += self.delta * immunogenic / max(burden, 1)
        self.antigen = self.antigen * math.exp(-self.k_a * dt_h) + deaths
        drive = self.max_per_h * self.maturation() * self.antigen / (self.antigen + self.a50)
        self.effectors = (self.effectors + dt_h * drive) / (1.0 + dt_h / self.tau)
        return dt_h * self.effectors / self.tau

    def metrics(self) -> dict[str, float]:
        """The state, as :data:`METRIC_UNITS` names it."""
        return {
            "priming_danger": self.danger,
            "priming_antigen": self.antigen,
            "primed_tcells": self.effectors,
            "cancer_deaths": self.deaths,
            "immunogenic_deaths": self.immunogenic,
        }
