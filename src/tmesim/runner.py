"""Run a scenario to an HDF5 file: the library function behind ``tmesim run``.

>>> from tmesim import run                                   # doctest: +SKIP
>>> path = run("scenarios/baseline.yaml", output="out.h5")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import __version__, kinds
from .errors import OutputError, SimulationError
from .geometry import TISSUE_CODES, read_mask_labels
from .io import ResultWriter
from .io.safe import OutputLock, check_output_path, commit, partial_path
from .kernels import codes
from .scenario import (
    Scenario,
    dump_scenario,
    load_scenario,
    parse_set_options,
    scenario_from_dict,
    warn_about,
)
from .simulation import Simulation


def resolve_scenario(scenario=None, overrides=(), seed: int | None = None) -> Scenario:
    """The validated scenario of a file, a dict or a :class:`Scenario`, with the overrides
    and the seed applied."""
    if not isinstance(scenario, Scenario):
        return load_scenario(scenario, overrides, seed=seed)
    if not overrides and seed is None:
        return scenario
    data = scenario.model_dump(mode="json", exclude={"extends"})
    if seed is not None:
        data["seed"] = seed
    return scenario_from_dict(data, parse_set_options(overrides), label="--set", complete=True)


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
    check_output_path(path, overwrite=overwrite, create_parent=True)


def open_writer(model: Simulation, path: Path) -> ResultWriter:
    """Create the result file for ``model``'s scenario."""
    sc = model.scenario
    units = {name: sc.field_units[name] for name in sc.stored_fields()}
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
        populations=kinds.populations(),
        metrics=model.metric_units(),
        cells=sc.output.cells,
        cell_columns=model.cells.recorded_columns(),
        compression=sc.output.compression,
        code_tables={"kind": kinds.names(), "state": codes.STATE_NAMES},
        diagnostics=model.fields.solved_fields(),
        geometry=_geometry(model),
    )


