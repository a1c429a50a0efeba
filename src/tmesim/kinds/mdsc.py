"""Granulocytic myeloid-derived suppressor cells (PMN-MDSCs, tumour-recruited neutrophils):
off by default; recruited from perfused capillaries by a tumour-derived chemokine (field
``cxcl1``), they climb its gradient, live hours to days, and suppress T cells through what they
release (TGF-beta; a contact-range ``ros`` field read by a T-cell rule in
``scenarios/mdsc_targeting.yaml``). Parameters: ``cells.mdsc``, packed into ``md_par``."""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look

#: the tumour-derived chemokine (G-CSF/CXCL1-type signal) that MDSCs climb (docs/biology.md §6a)
CXCL1_FIELD = "cxcl1"

#: random-stream purposes of the arrivals: uniform over the entry sites, drawn by a signal
PURPOSE_RECRUIT = 65
PURPOSE_SIGNAL = 66


def pack(dyn) -> None:
    """``cells.mdsc`` into ``dyn.md_par``."""
    import numpy as np

    from ..kernels import myeloid as km

    m = dyn.sc.cells.mdsc
    p = np.zeros(km.MD_NPARAMS)
    p[km.MD_LIFESPAN] = m.lifespan_h
    p[km.MD_MIGRATION_RATE] = dyn.moves_per_h(m.speed_um_per_min)
    p[km.MD_CHEMOTAXIS_BIAS] = m.chemotaxis_bias
    dyn.md_par = p


def place(dyn, rng) -> None:
    """The initial MDSCs (none by default)."""
    dyn.place_initial(codes.MDSC, "mdsc", rng, 0)


def arrivals(dyn):
    """MDSCs arrive from the blood with no division budget."""
    return dyn.sc.cells.mdsc.recruitment, (PURPOSE_RECRUIT, PURPOSE_SIGNAL), 0, 0.0


def decide(dyn):
    """MDSCs decide (:func:`tmesim.kernels.myeloid.mdsc_decide`), climbing ``cxcl1``."""
    from ..kernels.agents import V_ALL
    from ..kernels.myeloid import mdsc_decide

    def step(n, arrays, lattice, views, keys, intents):
        mdsc_decide(n, arrays, lattice, dyn._field(CXCL1_FIELD), views[V_ALL], dyn.md_par,
                    dyn.rules, keys, intents)

    return step


KIND = Kind(
    code=codes.MDSC,
    name="mdsc",
    label="MDSC",
    short="MDSC",
    looks=(Look("MDSC (granulocytic)", "#F0E442", (codes.PROLIFERATING,)),),
    decide=decide,
    lap="mdsc_decide",
    rules=("migration_rate", "death_rate"),
    activity="plain",
    pack=pack,
    place=place,
    place_rank=5,
    arrivals=arrivals,
)
