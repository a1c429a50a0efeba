"""The scenario schema: every key, its unit, default, bounds, meaning and source.

A scenario is validated into a frozen tree of pydantic models. Keys carry their unit in their
name (``_um``, ``_h``, ``_min``, ``_per_h``, ``_per_min``, ``_mmHg``, ``_um2_per_min``, ``_um3``).
Internal units are micrometres, minutes for transport and hours for cell rules; see
docs/scenario-reference.md, generated from this module by ``tmesim schema --markdown``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SIDES_2D = ("x_min", "x_max", "y_min", "y_max")
SIDES_3D = (*SIDES_2D, "z_min", "z_max")
Side = Literal["x_min", "x_max", "y_min", "y_max", "z_min", "z_max"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
FIELD_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


def P(default: Any = ..., *, unit: str = "", desc: str, source: str = "", **constraints) -> Any:
    """A schema field with its unit and source recorded for the reference docs and errors."""
    extra = {"unit": unit, "source": source}
    return Field(default, description=desc, json_schema_extra=extra, **constraints)


class Section(BaseModel):
    """Base of every scenario section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
    """The lattice: one cell per site, one field voxel per site."""

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
        gt=0,
        le=1000,
        desc="Edge of a lattice site and field voxel (2-D voxels are cubes one site thick).",
        source="BioFVM default voxel 20 um (parameters.md §1.1); one ~17 um cell per site",
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
        0.1,
        unit="min",
        gt=0,
        desc="Diffusion step; the agent step is split into dt_min / diffusion_dt_min sub-steps.",
        source="accuracy study in docs/numerics.md; PhysiCell uses 0.01 min",
    )
    precision: Literal["float32", "float64"] = P(
        "float64", desc="Floating-point type of the field arrays.", source="choice"
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


class Placement(Section):
    """Initial cells of one type."""

    count: int = P(0, unit="cells", ge=0, desc="Number of cells placed at the start.")
    placement: Literal["center", "disc", "random"] = P(
        "disc",
        desc="center: packed around the domain centre; disc: scattered uniformly in a disc "
        "(sphere in 3-D) of radius_um about the centre; random: scattered over the domain.",
    )
    radius_um: float = P(100.0, unit="um", gt=0, desc="Radius for placement 'disc'.")


class CancerCellConfig(Section):
    """Rules shared by tumour and stem-like cells (tmesim/kernels/tumor.py)."""

    initial: Placement = P(Placement(), desc="Initial cells.")
    division_rate_per_h: float = P(
        1 / 24,
        unit="1/h",
        ge=0,
        desc="Division-attempt rate of a cell with a free neighbour.",
        source="Enderling/Poleszczuk CA, pprol = 1/24 per 1 h step (parameters.md §2.3) [V]",
    )
    migration_rate_per_h: float = P(
        10 / 24,
        unit="1/h",
        ge=0,
        desc="Rate of moves to a free neighbour (when not dividing).",
        source="Enderling/Poleszczuk CA, pmig = 10/24 per h (parameters.md §2.3) [V]",
    )
    hypoxia_mmHg: float = P(
        10.0,
        unit="mmHg",
        ge=0,
        desc="Below this pO2 the cell is quiescent (no division attempts).",
        source="hypoxia convention < 10 mmHg (parameters.md §1.2) [A]",
    )
    necrosis_mmHg: float = P(
        5.0,
        unit="mmHg",
        ge=0,
        desc="Below this pO2 necrosis starts.",
        source="PhysiCell o2_necrosis_threshold (parameters.md §1.1) [V]",
    )
    necrosis_max_mmHg: float = P(
        2.5,
        unit="mmHg",
        ge=0,
        desc="At or below this pO2 the necrosis rate is at its maximum.",
        source="PhysiCell o2_necrosis_max (parameters.md §1.1) [V]",
    )
    necrosis_max_per_h: float = P(
        1 / 6,
        unit="1/h",
        ge=0,
        desc="Maximum necrosis rate.",
        source="PhysiCell max_necrosis_rate 1/360 min^-1, 'survive 6 h' (parameters.md §1.1) [V]",
    )
    lysis_h: float = P(
        1440.0,
        unit="h",
        ge=0,
        desc="Time a necrotic cell keeps its site before it is cleared.",
        source="PhysiCell necrotic lysed phase 86 400 min (physicell.md §1.3) [V]",
    )
    oxygen_uptake_per_min: float = P(
        10.0,
        unit="1/min",
        ge=0,
        desc="Oxygen uptake rate of a viable cell (scaled by volume_um3 / voxel volume).",
        source="PhysiCell sample configs, U = 10 min^-1 (parameters.md §1.1) [V]",
    )
    volume_um3: float = P(
        2494.0,
        unit="um^3",
        gt=0,
        desc="Cell volume, used to scale uptake to the voxel.",
        source="PhysiCell default cell volume (parameters.md §1.1) [V]",
    )

    @model_validator(mode="after")
    def _thresholds(self):
        if self.necrosis_max_mmHg > self.necrosis_mmHg:
            raise ValueError(
                "necrosis_max_mmHg|at most necrosis_mmHg (the rate ramps up as pO2 falls)"
            )
        return self


class TumorConfig(CancerCellConfig):
    """Non-stem tumour cells with limited proliferative capacity."""

    initial: Placement = P(Placement(count=200), desc="Initial tumour cells.")
    max_divisions: int = P(
        10,
        unit="divisions",
        ge=0,
        le=10_000,
        desc="Proliferative capacity of a tumour cell born from a stem-like cell.",
        source="Enderling/Poleszczuk CA, rho_max = 10 (parameters.md §2.3) [V]",
    )
    death_at_division: float = P(
        0.01,
        unit="probability",
        ge=0,
        le=1,
        desc="Probability that a tumour cell dies at a division attempt.",
        source="Enderling/Poleszczuk CA, alpha = 1/100 per attempt (parameters.md §2.3) [V]",
    )


class StemConfig(CancerCellConfig):
    """Cancer-stem-like cells: unlimited divisions, symmetric or asymmetric."""

    initial: Placement = P(Placement(count=10), desc="Initial stem-like cells.")
    symmetric_division_prob: float = P(
        0.3,
        unit="probability",
        ge=0,
        le=1,
        desc="Probability that a stem-like division yields two stem-like cells.",
        source="Enderling/Poleszczuk CA, ps = 3/10 (parameters.md §2.3) [V]",
    )


class CellsConfig(Section):
    """Cell populations."""

    tumor: TumorConfig = P(TumorConfig(), desc="Tumour cells.")
    stem: StemConfig = P(StemConfig(), desc="Cancer-stem-like cells.")


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
    output: OutputConfig = P(OutputConfig(), desc="Output.")

    @model_validator(mode="after")
    def _consistency(self):
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
        if "oxygen" not in self.fields:
            raise ValueError("fields.oxygen|an oxygen field (tumour cells read pO2 from it)")
        if isinstance(self.output.fields, list):
            for fname in self.output.fields:
                if fname not in self.fields:
                    raise ValueError(
                        f"output.fields|names of defined fields ({', '.join(self.fields)}); "
                        f"'{fname}' is not one"
                    )
        n_sites = math.prod(self.domain.shape)
        n_cells = self.cells.tumor.initial.count + self.cells.stem.initial.count
        if n_cells > n_sites:
            raise ValueError(
                f"cells|at most {n_sites} initial cells in all (one per lattice site); "
                f"{n_cells} requested"
            )
        return self

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
            return list(self.fields)
        if self.output.fields == "none":
            return []
        return list(self.output.fields)
