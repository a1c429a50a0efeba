"""Macrophages: resident at the start, monocyte-derived when recruited; their polarisation
(``phenotype``) runs from M1 (0) to M2 (1), ``state`` QUIESCENT marks M2, and ``aux`` is 1 for
the resident ones. Parameters: ``cells.macrophage``, packed into ``m_par``."""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look

#: random-stream purposes of the arrivals: uniform over the entry sites, drawn by a signal
PURPOSE_RECRUIT = 61
PURPOSE_SIGNAL = 64


def pack(dyn) -> None:
    """``cells.macrophage`` into ``dyn.m_par``."""
    import numpy as np

    from ..kernels import immune as ki

    m = dyn.sc.cells.macrophage
    mp = np.zeros(ki.M_NPARAMS)
    mp[ki.M_PHAGOCYTOSIS_RATE] = m.phagocytosis_rate_per_h
    mp[ki.M_TO_M1_RATE] = m.to_m1_rate_per_h
    mp[ki.M_TO_M2_RATE] = m.to_m2_rate_per_h
    mp[ki.M_IFNG_HALF] = m.ifng_half_ng_per_mL
    mp[ki.M_TGFB_HALF] = m.tgfb_half_ng_per_mL
    mp[ki.M_HYPOXIA_MMHG] = m.hypoxia_mmHg
    mp[ki.M_CONTACT_WEIGHT] = m.contact_weight
    mp[ki.M_LIFESPAN] = m.lifespan_h
    mp[ki.M_MIGRATION_RATE] = dyn.moves_per_h(m.speed_um_per_min)
    mp[ki.M_CHEMOTAXIS_BIAS] = m.chemotaxis_bias
    mp[ki.M_CCL2_WEIGHT] = m.ccl2_weight
    mp[ki.M_CCL2_HALF] = m.ccl2_half_ng_per_mL
    mp[ki.M_RELAXATION_RATE] = m.relaxation_per_h
    mp[ki.M_RECRUITED_REST] = m.recruited_polarisation
    mp[ki.M_RESIDENT_REST] = m.initial_polarisation
    mp[ki.M_RESIDENT_M2_FACTOR] = m.resident_m2_factor
    mp[ki.M_RESIDENT_LIFESPAN] = m.resident_lifespan_h
    dyn.m_par = mp


def place(dyn, rng) -> None:
    """The initial macrophages are the resident ones (``aux`` 1), at their initial
    polarisation."""
    m = dyn.sc.cells.macrophage
    cells = dyn.cells
    rows = dyn.place_initial(codes.MACROPHAGE, "macrophage", rng, 0)
    cells.column("phenotype")[rows] = m.initial_polarisation
    cells.column("aux")[rows] = 1.0
    cells.state[rows] = codes.QUIESCENT if m.initial_polarisation > 0.5 else 0


def arrivals(dyn):
    """Monocyte-derived macrophages arrive at their recruited polarisation."""
    m = dyn.sc.cells.macrophage
    return m.recruitment, (PURPOSE_RECRUIT, PURPOSE_SIGNAL), 0, m.recruited_polarisation


def decide(dyn):
    """Macrophages decide (:func:`tmesim.kernels.immune.macrophage_decide`)."""
    from ..kernels.immune import macrophage_decide

    def step(n, arrays, lattice, views, keys, intents):
        macrophage_decide(n, arrays, lattice, views, dyn.m_par, dyn.rules, keys, intents)

    return step


KIND = Kind(
    code=codes.MACROPHAGE,
    name="macrophage",
    label="macrophage",
    short="mac",
    looks=(
        Look("macrophage M1", "#009E73", (codes.PROLIFERATING,)),
        Look("macrophage M2", "#A6D96A", (codes.QUIESCENT,)),
    ),
    decide=decide,
    lap="macrophage_decide",
    rules=("migration_rate", "death_rate", "kill_rate"),
    activity="m2",
    pack=pack,
    place=place,
    place_rank=3,
    arrivals=arrivals,
)
