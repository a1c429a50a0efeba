"""Scenario schema of therapies: agents (drugs, P-gp inhibitors, antibodies), their systemic
pharmacokinetics, vessel and membrane transport, and the dosing list (docs/pharmacology.md).

Units: doses in mg/kg of body mass, plasma amounts in mg, tissue concentrations in the agent's
field units (uM for small molecules, nM for antibodies), permeabilities in um/min.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from .schema_base import P, Section

AGENT_KINDS = ("drug", "inhibitor", "antibody")


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

    kind: Literal["drug", "inhibitor", "antibody"] = P(
        ...,
        desc="drug: enters cancer cells and kills (Emax on intracellular drug); inhibitor: "
        "lowers P-gp efflux by ic50 / (I + ic50); antibody: anti-PD-L1, occupancy A / (A + Kd) "
        "removes that share of PD-L1 from T-cell suppression (cells.tcell.antibody_kd_nM).",
    )
    units: Literal["uM", "nM"] = P("uM", desc="Unit of the agent's tissue field.")
    molar_mass_g_per_mol: float = P(..., unit="g/mol", gt=0, desc="Converts mg/L to uM or nM.")
    pk: PKConfig = P(..., desc="Plasma kinetics.")
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
    emax_per_h: float = P(
        0.0, unit="1/h", ge=0, desc="Maximal apoptosis hazard from intracellular drug."
    )
    ec50_uM: float = P(
        1.0, unit="uM", gt=0, desc="Intracellular drug giving half the maximal hazard."
    )
    hill: float = P(1.0, unit="1", gt=0, desc="Hill power of the kill hazard.")
    pgp_ic50: float = P(
        0.0,
        unit="field units",
        ge=0,
        desc="Inhibitor only: tissue concentration halving P-gp activity, ic50 / (I + ic50).",
    )

    @model_validator(mode="after")
    def _by_kind(self):
        if self.kind == "inhibitor" and self.pgp_ic50 <= 0:
            raise ValueError("pgp_ic50|a positive IC50 for an agent of kind 'inhibitor'")
        if self.kind != "drug" and (self.membrane_permeability_um_per_min or self.emax_per_h):
            raise ValueError(
                "membrane_permeability_um_per_min|0 unless kind is 'drug' (only drugs enter "
                "cells and kill)"
            )
        return self


class Administration(Section):
    """One line of the dosing list: an agent, a route, a dose and a schedule."""

    agent: str = P(..., desc="Name of an agent under 'agents'.", min_length=1)
    route: Literal["iv", "inhaled"] = P(
        "iv",
        desc="iv: into plasma (reaches tissue through capillary walls); inhaled: deposits on "
        "alveolar surfaces (subject.inhaled_deposited_fraction of the dose).",
    )
    dose_mg_per_kg: float = P(..., unit="mg/kg", gt=0, desc="Dose per administration.")
    start_h: float = P(0.0, unit="h", ge=0, desc="Time of the first administration.")
    every_h: float = P(0.0, unit="h", ge=0, desc="Interval between administrations.")
    count: int = P(1, ge=1, le=10_000, desc="Number of administrations.")
    duration_h: float = P(
        0.0, unit="h", ge=0, desc="Infusion duration (0: bolus). iv only."
    )

    @model_validator(mode="after")
    def _schedule(self):
        if self.count > 1 and self.every_h <= 0:
            raise ValueError("every_h|a positive interval when count > 1")
        if self.count > 1 and self.duration_h > self.every_h:
            raise ValueError("duration_h|at most every_h (infusions of one line do not overlap)")
        if self.route == "inhaled" and self.duration_h > 0:
            raise ValueError("duration_h|0 for route 'inhaled' (an inhaled dose deposits at once)")
        return self

    def times_h(self) -> list[float]:
        """Start times of the administrations."""
        return [self.start_h + i * self.every_h for i in range(self.count)]


class SubjectConfig(Section):
    """The host: body mass for mg/kg doses, lung surface for inhaled deposition."""

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
    inhaled_deposited_fraction: float = P(
        0.3,
        unit="fraction",
        ge=0,
        le=1,
        desc="Share of an inhaled dose deposited on alveolar surfaces (the rest is exhaled or "
        "cleared from the airways).",
        source="choice: nebulised aerosols, alveolar deposition 10-50 % [A]",
    )


class VesselsConfig(Section):
    """Capillary transport of therapies (docs/pharmacology.md §2)."""

    capillary_diameter_um: float = P(
        6.5,
        unit="um",
        gt=0,
        desc="Capillary diameter: one capillary per perfused voxel gives wall surface per voxel "
        "volume pi d / voxel_um^2.",
        source="pulmonary capillary diameter 5-8 um (parameters.md §6) [A]",
    )
    tumor_association_um: float = P(
        60.0,
        unit="um",
        ge=0,
        desc="Capillaries within this distance of a cancer cell are tumour-associated (leaky).",
        source="choice: a few cell diameters; tumour-induced leakiness is local",
    )
