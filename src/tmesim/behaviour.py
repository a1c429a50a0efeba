"""Cell behaviour of one agent step: parameters from the scenario, then the kernels in order.

:class:`CellDynamics` turns the validated scenario into the per-kind parameter arrays, the rule
table and the field-coupling tables the kernels take (internal units: hours for cell rules,
minutes for transport), and runs the cell phase of a step:

1. a census of the rows finds the kinds present and the live tumour burden;
2. every cell decides in parallel (cancer cells, whose PD-L1 first relaxes toward its
   IFN-gamma-set level, then T cells, macrophages, fibroblasts); the kernel of a kind with no
   cells is not called;
3. the intents are applied in a pseudo-random order (:mod:`tmesim.kernels.agents`);
4. circulating T cells and monocyte-derived macrophages arrive at entry sites, uniformly or
   where a signal field (CCL2 for macrophages) is high (skipped when no kind is recruited);
5. removed cells are compacted away.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import kinds
from .errors import ScenarioError, warn
from .kernels import agents as ka
from .kernels import cancer as kc
from .kernels import codes, layout
from .kernels import immune as ki
from .kernels import lattice as kl
from .kernels import myeloid as km
from .kernels import nanoparticles as nk
from .kernels import pharmacology as kp
from .kernels.rules import BEHAVIOURS, R_NCOLS
from .kinds.mdsc import CXCL1_FIELD
from .kinds.tumour import GROWTH_FIELD
from .priming import Priming
from .tissue import Tissue

#: the field of tumour-derived CCL2 that macrophages climb (docs/biology.md §6); without it
#: they climb the generic chemokine
CCL2_FIELD = "ccl2"


PURPOSE_PGP = 62

#: the IFN-gamma-induced CXCR3 ligands (CXCL9/10) as one field (docs/biology.md §5.9)
CXCL10_FIELD = "cxcl10"
#: the scenario key that names the field T cells climb
TCELL_ATTRACTANT = "cells.tcell.chemotaxis_field"


class Mechanism(NamedTuple):
    """A cell mechanism that reads a field (docs/biology.md).

    Without ``field`` in the scenario the mechanism is off: ``switch``, a ``(parameter vector,
    slot)`` pair of :class:`CellDynamics` (``"t_par"``, ``"m_par"``, ``"f_par"``, ``"md_par"``),
    is then set to 0 so the kernel skips it, and the model warns that it is off if it would have
    acted: its kind can be in the run and its strength ``key`` is not 0. A mechanism with no switch reads
    a zero array in place of the field, which is the same as no signal (no kernel writes to a
    missing field: matrix deposition, the one write, is switched off without ``ecm``). ``key`` is
    the scenario parameter that sets its strength.
    """

    field: str
    what: str
    key: str
    switch: tuple[str, int] | None = None
    #: a scenario key that names the field the mechanism reads (e.g.
    #: ``cells.tcell.chemotaxis_field``): the mechanism is declared once per field that key may
    #: name, and only the one it names applies
    select: str | None = None


#: every mechanism that reads a field, by field. Oxygen is required by the scenario; a dosed
#: antibody's field exists only while it is dosed (``T_ANTIBODY_KD`` is 0 otherwise), and the
#: growth factor's field index is -1 without ``egf`` (``kernels.cancer.C_GF_FIELD``).
FIELD_NEEDS = (
    Mechanism("ifng", "PD-L1 induction by IFN-gamma", "cells.tumor.pdl1_max"),
    Mechanism("ifng", "M1 polarisation of macrophages", "cells.macrophage.to_m1_rate_per_h",
              ("m_par", ki.M_TO_M1_RATE)),
    Mechanism("tgfb", "stem-like conversion driven by TGF-beta", "cells.tumor.plasticity_per_h"),
    Mechanism("tgfb", "suppression of T-cell killing by TGF-beta",
              "cells.tcell.tgfb_half_ng_per_mL", ("t_par", ki.T_TGFB_HALF)),
    Mechanism("tgfb", "M2 drive of macrophages by TGF-beta", "cells.macrophage.to_m2_rate_per_h"),
    Mechanism("tgfb", "fibroblast activation by TGF-beta", "cells.fibroblast.activation_rate_per_h"),
    Mechanism("chemokine", "T-cell chemotaxis", "cells.tcell.chemotaxis_bias",
              ("t_par", ki.T_CHEMOTAXIS_BIAS), TCELL_ATTRACTANT),
    Mechanism(CXCL10_FIELD, "T-cell chemotaxis up CXCL9/10", "cells.tcell.chemotaxis_bias",
              ("t_par", ki.T_CHEMOTAXIS_BIAS), TCELL_ATTRACTANT),
    Mechanism("ecm", "T-cell motility slowed by matrix", "cells.tcell.ecm_half",
              ("t_par", ki.T_ECM_HALF)),
    Mechanism("ecm", "matrix deposition by CAFs", "cells.fibroblast.ecm_deposition_per_h",
              ("f_par", ki.F_ECM_DEPOSITION)),
    Mechanism(GROWTH_FIELD, "growth support of cancer cells by EGF",
              "cells.tumor.growth_factor_boost"),
    Mechanism(CCL2_FIELD, "M2 drive of macrophages by CCL2", "cells.macrophage.ccl2_weight",
              ("m_par", ki.M_CCL2_WEIGHT)),
    Mechanism(CXCL1_FIELD, "MDSC chemotaxis up the CXCL1 gradient", "cells.mdsc.chemotaxis_bias",
              ("md_par", km.MD_CHEMOTAXIS_BIAS)),
)


def _kinds_in_run(scenario) -> set[str]:
    """Kinds that can appear in a run: placed at the start or recruited (both cancer kinds if
    either is placed, since each gives rise to the other)."""
    c = scenario.cells
    out = set()
    for k in kinds.all_kinds():
        if not k.section:
            continue
        cfg = getattr(c, k.name)
        r = cfg.recruitment if k.arrivals is not None else None
        primed = getattr(cfg, "priming", None)
        if cfg.initial.count > 0 or (primed is not None and primed.enabled) or (
                r is not None and (r.base_per_h > 0 or r.per_1000_tumor_per_h > 0
                                   or (r.per_site_per_h > 0 and r.signal is not None))):
            out.add(k.name)
    # kinds decided by one kernel give rise to each other (tumour and stem-like cells)
    for k in kinds.all_kinds():
        if k.name in out:
            out |= {kinds.by_code(j).name for j in k.decides_for}
    return out


def _would_act(m: Mechanism, scenario, kinds: set[str]) -> bool:
    """Whether mechanism ``m`` would act in this run if its field were there."""
    _, kind, param = m.key.split(".")
    cfg = getattr(scenario.cells, kind)
    off = cfg.pdl1_baseline if param == "pdl1_max" else 0  # PD-L1 is induced above baseline
    return kind in kinds and getattr(cfg, param) != off


def _selected(m: Mechanism, scenario) -> bool:
    """Whether ``m`` applies in ``scenario``: always, unless its ``select`` key names another
    field."""
    if m.select is None or scenario is None:
        return True
    value = scenario
    for part in m.select.split("."):
        value = getattr(value, part)
    return value == m.field


def mechanisms_off(field_names, scenario=None) -> dict[str, list[Mechanism]]:
    """The mechanisms of :data:`FIELD_NEEDS` that are off for want of a field, by field (of a
    mechanism with a ``select`` key, only the one the scenario selects)."""
    off: dict[str, list[Mechanism]] = {}
    for m in FIELD_NEEDS:
        if m.field not in field_names and _selected(m, scenario):
            off.setdefault(m.field, []).append(m)
    return off


def pgp_levels(n: int, mean: float, cv: float, rng) -> np.ndarray:
    """``n`` per-cell P-gp levels, log-normal with the given mean and coefficient of variation
    (all equal to ``mean`` when ``cv`` is 0)."""
    if cv <= 0 or mean <= 0:
        return np.full(n, mean)
    s2 = np.log1p(cv * cv)
    return rng.lognormal(np.log(mean) - 0.5 * s2, np.sqrt(s2), n)


def _no_lap(_name: str) -> None:
    """The default ``lap`` of :meth:`CellDynamics.step`: nothing."""


def _moves_per_h(speed_um_per_min: float, voxel_um: float) -> float:
    """Lattice moves per hour of a cell crawling at ``speed_um_per_min``."""
    return speed_um_per_min * 60.0 / voxel_um


class CellDynamics:
    """The cell phase of :class:`tmesim.model.TMEModel`, over arrays it does not own."""

    def __init__(self, scenario, fields, cells, tissue=None):
        self.sc = scenario
        self.fields = fields
        self.cells = cells
        c = scenario.cells
        vox = scenario.domain.voxel_um
        self.n_sites = cells.n_sites
        self.shape = np.array(cells.shape3, dtype=np.int64)

        dosed = {a: scenario.agents[a].kind for a in scenario.dosed_agents}
        roles = scenario.pool_roles
        #: the dosed drugs, in order (cells carry their pools; each adds a block of columns to
        #: ``cancer_par``, kernels.cancer.D_*)
        self.drugs = roles["drug"]
        #: the dosed nanoparticle formulations (cells carry their internalised particles)
        self.carriers = roles["nanoparticle"]
        #: the dosed anti-PD-L1 antibodies; T cells read their summed field (docs/pharmacology.md
        #: §8: they compete for the same PD-L1 with one Kd, cells.tcell.antibody_kd_nM)
        self.antibodies = [a for a, kind in dosed.items() if kind == "antibody"]
        #: the field whose occupancy of PD-L1 shields cancer cells from T cells (the first
        #: antibody's; with several, their sum, ``_antibody_sum``, refreshed every cell phase)
        self.antibody = self.antibodies[0] if self.antibodies else "anti_pdl1"
        self._antibody_sum = (np.zeros(cells.n_sites, fields.data.dtype)
                              if len(self.antibodies) > 1 else None)
        self.phi_cancer = c.tumor.volume_um3 / vox**3
        #: per-kind parameters of the cancer kernel (a row per kind); each kind packs its own
        #: parameters (``pack`` of :mod:`tmesim.kinds`: its row here, or a vector of its own,
        #: ``t_par``, ``m_par``, ``f_par``)
        self.cancer_par = np.zeros((kinds.count(), kc.C_NPARAMS + len(self.drugs) * kc.D_NCOLS))
        for kind in kinds.all_kinds():
            if kind.pack is not None:
                kind.pack(self)
        par = self.cancer_par
        #: push distance in sites per kind, and the work array of the pushes (kernels.agents)
        self.push = np.ascontiguousarray(par[:, kc.C_PUSH], dtype=np.int64)
        nsites = int(np.prod(scenario.domain.shape))
        self.push_work = np.zeros(
            (ka.PUSH_WORK_ROWS, nsites + 1 if self.push.any() else 1), dtype=np.int64
        )

        self.rules = self._rule_table()
        self._coupling_tables()
        self._switch_off_missing()

        #: the tissue (:class:`tmesim.tissue.Tissue`); plain interstitium when not given
        self.tissue = Tissue.uniform(cells.shape3) if tissue is None else tissue
        self.blocked = self.tissue.blocked
        # the kernels' structures go in as plain tuples (dispatched faster than named ones)
        self.lattice = tuple(ka.Lattice(self.shape, self.blocked))
        self.entry_sites = self.tissue.entry_sites()
        self._zero = np.zeros(self.n_sites)
        self._work_cap = 0
        #: ``(census bits, decide step, lap name)`` of the kinds with a decide kernel, in code
        #: order (:mod:`tmesim.kinds`)
        self._deciding = [(k.bits, k.decide(self), k.lap or f"{k.name} decide")
                          for k in kinds.all_kinds() if k.decide is not None]
        self._views_of = None
        self._arrays_of = None
        #: arriving kinds with a recruitment rate: (kind, recruitment, purposes, budget,
        #: phenotype, signal field or None)
        self._arrivals = []
        #: the lymph-node priming of T cells, if on (docs/biology.md §5.8): it replaces their
        #: burden-proportional arrivals
        self.priming = Priming(c.tcell.priming) if c.tcell.priming.enabled else None
        if len(self.entry_sites):
            for kind in kinds.all_kinds():
                if kind.arrivals is None:
                    continue
                r, purposes, div, pheno = kind.arrivals(self)
                signal = r.signal if r.per_site_per_h > 0.0 else None
                primed = self.priming is not None and kind.code == codes.TCELL
                if (r.base_per_h > 0.0 or r.per_1000_tumor_per_h > 0.0 or signal is not None
                        or primed):
                    self._arrivals.append((kind.code, r, purposes, div, pheno, signal))
        #: running sum of the entry sites' weights for arrivals drawn by a signal
        self._cum_weight = np.zeros(len(self.entry_sites))
        #: arrivals since the start, per kind: placed on an entry site, and lost because every
        #: entry site an arrival tried was taken (docs/biology.md §5.2)
        self.arrivals_placed = np.zeros(codes.N_KINDS, dtype=np.int64)
        self.arrivals_lost = np.zeros(codes.N_KINDS, dtype=np.int64)
        #: the small-cell layer's exchange maps, kept from step to step (sites shared only)
        self._small_maps = None
        #: per-cell pools returned to their field when a cell dies: (agent, column), the agent
        #: being the field; every pool of each dosed drug and formulation
        self._returned = [(a, col) for role, agents in roles.items() for a in agents
                          for col in layout.FAMILIES[role] if layout.division(col) == "pool"]
        #: per-cell amounts that leave with a dying cell (emptied nanoparticles), booked in
        #: ``cells.removed_with_dead``
        self._held = [(a, col) for role, agents in roles.items() for a in agents
                      for col in layout.FAMILIES[role] if layout.division(col) == "held"]

    def perfusion_changed(self) -> None:
        """Capillaries regressed (``Simulation.remodel_vessels``): arrivals enter only at the
        voxels still perfused (at the domain edge once none is left)."""
        self.entry_sites = self.tissue.entry_sites()
        self._cum_weight = np.zeros(len(self.entry_sites))

    # ------------------------------------------------------------------ set-up helpers
    def _switch_off_missing(self) -> None:
        """Switch off every mechanism whose field the scenario does not define, and say so."""
        #: mechanisms off for want of their field, by field
        self.off = mechanisms_off(self.fields.index, self.sc)
        chemo = ("chemokine", CCL2_FIELD)
        if not any(f in self.fields.index for f in chemo):
            # recruited macrophages climb CCL2, else the chemokine; with neither they walk at random
            self.m_par[ki.M_CHEMOTAXIS_BIAS] = 0.0
        kinds = _kinds_in_run(self.sc)
        for field, mechs in self.off.items():
            for m in mechs:
                if m.switch is not None:
                    getattr(self, m.switch[0])[m.switch[1]] = 0.0
            mechs = [m for m in mechs if _would_act(m, self.sc, kinds)]
            if not mechs:
                continue
            warn(
                f"fields.{field} is not defined, so these mechanisms are off: "
                + "; ".join(f"{m.what} ({m.key})" for m in mechs)
                + f". Define fields.{field} to keep them, or set "
                + ", ".join(f"{m.key} to {'pdl1_baseline' if m.key.endswith('pdl1_max') else 0}"
                            for m in mechs)
                + " to say that they are off"
            )

    def _rule_table(self) -> np.ndarray:
        base = {
            ("tumor", "division_rate"): self.sc.cells.tumor.division_rate_per_h,
            ("stem", "division_rate"): self.sc.cells.stem.division_rate_per_h,
            ("tumor", "migration_rate"): self.sc.cells.tumor.migration_rate_per_h,
            ("stem", "migration_rate"): self.sc.cells.stem.migration_rate_per_h,
            ("tcell", "kill_rate"): self.sc.cells.tcell.kill_rate_per_h,
            ("tcell", "division_rate"): (1.0 / self.sc.cells.tcell.division_h
                                         if self.sc.cells.tcell.division_h > 0 else 0.0),
        }
        table = np.zeros((len(self.sc.rules), R_NCOLS))
        for i, r in enumerate(self.sc.rules):
            b0 = base.get((r.cell, r.behaviour))
            if b0 is not None:
                bad = (r.direction == "increases" and r.max < b0) or (
                    r.direction == "decreases" and r.max > b0
                )
                if bad:
                    word = "at least" if r.direction == "increases" else "at most"
                    raise ScenarioError(
                        f"rule {i} {r.direction} {r.behaviour} but its max is on the wrong side "
                        "of the base value",
                        key=f"rules.{i}.max",
                        value=r.max,
                        expected=f"{word} the base value {b0:.4g} 1/h",
                        fix="change max, or flip direction",
                    )
            table[i] = (
                kinds.by_name(r.cell).code,
                -1 if r.signal == "pdl1" else self.fields.index[r.signal],
                BEHAVIOURS.index(r.behaviour),
                r.max,
                r.half_max,
                r.hill_power,
            )
        return table

    def _coupling_tables(self) -> None:
        """Per-kind exchange tables in voxel units (:class:`tmesim.kernels.lattice.ExchangeTables`,
        read by kernels.lattice.exchange_maps)."""
        nf = len(self.fields.names)
        v_vox = self.fields.voxel_um**3
        n_kinds = kinds.count()
        sink = np.zeros((n_kinds, nf))
        source = np.zeros((n_kinds, nf))
        release = np.zeros((n_kinds, nf))
        hypoxic = np.ones((n_kinds, nf))
        # release induced by another field: (inducer index or -1, EC50, Hill power) per kind
        # and field
        induction = np.zeros((3, n_kinds, nf))
        induction[0] = -1.0
        # a kind with no scenario section exchanges nothing
        for kind in kinds.all_kinds():
            if not kind.section:
                continue
            k = kind.code
            cfg = getattr(self.sc.cells, kind.name)
            ratio = cfg.volume_um3 / v_vox
            if "oxygen" in self.fields.index:
                o2_ratio = 1.0 if cfg.oxygen_uptake_basis == "site" else ratio
                sink[k, self.fields.index["oxygen"]] = o2_ratio * cfg.oxygen_uptake_per_min
            for fname, sec in cfg.secretion.items():
                fi = self.fields.index[fname]
                sink[k, fi] += ratio * (sec.uptake_per_min + sec.rate_per_min)
                source[k, fi] += ratio * sec.rate_per_min * sec.target
                release[k, fi] += sec.release_per_min / v_vox
                hypoxic[k, fi] = sec.hypoxic_release_factor
                if sec.induced_by is not None:
                    induction[:, k, fi] = (self.fields.index[sec.induced_by], sec.induced_ec50,
                                           sec.induced_hill)
        # how the release of each kind scales per cell (``codes.ACT_*``)
        activity = np.array(kinds.activities(), dtype=np.int8)
        self.exchange_tables = kl.ExchangeTables(sink, source, release, hypoxic, activity,
                                                 induction)

    def initialise(self, rng) -> None:
        """Place the initial cells of every kind and set their starting state."""
        # P-gp levels from their own stream, so that they leave the placements unchanged
        self.pgp_rng = np.random.default_rng([self.sc.seed, PURPOSE_PGP])
        # each kind places its cells and sets their columns (``place`` of tmesim.kinds)
        for kind in kinds.placement_order():
            if kind.place is not None:
                kind.place(self, rng)

    def place_initial(self, code: int, name: str, rng, div: int) -> np.ndarray:
        """Place the initial cells of kind ``code`` as its section ``cells.<name>.initial``
        says, on tissue (cancer cells reach lumens only by growing into them), each with
        division budget ``div``; return their rows."""
        ini = getattr(self.sc.cells, name).initial
        tissue = self.tissue
        return self.cells.place(
            code, ini.count, ini.placement, ini.radius_um, self.sc.domain.voxel_um, rng, div,
            f"cells.{name}.initial",
            allowed=~tissue.lumen,
            capillaries=tissue.capillaries,
            alveolar=tissue.alveolar_surface,
        )

    def moves_per_h(self, speed_um_per_min: float) -> float:
        """Lattice moves per hour of a cell crawling at ``speed_um_per_min``."""
        return _moves_per_h(speed_um_per_min, self.sc.domain.voxel_um)

    # ------------------------------------------------------------------ per step
    def exchange_maps(self, sink, source) -> None:
        """Fill per-voxel sink (1/min) and source (units/min) maps from the cells."""
        cells = self.cells
        self._exchange(cells.occ, sink, source)
        if cells.small_kinds:
            # a site may hold a large and a small cell: the small layer is mapped through its
            # own map and its terms are added after the large layer's
            maps = self._small_maps
            if maps is None or maps[0].shape != sink.shape:  # kept from step to step
                maps = self._small_maps = (np.empty_like(sink), np.empty_like(source))
            small_sink, small_source = maps
            self._exchange(cells.small, small_sink, small_source)
            sink += small_sink
            source += small_source

    def _exchange(self, occ, sink, source) -> None:
        """:func:`~tmesim.kernels.lattice.exchange_maps` of the cells of the layer whose map is
        ``occ`` (it writes every voxel of both maps)."""
        cells = self.cells
        nf = sink.shape[0]
        kl.exchange_maps(
            cells.n, cells.kind, cells.state, occ, cells.column("phenotype"),
            cells.column("aux"), self.exchange_tables, self.fields.data.reshape(nf, -1),
            sink.reshape(nf, -1), source.reshape(nf, -1),
        )

    def _field(self, name):
        return self.fields.flat(name) if name in self.fields.index else self._zero

    def _field_views(self):
        """The fields as the decide kernels read them (:class:`~tmesim.kernels.agents.FieldViews`,
        as a plain tuple), built again only if the field array is replaced."""
        data = self.fields.data
        if self._views_of is not data:
            chemo = self._field("chemokine")
            ccl2 = self._field(CCL2_FIELD)
            self._views = tuple(ka.FieldViews(
                oxygen=self._field("oxygen"), ifng=self._field("ifng"), tgfb=self._field("tgfb"),
                chemokine=chemo, ecm=self._field("ecm"),
                antibody=(self._field(self.antibody) if self._antibody_sum is None
                          else self._antibody_sum),
                ccl2=ccl2, attractant=ccl2 if CCL2_FIELD in self.fields.index else chemo,
                all=data.reshape(len(self.fields.names), -1),
            ))
            self._views_of = data
        return self._views

    def _arrays(self, kind: int | None = None) -> tuple:
        """The cell store as a plain tuple (:class:`~tmesim.kernels.layout.CellArrays`), built
        again only when the store's arrays are replaced. For the arrivals of a ``kind`` on the
        small-cell layer (sites shared), its occupancy slot holds that layer's map."""
        a = self.cells.arrays()
        if a is not self._arrays_of:
            self._arrays_tuple = tuple(a)
            self._arrays_of = a
        if kind is not None and kind in self.cells.small_kinds:
            t = self._arrays_tuple
            return (*t[: layout.OCC], t[layout.SMALL], t[layout.SMALL])
        return self._arrays_tuple

    def _work(self, cap):
        if cap > self._work_cap:
            self.intents = tuple(ka.Intents(np.zeros(cap, np.int8), np.zeros(cap, np.int64),
                                            np.zeros(cap, np.int8), np.zeros(cap, np.int32)))
            self._work_cap = cap

    def step(self, dt_h: float, step: int, seed: int, lap=None) -> dict:
        """Run the cell phase; return event counts (kills, arrivals).

        ``lap``, if given, is called with the name of each part of the phase as it ends (the
        per-kernel breakdown of ``benchmarks/bench_cells.py`` times this very step with it).
        """
        lap = lap or _no_lap
        cells = self.cells
        cells.reserve(2 * cells.n + 1)
        self._work(cells._cap)
        n = cells.n
        arrays, lattice, intents = self._arrays(), self.lattice, self.intents
        keys = (dt_h, seed, step)  # ka.StepKeys, as a plain tuple
        views = self._field_views()
        if self._antibody_sum is not None:  # several antibodies: their summed concentration
            np.copyto(self._antibody_sum, self.fields.flat(self.antibodies[0]))
            for a in self.antibodies[1:]:
                self._antibody_sum += self.fields.flat(a)
        lap("set-up")
        # every row's kind is present, so the kernels below set the action of every row
        present, burden = kl.census(n, cells.kind, cells.state)
        lap("census")
        # each kind's decide kernel (kinds registry), skipped when none of its cells is present
        for bits, decide, name in self._deciding:
            if present & bits:
                decide(n, arrays, lattice, views, keys, intents)
            lap(name)
        m, next_id, kills = ka.apply_actions(n, intents, arrays, lattice, keys, cells.next_id,
                                             self.push, self.push_work, cells.pools)
        cells.n, cells.next_id = int(m), int(next_id)
        lap("apply_actions")
        primed = 0.0
        if self.priming is not None:  # the dead prime T cells (biology.md §5.8)
            deaths, immunogenic = kl.death_ledger(cells.n, cells.kind, cells.state,
                                                  cells.column("icd"))
            mdscs = 0
            if present & (np.int64(1) << codes.MDSC):  # MDSCs suppress priming (§6a)
                counts = cells.counts()
                mdscs = int(counts[codes.MDSC, [codes.PROLIFERATING, codes.QUIESCENT]].sum())
            primed = self.priming.step(dt_h, deaths, immunogenic, burden, mdscs)
        arrivals = self._recruit(dt_h, step, seed, burden, primed) if self._arrivals else 0
        lap("arrivals")
        # the dead give their drug and internalised particles back to their voxel
        for agent, column in self._returned:
            kp.release_removed(
                cells.n, cells.state, cells.site, cells.agent_column(agent, column),
                self.fields.flat(agent), self.phi_cancer,
            )
        for agent, column in self._held:
            gone = nk.remove_dead(cells.n, cells.state, cells.agent_column(agent, column))
            key = (agent, column)
            cells.removed_with_dead[key] = cells.removed_with_dead.get(key, 0.0) + gone
        cells.compact()
        lap("compact")
        return {"kills": int(kills), "arrivals": arrivals}

    def _recruit(self, dt_h, step, seed, burden, primed=0.0) -> int:
        """Poisson arrivals of T cells and macrophages; ``burden`` is the number of live cancer
        cells at the start of the step, ``primed`` the expected arrivals of primed T cells in
        the step (with priming on).

        Each kind has up to two streams: arrivals at rate ``base + per_1000 * burden / 1000``
        (for primed T cells ``base`` plus ``primed``) on entry sites drawn uniformly, and,
        with a signal field, arrivals at rate ``per_site * sum_s H(signal_s)`` over the free
        entry sites, each drawn with probability proportional to its ``H(signal_s)``
        (docs/biology.md §5.2, §5.8, §6)."""
        cells = self.cells
        placed_total = 0
        for kind, r, purposes, div, pheno, signal in self._arrivals:
            start = cells.n
            if self.priming is not None and kind == codes.TCELL:
                lam = r.base_per_h * dt_h + primed
            else:
                lam = (r.base_per_h + r.per_1000_tumor_per_h * burden / 1000.0) * dt_h
            k = self._poisson(lam, seed, step, purposes[0])
            if k:
                cells.reserve(cells.n + k)
                n, next_id, placed = ka.recruit(
                    k, self.entry_sites, 8, kind, div, self._arrays(kind), cells.n,
                    cells.next_id,
                    seed, step, purposes[0],
                )
                cells.n, cells.next_id = int(n), int(next_id)
                placed_total += self._count_arrivals(kind, k, int(placed))
            if signal is not None:
                cum = self._cum_weight
                total = ka.entry_weights(self.entry_sites, self.fields.flat(signal),
                                         cells.layer(kind), r.signal_half, cum)
                k = self._poisson(r.per_site_per_h * total * dt_h, seed, step, purposes[1])
                if k:
                    cells.reserve(cells.n + k)
                    n, next_id, placed = ka.recruit_weighted(
                        k, self.entry_sites, cum, 8, kind, div, self._arrays(kind), cells.n,
                        cells.next_id, seed, step, purposes[1],
                    )
                    cells.n, cells.next_id = int(n), int(next_id)
                    placed_total += self._count_arrivals(kind, k, int(placed))
            if pheno and cells.n > start:
                cells.column("phenotype")[start : cells.n] = pheno
                if pheno > 0.5:
                    cells.state[start : cells.n] = codes.QUIESCENT
        return placed_total

    def _count_arrivals(self, kind: int, drawn: int, placed: int) -> int:
        """Book ``drawn`` arrivals of ``kind``, ``placed`` of them on a free entry site and the
        rest lost; return ``placed``."""
        self.arrivals_placed[kind] += placed
        self.arrivals_lost[kind] += drawn - placed
        return placed

    @staticmethod
    def _poisson(lam, seed, step, purpose) -> int:
        """A Poisson count of mean ``lam`` from the stream of ``(seed, step, purpose)``."""
        if lam <= 0.0:
            return 0
        rng = np.random.default_rng(np.random.SeedSequence([seed, step, purpose]))
        return int(rng.poisson(lam))
