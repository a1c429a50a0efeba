"""Scenario schema of therapies: agents (drugs, P-gp inhibitors, antibodies, and signal agents
that act through the rules), their systemic
pharmacokinetics, vessel and membrane transport, nanoparticle formulations and their size rules,
and the dosing list (docs/pharmacology.md; nanoparticles in §13).

Units: doses in mg/kg of body mass, plasma amounts in mg, tissue concentrations in the agent's
field units (uM for small molecules, nM for antibodies), permeabilities in um/min.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import model_validator

from .schema_base import P, Section

AGENT_KINDS = ("drug", "inhibitor", "antibody", "signal")

#: aerosol defaults of an inhaled therapy entry (parameters.md §4.6)
DEFAULT_MMAD_UM = 2.0
DEFAULT_GSD = 1.0


class PKConfig(Section):
    """Linear one- or two-compartment plasma kinetics (tmesim/therapy/pk.py)."""

    v_central_L_per_kg: float = P(
        ..., unit="L/kg", gt=0, desc="Volume of the central (plasma) compartment."
    )
    half_life_h: float = P(
        ..., unit="h", gt=0, desc="Terminal (elimination, beta) half-life in plasma."
    )
    alpha_half_life_h: float | None = P(
        None,
        unit="h",
        gt=0,
        desc="Distribution (alpha) half-life; null: one compartment.",
    )
    v_peripheral_L_per_kg: float | None = P(
        None,
        unit="L/kg",
        gt=0,
        desc="Volume of the peripheral compartment (with alpha_half_life_h).",
    )

    @model_validator(mode="after")
    def _two(self):
        if (self.alpha_half_life_h is None) != (self.v_peripheral_L_per_kg is None):
            raise ValueError(
                "alpha_half_life_h|set together with v_peripheral_L_per_kg (two compartments) "
                "or both null (one compartment)"
            )
        if self.alpha_half_life_h is not None and self.alpha_half_life_h >= self.half_life_h:
            raise ValueError("alpha_half_life_h|shorter than half_life_h (distribution is faster)")
        return self


class AgentConfig(Section):
    """A therapeutic agent: its plasma PK, its tissue field and, by kind, its action on cells."""

    kind: Literal["drug", "inhibitor", "antibody", "signal"] = P(
        ...,
        desc="drug: enters cancer cells and kills (Emax on intracellular drug); inhibitor: "
        "lowers P-gp efflux by ic50 / (I + ic50); antibody: anti-PD-L1, occupancy A / (A + Kd) "
        "removes that share of PD-L1 from T-cell suppression (cells.tcell.antibody_kd_nM); "
        "signal: no action of its own, its tissue field acts only through the rules table "
        "(e.g. a depleting anti-Ly6G antibody whose rule raises cells.mdsc death_rate).",
    )
    units: Literal["uM", "nM"] = P("uM", desc="Unit of the agent's tissue field.")
    molar_mass_g_per_mol: float = P(..., unit="g/mol", gt=0, desc="Converts mg/L to uM or nM.")
    pk: PKConfig = P(
        ...,
        desc="Plasma kinetics. Keys left out are taken from the set of the subject's species, "
        "species.<subject.species>.agents.<agent> (docs/pharmacology.md §2); keys given here "
        "override it.",
    )
    diffusion_um2_per_min: float = P(
        ..., unit="um^2/min", ge=0, desc="Effective diffusion coefficient in the interstitium."
    )
    decay_per_min: float = P(
        0.0, unit="1/min", ge=0, desc="First-order loss in tissue (metabolism, degradation)."
    )
    permeability_um_per_min: float = P(
        ...,
        unit="um/min",
        ge=0,
        desc="Wall permeability of normal lung capillaries (plasma <-> perivascular tissue).",
    )
    tumor_permeability_um_per_min: float = P(
        ...,
        unit="um/min",
        ge=0,
        desc="Wall permeability of tumour-associated capillaries (EPR: leakier than normal).",
    )
    plasma_unbound_fraction: float = P(
        1.0,
        unit="1",
        gt=0,
        le=1,
        desc="Share of the plasma concentration not bound to plasma proteins: only unbound "
        "drug crosses the capillary wall, so the exchange with tissue is driven by this share "
        "of C_p (docs/pharmacology.md §3); 1: the whole plasma concentration.",
        source="doxorubicin 0.25: 75 % bound to plasma proteins (US label) (parameters.md §4.4)",
    )
    reflection_coefficient: float | None = P(
        None,
        unit="1",
        ge=0,
        le=1,
        desc="Solvent-drag reflection coefficient sigma of the capillary wall for this agent "
        "(convective transvascular flux J_v (1 - sigma) C_p, docs/pharmacology.md §3.1), at "
        "every vessel. null: pore theory from the agent's hydrodynamic radius (from its molar "
        "mass) and the pore radius of each vessel type (vessels.normal_pore_radius_nm, "
        "nanoparticle_transport.pore_cutoff_nm / 2 for tumour vessels).",
        source="sigma = (1 - Phi)^2, Phi = (1 - r/r_p)^2 (Ferry 1936; Curry 1984); radius "
        "0.0483 M^0.386 nm (Venturoli & Rippe 2005) (parameters.md §6.3)",
    )
    membrane_permeability_um_per_min: float = P(
        0.0,
        unit="um/min",
        ge=0,
        desc="Passive cell-membrane permeability (drug only; 0: stays extracellular).",
    )
    pgp_vmax_uM_per_min: float = P(
        0.0,
        unit="uM/min per unit P-gp",
        ge=0,
        desc="Maximal P-gp efflux rate of a cell with P-gp level 1 (drug only).",
    )
    pgp_km_uM: float = P(1.5, unit="uM", gt=0, desc="Michaelis constant of P-gp efflux.")
    dna_binding_max_uM: float = P(
        0.0,
        unit="uM",
        ge=0,
        desc="Drug only: capacity of the saturable DNA/nuclear binding sites per cell volume; "
        "> 0 gives cells a bound pool, B = Bmax C / (Kd + C) at equilibrium with the free drug "
        "C, which P-gp cannot pump, and makes the kill hazard read the damage from bound drug "
        "(0: no binding, the hazard reads free drug).",
    )
    dna_binding_kd_uM: float = P(
        1.0, unit="uM", gt=0, desc="Drug only: dissociation constant of the DNA binding."
    )
    retention_max_uM: float = P(
        0.0,
        unit="uM",
        ge=0,
        desc="Drug only: capacity of the slow, tightly bound (intercalated) pool S per cell "
        "volume, filled from free drug C and emptied slowly, dS/dt = a C (1 - S / capacity) - "
        "ln2 / half-life S; it counts as bound drug for the damage (0: no slow pool).",
    )
    retention_uptake_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Drug only, with a slow pool: its filling rate a per unit free drug while empty "
        "(uM/h per uM of free drug).",
    )
    retention_half_life_h: float = P(
        24.0,
        unit="h",
        gt=0,
        desc="Drug only, with a slow pool: half-life of drug in it once the cell's free drug "
        "is gone (the cell's retention after washout).",
    )
    damage_repair_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Drug only, with binding: first-order repair of the damage D, dD/dt = B + S - "
        "rate D (D in uM h; B bound, S retained drug).",
    )
    emax_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Maximal apoptosis hazard from the drug (from its damage with binding, else from "
        "free intracellular drug).",
    )
    ec50_uM: float = P(
        1.0,
        unit="uM",
        gt=0,
        desc="Without binding: free intracellular drug giving half the maximal hazard.",
    )
    damage_ec50_uM_h: float = P(
        1.0,
        unit="uM h",
        gt=0,
        desc="With binding: damage giving half the maximal hazard.",
    )
    hill: float = P(1.0, unit="1", gt=0, desc="Hill power of the kill hazard.")
    immunogenic: float = P(
        0.0,
        unit="1",
        ge=0,
        le=1,
        desc="Drug only: share of the cancer-cell deaths it causes that are immunogenic "
        "(immunogenic cell death: calreticulin exposure, ATP and HMGB1 release), which raise "
        "T-cell priming (cells.tcell.priming; docs/biology.md §5.8). 0: a silent death like "
        "any other.",
        source="0: not immunogenic; doxorubicin 1 (Casares et al. 2005, Obeid et al. 2007; "
        "docs/parameters.md §3.10)",
    )
    pgp_ic50_uM: float = P(
        0.0,
        unit="uM",
        ge=0,
        desc="Inhibitor only: tissue concentration halving P-gp activity, ic50 / (I + ic50).",
    )

    @model_validator(mode="after")
    def _by_kind(self):
        if self.kind == "inhibitor" and self.pgp_ic50_uM <= 0:
            raise ValueError("pgp_ic50_uM|a positive IC50 for an agent of kind 'inhibitor'")
        if self.kind in ("drug", "inhibitor") and self.units != "uM":
            raise ValueError(f"units|'uM' for an agent of kind '{self.kind}'")
        if self.kind == "antibody" and self.units != "nM":
            raise ValueError(
                "units|'nM' for an agent of kind 'antibody' (occupancy uses "
                "cells.tcell.antibody_kd_nM)"
            )
        if self.kind != "drug" and (self.membrane_permeability_um_per_min or self.emax_per_h
                                    or self.dna_binding_max_uM or self.retention_max_uM):
            raise ValueError(
                "membrane_permeability_um_per_min|0 unless kind is 'drug' (only drugs enter "
                "cells and kill)"
            )
        return self


class Administration(Section):
    """One line of the dosing list: an agent, a route, a dose and a schedule."""

    agent: str = P(
        ...,
        desc="Name of an agent under 'agents' or of a formulation under 'nanoparticles'.",
        min_length=1,
    )
    route: Literal["iv", "inhaled"] = P(
        "iv",
        desc="iv: into plasma (reaches tissue through capillary walls); inhaled: deposits on "
        "alveolar surfaces, the share the host species' deposition curve gives for the "
        "aerosol's size (species.<subject.species>.alveolar_deposition; or "
        "subject.inhaled_deposited_fraction where given).",
    )
    dose_mg_per_kg: float = P(
        ..., unit="mg/kg", gt=0,
        desc="Dose per administration (of a formulation: mg of the drug it carries).",
    )
    start_h: float = P(0.0, unit="h", ge=0, desc="Time of the first administration.")
    every_h: float = P(0.0, unit="h", ge=0, desc="Interval between administrations.")
    count: int = P(1, ge=1, le=10_000, desc="Number of administrations.")
    duration_h: float = P(
        0.0, unit="h", ge=0, desc="Infusion duration (0: bolus). iv only."
    )
    aerosol_mmad_um: float | None = P(
        None,
        unit="um",
        gt=0,
        desc="Inhaled only: mass median aerodynamic diameter of the aerosol, which sets the "
        f"share deposited on alveolar surfaces (docs/pharmacology.md §4). null: "
        f"{DEFAULT_MMAD_UM:g} um for route 'inhaled'.",
        source="jet nebulisers give aerosols of about 2-5 um MMAD [A], smaller at higher "
        "driving flow (Clay et al. 1983 Thorax 38:755); 2 um the lower end (parameters.md §4.6)",
    )
    aerosol_gsd: float | None = P(
        None,
        unit="1",
        ge=1,
        le=4,
        desc="Inhaled only: geometric standard deviation of the aerosol's log-normal mass "
        "distribution; the deposited share is the curve averaged over it. null: "
        f"{DEFAULT_GSD:g} for route 'inhaled' (every particle of the MMAD).",
        source="choice: the curve read at the MMAD (parameters.md §4.6)",
    )

    @model_validator(mode="after")
    def _schedule(self):
        if self.count > 1 and self.every_h <= 0:
            raise ValueError("every_h|a positive interval when count > 1")
        if self.count > 1 and self.duration_h > self.every_h:
            raise ValueError("duration_h|at most every_h (infusions of one line do not overlap)")
        if self.route == "inhaled" and self.duration_h > 0:
            raise ValueError("duration_h|0 for route 'inhaled' (an inhaled dose deposits at once)")
        if self.route == "iv":
            for key in ("aerosol_mmad_um", "aerosol_gsd"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key}|null for route 'iv' (only an inhaled dose is an aerosol); "
                        "remove it or set route: inhaled"
                    )
        return self

    @property
    def mmad_um(self) -> float:
        """The aerosol's MMAD (um), its default filled in (inhaled entries)."""
        return DEFAULT_MMAD_UM if self.aerosol_mmad_um is None else self.aerosol_mmad_um

    @property
    def gsd(self) -> float:
        """The aerosol's geometric standard deviation, its default filled in."""
        return DEFAULT_GSD if self.aerosol_gsd is None else self.aerosol_gsd

    def times_h(self) -> list[float]:
        """Start times of the administrations."""
        return [self.start_h + i * self.every_h for i in range(self.count)]


