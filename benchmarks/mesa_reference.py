"""Plain-Mesa reference implementation of tmesim's tumour / stem-like cell rules.

This is the model a Mesa user would write for the lattice cancer-stem-cell automaton of
Enderling and Hahnfeldt (as coded by Poleszczuk) that ``tmesim.kernels.tumor.tumor_step``
implements: one :class:`mesa.discrete_space.CellAgent` per cell on an
:class:`~mesa.discrete_space.OrthogonalMooreGrid` (no torus, at most one agent per grid cell),
activated once per step in random order with ``self.agents.shuffle_do("step")``.

Each agent, when activated:

1. Oxygen: a necrotic cell waits ``lysis_steps`` steps and is then removed. A live cell turns
   necrotic with probability ``p_necrosis`` (from the oxygen level, PhysiCell-style ramp) and is
   quiescent below ``hypoxia_mmHg``. Oxygen is held uniform in this reference (one number on the
   model), so the oxygen branch costs a constant lookup, as it does for tmesim's kernel when the
   field is uniform.
2. Contact inhibition: with no empty neighbouring grid cell it does nothing.
3. With probability ``p_div`` (unless quiescent) it attempts division into a random empty
   neighbour. A stem-like cell makes a stem-like daughter with probability ``p_symmetric``,
   otherwise a tumour daughter with ``max_divisions`` divisions left. A tumour cell dies at the
   attempt with probability ``p_death`` or when it has no divisions left; otherwise mother and
   daughter both keep ``divisions_left - 1``.
4. Otherwise, with probability ``p_mig``, it moves to a random empty neighbour.

Probabilities are per step. tmesim's rates convert as ``p = 1 - exp(-rate_per_h * dt_h)``
(see :func:`per_step`). Randomness comes from the model's ``random`` stream (Mesa's idiom), so
runs are reproducible for a given ``rng`` but are not draw-for-draw identical to tmesim, whose
kernel uses a counter-based generator.

Example::

    model = TumorCSCModel(width=100, height=100, rng=1)
    for _ in range(100):
        model.step()
    print(model.counts())
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import mesa
from mesa.discrete_space import CellAgent, OrthogonalMooreGrid


def per_step(rate_per_h: float, dt_h: float) -> float:
    """Per-step probability of an event with constant hazard ``rate_per_h`` over ``dt_h`` hours."""
    return 1.0 - math.exp(-rate_per_h * dt_h)


def necrosis_probability(
    po2: float, necrosis_mmHg: float, necrosis_max_mmHg: float, p_max: float
) -> float:
    """Per-step necrosis probability at ``po2`` mmHg (linear hazard ramp below the threshold).

    ``p_max`` is the per-step probability at the maximal rate; the hazard is scaled, not the
    probability, as in tmesim's kernel.
    """
    if po2 >= necrosis_mmHg:
        return 0.0
    if po2 <= necrosis_max_mmHg or necrosis_mmHg <= necrosis_max_mmHg:
        frac = 1.0
    else:
        frac = (necrosis_mmHg - po2) / (necrosis_mmHg - necrosis_max_mmHg)
    return 1.0 - (1.0 - p_max) ** frac


class CancerCell(CellAgent):
    """A tumour or cancer-stem-like cell occupying one grid cell.

    Attributes:
        stem: whether the cell is stem-like (unlimited divisions).
        divisions_left: remaining divisions of a tumour cell.
        necrotic: whether the cell has died of hypoxia (it keeps its site until lysis).
        quiescent: whether the cell is too hypoxic to divide.
        steps_necrotic: steps spent necrotic.
    """

    def __init__(self, model: TumorCSCModel, cell, stem: bool, divisions_left: int) -> None:
        super().__init__(model)
        self.cell = cell
        self.stem = stem
        self.divisions_left = divisions_left
        self.necrotic = False
        self.quiescent = False
        self.steps_necrotic = 0

    def step(self) -> None:
        """One activation: necrosis/quiescence, then division or migration."""
        model = self.model
        rnd = self.random
        if self.necrotic:
            self.steps_necrotic += 1
            if self.steps_necrotic >= model.lysis_steps:
                self.remove()
            return
        if model.p_necrosis > 0.0 and rnd.random() < model.p_necrosis:
            self.necrotic = True
            return
        self.quiescent = model.hypoxic

        free = [c for c in self.cell.neighborhood if c.is_empty]
        if not free:
            return
        if not self.quiescent and rnd.random() < model.p_div:
            self.divide(rnd.choice(free))
        elif rnd.random() < model.p_mig:
            self.cell = rnd.choice(free)

    def divide(self, target) -> None:
        """Attempt a division into the empty grid cell ``target``."""
        model = self.model
        rnd = self.random
        cell = type(self)  # daughters are of the mother's class
        if self.stem:
            if rnd.random() < model.p_symmetric:
                cell(model, target, stem=True, divisions_left=self.divisions_left)
            else:
                cell(model, target, stem=False, divisions_left=model.max_divisions)
            return
        if rnd.random() < model.p_death or self.divisions_left <= 0:
            self.remove()
            return
        self.divisions_left -= 1
        cell(model, target, stem=False, divisions_left=self.divisions_left)


class TumorCSCModel(mesa.Model):
    """Tumour growth from cancer-stem-like cells on a 2-D Moore lattice, in plain Mesa.

    Args:
        width, height: grid size (cells).
        p_div: per-step probability of a division attempt (cell with an empty neighbour).
        p_mig: per-step probability of a move to an empty neighbour (when not dividing).
        p_death: probability that a tumour cell dies at a division attempt (alpha).
        p_symmetric: probability that a stem-like division makes two stem-like cells (ps).
        max_divisions: proliferative capacity of a tumour cell born from a stem-like cell.
        oxygen_mmHg: the uniform oxygen level (mmHg).
        hypoxia_mmHg: below this level cells are quiescent.
        necrosis_mmHg, necrosis_max_mmHg: necrosis starts below the first and is at its maximal
            per-step probability ``p_necrosis_max`` at or below the second.
        lysis_steps: steps a necrotic cell keeps its site.
        stem_cells, tumor_cells: initial ``(x, y)`` coordinates; by default one stem-like cell
            in the centre. Initial tumour cells get ``max_divisions`` divisions.
        rng: seed of the model's random streams.
    """

    def __init__(
        self,
        width: int = 100,
        height: int = 100,
        p_div: float = 1 / 24,
        p_mig: float = 10 / 24,
        p_death: float = 0.01,
        p_symmetric: float = 0.3,
        max_divisions: int = 10,
        oxygen_mmHg: float = 38.0,
        hypoxia_mmHg: float = 10.0,
        necrosis_mmHg: float = 5.0,
        necrosis_max_mmHg: float = 2.5,
        p_necrosis_max: float = 1 / 6,
        lysis_steps: int = 1440,
        stem_cells: Iterable[tuple[int, int]] | None = None,
        tumor_cells: Iterable[tuple[int, int]] = (),
        rng=None,
    ) -> None:
        super().__init__(rng=rng)
        self.p_div = p_div
        self.p_mig = p_mig
        self.p_death = p_death
        self.p_symmetric = p_symmetric
        self.max_divisions = max_divisions
        self.lysis_steps = lysis_steps
        self.oxygen_mmHg = oxygen_mmHg
        self.hypoxic = oxygen_mmHg < hypoxia_mmHg
        self.p_necrosis = necrosis_probability(
            oxygen_mmHg, necrosis_mmHg, necrosis_max_mmHg, p_necrosis_max
        )
        self.grid = OrthogonalMooreGrid(
            (width, height), torus=False, capacity=1, random=self.random
        )
        if stem_cells is None:
            stem_cells = [(width // 2, height // 2)]
        for xy in stem_cells:
            CancerCell(self, self.grid[tuple(xy)], stem=True, divisions_left=0)
        for xy in tumor_cells:
            CancerCell(self, self.grid[tuple(xy)], stem=False, divisions_left=max_divisions)

    def step(self) -> None:
        """Activate every cell once, in random order."""
        self.agents.shuffle_do("step")

    def counts(self) -> dict[str, int]:
        """Live tumour, live stem-like and necrotic cells."""
        out = {"tumor": 0, "stem": 0, "necrotic": 0}
        for a in self.agents:
            if a.necrotic:
                out["necrotic"] += 1
            else:
                out["stem" if a.stem else "tumor"] += 1
        return out


class DrawFirstCancerCell(CancerCell):
    """A cell that decides first and acts later, as tmesim's kernels do (see
    :class:`DrawFirstTumorModel`)."""

    def decide(self):
        """Draw this step's intent from the state at the start of the step: ``None``, or
        ``(action, target)`` with action ``"die"``, ``"lyse"``, ``"divide"`` or ``"move"``."""
        model = self.model
        rnd = self.random
        if self.necrotic:
            self.steps_necrotic += 1
            return ("lyse", None) if self.steps_necrotic >= model.lysis_steps else None
        if model.p_necrosis > 0.0 and rnd.random() < model.p_necrosis:
            self.necrotic = True
            return None
        self.quiescent = model.hypoxic
        free = [c for c in self.cell.neighborhood if c.is_empty]
        if not free:
            return None
        if not self.quiescent and rnd.random() < model.p_div:
            return ("divide", rnd.choice(free))
        if rnd.random() < model.p_mig:
            return ("move", rnd.choice(free))
        return None

    def act(self, intent) -> None:
        """Apply an intent; a target taken meanwhile is replaced by another free neighbour, if
        any (tmesim's retry draw)."""
        action, target = intent
        if action == "lyse":
            self.remove()
            return
        if not target.is_empty:
            free = [c for c in self.cell.neighborhood if c.is_empty]
            if not free:
                return
            target = self.random.choice(free)
        if action == "move":
            self.cell = target
        else:
            self.divide(target)


class DrawFirstTumorModel(TumorCSCModel):
    """The same rules with tmesim's order of events: every cell draws its intent from the state
    at the start of the step (a synchronous decide phase), then the intents are applied one
    after another in a random order, with a retry when a target was taken. This is the
    like-for-like reference for tmesim's decide/apply kernels; :class:`TumorCSCModel`
    (``shuffle_do``, each cell seeing the moves of the cells before it) is the idiomatic one."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        # re-create the initial cells with the draw-first class
        initial = [(a.cell, a.stem, a.divisions_left) for a in list(self.agents)]
        for a in list(self.agents):
            a.remove()
        for cell, stem, div in initial:
            DrawFirstCancerCell(self, cell, stem=stem, divisions_left=div)

    def step(self) -> None:
        """Decide every cell on the same state, then act in a random order."""
        agents = list(self.agents)
        intents = [(a, a.decide()) for a in agents]
        acting = [(a, it) for a, it in intents if it is not None]
        self.random.shuffle(acting)
        for a, it in acting:
            a.act(it)
