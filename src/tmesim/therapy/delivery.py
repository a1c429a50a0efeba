"""Delivery of dosed agents into the simulated tissue, and the ledger that accounts for them.

Per dosed agent (docs/pharmacology.md):

* **Plasma** follows the agent's linear PK model (:class:`~tmesim.therapy.pk.PKState`), dosed by
  its intravenous administrations (boluses or infusions).
* **Capillary exchange.** Each perfused voxel (capillary or vessel) exchanges with plasma
  by diffusion and, with ``vessels.convection``, by fluid filtration (the Patlak flux of
  :mod:`~tmesim.therapy.transvascular`, ``gain C_p - loss C``; without convection
  ``dC/dt = P (S/V) (C_p - C)``), with ``S/V = pi d / voxel^2`` (one capillary of diameter
  ``d`` through the voxel) and ``P`` the wall permeability: ``tumor_permeability`` (times the
  vessel's leakiness factor) for the immature vessels angiogenesis formed, or with
  ``vessels.leaky_vessels: tumor_associated`` for capillaries within
  ``vessels.tumor_association_um`` of a cancer cell, and ``permeability`` otherwise. The
  exchange is a sink ``loss`` and a source ``gain C_p`` of the agent field's transport step
  (implicit when the exchange is fast, so that its steady state is exact), and the amount it
  moved, ``dt sum(gain C_p - loss C')`` of the solved field, is taken out of (or returned to)
  the plasma compartment.
* **Inhalation.** A fraction of an inhaled dose, from the aerosol's size and the host species'
  deposition curve (:mod:`~tmesim.therapy.deposition`) or ``subject.inhaled_deposited_fraction``
  where given, deposits evenly over the lung's alveolar surface; the domain receives the share of its own alveolar
  surface sites (one voxel face each), the rest of the deposited dose is absorbed into plasma,
  and the undeposited part is exhaled.
* **Tissue decay** (``decay_per_min``) is a sink of the same step, and the amount lost,
  ``dt decay sum(C')``, is recorded.
* **Cells** (agent of kind ``drug``): passive uptake and P-gp efflux, reduced by a dosed
  inhibitor, are terms of the same step too
  (:func:`~tmesim.kernels.pharmacology.membrane_terms`); dead cells return their drug to their
  voxel.

The ledger closes exactly: dosed = plasma + peripheral + cleared + exhaled + tissue + cells +
decayed in tissue + airway (content of lumen sites that emptied with no tissue neighbour) +
unconserved (what the iterative transport solves lost, negative if they made it; at most their
tolerance, ``numerics.solver_rtol``); tests/test_therapy.py checks it to round-off.
"""

from __future__ import annotations

import math

import numpy as np

from .. import kinds
from ..errors import ScenarioError
from ..kernels import codes
from ..kernels import nanoparticles as nk
from ..kernels import pharmacology as kp
from .deposition import deposited_fraction
from .nano_rules import intracellular_release_per_h, ligand_factor, ph_release_rate
from .particles import transport_of
from .pk import Administration, PKModel, PKState
from .transvascular import (
    filtration_per_min,
    patlak_coefficients,
    reflection_of,
    renkin_crone,
)

#: per-drug metrics and their units; a drug after the first has them suffixed with ``_<drug>``
#: (the first, or only, drug keeps the plain names)
DRUG_METRICS = {
    "delivered_fraction": "1",
    "tumor_drug_total_uM": "uM",
    "tumor_drug_bound_uM": "uM",
    "tumor_np_drug_uM": "uM",  # only for a drug that a dosed formulation carries
    "tumor_np_label_uM": "uM",  # likewise
    "np_penetration_um": "um",  # likewise
    "intracellular_drug_mean_uM": "uM",
    "intracellular_drug_p10_uM": "uM",
    "intracellular_drug_p50_uM": "uM",
    "intracellular_drug_p90_uM": "uM",
    "intracellular_drug_total_mean_uM": "uM",
}

#: the drug metrics recorded only for a drug that a dosed formulation carries
_CARRIER_METRICS = ("tumor_np_drug_uM", "tumor_np_label_uM", "np_penetration_um")

#: ledger entries, mg
LEDGER_KEYS = (
    "dosed", "plasma", "peripheral", "cleared", "exhaled", "tissue", "cells", "decayed", "airway",
    "unconserved", "released",
)

#: a formulation's further ledger entries, mg of drug-equivalent at loading: the particle
#: material that released its payload inside cells (``emptied``, the stored gain of their
#: carrier pools) is now in live or dead cells (``carriers``), lost by degradation and
#: exocytosis (``carrier_lost``) or gone with dead cells (``carrier_removed``):
#: emptied = carriers + carrier_lost + carrier_removed (docs/pharmacology.md §13.12)
CARRIER_LEDGER_KEYS = ("emptied", "carriers", "carrier_lost", "carrier_removed")