class SubjectConfig(Section):
    """The host: species (which PK sets apply), body mass for mg/kg doses, lung surface for
    inhaled deposition."""

    species: str = P(
        "mouse",
        desc="Species of the host: the name of an entry under 'species' (packaged: mouse, "
        "human), whose plasma kinetics of each agent and nanoparticle circulation apply "
        "wherever a scenario does not give its own (docs/pharmacology.md §2, §13.4).",
        source="mouse: the niche and its calibration are those of 4T1 in BALB/c mice",
        min_length=1,
    )

    body_mass_kg: float = P(
        0.025, unit="kg", gt=0, desc="Body mass (mg/kg doses are multiplied by it).",
        source="adult mouse, 20-30 g (choice)",
    )
    alveolar_surface_cm2: float = P(
        82.0,
        unit="cm^2",
        gt=0,
        desc="Alveolar surface of the whole lung: an inhaled dose spreads over it evenly.",
        source="mouse lung alveolar surface ~82 cm^2 (Knust et al., Anat Rec 2009) [A]",
    )
    inhaled_deposited_fraction: float | None = P(
        None,
        unit="fraction",
        ge=0,
        le=1,
        desc="Share of every inhaled dose deposited on alveolar surfaces (the rest is exhaled or "
        "cleared from the airways), overriding the size model. null: from the aerosol's size "
        "(therapy entries' aerosol_mmad_um, aerosol_gsd) and the species' deposition curve "
        "(species.<species>.alveolar_deposition; docs/pharmacology.md §4). Only with a "
        "therapy entry of route 'inhaled'.",
        source="null: the size model (parameters.md §4.6)",
    )


