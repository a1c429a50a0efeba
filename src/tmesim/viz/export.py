"""Export a result file for other tools (``tmesim export``), reading only what :mod:`tmesim.io`
wrote.

- ``csv``: ``<stem>_timeseries.csv`` (time, counts, metrics) and ``<stem>_cells.csv`` (every
  cell of every record, with its time and position in µm).
- ``vtk``: one legacy-format VTK file per record (ASCII header, big-endian binary data, which
  ParaView and VisIt read): the fields as ``STRUCTURED_POINTS`` cell data, ``<stem>_fields_<k>.vtk``,
  and the cells as ``POLYDATA`` vertices with their columns, ``<stem>_cells_<k>.vtk``.
- ``anndata``: ``<stem>.h5ad``, one observation per cell of one record (``record``, default the
  last), ``obs`` holding kind, state and the per-cell columns, ``obsm["spatial"]`` the position
  in µm: what scanpy and squidpy read. Needs the ``anndata`` package (extra ``export``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .. import kinds as registry
from ..errors import UsageError
from ..io import load

FORMATS = ("csv", "vtk", "anndata")


def _positions_um(cells, voxel_um) -> np.ndarray:
    return (np.stack([cells["x"], cells["y"], cells["z"]], axis=1).astype(np.float64) + 0.5) * voxel_um


def _csv(res, stem: Path) -> list[Path]:
    ts = stem.with_name(stem.name + "_timeseries.csv")
    series = {**res.counts, **{k: v for k, v in res.metrics.items() if k not in res.counts}}
    with open(ts, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["time_h", *series])
        for i, t in enumerate(res.time_h):
            w.writerow([repr(float(t)), *(repr(float(v[i])) for v in series.values())])
    out = [ts]
    if "cells" in res.f:
        cp = stem.with_name(stem.name + "_cells.csv")
        voxel = float(res.f.attrs["voxel_um"])
        with open(cp, "w", newline="", encoding="utf-8") as f:
            w = None
            for r, t in enumerate(res.time_h):
                cells = res.cells(r)
                cols = list(cells)
                if w is None:
                    w = csv.writer(f)
                    w.writerow(["record", "time_h", *cols, "x_um", "y_um", "z_um"])
                pos = _positions_um(cells, voxel)
                for j in range(len(cells["id"])):
                    w.writerow([r, repr(float(t)), *(cells[c][j].item() for c in cols), *pos[j]])
        out.append(cp)
    return out


def _vtk(res, stem: Path) -> list[Path]:
    out = []
    voxel = float(res.f.attrs["voxel_um"])
    names = res.field_names
    for r in range(res.n_records):
        if names:
            p = stem.with_name(f"{stem.name}_fields_{r}.vtk")
            first = res.field(names[0], r)
            shape = first.shape if first.ndim == 3 else (1, *first.shape)
            nz, ny, nx = shape
            with open(p, "wb") as f:
                f.write(
                    f"# vtk DataFile Version 3.0\ntmesim {res.name} record {r} "
                    f"t={float(res.time_h[r]):g} h\nBINARY\nDATASET STRUCTURED_POINTS\n"
                    f"DIMENSIONS {nx + 1} {ny + 1} {nz + 1}\nORIGIN 0 0 0\n"
                    f"SPACING {voxel:g} {voxel:g} {voxel:g}\nCELL_DATA {nx * ny * nz}\n".encode()
                )
                for name in names:
                    data = np.asarray(res.field(name, r), dtype=">f4").reshape(shape)
                    f.write(f"SCALARS {name} float 1\nLOOKUP_TABLE default\n".encode())
                    f.write(np.ascontiguousarray(data).tobytes())  # x fastest, then y, then z
                    f.write(b"\n")
            out.append(p)
        cells = res.cells(r)
        if cells:
            p = stem.with_name(f"{stem.name}_cells_{r}.vtk")
            n = len(cells["id"])
            pos = _positions_um(cells, voxel).astype(">f4")
            with open(p, "wb") as f:
                f.write(
                    f"# vtk DataFile Version 3.0\ntmesim {res.name} cells record {r}\nBINARY\n"
                    f"DATASET POLYDATA\nPOINTS {n} float\n".encode()
                )
                f.write(pos.tobytes() + b"\n")
                verts = np.column_stack([np.ones(n, ">i4"), np.arange(n, dtype=">i4")])
                f.write(f"VERTICES {n} {2 * n}\n".encode() + verts.astype(">i4").tobytes() + b"\n")
                f.write(f"POINT_DATA {n}\n".encode())
                for col, v in cells.items():
                    if col in ("x", "y", "z"):
                        continue
                    f.write(f"SCALARS {col} double 1\nLOOKUP_TABLE default\n".encode())
                    f.write(np.asarray(v, dtype=">f8").tobytes() + b"\n")
            out.append(p)
    return out


def _anndata(res, stem: Path, record: int) -> list[Path]:
    try:
        import anndata
        import pandas as pd
    except ImportError:
        raise UsageError(
            "export to AnnData needs the anndata package\n  fix: pip install 'tmesim[export]' "
            "(or anndata), or export --to csv"
        ) from None
    cells = res.cells(record)
    if not cells:
        raise UsageError(f"{res.path} holds no cell snapshot\n  fix: run with output.cells: true")
    voxel = float(res.f.attrs["voxel_um"])
    obs = pd.DataFrame(
        {c: np.asarray(v) for c, v in cells.items() if c not in ("x", "y", "z")},
        index=[str(i) for i in cells["id"]],
    )
    # the names the file was written with, else those of the kind registry
    names = list(res.f["cells"].attrs.get("kind_codes", registry.names()))
    obs["kind_name"] = pd.Categorical([str(names[k]) for k in cells["kind"]])
    adata = anndata.AnnData(
        X=np.zeros((len(obs), 0), np.float32),
        obs=obs,
        obsm={"spatial": _positions_um(cells, voxel)},
        uns={
            "tmesim": {
                "scenario_name": res.name,
                "seed": res.seed,
                "record": int(record % max(res.n_records, 1)),
                "time_h": float(res.time_h[record]),
                "scenario": res.scenario_yaml,
            }
        },
    )
    p = stem.with_suffix(".h5ad")
    adata.write_h5ad(p)
    return [p]


def export(source, to: str, output=None, *, record: int = -1) -> list[Path]:
    """Export a result file to ``csv``, ``vtk`` or ``anndata``; return the files written.

    ``output`` is the stem of the written names (default: the source without ``.h5``).
    """
    if to not in FORMATS:
        raise UsageError(f"unknown export format '{to}'\n  fix: choose one of {', '.join(FORMATS)}")
    source = Path(source)
    stem = Path(output) if output is not None else source.with_suffix("")
    if stem.suffix in (".csv", ".vtk", ".h5ad"):
        stem = stem.with_suffix("")
    if not stem.parent.exists():
        raise UsageError(f"output folder does not exist: {stem.parent}\n  fix: create it first")
    with load(source) as res:
        if res.n_records == 0:
            raise UsageError(f"{source} holds no complete record\n  fix: run the scenario first")
        if to == "csv":
            return _csv(res, stem)
        if to == "vtk":
            return _vtk(res, stem)
        return _anndata(res, stem, record)
