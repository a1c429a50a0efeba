"""One frame of the niche: tissue backdrop, cells coloured by type and state, a field overlay.

The frame is drawn as images (one pixel per lattice site), so a 500x500 lattice with 10^5 cells
costs the same as an empty one. :class:`FrameRenderer` builds the artists once and updates their
data per record, which is what makes movies fast; :func:`draw_frame` and :func:`snapshot` wrap it
for single pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import Results, load

#: cell categories drawn, in legend order: (name, RGB colour)
CATEGORIES = (
    ("stem-like", (0.80, 0.10, 0.80)),
    ("tumour", (0.85, 0.15, 0.10)),
    ("tumour, hypoxic", (0.98, 0.60, 0.10)),
    ("necrotic", (0.25, 0.18, 0.12)),
    ("T cell, active", (0.10, 0.35, 0.95)),
    ("T cell, exhausted", (0.55, 0.70, 0.95)),
    ("macrophage M1", (0.10, 0.70, 0.20)),
    ("macrophage M2", (0.55, 0.75, 0.15)),
    ("fibroblast", (0.85, 0.75, 0.55)),
    ("CAF", (0.60, 0.45, 0.25)),
)
CATEGORY_INDEX = {name: i for i, (name, _) in enumerate(CATEGORIES)}
_COLOURS = np.array([c for _, c in CATEGORIES], dtype=np.float32)

#: tissue codes of /geometry/tissue and their backdrop colours
TISSUE_COLOURS = {
    0: (0.97, 0.95, 0.93),  # interstitium / septum
    1: (1.00, 1.00, 1.00),  # alveolar air
    2: (0.93, 0.80, 0.80),  # capillary
    3: (0.85, 0.65, 0.65),  # larger vessel
    4: (0.88, 0.92, 0.97),  # airway
}


def cell_categories(cells: dict) -> np.ndarray:
    """Category index (into :data:`CATEGORIES`) of every cell of a snapshot, -1 if not drawn.

    Uses the ``kind`` and ``state`` codes of the file: for T cells, macrophages and fibroblasts
    the quiescent state marks exhaustion, M2 polarisation and CAF activation.
    """
    kind = np.asarray(cells.get("kind", []), dtype=np.int64)
    state = np.asarray(cells.get("state", []), dtype=np.int64)
    out = np.full(kind.shape, -1, dtype=np.int64)
    necrotic = state == 2
    out[(kind == 1) & ~necrotic] = CATEGORY_INDEX["stem-like"]
    out[(kind == 0) & (state == 0)] = CATEGORY_INDEX["tumour"]
    out[(kind == 0) & (state == 1)] = CATEGORY_INDEX["tumour, hypoxic"]
    out[((kind == 0) | (kind == 1)) & necrotic] = CATEGORY_INDEX["necrotic"]
    # state QUIESCENT (1) marks exhausted T cells, M2 macrophages and CAFs
    alt = state == 1
    out[(kind == 2) & ~alt] = CATEGORY_INDEX["T cell, active"]
    out[(kind == 2) & alt] = CATEGORY_INDEX["T cell, exhausted"]
    out[(kind == 3) & ~alt] = CATEGORY_INDEX["macrophage M1"]
    out[(kind == 3) & alt] = CATEGORY_INDEX["macrophage M2"]
    out[(kind == 4) & ~alt] = CATEGORY_INDEX["fibroblast"]
    out[(kind == 4) & alt] = CATEGORY_INDEX["CAF"]
    return out


@dataclass
class _Grid:
    shape: tuple  # (nz, ny, nx)
    voxel_um: float


def _grid(res: Results) -> _Grid:
    g = res.f["fields"]
    nz = g["z_um"].shape[0] if "z_um" in g else 1
    return _Grid((nz, g["y_um"].shape[0], g["x_um"].shape[0]), float(res.f.attrs["voxel_um"]))


class FrameRenderer:
    """Draw records of one result file onto a matplotlib figure, updating in place.

    Parameters
    ----------
    res : Results
        An open result file.
    field : str, optional
        Field drawn under the cells with a colour bar in its units.
    projection : bool
        3-D runs: draw every cell along z and the maximum of the field, instead of the mid-plane.
    """

    def __init__(self, res: Results, field: str | None = None, *, projection=False, dpi=100):
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch

        self.res = res
        self.field = field
        self.projection = projection
        self.grid = _grid(res)
        nz, ny, nx = self.grid.shape
        self.mid = nz // 2
        if field is not None and field not in res.field_names:
            from ..errors import UsageError

            raise UsageError(
                f"field '{field}' is not stored in {res.path}\n  fix: choose one of "
                f"{', '.join(res.field_names) or '(none stored)'}, or run with output.fields"
            )
        extent = (0, nx * self.grid.voxel_um, ny * self.grid.voxel_um, 0)
        size = 6.4 * max(1.0, nx / ny) ** 0.5
        self.fig, self.ax = plt.subplots(figsize=(size + 2.6, 6.0), dpi=dpi)
        self.ax.set_xlabel("x (um)")
        self.ax.set_ylabel("y (um)")
        backdrop = self._backdrop(ny, nx)
        self.ax.imshow(backdrop, extent=extent, interpolation="nearest")
        self.field_im = None
        if field is not None:
            frame = self._field_frame(0)
            vmax = float(np.nanmax(res.f["fields"][field][0])) or 1.0
            self.field_im = self.ax.imshow(
                frame,
                extent=extent,
                cmap="viridis",
                vmin=0.0,
                vmax=vmax,
                alpha=0.75,
                interpolation="nearest",
            )
            cb = self.fig.colorbar(self.field_im, ax=self.ax, fraction=0.04, pad=0.02)
            cb.set_label(f"{field} ({res.units(f'fields/{field}')})")
        self.cell_im = self.ax.imshow(
            np.zeros((ny, nx, 4), np.float32), extent=extent, interpolation="nearest"
        )
        self.title = self.ax.set_title("")
        self._scale_bar(nx * self.grid.voxel_um, ny * self.grid.voxel_um)
        handles = [Patch(color=c, label=n) for n, c in CATEGORIES]
        self.ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.0 if field is None else 1.25, 1.0),
            fontsize=8,
            frameon=False,
        )
        self.fig.tight_layout()

    def _backdrop(self, ny, nx) -> np.ndarray:
        img = np.ones((ny, nx, 3), np.float32)
        img[:] = TISSUE_COLOURS[0]
        geo = self.res.f.get("geometry")
        if geo is not None and "tissue" in geo:
            tissue = geo["tissue"][()]
            if tissue.ndim == 3:
                tissue = tissue[self.mid]
            for code, colour in TISSUE_COLOURS.items():
                img[tissue == code] = colour
        return img

    def _scale_bar(self, width_um, height_um) -> None:
        target = width_um / 5
        nice = 10 ** np.floor(np.log10(target))
        for m in (5, 2, 1):
            if m * nice <= target:
                length = m * nice
                break
        x0 = width_um * 0.05
        y0 = height_um * 0.95
        self.ax.plot([x0, x0 + length], [y0, y0], color="black", lw=3, solid_capstyle="butt")
        self.ax.text(
            x0 + length / 2,
            y0 - height_um * 0.015,
            f"{length:g} um",
            ha="center",
            va="bottom",
            fontsize=8,
        )

    def _field_frame(self, record: int) -> np.ndarray:
        d = self.res.f["fields"][self.field]
        frame = d[record]
        if frame.ndim == 3:
            frame = frame.max(axis=0) if self.projection else frame[self.mid]
        return frame

    def cell_image(self, record: int) -> np.ndarray:
        """RGBA image of the cells of one record (transparent where there is none)."""
        nz, ny, nx = self.grid.shape
        img = np.zeros((ny, nx, 4), np.float32)
        cells = self.res.cells(record)
        if not cells:
            return img
        cat = cell_categories(cells)
        keep = cat >= 0
        if nz > 1 and not self.projection:
            keep &= np.asarray(cells["z"]) == self.mid
        y = np.asarray(cells["y"])[keep]
        x = np.asarray(cells["x"])[keep]
        img[y, x, :3] = _COLOURS[cat[keep]]
        img[y, x, 3] = 1.0
        return img

    def update(self, record: int):
        """Draw one record; return the artists that changed."""
        self.cell_im.set_data(self.cell_image(record))
        artists = [self.cell_im, self.title]
        if self.field_im is not None:
            self.field_im.set_data(self._field_frame(record))
            artists.append(self.field_im)
        t = float(self.res.f["time_h"][record])
        label = f"{self.res.name}   day {t / 24:.2f}"
        if self.grid.shape[0] > 1:
            label += "  (max projection)" if self.projection else f"  (z = {self.mid})"
        self.title.set_text(label)
        return artists

    def close(self) -> None:
        """Release the figure."""
        import matplotlib.pyplot as plt

        plt.close(self.fig)


def _open(source):
    return (source, False) if isinstance(source, Results) else (load(source), True)


def draw_frame(source, record: int = -1, field: str | None = None, *, projection=False):
    """Return a matplotlib figure of one record (negative indices count from the end)."""
    res, _ = _open(source)
    if record < 0:
        record += res.n_records
    r = FrameRenderer(res, field, projection=projection)
    r.update(record)
    return r.fig


def snapshot(
    source,
    output,
    *,
    time_h: float | None = None,
    record: int | None = None,
    field: str | None = None,
    projection=False,
    dpi=120,
) -> Path:
    """Write one frame (the record nearest ``time_h``, or ``record``; default: the last) to PNG."""
    res, owned = _open(source)
    try:
        if record is None:
            record = res.record_at(time_h) if time_h is not None else res.n_records - 1
        r = FrameRenderer(res, field, projection=projection)
        r.update(record)
        r.fig.savefig(output, dpi=dpi)
        r.close()
    finally:
        if owned:
            res.close()
    return Path(output)