class DepositionCurve(Section):
    """Alveolar deposition by aerosol size: the share of the inhaled mass deposited in the
    alveolar (pulmonary) region at each aerodynamic diameter (docs/pharmacology.md §4)."""

    aerodynamic_diameter_um: list[float] = P(
        ...,
        unit="um",
        desc="Aerodynamic diameters of the points, increasing; an aerosol's MMAD must lie "
        "between the first and the last.",
        min_length=2,
    )
    alveolar_fraction: list[float] = P(
        ...,
        unit="fraction",
        desc="Share of the inhaled amount deposited in the alveolar region at each diameter, "
        "between 0 and 1.",
        min_length=2,
    )

    @model_validator(mode="after")
    def _points(self):
        d, f = self.aerodynamic_diameter_um, self.alveolar_fraction
        if len(d) != len(f):
            raise ValueError(
                f"alveolar_fraction|one value per diameter ({len(d)} diameters, {len(f)} "
                "fractions)"
            )
        if any(x <= 0 for x in d) or any(b <= a for a, b in pairwise(d)):
            raise ValueError("aerodynamic_diameter_um|positive diameters in increasing order")
        if any(not 0 <= x <= 1 for x in f):
            raise ValueError("alveolar_fraction|fractions between 0 and 1")
        return self


