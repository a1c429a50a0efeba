"""One frame of the niche: tissue backdrop, cells coloured by type and state, a field overlay.

The frame is drawn as images (one pixel per lattice site), so a 500x500 lattice with 10^5 cells
costs the same as an empty one. :class:`FrameRenderer` builds the artists once and updates their
data per record, which is what makes movies fast; :func:`draw_frame` and :func:`snapshot` wrap it
for single pictures.

Colours. The cell palette is built from the colour-blind-safe sets of Okabe & Ito and of Paul
Tol; every pair of cell colours, and every cell colour against every tissue colour, stays apart
(CIE76 colour difference) under normal vision and simulated deuteranopia and protanopia
(``tests/test_viz.py`` checks it). Under coloured cells a field is drawn by default in
:data:`FIELD_CMAP_UNDER_CELLS`, a ramp of light greys: any hued colour map (viridis, magma,
cividis) passes through the hue of some cell colour (viridis's greens swallow M2 macrophages,
CIE76 difference 1-4), while every cell colour stays at least 10 units from every shade of the
grey ramp, under the same three kinds of vision (also checked). Field colour limits come from the whole run (robust
percentiles, :func:`field_limits`), so every frame of a movie shares one scale, and data beyond
the limits, whoever set them, get extend arrows on the colour bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import kinds as registry
from ..errors import UsageError
from ..io import Results, load


def _hex(h: str) -> tuple:
    return tuple(int(h[i : i + 2], 16) / 255 for i in (1, 3, 5))


#: cell categories drawn, in legend order: (name, RGB colour), from the looks of the kind
#: registry (:mod:`tmesim.kinds`) as imported; drawing reads the registry as it draws, so a kind
#: registered later is drawn too
CATEGORIES = tuple((label, _hex(colour)) for label, colour, _ in registry.legend())
_COLOURS = np.array([c for _, c in CATEGORIES], dtype=np.float32)

#: tissue codes of /geometry/tissue: (legend label, backdrop colour)
TISSUE_STYLE = {
    0: ("septum / interstitium", _hex("#E3DED6")),
    1: ("alveolar air", _hex("#FFFFFF")),
    2: ("capillary", _hex("#F2B8C6")),
    3: ("larger vessel", _hex("#C98C9E")),
    4: ("airway", _hex("#D8E4F2")),
}
#: tissue code -> backdrop colour
TISSUE_COLOURS = {code: colour for code, (_, colour) in TISSUE_STYLE.items()}
#: codes where no field is drawn (non-conducting lumens), so the backdrop shows through
_LUMEN = (1, 4)
#: codes drawn again above the field overlay, so the vasculature stays visible under it
_PERFUSED = (2, 3)
#: how cells are drawn over the backdrop and the field
CELL_STYLES = ("solid", "translucent", "outline", "none")
#: opacity of cells in the ``translucent`` style
TRANSLUCENT_ALPHA = 0.55
#: kind names of the ``kind`` column, in code order (the registry's, as imported)
KIND_NAMES = registry.names()
#: units of the per-cell columns that can colour cells (``color_by``)
CELL_COLUMN_UNITS = {
    "pdl1": "0-1 of maximum",
    "phenotype": "0-1",
    "drug": "\u00b5M",
    "pgp": "relative to MDR1",
    "payload": "\u00b5M drug-equivalent",
    "carrier": "\u00b5M drug-equivalent",
    "generation": "divisions",
    "divisions_left": "divisions",
    "resident": "1 = resident macrophage",
}


def cell_categories(cells: dict) -> np.ndarray:
    """Category index (into :data:`CATEGORIES`) of every cell of a snapshot, -1 if not drawn.

    Uses the ``kind`` and ``state`` codes of the file and the looks of each kind in the kind
    registry (:mod:`tmesim.kinds`): for T cells, macrophages and fibroblasts the quiescent state
    marks exhaustion, M2 polarisation and CAF activation.
    """
    kind = np.asarray(cells.get("kind", []), dtype=np.int64)
    state = np.asarray(cells.get("state", []), dtype=np.int64)
    out = np.full(kind.shape, -1, dtype=np.int64)
    index = {label: i for i, (label, _) in enumerate(_legend())}
    for k in registry.all_kinds():
        mine = kind == k.code
        if not mine.any():
            continue
        for look in k.looks:
            out[mine & np.isin(state, look.states)] = index[look.label]
    return out


def _legend() -> tuple:
    """The (label, RGB) of every look of the registered kinds (:data:`CATEGORIES` for the
    built-in kinds, longer while a test registers a kind of its own)."""
    return tuple((label, _hex(colour)) for label, colour, _ in registry.legend())


def _colours() -> np.ndarray:
    return np.array([c for _, c in _legend()], dtype=np.float32)


@dataclass
class _Grid:
    shape: tuple  # (nz, ny, nx)
    voxel_um: float


def _grid(res: Results) -> _Grid:
    g = res.f["fields"]
    nz = g["z_um"].shape[0] if "z_um" in g else 1
    return _Grid((nz, g["y_um"].shape[0], g["x_um"].shape[0]), float(res.f.attrs["voxel_um"]))


def _tissue3d(res: Results) -> np.ndarray | None:
    geo = res.f.get("geometry")
    if geo is None or "tissue" not in geo:
        return None
    return geo["tissue"][()]


#: percentiles of a field over the whole run that set its default colour limits
LIMIT_PERCENTILES = (0.5, 99.5)
#: at most this many values per field are read to find its percentiles (records x sites)
_LIMIT_SAMPLE = 2_000_000


def _field_values(res: Results, name: str):
    """Yield the values of a field drawn on screen, record by record: conducting sites that are
    not perfused (air and airways show the backdrop, vessels are drawn over the field)."""
    if name not in res.field_names:
        raise UsageError(
            f"field '{name}' is not stored in {res.path}\n  fix: choose one of "
            f"{', '.join(res.field_names) or '(none stored)'}, or run with output.fields"
        )
    tissue = _tissue3d(res)
    d = res.f["fields"][name]
    keep = None
    if tissue is not None and tissue.shape == d.shape[1:]:
        keep = ~np.isin(tissue, _LUMEN + _PERFUSED)
        if not keep.any():
            keep = None
    for r in range(res.n_records):
        v = d[r]
        v = v[keep] if keep is not None else v.ravel()
        yield v[np.isfinite(v)]


def field_range(res: Results, name: str, *, positive=False) -> tuple[float, float]:
    """``(min, max)`` of a stored field over every record, on the sites where it is drawn
    (tissue: not air, airways or vessels). With ``positive`` only values above zero count.
    Read one record at a time, so memory stays flat; ``(nan, nan)`` when there is no value."""
    lo, hi = np.inf, -np.inf
    for v in _field_values(res, name):
        if positive:
            v = v[v > 0]
        if v.size:
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    return (lo, hi) if lo <= hi else (float("nan"), float("nan"))


def field_limits(res: Results, name: str, *, positive=False) -> tuple[float, float]:
    """Default colour limits of a field: the :data:`LIMIT_PERCENTILES` of its values over the
    whole run on the sites where it is drawn, so that one transient hot spot does not flatten
    every other frame (values beyond get extend arrows). A sample of at most 2 million values
    is used; ``(nan, nan)`` when there is no value."""
    n = max(res.n_records, 1)
    d = res.f["fields"][name] if name in res.field_names else None
    per = int(np.prod(d.shape[1:])) if d is not None else 1
    stride = max(1, (n * per) // _LIMIT_SAMPLE)
    parts = []
    for v in _field_values(res, name):
        v = v[::stride]
        parts.append(v[v > 0] if positive else v)
    values = np.concatenate(parts) if parts else np.zeros(0)
    if values.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(values, LIMIT_PERCENTILES)
    if hi <= lo:  # mostly constant: fall back to the full range
        return field_range(res, name, positive=positive)
    return (float(lo), float(hi))


def cell_column_range(res: Results, column: str) -> tuple[float, float]:
    """``(min, max)`` of a per-cell column over every record (finite values)."""
    g = res.f.get("cells")
    if g is None or column not in g:
        raise UsageError(_no_column_message(res, column))
    end = int(g["offsets"][res.n_records]) if res.n_records else 0
    v = np.asarray(g[column][:end], dtype=np.float64)
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)


def cell_columns(res: Results) -> list[str]:
    """Per-cell columns that can colour cells (numbers other than ids and positions)."""
    g = res.f.get("cells")
    if g is None:
        return []
    skip = {"offsets", "id", "parent", "kind", "state", "x", "y", "z"}
    return [k for k in g if k not in skip]


def _no_column_message(res, column) -> str:
    return (
        f"cell column '{column}' is not stored in {res.path}\n  fix: choose one of "
        f"{', '.join(cell_columns(res)) or '(no cell snapshots; run with output.cells: true)'}"
    )


def _extend(lo, hi, vmin, vmax) -> str:
    """Colour-bar arrows for data beyond the limits: 'neither', 'min', 'max' or 'both'."""
    tol = 1e-6 * max(abs(vmax - vmin), 1e-30)
    below = np.isfinite(lo) and lo < vmin - tol
    above = np.isfinite(hi) and hi > vmax + tol
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (bool(below), bool(above)), "both"
    )


def _field_norm(res, field, vmin, vmax, log):
    """The colour normalisation of a field and the colour bar's extend arrows."""
    from matplotlib.colors import LogNorm, Normalize

    lo, hi = field_range(res, field)
    if vmin is None or vmax is None:
        dlo, dhi = field_limits(res, field, positive=log)
    if log:
        plo = dlo if vmin is None else vmin
        top = vmax if vmax is not None else (dhi if np.isfinite(dhi) and dhi > 0 else 1.0)
        bottom = vmin if vmin is not None else (plo if np.isfinite(plo) else top * 1e-3)
        bottom = max(bottom, top * 1e-6)
        if not 0 < bottom < top:
            raise UsageError(
                f"cannot draw '{field}' on a log scale from {bottom:g} to {top:g}\n  fix: give "
                "--vmin and --vmax above zero with vmin < vmax, or drop --log"
            )
        norm = LogNorm(bottom, top, clip=False)
    else:
        bottom = vmin if vmin is not None else (dlo if np.isfinite(dlo) else 0.0)
        top = vmax if vmax is not None else (dhi if np.isfinite(dhi) else 1.0)
        if top <= bottom:  # a constant field: a small symmetric window around its value
            if vmin is not None and vmax is not None:
                raise UsageError(
                    f"--vmin {vmin:g} is not below --vmax {vmax:g}\n  fix: give vmin < vmax"
                )
            pad = max(abs(top) * 0.05, 1e-12)
            bottom, top = bottom - pad, top + pad
        norm = Normalize(bottom, top, clip=False)
    return norm, _extend(lo, hi, norm.vmin, norm.vmax)


