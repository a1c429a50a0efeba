"""Record-by-record HDF5 writer (the file layout is specified in docs/output-format.md).

Every dataset that grows with records is created up front with an unlimited first axis. A
record is appended in a fixed order (fields, cells, counts, metrics, diagnostics), the file is
flushed, and only then is ``/time_h`` extended and flushed again. HDF5 writes its cached metadata
in no particular order, so the first flush is what guarantees that every other dataset reaches
the disk before ``/time_h`` grows. A run killed at any moment therefore leaves a file whose
complete records are counted by :func:`complete_records` (the length of ``/time_h``, or less if a
dataset is shorter); :mod:`tmesim.io.results` reads exactly that many.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from pathlib import Path

import h5py
import numpy as np

from ..errors import WriteError
from ..kernels import layout

FORMAT = "tmesim"
FORMAT_VERSION = 1

#: per-cell columns written under /cells, with their dtypes (the table of tmesim.kernels.layout)
CELL_COLUMNS = {c.name: np.dtype(c.dtype).type for c in layout.RECORDED}



def cell_columns_markdown() -> str:
    """The table of the ``/cells`` columns in docs/output-format.md §5, from the column table
    (columns recorded alike, such as ``x``, ``y``, ``z``, share a line)."""
    lines = ["| column | dtype | meaning |", "|---|---|---|"]
    groups: list[list] = []
    for r in layout.RECORDED:
        if groups and (groups[-1][0].dtype, groups[-1][0].meaning) == (r.dtype, r.meaning):
            groups[-1].append(r)
        else:
            groups.append([r])
    for g in groups:
        names = ", ".join(f"`{r.name}`" for r in g)
        lines.append(f"| {names} | {g[0].dtype} | {g[0].meaning} |")
    return "\n".join(lines) + "\n"

#: per-record statistics of each field's transport solves under /diagnostics/<field>/, with units
#: (see tmesim.fields.FieldSet.solver_stats)
DIAGNOSTICS = {
    "solves": "1",
    "iterations": "1",
    "max_iterations": "1",
    "max_residual": "1 (error bound of a step relative to the field's scale)",
    "failures": "1",
    "clipped": "1",
    "fallbacks": "1",
}


def _record_datasets(f: h5py.File):
    """Every dataset that grows by one entry per record (``/cells`` excepted)."""
    for group in ("counts", "metrics"):
        yield from (f[group].values() if group in f else ())
    if "fields" in f:
        yield from (d for d in f["fields"].values() if d.ndim >= 3 and d.maxshape[0] is None)
    if "diagnostics" in f:
        for grp in f["diagnostics"].values():
            yield from grp.values()


def complete_records(f: h5py.File) -> int:
    """Number of complete records in an open result file: the length of ``/time_h``, lowered to
    that of any record dataset that is shorter (a run killed in the middle of writing a record).
    """
    n = int(f["time_h"].shape[0])
    for d in _record_datasets(f):
        n = min(n, int(d.shape[0]))
    if "cells" in f and "offsets" in f["cells"]:
        g = f["cells"]
        off = g["offsets"]
        n = min(n, int(off.shape[0]) - 1)
        held = min((int(g[k].shape[0]) for k in CELL_COLUMNS if k in g), default=0)
        while n > 0 and int(off[n]) > held:  # a column shorter than the offsets say
            n -= 1
    return max(n, 0)


class ResultWriter:
    """Write one run's records to an HDF5 file.

    Parameters
    ----------
    path : Path
        Output file, created (it must not exist).
    attrs : dict
        Root attributes (``scenario_name``, ``seed``, ``scenario`` YAML text, ...).
    shape : tuple
        Field grid, ``(ny, nx)`` or ``(nz, ny, nx)``.
    voxel_um : float
        Voxel edge, for the coordinate scales.
    fields : dict
        Stored field name -> units.
    populations, metrics : dict
        Population names, and metric name -> units.
    cells : bool
        Whether to store cell snapshots.
    cell_columns : dict, optional
        The columns of a snapshot and their dtypes, in order (default :data:`CELL_COLUMNS`;
        a run with several agents of one role adds their columns,
        :meth:`tmesim.cells.CellPopulation.recorded_columns`).
    geometry : dict, optional
        Static maps written once under ``/geometry``: name -> ``(array, attrs)``.
    code_tables : dict
        Attribute name -> list of names for integer codes (``kind``, ``state``).
    diagnostics : list, optional
        Fields whose solver statistics (:data:`DIAGNOSTICS`) are recorded per record under
        ``/diagnostics/<field>/``.
    """

    def __init__(
        self,
        path,
        *,
        attrs,
        shape,
        voxel_um,
        fields,
        populations,
        metrics,
        cells=True,
        compression=4,
        code_tables=None,
        geometry=None,
        diagnostics=(),
        cell_columns=None,
    ):
        self.path = Path(path)
        self.broken = False
        self.f = h5py.File(self.path, "w-")
        f = self.f
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        for k, v in attrs.items():
            f.attrs[k] = v

        t = f.create_dataset("time_h", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        t.attrs["units"] = "h"
        t.make_scale("time_h")
        self.time = t

        shape = tuple(int(s) for s in shape)
        g = f.create_group("fields")
        axes = ("z_um", "y_um", "x_um")[-len(shape) :]
        scales = []
        for name, n in zip(axes, shape, strict=False):
            c = g.create_dataset(name, data=(np.arange(n) + 0.5) * voxel_um)
            c.attrs["units"] = "um"
            c.make_scale(name)
            scales.append(c)
        self.fields = {}
        for name, units in fields.items():
            d = g.create_dataset(
                name,
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype="f4",
                chunks=(1, *shape),
                compression="gzip" if compression else None,
                compression_opts=compression if compression else None,
                shuffle=bool(compression),
            )
            d.attrs["units"] = units
            d.dims[0].attach_scale(t)
            d.dims[0].label = "time_h"
            for i, c in enumerate(scales, start=1):
                d.dims[i].attach_scale(c)
                d.dims[i].label = axes[i - 1]
            self.fields[name] = d

        if geometry:
            gg = f.create_group("geometry")
            for name, (arr, gattrs) in geometry.items():
                d = gg.create_dataset(name, data=arr, compression="gzip", shuffle=True)
                for k, v in gattrs.items():
                    d.attrs[k] = v

        gc = f.create_group("counts")
        self.counts = {}
        for name in populations:
            d = gc.create_dataset(name, shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
            d.attrs["units"] = "cells"
            d.dims[0].attach_scale(t)
            self.counts[name] = d
        gm = f.create_group("metrics")
        self.metrics = {}
        for name, units in metrics.items():
            d = gm.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
            d.attrs["units"] = units
            d.dims[0].attach_scale(t)
            self.metrics[name] = d

        self.diagnostics = {}
        if diagnostics:
            gd = f.create_group("diagnostics")
            gd.attrs["description"] = (
                "statistics of each field's transport solves since the previous record "
                "(docs/numerics.md, 'Solver diagnostics')"
            )
            for field in diagnostics:
                gf = gd.create_group(field)
                for stat, units in DIAGNOSTICS.items():
                    d = gf.create_dataset(
                        stat, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,)
                    )
                    d.attrs["units"] = units
                    d.dims[0].attach_scale(t)
                    self.diagnostics[(field, stat)] = d

        self.cells = None
        if cells:
            gcell = f.create_group("cells")
            gcell.attrs["layout"] = (
                "ragged: record i holds rows offsets[i]:offsets[i+1] of every column"
            )
            for k, names in (code_tables or {}).items():
                gcell.attrs[f"{k}_codes"] = list(names)
            off = gcell.create_dataset(
                "offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(1024,)
            )
            cols = {}
            for name, dtype in (cell_columns or CELL_COLUMNS).items():
                # No filters here: a chunk of these columns spans several records, and a
                # filtered (compressed) chunk is moved to new file space each time it is
                # rewritten, so a run killed mid-append could leave earlier records pointing at
                # reused space. Unfiltered chunks are updated in place and stay readable;
                # 4096-row chunks keep the unused tail of the last chunk small.
                cols[name] = gcell.create_dataset(
                    name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,)
                )
            self.cells = (off, cols)
        f.flush()

    @classmethod
    def reopen(cls, path) -> ResultWriter:
        """Open an unfinished result file for appending (``tmesim run --resume``).

        Every record dataset is cut back to the complete records (:func:`complete_records`),
        dropping whatever a killed run wrote of the next record.
        """
        self = cls.__new__(cls)
        self.path = Path(path)
        self.broken = False
        self.f = f = h5py.File(self.path, "r+")
        try:
            if f.attrs.get("format") != FORMAT or "time_h" not in f:
                raise ValueError("not a tmesim result file")
            if int(f.attrs.get("format_version", 0)) != FORMAT_VERSION:
                raise ValueError(f"format_version {f.attrs.get('format_version')} is not "
                                 f"{FORMAT_VERSION}")
            self.time = f["time_h"]
            n = complete_records(f)
            self.time.resize(n, axis=0)
            self.fields = {
                k: d for k, d in f["fields"].items() if d.ndim >= 3 and d.maxshape[0] is None
            }
            self.counts = dict(f["counts"].items())
            self.metrics = dict(f["metrics"].items())
            self.diagnostics = {
                (field, stat): d
                for field, grp in (f["diagnostics"].items() if "diagnostics" in f else ())
                for stat, d in grp.items()
            }
            for d in (*self.fields.values(), *self.counts.values(), *self.metrics.values(),
                      *self.diagnostics.values()):
                d.resize(n, axis=0)
            self.cells = None
            if "cells" in f:
                g = f["cells"]
                off = g["offsets"]
                off.resize(n + 1, axis=0)
                end = int(off[n])
                missing = [k for k in CELL_COLUMNS if k not in g]
                if missing:
                    raise ValueError(
                        f"/cells has no column {', '.join(missing)} (written by an older tmesim)"
                    )
                # the table's columns, then those of further agents in the order written
                cols = {k: g[k] for k in CELL_COLUMNS}
                cols.update({k: d for k, d in g.items() if k != "offsets" and k not in cols})
                for d in cols.values():
                    d.resize(end, axis=0)
                self.cells = (off, cols)
            f.flush()
        except BaseException:
            f.close()
            raise
        return self

    @property
    def n_records(self) -> int:
        """Complete records in the file."""
        return int(self.time.shape[0])

    @staticmethod
    def _append(d, value):
        n = d.shape[0]
        value = np.asarray(value)
        k = value.shape[0] if value.ndim == d.ndim else 1
        d.resize(n + k, axis=0)
        d[n : n + k] = value
        return n + k

    def _failed(self, exc) -> WriteError:
        """After a failed write the file is not touched again (not even to close it)."""
        self.broken = True
        return WriteError(
            f"cannot write {self.path}: {exc}\n  fix: free disk space (or raise the file size "
            "limit) and run again; an earlier result at the final path is untouched"
        )

    def write_record(self, time_h, counts, metrics, fields, cells=None, diagnostics=None) -> None:
        """Append one record: everything but ``/time_h``, a flush, then ``/time_h`` and a flush.

        ``diagnostics``: field -> statistic -> value (missing ones are written as 0)."""
        try:
            self._write_record(time_h, counts, metrics, fields, cells, diagnostics)
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from None

    def _write_record(self, time_h, counts, metrics, fields, cells=None, diagnostics=None) -> None:
        for name, d in self.fields.items():
            self._append(d, np.asarray(fields[name], dtype=np.float32)[None])
        if self.cells is not None and cells is not None:
            off, cols = self.cells
            end = None
            for name, d in cols.items():
                end = self._append(d, np.asarray(cells[name], dtype=d.dtype))
            self._append(off, np.array([end], np.int64))
        for name, d in self.counts.items():
            self._append(d, np.array([counts.get(name, 0)], np.int64))
        for name, d in self.metrics.items():
            self._append(d, np.array([metrics.get(name, np.nan)], np.float64))
        diag = diagnostics or {}
        for (field, stat), d in self.diagnostics.items():
            self._append(d, np.array([diag.get(field, {}).get(stat, 0.0)], np.float64))
        self.f.flush()  # the record's data on disk before /time_h says it exists
        self._append(self.time, np.array([time_h], np.float64))
        self.f.flush()

    def set_attr(self, key, value) -> None:
        """Set a root attribute (e.g. the completion status) and flush."""
        if self.broken:
            return
        try:
            self.f.attrs[key] = value
            self.f.flush()
        except (OSError, RuntimeError) as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        """Flush and close the file (a file whose writing failed is left alone)."""
        if self.f and not self.broken:
            try:
                self.f.close()
            except (OSError, RuntimeError) as exc:
                raise self._failed(exc) from None
            self.f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            with contextlib.suppress(Exception):
                self.close()