class SpeciesConfig(Section):
    """The plasma kinetics of one species: a PK set per agent and the circulation of
    nanoparticles by the mononuclear phagocyte system (docs/pharmacology.md §2, §13.2)."""

    agents: dict[str, PKConfig] = P(
        {},
        desc="PK set of each agent by name; an agent's own 'pk' keys override it key by key.",
    )
    nanoparticle_peg_half_life_h: float = P(
        ...,
        unit="h",
        gt=0,
        desc="Circulation half-life of PEG-coated particles of 100-200 nm, cleared by the "
        "mononuclear phagocyte system; the size rule scales it (docs/pharmacology.md §13.2).",
    )
    nanoparticle_bare_half_life_h: float = P(
        ...,
        unit="h",
        gt=0,
        desc="The same for particles without PEG.",
    )
    alveolar_deposition: DepositionCurve | None = P(
        None,
        desc="Share of an inhaled aerosol deposited in the alveolar (pulmonary) region by "
        "particle size, interpolated linearly in log diameter (docs/pharmacology.md §4); "
        "null: none known, inhaled doses then need subject.inhaled_deposited_fraction.",
        source="mouse: Raabe et al. 1988 [A]; human: ICRP 66 (1994) as fitted by Hinds 1999 "
        "[A] (parameters.md §4.6)",
    )
    renal_half_life_h: float = P(
        0.5,
        unit="h",
        gt=0,
        desc="Circulation half-life of particles below the renal cut-off (5.5 nm).",
        source="choice: filtered within minutes to an hour (Wilhelm et al. 2016) [A]",
    )


