"""Three orthogonal slices of a 3-D run: the xy, xz and yz planes through one voxel.

The planes share the colour scales, palette and cell styles of :class:`FrameRenderer` (each
panel is its :meth:`~FrameRenderer.composite` of that plane) and are laid out as an
orthogonal view: xy top left, xz below it (same x axis), yz to its right (same y axis), with
dashed lines where the other two planes cut each panel. Cells are drawn in the plane that holds
them, so no cell appears outside the tissue it sits in.
"""

from __future__ import annotations

from ..errors import UsageError
from .frames import FrameRenderer, _open


def parse_voxel(text: str) -> tuple[int, int, int]:
    """``"X,Y,Z"`` voxel indices (the command line's ``--slices 10,20,3``)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 3:
            raise ValueError
        return tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--slices takes a voxel as X,Y,Z (three whole numbers), got '{text}'\n  fix: e.g. "
            "--slices 20,15,3, or --slices alone for the centre"
        ) from None


def _check_voxel(shape, at) -> tuple[int, int, int]:
    nz, ny, nx = shape
    if nz < 2:
        raise UsageError(
            "orthogonal slices need a 3-D result (this one has a single z plane)\n  fix: drop "
            "--slices, or run a scenario with domain.shape [nz, ny, nx]"
        )
    if at is None:
        return nx // 2, ny // 2, nz // 2
    x, y, z = (int(v) for v in at)
    for name, v, n in (("x", x, nx), ("y", y, ny), ("z", z, nz)):
        if not 0 <= v < n:
            raise UsageError(
                f"slice voxel {name} = {v} is outside the lattice (0..{n - 1})\n  fix: give "
                f"--slices X,Y,Z within ({nx - 1}, {ny - 1}, {nz - 1})"
            )
    return x, y, z


def draw_slices(source, record: int = -1, field: str | None = None, *, at=None, dpi=100, **look):
    """Return a matplotlib figure of the xy, xz and yz planes of one record through the voxel
    ``at = (x, y, z)`` (indices; default the centre of the lattice).

    ``look`` takes the keyword options of :class:`FrameRenderer` other than ``z`` and
    ``projection`` (``vmin``, ``vmax``, ``log``, ``cmap``, ``cells``, ``color_by``, ``kinds``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    res, _ = _open(source)
    if record < 0:
        record += res.n_records
    r = FrameRenderer(res, field, figure=False, **look)
    nz, ny, nx = r.grid.shape
    x, y, z = _check_voxel(r.grid.shape, at)
    v = r.grid.voxel_um
    xy = r.composite(record, ("z", z))
    xz = r.composite(record, ("y", y))
    yz = r.composite(record, ("x", x)).transpose(1, 0, 2)  # rows y, columns z
    # columns: xy/xz, yz, [field colour bar], [cell colour bar], legend (lattice widths in voxels)
    unit = 5.0 / max(nx + nz, ny + nz)
    widths = [nx * unit, nz * unit, 0.25]
    extra = [c for c in (field, r.color_by) if c is not None]
    for _ in extra:
        widths += [0.18, 0.95]
    widths.append(2.0)
    heights = [ny * unit, nz * unit]
    width, height = sum(widths) + 1.1, sum(heights) + 1.7  # inches, with the margins
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    gs = fig.add_gridspec(
        2, len(widths), width_ratios=widths, height_ratios=heights, left=0.85 / width,
        right=0.99, bottom=0.7 / height, top=1 - 1.0 / height, wspace=0.06, hspace=0.06,
    )
    a_xy = fig.add_subplot(gs[0, 0])
    a_xz = fig.add_subplot(gs[1, 0], sharex=a_xy)
    a_yz = fig.add_subplot(gs[0, 1], sharey=a_xy)
    a_xy.imshow(xy, extent=(0, nx * v, ny * v, 0), interpolation="nearest")
    a_xz.imshow(xz, extent=(0, nx * v, nz * v, 0), interpolation="nearest")
    a_yz.imshow(yz, extent=(0, nz * v, ny * v, 0), interpolation="nearest")
    cut = {"color": "black", "lw": 0.8, "ls": "--", "alpha": 0.7}
    xc, yc, zc = ((i + 0.5) * v for i in (x, y, z))
    a_xy.axvline(xc, **cut)
    a_xy.axhline(yc, **cut)
    a_xz.axvline(xc, **cut)
    a_xz.axhline(zc, **cut)
    a_yz.axvline(zc, **cut)
    a_yz.axhline(yc, **cut)
    a_xy.set_ylabel("y (\u00b5m)")
    a_xz.set_xlabel("x (\u00b5m)")
    a_xz.set_ylabel("z (\u00b5m)")
    a_yz.set_xlabel("z (\u00b5m)")
    a_yz.xaxis.set_label_position("top")
    a_yz.xaxis.tick_top()
    a_xy.tick_params(labelbottom=False)
    a_yz.tick_params(labelleft=False)
    for ax, text in ((a_xy, f"xy at z {z}"), (a_xz, f"xz at y {y}"), (a_yz, f"yz at x {x}")):
        ax.text(0.01, 0.99, text, transform=ax.transAxes, va="top", ha="left", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.6", "pad": 1.5})
    r._scale_bar(a_xy, nx * v)
    col = 3
    caxes = []
    for _ in extra:
        caxes.append(fig.add_subplot(gs[:, col]))
        col += 2
    field_cax = caxes.pop(0) if field is not None else None
    r.draw_colorbars(fig, field_cax, caxes[0] if caxes else None)
    r.draw_legends(fig.add_subplot(gs[:, -1]))
    t = float(res.f["time_h"][record])
    fig.suptitle(
        f"{res.name}    day {t / 24:.2f}  ({t:g} h)    slices through voxel ({x}, {y}, {z}) = "
        f"({xc:g}, {yc:g}, {zc:g}) \u00b5m", x=0.02, y=1 - 0.12 / height, ha="left", va="top",
        fontsize=10,
    )
    return fig


__all__ = ["draw_slices", "parse_voxel"]
