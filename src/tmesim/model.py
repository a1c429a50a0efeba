"""TMEModel: the tumour microenvironment as a Mesa model.

One agent step of ``time.dt_min`` minutes runs these phases, in this order:

1. ``transport``: the diffusion sub-steps (``numerics.diffusion_dt_min`` each). Each sub-step
   applies cell uptake implicitly per voxel, then the implicit LOD diffusion-decay sweeps.
2. ``check_fields``: stop on a NaN, infinite or negative concentration.
3. ``cell_rules``: tumour and stem-like cells act on the oxygen they see (necrosis, quiescence,
   division, migration), then removed cells are compacted.
4. ``collect``: Mesa's DataCollector records the scalar counts.

Cells live in :class:`~tmesim.cells.CellPopulation` (structure of arrays), fields in
:class:`~tmesim.fields.FieldSet`; the work is done by the kernels in :mod:`tmesim.kernels`.
"""

from __future__ import annotations

from pathlib import Path

import mesa
import numpy as np

from .cells import CellPopulation
from .errors import ScenarioError
from .fields import FieldSet
from .kernels import codes
from .kernels import lattice as kl
from .kernels.tumor import tumor_step
from .scenario import Scenario, load_scenario, scenario_from_dict

#: metrics recorded per record: name -> units
METRIC_UNITS = {
    "tumor_burden": "cells",
    "stem_fraction": "1",
    "hypoxic_fraction": "1",
    "necrotic_fraction": "1",
    "oxygen_mean_mmHg": "mmHg",
    "oxygen_min_mmHg": "mmHg",
}

#: populations recorded under /counts (created as they come to exist)
POPULATIONS = ("tumor", "stem", "necrotic")


def _resolve_scenario(scenario, overrides) -> Scenario:
    pairs = [(k.replace("__", "."), v) for k, v in overrides.items()]
    if scenario is None:
        return scenario_from_dict(None, pairs, label="TMEModel(...)")
    if isinstance(scenario, Scenario):
        if not pairs:
            return scenario
        data = scenario.model_dump(mode="json", exclude={"extends"})
        return scenario_from_dict(data, pairs, label="TMEModel(...)")
    if isinstance(scenario, (str, Path)):
        return load_scenario(scenario, pairs)
    if isinstance(scenario, dict):
        return scenario_from_dict(scenario, pairs, label="TMEModel(...)")
    raise ScenarioError(
        "TMEModel(scenario=...) got an unsupported value",
        value=type(scenario).__name__,
        expected="None, a Scenario, a path to a YAML file or a dict of scenario keys",
        fix="pass load_scenario('file.yaml') or a path",
    )