def _outline(cat: np.ndarray) -> np.ndarray:
    """Pixels of a category image (-1 = empty) that border another category or empty space."""
    edge = np.zeros(cat.shape, bool)
    pad = np.pad(cat, 1, constant_values=-1)
    centre = pad[1:-1, 1:-1]
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= pad[dy : dy + cat.shape[0], dx : dx + cat.shape[1]] != centre
    return edge & (cat >= 0)


#: opacity of the field over the tissue backdrop
FIELD_ALPHA = 0.8
#: default colour map of a field under cells: light to mid grey (matplotlib's Greys from 0.2 to
#: 0.55: its lightest shade stays apart from the white of alveolar air, so septa with little of
#: the field still show, and its darkest from every cell colour), registered with matplotlib
#: under this name on import
FIELD_CMAP_UNDER_CELLS = "light_greys"
#: default colour map of a field with no cells drawn over it
FIELD_CMAP = "viridis"


def _register_field_cmap() -> None:
    import matplotlib as mpl
    from matplotlib.colors import ListedColormap

    if FIELD_CMAP_UNDER_CELLS not in mpl.colormaps:
        ramp = mpl.colormaps["Greys"](np.linspace(0.2, 0.55, 256))
        mpl.colormaps.register(ListedColormap(ramp, name=FIELD_CMAP_UNDER_CELLS))


