"""Signal -> behaviour rules in Hill form, evaluated inside cell kernels.

A rule ``r`` belongs to one cell kind and moves one behaviour of that kind toward a saturating
value as a signal rises:

    b <- b + (max_r - b) * H_r(s),   H_r(s) = s**n / (half**n + s**n),   s >= 0

``increases`` rules have ``max_r`` above the base value, ``decreases`` rules below it (the
direction is checked when the scenario is validated). Rules of the same kind and behaviour are
applied in the order they are declared; a single rule is exactly PhysiCell's Hill response.

Signals are field indices (``>= 0``, the concentration at the cell's site) or the cell-level
codes below.
"""

from __future__ import annotations

from ._jit import kernel

#: signal codes that are not fields
SIGNAL_PDL1 = -1

#: behaviour codes
B_DIVISION = 0
B_MIGRATION = 1
B_DEATH = 2
B_KILL = 3
B_SECRETION = 4
BEHAVIOURS = ("division_rate", "migration_rate", "death_rate", "kill_rate", "secretion")


@kernel
def hill(s, half, n):
    """Hill function ``s**n / (half**n + s**n)`` (0 for ``s <= 0``)."""
    if s <= 0.0:
        return 0.0
    if half <= 0.0:
        return 1.0
    x = (s / half) ** n
    return x / (1.0 + x)


#: columns of the rule table (one float64 row per rule)
R_KIND = 0
R_SIGNAL = 1
R_BEHAVIOUR = 2
R_MAX = 3
R_HALF = 4
R_POWER = 5
R_NCOLS = 6


@kernel
def apply_rules(base, kind, behaviour, site, fields, pdl1, rules):
    """The behaviour value after every matching rule.

    ``fields`` is ``(n_fields, n_sites)``; ``rules`` is the ``(n_rules, R_NCOLS)`` table.
    """
    b = base
    for r in range(rules.shape[0]):
        if int(rules[r, R_KIND]) != kind or int(rules[r, R_BEHAVIOUR]) != behaviour:
            continue
        sig = int(rules[r, R_SIGNAL])
        s = fields[sig, site] if sig >= 0 else pdl1
        b = b + (rules[r, R_MAX] - b) * hill(s, rules[r, R_HALF], rules[r, R_POWER])
    return b