def _geometry(model: Simulation) -> dict:
    """The static maps stored under /geometry: the tissue map, and a mask's label image."""
    sc = model.scenario
    out = {
        "tissue": (
            model.tissue.codes,
            {
                "code_names": list(TISSUE_CODES),
                "code_values": list(TISSUE_CODES.values()),
                "description": "tissue class per lattice site; air and airway conduct no "
                "diffusive flux; capillaries and vessels are entry sites",
            },
        )
    }
    if sc.domain.geometry == "mask":
        out["mask"] = (
            read_mask_labels(sc.domain.mask.path, sc.domain.shape),
            {
                "source": sc.domain.mask.path,
                "code_names": list(sc.domain.mask.codes),
                "code_values": list(sc.domain.mask.codes.values()),
                "description": "copy of the label image of domain.mask.path, so that the run "
                "can be reproduced without it",
            },
        )
    return out


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

    The records go to ``OUTPUT.partial`` (readable at any time: ``tmesim inspect``), which is
    renamed to ``OUTPUT`` when the run completes; a failed, interrupted or killed run leaves any
    previous ``OUTPUT`` untouched and its records in ``OUTPUT.partial``, from which
    :func:`resume` continues it. A second writer of the same output fails at once.

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
        Replace an existing output file (and discard an unfinished ``OUTPUT.partial``).
    progress : callable, optional
        Called as ``progress(model, wall_s)`` after every agent step.
    """
    sc = resolve_scenario(scenario, overrides, seed)
    path = resolve_output(sc, output)
    check_output(path, overwrite)
    warn_about(sc)
    with OutputLock(path):
        part = partial_path(path)
        _clear_partial(part, path, overwrite)
        model = Simulation(sc)  # the model without Mesa: same bits, and a run need not import it
        with open_writer(model, part) as writer:
            write_record(model, writer)
            _simulate(model, writer, progress)
        commit(part, path, overwrite=overwrite)
    return path


def _clear_partial(part: Path, path: Path, overwrite: bool) -> None:
    """Remove a stale ``OUTPUT.partial``: freely if its run failed, else only with overwrite."""
    if not os.path.lexists(part):
        return
    if not part.is_file() or part.is_symlink():
        raise OutputError(
            f"{part} exists and is not a regular file\n  fix: move it away, or choose another "
            "name with -o"
        )
    status = _partial_status(part)
    if status not in ("failed", None) and not overwrite:
        raise OutputError(
            f"an unfinished run of {path} is in {part} (status {status})\n"
            f"  fix: continue it with 'tmesim run --resume {path}', or pass --overwrite to "
            "start again"
        )
    part.unlink()


def _partial_status(part: Path) -> str | None:
    """The status attribute of a partial file, or None if it cannot be read."""
    import h5py

    try:
        with h5py.File(part, "r", locking=False) as f:
            return str(f.attrs.get("status", "")) or None
    except Exception:
        return None


def _simulate(model: Simulation, writer: ResultWriter, progress, replay_to: int = 0) -> None:
    """Step ``model`` to the end, writing a record every ``record_every_steps`` steps after
    step ``replay_to`` (the steps up to it recompute records the file already holds)."""
    sc = model.scenario
    every = sc.record_every_steps
    t0 = time.perf_counter()
    try:
        while model.running:
            model.step()
            if model.steps > replay_to and (model.steps % every == 0 or not model.running):
                write_record(model, writer)
            if progress is not None:
                progress(model, time.perf_counter() - t0)
    except KeyboardInterrupt:
        writer.set_attr("status", "interrupted")
        raise
    except BaseException:
        writer.set_attr("status", "failed")
        raise
    writer.set_attr("status", "complete")
    writer.set_attr("wall_time_s", time.perf_counter() - t0)


def resume(output, *, overwrite: bool = False, progress=None) -> Path:
    """Continue the run whose records are in ``OUTPUT.partial``; return ``OUTPUT``.

    The scenario (with its seed) is read back from the file. The model is deterministic, so
    the steps up to the last complete record are recomputed without writing, the recomputed
    last record is checked against the stored one, and the run goes on from there: the
    datasets end bit-identical to those of an uninterrupted run.
    """
    import yaml

    path = Path(output)
    check_output_path(path, overwrite=overwrite, create_parent=False)
    part = partial_path(path)
    with OutputLock(path):
        if not part.is_file():
            raise OutputError(
                f"nothing to resume: {part} does not exist"
                + (" (the run of this output is complete)" if path.is_file() else "")
                + f"\n  fix: start the run with 'tmesim run SCENARIO.yaml -o {path}'"
            )
        try:
            writer = ResultWriter.reopen(part)
        except Exception as exc:
            raise OutputError(
                f"cannot resume from {part}: {exc}\n  fix: start the run again with --overwrite"
            ) from None
        with writer:
            sc = scenario_from_dict(
                yaml.safe_load(str(writer.f.attrs["scenario"])), label=str(part), complete=True
            )
            model = Simulation(sc)
            n = writer.n_records
            if n == 0:
                write_record(model, writer)
                steps = 0
            else:
                steps = round(float(writer.time[n - 1]) * 60.0 / sc.time.dt_min)
                while model.steps < steps:
                    model.step()
                    if progress is not None:
                        progress(model, 0.0)
                _check_replay(model, writer)
                # the solver statistics up to the last record are in the file already
                model.fields.solver_stats(reset=True)
            writer.set_attr("status", "running")
            writer.set_attr("resumed_at_record", n)
            if model.running:
                _simulate(model, writer, progress, replay_to=steps)
            else:
                writer.set_attr("status", "complete")
        commit(part, path, overwrite=overwrite)
    return path


def _check_replay(model: Simulation, writer: ResultWriter) -> None:
    """The recomputed state must equal the last stored record, or resuming would mix runs."""
    import numpy as np

    n = writer.n_records
    same = float(writer.time[n - 1]) == model.time_h
    counts = model.population_counts()
    for name, d in writer.counts.items():
        same &= int(d[n - 1]) == counts.get(name, 0)
    metrics = model.metrics()
    for name, d in writer.metrics.items():
        same &= bool(np.array_equal(d[n - 1], metrics.get(name, np.nan), equal_nan=True))
    if not same:
        raise SimulationError(
            f"cannot resume {writer.path}: recomputing the run does not reproduce its record "
            f"{n - 1} (was it written by another tmesim version, {writer.f.attrs.get('tmesim_version')}?)"
            "\n  fix: start the run again with --overwrite"
        )
