"""Replicated ensembles: compare scenarios and sweep parameters, locally or on a Dask cluster.

>>> from tmesim.ensemble import compare                                   # doctest: +SKIP
>>> res = compare(["scenarios/tiny.yaml", "variant.yaml"], 5, "ens/")     # doctest: +SKIP
>>> print(res.table)                                                      # doctest: +SKIP

See docs/cluster.md for the executors (local processes, Dask, SLURM) and the file layout.
"""

from .compare import EnsembleResult, compare, parse_params, sweep
from .seeds import replicate_seed, replicate_seeds

__all__ = [
    "EnsembleResult",
    "compare",
    "parse_params",
    "replicate_seed",
    "replicate_seeds",
    "sweep",
]
