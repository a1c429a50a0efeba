"""Stem-like cancer cells: unlimited divisions, symmetric or asymmetric.

They decide in the tumour cells' kernel (:mod:`.tumour`), so this kind has no decide hook of
its own. Parameters: ``cells.stem``.
"""

from __future__ import annotations

from ..kernels import codes
from . import Kind, Look
from .tumour import NECROTIC

KIND = Kind(
    code=codes.STEM,
    name="stem",
    label="stem-like",
    short="stem",
    looks=(
        Look("stem-like", "#AA3377", (codes.PROLIFERATING, codes.QUIESCENT)),
        NECROTIC,
    ),
)
