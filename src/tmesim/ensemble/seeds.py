"""Per-replicate seeds, derived deterministically from one base seed.

The seed of replicate ``k`` of group ``label`` (a scenario's label in ``tmesim compare``, a grid
point's label in ``tmesim sweep``) is::

    SeedSequence(entropy=base_seed, spawn_key=(crc32(label), k)).generate_state(1, uint64)[0] >> 1

i.e. the ``k``-th child stream of the ``label``-th child of ``SeedSequence(base_seed)``, reduced
to 63 bits (the scenario schema accepts ``0 <= seed < 2**63``). It depends only on
``(base_seed, label, k)``: not on the executor, the number of workers, the order in which
replicates finish, or how many replicates are requested (replicate 3 of a 5-replicate run is
replicate 3 of a 10-replicate run). Different labels get independent streams, so scenarios are
compared as independent samples (what the Mann-Whitney test assumes).

Paired designs (``--paired``, common random numbers) use one label, :data:`PAIRED_LABEL`, for
every scenario: replicate ``k`` of each scenario then has the same seed, hence the same lung,
the same initial cells and the same random draws for as long as the scenarios agree.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import UsageError

#: the label of every group in a paired design
PAIRED_LABEL = "paired"

SEED_SCHEME = (
    "SeedSequence(entropy=base_seed, spawn_key=(crc32(label), k)).generate_state(1, uint64)[0] >> 1"
)


def check_base_seed(base_seed) -> int:
    """Return ``base_seed`` as an int, or raise a UsageError."""
    try:
        value = int(base_seed)
    except (TypeError, ValueError):
        value = -1
    if value < 0 or value >= 2**63 or value != base_seed:
        raise UsageError(
            f"the base seed must be an integer from 0 to 2**63 - 1, got {base_seed!r}\n"
            "  fix: pass e.g. --seed 0"
        )
    return value


def label_key(label: str) -> int:
    """A stable 32-bit key of a group label (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(str(label).encode("utf-8")) & 0xFFFFFFFF


def replicate_seed(base_seed: int, label: str, index: int) -> int:
    """The seed of replicate ``index`` of group ``label`` (see the module docstring)."""
    base_seed = check_base_seed(base_seed)
    ss = np.random.SeedSequence(entropy=base_seed, spawn_key=(label_key(label), int(index)))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def replicate_seeds(base_seed: int, label: str, n: int) -> list[int]:
    """Seeds of replicates ``0 .. n-1`` of group ``label``."""
    return [replicate_seed(base_seed, label, k) for k in range(n)]
