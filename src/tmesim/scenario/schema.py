"""The scenario schema: every key, its unit, default, bounds, meaning and source.

A scenario is validated into a frozen tree of pydantic models. Keys carry their unit in their
name (``_um``, ``_h``, ``_min``, ``_per_h``, ``_per_min``, ``_mmHg``, ``_um2_per_min``, ``_um3``).
Internal units are micrometres, minutes for transport and hours for cell rules; see
docs/scenario-reference.md, generated from this module by ``tmesim schema --markdown``.
"""

from __future__ import annotations

import difflib
import math
from typing import Literal

from pydantic import model_validator

from .cells_schema import CellsConfig, Rule
from .schema_base import P, Section
from .therapy_schema import (
    Administration,
    AgentConfig,
    NanoparticleConfig,
    NanoparticleTransport,
    SpeciesConfig,
    SubjectConfig,
    VesselsConfig,
)

SIDES_2D = ("x_min", "x_max", "y_min", "y_max")
SIDES_3D = (*SIDES_2D, "z_min", "z_max")
Side = Literal["x_min", "x_max", "y_min", "y_max", "z_min", "z_max"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
FIELD_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class TimeConfig(Section):
    """Simulated time span and steps."""

    duration_h: float = P(
        120.0, unit="h", gt=0, le=24 * 365 * 5, desc="Simulated time span.", source="choice"
    )
    dt_min: float = P(
        6.0,
        unit="min",
        gt=0,
        le=1440,
        desc="Agent step: cell rules run once per step.",
        source="PhysiCell dt_phenotype = 6 min (physicell.md §1.1)",
    )
    record_every_h: float = P(
        6.0,
        unit="h",
        gt=0,
        desc="Interval between records written to the HDF5 file; a multiple of dt_min.",
        source="choice",
    )


class LungConfig(Section):
    """Generated alveolar parenchyma (``domain.geometry: lung``); see tmesim/geometry.py."""

    alveolar_diameter_um: float = P(
        200.0,
        unit="um",
        gt=0,
        desc="Equivalent diameter of an alveolar air lumen (about 200 um human, 50 um mouse).",
        source="Ochs et al. 2004 (human, 4.2e6 um^3 per alveolus); Hoang et al. 2018 (mouse) "
        "(parameters.md §6)",
    )
    septum_um: float = P(
        10.0,
        unit="um",
        gt=0,
        desc="Interalveolar septum thickness (walls are at least 1.5 voxels on the lattice).",
        source="human septa 5-10 um, mouse 3-5 um (parameters.md §6) [A]",
    )
    capillary_fraction: float = P(
        0.5,
        unit="fraction",
        ge=0,
        le=1,
        desc="Share of septal sites that are capillaries.",
        source="capillary mesh fills about half of the septal volume (parameters.md §6) [A]",
    )
    jitter: float = P(
        0.2,
        unit="fraction of spacing",
        ge=0,
        le=0.45,
        desc="Random displacement of alveolar centres from the regular lattice.",
        source="choice",
    )
    airway_diameter_um: float = P(
        0.0, unit="um", ge=0, desc="Diameter of a bronchiole (0: none).", source="choice"
    )
    vessel_diameter_um: float = P(
        0.0, unit="um", ge=0, desc="Diameter of a larger blood vessel (0: none).", source="choice"
    )


class MaskConfig(Section):
    """A user-supplied label image (``domain.geometry: mask``)."""

    path: str = P("", desc="Label image (.npy, .png, .tif), relative to the scenario file.")
    codes: dict[Literal["tissue", "air", "capillary", "vessel", "airway"], int] = P(
        {"tissue": 0, "air": 1, "capillary": 2, "vessel": 3, "airway": 4},
        desc="Label value of each tissue class in the image.",
    )


class DomainConfig(Section):
    """The lattice: one cell per site (small cells on a layer of their own when they share
    sites), one field voxel per site."""

    geometry: Literal["tissue", "lung", "mask"] = P(
        "tissue",
        desc="tissue: plain interstitium; lung: generated alveolar parenchyma (domain.lung); "
        "mask: a label image (domain.mask).",
    )
    lung: LungConfig = P(LungConfig(), desc="Parameters of the generated lung.")
    mask: MaskConfig = P(MaskConfig(), desc="The label image of geometry 'mask'.")

    shape: list[int] = P(
        [150, 150],
        unit="voxels",
        desc="Lattice size, [ny, nx] in 2-D or [nz, ny, nx] in 3-D.",
        source="choice",
    )
    voxel_um: float = P(
        20.0,
        unit="um",
        ge=0.1,
        le=1000,
        desc="Edge of a lattice site and field voxel (2-D voxels are cubes one site thick).",
        source="BioFVM default voxel 20 um (parameters.md §1.1); one ~17 um cell per site",
    )
    small_cells_share_sites: bool = P(
        False,
        desc="Small cells (the kinds marked small: T cells) live on a second occupancy layer, "
        "one small cell per site, and may share a site with a large cell (cancer, stem-like, "
        "necrotic, macrophage, fibroblast, MDSC); off: one cell of any kind per site "
        "(docs/biology.md §4.10).",
        source="choice (parameters.md §7)",
    )

    @model_validator(mode="after")
    def _check_shape(self):
        if len(self.shape) not in (2, 3):
            raise ValueError("shape|a list of 2 ([ny, nx]) or 3 ([nz, ny, nx]) positive integers")
        if any(n < 1 for n in self.shape):
            raise ValueError("shape|every extent must be at least 1 voxel")
        if math.prod(self.shape) > 2**31 - 1:
            raise ValueError("shape|at most 2**31 - 1 voxels in all")
        if self.geometry == "mask" and not self.mask.path:
            raise ValueError("mask.path|the path of a label image when geometry is 'mask'")
        return self

    @property
    def ndim(self) -> int:
        """2 or 3."""
        return len(self.shape)


class NumericsConfig(Section):
    """Numerical choices of the transport solver."""

    diffusion_dt_min: float = P(
        1.0,
        unit="min",
        gt=0,
        desc="Diffusion step; the agent step is split into dt_min / diffusion_dt_min sub-steps.",
        source="accuracy study in docs/numerics.md: with oxygen on Douglas at 1 min the oxygen "
        "profile stays within 0.3 % (1.2 % on a first step) of the fine-step reference; "
        "PhysiCell uses 0.01 min with LOD",
    )
    precision: Literal["float32", "float64"] = P(
        "float64", desc="Floating-point type of the field arrays.", source="choice"
    )
    solver_rtol: float = P(
        1e-3,
        gt=0,
        lt=1,
        desc="Implicit fields: a solve stops when the maximum residual is below this times the "
        "field's scale (its largest boundary, held or current value); the residual bounds the "
        "error of the step in the same units (1e-3: 0.04 mmHg of oxygen at 38 mmHg).",
        source="docs/numerics.md, 'Implicit transport': the bound does not pile up over steps "
        "for fields that relax quickly; 1e-3 changed the baseline's oxygen by at most 0.002 "
        "mmHg over 4 days and its tumour count not at all",
    )
    agent_solver_rtol: float = P(
        1e-5,
        gt=0,
        lt=1,
        desc="The same tolerance for the fields of dosed agents and formulations, whose amounts "
        "are booked in the dose ledger: what a solve does not conserve adds up over steps (the "
        "ledger's 'unconserved').",
        source="docs/numerics.md, 'Dosed agents': 0.033 % of the tissue content unconserved "
        "after 3 h in tests/data/transport/vessel_strip.yaml (0.16 % at 1e-4)",
    )
    lod_kdt_max: float = P(
        0.1,
        gt=0,
        desc="An LOD field without its own substeps takes the fewest steps per agent step (a "
        "divisor of time.dt_min / diffusion_dt_min, at most that many) that keep k dt at or "
        "below this, k being its fastest local rate (decay plus the largest cell uptake and "
        "secretion rate per voxel); dosed agents always step every diffusion_dt_min.",
        source="docs/numerics.md, 'Choosing numerics.diffusion_dt_min': LOD errors of a few per "
        "cent at k dt = 0.1",
    )
    solver_max_iterations: int = P(
        2000,
        ge=1,
        desc="Implicit fields: iterations after which a solve stops above its tolerance (counted "
        "as a failure in /diagnostics and reported at the end of the run).",
        source="choice",
    )
    scheme: Literal["auto", "lod", "douglas", "implicit"] = P(
        "auto",
        desc=(
            "Diffusion time stepping of fields without a scheme of their own: 'auto' (LOD where "
            "some step keeps k dt <= lod_kdt_max, the unsplit implicit step otherwise, k being "
            "the field's fastest local rate; for a dosed agent its capillary exchange, decay and "
            "uptake by cells), 'lod' (BioFVM-style sequential "
            "sweeps after a separate uptake step; O(dt) steady-state error), 'implicit' (one "
            "unsplit backward-Euler step solved by preconditioned CG: exact steady state, "
            "positive) or 'douglas' (Douglas ADI with the uptake inside the implicit operator)."
        ),
        source="accuracy study in docs/numerics.md ('Implicit transport', 'Steps chosen from "
        "accuracy')",
    )


class BoundarySide(Section):
    """One side's condition: exactly one of ``dirichlet`` or ``neumann``."""

    dirichlet: float | None = P(
        None, unit="field units", ge=0, desc="Value held on the domain face.", source="choice"
    )
    neumann: float | None = P(
        None,
        unit="field units * um / min",
        desc="Influx through the face (positive enters the domain).",
        source="choice",
    )

    @model_validator(mode="after")
    def _one(self):
        if (self.dirichlet is None) == (self.neumann is None):
            raise ValueError("|exactly one of {dirichlet: value} or {neumann: flux}")
        return self


class FieldConfig(Section):
    """A diffusing field (a substrate)."""

    units: str = P("a.u.", desc="Unit of the concentration, stored with the field.")
    diffusion_um2_per_min: float = P(
        ..., unit="um^2/min", ge=0, desc="Diffusion coefficient.", source="per field"
    )
    decay_per_min: float = P(0.0, unit="1/min", ge=0, desc="First-order decay rate.")
    initial: float = P(0.0, unit="field units", ge=0, desc="Initial uniform value.")
    boundary: dict[Side, BoundarySide] = P(
        {},
        desc="Conditions per side (x_min, x_max, y_min, y_max, z_min, z_max); zero flux if unset.",
    )
    scheme: Literal["auto", "lod", "douglas", "implicit"] | None = P(
        None,
        desc="Time-stepping scheme of this field; null: numerics.scheme. 'implicit' has an "
        "exact steady state and stays positive at any step (fast, sink-dominated fields such "
        "as oxygen); 'lod' is cheapest where k dt is small.",
    )
    substeps: int | None = P(
        None,
        ge=1,
        desc="Transport steps of this field per agent step (a divisor of time.dt_min / "
        "numerics.diffusion_dt_min); null: chosen from numerics.lod_kdt_max for an LOD field; "
        "for an implicit one, one per agent step if the field is fast (k diffusion_dt_min > "
        "lod_kdt_max: it relaxes within a few steps, like oxygen in ~0.1 min), else one per "
        "numerics.diffusion_dt_min.",
        source="accuracy study in docs/numerics.md, 'Implicit transport'",
    )
    vessel_value: float | None = P(
        None,
        unit="field units",
        ge=0,
        desc="Value held in perfused voxels (capillaries, vessels) of a lung or mask geometry; "
        "null: perfused voxels are ordinary tissue for this field.",
    )


class OutputConfig(Section):
    """What is written to the HDF5 file."""

    path: str = P(
        "results/{name}.h5",
        desc="Output file; {name} and {seed} are replaced. Relative to the working directory.",
        min_length=1,
    )
    fields: list[str] | Literal["all", "none"] = P(
        "all", desc="Fields stored per record: a list of names, 'all' or 'none'."
    )
    cells: bool = P(True, desc="Store per-record cell snapshots under /cells.")
    compression: int = P(4, ge=0, le=9, desc="gzip level of field datasets.")


def _unknown_species(name: str, sets) -> str:
    """The ``key|expected`` message for a ``subject.species`` that names no PK set."""
    names = list(sets)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"subject.species|the name of an entry under 'species' "
            f"({', '.join(names) or 'none defined'}){hint}")


