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

#: tissue codes of /geometry/tissue: (legend label, backdrop colour)
TISSUE_STYLE = {
    0: ("septum / interstitium", (0.90, 0.86, 0.80)),
    1: ("alveolar air", (1.00, 1.00, 1.00)),
    2: ("capillary", (0.95, 0.55, 0.75)),
    3: ("larger vessel", (0.70, 0.25, 0.45)),
    4: ("airway", (0.80, 0.88, 0.97)),
}
#: tissue code -> backdrop colour
TISSUE_COLOURS = {code: colour for code, (_, colour) in TISSUE_STYLE.items()}
#: codes where no field is drawn (non-conducting lumens), so the backdrop shows through
_LUMEN = (1, 4)
#: codes drawn again above the field overlay, so the vasculature stays visible under it
_PERFUSED = (2, 3)


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
        # columns: lattice (sized to its aspect), colour bar (with a field), legend
        size = min(5.04 * nx / ny, 10.0)
        widths = [size, 0.15, 0.2, 0.85, 2.0] if field is not None else [size, 0.3, 2.0]
        self.fig = plt.figure(figsize=(sum(widths) / 0.86, 6.0), dpi=dpi)
        gs = self.fig.add_gridspec(
            1, len(widths), width_ratios=widths, left=0.11, right=0.99, bottom=0.09, top=0.93,
            wspace=0.0,
        )
        self.ax = self.fig.add_subplot(gs[0])
        self.ax.set_anchor("E")
        self.ax.set_xlabel("x (\u00b5m)")
        self.ax.set_ylabel("y (\u00b5m)")
        tissue = self._tissue()
        self._extent = extent
        self._back = self._backdrop(tissue, ny, nx)
        self._static = [self.ax.imshow(self._back, extent=extent, interpolation="nearest")]
        self._vessels = None
        self.field_im = None
        self._lumen = None
        self._bg = None
        self._dynamic = []  # artists redrawn per frame by render_rgba, bottom to top
        if field is not None:
            if tissue is not None:
                self._lumen = np.isin(tissue, _LUMEN)
            frame = self._field_frame(0)
            vmax = float(np.nanmax(res.f["fields"][field][0])) or 1.0
            self.field_im = self.ax.imshow(
                frame,
                extent=extent,
                cmap="viridis",
                vmin=0.0,
                vmax=vmax,
                alpha=0.8,
                interpolation="nearest",
            )
            cax = self.fig.add_subplot(gs[2])
            cb = self.fig.colorbar(self.field_im, cax=cax)
            cb.set_label(f"{field} ({res.units(f'fields/{field}')})")
            self._static.append(self.field_im)
            if tissue is not None:
                vessels = np.zeros((ny, nx, 4), np.float32)
                for code in _PERFUSED:
                    vessels[tissue == code] = (*TISSUE_COLOURS[code], 0.85)
                self._vessels = vessels
                self._static.append(
                    self.ax.imshow(vessels, extent=extent, interpolation="nearest")
                )
        self.cell_im = self.ax.imshow(
            np.zeros((ny, nx, 4), np.float32), extent=extent, interpolation="nearest"
        )
        self.title = self.ax.set_title("", loc="left", fontsize=11)
        self._static.append(self.cell_im)
        self._dynamic += [self._scale_bar(nx * self.grid.voxel_um), self.title]
        lax = self.fig.add_subplot(gs[-1])
        lax.axis("off")
        cells = lax.legend(
            handles=[Patch(color=c, label=n) for n, c in CATEGORIES],
            title="cells",
            loc="upper left",
            bbox_to_anchor=(0.0, 1.0),
            fontsize=8,
            title_fontsize=9,
            frameon=False,
            alignment="left",
        )
        if tissue is not None:
            present = set(np.unique(tissue).tolist())
            lax.add_artist(cells)
            lax.legend(
                handles=[
                    Patch(facecolor=c, edgecolor="0.6", lw=0.5, label=n)
                    for code, (n, c) in TISSUE_STYLE.items()
                    if code in present
                ],
                title="tissue" if field is None else f"tissue ({field} on septa)",
                loc="upper left",
                bbox_to_anchor=(0.0, 0.48),
                fontsize=8,
                title_fontsize=9,
                frameon=False,
                alignment="left",
            )

    def _tissue(self) -> np.ndarray | None:
        geo = self.res.f.get("geometry")
        if geo is None or "tissue" not in geo:
            return None
        tissue = geo["tissue"][()]
        if tissue.ndim == 3:
            tissue = tissue[self.mid]
        return tissue

    @staticmethod
    def _backdrop(tissue, ny, nx) -> np.ndarray:
        img = np.ones((ny, nx, 3), np.float32)
        img[:] = TISSUE_COLOURS[0]
        if tissue is not None:
            for code, colour in TISSUE_COLOURS.items():
                img[tissue == code] = colour
        return img

    def _scale_bar(self, width_um) -> None:
        from matplotlib.font_manager import FontProperties
        from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

        target = width_um / 5
        nice = 10 ** np.floor(np.log10(target))
        length = next(m * nice for m in (5, 2, 1) if m * nice <= target)
        bar = AnchoredSizeBar(
            self.ax.transData,
            length,
            f"{length:g} \u00b5m",
            "lower left",
            pad=0.4,
            borderpad=0.6,
            sep=3,
            frameon=True,
            size_vertical=width_um / 150,
            color="black",
            fontproperties=FontProperties(size=9),
        )
        bar.patch.set_alpha(0.85)
        bar.patch.set_edgecolor("0.5")
        self.ax.add_artist(bar)
        return bar

    def _field_frame(self, record: int) -> np.ndarray:
        d = self.res.f["fields"][self.field]
        frame = d[record]
        if frame.ndim == 3:
            frame = frame.max(axis=0) if self.projection else frame[self.mid]
        if self._lumen is not None:
            # no field in air and airways: the backdrop (white alveoli) shows through
            frame = np.ma.masked_array(frame, mask=self._lumen)
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
        y = np.asarray(cells["y"])
        x = np.asarray(cells["x"])
        inside = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
        if not inside.all():
            from ..errors import warn

            warn(f"{self.res.path}: {int((~inside).sum())} cell(s) of record {record} lie "
                 "outside the lattice and are not drawn (a damaged file?)")
        keep &= inside
        y, x = y[keep], x[keep]
        img[y, x, :3] = _COLOURS[cat[keep]]
        img[y, x, 3] = 1.0
        return img

    def update(self, record: int, *, layers=True):
        """Draw one record; return the artists that changed."""
        artists = [self.title]
        if layers:
            self.cell_im.set_data(self.cell_image(record))
            artists.append(self.cell_im)
        if layers and self.field_im is not None:
            self.field_im.set_data(self._field_frame(record))
            artists.append(self.field_im)
        t = float(self.res.f["time_h"][record])
        label = f"{self.res.name}    day {t / 24:.2f}  ({t:g} h)"
        if self.grid.shape[0] > 1:
            label += "  (max projection)" if self.projection else f"  (z = {self.mid})"
        self.title.set_text(label)
        return artists

    def _blend_tables(self):
        """Per-pixel constants of :meth:`composite`: out = A + B * colormap(field)."""
        back = self._back.astype(np.float32)
        b = np.zeros(back.shape[:2], np.float32)
        if self.field_im is not None:
            b[:] = self.field_im.get_alpha()
            if self._lumen is not None:
                b[self._lumen] = 0.0
        a = back * (1.0 - b)[..., None]
        if self._vessels is not None:
            av = self._vessels[..., 3:4]
            a = a * (1.0 - av) + av * self._vessels[..., :3]
            b = b * (1.0 - av[..., 0])
        lut = None
        if self.field_im is not None:
            lut = self.field_im.cmap(np.linspace(0.0, 1.0, self.field_im.cmap.N))[:, :3]
            lut = lut.astype(np.float32)
        self._ab = (np.ascontiguousarray(a, np.float32), b[..., None], lut)

    def composite(self, record: int) -> np.ndarray:
        """RGB image (ny, nx, 3), uint8, of one record: backdrop, field, vessels and cells
        blended in NumPy as the layered images of :meth:`update` are drawn (the field through
        the colour map's lookup table)."""
        if getattr(self, "_ab", None) is None:
            self._blend_tables()
        a, b, lut = self._ab
        if lut is not None:
            frame = np.asarray(self._field_frame(record).data, np.float32)
            norm = self.field_im.norm
            scale = (len(lut) - 1) / max(norm.vmax - norm.vmin, 1e-30)
            idx = np.nan_to_num((frame - norm.vmin) * scale, nan=0.0)
            idx = np.clip(idx, 0, len(lut) - 1).astype(np.intp)
            out = a + b * lut[idx]
        else:
            out = a.copy()
        nz = self.grid.shape[0]
        cells = self.res.cells(record)
        if cells:
            cat = cell_categories(cells)
            keep = cat >= 0
            if nz > 1 and not self.projection:
                keep &= np.asarray(cells["z"]) == self.mid
            out[np.asarray(cells["y"])[keep], np.asarray(cells["x"])[keep]] = _COLOURS[cat[keep]]
        return (out * 255.0 + 0.5).astype(np.uint8)

    def render_rgba(self, record: int) -> np.ndarray:
        """Draw one record and return the figure's pixels, (height, width, 4) uint8.

        For movies. What does not change between records (axes, ticks, colour bar, legends) is
        rasterised once; each call blends the lattice layers in NumPy (:meth:`composite`),
        restores the background and draws one image, the scale bar and the title, several
        times faster than a full redraw. The array is a view of the canvas buffer: copy it
        before the next call if it must be kept.
        """
        canvas = self.fig.canvas
        if self._bg is None:
            _, ny, nx = self.grid.shape
            self._comp = self.ax.imshow(
                np.zeros((ny, nx, 3), np.uint8), extent=self._extent, interpolation="nearest"
            )
            self._dynamic.insert(0, self._comp)
            for a in self._static:
                a.set_visible(False)
            for a in self._dynamic:
                a.set_animated(True)
            canvas.draw()
            self._bg = canvas.copy_from_bbox(self.fig.bbox)
            for a in self._dynamic:
                a.set_animated(False)
        self.update(record, layers=False)
        self._comp.set_data(self.composite(record))
        canvas.restore_region(self._bg)
        for a in self._dynamic:
            self.fig.draw_artist(a)
        return np.asarray(canvas.buffer_rgba())

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
        if res.n_records == 0:
            from ..errors import UsageError

            raise UsageError(f"{res.path} holds no complete record\n  fix: run the scenario first")
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
