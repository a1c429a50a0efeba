"""Parse times given on the command line: ``7d``, ``36h``, ``90min``, ``1.5`` (hours)."""

from __future__ import annotations

import re

from ..errors import UsageError

_UNITS = {"d": 24.0, "day": 24.0, "days": 24.0, "h": 1.0, "hr": 1.0, "min": 1 / 60.0, "m": 1 / 60.0}


def parse_time_h(text) -> float:
    """Return the time in hours; a bare number means hours."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or (m.group(2) and m.group(2).lower() not in _UNITS):
        raise UsageError(
            f"cannot read the time {text!r}\n  fix: write a number with a unit, e.g. 7d, 36h or "
            "90min (a bare number means hours)"
        )
    return float(m.group(1)) * _UNITS.get(m.group(2).lower(), 1.0)
