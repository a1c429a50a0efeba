"""Tumour cells: the non-stem cancer cells, with a limited division budget.

Their decide kernel, :func:`tmesim.kernels.cancer.cancer_decide`, decides for stem-like cells
too (one pass over all cancer cells, PD-L1 relaxation first), so it runs when either kind is
present. Parameters: ``cells.tumor``, packed into the tumour row of ``cancer_par``
(:func:`pack_cancer` packs what the two cancer kinds share).
"""

from __future__ import annotations

import math

from ..kernels import codes
from . import Kind, Look

#: the look of necrotic cancer cells, shared with stem-like cells
NECROTIC = Look("necrotic", "#3B3B3B", (codes.NECROTIC,))
#: the field whose concentration raises the division rate of cancer cells (growth support by
#: M2-like macrophages, docs/biology.md §4.7); absent from a scenario, it has no effect
GROWTH_FIELD = "egf"


def pack_cancer(dyn, code: int, cfg) -> None:
    """The parameters both cancer kinds have, from their section ``cfg``, into row ``code`` of
    ``dyn.cancer_par``."""
    from ..kernels import cancer as kc

    par = dyn.cancer_par
    k = code
    par[k, kc.C_DIVISION_RATE] = cfg.division_rate_per_h
    par[k, kc.C_MIGRATION_RATE] = cfg.migration_rate_per_h
    par[k, kc.C_HYPOXIA] = cfg.hypoxia_mmHg
    par[k, kc.C_NECROSIS] = cfg.necrosis_mmHg
    par[k, kc.C_NECROSIS_MAX] = cfg.necrosis_max_mmHg
    par[k, kc.C_NECROSIS_RATE] = cfg.necrosis_max_per_h
    par[k, kc.C_LYSIS] = cfg.lysis_h
    par[k, kc.C_DEATH_RATE] = cfg.death_rate_per_h
    par[k, kc.C_QUIESCENT_DRUG_FACTOR] = cfg.quiescent_drug_factor
    # how the hazards of several drugs combine (docs/pharmacology.md §7.1)
    par[k, kc.C_DRUG_COMBINATION] = {"bliss": kc.COMBINE_BLISS, "highest_single_agent":
                                     kc.COMBINE_HIGHEST}[dyn.sc.drug_combination]
    # the kind's response to each dosed drug, a block of columns per drug (kernels.cancer.D_*)
    for j, name in enumerate(dyn.drugs):
        d = dyn.sc.agents[name]
        c0 = kc.C_NPARAMS + j * kc.D_NCOLS
        # a binding drug kills through its damage, any other through free drug
        bind = d.dna_binding_max_uM > 0.0 or d.retention_max_uM > 0.0
        par[k, c0 + kc.D_ROW] = dyn.cells.agent_rows[name]["damage" if bind else "drug"]
        par[k, c0 + kc.D_EMAX] = d.emax_per_h
        par[k, c0 + kc.D_EC50] = (d.damage_ec50_uM_h if bind else d.ec50_uM) * cfg.drug_ec50_factor
        par[k, c0 + kc.D_HILL] = d.hill
        par[k, c0 + kc.D_IMMUNOGENIC] = d.immunogenic
    par[k, kc.C_PDL1_BASE] = cfg.pdl1_baseline
    par[k, kc.C_PDL1_MAX] = cfg.pdl1_max
    par[k, kc.C_PDL1_EC50] = cfg.pdl1_ifng_ec50_ng_per_mL
    par[k, kc.C_PDL1_HILL] = cfg.pdl1_hill_power
    par[k, kc.C_PDL1_RATE] = cfg.pdl1_rate_per_h
    # growth support by M2 macrophages: the 'egf' field, if the scenario has it
    par[k, kc.C_GF_FIELD] = dyn.fields.index.get(GROWTH_FIELD, -1)
    par[k, kc.C_GF_BOOST] = cfg.growth_factor_boost
    par[k, kc.C_GF_HALF] = cfg.growth_factor_half_ng_per_mL
    par[k, kc.C_PUSH] = math.floor(cfg.push_distance_um / dyn.sc.domain.voxel_um + 1e-9)


def place_cancer(dyn, code: int, name: str, rng, div: int) -> None:
    """Place the initial cells of cancer kind ``code`` (section ``name``): PD-L1 at its baseline,
    P-gp levels drawn from the P-gp stream (``dyn.pgp_rng``)."""
    from ..behaviour import pgp_levels
    from ..kernels import cancer as kc

    cells = dyn.cells
    rows = dyn.place_initial(code, name, rng, div)
    cells.column("pdl1")[rows] = dyn.cancer_par[code, kc.C_PDL1_BASE]
    cfg = getattr(dyn.sc.cells, name)
    cells.column("pgp")[rows] = pgp_levels(len(rows), cfg.pgp_mean, cfg.pgp_cv, dyn.pgp_rng)
    cells.column("pgp_base")[rows] = cells.column("pgp")[rows]


def pack(dyn) -> None:
    """``cells.tumor`` into the tumour row of ``dyn.cancer_par``."""
    from ..kernels import cancer as kc

    t = dyn.sc.cells.tumor
    pack_cancer(dyn, codes.TUMOR, t)
    par = dyn.cancer_par
    par[codes.TUMOR, kc.C_DEATH_AT_DIVISION] = t.death_at_division
    par[codes.TUMOR, kc.C_MAX_DIVISIONS] = t.max_divisions
    par[codes.TUMOR, kc.C_PLASTICITY_RATE] = t.plasticity_per_h
    par[codes.TUMOR, kc.C_PLASTICITY_TGFB_HALF] = t.plasticity_tgfb_half_ng_per_mL


def place(dyn, rng) -> None:
    """The initial tumour cells, each with the full division budget."""
    place_cancer(dyn, codes.TUMOR, "tumor", rng, dyn.sc.cells.tumor.max_divisions)


def decide(dyn):
    """Tumour and stem-like cells decide (:func:`tmesim.kernels.cancer.cancer_decide`)."""
    from ..kernels.cancer import cancer_decide

    def step(n, arrays, lattice, views, keys, intents):
        cancer_decide(n, arrays, lattice, views, dyn.cancer_par, dyn.rules, keys, intents)

    return step


KIND = Kind(
    code=codes.TUMOR,
    name="tumor",
    label="tumour",
    short="tumour",
    looks=(
        Look("tumour", "#D55E00", (codes.PROLIFERATING,)),
        Look("tumour, hypoxic", "#E69F00", (codes.QUIESCENT,)),
        NECROTIC,
    ),
    decide=decide,
    decides_for=(codes.TUMOR, codes.STEM),
    lap="cancer_decide (with PD-L1)",
    rules=("division_rate", "migration_rate", "death_rate"),
    pack=pack,
    place=place,
    place_rank=1,
)
