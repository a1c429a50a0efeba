"""Fibroblasts: activated to cancer-associated fibroblasts (CAFs) by TGF-beta and contact
(``phenotype`` is the activation, ``state`` QUIESCENT marks a CAF), which lay down matrix.
Parameters: ``cells.fibroblast``, packed into ``f_par`` (:class:`tmesim.behaviour.CellDynamics`)."""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look


def decide(dyn, n, arrays, lattice, views, keys, intents) -> None:
    """Fibroblasts decide (:func:`tmesim.kernels.immune.fibroblast_decide`)."""
    from ..kernels import immune as ki

    _oxygen, _ifng, tgfb, _chemo, ecm, _antibody, _ccl2, _m_chemo, _fields2d = views
    ki.fibroblast_decide(n, arrays, lattice, tgfb, ecm, dyn.f_par, keys, intents)


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
)
