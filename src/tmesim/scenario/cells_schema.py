"""Scenario sections of the cell populations (``cells.*``) and of the behaviour rules (``rules``).

Every key carries its unit in its name; sources are in docs/parameters.md (section numbers in
the ``source`` strings).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import model_validator

from .. import kinds
from .schema_base import P, Section

PLACEMENTS = Literal["center", "disc", "random", "capillary", "capillary_cluster", "alveolar"]


class Placement(Section):
    """Initial cells of one type."""

    count: int = P(0, unit="cells", ge=0, desc="Number of cells placed at the start.")
    placement: PLACEMENTS = P(
        "disc",
        desc="center: packed around the domain centre; disc: scattered uniformly in a disc "
        "(sphere in 3-D) of radius_um about the centre; random: scattered over the domain's "
        "tissue; capillary: scattered over capillary sites (metastatic arrival); "
        "capillary_cluster: packed around the capillary nearest the centre; alveolar: "
        "scattered over the alveolar surface, tissue sites next to air (resident alveolar "
        "macrophages).",
    )
    radius_um: float = P(100.0, unit="um", gt=0, desc="Radius for placement 'disc'.")


class Secretion(Section):
    """BioFVM-style exchange of one cell with one field (docs/numerics.md, cell coupling)."""

    rate_per_min: float = P(0.0, unit="1/min", ge=0, desc="Secretion rate S toward target.")
    target: float = P(0.0, unit="field units", ge=0, desc="Secretion target T.")
    uptake_per_min: float = P(0.0, unit="1/min", ge=0, desc="Uptake rate U.")
    release_per_min: float = P(
        0.0,
        unit="field units * um^3 / min",
        ge=0,
        desc="Net release E per cell (scaled by the cell's activity: see docs/biology.md).",
    )
    hypoxic_release_factor: float = P(
        1.0,
        unit="1",
        ge=0,
        le=1000,
        desc="Multiplies release_per_min while a cancer cell is hypoxic (quiescent); only "
        "tumour and stem-like cells have one (1 for every other kind).",
        source="1: no change (see docs/parameters.md for the values of defaults.yaml)",
    )
    induced_by: str | None = P(
        None,
        desc="A field that induces the release: release_per_min is multiplied by "
        "H(field; induced_ec50, induced_hill) at the cell's site (e.g. CXCL9/10 induced by "
        "'ifng', docs/biology.md §5.9); null: constitutive.",
    )
    induced_ec50: float = P(
        1.0, unit="field units of induced_by", gt=0,
        desc="Inducer level giving half the maximal release.",
    )
    induced_hill: float = P(1.0, unit="1", gt=0, desc="Hill power of the induction.")


class CellTypeBase(Section):
    """Keys every cell type has."""

    initial: Placement = P(Placement(), desc="Initial cells.")
    volume_um3: float = P(
        2494.0,
        unit="um^3",
        gt=0,
        desc="Cell volume: scales secretion and uptake to the voxel (V_cell / V_voxel).",
        source="PhysiCell default cell volume (parameters.md §1.1) [V]",
    )
    oxygen_uptake_per_min: float = P(
        10.0,
        unit="1/min",
        ge=0,
        desc="First-order oxygen uptake rate of a viable cell: per cell volume, scaled to its "
        "site by volume_um3 / voxel volume (oxygen_uptake_basis 'cell'), or the rate of a site "
        "filled with this kind's tissue (basis 'site').",
        source="PhysiCell sample configs, U = 10 min^-1 (parameters.md §1.1) [V]",
    )
    oxygen_uptake_basis: Literal["cell", "site"] = P(
        "cell",
        desc="How oxygen_uptake_per_min becomes the sink of the cell's site: 'cell' scales it by "
        "volume_um3 / voxel volume (BioFVM: one cell in a larger voxel); 'site' applies it "
        "unscaled, the lattice site standing for a voxel of packed tissue (per unit tissue volume).",
        source="BioFVM cell-in-voxel weighting (parameters.md §1.3); 'site' for cancer tissue "
        "(parameters.md §1.4)",
    )
    secretion: dict[str, Secretion] = P(
        {}, desc="Exchange with other fields, by field name (oxygen uptake has its own key)."
    )

    @model_validator(mode="after")
    def _oxygen_once(self):
        if "oxygen" in self.secretion:
            raise ValueError("secretion.oxygen|no entry: oxygen uptake is set by oxygen_uptake_per_min")
        return self


#: P-gp levels of the named cell-line presets (``cells.<cancer kind>.pgp_preset``); level 1 is
#: the MDR1-transduced line of Shen et al. 2008 (docs/parameters.md §4.2, "P-gp presets")
PGP_PRESETS = {"parental": 0.0, "moderate": 1.0, "mdr_high": 40.0}


class CancerCellConfig(CellTypeBase):
    """Rules shared by tumour and stem-like cells (tmesim/kernels/cancer.py)."""

    pgp_preset: Literal["parental", "moderate", "mdr_high"] | None = P(
        None,
        desc="A published cell line's P-gp level, setting pgp_mean unless the scenario sets "
        "it too (an explicit pgp_mean wins): parental (P-gp-negative, MCF-7-like: 0), "
        "moderate (MDR1-transduced MDA-MB-435mdr, 19 % accumulation, about 9-fold "
        "resistant: 1), mdr_high (an MCF-7/ADR-class line, 100-200-fold resistant: 40).",
        source="Shen et al. 2008 JPET [V]; MCF-7/ADR-class fold: Batist 1986, Fairchild 1987 "
        "[R] (parameters.md §4.2)",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data):
        if isinstance(data, dict) and data.get("pgp_preset") in PGP_PRESETS:
            if "pgp_mean" not in data:
                data = {**data, "pgp_mean": PGP_PRESETS[data["pgp_preset"]]}
        return data

    oxygen_uptake_per_min: float = P(
        21.0,
        unit="1/min",
        ge=0,
        desc="First-order oxygen uptake rate of a site filled with viable cancer tissue "
        "(oxygen_uptake_basis 'site'; per cell volume with basis 'cell').",
        source="measured consumption of R3230Ac mammary carcinoma, 2.4 ml O2/100 g/min "
        "(Secomb et al. 1995) [V, abstract], over the O2 solubility 3.0e-5 ml/ml/mmHg [A] and "
        "the vessel pO2 of 38 mmHg: 800 mmHg/min / 38 mmHg (parameters.md §1.4) [D]",
    )
    oxygen_uptake_basis: Literal["cell", "site"] = P(
        "site",
        desc="'site': oxygen_uptake_per_min is the uptake of the cell's whole site, packed "
        "tissue per unit volume; 'cell': scaled by volume_um3 / voxel volume as in BioFVM.",
        source="per unit tissue volume (parameters.md §1.4)",
    )

    division_rate_per_h: float = P(
        -math.log(1 - 1 / 24),
        unit="1/h",
        ge=0,
        desc="Division-attempt rate of a cell with a free neighbour.",
        source="Enderling/Poleszczuk CA: probability 1/24 per 1 h step, as a rate "
        "-ln(1 - 1/24) (parameters.md §2.3) [V, D]",
    )
    migration_rate_per_h: float = P(
        -math.log(1 - 10 / 24),
        unit="1/h",
        ge=0,
        desc="Rate of moves to a free neighbour (when not dividing).",
        source="Enderling/Poleszczuk CA: probability 10/24 per 1 h step, as a rate "
        "-ln(1 - 10/24) (parameters.md §2.3) [V, D]",
    )
    push_distance_um: float = P(
        60.0,
        unit="um",
        ge=0,
        le=1000,
        desc="A cell with no free neighbour divides by pushing: the cells on a shortest lattice "
        "path to the nearest free site within this distance each move one site along it, and "
        "the daughter takes the first. 0: contact inhibition (no division without a free "
        "neighbour, as in the Enderling/Poleszczuk automaton).",
        source="choice within the proliferating rim of spheroids and micrometastases, of "
        "constant thickness (Conger & Ziskin 1983 Cancer Res; the free-space distance rule of "
        "Drasdo & Hoehme 2005 Phys Biol) (docs/biology.md §4.3)",
    )
    death_rate_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Spontaneous apoptosis hazard outside division attempts.",
        source="Enderling/Poleszczuk CA has none (parameters.md §2.2) [V]",
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
        source="PhysiCell max_necrosis_rate 1/360 min^-1 (parameters.md §1.1) [V]",
    )
    lysis_h: float = P(
        46.0,
        unit="h",
        ge=0,
        desc="Time a necrotic cell keeps its site before it is cleared.",
        source="PhysiCell lysed-fluid loss 8.3e-4 /min: 90 % of the volume is gone after "
        "ln(10)/8.3e-4 min = 46 h (parameters.md §1.1) [D]",
    )
    pdl1_baseline: float = P(
        0.05,
        unit="fraction of max",
        ge=0,
        le=1,
        desc="Constitutive PD-L1 level without IFN-gamma.",
        source="choice: below the 10 % detection threshold of spQSP-IO (parameters.md §3.2)",
    )
    pdl1_max: float = P(
        1.0,
        unit="fraction of max",
        ge=0,
        le=1,
        desc="PD-L1 level at saturating IFN-gamma.",
        source="normalisation",
    )
    pdl1_ifng_ec50_ng_per_mL: float = P(
        0.11,
        unit="ng/mL",
        gt=0,
        desc="IFN-gamma giving half-maximal PD-L1 induction.",
        source="spQSP-IO PD-L1 Hill EC50 (parameters.md §3.2) [V]",
    )
    pdl1_hill_power: float = P(
        1.26, unit="1", gt=0, desc="Hill power of PD-L1 induction.",
        source="spQSP-IO (parameters.md §3.2) [V]",
    )
    pdl1_rate_per_h: float = P(
        math.log(2) / 2.4,
        unit="1/h",
        ge=0,
        desc="Relaxation rate of PD-L1 toward its IFN-gamma-set level.",
        source="spQSP-IO PD-L1 half-life 0.1 d (parameters.md §3.2) [V, D]",
    )

    pgp_mean: float = P(
        0.2,
        unit="P-gp level",
        ge=0,
        desc="Mean P-gp level (1 = the MDR1-transduced line of Shen et al. 2008, whose "
        "doxorubicin accumulation is 19 % of its parent's).",
        source="choice: P-gp-low parental breast cancer; level 1 defined by Shen 2008 "
        "(parameters.md §4.2) [V]",
    )
    pgp_cv: float = P(
        0.5,
        unit="1",
        ge=0,
        le=5,
        desc="Coefficient of variation of the per-cell P-gp level (log-normal).",
        source="choice: cell-to-cell heterogeneity of ABC transporter expression",
    )
    drug_ec50_factor: float = P(
        1.0,
        unit="1",
        gt=0,
        desc="Multiplies the drug's EC50 (stem-like cells tolerate more intracellular drug).",
        source="reference cell type",
    )
    pgp_turnover_per_h: float = P(
        math.log(2) / 15.0,
        unit="1/h",
        ge=0,
        desc="Rate at which a cell's P-gp level follows its target (induction, knockdown).",
        source="P-gp protein half-life about 14-17 h in cultured cells [A]",
    )
    pgp_induction_max: float = P(
        0.0,
        unit="1",
        ge=0,
        desc="Relative rise of the P-gp target at saturating intracellular drug: the target is "
        "(1 + this) x the cell's baseline level (0: no induction).",
        source="off by default; doxorubicin induces MDR1 within days in some lines [A]",
    )
    pgp_induction_ec50_uM: float = P(
        0.5,
        unit="uM",
        gt=0,
        desc="Intracellular drug giving half the maximal P-gp induction.",
        source="choice: of the order of the kill EC50",
    )
    receptor_fraction: float = P(
        0.0,
        unit="fraction",
        ge=0,
        le=1,
        desc="Share of cells carrying the receptor of ligand-targeted nanoparticles.",
        source="per scenario (active targeting)",
    )
    growth_factor_boost: float = P(
        0.5,
        unit="1",
        ge=0,
        desc="Relative rise of the division rate at saturating growth factor (field 'egf', "
        "released by M2-like macrophages): rate x (1 + boost x G / (G + half)); 0: no response.",
        source="choice: macrophages promote breast-cancer growth in the lung through EGF "
        "(parameters.md §8.1) [A]",
    )
    growth_factor_half_ng_per_mL: float = P(
        0.05,
        unit="ng/mL",
        gt=0,
        desc="Growth factor (EGF) giving half the division-rate rise.",
        source="EGF half-maximal mitogenic dose of the order of 0.05 ng/mL (parameters.md §8.1) "
        "[A]",
    )
    quiescent_drug_factor: float = P(
        0.3,
        unit="1",
        ge=0,
        le=1,
        desc="Multiplies the drug kill hazard of quiescent (hypoxic) cells.",
        source="choice: anthracyclines kill cycling cells preferentially (pharmacology.md §7) [A]",
    )

    @model_validator(mode="after")
    def _thresholds(self):
        if self.necrosis_max_mmHg > self.necrosis_mmHg:
            raise ValueError(
                "necrosis_max_mmHg|at most necrosis_mmHg (the rate ramps up as pO2 falls)"
            )
        if self.pdl1_baseline > self.pdl1_max:
            raise ValueError("pdl1_baseline|at most pdl1_max")
        return self


class TumorConfig(CancerCellConfig):
    """Non-stem tumour cells with limited proliferative capacity."""

    initial: Placement = P(Placement(count=200, radius_um=200.0), desc="Initial tumour cells.")
    max_divisions: int = P(
        10_000,
        unit="divisions",
        ge=0,
        le=10_000,
        desc="Proliferative capacity of a tumour cell born from a stem-like cell (10000: "
        "unlimited over any run). 10 with push_distance_um 0 is the Enderling/Poleszczuk stem-"
        "cell automaton (scenarios/stem_paradox.yaml).",
        source="4T1 and MDA-MB-231 are established lines propagated indefinitely by their bulk "
        "population, and 4T1 takes in 87 % of mice from 500 cells (Gregorio et al. 2016 PLoS "
        "One): clonogenic, not a rho_max = 10 hierarchy (Enderling/Poleszczuk CA, parameters.md "
        "§2.3 [V], kept as the option) (docs/biology.md §4.3)",
    )
    death_at_division: float = P(
        0.01,
        unit="probability",
        ge=0,
        le=1,
        desc="Probability that a tumour cell dies at a division attempt.",
        source="Enderling/Poleszczuk CA, alpha = 1/100 per attempt (parameters.md §2.3) [V]",
    )
    plasticity_per_h: float = P(
        0.0,
        unit="1/h",
        ge=0,
        desc="Tumour -> stem-like conversion rate at full drive (hypoxia or TGF-beta); 0: off.",
        source="off by default; an optional hypothesis",
    )
    plasticity_tgfb_half_ng_per_mL: float = P(
        1.0, unit="ng/mL", gt=0, desc="TGF-beta giving half the plasticity drive.", source="choice"
    )


class StemConfig(CancerCellConfig):
    """Cancer-stem-like cells: unlimited divisions, symmetric or asymmetric."""

    initial: Placement = P(Placement(count=10, radius_um=100.0), desc="Initial stem-like cells.")
    symmetric_division_prob: float = P(
        0.3,
        unit="probability",
        ge=0,
        le=1,
        desc="Probability that a stem-like division yields two stem-like cells.",
        source="Enderling/Poleszczuk CA, ps = 3/10 (parameters.md §2.3) [V]",
    )
    pgp_mean: float = P(
        1.0,
        unit="P-gp level",
        ge=0,
        desc="Mean P-gp level of stem-like cells (higher than in tumour cells).",
        source="ABC transporters are raised in cancer stem-like cells (Dean, Fojo & Bates, "
        "Nat Rev Cancer 2005) [A]; level: choice",
    )
    drug_ec50_factor: float = P(
        3.0,
        unit="1",
        gt=0,
        desc="Multiplies the drug's EC50 for stem-like cells.",
        source="choice: stem-like cells are chemo-tolerant beyond efflux (Dean 2005) [A]",
    )


class Recruitment(Section):
    """Arrival of circulating cells at entry sites (capillaries, else the domain edge)."""

    base_per_h: float = P(
        0.0, unit="cells/h", ge=0, le=1e6, desc="Arrivals independent of the tumour."
    )
    per_1000_tumor_per_h: float = P(
        0.0,
        unit="cells/h per 1000 cancer cells",
        ge=0,
        le=1e6,
        desc="Arrivals per 1000 live cancer cells.",
    )
    signal: str | None = P(
        None,
        desc="A field whose local level at each free entry site draws arrivals there "
        "(per_site_per_h x H(signal; signal_half) per site); null: none.",
    )
    per_site_per_h: float = P(
        0.0,
        unit="cells/h per entry site",
        ge=0,
        le=1e6,
        desc="Arrivals per hour through one free entry site at saturating signal.",
    )
    signal_half: float = P(
        1.0, unit="field units", gt=0, desc="Signal giving half the maximal arrivals per site."
    )


class Priming(Section):
    """A lumped lymph node: antigen and danger from cancer-cell deaths prime CD8 T cells, which
    enter the tissue after their expansion (docs/biology.md §5.8)."""

    enabled: bool = P(
        True,
        desc="true: T cells arrive at the rate of the priming compartment, which replaces the "
        "burden term recruitment.per_1000_tumor_per_h (base_per_h and a recruitment signal "
        "still apply); false: the burden-proportional recruitment of docs/biology.md §5.2 "
        "(closed populations: dishes and nests without a node turn it off).",
        source="chemotherapy's deaths raise the immune response only through the node "
        "(docs/biology.md §5.8)",
    )
    danger_baseline: float = P(
        1.0, unit="1 (units of the half-maturing level)", ge=0,
        desc="Danger signal (maturation cytokines) without immunogenic death, c0 / c50.",
        source="spQSP-IO / QSP-IO c0 = c50 = 1 nM (parameters.md §3.10) [V]",
    )
    danger_decay_per_h: float = P(
        2.0 / 24.0, unit="1/h", gt=0,
        desc="Rate at which the danger signal returns to its baseline.",
        source="QSP-IO cytokine time constant k_c = 2 /day (parameters.md §3.10) [V]",
    )
    danger_per_icd_death: float = P(
        2.76e6, unit="1 per (immunogenic death / live cancer cell)", ge=0,
        desc="Rise of the danger signal (in units of c50) per immunogenic death, divided by "
        "the live cancer cells (the tumour volume it dilutes in).",
        source="QSP-IO DAMPs 1.34e-14 mol per dying cell in 1/2.06e8 mL per cancer cell, c50 "
        "1 nM (parameters.md §3.10) [V, D]",
    )
    antigen_loss_per_h: float = P(
        0.02 / 24.0, unit="1/h", gt=0,
        desc="Loss of presented antigen in the node (death of mature antigen-presenting cells).",
        source="QSP-IO mature APC death k_mAPC_death = 0.02 /day (parameters.md §3.10) [V]",
    )
    max_primed_per_h: float = P(
        40.0, unit="T cells/h", ge=0,
        desc="Primed T cells leaving the node for the blood per hour at full maturation and "
        "saturating antigen (after clonal expansion).",
        source="choice: calibrated on the untreated day-14 T-cell share of the packaged lung "
        "against MMTV-PyMT CD3+ cells (validation immune_cd8_density; parameters.md §3.10)",
    )
    antigen_half_cells: float = P(
        200.0, unit="cancer-cell equivalents", gt=0,
        desc="Presented antigen giving half the maximal priming.",
        source="choice (parameters.md §3.10)",
    )
    expansion_h: float = P(
        72.0, unit="h", gt=0,
        desc="Mean time from priming to leaving the node for the blood (clonal expansion).",
        source="2-5 divisions at 1 /day before effectors leave the node, QSP-IO (N0 = 2, "
        "N_costim = 3, k_pro = 1 /day; Marchingo et al. 2014) (parameters.md §3.10) [V, D]",
    )
    blood_loss_per_h: float = P(
        2.0 / 24.0, unit="1/h", gt=0,
        desc="Loss of circulating primed T cells to everything that is not this tumour (other "
        "tissues, death), k_out.",
        source="QSP-IO toolbox: activated T cells die at 2 /day in every compartment, blood "
        "included (Sove et al. 2020 example parameters; parameters.md §3.10) [A]",
    )
    capture_half_cells: float = P(
        10000.0, unit="live cancer cells", gt=0,
        desc="Live cancer cells at which the tumour takes half of the circulating primed T "
        "cells, k_out / q_in: a tumour of N cells takes N / (N + capture_half_cells) of them, "
        "in proportion to N when small.",
        source="choice: calibrated with max_primed_per_h (parameters.md §3.10)",
    )
    mdsc_half_per_cancer_cell: float = P(
        0.036, unit="MDSCs per live cancer cell", gt=0,
        desc="Live MDSCs per live cancer cell in the tissue that halve priming: the priming "
        "drive is multiplied by 1 / (1 + rho / mdsc_half_per_cancer_cell), rho the tissue's "
        "MDSCs per cancer cell, the proxy for the systemic MDSC load the tumour drives "
        "(docs/biology.md §5.8, §6a). No MDSCs: factor exactly 1.",
        source="choice: one MDSC per T cell (strong suppression of antigen-driven CD8 "
        "proliferation near 1:1 in co-culture; Schouppe et al. 2013, Gabrilovich & Nagaraj "
        "2009) at the calibrated untreated T-cell share 0.035 of T plus cancer cells, "
        "0.035 / 0.965 = 0.036 T cells per cancer cell (parameters.md §3.10, §8.3)",
    )


class Progenitor(Section):
    """Stem-like (TCF1+ PD-1+) progenitor CD8 T cells that self-renew and give rise to
    effectors; PD-L1 restrains their division and blockade lifts it (docs/biology.md §5.10)."""

    enabled: bool = P(
        False,
        desc="true: T cells are progenitors or effectors (column tcf1); progenitors kill "
        "little, never exhaust and divide without a budget, restrained by PD-L1, each product "
        "of their division becoming an effector with differentiation_prob; effectors kill, "
        "exhaust and divide max_divisions times whatever the PD-L1. false: every T cell is "
        "the effector of docs/biology.md §5.4 and §5.7, with PD-L1-restrained division.",
        source="false keeps the runs and validation cases made before the progenitor model",
    )
    arrival_fraction: float = P(
        0.3, unit="probability", ge=0, le=1,
        desc="Probability that an arriving (or initial) T cell is a progenitor.",
        source="TCF1+ cells are about a fifth to a third of PD-1+ tumour-specific CD8 TILs in "
        "mouse tumours, Siddiqui et al. 2019 Immunity; Miller et al. 2019 Nat Immunol "
        "(parameters.md §3.11) [A]",
    )
    division_h: float = P(
        48.0, unit="h",
        desc="Mean time between divisions of an engaged progenitor at zero effective PD-L1 "
        "(<= 0: no division).",
        source="the T-cell division interval of spQSP-IO, 2 d (parameters.md §3.2, §3.11) "
        "[V]; choice for progenitors",
    )
    differentiation_prob: float = P(
        0.5, unit="probability", ge=0, le=1,
        desc="Probability that each product of a progenitor division becomes an effector "
        "(0.5: the progenitor pool neither grows nor shrinks by division).",
        source="choice: progenitors self-renew while giving rise to effectors, Im et al. 2016 "
        "Nature; Utzschneider et al. 2016 Immunity (parameters.md §3.11)",
    )
    kill_factor: float = P(
        0.0, unit="1", ge=0, le=1,
        desc="Killing of an engaged progenitor relative to an effector's.",
        source="progenitors have little granzyme B and cytotoxicity, Siddiqui et al. 2019 "
        "Immunity; Miller et al. 2019 Nat Immunol (parameters.md §3.11) [A]",
    )


class TCellConfig(CellTypeBase):
    """CD8 T cells (tmesim/kernels/immune.py: tcell_decide)."""

    volume_um3: float = P(
        180.0, unit="um^3", gt=0, desc="Cell volume (a 7 um lymphocyte).", source="[A]"
    )
    oxygen_uptake_per_min: float = P(
        1.0,
        unit="1/min",
        ge=0,
        desc="Oxygen uptake rate.",
        source="PhysiCell cancer_immune: immune uptake 0.1 x tumour (parameters.md §3.5) [V]",
    )
    recruitment: Recruitment = P(
        Recruitment(per_1000_tumor_per_h=1.0),
        desc="Arrivals; default 1 per hour per 1000 cancer cells (a modelling choice), "
        "whose burden term applies only with priming.enabled false.",
    )
    priming: Priming = P(
        Priming(),
        desc="Arrivals primed in a lumped lymph node by antigen and danger from cancer-cell "
        "deaths, entering the tumour in proportion to its size (on by default; "
        "docs/biology.md §5.8).",
    )
    progenitor: Progenitor = P(
        Progenitor(),
        desc="Stem-like progenitor and effector T cells, PD-L1 restraining progenitor "
        "expansion (off by default; docs/biology.md §5.10).",
    )
    kill_rate_per_h: float = P(
        1.0 / 6.0,
        unit="1/h",
        ge=0,
        desc="Killing hazard of an engaged T cell at zero PD-L1 and TGF-beta, while its lytic "
        "store holds a kill.",
        source="one kill per ~6 h of contact in tumours, Breart et al. 2008 J Clin Invest "
        "(parameters.md §3.9) [V]",
    )
    lytic_store_kills: float = P(
        3.0,
        unit="kills",
        desc="Lytic granule store, in kills' worth: a kill uses one unit, which refills with "
        "lytic_recovery_h (<= 0: unlimited).",
        source="choice within the 2-16 kills per CTL per day of Halle et al. 2016 Immunity and "
        "1-20 of Weigelin et al. 2021 Nat Commun (parameters.md §3.9) [A]",
    )
    lytic_recovery_h: float = P(
        12.0,
        unit="h",
        gt=0,
        desc="Time constant with which a spent lytic store refills (exponential).",
        source="TCR triggering restarts perforin/granzyme synthesis that refills the granules, "
        "Isaaz et al. 1995 Eur J Immunol; value a choice (parameters.md §3.9) [A]",
    )
    pdl1_suppression: float = P(
        0.9,
        unit="fraction",
        ge=0,
        le=1,
        desc="Fraction of killing and of division lost against a target at full effective "
        "PD-L1 (with progenitor.enabled: of effector killing and progenitor division).",
        source="choice; Grajek 2023 suppresses fully (probability 1) (parameters.md §3.3)",
    )
    exhaustion_antigen_h: float = P(
        144.0,
        unit="h",
        desc="Hours of engagement with PD-L1-free targets that exhaust a T cell (<= 0: never "
        "exhausted); PD-L1 shortens it by exhaustion_pdl1_gain.",
        source="dysfunction after ~5-7 days of chronic antigen, Schietinger et al. 2016 "
        "Immunity; Philip et al. 2017 Nature (parameters.md §3.9) [A]",
    )
    exhaustion_spread: float = P(
        0.5,
        unit="fraction",
        ge=0,
        lt=1,
        desc="Cell-to-cell spread of the exposure that exhausts: each T cell's threshold is "
        "exhaustion_antigen_h times a fixed uniform draw in 1 +- spread.",
        source="choice: exhausted cells accumulate over days rather than at one moment, "
        "Angelosanto et al. 2012 J Virol (parameters.md §3.9) [A]",
    )
    exhaustion_pdl1_gain: float = P(
        0.0,
        unit="1",
        ge=0,
        desc="Extra exhaustion tempo at full effective PD-L1 (1: twice as fast; 0: antigen "
        "alone sets the tempo).",
        source="0: exhaustion is driven by persistent antigen, not by the tumour "
        "microenvironment (Schietinger et al. 2016 Immunity) and develops without PD-1 "
        "(Odorizzi et al. 2015 J Exp Med) (parameters.md §3.9) [A]",
    )
    division_h: float = P(
        48.0,
        unit="h",
        desc="Mean time between divisions of an engaged, active T cell at zero PD-L1 (<= 0: no "
        "division); with progenitor.enabled, of an effector, whatever the PD-L1.",
        source="spQSP-IO T-cell division interval 2 d (parameters.md §3.2) [V]",
    )
    max_divisions: int = P(
        7, unit="divisions", ge=-1,
        desc="Divisions a recruited T cell may make after engagement (-1: unlimited); with "
        "progenitor.enabled, the burst of each new effector (progenitors have no budget).",
        source="spQSP-IO T-cell division limit 7 (parameters.md §3.2) [V]",
    )
    lifespan_h: float = P(
        240.0, unit="h", gt=0, desc="Mean lifespan of an active T cell.",
        source="spQSP-IO T-cell lifespan 10 d (parameters.md §3.2) [V]",
    )
    exhausted_lifespan_h: float = P(
        48.0, unit="h", gt=0, desc="Mean remaining life of an exhausted T cell.", source="choice"
    )
    speed_um_per_min: float = P(
        1.0, unit="um/min", ge=0, desc="Migration speed (moves of one site).",
        source="PhysiCell cancer_immune immune speed 1 um/min (parameters.md §3.5) [V]",
    )
    chemotaxis_bias: float = P(
        0.2,
        unit="probability",
        ge=0,
        le=1,
        desc="Share of moves that go to the free neighbour of highest attractant "
        "(chemotaxis_field).",
        source="Kather et al. 2017 IMrwalk = 0.8 random (parameters.md §3.4) [V]",
    )
    chemotaxis_field: str = P(
        "chemokine",
        desc="The field T cells climb: 'chemokine' (the generic attractant of the packaged "
        "defaults) or e.g. 'cxcl10', the IFN-gamma-induced CXCR3 ligand of "
        "docs/biology.md §5.9.",
    )
    ecm_half: float = P(
        0.5, unit="ecm density", gt=0, desc="Matrix density that halves motility.", source="choice"
    )
    tgfb_half_ng_per_mL: float = P(
        2.0, unit="ng/mL", gt=0, desc="TGF-beta that halves killing.",
        source="TGF-beta 1-5 ng/mL suppresses CTL killing in vitro [A]",
    )
    antibody_kd_nM: float = P(
        0.4, unit="nM", gt=0, desc="Anti-PD-L1 dissociation constant (occupancy A / (A + Kd)).",
        source="atezolizumab-class affinity [A]",
    )
    secretion: dict[str, Secretion] = P(
        {},
        desc="Exchange with fields; packaged default: engaged T cells release IFN-gamma, "
        "7.64e-10 ng/s = 4.58e4 (ng/mL) um^3/min.",
        source="spQSP-IO IFN-gamma release (parameters.md §3.2) [V, D]",
    )


class MacrophageConfig(CellTypeBase):
    """Macrophages with continuous M1 <-> M2 polarisation (kernels/immune.py): resident ones
    (the initial cells) and monocyte-derived ones recruited by tumour-derived CCL2."""

    volume_um3: float = P(
        4900.0, unit="um^3", gt=0, desc="Cell volume (a 21 um macrophage).", source="[A]"
    )
    oxygen_uptake_per_min: float = P(
        1.0, unit="1/min", ge=0, desc="Oxygen uptake rate.",
        source="as immune cells in PhysiCell cancer_immune (parameters.md §3.5) [V]",
    )
    recruitment: Recruitment = P(
        Recruitment(signal="ccl2", per_site_per_h=0.006, signal_half=10.0),
        desc="Monocyte-derived arrivals; default: drawn by the field 'ccl2' at capillaries, "
        "0.006 cells/h per free capillary site at saturating CCL2, half at 10 ng/mL.",
        source="choice: about 0.5 arrivals/h per 1000 cancer cells in the baseline lung "
        "(parameters.md §8)",
    )
    initial_polarisation: float = P(
        0.4, unit="0 = M1, 1 = M2", ge=0, le=1,
        desc="Polarisation of the initial (resident) cells, and the resting state they return "
        "to without drive.",
        source="choice: homeostatic alveolar macrophages, neither inflammatory nor "
        "tumour-educated (parameters.md §8)",
    )
    recruited_polarisation: float = P(
        0.3, unit="0 = M1, 1 = M2", ge=0, le=1,
        desc="Polarisation of arriving monocyte-derived cells, and the resting state they "
        "return to without drive.",
        source="choice: inflammatory (Ly6C-high) monocytes (Qian et al. 2011) (parameters.md §8)",
    )
    relaxation_per_h: float = P(
        1 / 48, unit="1/h", ge=0,
        desc="Rate of return toward the resting polarisation (0: polarisation stays without "
        "drive).",
        source="choice: polarisation follows the current environment (Stout et al. 2005) [A]",
    )
    resident_m2_factor: float = P(
        0.5, unit="1", ge=0, le=1, desc="Multiplies the M2 rate of resident macrophages.",
        source="choice: the pro-metastatic macrophages of breast-cancer lung metastases are the "
        "recruited ones (Qian et al. 2009, 2011) (parameters.md §8)",
    )
    resident_lifespan_h: float = P(
        0.0, unit="h", ge=0,
        desc="Mean lifespan of a resident macrophage; 0: residents are not lost (their "
        "turnover is balanced by self-renewal).",
        source="alveolar macrophages persist for months without replacement from blood "
        "(Murphy et al. 2008) [A]",
    )
    phagocytosis_rate_per_h: float = P(
        0.1, unit="1/h", ge=0, desc="Killing hazard of a fully M1 cell touching a cancer cell.",
        source="choice",
    )
    to_m1_rate_per_h: float = P(
        1 / 24, unit="1/h", ge=0, desc="Polarisation rate toward M1 at saturating IFN-gamma.",
        source="repolarisation within about a day [A]",
    )
    to_m2_rate_per_h: float = P(
        1 / 24, unit="1/h", ge=0, desc="Polarisation rate toward M2 per unit M2 drive.",
        source="repolarisation within about a day [A]",
    )
    ifng_half_ng_per_mL: float = P(
        1.0, unit="ng/mL", gt=0, desc="IFN-gamma giving half the M1 drive.", source="choice"
    )
    tgfb_half_ng_per_mL: float = P(
        1.0, unit="ng/mL", gt=0, desc="TGF-beta giving half a unit of M2 drive.", source="choice"
    )
    ccl2_weight: float = P(
        1.0, unit="1", ge=0, desc="M2 drive at saturating CCL2 (field 'ccl2').",
        source="choice: CCL2 promotes M2 polarisation (Roca et al. 2009; Sierra-Filardi et al. "
        "2014) [A]",
    )
    ccl2_half_ng_per_mL: float = P(
        10.0, unit="ng/mL", gt=0, desc="CCL2 giving half its M2 drive.",
        source="choice: as the recruitment half-effect (parameters.md §8)",
    )
    hypoxia_mmHg: float = P(
        10.0, unit="mmHg", ge=0,
        desc="Below this pO2 hypoxia adds one unit of M2 drive (it stands for lactate too).",
        source="hypoxia convention (parameters.md §1.2) [A]",
    )
    contact_weight: float = P(
        1.0, unit="1", ge=0, desc="M2 drive of full contact with cancer cells.", source="choice"
    )
    lifespan_h: float = P(
        720.0, unit="h", gt=0, desc="Mean lifespan of a recruited (monocyte-derived) cell.",
        source="tissue macrophages live weeks [A]",
    )
    speed_um_per_min: float = P(
        1.0, unit="um/min", ge=0, desc="Migration speed.", source="as T cells [A]"
    )
    chemotaxis_bias: float = P(
        0.2, unit="probability", ge=0, le=1,
        desc="Share of moves up the CCL2 gradient (the chemokine field if there is no 'ccl2').",
        source="as T cells (parameters.md §3.4)",
    )
    secretion: dict[str, Secretion] = P(
        {},
        desc="Exchange with fields; packaged default: M2-like macrophages release TGF-beta and "
        "EGF (scaled by the M2 activity max(0, 2p - 1)).",
        source="choice: a dense M2/CAF region reaches about 1 ng/mL",
    )


class FibroblastConfig(CellTypeBase):
    """Fibroblasts that become cancer-associated fibroblasts (CAFs)."""

    oxygen_uptake_per_min: float = P(
        1.0, unit="1/min", ge=0, desc="Oxygen uptake rate.", source="stromal cells [A]"
    )
    initial_activation: float = P(
        0.0, unit="0 = quiescent, 1 = CAF", ge=0, le=1,
        desc="Activation of initial cells (1 models a pre-metastatic niche).", source="choice",
    )
    activation_rate_per_h: float = P(
        1 / 48, unit="1/h", ge=0, desc="Activation rate per unit drive.", source="choice"
    )
    tgfb_half_ng_per_mL: float = P(
        1.0, unit="ng/mL", gt=0, desc="TGF-beta giving half a unit of drive.", source="choice"
    )
    contact_weight: float = P(
        1.0, unit="1", ge=0, desc="Drive of full contact with cancer cells.", source="choice"
    )
    ecm_deposition_per_h: float = P(
        0.01, unit="1/h", ge=0, desc="Matrix deposition rate of a CAF at its site.",
        source="choice: matrix approaches saturation over days",
    )
    speed_um_per_min: float = P(
        0.2, unit="um/min", ge=0, desc="Migration speed.", source="fibroblasts crawl < 1 um/min [A]"
    )
    secretion: dict[str, Secretion] = P(
        {},
        desc="Exchange with fields; packaged default: CAFs release TGF-beta (scaled by "
        "activation).",
        source="choice: as M2 macrophages",
    )


class MDSCConfig(CellTypeBase):
    """Granulocytic myeloid-derived suppressor cells (PMN-MDSCs, tumour-recruited neutrophils;
    kernels/myeloid.py): recruited from capillaries by a tumour-derived chemokine, they climb its
    gradient (field 'cxcl1') and suppress T-cell killing through what they release: TGF-beta by
    default, and in scenarios/mdsc_targeting.yaml a contact-range signal 'ros' that a T-cell rule
    reads (docs/biology.md §6a). Off by default: no initial cells, no recruitment."""

    volume_um3: float = P(
        500.0, unit="um^3", gt=0, desc="Cell volume (a 10 um granulocyte).",
        source="mouse neutrophil diameter about 10 um (parameters.md §8.3) [A]",
    )
    oxygen_uptake_per_min: float = P(
        1.0, unit="1/min", ge=0, desc="Oxygen uptake rate.",
        source="as immune cells in PhysiCell cancer_immune (parameters.md §3.5) [V]",
    )
    recruitment: Recruitment = P(
        Recruitment(),
        desc="Arrivals from the blood; default none. A scenario that models MDSCs names the "
        "tumour-derived chemokine as the signal (e.g. signal: cxcl1, per_site_per_h, "
        "signal_half), as macrophages are drawn by CCL2.",
        source="off by default; G-CSF/CXCL1-type tumour signals draw Ly6G+ granulocytes to the "
        "(pre-)metastatic lung (Kowanetz et al. 2010 PNAS) (parameters.md §8.3)",
    )
    lifespan_h: float = P(
        24.0, unit="h", gt=0,
        desc="Mean lifespan in tissue (death hazard 1 / lifespan, raised by rules on "
        "death_rate, e.g. a depleting antibody).",
        source="neutrophils and PMN-MDSCs live hours to a few days; MDSCs shorter than "
        "neutrophils in tumour-bearing mice (Condamine et al. 2014 J Clin Invest); 24 h: choice "
        "within that range (parameters.md §8.3)",
    )
    speed_um_per_min: float = P(
        3.0, unit="um/min", ge=0,
        desc="Migration speed (moves of one site; at most one site per agent step).",
        source="choice: neutrophils crawl faster than T cells in tissue; 3 um/min is near the "
        "lattice's limit of one 20 um site per 6-min step (parameters.md §8.3)",
    )
    chemotaxis_bias: float = P(
        0.5, unit="probability", ge=0, le=1,
        desc="Share of moves up the gradient of the field 'cxcl1' (CXCR2 chemotaxis).",
        source="choice: stronger than the T cells' 0.2 (neutrophils home by CXCR2 chemotaxis) "
        "(parameters.md §8.3)",
    )
    secretion: dict[str, Secretion] = P(
        {},
        desc="Exchange with fields; packaged default: MDSCs release TGF-beta, which the T-cell "
        "kernel reads (cells.tcell.tgfb_half_ng_per_mL halves killing).",
        source="TGF-beta is one suppressive mechanism of MDSCs (Gabrilovich & Nagaraj 2009 Nat "
        "Rev Immunol); rate: choice, as M2 macrophages (parameters.md §8.3)",
    )


class CellsConfig(Section):
    """Cell populations."""

    tumor: TumorConfig = P(TumorConfig(), desc="Tumour cells.")
    stem: StemConfig = P(StemConfig(), desc="Cancer-stem-like cells.")
    tcell: TCellConfig = P(TCellConfig(), desc="CD8 T cells.")
    macrophage: MacrophageConfig = P(MacrophageConfig(), desc="Macrophages.")
    fibroblast: FibroblastConfig = P(FibroblastConfig(), desc="Fibroblasts / CAFs.")
    mdsc: MDSCConfig = P(MDSCConfig(), desc="Granulocytic MDSCs (off by default).")

    @model_validator(mode="after")
    def _hypoxic_release_of_cancer_cells_only(self):
        # the hypoxic factor applies to kinds whose release is not scaled by an activity of
        # their own (kernels.lattice.exchange_maps): the cancer cells
        for kname in (k.name for k in kinds.all_kinds() if k.section and k.activity != "plain"):
            for fname, sec in getattr(self, kname).secretion.items():
                if sec.hypoxic_release_factor != 1.0:
                    raise ValueError(
                        f"{kname}.secretion.{fname}.hypoxic_release_factor|1 (only tumour and "
                        "stem-like cells release more when hypoxic)"
                    )
        return self


BEHAVIOURS = Literal["division_rate", "migration_rate", "death_rate", "kill_rate"]
#: the kinds a rule can name: those of the kind registry with a scenario section
CELL_NAMES = Literal[tuple(k.name for k in kinds.all_kinds() if k.section)]
#: behaviour -> the kinds whose decide kernel applies rules to it (``rules`` of each kind)
_ALLOWED = {
    b: tuple(k.name for k in kinds.all_kinds() if b in k.rules)
    for b in BEHAVIOURS.__args__
}


class Rule(Section):
    """A signal -> behaviour rule in Hill form (kernels/rules.py)."""

    cell: CELL_NAMES = P(..., desc="Cell type the rule acts on.")
    signal: str = P(..., desc="A field name, or 'pdl1' (the cell's own PD-L1 level).")
    direction: Literal["increases", "decreases"] = P(..., desc="Effect of a rising signal.")
    behaviour: BEHAVIOURS = P(..., desc="The behaviour changed (all in 1/h).")
    max: float = P(..., unit="1/h", ge=0, desc="Behaviour value at saturating signal.")
    half_max: float = P(..., unit="signal units", gt=0, desc="Signal at half effect.")
    hill_power: float = P(1.0, unit="1", gt=0, desc="Hill power.")

    @model_validator(mode="after")
    def _applicable(self):
        allowed = _ALLOWED[self.behaviour]
        if self.cell not in allowed:
            raise ValueError(f"behaviour|a behaviour of {self.cell} cells; {self.behaviour} "
                             f"applies to {', '.join(allowed)}")
        return self
