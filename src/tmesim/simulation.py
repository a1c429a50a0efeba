"""The tumour-microenvironment model without Mesa: :class:`Simulation`.

One agent step of ``time.dt_min`` minutes runs these named phases, in this order:

1. ``transport(dt)``: cells are coupled to the fields (per-voxel uptake as an implicit sink,
   secretion and release as a source), then every field diffuses and decays, in sub-steps of
   ``numerics.diffusion_dt_min``; capillary voxels hold each field's ``vessel_value``.
   Dosed agents enter at capillaries and alveolar surfaces in the same sub-steps
   (:class:`tmesim.therapy.Therapy`).
2. ``pharmacology(dt)``: nanoparticle release and uptake, drug uptake and P-gp efflux by cancer
   cells, P-gp induction and knockdown.
3. ``check_fields()``: stop on a NaN, infinite or negative concentration.
4. ``cell_rules(dt)``: every cell decides in parallel (PD-L1 first) and the intents are applied
   in a deterministic order (division, migration, killing, death), arrivals at entry sites,
   compaction (:class:`tmesim.behaviour.CellDynamics`).
5. ``update_tissue()``: alveolar lumens filled by cancer cells become conducting tissue.
6. ``remodel_vessels(dt)``: capillaries enclosed by cancer tissue regress, immature vessels
   without VEGF regress, and perfused voxels sprout new, leaky vessels toward VEGF (each off
   unless its ``vessels`` rate is > 0; checked once per simulated hour).

Cells live in :class:`~tmesim.cells.CellPopulation` (structure of arrays), fields in
:class:`~tmesim.fields.FieldSet`; the work is done by the kernels in :mod:`tmesim.kernels`.

:class:`tmesim.model.TMEModel` is this model as a ``mesa.Model`` (with a ``DataCollector``, for
``batch_run`` and Mesa workflows). ``tmesim run`` and the ensembles step a :class:`Simulation`
directly, so a run does not import Mesa; both give the same bits for the same scenario and seed.
"""


from __future__ import annotations

from pathlib import Path

import numpy as np

from . import kinds
from .behaviour import CellDynamics
from .cells import CellPopulation
from .errors import ScenarioError, warn
from .fields import FieldSet
from .kernels import codes
from .kernels import lattice as kl
from .kernels import vessels as kv
from .kernels._jit import max_threads, threads_at_most
from .resources import check_memory
from .scenario import Scenario, load_scenario, scenario_from_dict
from .therapy import Therapy
from .tissue import Tissue

#: metrics recorded per record: name -> units
METRIC_UNITS = {
    "tumor_burden": "cells",
    "stem_fraction": "1",
    "hypoxic_fraction": "1",
    "necrotic_fraction": "1",
    "tcell_count": "cells",
    "tcell_arrivals": "cells",
    "tcell_arrivals_lost": "cells",
    "tcell_exhausted_fraction": "1",
    "tcell_progenitor_fraction": "1",
    "pdl1_positive_fraction": "1",
    "macrophage_m2_fraction": "1",
    "recruited_m2_fraction": "1",
    "resident_m2_fraction": "1",
    "macrophage_recruited_count": "cells",
    "macrophage_resident_count": "cells",
    "caf_fraction": "1",
    "oxygen_mean_mmHg": "mmHg",
    "oxygen_min_mmHg": "mmHg",
    "perfused_sites": "sites",
    "angiogenic_sites": "sites",
    "free_entry_sites": "sites",
}

#: populations recorded under /counts: live cells per kind, and necrotic cancer cells (those of
#: the built-in kinds; a run reads :func:`tmesim.kinds.populations`, which follows the registry)
POPULATIONS = kinds.populations()

#: below this many cell rows the cell kernels run on one thread: at 10^4 cells two threads took
#: 15.4 ns per cell and step against 10.3 with one, at 10^5 6.5 against 9.5 (bench_cells)
PARALLEL_CELLS = 30_000

#: the field that drives angiogenesis (docs/biology.md §9.2)
VEGF_FIELD = "vegf"

