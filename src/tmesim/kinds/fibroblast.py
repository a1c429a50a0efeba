"""Fibroblasts: activated to cancer-associated fibroblasts (CAFs) by TGF-beta and contact
(``phenotype`` is the activation, ``state`` QUIESCENT marks a CAF), which lay down matrix.
Parameters: ``cells.fibroblast``, packed into ``f_par``."""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look


def pack(dyn) -> None:
    """``cells.fibroblast`` into ``dyn.f_par``."""
    import numpy as np

    from ..kernels import immune as ki

    f = dyn.sc.cells.fibroblast
    fp = np.zeros(ki.F_NPARAMS)
    fp[ki.F_ACTIVATION_RATE] = f.activation_rate_per_h
    fp[ki.F_TGFB_HALF] = f.tgfb_half_ng_per_mL
    fp[ki.F_CONTACT_WEIGHT] = f.contact_weight
    fp[ki.F_ECM_DEPOSITION] = f.ecm_deposition_per_h
    fp[ki.F_MIGRATION_RATE] = dyn.moves_per_h(f.speed_um_per_min)
    dyn.f_par = fp


def place(dyn, rng) -> None:
    """The initial fibroblasts, at their initial activation."""
    f = dyn.sc.cells.fibroblast
    cells = dyn.cells
    rows = dyn.place_initial(codes.FIBROBLAST, "fibroblast", rng, 0)
    cells.column("phenotype")[rows] = f.initial_activation
    cells.state[rows] = codes.QUIESCENT if f.initial_activation > 0.5 else 0


def decide(dyn):
    """Fibroblasts decide (:func:`tmesim.kernels.immune.fibroblast_decide`)."""
    from ..kernels.agents import V_ECM, V_TGFB
    from ..kernels.immune import fibroblast_decide

    def step(n, arrays, lattice, views, keys, intents):
        fibroblast_decide(n, arrays, lattice, views[V_TGFB], views[V_ECM], dyn.f_par, keys,
                          intents)

    return step


KIND = Kind(
    code=codes.FIBROBLAST,
    name="fibroblast",
    label="fibroblast",
    short="fib",
    looks=(
        Look("fibroblast", "#6B4226", (codes.PROLIFERATING,)),
        Look("CAF", "#1F1F7A", (codes.QUIESCENT,)),
    ),
    decide=decide,
    lap="fibroblast_decide",
    activity="activation",
    pack=pack,
    place=place,
    place_rank=4,
)