def default_field_cmap(cells: str = "solid") -> str:
    """The field's colour map when none is chosen: :data:`FIELD_CMAP_UNDER_CELLS` where cells
    are drawn over it (every cell colour stays visible on it), :data:`FIELD_CMAP` otherwise."""
    return FIELD_CMAP if cells == "none" else FIELD_CMAP_UNDER_CELLS


_register_field_cmap()


def _plane_cut(a: np.ndarray, plane: tuple) -> np.ndarray:
    """The 2-D cut of a (nz, ny, nx) array (a 2-D array is its own cut) along a plane:
    ``("z", k)`` rows y and columns x; ``("y", j)`` rows z and columns x; ``("x", i)`` rows z and
    columns y; ``("proj", 0)`` the maximum along z."""
    if a.ndim == 2:
        return a
    axis, k = plane
    if axis == "proj":
        return a.max(axis=0)
    return {"z": lambda: a[k], "y": lambda: a[:, k, :], "x": lambda: a[:, :, k]}[axis]()


class FrameRenderer:
    """Draw records of one result file onto a matplotlib figure, updating in place.

    Parameters
    ----------
    res : Results
        An open result file.
    field : str, optional
        Field drawn under the cells with a colour bar in its units.
    projection : bool
        3-D runs: draw every cell along z and the maximum of the field, over the tissue seen
        through the stack (a site shows septum if any plane has septum there), instead of one
        plane.
    z : int, optional
        3-D runs: the plane drawn (default: the middle one).
    vmin, vmax : float, optional
        Field colour limits (default: :func:`field_limits`, the 0.5th and 99.5th percentiles
        of the field over the whole run on the sites where it is drawn). Data beyond the
        limits get extend arrows on the colour bar.
    log : bool
        Field on a logarithmic colour scale.
    cmap : str, optional
        Matplotlib colour map of the field (default :func:`default_field_cmap`: light greys
        under cells, so that every cell colour, and a column's colour scale, stays visible;
        viridis when no cells are drawn).
    cells : str
        ``solid`` (opaque), ``translucent`` (the field shows through), ``outline`` (only the
        borders of groups of cells of one kind, the field shows inside) or ``none``.
    color_by : str, optional
        Colour cells by a per-cell column (``pgp``, ``drug``, ``pdl1``, ``payload``,
        ``phenotype``, ...) with its own colour bar, limits from the whole run.
    kinds : sequence of str, optional
        Draw only these kinds (names of the kind registry, :func:`tmesim.kinds.names`).
    figure : bool
        Build the matplotlib figure (default). Without it the renderer only blends lattice
        images (:meth:`composite`, any plane of a 3-D run), for the slice view and the viewer.
    """

    def __init__(
        self,
        res: Results,
        field: str | None = None,
        *,
        projection=False,
        dpi=100,
        z: int | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
        log: bool = False,
        cmap: str | None = None,
        cells: str = "solid",
        color_by: str | None = None,
        kinds=None,
        figure: bool = True,
    ):
        import matplotlib as mpl

        self.res = res
        self.field = field
        self.projection = projection
        self.grid = _grid(res)
        nz = self.grid.shape[0]
        self.mid = nz // 2 if z is None else int(z)
        if not 0 <= self.mid < nz:
            raise UsageError(
                f"z plane {z} is outside the lattice (planes 0..{nz - 1})\n  fix: give --z "
                f"between 0 and {nz - 1}"
            )
        #: the plane of the figure: ("z", k), or ("proj", 0) for the projection of a 3-D run
        self.plane = ("proj", 0) if projection and nz > 1 else ("z", self.mid)
        if field is not None and field not in res.field_names:
            raise UsageError(
                f"field '{field}' is not stored in {res.path}\n  fix: choose one of "
                f"{', '.join(res.field_names) or '(none stored)'}, or run with output.fields"
            )
        if cells not in CELL_STYLES:
            raise UsageError(
                f"unknown cell style '{cells}'\n  fix: choose one of {', '.join(CELL_STYLES)}"
            )
        if cmap is not None and cmap not in mpl.colormaps:
            raise UsageError(
                f"unknown colour map '{cmap}'\n  fix: choose a matplotlib colour map, e.g. "
                "viridis, magma, cividis, Greys"
            )
        self.cell_style = cells
        self.color_by = color_by
        self.kinds = None
        if kinds:
            known = registry.names()
            bad = [k for k in kinds if k not in known]
            if bad:
                raise UsageError(
                    f"unknown cell kind(s): {', '.join(bad)}\n  fix: choose from "
                    f"{', '.join(known)}"
                )
            self.kinds = np.array([known.index(k) for k in kinds])
        self._cell_norm = self._cell_cmap = None
        if color_by is not None:
            from matplotlib.colors import Normalize

            if color_by not in cell_columns(res):
                raise UsageError(_no_column_message(res, color_by))
            lo, hi = cell_column_range(res, color_by)
            self._cell_norm = Normalize(lo, hi if hi > lo else lo + 1.0)
            self._cell_cmap = mpl.colormaps["plasma"]
        self.field_norm = self.field_cmap = None
        self.field_extend = "neither"
        if field is not None:
            self.field_norm, self.field_extend = _field_norm(res, field, vmin, vmax, log)
            self.field_cmap = mpl.colormaps[cmap or default_field_cmap(cells)]
        self._tissue_all = _tissue3d(res)
        self._planes = {}  # plane -> (backdrop, lumen mask, vessel layer)
        self._ab = {}  # plane -> blend tables of composite()
        self.fig = None
        self.field_im = None
        if figure:
            self._build_figure(dpi)

    # ---------------------------------------------------------------- legends and colour bars
    def legend_entries(self) -> tuple[list, list]:
        """``(cells, tissue)``: the (label, RGB) pairs a legend shows: the cell categories
        drawn (none when cells are coloured by a column or not drawn) and the tissue present."""
        shown = []
        if self.color_by is None and self.cell_style != "none":
            shown = [
                (label, _hex(colour))
                for label, colour, codes in registry.legend()
                if self.kinds is None or np.isin(codes, self.kinds).any()
            ]
        tissue = []
        if self._tissue_all is not None:
            present = set(np.unique(self._tissue_all).tolist())
            tissue = [(n, c) for code, (n, c) in TISSUE_STYLE.items() if code in present]
        return shown, tissue

    @property
    def field_label(self) -> str:
        return f"{self.field} ({self.res.units(f'fields/{self.field}')})" if self.field else ""

    @property
    def cell_label(self) -> str:
        # a further agent's copy of a column (``drug_<agent>``) has the column's unit
        unit = CELL_COLUMN_UNITS.get(self.color_by) or next(
            (u for c, u in CELL_COLUMN_UNITS.items() if (self.color_by or "").startswith(c + "_")),
            "")
        return f"cells: {self.color_by}" + (f" ({unit})" if unit else "") if self.color_by else ""

    def draw_legends(self, lax) -> None:
        """The cell and tissue legends in an axes of their own (switched off)."""
        from matplotlib.patches import Patch

        lax.axis("off")
        shown, tissue = self.legend_entries()
        style = {"loc": "upper left", "fontsize": 9, "title_fontsize": 10, "frameon": False,
                 "alignment": "left"}
        first = None
        if shown:
            first = lax.legend(
                handles=[Patch(facecolor=c, edgecolor="0.3", lw=0.5, label=n) for n, c in shown],
                title="cells" + ("" if self.cell_style == "solid" else f" ({self.cell_style})"),
                bbox_to_anchor=(0.0, 1.0),
                **style,
            )
        if tissue:
            if first is not None:
                lax.add_artist(first)
            lax.legend(
                handles=[Patch(facecolor=c, edgecolor="0.6", lw=0.5, label=n) for n, c in tissue],
                title="tissue" if self.field is None else f"tissue ({self.field} on septa)",
                bbox_to_anchor=(0.0, 0.40 if first is not None else 1.0),
                **style,
            )

    def draw_colorbars(self, fig, field_cax=None, cell_cax=None) -> None:
        """Colour bars of the field (with extend arrows) and of the cell column, if drawn."""
        from matplotlib.cm import ScalarMappable

        if field_cax is not None and self.field is not None:
            mappable = self.field_im or ScalarMappable(norm=self.field_norm, cmap=self.field_cmap)
            cb = fig.colorbar(mappable, cax=field_cax, extend=self.field_extend)
            cb.set_label(self.field_label)
        if cell_cax is not None and self.color_by is not None:
            sm = ScalarMappable(norm=self._cell_norm, cmap=self._cell_cmap)
            fig.colorbar(sm, cax=cell_cax).set_label(self.cell_label)

    # ---------------------------------------------------------------- the figure
    def _build_figure(self, dpi) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        _, ny, nx = self.grid.shape
        extent = (0, nx * self.grid.voxel_um, ny * self.grid.voxel_um, 0)
        # columns: lattice (sized to its aspect), [field colour bar], [cell colour bar], legend
        size = min(5.04 * nx / ny, 10.0)
        widths = [size, 0.3]
        if self.field is not None:
            widths += [0.2, 0.95]
        if self.color_by is not None:
            widths += [0.2, 0.95]
        widths.append(2.0)
        self.fig = plt.figure(figsize=(sum(widths) / 0.86, 6.0), dpi=dpi)
        gs = self.fig.add_gridspec(
            1, len(widths), width_ratios=widths, left=0.11, right=0.99, bottom=0.09, top=0.93,
            wspace=0.0,
        )
        self.ax = self.fig.add_subplot(gs[0])
        self.ax.set_anchor("E")
        self.ax.set_xlabel("x (\u00b5m)")
        self.ax.set_ylabel("y (\u00b5m)")
        back, _, vessels = self._layers(self.plane)
        self._extent = extent
        self._static = [self.ax.imshow(back, extent=extent, interpolation="nearest")]
        self._bg = None
        self._dynamic = []  # artists redrawn per frame by render_rgba, bottom to top
        if self.field is not None:
            self.field_im = self.ax.imshow(
                self._field_frame(0),
                extent=extent,
                cmap=self.field_cmap,
                norm=self.field_norm,
                alpha=FIELD_ALPHA,
                interpolation="nearest",
            )
            self._static.append(self.field_im)
            if vessels is not None:
                self._static.append(
                    self.ax.imshow(vessels, extent=extent, interpolation="nearest")
                )
        self.cell_im = self.ax.imshow(
            np.zeros((ny, nx, 4), np.float32), extent=extent, interpolation="nearest"
        )
        field_cax = self.fig.add_subplot(gs[2]) if self.field is not None else None
        col = 4 if self.field is not None else 2
        cell_cax = self.fig.add_subplot(gs[col]) if self.color_by is not None else None
        self.draw_colorbars(self.fig, field_cax, cell_cax)
        self.title = self.ax.set_title("", loc="left", fontsize=11)
        self._static.append(self.cell_im)
        self._dynamic += [self._scale_bar(self.ax, nx * self.grid.voxel_um), self.title]
        self.draw_legends(self.fig.add_subplot(gs[-1]))

    def plane_shape(self, plane) -> tuple[int, int]:
        """``(rows, columns)`` of the image of a plane."""
        nz, ny, nx = self.grid.shape
        return {"z": (ny, nx), "proj": (ny, nx), "y": (nz, nx), "x": (nz, ny)}[plane[0]]

    def _plane_tissue(self, plane) -> np.ndarray | None:
        tissue = self._tissue_all
        if tissue is None or tissue.ndim == 2 or plane[0] != "proj":
            return None if tissue is None else _plane_cut(tissue, plane)
        # seen through the stack: vessels over septa over airways over air
        out = np.full(tissue.shape[1:], 1, dtype=tissue.dtype)
        for code in (4, 0, 2, 3):
            out[(tissue == code).any(axis=0)] = code
        return out

    def _layers(self, plane):
        """Backdrop (rows, cols, 3), lumen mask (or None) and vessel layer (rows, cols, 4, or
        None) of a plane; the last two only when a field is drawn."""
        if plane not in self._planes:
            tissue = self._plane_tissue(plane)
            back = np.ones((*self.plane_shape(plane), 3), np.float32)
            back[:] = TISSUE_COLOURS[0]
            lumen = vessels = None
            if tissue is not None:
                for code, colour in TISSUE_COLOURS.items():
                    back[tissue == code] = colour
                if self.field is not None:
                    lumen = np.isin(tissue, _LUMEN)
                    vessels = np.zeros((*tissue.shape, 4), np.float32)
                    for code in _PERFUSED:
                        vessels[tissue == code] = (*TISSUE_COLOURS[code], 0.85)
            self._planes[plane] = (back, lumen, vessels)
        return self._planes[plane]

    @staticmethod
    def _scale_bar(ax, width_um):
        from matplotlib.font_manager import FontProperties
        from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

        target = width_um / 5
        nice = 10 ** np.floor(np.log10(target))
        length = next(m * nice for m in (5, 2, 1) if m * nice <= target)
        bar = AnchoredSizeBar(
            ax.transData,
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
        ax.add_artist(bar)
        return bar

    def _field_frame(self, record: int, plane=None) -> np.ndarray:
        plane = plane or self.plane
        frame = _plane_cut(self.res.f["fields"][self.field][record], plane)
        lumen = self._layers(plane)[1]
        if lumen is not None:
            # no field in air and airways: the backdrop (white alveoli) shows through
            frame = np.ma.masked_array(frame, mask=lumen)
        return frame

    def _cell_layer(self, record: int, plane=None):
        """Per-site category image (-1 = empty) and RGB image of one record in a plane."""
        plane = plane or self.plane
        nz = self.grid.shape[0]
        rows, cols = self.plane_shape(plane)
        cat_img = np.full((rows, cols), -1, np.int64)
        rgb = np.zeros((rows, cols, 3), np.float32)
        cells = self.res.cells(record) if self.cell_style != "none" else {}
        if not cells:
            return cat_img, rgb
        cat = cell_categories(cells)
        keep = cat >= 0
        axis, k = plane
        if axis in "xy" or (axis == "z" and nz > 1):
            keep &= np.asarray(cells[axis]) == k
        if self.kinds is not None:
            keep &= np.isin(np.asarray(cells["kind"]), self.kinds)
        r_name, c_name = {"z": "yx", "proj": "yx", "y": "zx", "x": "zy"}[axis]
        r = np.asarray(cells[r_name])
        c = np.asarray(cells[c_name])
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        if not inside.all():
            from ..errors import warn

            warn(f"{self.res.path}: {int((~inside).sum())} cell(s) of record {record} lie "
                 "outside the lattice and are not drawn (a damaged file?)")
        keep &= inside
        r, c = r[keep], c[keep]
        cat_img[r, c] = cat[keep]
        if self.color_by is not None:
            values = np.asarray(cells[self.color_by], dtype=np.float64)[keep]
            rgb[r, c] = self._cell_cmap(self._cell_norm(values))[:, :3]
        else:
            rgb[r, c] = _colours()[cat[keep]]
        return cat_img, rgb

    def cell_image(self, record: int, plane=None) -> np.ndarray:
        """RGBA image of the cells of one record (transparent where there is none).

        The alpha channel follows the cell style: 1 (solid), :data:`TRANSLUCENT_ALPHA`
        (translucent), 1 on the border of each group of cells of one category and 0 inside it
        (outline).
        """
        cat_img, rgb = self._cell_layer(record, plane)
        img = np.zeros((*cat_img.shape, 4), np.float32)
        img[..., :3] = rgb
        occupied = cat_img >= 0
        if self.cell_style == "translucent":
            img[occupied, 3] = TRANSLUCENT_ALPHA
        elif self.cell_style == "outline":
            img[_outline(cat_img), 3] = 1.0
        else:
            img[occupied, 3] = 1.0
        return img

    def label(self, record: int) -> str:
        """The frame's title: scenario, day and hour, and the plane of a 3-D run."""
        t = float(self.res.f["time_h"][record])
        text = f"{self.res.name}    day {t / 24:.2f}  ({t:g} h)"
        if self.grid.shape[0] > 1:
            z_um = (self.mid + 0.5) * self.grid.voxel_um
            text += "  (max projection)" if self.projection else f"  (z plane {self.mid}, {z_um:g} \u00b5m)"
        return text

    def update(self, record: int, *, layers=True):
        """Draw one record; return the artists that changed."""
        artists = [self.title]
        if layers:
            self.cell_im.set_data(self.cell_image(record))
            artists.append(self.cell_im)
        if layers and self.field_im is not None:
            self.field_im.set_data(self._field_frame(record))
            artists.append(self.field_im)
        self.title.set_text(self.label(record))
        return artists

    def _blend_tables(self, plane):
        """Per-pixel constants of :meth:`composite`: out = A + B * colormap(field)."""
        back, lumen, vessels = self._layers(plane)
        b = np.zeros(back.shape[:2], np.float32)
        if self.field is not None:
            b[:] = FIELD_ALPHA
            if lumen is not None:
                b[lumen] = 0.0
        a = back * (1.0 - b)[..., None]
        if vessels is not None:
            av = vessels[..., 3:4]
            a = a * (1.0 - av) + av * vessels[..., :3]
            b = b * (1.0 - av[..., 0])
        lut = None
        if self.field is not None:
            cmap = self.field_cmap
            lut = cmap(np.linspace(0.0, 1.0, cmap.N))[:, :3].astype(np.float32)
        self._ab[plane] = (np.ascontiguousarray(a, np.float32), b[..., None], lut)

    def composite(self, record: int, plane=None) -> np.ndarray:
        """RGB image (rows, cols, 3), uint8, of one record in a plane (default: the figure's;
        ``("z", k)``, ``("y", j)`` or ``("x", i)`` in 3-D): backdrop, field, vessels and cells
        blended in NumPy as the layered images of :meth:`update` are drawn (the field through
        the colour map's lookup table and the field's norm, linear or log)."""
        plane = plane or self.plane
        if plane not in self._ab:
            self._blend_tables(plane)
        a, b, lut = self._ab[plane]
        if lut is not None:
            frame = np.asarray(np.ma.getdata(self._field_frame(record, plane)), np.float64)
            with np.errstate(all="ignore"):
                scaled = np.ma.getdata(self.field_norm(frame))
            idx = np.nan_to_num(scaled * (len(lut) - 1), nan=0.0, posinf=len(lut) - 1, neginf=0)
            idx = np.clip(idx, 0, len(lut) - 1).astype(np.intp)
            out = a + b * lut[idx]
        else:
            out = a.copy()
        cells = self.cell_image(record, plane)
        alpha = cells[..., 3:4]
        out = out * (1.0 - alpha) + alpha * cells[..., :3]
        return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

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

        if self.fig is not None:
            plt.close(self.fig)


def _open(source):
    return (source, False) if isinstance(source, Results) else (load(source), True)


def draw_frame(source, record: int = -1, field: str | None = None, *, projection=False, **look):
    """Return a matplotlib figure of one record (negative indices count from the end).

    ``look`` takes the keyword options of :class:`FrameRenderer` (``z``, ``vmin``, ``vmax``,
    ``log``, ``cmap``, ``cells``, ``color_by``, ``kinds``).
    """
    res, _ = _open(source)
    if record < 0:
        record += res.n_records
    r = FrameRenderer(res, field, projection=projection, **look)
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
    slices=None,
    dpi=120,
    **look,
) -> Path:
    """Write one frame (the record nearest ``time_h``, or ``record``; default: the last) to PNG.

    ``look`` takes the keyword options of :class:`FrameRenderer` (``z``, ``vmin``, ``vmax``,
    ``log``, ``cmap``, ``cells``, ``color_by``, ``kinds``). ``slices`` (3-D runs): ``True`` or a
    voxel ``(x, y, z)`` draws the three orthogonal planes through it (the centre for ``True``)
    instead of one plane (:func:`tmesim.viz.slices.draw_slices`).
    """
    import matplotlib.pyplot as plt

    res, owned = _open(source)
    try:
        if res.n_records == 0:
            raise UsageError(f"{res.path} holds no complete record\n  fix: run the scenario first")
        if record is None:
            record = res.record_at(time_h) if time_h is not None else res.n_records - 1
        if slices is not None and slices is not False:
            from .slices import draw_slices

            if projection or look.get("z") is not None:
                raise UsageError(
                    "--slices draws three planes through one voxel; --projection and --z do "
                    "not apply\n  fix: drop --projection/--z, or give the voxel as --slices X,Y,Z"
                )
            look.pop("z", None)
            fig = draw_slices(res, record, field, at=None if slices is True else slices, **look)
        else:
            renderer = FrameRenderer(res, field, projection=projection, **look)
            renderer.update(record)
            fig = renderer.fig
        fig.savefig(output, dpi=dpi)
        plt.close(fig)
    finally:
        if owned:
            res.close()
    return Path(output)
