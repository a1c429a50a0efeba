"""CD8 T cells: recruited from the blood, they kill cancer cells from a lytic store that refills,
divide while engaged and become exhausted by days of antigen (``state`` QUIESCENT marks
exhaustion); with ``cells.tcell.progenitor`` on, stem-like progenitors (column ``tcf1``)
self-renew and give rise to the effectors. Parameters: ``cells.tcell``, packed into ``t_par``."""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look

#: random-stream purposes of the arrivals: uniform over the entry sites, drawn by a signal
PURPOSE_RECRUIT = 60
PURPOSE_SIGNAL = 63


def pack(dyn) -> None:
    """``cells.tcell`` into ``dyn.t_par`` (the antibody's affinity only while it is dosed)."""
    import numpy as np

    from ..kernels import immune as ki

    t = dyn.sc.cells.tcell
    tp = np.zeros(ki.T_NPARAMS)
    tp[ki.T_KILL_RATE] = t.kill_rate_per_h
    tp[ki.T_PDL1_SUPPRESSION] = t.pdl1_suppression
    tp[ki.T_EXHAUSTION_H] = t.exhaustion_antigen_h
    tp[ki.T_PDL1_EXHAUSTION_GAIN] = t.exhaustion_pdl1_gain
    tp[ki.T_EXHAUSTION_SPREAD] = t.exhaustion_spread
    tp[ki.T_LYTIC_STORE] = t.lytic_store_kills
    tp[ki.T_LYTIC_RECOVERY_H] = t.lytic_recovery_h
    tp[ki.T_DIVISION_RATE] = 1.0 / t.division_h if t.division_h > 0 else 0.0
    tp[ki.T_LIFESPAN] = t.lifespan_h
    tp[ki.T_EXHAUSTED_LIFESPAN] = t.exhausted_lifespan_h
    tp[ki.T_MIGRATION_RATE] = dyn.moves_per_h(t.speed_um_per_min)
    tp[ki.T_CHEMOTAXIS_BIAS] = t.chemotaxis_bias
    tp[ki.T_ECM_HALF] = t.ecm_half
    tp[ki.T_TGFB_HALF] = t.tgfb_half_ng_per_mL
    tp[ki.T_ANTIBODY_KD] = t.antibody_kd_nM if dyn.antibody in dyn.fields.index else 0.0
    # on the small-cell layer when sites are shared (docs/biology.md §4.10)
    tp[ki.T_SHARES_SITE] = 1.0 if codes.TCELL in dyn.cells.small_kinds else 0.0
    pg = t.progenitor
    if pg.enabled:  # stem-like progenitors and effectors (biology.md §5.10)
        tp[ki.T_PROGENITOR] = 1.0
        tp[ki.T_ARRIVAL_PROGENITOR] = pg.arrival_fraction
        tp[ki.T_PROGENITOR_DIVISION_RATE] = 1.0 / pg.division_h if pg.division_h > 0 else 0.0
        tp[ki.T_DIFFERENTIATION_PROB] = pg.differentiation_prob
        tp[ki.T_PROGENITOR_KILL_FACTOR] = pg.kill_factor
        tp[ki.T_EFFECTOR_DIVISIONS] = t.max_divisions
    dyn.t_par = tp


def place(dyn, rng) -> None:
    """The initial T cells, each with its full lytic store and budget of divisions."""
    dyn.place_initial(codes.TCELL, "tcell", rng, dyn.sc.cells.tcell.max_divisions)


def arrivals(dyn):
    """T cells arrive active and unexposed, with a full lytic store and budget of divisions."""
    t = dyn.sc.cells.tcell
    return t.recruitment, (PURPOSE_RECRUIT, PURPOSE_SIGNAL), t.max_divisions, 0.0


def decide(dyn):
    """T cells decide (:func:`tmesim.kernels.immune.tcell_decide`)."""
    from ..kernels import agents as ka
    from ..kernels.immune import tcell_decide

    # the attractant T cells climb (cells.tcell.chemotaxis_field; biology.md §5.5, §5.9)
    attractant = dyn.sc.cells.tcell.chemotaxis_field
    generic = attractant == "chemokine"

    def step(n, arrays, lattice, views, keys, intents):
        chemo = views[ka.V_CHEMOKINE] if generic else dyn._field(attractant)
        tcell_decide(n, arrays, lattice, chemo, views[ka.V_TGFB], views[ka.V_ECM],
                     views[ka.V_ANTIBODY], views[ka.V_ALL], dyn.t_par, dyn.rules, keys, intents)

    return step


KIND = Kind(
    code=codes.TCELL,
    name="tcell",
    label="T cell",
    short="T",
    looks=(
        Look("T cell, active", "#0072B2", (codes.PROLIFERATING,)),
        Look("T cell, exhausted", "#56B4E9", (codes.QUIESCENT,)),
    ),
    decide=decide,
    lap="tcell_decide",
    rules=("division_rate", "migration_rate", "death_rate", "kill_rate"),
    activity="engagement",
    # ~7 um across, 200-300 um^3 against 2,500 um^3 for a cancer cell and 8,000 um^3 for a site:
    # with domain.small_cells_share_sites a T cell may share a site with a large cell (§4.10)
    small=True,
    pack=pack,
    place=place,
    place_rank=2,
    arrivals=arrivals,
)
