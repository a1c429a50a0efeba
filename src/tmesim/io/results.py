"""Lazy access to a tmesim HDF5 result file.

>>> res = load("results/baseline.h5")          # doctest: +SKIP
>>> res.time_h, res.counts["tumor"]             # doctest: +SKIP
>>> res.field("oxygen", record=-1)              # one frame, read on demand   # doctest: +SKIP
>>> res.to_pandas(); res.to_xarray()            # doctest: +SKIP

Only complete records are exposed: their number is the length of ``/time_h``, which the writer
extends last (after a flush), lowered to the length of any shorter record dataset
(:func:`tmesim.io.writer.complete_records`), so a file left by a killed run reads cleanly up to
its last complete record.
While a run is going, or after it was interrupted, its records are in ``OUT.partial``; loading
``OUT`` reads that file when ``OUT`` itself does not exist yet.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from ..errors import UsageError, warn
from .writer import FORMAT, FORMAT_VERSION, complete_records


def _analysis_module(name: str, method: str):
    """Import ``name`` (pandas or xarray) for ``method``, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"Results.{method}() needs the Python package {name}, which the 'analysis' extra "
            "installs: pip install 'tmesim[analysis]' (in a clone: .venv/bin/pip install -e "
            "'.[analysis]')",
            name=name,
        ) from exc


