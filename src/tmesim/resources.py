"""A memory estimate of a scenario, checked before anything large is allocated.

The estimate counts what grows with the lattice: every field (the scenario's and one per dosed
agent or formulation) held in the chosen precision about eight times over (values, uptake and
source maps, free-flux and decay factors, solver work arrays), plus about 48 bytes per site for
the cell lattice, tissue maps and masks, and a cell table that can fill every site. A run needs
roughly this much; one whose estimate exceeds the memory the machine has is refused with exit
code 2 rather than failing (or swapping) after minutes of allocation.
"""

from __future__ import annotations

import math
import os

from .errors import ScenarioError

#: field-sized arrays per field, bytes per site for the lattice, bytes per cell record
FIELD_COPIES = 8
SITE_BYTES = 48
CELL_BYTES = 96
#: the interpreter, NumPy, Numba and their compiled kernels
BASE_BYTES = 400 * 2**20


def estimate_bytes(scenario) -> int:
    """Estimated peak memory of a run of ``scenario`` in bytes."""
    sites = math.prod(scenario.domain.shape)
    item = 4 if scenario.numerics.precision == "float32" else 8
    n_fields = len(scenario.field_units)
    return BASE_BYTES + sites * (n_fields * FIELD_COPIES * item + SITE_BYTES + CELL_BYTES)


def available_bytes() -> int | None:
    """Memory this process could use: MemAvailable plus free swap (Linux), else physical."""
    try:
        info = {}
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(scenario, label: str | None = None) -> int:
    """Raise :class:`~tmesim.errors.ScenarioError` if ``scenario`` would not fit in memory;
    return the estimate in bytes."""
    need = estimate_bytes(scenario)
    have = available_bytes()
    if have is not None and need > have:
        raise ScenarioError(
            f"the domain would not fit in memory: a run needs about {_gib(need)}, "
            f"{_gib(have)} is available",
            file=label,
            key="domain.shape",
            value=list(scenario.domain.shape),
            expected=f"a lattice whose estimated memory fits in {_gib(have)} "
            f"({len(scenario.field_units)} fields, {scenario.numerics.precision})",
            fix="reduce domain.shape (or use numerics.precision: float32, or fewer fields)",
        )
    return need
