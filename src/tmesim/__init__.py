"""tmesim: agent-based simulation of the tumour microenvironment of breast-cancer lung metastasis.

Public API
----------
TMEModel
    The Mesa model (cells as structure-of-arrays, fields on a lattice, Numba kernels).
load_scenario, Scenario
    YAML scenario loading and the validated configuration.
run
    Run a scenario to an HDF5 file (what ``tmesim run`` does).
load, Results
    Lazy reading of result files.
"""

__version__ = "0.1.0"

from .errors import ScenarioError, SimulationError, TmesimError

# The rest of the public API is imported on first use (PEP 562), so that commands that need
# neither Mesa nor Numba (``tmesim validate``, ``inspect``, ``schema``, ``--help``) start fast.
_LAZY = {
    "Results": "io",
    "load": "io",
    "TMEModel": "model",
    "run": "runner",
    "Scenario": "scenario",
    "load_scenario": "scenario",
}

__all__ = [
    "Results",
    "Scenario",
    "ScenarioError",
    "SimulationError",
    "TMEModel",
    "TmesimError",
    "__version__",
    "load",
    "load_scenario",
    "run",
]


def __getattr__(name):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # a submodule, as ``tmesim.model`` after ``import tmesim``
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
