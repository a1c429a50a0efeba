"""Scenarios: YAML files validated into frozen configurations.

Use :func:`load_scenario` to read a file (with ``extends`` and ``--set`` overrides) and
:func:`scenario_from_dict` for data built in Python.
"""

from .loader import (
    apply_overrides,
    default_scenario,
    dump_scenario,
    load_scenario,
    parse_set_options,
    scenario_from_dict,
    warn_about,
)
from .schema import Scenario

__all__ = [
    "Scenario",
    "apply_overrides",
    "default_scenario",
    "dump_scenario",
    "load_scenario",
    "parse_set_options",
    "scenario_from_dict",
    "warn_about",
]