class VesselsConfig(Section):
    """Capillaries: transport of therapies (docs/pharmacology.md §3), regression inside tumour
    and VEGF-driven angiogenesis (docs/biology.md §9)."""

    capillary_diameter_um: float = P(
        6.5,
        unit="um",
        gt=0,
        desc="Capillary diameter: one capillary per perfused voxel gives wall surface per voxel "
        "volume pi d / voxel_um^2.",
        source="pulmonary capillary diameter 5-8 um (parameters.md §6) [A]",
    )
    leaky_vessels: Literal["angiogenic", "tumor_associated"] = P(
        "angiogenic",
        desc="Which capillaries exchange agents with the tumour-vessel permeability (EPR): "
        "'angiogenic', the immature vessels formed by angiogenesis during the run (each with its "
        "own leakiness factor; none form unless sprout_speed_um_per_h > 0), or "
        "'tumor_associated', every capillary within tumor_association_um of a live cancer cell. "
        "All others use the normal permeability.",
        source="tumour, not host, vessels are hyperpermeable: immature vessels lacking "
        "pericytes (Benjamin et al. 1999), wide inter-endothelial openings (Hashizume et al. "
        "2000), pore cut-off 200 nm-1.2 um (Hobbs et al. 1998) (parameters.md §6.2)",
    )
    tumor_blood_flow_per_min: float | None = P(
        0.3,
        unit="1/min",
        gt=0,
        desc="Blood flow through the tumour per unit tumour volume (mL/min per mL). Exchange "
        "at tumour (leaky) vessels is limited by the plasma this flow brings: each tumour "
        "vessel carries an equal share of the flow of the tumour's volume (live cancer cells "
        "and tumour vessels) and an agent's wall rate k becomes k (1 - e^-x)/x, x = f_u k / "
        "F_v (Renkin-Crone; docs/pharmacology.md §3.2). null: no limit (the wall alone).",
        source="breast carcinomas 29.8 +/- 17.0 mL/dL/min by 15O-water PET (Wilson et al. "
        "1992), whole-tumour means 7.6-29.2 mL/dL/min (Zasadny et al. 2003) [V] "
        "(parameters.md §6)",
    )
    hematocrit: float = P(
        0.45,
        unit="fraction",
        ge=0,
        lt=1,
        desc="Volume share of red cells in tumour blood: the plasma flow is (1 - hematocrit) "
        "times tumor_blood_flow_per_min.",
        source="choice: systemic haematocrit of mice and humans about 0.40-0.45 [A]",
    )
    tumor_association_um: float = P(
        60.0,
        unit="um",
        ge=0,
        desc="With leaky_vessels 'tumor_associated': capillaries within this distance of a "
        "cancer cell are leaky.",
        source="choice: a few cell diameters; tumour-induced leakiness is local",
    )
    regression_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Hazard with which a capillary voxel enclosed by cancer tissue (see "
        "regression_cancer_fraction) stops being perfused for good: co-opted capillaries "
        "compressed and regressing inside a growing tumour. 0: capillaries never regress.",
        source="co-opted vessels regress inside growing tumours (Holash et al. 1999) and are "
        "compressed by proliferating cancer cells (Padera et al. 2004) [V, direction]; the "
        "rate is a choice (parameters.md §6.1)",
    )
    regression_cancer_fraction: float = P(
        1.0,
        unit="fraction",
        ge=0,
        le=1,
        desc="A capillary voxel is enclosed by cancer tissue when at least this fraction of its "
        "in-domain lattice neighbours (8 in 2-D, 26 in 3-D) hold cancer cells, live or necrotic.",
        source="choice: compression in the tumour interior, not at its margin; 1 = every "
        "neighbour (parameters.md §6.1)",
    )
    sprout_speed_um_per_h: float = P(
        0.0,
        unit="um/h",
        ge=0,
        desc="Angiogenesis: the speed at which a sprout advances at saturating VEGF; a perfused "
        "voxel sprouts into a face neighbour with hazard (speed / voxel_um) * H(VEGF), H a Hill "
        "function (sprout_vegf_half_ng_per_mL, sprout_vegf_hill), checked once per simulated "
        "hour. Needs the field 'vegf'. 0: no angiogenesis.",
        source="capillary sprouts advance about 0.12-0.25 mm/day (5-10 um/h) toward a tumour "
        "implant (Ausprunk & Folkman 1977) [A] (parameters.md §6.2)",
    )
    sprout_vegf_half_ng_per_mL: float = P(
        5.0,
        unit="ng/mL",
        gt=0,
        desc="VEGF at which sprouting runs at half its maximal hazard.",
        source="choice, in the 1-10 ng/mL over which VEGF-165 drives endothelial proliferation "
        "and migration in vitro [A] (parameters.md §6.2)",
    )
    sprout_vegf_hill: float = P(
        2.0,
        unit="1",
        gt=0,
        desc="Hill coefficient of the VEGF response of sprouting.",
        source="choice: a switch-like angiogenic response (parameters.md §6.2)",
    )
    immature_regression_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Hazard with which an angiogenic (immature) vessel stops being perfused while VEGF "
        "at its voxel is below immature_survival_vegf_ng_per_mL. 0: immature vessels do not "
        "need VEGF.",
        source="immature tumour vessels without pericytes are obliterated within days of VEGF "
        "withdrawal (Benjamin et al. 1999) [V, direction]; the rate is a choice "
        "(parameters.md §6.2)",
    )
    immature_survival_vegf_ng_per_mL: float = P(
        1.0,
        unit="ng/mL",
        ge=0,
        desc="VEGF below which immature vessels regress (immature_regression_per_h).",
        source="choice: a fifth of sprout_vegf_half_ng_per_mL (parameters.md §6.2)",
    )
    leakiness_sigma: float = P(
        0.5,
        unit="1",
        ge=0,
        le=3,
        desc="Heterogeneity of angiogenic vessels: each new vessel's wall permeability is the "
        "agent's tumour-vessel permeability times a log-normal factor with median 1 and this "
        "log standard deviation. 0: all alike.",
        source="choice: tumour vessel permeability varies widely between and along vessels "
        "(Yuan et al. 1994; Hobbs et al. 1998) [A] (parameters.md §6.2)",
    )
    convection: bool = P(
        False,
        desc="Transvascular flux of dosed agents and particles with fluid filtration (Patlak): "
        "J_s/V = q (1 - sigma) C_p + k (C_p - C) Pe / (e^Pe - 1), Pe = q (1 - sigma) / k, "
        "k = P S/V, q = L_p S/V [p_v - p_i - sigma_T (pi_v - pi_i)] (docs/pharmacology.md "
        "§3.1). false (default): diffusive exchange k (C_p - C) only; filtration is off until "
        "interstitial pressure is solved, since with a constant one it overshoots the published "
        "liposome tumour peak 21-fold (§3.1).",
        source="Patlak et al. 1963; Kedem & Katchalsky 1958; tumour transport parameters of "
        "Baxter & Jain 1989 (parameters.md §6.3)",
    )
    vascular_pressure_mmHg: float = P(
        15.6,
        unit="mmHg",
        desc="Microvascular (capillary) pressure p_v.",
        source="Baxter & Jain 1989 (Microvasc Res 37:77), Table 1 [V] (parameters.md §6.3)",
    )
    plasma_oncotic_mmHg: float = P(
        20.0,
        unit="mmHg",
        ge=0,
        desc="Plasma colloid osmotic pressure pi_v.",
        source="Baxter & Jain 1989, Table 1 [V] (parameters.md §6.3)",
    )
    tumor_interstitial_pressure_mmHg: float = P(
        10.0,
        unit="mmHg",
        desc="Interstitial fluid pressure p_i at tumour (leaky) vessels: a constant, not a "
        "solved field.",
        source="tumour IFP 2-30 mmHg in mouse xenografts (Tufto & Rofstad 1995), 16 mmHg in the "
        "centre of rat mammary tumours (Wiig et al. 1982) [V]; at most p_e = 11.5 mmHg in an "
        "alymphatic tumour (Baxter & Jain 1989) (parameters.md §6.3)",
    )
    normal_interstitial_pressure_mmHg: float = P(
        0.0,
        unit="mmHg",
        desc="Interstitial fluid pressure p_i at normal vessels.",
        source="Baxter & Jain 1989: 0 mmHg in normal tissue [V] (parameters.md §6.3)",
    )
    tumor_interstitial_oncotic_mmHg: float = P(
        15.0,
        unit="mmHg",
        ge=0,
        desc="Interstitial colloid osmotic pressure pi_i in tumour.",
        source="Baxter & Jain 1989, Table 1 [V] (parameters.md §6.3)",
    )
    normal_interstitial_oncotic_mmHg: float = P(
        10.0,
        unit="mmHg",
        ge=0,
        desc="Interstitial colloid osmotic pressure pi_i in normal tissue.",
        source="Baxter & Jain 1989, Table 1 [V] (parameters.md §6.3)",
    )
    tumor_protein_reflection: float = P(
        0.82,
        unit="1",
        ge=0,
        le=1,
        desc="Osmotic reflection coefficient of plasma proteins sigma_T, tumour vessels.",
        source="Baxter & Jain 1989, Table 1 [V] (parameters.md §6.3)",
    )
    normal_protein_reflection: float = P(
        0.91,
        unit="1",
        ge=0,
        le=1,
        desc="Osmotic reflection coefficient of plasma proteins sigma_T, normal vessels.",
        source="Baxter & Jain 1989, Table 1 [V] (parameters.md §6.3)",
    )
    tumor_hydraulic_conductivity_um_per_min_mmHg: float = P(
        0.168,
        unit="um/(min mmHg)",
        ge=0,
        desc="Hydraulic conductivity L_p of tumour vessel walls (2.8e-7 cm/(mmHg s)).",
        source="Baxter & Jain 1989, Table 1 [V] (parameters.md §6.3)",
    )
    normal_hydraulic_conductivity_um_per_min_mmHg: float = P(
        0.0216,
        unit="um/(min mmHg)",
        ge=0,
        desc="Hydraulic conductivity L_p of normal vessel walls (0.36e-7 cm/(mmHg s)).",
        source="Baxter & Jain 1989, Table 1 [V] (parameters.md §6.3)",
    )
    normal_pore_radius_nm: float = P(
        5.0,
        unit="nm",
        gt=0,
        desc="Pore radius of normal capillary walls, for the reflection coefficient from pore "
        "theory (tumour vessels: nanoparticle_transport.pore_cutoff_nm / 2).",
        source="small pores of continuous capillaries 4-5 nm in radius (two-pore model, Rippe & "
        "Haraldsson 1994) [A] (parameters.md §6.3)",
    )