def membrane_rate_per_min(permeability_um_per_min: float, volume_um3: float) -> float:
    """``k = P_m A / V`` of a spherical cell of ``volume_um3`` (1/min)."""
    radius = (3.0 * volume_um3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    return permeability_um_per_min * 3.0 / radius


def local_rates(scenario) -> dict[str, float]:
    """The fastest first-order local rate of each dosed agent's field (1/min): tissue decay, the
    larger capillary exchange rate ``P S/V`` and, for the drug, the membrane exchange rate per
    voxel ``phi k``. It decides, like a field's own rate, whether the field's transport step is
    implicit under ``numerics.scheme: auto`` (:func:`tmesim.fields.choose_steps`)."""
    sv = math.pi * scenario.vessels.capillary_diameter_um / scenario.domain.voxel_um**2
    # |q (1 - sigma)| <= |q|: an upper bound of the convective part of the exchange rate
    q_max = max(abs(q) for q in filtration_per_min(scenario.vessels, sv))
    out = {}
    for name in scenario.dosed_agents:
        cfg = scenario.agents[name]
        rate = q_max + cfg.decay_per_min + sv * max(
            cfg.permeability_um_per_min, cfg.tumor_permeability_um_per_min
        )
        if cfg.kind == "drug":
            # phi k_m as Therapy's uptake tables have it (phi from the tumour cell's volume)
            c = scenario.cells
            phi = c.tumor.volume_um3 / scenario.domain.voxel_um**3
            rate += phi * max(
                membrane_rate_per_min(cfg.membrane_permeability_um_per_min,
                                      getattr(c, k).volume_um3)
                for k in ("tumor", "stem")
            )
        out[name] = rate
    for name in scenario.dosed_nanoparticles:
        der = transport_of(scenario, name)
        out[name] = q_max + sv * max(
            der["tumor_permeability_um_per_min"], der["permeability_um_per_min"]
        )
    return out


class AgentDelivery:
    """One dosed agent or nanoparticle formulation: its PK state, its field and its ledger.

    A formulation's field holds particles in uM of the drug they carry (drug-equivalent), its
    doses are mg of that drug, and its plasma volume is the plasma volume of the host.
    """

    #: plasma volume used for nanoparticles (L/kg)
    PLASMA_L_PER_KG = 0.05

    def __init__(self, name: str, scenario, field_index: int) -> None:
        self.name = name
        self.field_index = field_index
        #: micelles dissociate in plasma while the plasma amount (mg of drug) is below this,
        #: their polymer then being below the CMC (docs/pharmacology.md §13.4); None: never
        self.cmc_amount_mg = None
        mass = scenario.subject.body_mass_kg
        if name in scenario.nanoparticles:
            npc = scenario.nanoparticles[name]
            der = transport_of(scenario, name)
            self.kind = "nanoparticle"
            self.cfg = npc
            self.units = "uM"
            molar_mass = scenario.agents[npc.payload.drug].molar_mass_g_per_mol
            self.p_tumor = der["tumor_permeability_um_per_min"]
            self.p_normal = der["permeability_um_per_min"]
            self.decay = 0.0
            self.unbound = 1.0  # particles carry their drug; no protein binding in plasma
            self.derived = der
            model = PKModel.from_half_lives(self.PLASMA_L_PER_KG * mass, der["half_life_h"])
            if npc.cmc_mg_per_L is not None:
                self.cmc_amount_mg = npc.cmc_mg_per_L / npc.polymer_per_drug * model.v_central_L
        else:
            cfg = scenario.agents[name]
            pk = cfg.pk
            self.kind = cfg.kind
            self.cfg = cfg
            self.units = cfg.units
            molar_mass = cfg.molar_mass_g_per_mol
            self.p_tumor = cfg.tumor_permeability_um_per_min
            self.p_normal = cfg.permeability_um_per_min
            self.decay = cfg.decay_per_min
            self.unbound = cfg.plasma_unbound_fraction
            model = PKModel.from_half_lives(
                pk.v_central_L_per_kg * mass,
                pk.half_life_h,
                alpha_half_life_h=pk.alpha_half_life_h,
                v_peripheral_L=None
                if pk.v_peripheral_L_per_kg is None
                else pk.v_peripheral_L_per_kg * mass,
            )
        iv, inhaled = [], []
        for adm in scenario.therapy:
            if adm.agent != name:
                continue
            for t in adm.times_h():
                amount = adm.dose_mg_per_kg * mass
                if adm.route == "iv":
                    iv.append(Administration(t, amount, adm.duration_h))
                else:
                    inhaled.append((t, amount, deposited_fraction(scenario, adm)))
        self.pk = PKState(model, iv)
        #: solvent-drag reflection coefficients at tumour and at normal vessels
        self.sigma_tumor, self.sigma_normal = reflection_of(scenario, name)
        self.inhaled = sorted(inhaled)
        self._next_inhaled = 0
        #: field units (uM or nM) per mg/L
        self.per_mg_per_L = (1e3 if self.units == "uM" else 1e6) / molar_mass
        self.exhaled_mg = 0.0
        self.deposited_mg = 0.0  # inhaled, onto the domain's alveolar surface
        self.decayed_mg = 0.0
        self.airway_mg = 0.0  # left with lumen sites that emptied and had no tissue neighbour
        self.unconserved_mg = 0.0  # lost by inexact transport solves (negative: made)
        self.from_carrier_mg = 0.0  # released by nanoparticles (payload agents)
        self.released_mg = 0.0  # released payload drug (nanoparticles)
        self.dissociated_mg = 0.0  # of it, released in plasma by micelles below their CMC
        self.emptied_mg = 0.0  # particle material whose payload was released inside cells
        self.carrier_lost_mg = 0.0  # of it, lost from live cells (degradation, exocytosis)

    @property
    def plasma(self) -> float:
        """Plasma concentration in field units."""
        return self.pk.plasma_mg_per_L * self.per_mg_per_L

    @property
    def plasma_unbound(self) -> float:
        """The unbound plasma concentration (field units): what the capillary wall exchanges."""
        return self.unbound * self.plasma

    @property
    def dosed_mg(self) -> float:
        """Everything administered: plasma doses, inhaled doses, and release from carriers."""
        return self.pk.dosed_mg + self.deposited_mg + self.exhaled_mg + self.from_carrier_mg


class Therapy:
    """Every dosed agent of a scenario, coupled to the field set and the cell population.

    ``tissue`` (:class:`tmesim.tissue.Tissue`) gives the perfused sites (capillaries and
    vessels), the alveolar surface and the lumen.
    """

    def __init__(self, scenario, fields, cells, tissue):
        self.sc = scenario
        self.fields = fields
        self.cells = cells
        vox = scenario.domain.voxel_um
        self.v_vox_L = vox**3 * 1e-15
        self.agents = [
            AgentDelivery(name, scenario, fields.index[name])
            for name in (*scenario.dosed_agents, *scenario.dosed_nanoparticles)
        ]
        self.tissue = tissue
        self.perfused_sites = np.flatnonzero(tissue.perfused).astype(np.int64)
        self.surface_sites = np.flatnonzero(tissue.alveolar_surface).astype(np.int64)
        self.tissue_sites = np.flatnonzero(~tissue.lumen)
        self.surface_per_volume = math.pi * scenario.vessels.capillary_diameter_um / vox**2
        #: fluid filtration per unit tissue volume at tumour and normal vessels (1/min)
        self.q_tumor, self.q_normal = filtration_per_min(scenario.vessels,
                                                         self.surface_per_volume)
        self.tumor_vessel = np.zeros(len(self.perfused_sites), dtype=bool)
        if len(self.perfused_sites) == 0 and any(a.pk.doses for a in self.agents):
            raise ScenarioError(
                "the domain has no capillary or vessel voxels to deliver intravenous doses "
                "through",
                key="therapy",
                has_value=False,
                expected="a lung geometry with capillaries or a mask with capillary or vessel "
                "labels",
                fix="raise domain.lung.capillary_fraction above 0, or use route 'inhaled'",
            )
        #: the dosed drugs, each with its own field and cell pools (the first holds the column
        #: table's own pools, kernels.layout.agent_columns), and the formulations
        self.drugs = [a for a in self.agents if a.kind == "drug"]
        self.carriers = [a for a in self.agents if a.kind == "nanoparticle"]
        self.drug = self.drugs[0] if self.drugs else None
        #: the dosed P-gp inhibitors; P-gp reads them as one field in units of the first
        #: (:meth:`_inhibitor_field`), whose IC50 the membrane tables hold
        self.inhibitors = [a for a in self.agents if a.kind == "inhibitor"]
        self.inhibitor = self.inhibitors[0] if self.inhibitors else None
        self._inhibition = np.zeros(0)  # work array of the equivalent inhibitor field
        self.by_name = {a.name: a for a in self.agents}
        self._cell_tables()
        for a in self.agents:
            self._no_exchange(a)
        self._rates_current = False  # vessel rates as the perfused voxels now stand
        self._limited = None  # whether the rates in force are flow-limited (None: not yet set)
        self._distance = None  # um to the nearest perfused voxel, for np_penetration_um

    def _no_exchange(self, a: AgentDelivery) -> None:
        n = len(self.perfused_sites)
        a.wall_rate = np.zeros(n)  # the wall's diffusive rate P S/V (1/min)
        a.vessel_rate = np.zeros(n)  # that rate, flow-limited at tumour vessels (1/min)
        a.vessel_convection = np.zeros(n)  # convective rate q (1 - sigma) (1/min)
        a.vessel_loss = np.zeros(n)  # sink of the exchange (1/min)
        a.vessel_gain = np.zeros(n)  # source of the exchange per unit plasma (1/min)

    @property
    def active(self) -> bool:
        return bool(self.agents)

    def perfusion_changed(self, perfused) -> None:
        """Capillaries regressed: exchange with plasma only through the voxels still perfused."""
        self.perfused_sites = np.flatnonzero(np.asarray(perfused).ravel()).astype(np.int64)
        self.tumor_vessel = np.zeros(len(self.perfused_sites), dtype=bool)
        for a in self.agents:
            self._no_exchange(a)
        self._rates_current = False
        self._limited = None
        self._distance = None

    # ------------------------------------------------------------------ set-up
    def _cell_tables(self) -> None:
        """Per-kind tables of the cell kernels: P-gp dynamics, and per drug and formulation its
        own (:meth:`_drug_tables`, :meth:`_carrier_tables`)."""
        n = kinds.count()
        c = self.sc.cells
        self.phi = c.tumor.volume_um3 / self.sc.domain.voxel_um**3
        # P-gp dynamics: induction by intracellular drug, knockdown by carried siRNA
        turnover, induction, induction_ec50 = np.zeros(n), np.zeros(n), np.ones(n)
        for k, name in ((codes.TUMOR, "tumor"), (codes.STEM, "stem")):
            cfg = getattr(c, name)
            turnover[k] = cfg.pgp_turnover_per_h / 60.0
            induction[k] = cfg.pgp_induction_max if self.drug is not None else 0.0
            induction_ec50[k] = cfg.pgp_induction_ec50_uM
        #: the formulations whose siRNA knocks P-gp down (any number; their remaining fractions
        #: multiply, docs/pharmacology.md §14)
        self.sirna = [a for a in self.carriers if a.cfg.payload.sirna_knockdown > 0]
        self.pgp_regulation = kp.PgpRegulation(
            turnover, induction, induction_ec50,
            np.array([a.cfg.payload.sirna_knockdown for a in self.sirna] or [0.0]),
            np.array([a.cfg.payload.sirna_half_uM for a in self.sirna] or [1.0]),
        )
        self.pgp_dynamic = bool(induction.any() or self.sirna)
        for a in self.carriers:
            self._carrier_tables(a)
        for a in self.drugs:
            self._drug_tables(a)

    def _carrier_tables(self, a: AgentDelivery) -> None:
        """Per-kind internalisation and intracellular release rates of formulation ``a``, its
        receptor fractions and ligand gain, and the agents of its payload."""
        n = kinds.count()
        c = self.sc.cells
        npc = a.cfg
        a.np_uptake = np.zeros(n)
        a.np_release_in = np.zeros(n)
        a.receptor = np.zeros(n)
        a.ligand_factor = ligand_factor(npc)
        release_in = intracellular_release_per_h(npc.release) / 60.0
        for k, name in ((codes.TUMOR, "tumor"), (codes.STEM, "stem")):
            a.np_uptake[k] = npc.tumor_uptake_per_h / 60.0
            a.np_release_in[k] = release_in
            a.receptor[k] = getattr(c, name).receptor_fraction
        a.np_uptake[codes.MACROPHAGE] = npc.macrophage_uptake_per_h / 60.0
        # macrophages as a depot: release into their voxel's free drug (§13.8)
        a.np_release_depot = np.zeros(n)
        a.np_release_depot[codes.MACROPHAGE] = npc.release.macrophage_per_h / 60.0
        # emptied particles leave every cell that holds them at one rate (§13.12)
        a.carrier_loss = np.full(n, npc.carrier_loss_per_h / 60.0)
        a.payload_drug = self.by_name[npc.payload.drug]

    def _drug_tables(self, a: AgentDelivery) -> None:
        """Drug ``a``'s per-kind membrane rate, P-gp Vmax, Km, inhibitor IC50, binding and slow
        pool (the rows of :func:`~tmesim.kernels.pharmacology.membrane_terms`), its damage
        repair, its cell columns and the work array of its exchange."""
        n = kinds.count()
        c = self.sc.cells
        d = a.cfg
        k_mem, vmax, km, ic50 = np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n)
        # DNA binding capacity (uM) and Kd (uM), damage repair (1/h)
        bmax, kd_bind, a.repair = np.zeros(n), np.ones(n), np.zeros(n)
        # slow (intercalated) pool: filling rate per unit free drug and release rate (1/min),
        # capacity (uM)
        retain_in, retain_out, retain_max = np.zeros(n), np.zeros(n), np.zeros(n)
        for k, name in ((codes.TUMOR, "tumor"), (codes.STEM, "stem")):
            k_mem[k] = membrane_rate_per_min(
                d.membrane_permeability_um_per_min, getattr(c, name).volume_um3
            )
            vmax[k] = d.pgp_vmax_uM_per_min
            km[k] = d.pgp_km_uM
            bmax[k] = d.dna_binding_max_uM
            kd_bind[k] = d.dna_binding_kd_uM
            a.repair[k] = d.damage_repair_per_h
            if d.retention_max_uM > 0:
                retain_in[k] = d.retention_uptake_per_h / 60.0
                retain_out[k] = math.log(2.0) / (60.0 * d.retention_half_life_h)
                retain_max[k] = d.retention_max_uM
            if self.inhibitor is not None:
                ic50[k] = self.inhibitor.cfg.pgp_ic50_uM
        #: the drug's exchange with cells is a term of its transport step
        a.membrane = bool(k_mem.any())
        a.binds = bool(bmax.any() or retain_max.any())
        a.membrane_par = np.stack(
            [k_mem, vmax, km, ic50, bmax, kd_bind, retain_in, retain_out, retain_max]
        )
        a.den = np.zeros(0)

    def _pool(self, a: AgentDelivery, column: str) -> np.ndarray:
        """Agent ``a``'s copy of cell column ``column`` (full capacity; fetched each time, since
        the store's blocks are replaced when it grows)."""
        return self.cells.agent_column(a.name, column)

    def _pools(self, d: AgentDelivery) -> kp.DrugPools:
        """Drug ``d``'s free, bound and retained pools in the cells (:meth:`_pool`)."""
        return kp.DrugPools(self._pool(d, "drug"), self._pool(d, "bound"),
                            self._pool(d, "retained"))

    # ------------------------------------------------------------------ the phases
    def update_vessels(self) -> None:
        """Mark the leaky (tumour) vessels among the perfused voxels and set each agent's
        exchange rate per perfused voxel: the tumour-vessel permeability (times each angiogenic
        vessel's leakiness) there, the normal one elsewhere (``vessels.leaky_vessels``), each
        times the vessel's perfusion, and at tumour vessels limited by the tumour's blood flow
        (:meth:`_flow_limit`). Angiogenic leakiness changes only with the perfused voxels, so
        the wall rates are set again only after :meth:`perfusion_changed`; the tumour-associated
        rule follows the cells every step, and so does the flow limit (the tumour's volume)."""
        if not self.active or len(self.perfused_sites) == 0:
            return
        if self.sc.vessels.leaky_vessels == "angiogenic":
            if not self._rates_current:
                self._rates_current = True
                self.tumor_vessel = self.tissue.angiogenic[self.perfused_sites]
                self._set_wall_rates(self.tissue.leakiness[self.perfused_sites])
            cancer = None  # the flow limit finds the live cancer cells if it needs them
        else:
            cancer = self._live_cancer()
            self.tumor_vessel = self._near_cancer(cancer)
            self._set_wall_rates(1.0)
        self._flow_limit(cancer)

    def _set_wall_rates(self, factor) -> None:
        """Each agent's wall rate ``P S/V`` per perfused voxel (1/min) and its convective rate."""
        self._limited = None  # the exchange coefficients must be set from the new rates
        # a poorly perfused vessel brings less plasma past its wall (1 for host vessels); the
        # leakiness scales wall permeability and hydraulic conductivity alike
        perf = self.tissue.perfusion[self.perfused_sites]
        flow = perf * self.surface_per_volume
        q = np.where(self.tumor_vessel, self.q_tumor * factor, self.q_normal) * perf
        for a in self.agents:
            a.wall_rate = np.where(self.tumor_vessel, a.p_tumor * factor, a.p_normal) * flow
            a.vessel_convection = q * np.where(
                self.tumor_vessel, 1.0 - a.sigma_tumor, 1.0 - a.sigma_normal
            )

    def _flow_limit(self, cancer: np.ndarray | None = None) -> None:
        """Exchange at tumour vessels limited by the plasma flowing through the tumour
        (docs/pharmacology.md §3.2): each tumour vessel carries an equal share, per unit of
        its perfusion, of the plasma flow ``F (1 - Hct)`` of the tumour's volume (its live cancer
        cells and its vessels, one voxel each), and an agent's rate ``k`` there becomes the
        Renkin-Crone rate ``k (1 - e^-x) / x`` with ``x = f_u k / F_v``. Host vessels and runs
        with ``vessels.tumor_blood_flow_per_min`` null keep ``k``. ``cancer``: the live cancer
        rows (:meth:`_live_cancer`) where the caller has them."""
        flow = self.sc.vessels.tumor_blood_flow_per_min
        tv = np.flatnonzero(self.tumor_vessel)
        limited = flow is not None and tv.size > 0
        if not limited and self._limited is False:
            return  # the wall rates stand, and the coefficients were set from them
        self._limited = limited
        for a in self.agents:
            a.vessel_rate = a.wall_rate
        if limited:
            perf = self.tissue.perfusion[self.perfused_sites][tv]
            if cancer is None:
                cancer = self._live_cancer()
            share = (tv.size + int(np.count_nonzero(cancer))) / max(
                float(np.sum(perf)), 1e-300)
            plasma_flow = flow * (1.0 - self.sc.vessels.hematocrit) * share * perf
            for a in self.agents:
                a.vessel_rate = a.wall_rate.copy()
                a.vessel_rate[tv] = renkin_crone(a.wall_rate[tv], a.unbound, plasma_flow)
        for a in self.agents:
            if a.vessel_convection.any():
                a.vessel_loss, a.vessel_gain = patlak_coefficients(a.vessel_rate,
                                                                   a.vessel_convection)
            else:  # B(0) = 1: the Patlak coefficients of a purely diffusive exchange, exactly
                a.vessel_loss = a.vessel_gain = a.vessel_rate

    def _live_cancer(self) -> np.ndarray:
        """Which cell rows are live (proliferating or quiescent) cancer cells."""
        cells = self.cells
        n = cells.n
        state = cells.state[:n]
        return kinds.cancer(cells.kind[:n]) & (
            (state == codes.PROLIFERATING) | (state == codes.QUIESCENT)
        )

    def _near_cancer(self, cancer: np.ndarray) -> np.ndarray:
        """Perfused voxels within ``vessels.tumor_association_um`` of a live cancer cell
        (``cancer``: the live cancer rows, :meth:`_live_cancer`)."""
        from scipy.ndimage import distance_transform_edt

        cells = self.cells
        n = cells.n
        if not cancer.any():
            return np.zeros(len(self.perfused_sites), dtype=bool)
        occupied = np.zeros(cells.n_sites, dtype=bool)
        occupied[cells.site[:n][cancer]] = True
        shape = [s for s in cells.shape3 if s > 1] or [1]
        dist = distance_transform_edt(~occupied.reshape(shape), sampling=self.sc.domain.voxel_um)
        return dist.ravel()[self.perfused_sites] <= self.sc.vessels.tumor_association_um

    def prepare_transport(self, sink: np.ndarray, source: np.ndarray) -> None:
        """Before an agent step's transport: update the vessels and keep the agent fields' rows
        of the cells' ``sink`` and ``source`` maps, to which :meth:`deliver` adds its terms."""
        if not self.active:
            return
        self.update_vessels()
        for a in self.agents:
            f = a.field_index
            a.base = (sink[f].reshape(-1).copy(), source[f].reshape(-1).copy())

    def deliver(self, t0_h: float, dt_min: float, sink: np.ndarray, source: np.ndarray) -> None:
        """Before one transport sub-step of ``dt_min`` from ``t0_h``: doses and plasma; the
        capillary exchange, the tissue decay and the drug's exchange with cells become first-order
        terms of the sub-step (``sink``, 1/min, and ``source``, units/min, shaped like the field
        data). :meth:`settle` books what they moved once the sub-step is solved."""
        t1_h = t0_h + dt_min / 60.0
        for a in self.agents:
            flat = self.fields.flat(a.name)
            while (
                a._next_inhaled < len(a.inhaled) and a.inhaled[a._next_inhaled][0] <= t1_h + 1e-12
            ):
                self._inhale(a, flat, *a.inhaled[a._next_inhaled][1:])
                a._next_inhaled += 1
            if a.cmc_amount_mg is not None:
                self._dissociate(a, a.pk.advance(t1_h, loss_per_h=a.cfg.dissociation_per_h,
                                                 loss_below_mg=a.cmc_amount_mg))
            else:
                a.pk.advance(t1_h)
        # the exchange terms after every plasma has reached t1, dissociated micelles included
        for a in self.agents:
            flat = self.fields.flat(a.name)
            f = a.field_index
            snk, src = sink[f].reshape(-1), source[f].reshape(-1)
            np.copyto(snk, a.base[0])
            np.copyto(src, a.base[1])
            if a.decay > 0:
                snk += a.decay
            if len(self.perfused_sites):
                snk[self.perfused_sites] += a.vessel_loss
                src[self.perfused_sites] += a.vessel_gain * a.plasma_unbound
            a.before = float(np.sum(flat, dtype=np.float64))
        cells = self.cells
        inhibitor = self._inhibitor_field()
        for d in self.drugs:
            if not d.membrane:
                continue
            f = d.field_index
            if len(d.den) < cells.n:
                d.den = np.zeros(max(cells.n, 2 * len(d.den), 64))
            kp.membrane_terms(
                cells.n, cells.kind, cells.state, cells.site, self._pools(d),
                cells.column("pgp"), inhibitor, kp.Membrane(d.membrane_par, self.phi, d.den),
                dt_min, sink[f].reshape(-1), source[f].reshape(-1),
            )

    def _co_inhibitor(self, c: AgentDelivery) -> AgentDelivery | None:
        """The inhibitor co-loaded in formulation ``c``, if any."""
        name = c.cfg.payload.inhibitor
        return self.by_name.get(name) if name else None

    def _dissociate(self, c: AgentDelivery, lost_mg: float) -> None:
        """Micelles of formulation ``c`` that dissociated in plasma (``lost_mg``, mg of drug):
        their drug, and their co-loaded inhibitor in its molar ratio, join the free agents'
        plasma (docs/pharmacology.md §13.4)."""
        if lost_mg <= 0.0:
            return
        drug = c.payload_drug
        c.released_mg += lost_mg
        c.dissociated_mg += lost_mg
        drug.pk.receive(lost_mg)
        drug.from_carrier_mg += lost_mg
        payload = c.cfg.payload
        co = self._co_inhibitor(c)
        if co is not None and payload.inhibitor_per_drug > 0:
            # mg of drug -> mmol -> mmol of inhibitor -> mg of inhibitor
            mg = (lost_mg / drug.cfg.molar_mass_g_per_mol * payload.inhibitor_per_drug
                  * co.cfg.molar_mass_g_per_mol)
            co.pk.receive(mg)
            co.from_carrier_mg += mg

    def settle(self, dt_min: float) -> None:
        """After one transport sub-step: the drug that entered cells, what left by decay and what
        the capillaries moved, taken from (or given to) plasma; what the solve did not conserve
        is booked as ``unconserved``."""
        cells = self.cells
        into_cells = {}  # per drug
        for d in self.drugs:
            if d.membrane:
                into_cells[d.name] = kp.membrane_update(
                    cells.n, cells.kind, cells.site, self._pools(d), self.fields.flat(d.name),
                    kp.Membrane(d.membrane_par, self.phi, d.den), dt_min,
                )
        for a in self.agents:
            flat = self.fields.flat(a.name)
            after = float(np.sum(flat, dtype=np.float64))
            decayed = dt_min * a.decay * after
            moved = 0.0
            if len(self.perfused_sites):
                # dt sum(gain C_p - loss C') with gain = loss + convection
                moved = kp.vessel_flux(
                    flat, self.perfused_sites, a.vessel_loss, a.plasma_unbound, dt_min
                ) + dt_min * a.plasma_unbound * float(np.sum(a.vessel_convection))
                a.pk.transfer_to_tissue(moved / a.per_mg_per_L * self.v_vox_L)
            cells_in = into_cells.get(a.name, 0.0)
            lost = a.before + moved - decayed - cells_in - after
            a.decayed_mg += decayed / a.per_mg_per_L * self.v_vox_L
            a.unconserved_mg += lost / a.per_mg_per_L * self.v_vox_L

    def _inhale(self, a: AgentDelivery, flat: np.ndarray, dose_mg: float,
                fraction: float) -> None:
        """An inhaled dose: ``fraction`` of it deposits on the lung's alveolar surface
        (:func:`~tmesim.therapy.deposition.deposited_fraction`), the rest is exhaled."""
        sub = self.sc.subject
        deposited = dose_mg * fraction
        a.exhaled_mg += dose_mg - deposited
        n_surf = len(self.surface_sites)
        face_cm2 = (self.sc.domain.voxel_um * 1e-4) ** 2
        share = min(1.0, n_surf * face_cm2 / sub.alveolar_surface_cm2)
        here = deposited * share
        if n_surf:
            per_site = here / n_surf / self.v_vox_L * a.per_mg_per_L
            flat[self.surface_sites] += per_site
            # what the sites actually received, in mg (round-off of the addition included)
            here = per_site * n_surf / a.per_mg_per_L * self.v_vox_L
        a.deposited_mg += here
        a.pk.inject(deposited - here)

    def lumens_closing(self, sites: np.ndarray, empty_after: np.ndarray) -> None:
        """Lumen sites about to become air again (their cancer cells are gone): their agent
        content moves in equal shares to their conducting face neighbours, before the field set
        empties air voxels. With no such neighbour it is booked as lost to the airway.
        ``empty_after`` is the empty lumen after the change (:meth:`Tissue.empty_lumen`)."""
        if not self.active or len(sites) == 0:
            return
        empty = np.asarray(empty_after, dtype=bool).ravel()
        targets = [[] for _ in sites]
        for inside, nb in self.tissue.face_neighbours(sites):
            for col in np.flatnonzero(inside):
                if not empty[nb[col]]:
                    targets[col].append(int(nb[col]))
        for a in self.agents:
            flat = self.fields.flat(a.name)
            for s_, nbs in zip(sites, targets, strict=True):
                v = float(flat[s_])
                if v == 0.0:
                    continue
                flat[s_] = 0.0
                if nbs:
                    flat[nbs] += v / len(nbs)
                else:
                    a.airway_mg += v / a.per_mg_per_L * self.v_vox_L

    def cell_uptake(self, dt_min: float, time_h: float = 0.0) -> None:
        """Cellular pharmacology for one agent step: nanoparticle release outside cells,
        internalisation and release inside cells, then P-gp dynamics and the cells' drug damage
        (drug uptake, efflux and binding are part of the transport step, :meth:`deliver`)."""
        for c in self.carriers:
            self._nanoparticles(c, dt_min, time_h)
        cells = self.cells
        for d in self.drugs:
            if d.binds:
                kp.damage_step(cells.n, cells.kind, cells.state, self._pool(d, "bound"),
                               self._pool(d, "retained"), self._pool(d, "damage"), d.repair,
                               dt_min / 60.0)
        if self.pgp_dynamic:
            kp.pgp_dynamics(
                cells.n, cells.kind, cells.state, cells.column("pgp"), cells.column("pgp_base"),
                self._inducer(), self._sirna_payloads(), self.pgp_regulation, dt_min,
            )

    def _sirna_payloads(self) -> np.ndarray:
        """The internalised particles of each siRNA-carrying formulation, one row each (a view
        of the one pool when there is one; the payload column, ignored, when there is none)."""
        if len(self.sirna) <= 1:
            pool = self._pool(self.sirna[0], "payload") if self.sirna else \
                self.cells.column("payload")
            return pool[None, :]
        return np.stack([self._pool(a, "payload") for a in self.sirna])

    def _inducer(self) -> np.ndarray:
        """The free intracellular drug that induces P-gp: the drug's, or with several drugs
        the sum of theirs (each at its molar concentration; docs/pharmacology.md §8)."""
        if len(self.drugs) <= 1:
            return self.cells.column("drug")
        total = self._pool(self.drugs[0], "drug").copy()
        for d in self.drugs[1:]:
            total += self._pool(d, "drug")
        return total

    def _inhibitor_field(self) -> np.ndarray:
        """The inhibitor concentration P-gp sees (uM; a length-1 zero array without inhibitor).

        With several inhibitors, which are taken to compete for the same site of P-gp (mutually
        exclusive, docs/pharmacology.md §6.1), the activity left is ``1 / (1 + sum_j I_j /
        IC50_j)``, which is ``IC50_1 / (I_eq + IC50_1)`` with the equivalent concentration of the
        first inhibitor ``I_eq = sum_j I_j IC50_1 / IC50_j``: the field returned."""
        if self.inhibitor is None:
            return np.zeros(1)
        first = self.fields.flat(self.inhibitor.name)
        if len(self.inhibitors) == 1:
            return first
        if self._inhibition.shape != first.shape:
            self._inhibition = np.empty_like(first)
        eq = self._inhibition
        np.copyto(eq, first)
        ic50 = self.inhibitor.cfg.pgp_ic50_uM
        for a in self.inhibitors[1:]:
            eq += (ic50 / a.cfg.pgp_ic50_uM) * self.fields.flat(a.name)
        return eq

    def _nanoparticles(self, c: AgentDelivery, dt_min: float, time_h: float) -> None:
        """Formulation ``c`` over one agent step: release outside cells, internalisation,
        release inside cells into its payload drug's pools."""
        npc = c.cfg
        cells = self.cells
        flat = self.fields.flat(c.name)
        drug = c.payload_drug
        co = self._co_inhibitor(c)
        inhib = self.fields.flat(co.name) if co is not None else np.zeros(1)
        ratio = npc.payload.inhibitor_per_drug if co is not None else 0.0
        mg_drug = self.v_vox_L / drug.per_mg_per_L
        mg_inhib = self.v_vox_L / co.per_mg_per_L if co is not None else 0.0
        # 1. extracellular release, by trigger
        rate = self.release_rate_map(time_h, c) / 60.0
        out = nk.release_outside(flat, self.fields.flat(drug.name), rate, inhib, ratio, dt_min)
        c.released_mg += out * mg_drug
        drug.from_carrier_mg += out * mg_drug
        if ratio:
            co.from_carrier_mg += out * ratio * mg_inhib
        # 2. internalisation by cancer cells and macrophages
        nk.internalise(
            cells.n, cells.arrays().ids, cells.kind, cells.state, cells.site,
            self._pool(c, "payload"), flat, nk.Uptake(c.np_uptake, c.receptor, c.ligand_factor),
            self.sc.seed, self.phi, dt_min,
        )
        # 3. release inside cancer cells; the emptied particles stay in the cells' carriers
        carrier = self._pool(c, "carrier")
        to_drug, from_payload, to_inhib, to_carrier = nk.release_inside(
            cells.n, cells.kind, cells.state, cells.site, self._pool(c, "payload"), carrier,
            self._pool(drug, "drug"), c.np_release_in, inhib, ratio, self.phi, dt_min,
        )
        c.released_mg += from_payload * self.phi * mg_drug
        c.emptied_mg += to_carrier * self.phi * mg_drug
        drug.from_carrier_mg += to_drug * self.phi * mg_drug
        if ratio:
            co.from_carrier_mg += to_inhib * mg_inhib
        # 4. macrophages as a depot: release into their voxel's free drug (rate 0: they hold)
        if c.np_release_depot.any():
            from_payload, to_field, to_inhib, to_carrier = nk.release_to_field(
                cells.n, cells.kind, cells.state, cells.site, self._pool(c, "payload"), carrier,
                self.fields.flat(drug.name), c.np_release_depot, inhib, ratio, self.phi, dt_min,
            )
            c.released_mg += from_payload * self.phi * mg_drug
            c.emptied_mg += to_carrier * self.phi * mg_drug
            drug.from_carrier_mg += to_field * mg_drug
            if ratio:
                co.from_carrier_mg += to_inhib * mg_inhib
        # 5. emptied particles degraded or exocytosed by live cells
        if c.carrier_loss.any():
            lost = nk.lose_carriers(cells.n, cells.kind, cells.state, carrier, c.carrier_loss,
                                    dt_min)
            c.carrier_lost_mg += lost * self.phi * mg_drug

    def tissue_ph(self) -> np.ndarray:
        """Extracellular pH per voxel: 7.4, 6.8 where a live proliferating cancer cell sits,
        6.5 where a quiescent (hypoxic) or necrotic one does (docs/pharmacology.md §13)."""
        cells = self.cells
        n = cells.n
        ph = np.full(cells.n_sites, 7.4)
        kind, state, site = cells.kind[:n], cells.state[:n], cells.site[:n]
        cancer = kinds.cancer(kind)
        ph[site[cancer & (state == codes.PROLIFERATING)]] = 6.8
        ph[site[cancer & ((state == codes.QUIESCENT) | (state == codes.NECROTIC))]] = 6.5
        return ph

    def release_rate_map(self, time_h: float, carrier: AgentDelivery | None = None) -> np.ndarray:
        """Extracellular release rate per voxel (1/h) of a dosed formulation (by default the
        first): for trigger 'ph' the pH law (:func:`~tmesim.therapy.nano_rules.ph_release_rate`)
        on the tissue pH map, otherwise the base rate plus the triggered rate where the trigger
        acts."""
        rel = (carrier or self.carriers[0]).cfg.release
        cells = self.cells
        if rel.trigger == "ph":
            return ph_release_rate(self.tissue_ph(), rel.ph74_per_h, rel.ph5_per_h)
        rate = np.full(cells.n_sites, rel.base_per_h)
        if rel.trigger == "enzyme":
            from scipy.ndimage import binary_dilation

            n = cells.n
            kind, state = cells.kind[:n], cells.state[:n]
            active = ((kind == codes.FIBROBLAST) | (kind == codes.MACROPHAGE)) & (
                state == codes.QUIESCENT
            )  # CAFs and M2 macrophages
            near = np.zeros(cells.n_sites, dtype=bool)
            near[cells.site[:n][active]] = True
            shape = [s for s in cells.shape3 if s > 1] or [1]
            near = binary_dilation(near.reshape(shape), iterations=1).ravel()
            rate[near] += rel.triggered_per_h
        elif rel.trigger == "external":
            ext = rel.external
            if any(t <= time_h < t + ext.duration_h for t in ext.start_h):
                rate[self._trigger_region(ext)] += rel.triggered_per_h
        return rate

    def _trigger_region(self, ext) -> np.ndarray:
        shape = self.cells.shape3
        vox = self.sc.domain.voxel_um
        y, x = np.meshgrid(
            (np.arange(shape[1]) + 0.5) * vox, (np.arange(shape[2]) + 0.5) * vox, indexing="ij"
        )
        disc = (y - ext.center_um[0]) ** 2 + (x - ext.center_um[1]) ** 2 <= ext.radius_um**2
        return np.broadcast_to(disc, shape).ravel()

    # ------------------------------------------------------------------ accounting
    def ledger(self) -> dict[str, dict[str, float]]:
        """Where every dosed mg of each agent and formulation is now (:data:`LEDGER_KEYS`)."""
        out = {}
        cells = self.cells
        n = cells.n
        for a in self.agents:
            flat = self.fields.flat(a.name)
            mg_per_unit = self.v_vox_L / a.per_mg_per_L
            in_cells = 0.0
            # a drug's free, bound and retained pools, a formulation's internalised particles
            pools = {"drug": ("drug", "bound", "retained"), "nanoparticle": ("payload",)}
            for pool in pools.get(a.kind, ()):
                in_cells += float(self._pool(a, pool)[:n].astype(np.float64).sum()) * self.phi
            x = a.pk.x
            out[a.name] = {
                "dosed": a.dosed_mg,
                "plasma": float(x[0]),
                "peripheral": float(x[1]),
                "cleared": float(x[2]),
                "exhaled": a.exhaled_mg,
                "tissue": float(np.sum(flat, dtype=np.float64)) * mg_per_unit,
                "cells": in_cells * mg_per_unit,
                "decayed": a.decayed_mg,
                "airway": a.airway_mg,
                "unconserved": a.unconserved_mg,
                "released": a.released_mg,
            }
            if a.kind == "nanoparticle":
                held = float(self._pool(a, "carrier")[:n].astype(np.float64).sum())
                gone = self.cells.removed_with_dead.get((a.name, "carrier"), 0.0)
                out[a.name].update({
                    "emptied": a.emptied_mg,
                    "carriers": held * self.phi * mg_per_unit,
                    "carrier_lost": a.carrier_lost_mg,
                    "carrier_removed": gone * self.phi * mg_per_unit,
                })
        return out

    def _suffix(self, d: AgentDelivery | None) -> str:
        return "" if d is None or d is self.drug else f"_{d.name}"

    def _carriers_of(self, d: AgentDelivery | None) -> list[AgentDelivery]:
        return [c for c in self.carriers if c.payload_drug is d]

    def metrics(self) -> dict[str, float]:
        """Therapy metrics of the current state (units in :meth:`metric_units`)."""
        out = {}
        cells = self.cells
        n = cells.n
        kind, state = cells.kind[:n], cells.state[:n]
        live_cancer = kinds.cancer(kind) & (
            (state == codes.PROLIFERATING) | (state == codes.QUIESCENT)
        )
        for d in self.drugs or [None]:
            sfx = self._suffix(d)
            out.update({k + sfx: v for k, v in self._drug_metrics(d, live_cancer).items()})
        for a in self.agents:
            out[f"{a.name}_plasma"] = a.plasma
            vals = self.fields.flat(a.name)[self.tissue_sites]
            out[f"{a.name}_tissue_mean"] = float(vals.mean()) if len(vals) else 0.0
        return out

    def _drug_metrics(self, d: AgentDelivery | None, live_cancer: np.ndarray) -> dict:
        """The :data:`DRUG_METRICS` of drug ``d`` (``None``: no drug dosed, the table's own
        pools, which are empty)."""
        out = {}
        cells = self.cells
        n = cells.n

        def pool(col):
            return (cells.column(col) if d is None else self._pool(d, col))[:n][live_cancer]

        drug_in = pool("drug").astype(np.float64)
        # DNA-bound: the fast sites and the retained (slow) pool, the nuclear drug
        bound_in = pool("bound").astype(np.float64) + pool("retained").astype(np.float64)
        total_in = drug_in + bound_in
        if len(drug_in):
            p10, p50, p90 = np.percentile(drug_in, [10, 50, 90])
            mean = float(drug_in.mean())
        else:
            p10 = p50 = p90 = mean = 0.0
        delivered = 0.0
        penetration = 0.0
        tumour_total = tumour_bound = tumour_np = tumour_label = 0.0
        carriers = self._carriers_of(d)
        if d is not None:
            sites = cells.site[:n][live_cancer]
            # drug in tumour voxels and cells (free, bound, retained), and still carried by particles
            units = float(self.fields.flat(d.name)[sites].sum()) + self.phi * float(total_in.sum())
            dosed = d.pk.dosed_mg + d.deposited_mg + d.exhaled_mg
            carried = None
            emptied = 0.0  # emptied particles inside the live cancer cells
            for c in carriers:
                payload = self._pool(c, "payload")[:n][live_cancer].astype(np.float64)
                here = self.fields.flat(c.name)[sites] + self.phi * payload
                carried = here if carried is None else carried + here
                units += float(here.sum())
                dosed += c.dosed_mg
                emptied += self.phi * float(
                    self._pool(c, "carrier")[:n][live_cancer].astype(np.float64).sum())
            if carried is not None:
                if not len(self.perfused_sites):
                    penetration = math.nan  # no vessel to measure from (inhaled doses only)
                elif carried.sum() > 0:
                    penetration = float(np.average(self._vessel_distance()[sites], weights=carried))
            amount = units * self.v_vox_L / d.per_mg_per_L
            delivered = amount / dosed if dosed > 0 else 0.0
            if len(sites):  # per unit tumour volume: uM = nmol/mL, ~ nmol/g of tumour
                tumour_total = units / len(sites)
                tumour_bound = self.phi * float(bound_in.sum()) / len(sites)
                if carried is not None:  # the part still carried by particles
                    tumour_np = float(carried.sum()) / len(sites)
                    # the particles' label: carrying particles and emptied ones
                    tumour_label = (float(carried.sum()) + emptied) / len(sites)
        out["delivered_fraction"] = delivered
        out["tumor_drug_total_uM"] = tumour_total
        out["tumor_drug_bound_uM"] = tumour_bound
        if carriers:
            out["tumor_np_drug_uM"] = tumour_np
            out["tumor_np_label_uM"] = tumour_label
            out["np_penetration_um"] = penetration
        out["intracellular_drug_mean_uM"] = mean
        out["intracellular_drug_p10_uM"] = float(p10)
        out["intracellular_drug_p50_uM"] = float(p50)
        out["intracellular_drug_p90_uM"] = float(p90)
        out["intracellular_drug_total_mean_uM"] = float(total_in.mean()) if len(total_in) else 0.0
        return out

    def _vessel_distance(self) -> np.ndarray:
        """Distance (um) from each voxel to the nearest perfused voxel (computed once)."""
        if self._distance is None:
            from scipy.ndimage import distance_transform_edt

            shape = [s for s in self.cells.shape3 if s > 1] or [1]
            free = np.ones(self.cells.n_sites, dtype=bool)
            free[self.perfused_sites] = False
            self._distance = distance_transform_edt(
                free.reshape(shape), sampling=self.sc.domain.voxel_um
            ).ravel()
        return self._distance

    def metric_units(self) -> dict[str, str]:
        """Units of :meth:`metrics`."""
        units = {}
        for d in self.drugs or [None]:
            sfx = self._suffix(d)
            units.update({k + sfx: u for k, u in DRUG_METRICS.items()
                          if k not in _CARRIER_METRICS or self._carriers_of(d)})
        for a in self.agents:
            units[f"{a.name}_plasma"] = a.units
            units[f"{a.name}_tissue_mean"] = a.units
        return units
