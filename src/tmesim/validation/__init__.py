"""Validation against published experiments (``validation/`` and ``docs/validation.md``).

>>> from tmesim.validation import run_validation                       # doctest: +SKIP
>>> results = run_validation("validation", quick=True, write=False)    # doctest: +SKIP
>>> [(r.case.name, r.status) for r in results]                         # doctest: +SKIP

:mod:`.cases` reads the case folders, :mod:`.metrics` holds the named read-outs,
:mod:`.runner` replicates and compares, :mod:`.figures` draws and :mod:`.report` writes the page.
"""

from .cases import Case, load_case, load_cases
from .metrics import METRICS, Measurement, RunData
from .report import render, write_docs
from .runner import CaseResult, evaluate, run_validation

__all__ = [
    "METRICS",
    "Case",
    "CaseResult",
    "Measurement",
    "RunData",
    "evaluate",
    "load_case",
    "load_cases",
    "render",
    "run_validation",
    "write_docs",
]