class PayloadConfig(Section):
    """What a nanoparticle carries: a drug and optionally a P-gp inhibitor."""

    drug: str = P(..., desc="Name of an agent of kind 'drug' (doses are mg of this drug).")
    inhibitor: str | None = P(
        None, desc="Name of an agent of kind 'inhibitor' co-loaded with the drug; null: none."
    )
    inhibitor_per_drug: float = P(
        0.0, unit="mol/mol", ge=0, desc="Co-loaded inhibitor per drug molecule."
    )
    sirna_knockdown: float = P(
        0.0,
        unit="fraction",
        ge=0,
        le=1,
        desc="Maximal P-gp knockdown by co-loaded MDR1 siRNA in cells holding particles "
        "(0: no siRNA).",
        source="MDR1 siRNA lowers P-gp by 50-90 % in MDR cells [A]",
    )
    sirna_half_uM: float = P(
        1.0,
        unit="uM",
        gt=0,
        desc="Internalised particles (drug-equivalent) giving half the maximal knockdown.",
        source="choice",
    )


class ExternalTrigger(Section):
    """Light or heat applied to a disc of the domain at scheduled times."""

    center_um: list[float] = P(
        [0.0, 0.0], unit="um", desc="Centre [y, x] of the illuminated or heated disc."
    )
    radius_um: float = P(0.0, unit="um", ge=0, desc="Radius of the disc.")
    start_h: list[float] = P([], unit="h", desc="Start times of the exposures.")
    duration_h: float = P(1.0, unit="h", gt=0, desc="Duration of each exposure.")


