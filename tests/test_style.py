"""House style is enforced by tools: the linter must pass on the whole tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    r = subprocess.run([ruff, "check", "src", "tests", "benchmarks", "validation"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- kernel signatures
#: the most parameters a kernel may take; related arrays travel together in the named structures
#: (layout.CellArrays, agents.Lattice/StepKeys/Intents/FieldViews, pharmacology.DrugPools, ...)
MAX_KERNEL_PARAMETERS = 12


def kernel_signatures() -> dict[str, int]:
    """``{"module.function": number of parameters}`` of every function in
    ``src/tmesim/kernels`` compiled through ``_jit.kernel`` (``@kernel`` or ``@kernel(...)``);
    ``*args`` and ``**kwargs`` count as one more each."""
    import ast

    out = {}
    for p in sorted((ROOT / "src" / "tmesim" / "kernels").glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
            if not any(isinstance(d, ast.Name) and d.id == "kernel" for d in names):
                continue
            a = node.args
            out[f"{p.stem}.{node.name}"] = (len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
                                            + (a.vararg is not None) + (a.kwarg is not None))
    return out


def test_no_kernel_takes_more_than_twelve_parameters():
    sig = kernel_signatures()
    # the scan sees the kernels and counts right (not vacuous)
    assert len(sig) > 80
    assert sig["lattice.exchange_maps"] == 10
    assert sig["pharmacology.membrane_update"] == 7
    long = sorted(f"{name}: {k}" for name, k in sig.items() if k > MAX_KERNEL_PARAMETERS)
    assert not long, f"kernels above {MAX_KERNEL_PARAMETERS} parameters:\n" + "\n".join(long)


def test_every_compiled_kernel_is_counted():
    """The scan above finds each kernel the modules export (a kernel compiled some other way
    would escape the limit)."""
    import importlib

    import numba

    sig = kernel_signatures()
    missing = []
    for p in sorted((ROOT / "src" / "tmesim" / "kernels").glob("*.py")):
        mod = importlib.import_module(f"tmesim.kernels.{p.stem}")
        for name, obj in vars(mod).items():
            if (isinstance(obj, numba.core.registry.CPUDispatcher)
                    and obj.py_func.__module__ == mod.__name__
                    and f"{p.stem}.{name}" not in sig):
                missing.append(f"{p.stem}.{name}")
    assert not missing, missing
