"""Macrophages: resident at the start, monocyte-derived when recruited; their polarisation
(``phenotype``) runs from M1 (0) to M2 (1), ``state`` QUIESCENT marks M2. Parameters:
``cells.macrophage``, packed into ``m_par`` (:class:`tmesim.behaviour.CellDynamics`)."""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look


def decide(dyn, n, arrays, lattice, views, keys, intents) -> None:
    """Macrophages decide (:func:`tmesim.kernels.immune.macrophage_decide`)."""
    from ..kernels import immune as ki

    oxygen, ifng, tgfb, _chemo, _ecm, _antibody, ccl2, m_chemo, fields2d = views
    ki.macrophage_decide(n, arrays, lattice, m_chemo, ifng, tgfb, oxygen, ccl2, fields2d,
                         dyn.m_par, dyn.rules, keys, intents)


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
)