class ReleaseConfig(Section):
    """First-order release of the payload from particles (docs/pharmacology.md §13.7, §13.8)."""

    trigger: Literal["none", "ph", "enzyme", "external"] = P(
        "none",
        desc="What speeds extracellular release: low pH (the rate follows the tissue pH by "
        "the law of ph74_per_h and ph5_per_h), enzymes (next to CAFs and M2 macrophages), an "
        "external trigger, or nothing.",
    )
    base_per_h: float = P(
        0.006,
        unit="1/h",
        ge=0,
        desc="Extracellular release rate without trigger (triggers none, enzyme, external; "
        "trigger 'ph' uses ph74_per_h instead).",
        source="pH 7.4 release half-lives >= 100 h (parameters.md §5.4) [A]",
    )
    triggered_per_h: float = P(
        0.07,
        unit="1/h",
        ge=0,
        desc="Extra extracellular release rate where trigger 'enzyme' or 'external' acts "
        "(not used by trigger 'ph').",
        source="pH 5 release half-lives 5-20 h (parameters.md §5.4) [A]",
    )
    ph74_per_h: float = P(
        0.0022,
        unit="1/h",
        ge=0,
        desc="Trigger 'ph': release rate at pH 7.4 (blood, normal tissue).",
        source="hydrazone-linked doxorubicin micelles: about 10 % released in 48 h at pH 7.4, "
        "-ln(0.9)/48 h (Bae, Kataoka et al. 2003-2005; parameters.md §5.4) [A]",
    )
    ph5_per_h: float = P(
        0.07,
        unit="1/h",
        ge=0,
        desc="Trigger 'ph': release rate at pH 5.0 (late endosome, lysosome). Between pH 7.4 "
        "and 5 the rate rises in proportion to the proton concentration (acid catalysis).",
        source="hydrazone-linked doxorubicin micelles: release half-lives about 5-20 h at pH 5 "
        "(Bae, Kataoka et al. 2003-2005; parameters.md §5.4) [A]",
    )
    endosomal_ph: float = P(
        5.0,
        unit="pH",
        gt=0,
        lt=14,
        desc="Trigger 'ph': the pH internalised particles see, for release inside cells when "
        "intracellular_per_h is null.",
        source="late endosome and lysosome pH 4.5-5.0, early endosome 5.5-6.5 (parameters.md "
        "§5.4) [V, reviews]",
    )
    intracellular_per_h: float | None = P(
        None,
        unit="1/h",
        ge=0,
        desc="Release inside cancer cells after internalisation; macrophages do not release. "
        "null: the pH law at endosomal_ph for trigger 'ph', 0.07 otherwise.",
        source="endosomal pH 5-6 release half-life ~10 h (parameters.md §5.4) [A]",
    )
    macrophage_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Release from particles that macrophages took up into the free drug of the "
        "macrophage's voxel: tumour-associated macrophages as a depot that hands the payload "
        "on to neighbouring cells. 0: macrophages hold what they take up.",
        source="TAMs take up most nanoparticles in tumours and release the payload gradually "
        "to neighbouring tumour cells (Miller et al. 2015 Nat Commun 6:8692); PEG liposomes "
        "stay near capillaries and are taken up by TAMs (Banciu et al. 2008 Pharm Res 25:1948); "
        "parameters.md §5.4 [V, abstracts]",
    )
    external: ExternalTrigger = P(ExternalTrigger(), desc="Region and times of trigger 'external'.")

    @model_validator(mode="after")
    def _acid_faster(self):
        if self.ph5_per_h < self.ph74_per_h:
            raise ValueError(
                "ph5_per_h|at least ph74_per_h (acid-labile linkers release faster at pH 5 than "
                "at pH 7.4)"
            )
        return self


