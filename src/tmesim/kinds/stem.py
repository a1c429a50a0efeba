"""Stem-like cancer cells: unlimited divisions, symmetric or asymmetric.

They decide in the tumour cells' kernel (:mod:`.tumour`), so this kind has no decide hook of
its own. Parameters: ``cells.stem``, packed into the stem-like row of ``cancer_par``.
"""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look
from .tumour import NECROTIC, pack_cancer, place_cancer


def pack(dyn) -> None:
    """``cells.stem`` into the stem-like row of ``dyn.cancer_par``."""
    from ..kernels import cancer as kc

    s = dyn.sc.cells.stem
    pack_cancer(dyn, codes.STEM, s)
    dyn.cancer_par[codes.STEM, kc.C_SYMMETRIC] = s.symmetric_division_prob


def place(dyn, rng) -> None:
    """The initial stem-like cells (the first kind placed); a stem-like cell has no budget."""
    place_cancer(dyn, codes.STEM, "stem", rng, 0)


KIND = Kind(
    code=codes.STEM,
    name="stem",
    label="stem-like",
    short="stem",
    looks=(
        Look("stem-like", "#AA3377", (codes.PROLIFERATING, codes.QUIESCENT)),
        NECROTIC,
    ),
    rules=("division_rate", "migration_rate", "death_rate"),
    pack=pack,
    place=place,
    place_rank=0,
)
