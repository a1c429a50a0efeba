"""CD8 T cells: recruited from the blood, they kill cancer cells and become exhausted
(``state`` QUIESCENT marks exhaustion). Parameters: ``cells.tcell``, packed into ``t_par``
(:class:`tmesim.behaviour.CellDynamics`)."""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look


def decide(dyn, n, arrays, lattice, views, keys, intents) -> None:
    """T cells decide (:func:`tmesim.kernels.immune.tcell_decide`)."""
    from ..kernels import immune as ki

    _oxygen, _ifng, tgfb, chemo, ecm, antibody, _ccl2, _m_chemo, fields2d = views
    ki.tcell_decide(n, arrays, lattice, chemo, tgfb, ecm, antibody, fields2d, dyn.t_par,
                    dyn.rules, keys, intents)


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
)