class NanoparticleConfig(Section):
    """A nanoparticle formulation: size, surface, ligand, payload and release."""

    size_nm: float = P(
        100.0, unit="nm", gt=1, le=2000, desc="Hydrodynamic diameter.", source="per formulation"
    )
    peg: bool = P(True, desc="PEG-coated surface (longer circulation).")
    ligand: bool = P(False, desc="Carries a ligand for the receptor of receptor-positive cells.")
    ligand_uptake_factor: float | None = P(
        None,
        unit="1",
        ge=1,
        desc="Internalisation by receptor-positive cells is this many times faster. null: from "
        "size, 1 + 4 exp(-ln(size_nm/60)^2 / 0.08): 5 at 60 nm, 1.15 at 100 nm, 1.01 at 30 nm.",
        source="transferrin-targeted gold particles accumulate in tumours 5x faster than PEG-only "
        "ones at 60 nm, no different at 15, 30 and 100 nm (Sykes et al. 2014, parameters.md "
        "§5.5) [V, abstract]; read as an internalisation factor (choice)",
    )
    payload: PayloadConfig = P(..., desc="The drug (and inhibitor) carried.")
    release: ReleaseConfig = P(ReleaseConfig(), desc="Release of the payload.")
    tumor_uptake_per_h: float = P(
        0.1,
        unit="1/h",
        ge=0,
        desc="Internalisation rate constant of cancer cells (receptor-negative).",
        source="choice: particle uptake half-times of hours in vitro [A]",
    )
    macrophage_uptake_per_h: float = P(
        1.0,
        unit="1/h",
        ge=0,
        desc="Internalisation rate constant of macrophages (a sink that lowers delivery, or a "
        "depot with release.macrophage_per_h).",
        source="choice: phagocytes take up particles about 10x faster than tumour cells [A]",
    )
    carrier_loss_per_h: float = P(
        0.01,
        unit="1/h",
        ge=0,
        desc="First-order rate at which live cells lose the particles that released their "
        "payload inside them (emptied carriers: lysosomal degradation of the particle and "
        "its label, exocytosis); 0: cells keep them until they die (docs/pharmacology.md "
        "§13.12).",
        source="choice: a half-life of about 3 days (69 h); exocytosis of gold particles "
        "depends on size (Chithrani & Chan 2007) and surface (Oh & Park 2014) [V, abstracts], "
        "neither abstract gives a rate (parameters.md §5.5)",
    )
    cmc_mg_per_L: float | None = P(
        None,
        unit="mg/L",
        gt=0,
        desc="Critical micelle concentration of the carrier polymer. While the polymer of the "
        "circulating micelles (plasma drug-equivalent x polymer_per_drug) is below it, the "
        "micelles in plasma dissociate at dissociation_per_h and their payload becomes free "
        "drug in plasma (docs/pharmacology.md §13.4). null: particles that do not dissociate "
        "(liposomes, solid particles).",
        source="block-copolymer micelles: 2.9-41 mg/L for PEG(2k)-b-PCL (Glover et al. 2012), "
        "2.8-25 mg/L for PEtOz-b-PTMC (Kim et al. 2000) (parameters.md §5.9) [V, abstracts]",
    )
    polymer_per_drug: float | None = P(
        None,
        unit="mg/mg",
        gt=0,
        desc="Mass of carrier polymer per mass of payload drug (needed with cmc_mg_per_L): "
        "(1 - loading) / loading for a drug loading content by weight.",
        source="drug loading of polymeric micelles: < 3 % to 12 % by weight for paclitaxel in "
        "PEG-b-PCL (Tyrrell et al. 2011) (parameters.md §5.9) [V, abstract]",
    )
    dissociation_per_h: float = P(
        7.7,
        unit="1/h",
        gt=0,
        desc="First-order rate at which micelles in plasma dissociate into unimers while "
        "their polymer is below cmc_mg_per_L.",
        source="DSPE-PEG(2000) micelles made thermodynamically unstable by albumin break up "
        "with a first-order time constant of 7.8 +- 1.6 min at 37 C (Kastantin et al. 2010 "
        "J Phys Chem B 114:12632), 60/7.8 = 7.7 /h (parameters.md §5.9) [V, abstract]",
    )
    half_life_h: float | None = P(
        None,
        unit="h",
        gt=0,
        desc="Circulation half-life; null: from size, PEG and the host species' clearance by "
        "the mononuclear phagocyte system (species.<subject.species>, docs/pharmacology.md "
        "§13.2).",
    )
    diffusion_um2_per_min: float | None = P(
        None,
        unit="um^2/min",
        ge=0,
        desc="Interstitial diffusivity; null: Stokes-Einstein with Renkin hindrance.",
    )
    tumor_permeability_um_per_min: float | None = P(
        None,
        unit="um/min",
        ge=0,
        desc="Tumour-associated capillary permeability; null: from size (Dogra 2020 fit).",
    )
    permeability_um_per_min: float | None = P(
        None,
        unit="um/min",
        ge=0,
        desc="Normal capillary permeability; null: nanoparticles.normal_vessel_factor x tumour.",
    )
    reflection_coefficient: float | None = P(
        None,
        unit="1",
        ge=0,
        le=1,
        desc="Solvent-drag reflection coefficient of the capillary wall for these particles "
        "(docs/pharmacology.md §13.5), at every vessel. null: pore theory from size_nm / 2 and "
        "each vessel type's pore radius.",
        source="sigma = (1 - Phi)^2, Phi = (1 - r/r_p)^2 (Ferry 1936; Curry 1984) "
        "(parameters.md §6.3)",
    )

    @model_validator(mode="after")
    def _polymer_with_cmc(self):
        if self.cmc_mg_per_L is not None and self.polymer_per_drug is None:
            raise ValueError(
                "polymer_per_drug|a number with cmc_mg_per_L (the polymer mass per drug mass "
                "sets the micelles' polymer concentration in plasma)"
            )
        return self


class NanoparticleTransport(Section):
    """Size-dependence shared by every formulation (docs/pharmacology.md §13)."""

    matrix_pore_radius_nm: float = P(
        200.0,
        unit="nm",
        gt=0,
        desc="Effective interstitial pore radius at the reference matrix density (Renkin).",
        source="r_p = 200 nm gives D/D0 consistent with measured permeability ratios "
        "(parameters.md §5.3) [D]",
    )
    reference_ecm: float = P(
        0.1,
        unit="density",
        gt=0,
        desc="ECM density at which the pore radius is matrix_pore_radius_nm; pores scale as "
        "(reference / fields.ecm.initial)^(1/2), fixed when the scenario loads.",
        source="fibre spacing ~ volume fraction^(-1/2) (Ogston) [A]",
    )
    pore_cutoff_nm: float = P(
        400.0,
        unit="nm",
        gt=0,
        desc="Particles larger than this cross no capillary wall (derived permeabilities 0).",
        source="Yuan et al. 1995: cut-off 400-600 nm (parameters.md §5.2) [V]",
    )
    normal_vessel_factor: float = P(
        0.1,
        unit="1",
        ge=0,
        le=1,
        desc="Normal lung capillary permeability as a fraction of the tumour-associated value.",
        source="choice: continuous lung endothelium is far tighter than tumour vessels (EPR)",
    )
