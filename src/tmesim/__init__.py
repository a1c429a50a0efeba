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
from .io import Results, load
from .model import TMEModel
from .runner import run
from .scenario import Scenario, load_scenario

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
