"""Tumour cells: the non-stem cancer cells, with a limited division budget.

Their decide kernel, :func:`tmesim.kernels.cancer.cancer_decide`, decides for stem-like cells
too (one pass over all cancer cells, PD-L1 relaxation first), so it runs when either kind is
present. Parameters: ``cells.tumor`` (packed with the stem-like ones by
:class:`tmesim.behaviour.CellDynamics` into ``cancer_par``).
"""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look

#: the look of necrotic cancer cells, shared with stem-like cells
NECROTIC = Look("necrotic", "#3B3B3B", (codes.NECROTIC,))


def decide(dyn, n, arrays, lattice, views, keys, intents) -> None:
    """Tumour and stem-like cells decide (:func:`tmesim.kernels.cancer.cancer_decide`)."""
    from ..kernels import cancer as kc

    oxygen, ifng, tgfb, _chemo, _ecm, _antibody, _ccl2, _m_chemo, fields2d = views
    kc.cancer_decide(n, arrays, lattice, oxygen, tgfb, ifng, fields2d, dyn.cancer_par,
                     dyn.rules, keys, intents)


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
)
