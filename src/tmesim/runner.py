"""Run a scenario to an HDF5 file: the library function behind ``tmesim run``.

>>> from tmesim import run                                   # doctest: +SKIP
>>> path = run("scenarios/baseline.yaml", output="out.h5")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from . import __version__
from .errors import OutputError
from .geometry import TISSUE_CODES
from .io import ResultWriter
from .kernels import codes
from .scenario import (
    Scenario,
    dump_scenario,
    load_scenario,
    parse_set_options,
    scenario_from_dict,
)
from .simulation import POPULATIONS, Simulation


def resolve_output(scenario: Scenario, output=None) -> Path:
    """The output path: ``output`` if given, else ``output.path`` with {name}/{seed} filled in."""
    if output is not None:
        return Path(output)
    text = scenario.output.path.replace("{name}", scenario.name).replace(
        "{seed}", str(scenario.seed)
    )
    return Path(text)


def check_output(path: Path, overwrite: bool) -> None:
    """Fail early (before simulating) if ``path`` cannot be written or would be overwritten."""
    if path.is_dir():
        raise OutputError(
            f"output path is a directory: {path}\n  fix: give a file name, e.g. -o {path / 'out.h5'}"
        )
    if path.exists() and not overwrite:
        raise OutputError(
            f"output file already exists: {path}\n"
            "  fix: pass --overwrite to replace it, or choose another name with -o"
        )
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder {parent}: {exc.strerror}\n"
            "  fix: choose a location you can write to with -o"
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmesim-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"output location is not writable: {parent} ({exc.strerror})\n"
            "  fix: choose a location you can write to with -o"
        ) from None


def open_writer(model: Simulation, path: Path) -> ResultWriter:
    """Create the result file for ``model``'s scenario."""
    sc = model.scenario
    units = {name: sc.field_configs[name].units for name in sc.stored_fields()}
    return ResultWriter(
        path,
        attrs={
            "tmesim_version": __version__,
            "scenario_name": sc.name,
            "seed": sc.seed,
            "scenario": dump_scenario(sc),
            "dt_min": sc.time.dt_min,
            "voxel_um": sc.domain.voxel_um,
            "status": "running",
        },
        shape=tuple(sc.domain.shape),
        voxel_um=sc.domain.voxel_um,
        fields=units,
        populations=POPULATIONS,
        metrics=model.metric_units(),
        cells=sc.output.cells,
        compression=sc.output.compression,
        code_tables={"kind": codes.KIND_NAMES, "state": codes.STATE_NAMES},
        diagnostics=model.fields.solved_fields(),
        geometry={
            "tissue": (
                model.tissue,
                {
                    "code_names": list(TISSUE_CODES),
                    "code_values": list(TISSUE_CODES.values()),
                    "description": "tissue class per lattice site; air and airway conduct no "
                    "diffusive flux; capillaries and vessels are entry sites",
                },
            )
        },
    )


def write_record(model: Simulation, writer: ResultWriter) -> None:
    """Append the model's current state as one record."""
    sc = model.scenario
    writer.write_record(
        model.time_h,
        model.population_counts(),
        model.metrics(),
        {name: model.fields[name] for name in sc.stored_fields()},
        model.cells.snapshot() if sc.output.cells else None,
        model.fields.solver_stats(reset=True),
    )


def run(
    scenario=None,
    output=None,
    *,
    overrides=(),
    seed: int | None = None,
    overwrite: bool = False,
    progress=None,
) -> Path:
    """Run a scenario and write its records; return the output path.

    Parameters
    ----------
    scenario : str, Path, Scenario or None
        Scenario file or object (``None``: packaged defaults).
    output : str or Path, optional
        Output file (default: the scenario's ``output.path``).
    overrides : iterable of str
        ``dotted.key=value`` overrides.
    seed : int, optional
        Replaces the scenario seed.
    overwrite : bool
        Replace an existing output file.
    progress : callable, optional
        Called as ``progress(model, wall_s)`` after every agent step.
    """
    if isinstance(scenario, Scenario):
        sc = scenario
        if overrides or seed is not None:
            data = sc.model_dump(mode="json", exclude={"extends"})
            if seed is not None:
                data["seed"] = seed
            sc = scenario_from_dict(
                data, parse_set_options(overrides), label="--set", complete=True
            )
    else:
        sc = load_scenario(scenario, overrides, seed=seed)
    path = resolve_output(sc, output)
    check_output(path, overwrite)
    model = Simulation(sc)  # the model without Mesa: same bits, and a run need not import it
    if path.exists():
        path.unlink()
    t0 = time.perf_counter()
    with open_writer(model, path) as writer:
        every = sc.record_every_steps
        write_record(model, writer)
        try:
            while model.running:
                model.step()
                if model.steps % every == 0 or not model.running:
                    write_record(model, writer)
                if progress is not None:
                    progress(model, time.perf_counter() - t0)
        except BaseException:
            writer.set_attr("status", "failed")
            raise
        writer.set_attr("status", "complete")
        writer.set_attr("wall_time_s", time.perf_counter() - t0)
    return path