#: vascular remodelling is checked once per this many minutes of simulated time (with the
#: hazard of the whole interval); each change of the perfused voxels re-prepares the solvers,
#: which cost the 14-day baseline about 30 % more time when checked every 6-min step
REGRESSION_CHECK_MIN = 60.0

#: PD-L1 level counted as positive (10 % of maximum, the spQSP-IO detection threshold)
PDL1_POSITIVE = 0.1


def _resolve_scenario(scenario, overrides) -> Scenario:
    pairs = [(k.replace("__", "."), v) for k, v in overrides.items()]
    if scenario is None:
        return scenario_from_dict(None, pairs, label="TMEModel(...)")
    if isinstance(scenario, Scenario):
        if not pairs:
            return scenario
        data = scenario.model_dump(mode="json", exclude={"extends"})
        return scenario_from_dict(data, pairs, label="TMEModel(...)", complete=True)
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


class Simulation:
    """Agent-based model of a tumour microenvironment, stepped without Mesa.

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

    ``steps``, ``running`` and ``rng`` behave as in ``mesa.Model``: calling :meth:`step`
    counts the step first, then runs the phases.

    Examples
    --------
    >>> model = Simulation(**{"time.duration_h": 1, "domain.shape": [40, 40]})
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
        check_memory(sc)
        self._start(sc.seed)
        self.scenario = sc
        self.seed = sc.seed
        self.dt_min = sc.time.dt_min
        self.time_h = 0.0
        self.n_steps = sc.n_steps

        self.fields = FieldSet.from_scenario(sc)
        self.cells = CellPopulation(self.fields.shape3, capacity=1024, agents=sc.pool_roles,
                                    share=sc.domain.small_cells_share_sites)
        #: the tissue map and its site sets (:class:`tmesim.tissue.Tissue`)
        self.tissue = Tissue.from_scenario(sc, self.fields.shape3)
        self.dynamics = CellDynamics(sc, self.fields, self.cells, self.tissue)
        if self.tissue.perfused.any():
            for name, fc in sc.fields.items():
                if fc.vessel_value is not None:
                    self.fields.set_fixed(name, self.tissue.shaped(self.tissue.perfused),
                                          fc.vessel_value)
        self.therapy = Therapy(sc, self.fields, self.cells, self.tissue)
        #: lumen sites that conduct no flux now (None before the first update_tissue)
        self._empty_lumen = None
        self.update_tissue()
        self.dynamics.initialise(self.rng)
        self.update_tissue()
        self._vessel_clock_min = 0.0  # simulated time since the vessels were last remodelled
        #: whether the vessels respond to VEGF (angiogenesis or immature-vessel regression)
        self._vegf = self._vegf_driven(sc)
        self._sink = np.zeros_like(self.fields.data)
        self._source = np.zeros_like(self.fields.data)
        self.events = {"kills": 0, "arrivals": 0}

        self._observe()

    def _start(self, seed: int) -> None:
        """``steps``, ``running`` and ``rng`` as ``mesa.Model.__init__(rng=seed)`` sets them, and
        the step counted before it runs, as Mesa counts it."""
        self.running = True
        self.steps = 0
        self.rng = np.random.default_rng(seed)
        self._user_step = self.step
        self.step = self._wrapped_step

    def _wrapped_step(self) -> None:
        self.steps += 1
        self._user_step()

    def _observe(self) -> None:
        """Called at the end of construction (:class:`tmesim.model.TMEModel` starts its
        DataCollector here)."""

    # ------------------------------------------------------------------ the step
    def step(self) -> None:
        """Advance one agent step of ``time.dt_min`` minutes."""
        self.transport(self.dt_min)
        self.pharmacology(self.dt_min)
        self.check_fields()
        self.cell_rules(self.dt_min)
        self.update_tissue()
        self.remodel_vessels(self.dt_min)
        self.time_h = self.steps * self.dt_min / 60.0
        if self.steps >= self.n_steps:
            self.running = False

    def transport(self, dt_min: float) -> None:
        """Couple cells to fields, then diffuse and decay in sub-steps."""
        with self._cell_threads():
            self.dynamics.exchange_maps(self._sink, self._source)
        therapy = self.therapy
        therapy.prepare_transport(self._sink, self._source)
        sub = self.scenario.diffusion_substeps
        t0_h = (self.steps - 1) * self.dt_min / 60.0  # Mesa counts the step before it runs
        self.fields.step(
            dt_min, sub, self._sink, self._source,
            before=lambda i, dt: therapy.deliver(t0_h + i * dt / 60.0, dt, self._sink,
                                                 self._source),
            after=lambda i, dt: therapy.settle(dt),
        )  # fmt: skip

    def pharmacology(self, dt_min: float) -> None:
        """Drug uptake and P-gp efflux by cancer cells (docs/pharmacology.md)."""
        self.therapy.cell_uptake(dt_min, (self.steps - 1) * self.dt_min / 60.0)

    def check_fields(self) -> None:
        """Stop with a SimulationError on an invalid concentration."""
        self.fields.check(self.steps)

    def cell_rules(self, dt_min: float) -> None:
        """Every cell's rules for one step (see :class:`tmesim.behaviour.CellDynamics`); on
        one thread below :data:`PARALLEL_CELLS` cells, where a parallel region costs more than
        it saves (benchmarks/RESULTS.md, "Cells")."""
        with self._cell_threads():
            ev = self.dynamics.step(dt_min / 60.0, self.steps - 1, self.seed)
        self.events = ev

    def _cell_threads(self) -> threads_at_most:
        """One thread for the cell kernels below :data:`PARALLEL_CELLS` cells, else all."""
        return threads_at_most(1 if self.cells.n < PARALLEL_CELLS else max_threads())

    def remodel_vessels(self, dt_min: float) -> None:
        """Vascular remodelling, checked once per :data:`REGRESSION_CHECK_MIN` of simulated
        time with the hazards of the whole interval (docs/biology.md §9):

        1. capillaries enclosed by cancer tissue stop being perfused (``vessels.regression_per_h``);
        2. angiogenic (immature) vessels without enough VEGF stop being perfused
           (``vessels.immature_regression_per_h``);
        3. perfused voxels sprout new, leaky vessels toward VEGF (``vessels.sprout_speed_um_per_h``).

        A regressed vessel becomes ordinary tissue: it holds no field at its vessel value and is
        no entry site. Every change of the perfused voxels re-prepares the field solvers.
        """
        v = self.scenario.vessels
        if v.regression_per_h <= 0.0 and not self._vegf:
            return
        self._vessel_clock_min += dt_min
        if self._vessel_clock_min < REGRESSION_CHECK_MIN - 1e-9:
            return
        interval_h, self._vessel_clock_min = self._vessel_clock_min / 60.0, 0.0
        step = self.steps - 1
        tissue = self.tissue
        nz, ny, nx = self.fields.shape3
        changed = False
        sites = np.flatnonzero(tissue.capillaries).astype(np.int64)
        if v.regression_per_h > 0.0 and len(sites):
            cells = self.cells
            n = cells.n
            out = np.zeros(len(sites), dtype=np.bool_)
            p = 1.0 - np.exp(-v.regression_per_h * interval_h)
            if kv.capillary_regression(
                sites, cells.occ, cells.kind[:n], cells.state[:n], nz, ny, nx,
                v.regression_cancer_fraction, p, self.seed, step, out,
            ):
                tissue.regress_capillaries(sites[out])
                changed = True
        if self._vegf:
            conc = self.fields.data[self.fields.index[VEGF_FIELD]].reshape(-1)
            young = np.flatnonzero(tissue.angiogenic).astype(np.int64)
            if v.immature_regression_per_h > 0.0 and len(young):
                out = np.zeros(len(young), dtype=np.bool_)
                p = 1.0 - np.exp(-v.immature_regression_per_h * interval_h)
                if kv.vegf_withdrawal(young, conc, v.immature_survival_vegf_ng_per_mL, p,
                                      self.seed, step, out):
                    tissue.regress_capillaries(young[out])
                    changed = True
            if v.sprout_speed_um_per_h > 0.0:
                changed |= self._sprout(v, conc, interval_h, step)
        if changed:
            self._perfusion_changed()

    def _sprout(self, v, conc, interval_h: float, step: int) -> bool:
        """Angiogenesis: each perfused voxel may sprout into one face neighbour (tissue, or a
        lumen cancer cells fill) toward VEGF; the new vessels get their leakiness and
        perfusion."""
        tissue = self.tissue
        nz, ny, nx = self.fields.shape3
        tips = np.flatnonzero(tissue.perfused).astype(np.int64)
        if not len(tips):
            return False
        open_ = (np.ones(tissue.n_sites, dtype=bool) if self._empty_lumen is None
                 else ~self._empty_lumen)
        out = np.zeros(len(tips), dtype=np.int64)
        p_max = 1.0 - np.exp(-v.sprout_speed_um_per_h / self.scenario.domain.voxel_um
                             * interval_h)
        law = (p_max, v.sprout_vegf_half_ng_per_mL, v.sprout_vegf_hill)
        if not kv.sprout_targets(tips, tissue.perfused, open_, conc, nz, ny, nx, law, self.seed,
                                 step, out):
            return False
        new = np.unique(out[out >= 0])
        leak, perfusion = np.empty(len(new)), np.empty(len(new))
        kv.vessel_traits(new, v.leakiness_sigma, self.seed, step, leak, perfusion)
        tissue.add_vessels(new, leak, perfusion)
        return True

    @staticmethod
    def _vegf_driven(sc) -> bool:
        """Whether the scenario's vessels respond to VEGF, with a warning when they would but
        the field ``vegf`` is missing."""
        v = sc.vessels
        if v.sprout_speed_um_per_h <= 0.0 and v.immature_regression_per_h <= 0.0:
            return False
        if VEGF_FIELD not in sc.fields:
            warn(
                f"fields.{VEGF_FIELD} is not defined, so angiogenesis and the regression of "
                "immature vessels are off (vessels.sprout_speed_um_per_h, "
                f"vessels.immature_regression_per_h). Define fields.{VEGF_FIELD} to keep them, "
                "or set both to 0 to say that they are off"
            )
            return False
        return True

    def _perfusion_changed(self) -> None:
        """Re-derive everything that reads the perfused voxels after capillaries regressed."""
        perfused = self.tissue.shaped(self.tissue.perfused)
        share = self.tissue.shaped(self.tissue.perfusion)
        for name, fc in self.scenario.fields.items():
            if fc.vessel_value is not None:
                self.fields.set_fixed(name, perfused, fc.vessel_value * share)
        self.dynamics.perfusion_changed()
        self.therapy.perfusion_changed(self.tissue.perfused)

    def update_tissue(self) -> None:
        """Alveolar air conducts no diffusive flux, except where cancer cells have filled it.

        The empty lumen is kept from step to step and updated in place where cancer cells came
        or went (:meth:`tmesim.tissue.Tissue.update_empty_lumen`); the field set is told those
        voxels (:meth:`tmesim.fields.FieldSet.change_mask`)."""
        empty = self._empty_lumen
        if empty is None:
            mask = self.tissue.empty_lumen(self.cells.occ, self.cells.kind)
            if mask is None:
                return
            self._empty_lumen = mask
            self.fields.set_geometry(mask=mask.reshape(self.fields.shape3))
            return
        filled, emptied = self.tissue.update_empty_lumen(empty, self.cells.occ, self.cells.kind)
        if not (filled.size or emptied.size):
            return
        if emptied.size:
            self.therapy.lumens_closing(emptied, empty)
        self.fields.change_mask(empty, filled, emptied)
        if filled.size:
            self._fill_opened(filled)

    def _fill_opened(self, sites: np.ndarray) -> None:
        """Give lumen sites that just became tissue the mean of their conducting neighbours.

        A filled lumen would otherwise start at 0 next to tissue at full concentration; the
        local mean is the natural initial value, and it spares the solver a step front.
        """
        flat = self.fields.data.reshape(len(self.fields.names), -1)
        # dosed agents keep their ledger: an opened lumen starts empty of them
        dosed = {*self.scenario.dosed_agents, *self.scenario.dosed_nanoparticles}
        rows = np.array([i for i, f in enumerate(self.fields.names) if f not in dosed], np.int64)
        nz, ny, nx = self.fields.shape3
        kl.fill_from_face_neighbours(flat, sites.astype(np.int64), self._empty_lumen, nz, ny, nx,
                                     rows)

    # ------------------------------------------------------------------ observation
    def population_counts(self) -> dict[str, int]:
        """Live cells per population, and necrotic cancer cells."""
        c = self.cells.counts()
        live = [codes.PROLIFERATING, codes.QUIESCENT]
        out = {k.name: int(c[k.code, live].sum()) for k in kinds.all_kinds()}
        out["necrotic"] = int(c[:, codes.NECROTIC].sum())
        return out

    def metric_units(self) -> dict[str, str]:
        """Names and units of :meth:`metrics`: :data:`METRIC_UNITS`, then therapy metrics."""
        units = dict(METRIC_UNITS)
        if self.dynamics.priming is not None:
            units.update(self.dynamics.priming.METRIC_UNITS)
        if self.therapy.active:
            units.update(self.therapy.metric_units())
        return units

    def metrics(self) -> dict[str, float]:
        """Scalar metrics of the current state (units in :meth:`metric_units`)."""
        cells = self.cells
        n = cells.n
        kind = cells.kind[:n]
        state = cells.state[:n]
        live = (state == codes.PROLIFERATING) | (state == codes.QUIESCENT)
        cancer = live & kinds.cancer(kind)
        burden = int(cancer.sum())
        necrotic = int((state == codes.NECROTIC).sum())
        tcell = live & (kind == codes.TCELL)
        mac = live & (kind == codes.MACROPHAGE)
        resident = mac & (cells.column("aux")[:n] > 0.5)
        recruited = mac & ~resident
        fib = live & (kind == codes.FIBROBLAST)
        pdl1 = cells.column("pdl1")[:n]

        def frac(a, b):
            nb = int(b.sum())
            return float((a & b).sum()) / nb if nb else 0.0

        o2 = self.fields["oxygen"]
        tissue = ~self.tissue.lumen.reshape(o2.shape)
        dyn = self.dynamics
        return {
            "tumor_burden": float(burden),
            "stem_fraction": frac(kind == codes.STEM, cancer),
            "hypoxic_fraction": frac(state == codes.QUIESCENT, cancer),
            "necrotic_fraction": necrotic / (burden + necrotic) if burden + necrotic else 0.0,
            "tcell_count": float(tcell.sum()),
            "tcell_arrivals": float(dyn.arrivals_placed[codes.TCELL]),
            "tcell_arrivals_lost": float(dyn.arrivals_lost[codes.TCELL]),
            "tcell_exhausted_fraction": frac(state == codes.QUIESCENT, tcell),
            # stem-like progenitors (biology.md §5.10); 0 with the progenitor model off
            "tcell_progenitor_fraction": frac(cells.column("tcf1")[:n] > 0.5, tcell),
            "pdl1_positive_fraction": frac(pdl1 >= PDL1_POSITIVE, cancer),
            "macrophage_m2_fraction": frac(state == codes.QUIESCENT, mac),
            "recruited_m2_fraction": frac(state == codes.QUIESCENT, recruited),
            "resident_m2_fraction": frac(state == codes.QUIESCENT, resident),
            "macrophage_recruited_count": float(recruited.sum()),
            "macrophage_resident_count": float(resident.sum()),
            "caf_fraction": frac(state == codes.QUIESCENT, fib),
            "oxygen_mean_mmHg": float(o2[tissue].mean()) if tissue.any() else 0.0,
            "oxygen_min_mmHg": float(o2[tissue].min()) if tissue.any() else 0.0,
            "perfused_sites": float(self.tissue.perfused.sum()),
            "angiogenic_sites": float(self.tissue.angiogenic.sum()),
            # free for an arriving T cell: on its own layer when sites are shared
            "free_entry_sites": float((cells.layer(codes.TCELL)[dyn.entry_sites] < 0).sum()),
            **(dyn.priming.metrics() if dyn.priming is not None else {}),
            **(self.therapy.metrics() if self.therapy.active else {}),
        }
