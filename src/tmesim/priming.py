"""Priming of CD8 T cells in a lumped lymph node (docs/biology.md §5.8).

Three scalar states, stepped once per agent step after the cell phase has removed the dead:

* ``danger`` ``c`` (units of the concentration that matures half the antigen-presenting cells):
  relaxes to its baseline ``c0`` at ``k_c`` and jumps by ``delta * I / N`` per step, where ``I``
  is the number of immunogenic deaths of the step (the sum of their immunogenic shares) and ``N``
  the live cancer cells, the volume the danger signal is diluted in;
* ``antigen`` ``A`` (cancer-cell equivalents of antigen presented by mature dendritic cells in
  the node): every cancer death adds one, lost at ``k_A`` (the death of mature APCs);
* ``expanding`` ``P`` (primed CD8 T cells expanding in the node):
  ``dP/dt = S R H(c) A / (A + A50) - P / tau`` with ``H(c) = c / (1 + c)``: at most ``R``
  primed cells per hour, half of it at ``A50`` cell-equivalents of antigen; they leave the node
  into the blood at ``P / tau``. ``S = 1 / (1 + rho / rho50)`` is the suppression of priming by
  MDSCs: ``rho`` the live MDSCs per live cancer cell in the simulated tissue, the model's proxy
  for the systemic MDSC load that the same tumour signal drives, ``rho50`` the value at which
  the tumour holds one MDSC per T cell at the calibrated T-cell share, the ratio that halves
  CD8 proliferation in co-culture (docs/biology.md §5.8); ``S`` is exactly 1 without MDSCs;
* ``circulating`` ``B`` (primed CD8 T cells in the blood):
  ``dB/dt = P / tau - k_out B - q_in N B``: lost at ``k_out`` to everything that is not this
  tumour, and entering it at ``q_in N B``, ``N`` the live cancer cells, so in proportion to the
  tumour (QSP-IO). ``q_in = k_out / N50``: a tumour of ``N50`` cells takes half of them.

``c`` and ``A`` are solved exactly for inputs that arrive at the end of the step; ``P`` and
``B`` by one backward-Euler step each (unconditionally stable, never negative). No random
numbers: the arrivals drawn from ``q_in N B`` use the keyed Poisson stream of
:class:`tmesim.behaviour.CellDynamics`.
"""

from __future__ import annotations

import math
from typing import ClassVar


class Priming:
    """The priming compartment of one recruited kind (CD8 T cells), from ``cells.tcell.priming``."""

    #: metrics it adds to a run (name -> unit), in :meth:`metrics` order
    METRIC_UNITS: ClassVar[dict[str, str]] = {
        "priming_danger": "1",
        "priming_mdsc_factor": "1",
        "priming_antigen": "cells",
        "primed_tcells": "cells",
        "circulating_tcells": "cells",
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
        self.k_out = cfg.blood_loss_per_h
        self.q_in = cfg.blood_loss_per_h / cfg.capture_half_cells
        self.rho50 = cfg.mdsc_half_per_cancer_cell
        self.mdsc_factor = 1.0
        self.danger = self.c0
        self.antigen = 0.0
        self.expanding = 0.0
        self.circulating = 0.0
        self.deaths = 0.0
        self.immunogenic = 0.0

    def maturation(self) -> float:
        """The share of antigen-presenting cells matured by the danger signal, ``c / (1 + c)``."""
        return self.danger / (1.0 + self.danger)

    def suppression(self, mdscs: int, burden: int) -> float:
        """The factor ``S = 1 / (1 + rho / rho50)`` on the priming drive, ``rho = mdscs /
        max(burden, 1)`` the live MDSCs per live cancer cell in the tissue; exactly 1 without
        MDSCs."""
        if mdscs <= 0:
            return 1.0
        return 1.0 / (1.0 + mdscs / max(burden, 1) / self.rho50)

    def step(self, dt_h: float, deaths: float, immunogenic: float, burden: int,
             mdscs: int = 0) -> float:
        """Advance the compartment by ``dt_h`` hours with the step's cancer ``deaths`` and
        ``immunogenic`` deaths among ``burden`` live cancer cells and ``mdscs`` live MDSCs in the
        tissue; return the expected number of
        primed T cells entering the tissue in the step, ``q_in N B dt`` with ``B`` at the end
        of the step (backward Euler: what leaves the blood in the step is what entered it
        less what is left, so no cell is counted twice)."""
        self.deaths += deaths
        self.immunogenic += immunogenic
        self.danger = self.c0 + (self.danger - self.c0) * math.exp(-self.k_c * dt_h)
        if immunogenic > 0.0:
            self.danger += self.delta * immunogenic / max(burden, 1)
        self.antigen = self.antigen * math.exp(-self.k_a * dt_h) + deaths
        drive = self.max_per_h * self.maturation() * self.antigen / (self.antigen + self.a50)
        self.mdsc_factor = self.suppression(mdscs, burden)
        drive *= self.mdsc_factor  # exactly 1 without MDSCs, so the drive is unchanged
        self.expanding = (self.expanding + dt_h * drive) / (1.0 + dt_h / self.tau)
        entry = self.q_in * burden
        self.circulating = ((self.circulating + dt_h * self.expanding / self.tau)
                            / (1.0 + dt_h * (self.k_out + entry)))
        return dt_h * entry * self.circulating

    def metrics(self) -> dict[str, float]:
        """The state, as :data:`METRIC_UNITS` names it."""
        return {
            "priming_danger": self.danger,
            "priming_mdsc_factor": self.mdsc_factor,
            "priming_antigen": self.antigen,
            "primed_tcells": self.expanding,
            "circulating_tcells": self.circulating,
            "cancer_deaths": self.deaths,
            "immunogenic_deaths": self.immunogenic,
        }