class TMEModel(mesa.Model):
    """Agent-based model of a tumour microenvironment.

    Parameters
    ----------
    scenario : Scenario, str, Path or dict, optional
        The scenario; ``None`` runs the packaged default.
    rng : int, optional
        Seed of every random decision; replaces ``scenario.seed``. Without it the scenario's seed
        is used, so two models built alike are identical.
    **overrides
        Scenario keys to override, dotted (``**{"time.duration_h": 24}``) or with ``__``
        (``time__duration_h=24``), which lets ``mesa.batch_run`` sweep any parameter.

    Examples
    --------
    >>> model = TMEModel(**{"time.duration_h": 1, "domain.shape": [40, 40]})
    >>> while model.running:
    ...     model.step()
    >>> model.steps
    10
    """

    def __init__(self, scenario=None, rng=None, **overrides):
        if rng is not None and not isinstance(rng, (int, np.integer)):
            rng = int(np.random.default_rng(rng).integers(0, 2**63 - 1))
        if rng is not None:
            overrides["seed"] = int(rng)
        sc = _resolve_scenario(scenario, overrides)
        super().__init__(rng=sc.seed)
        self.scenario = sc
        self.seed = sc.seed
        self.dt_min = sc.time.dt_min
        self.time_h = 0.0
        self.n_steps = sc.n_steps

        self.fields = FieldSet.from_scenario(sc)
        self.cells = CellPopulation(self.fields.shape3, capacity=1024)
        self._o2 = self.fields.index["oxygen"]
        self._sink = np.zeros_like(self.fields.data)
        self._params = self._cell_parameters()
        self._place_initial_cells()

        self.datacollector = mesa.DataCollector(
            model_reporters={
                "time_h": "time_h",
                **{p: (lambda m, p=p: m.population_counts()[p]) for p in POPULATIONS},
                "oxygen_mean_mmHg": lambda m: float(m.fields["oxygen"].mean()),
            }
        )
        self.datacollector.collect(self)

    # ------------------------------------------------------------------ set-up
    def _cell_parameters(self) -> dict:
        """Per-kind parameter arrays, in internal units, for the cell kernels."""
        c = self.scenario.cells
        vox = self.scenario.domain.voxel_um**3

        def per_kind(attr, dtype=np.float64):
            out = np.zeros(codes.N_KINDS, dtype=dtype)
            out[codes.TUMOR] = getattr(c.tumor, attr)
            out[codes.STEM] = getattr(c.stem, attr)
            return out

        p = {
            name: per_kind(name)
            for name in (
                "division_rate_per_h",
                "migration_rate_per_h",
                "hypoxia_mmHg",
                "necrosis_mmHg",
                "necrosis_max_mmHg",
                "necrosis_max_per_h",
                "lysis_h",
            )
        }
        p["death_at_division"] = np.zeros(codes.N_KINDS)
        p["death_at_division"][codes.TUMOR] = c.tumor.death_at_division
        p["symmetric_division_prob"] = np.zeros(codes.N_KINDS)
        p["symmetric_division_prob"][codes.STEM] = c.stem.symmetric_division_prob
        p["max_divisions"] = np.zeros(codes.N_KINDS, np.int32)
        p["max_divisions"][codes.TUMOR] = c.tumor.max_divisions
        # BioFVM scaling of a cell's uptake to its voxel: U * V_cell / V_voxel (1/min)
        p["oxygen_uptake"] = per_kind("oxygen_uptake_per_min") * per_kind("volume_um3") / vox
        return p

    def _place_initial_cells(self) -> None:
        c = self.scenario.cells
        vox = self.scenario.domain.voxel_um
        for kind, cfg, key, div in (
            (codes.STEM, c.stem, "cells.stem.initial", 0),
            (codes.TUMOR, c.tumor, "cells.tumor.initial", c.tumor.max_divisions),
        ):
            ini = cfg.initial
            self.cells.place(kind, ini.count, ini.placement, ini.radius_um, vox, self.rng, div, key)

    # ------------------------------------------------------------------ the step
    def step(self) -> None:
        """Advance one agent step of ``time.dt_min`` minutes."""
        self.transport(self.dt_min)
        self.check_fields()
        self.cell_rules(self.dt_min)
        self.time_h = self.steps * self.dt_min / 60.0
        if self.steps >= self.n_steps:
            self.running = False
        self.datacollector.collect(self)

    def transport(self, dt_min: float) -> None:
        """Diffusion sub-steps: implicit per-voxel uptake, then LOD diffusion and decay."""
        cells = self.cells
        sink = self._sink[self._o2].reshape(-1)
        kl.sink_map(
            cells.n, cells.kind, cells.state, cells.site, self._params["oxygen_uptake"], sink
        )
        sub = self.scenario.diffusion_substeps
        dt = dt_min / sub
        for _ in range(sub):
            self.fields.apply_sink(self._sink, dt)
            self.fields.diffuse(dt)

    def check_fields(self) -> None:
        """Stop with a SimulationError on an invalid concentration."""
        self.fields.check(self.steps)

    def cell_rules(self, dt_min: float) -> None:
        """Tumour and stem-like rules (necrosis, quiescence, division, migration, lysis)."""
        cells = self.cells
        cells.reserve(2 * cells.n + 1)
        p = self._params
        cells.n, cells.next_id = tumor_step(
            cells.n,
            cells.column("id"),
            cells.column("parent"),
            cells.column("generation"),
            cells.column("divisions_left"),
            cells.column("clock_h"),
            cells.kind,
            cells.state,
            cells.site,
            cells.occ,
            self.fields.flat("oxygen"),
            np.array(self.fields.shape3, dtype=np.int64),
            p["division_rate_per_h"],
            p["migration_rate_per_h"],
            p["death_at_division"],
            p["symmetric_division_prob"],
            p["max_divisions"],
            p["hypoxia_mmHg"],
            p["necrosis_mmHg"],
            p["necrosis_max_mmHg"],
            p["necrosis_max_per_h"],
            p["lysis_h"],
            dt_min / 60.0,
            self.seed,
            self.steps - 1,
            cells.next_id,
        )
        cells.compact()

    # ------------------------------------------------------------------ observation
    def population_counts(self) -> dict[str, int]:
        """Live cells per population, and necrotic cells."""
        c = self.cells.counts()
        live = (codes.PROLIFERATING, codes.QUIESCENT)
        return {
            "tumor": int(c[codes.TUMOR, live].sum()),
            "stem": int(c[codes.STEM, live].sum()),
            "necrotic": int(c[:, codes.NECROTIC].sum()),
        }

    def metrics(self) -> dict[str, float]:
        """Scalar metrics of the current state (units in :data:`METRIC_UNITS`)."""
        c = self.cells.counts()
        pop = self.population_counts()
        burden = pop["tumor"] + pop["stem"]
        quiescent = int(c[[codes.TUMOR, codes.STEM], codes.QUIESCENT].sum())
        o2 = self.fields["oxygen"]
        total = burden + pop["necrotic"]
        return {
            "tumor_burden": float(burden),
            "stem_fraction": pop["stem"] / burden if burden else 0.0,
            "hypoxic_fraction": quiescent / burden if burden else 0.0,
            "necrotic_fraction": pop["necrotic"] / total if total else 0.0,
            "oxygen_mean_mmHg": float(o2.mean()),
            "oxygen_min_mmHg": float(o2.min()),
        }