def _open_for_reading(path: Path) -> h5py.File:
    """Open read-only; a file still being written by a running ``tmesim run`` holds an HDF5
    lock, so retry without locking (the writer flushes whole records, /time_h last)."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "lock" not in str(exc).lower():
            raise
        return h5py.File(path, "r", locking=False)


class Results:
    """A result file opened for reading. Use as a context manager or call :meth:`close`."""

    def __init__(self, path):
        self.path = Path(path)
        partial = self.path.with_name(self.path.name + ".partial")
        if not self.path.exists() and partial.is_file():
            # a run still going (or interrupted): its records are in OUT.partial until complete
            self.path = partial
        if not self.path.exists():
            raise UsageError(
                f"result file not found: {self.path}\n  fix: check the path, or run "
                "'tmesim run SCENARIO.yaml -o FILE.h5' first"
            )
        try:
            self.f = _open_for_reading(self.path)
        except OSError as exc:
            raise UsageError(
                f"cannot open {self.path} as HDF5 ({exc})\n  fix: pass a file written by "
                "'tmesim run'"
            ) from None
        try:
            self._check()
        except (KeyError, OSError, RuntimeError) as exc:
            # HDF5 metadata that cannot be read: a damaged file, or one another process is in
            # the middle of writing (a running 'tmesim run' flushes whole records, but a reader
            # may catch it between two)
            self.f.close()
            raise UsageError(
                f"cannot read {self.path}: it is damaged, or a run is writing it at this moment "
                f"(HDF5: {exc})\n  fix: try again after the run's next record, or run the "
                "scenario again"
            ) from None

    def _check(self) -> None:
        """Check the file's format and structure and find its complete records."""
        if self.f.attrs.get("format") != FORMAT:
            self.f.close()
            raise UsageError(
                f"{self.path} is an HDF5 file but not a tmesim result (no format='tmesim' "
                "attribute)\n  fix: pass a file written by 'tmesim run'"
            )
        t = self.f.get("time_h")
        if not isinstance(t, h5py.Dataset) or t.ndim != 1:
            self.f.close()
            raise UsageError(
                f"{self.path} is damaged: it has no one-dimensional /time_h dataset\n"
                "  fix: pass a file written by 'tmesim run', or run the scenario again"
            )
        version = self.f.attrs.get("format_version", 0)
        version = version.item() if hasattr(version, "item") else version
        try:
            newer = int(version) > FORMAT_VERSION
        except (TypeError, ValueError):
            newer = True
        if newer:
            warn(
                f"{self.path} has format_version {version}, newer than this tmesim reads "
                f"({FORMAT_VERSION}); values may be misread (upgrade tmesim)"
            )
        self.n_records = int(t.shape[0])
        complete = complete_records(self.f)
        if complete < self.n_records:
            if self.complete:
                self.f.close()
                raise UsageError(
                    f"{self.path} is damaged: it says it is complete, but some record datasets "
                    f"hold {complete} of its {self.n_records} records\n"
                    "  fix: run the scenario again"
                )
            # a run killed while writing a record: its last record is incomplete
            self.n_records = complete

    # ------------------------------------------------------------------ metadata
    @property
    def attrs(self) -> dict:
        """Root attributes."""
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.f.attrs.items()}

    @property
    def name(self) -> str:
        """Scenario name."""
        return str(self.f.attrs["scenario_name"])

    @property
    def seed(self) -> int:
        """Seed of the run."""
        return int(self.f.attrs["seed"])

    @property
    def scenario_yaml(self) -> str:
        """The fully resolved scenario as YAML text."""
        return str(self.f.attrs["scenario"])

    @property
    def scenario(self):
        """The resolved scenario, validated again."""
        import yaml

        from ..scenario import scenario_from_dict

        return scenario_from_dict(yaml.safe_load(self.scenario_yaml), label=str(self.path), complete=True)

    @property
    def complete(self) -> bool:
        """Whether the run finished (``status == 'complete'``)."""
        return str(self.f.attrs.get("status", "")) == "complete"

    # ------------------------------------------------------------------ series
    @property
    def time_h(self) -> np.ndarray:
        """Recorded times (h)."""
        return self.f["time_h"][: self.n_records]

    def _series(self, group) -> dict[str, np.ndarray]:
        if group not in self.f:
            return {}
        return {k: d[: self.n_records] for k, d in self.f[group].items()}

    @property
    def counts(self) -> dict[str, np.ndarray]:
        """Population counts per record."""
        return self._series("counts")

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """Scalar metrics per record."""
        return self._series("metrics")

    @property
    def diagnostics(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-record transport-solver statistics: field -> statistic -> series (empty for files
        written before they were recorded)."""
        g = self.f.get("diagnostics")
        if g is None:
            return {}
        return {name: {k: d[: self.n_records] for k, d in grp.items()} for name, grp in g.items()}

    def solver_warnings(self) -> list[str]:
        """One line per field whose solves missed their tolerance or were redone."""
        out = []
        for name, st in self.diagnostics.items():
            fails = int(np.sum(st.get("failures", 0)))
            if fails:
                worst = float(np.max(st["max_residual"]))
                out.append(
                    f"{name}: {fails} transport solve(s) stopped above their tolerance (largest "
                    f"relative error bound {worst:.2g}); raise numerics.solver_max_iterations"
                )
            falls = int(np.sum(st.get("fallbacks", 0)))
            if falls:
                out.append(
                    f"{name}: {falls} Douglas step(s) were redone with LOD by the positivity "
                    "guard; use scheme: implicit"
                )
        return out

    def units(self, path: str) -> str:
        """The ``units`` attribute of a dataset, e.g. ``units('fields/oxygen')``."""
        return str(self.f[path].attrs.get("units", ""))

    # ------------------------------------------------------------------ fields and cells
    @property
    def field_names(self) -> list[str]:
        """Stored fields."""
        g = self.f.get("fields")
        if g is None:
            return []
        return [k for k, d in g.items() if d.ndim >= 3]

    def field(self, name: str, record: int | None = None) -> np.ndarray:
        """One field: all complete records, or one (negative indices count from the end)."""
        d = self.f["fields"][name]
        if record is None:
            return d[: self.n_records]
        if record < 0:
            record += self.n_records
        if not 0 <= record < self.n_records:
            raise IndexError(f"record {record} out of range 0..{self.n_records - 1}")
        return d[record]

    def cells(self, record: int) -> dict[str, np.ndarray]:
        """The cell snapshot of one record (columns of equal length)."""
        if "cells" not in self.f:
            return {}
        g = self.f["cells"]
        if record < 0:
            record += self.n_records
        if not 0 <= record < self.n_records:
            raise IndexError(f"record {record} out of range 0..{self.n_records - 1}")
        a, b = g["offsets"][record : record + 2]
        return {k: d[a:b] for k, d in g.items() if k != "offsets"}

    def record_at(self, time_h: float) -> int:
        """Index of the record nearest to ``time_h`` (a warning when it lies outside them)."""
        t = self.time_h
        if not len(t):
            raise UsageError(
                f"{self.path} holds no complete record\n  fix: run the scenario (longer) first"
            )
        time_h = float(time_h)
        if math.isnan(time_h):
            raise UsageError("the requested time is not a number\n  fix: e.g. --time 7d")
        if not t[0] <= time_h <= t[-1]:
            k = 0 if time_h < t[0] else len(t) - 1
            warn(
                f"time {time_h:g} h is outside the records of {self.path} ({t[0]:g} h .. "
                f"{t[-1]:g} h); using the record at {t[k]:g} h"
            )
            return k
        return int(np.argmin(np.abs(t - time_h)))

    # ------------------------------------------------------------------ conversions
    def to_pandas(self):
        """Counts and metrics as a pandas DataFrame indexed by ``time_h`` (needs the
        ``analysis`` extra)."""
        pd = _analysis_module("pandas", "to_pandas")

        data = {**self.counts, **self.metrics}
        return pd.DataFrame(data, index=pd.Index(self.time_h, name="time_h"))

    def to_xarray(self, fields=None):
        """Fields, counts and metrics as an xarray Dataset with named dimensions (needs the
        ``analysis`` extra)."""
        xr = _analysis_module("xarray", "to_xarray")

        g = self.f["fields"]
        axes = [k for k in ("z_um", "y_um", "x_um") if k in g]
        coords = {"time_h": self.time_h, **{a: g[a][()] for a in axes}}
        data = {}
        for name in fields or self.field_names:
            data[name] = xr.DataArray(
                self.field(name),
                dims=("time_h", *axes),
                attrs={"units": self.units(f"fields/{name}")},
            )
        for group in ("counts", "metrics"):
            for k, v in self._series(group).items():
                data[f"{group}/{k}" if k in data else k] = xr.DataArray(
                    v, dims=("time_h",), attrs={"units": self.units(f"{group}/{k}")}
                )
        return xr.Dataset(
            data, coords=coords, attrs={"scenario_name": self.name, "seed": self.seed}
        )

    def summary(self) -> dict:
        """A JSON-ready summary (what ``tmesim inspect --json`` prints)."""
        t = self.time_h
        fields = {}
        g = self.f.get("fields")
        for name in self.field_names:
            d = g[name]
            fields[name] = {"units": self.units(f"fields/{name}"), "shape": list(d.shape[1:])}
        return {
            "path": str(self.path),
            "file_size_bytes": self.path.stat().st_size,
            "format_version": int(self.f.attrs.get("format_version", 0)),
            "tmesim_version": str(self.f.attrs.get("tmesim_version", "")),
            "scenario_name": self.name,
            "seed": self.seed,
            "created_utc": str(self.f.attrs.get("created_utc", "")),
            "status": str(self.f.attrs.get("status", "unknown")),
            "records": self.n_records,
            "time_h": {"start": _finite(t[0]), "end": _finite(t[-1])} if len(t) else None,
            "populations": {k: [int(x) for x in v] for k, v in self.counts.items()},
            "metrics": {
                k: {"units": self.units(f"metrics/{k}"), "last": _finite(v[-1]) if len(v) else None}
                for k, v in self.metrics.items()
            },
            "fields": fields,
            "solver": {
                name: {
                    "solves": int(np.sum(st["solves"])),
                    "iterations_mean": float(np.sum(st["iterations"]) / max(np.sum(st["solves"]), 1)),
                    "iterations_max": int(np.max(st["max_iterations"], initial=0)),
                    "error_bound_max": float(np.max(st["max_residual"], initial=0.0)),
                    "failures": int(np.sum(st["failures"])),
                    "clipped": int(np.sum(st["clipped"])),
                    "fallbacks": int(np.sum(st["fallbacks"])),
                }
                for name, st in self.diagnostics.items()
            },
            "warnings": self.solver_warnings(),
        }

    def close(self) -> None:
        """Close the file."""
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"Results({str(self.path)!r}, scenario={self.name!r}, records={self.n_records})"


def _finite(x) -> float | None:
    """``x`` as a float, or None when it is NaN or infinite (JSON has no such numbers)."""
    x = float(x)
    return x if math.isfinite(x) else None


def load(path) -> Results:
    """Open a result file written by ``tmesim run`` for lazy reading."""
    return Results(path)