class Scenario(Section):
    """A complete, validated scenario."""

    name: str = P("baseline", desc="Scenario name.", pattern=NAME_PATTERN, max_length=100)
    description: str = P("", desc="Free text.")
    extends: str | None = P(
        None, desc="Path of a scenario this one overrides (relative to this file)."
    )
    seed: int = P(0, ge=0, lt=2**63, desc="Seed of every random decision.")
    time: TimeConfig = P(TimeConfig(), desc="Time span and steps.")
    domain: DomainConfig = P(DomainConfig(), desc="Lattice.")
    numerics: NumericsConfig = P(NumericsConfig(), desc="Solver choices.")
    fields: dict[str, FieldConfig] = P(..., desc="Diffusing fields by name.")
    cells: CellsConfig = P(CellsConfig(), desc="Cell populations.")
    rules: list[Rule] = P([], desc="Signal -> behaviour rules in Hill form (docs/biology.md).")
    agents: dict[str, AgentConfig] = P(
        {}, desc="Therapeutic agents by name (docs/pharmacology.md); packaged: doxorubicin, "
        "tariquidar, anti_pdl1."
    )
    drug_combination: Literal["bliss", "highest_single_agent"] = P(
        "bliss",
        desc="How the kill hazards of several dosed drugs combine in a cancer cell "
        "(docs/pharmacology.md §7.1). bliss: Bliss independence, each drug kills on its own, "
        "so a cell's survival over a step is the product of its survival under each drug (the "
        "hazards add); highest_single_agent: only the drug with the highest hazard in that "
        "cell acts. One drug: both are the same.",
        source="Bliss independence: Bliss 1939; Greco, Bravo & Parsons 1995 (parameters.md "
        "§4.9)",
    )
    nanoparticles: dict[str, NanoparticleConfig] = P(
        {}, desc="Nanoparticle formulations by name (docs/pharmacology.md §13)."
    )
    nanoparticle_transport: NanoparticleTransport = P(
        NanoparticleTransport(), desc="Size rules shared by every formulation."
    )
    therapy: list[Administration] = P(
        [], desc="Administrations of agents or nanoparticle formulations (docs/pharmacology.md)."
    )
    subject: SubjectConfig = P(SubjectConfig(), desc="The host of the metastasis.")
    species: dict[str, SpeciesConfig] = P(
        {},
        desc="Plasma kinetics by species (packaged: mouse, human): subject.species picks one "
        "(docs/pharmacology.md §2).",
    )
    vessels: VesselsConfig = P(VesselsConfig(), desc="Capillary transport of therapies.")
    output: OutputConfig = P(OutputConfig(), desc="Output.")

    @model_validator(mode="before")
    @classmethod
    def _species_pk(cls, data):
        """Complete each agent's ``pk`` from the PK set of the subject's species: the set's
        keys first, the agent's own keys over them (an agent without an entry in the set keeps
        its own ``pk``, which must then be complete)."""
        if not isinstance(data, dict):
            return data
        subject = data.get("subject")
        name = subject.get("species") if isinstance(subject, dict) else None
        if name is None:
            name = SubjectConfig.model_fields["species"].default
        sets = data.get("species")
        if isinstance(sets, dict) and isinstance(name, str) and name not in sets:
            raise ValueError(_unknown_species(name, sets))
        chosen = sets.get(name) if isinstance(sets, dict) and isinstance(name, str) else None
        table = chosen.get("agents") if isinstance(chosen, dict) else None
        agents = data.get("agents")
        if not isinstance(table, dict) or not isinstance(agents, dict):
            return data
        merged = {}
        for agent, cfg in agents.items():
            own = cfg.get("pk") if isinstance(cfg, dict) else None
            base = table.get(agent)
            if isinstance(base, dict) and (own is None or isinstance(own, dict)):
                cfg = {**cfg, "pk": {**base, **(own or {})}}
            merged[agent] = cfg
        return {**data, "agents": merged}

    @property
    def species_set(self) -> SpeciesConfig:
        """The PK set of the subject's species (``species.<subject.species>``)."""
        return self.species[self.subject.species]

    @model_validator(mode="after")
    def _consistency(self):
        if self.subject.species not in self.species:
            raise ValueError(_unknown_species(self.subject.species, self.species))
        t = self.time
        if t.dt_min > t.record_every_h * 60 + 1e-9:
            raise ValueError(
                "time.dt_min|at most time.record_every_h * 60 (one agent step per record at least)"
            )
        ratio = t.record_every_h * 60 / t.dt_min
        if abs(ratio - round(ratio)) > 1e-6:
            raise ValueError("time.record_every_h|a whole multiple of time.dt_min")
        if t.duration_h * 60 < t.dt_min - 1e-9:
            raise ValueError("time.duration_h|at least one agent step (time.dt_min)")
        sub = t.dt_min / self.numerics.diffusion_dt_min
        if sub < 1 - 1e-9 or abs(sub - round(sub)) > 1e-6:
            raise ValueError(
                "numerics.diffusion_dt_min|a whole divisor of time.dt_min (e.g. dt_min / 10)"
            )
        import re

        for fname, fc in self.fields.items():
            if fc.substeps is not None and round(sub) % fc.substeps:
                raise ValueError(
                    f"fields.{fname}.substeps|a divisor of time.dt_min / "
                    f"numerics.diffusion_dt_min = {round(sub)}"
                )
            if not re.match(FIELD_NAME_PATTERN, fname):
                raise ValueError(
                    f"fields.{fname}|a field name of lowercase letters, digits and _ "
                    "starting with a letter"
                )
            for side in fc.boundary:
                if side not in (SIDES_3D if self.domain.ndim == 3 else SIDES_2D):
                    raise ValueError(
                        f"fields.{fname}.boundary.{side}|one of {', '.join(SIDES_2D)} "
                        "(z sides exist only in 3-D)"
                    )
        for name in set(self.agents) & set(self.nanoparticles):
            raise ValueError(
                f"nanoparticles.{name}|a name no agent has (agents and formulations share the "
                "therapy namespace)"
            )
        for name, npc in self.nanoparticles.items():
            pl = npc.payload
            if pl.drug not in self.agents or self.agents[pl.drug].kind != "drug":
                raise ValueError(
                    f"nanoparticles.{name}.payload.drug|the name of an agent of kind 'drug' "
                    f"({', '.join(a for a, c in self.agents.items() if c.kind == 'drug')})"
                )
            if pl.inhibitor is not None and (
                pl.inhibitor not in self.agents or self.agents[pl.inhibitor].kind != "inhibitor"
            ):
                raise ValueError(
                    f"nanoparticles.{name}.payload.inhibitor|null or the name of an agent of "
                    "kind 'inhibitor'"
                )
        for i, adm in enumerate(self.therapy):
            if adm.agent not in self.agents and adm.agent not in self.nanoparticles:
                names = [*self.agents, *self.nanoparticles]
                close = difflib.get_close_matches(adm.agent, names, n=1, cutoff=0.5)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(
                    f"therapy.{i}.agent|the name of an agent under 'agents' or a formulation "
                    f"under 'nanoparticles' ({', '.join(names)}){hint}"
                )
            if self.domain.geometry == "tissue":
                raise ValueError(
                    f"domain.geometry|'lung' or 'mask' for a scenario with therapy (plain "
                    f"'tissue' has no capillaries to deliver therapy.{i} through, nor alveolar "
                    "surfaces for inhaled doses)"
                )
        self._check_inhaled()
        used = self.dosed_agents
        # any number of drugs, inhibitors, antibodies and formulations: each has its own field,
        # drugs and formulations their own cell pools (docs/pharmacology.md §1)
        used = [*used, *self.dosed_nanoparticles]
        for a in used:
            if a in self.fields:
                raise ValueError(
                    f"fields.{a}|no field named like a dosed agent: the agent brings its own "
                    f"field; remove fields.{a} (set it to null) or rename the agent"
                )
            if not re.match(FIELD_NAME_PATTERN, a):
                raise ValueError(
                    f"therapy|agent names that are field names (lowercase letters, digits, _); "
                    f"'{a}' is not one"
                )
        if "oxygen" not in self.fields:
            raise ValueError("fields.oxygen|an oxygen field (tumour cells read pO2 from it)")
        if isinstance(self.output.fields, list):
            for fname in self.output.fields:
                if fname not in self.field_units:
                    raise ValueError(
                        f"output.fields|names of defined fields "
                        f"({', '.join(self.field_units)}); "
                        f"'{fname}' is not one"
                    )
        n_sites = math.prod(self.domain.shape)
        counts = {k: getattr(self.cells, k).initial.count for k in type(self.cells).model_fields}
        if sum(counts.values()) > n_sites:
            big = max(counts, key=counts.get)
            raise ValueError(
                f"cells.{big}.initial.count|at most {n_sites} initial cells in all (one per "
                f"lattice site); {sum(counts.values())} requested"
            )
        for kname in type(self.cells).model_fields:
            for fname, sec in getattr(self.cells, kname).secretion.items():
                if fname not in self.fields:
                    raise ValueError(
                        f"cells.{kname}.secretion.{fname}|the name of a defined field "
                        f"({', '.join(self.fields)})"
                    )
                if sec.induced_by is not None and sec.induced_by not in self.fields:
                    raise ValueError(
                        f"cells.{kname}.secretion.{fname}.induced_by|null or the name of a "
                        f"defined field ({', '.join(self.fields)})"
                    )
            signal = getattr(getattr(self.cells, kname), "recruitment", None)
            signal = signal.signal if signal is not None else None
            if signal is not None and signal not in self.fields:
                raise ValueError(
                    f"cells.{kname}.recruitment.signal|null or the name of a defined field "
                    f"({', '.join(self.fields)})"
                )
        attractant = self.cells.tcell.chemotaxis_field
        if attractant not in self.fields and attractant not in ("chemokine", "cxcl10"):
            raise ValueError(
                f"cells.tcell.chemotaxis_field|the name of a defined field "
                f"({', '.join(self.fields)})"
            )
        for i, rule in enumerate(self.rules):
            if rule.signal != "pdl1" and rule.signal not in self.field_units:
                raise ValueError(
                    f"rules.{i}.signal|a field name ({', '.join(self.field_units)}) or 'pdl1'"
                )
        return self

    def _check_inhaled(self) -> None:
        """Inhaled doses need a deposited share: the override, or the species' deposition
        curve with each aerosol's MMAD inside it. An override without inhaled doses is
        accepted: result files written before the size model store one in every scenario."""
        if self.subject.inhaled_deposited_fraction is not None:
            return
        inhaled = [i for i, adm in enumerate(self.therapy) if adm.route == "inhaled"]
        species = self.subject.species
        curve = self.species[species].alveolar_deposition
        for i in inhaled:
            if curve is None:
                raise ValueError(
                    f"species.{species}.alveolar_deposition|a deposition curve by aerosol "
                    f"size for inhaled doses (therapy.{i}), or set "
                    "subject.inhaled_deposited_fraction"
                )
            d = curve.aerodynamic_diameter_um
            mmad = self.therapy[i].mmad_um
            if not d[0] <= mmad <= d[-1]:
                raise ValueError(
                    f"therapy.{i}.aerosol_mmad_um|an MMAD within the deposition curve of "
                    f"species.{species} ({d[0]:g}-{d[-1]:g} um); {mmad:g} um is outside it "
                    "(extend the curve, or set subject.inhaled_deposited_fraction)"
                )

    @property
    def dosed_agents(self) -> list[str]:
        """Agents dosed directly or carried by a dosed nanoparticle, in order of appearance."""
        out = []
        for adm in self.therapy:
            names = [adm.agent] if adm.agent in self.agents else []
            if adm.agent in self.nanoparticles:
                pl = self.nanoparticles[adm.agent].payload
                names = [pl.drug] + ([pl.inhibitor] if pl.inhibitor else [])
            for name in names:
                if name not in out:
                    out.append(name)
        return out

    @property
    def pool_roles(self) -> dict[str, list[str]]:
        """The dosed agents that cells hold pools of, by role, in order of appearance: drugs
        (free, bound, retained drug and damage) and formulations (internalised particles); the
        cell store gives each its columns (:func:`tmesim.kernels.layout.agent_columns`)."""
        return {"drug": [a for a in self.dosed_agents if self.agents[a].kind == "drug"],
                "nanoparticle": self.dosed_nanoparticles}

    @property
    def dosed_nanoparticles(self) -> list[str]:
        """Nanoparticle formulations named in the dosing list, in order of appearance."""
        out = []
        for adm in self.therapy:
            if adm.agent in self.nanoparticles and adm.agent not in out:
                out.append(adm.agent)
        return out

    @property
    def field_units(self) -> dict[str, str]:
        """Every field of a run and its units: the scenario's fields, then one per dosed agent
        and per dosed formulation (named like it; particle fields in uM of drug carried). The
        field set itself is built by :func:`tmesim.fields.field_configs`."""
        out = {name: fc.units for name, fc in self.fields.items()}
        out.update({name: self.agents[name].units for name in self.dosed_agents})
        out.update({name: "uM" for name in self.dosed_nanoparticles})
        return out

    @property
    def record_every_steps(self) -> int:
        """Agent steps between records."""
        return round(self.time.record_every_h * 60 / self.time.dt_min)

    @property
    def n_steps(self) -> int:
        """Agent steps in the whole run (the duration rounded down to whole steps)."""
        return math.floor(self.time.duration_h * 60 / self.time.dt_min + 1e-9)

    @property
    def diffusion_substeps(self) -> int:
        """Diffusion sub-steps per agent step."""
        return round(self.time.dt_min / self.numerics.diffusion_dt_min)

    def stored_fields(self) -> list[str]:
        """Names of the fields written per record."""
        if self.output.fields == "all":
            return list(self.field_units)
        if self.output.fields == "none":
            return []
        return list(self.output.fields)
