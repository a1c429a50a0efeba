"""Rendering: frames are not blank, legend colours sit where the cells are, movies have the
expected frame count, and a missing ffmpeg for MP4 is a clean usage error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tmesim
from tmesim import viz
from tmesim.cli import main
from tmesim.viz.frames import _COLOURS, CATEGORIES, FrameRenderer, _outline, cell_categories


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("viz") / "small.h5"
    tmesim.run(
        "scenarios/tiny.yaml",
        out,
        overrides=[
            "time.duration_h=6",
            "time.record_every_h=1",
            "therapy=[{agent: doxorubicin, dose_mg_per_kg: 5.0, start_h: 2.0}]",
            # the panels below are about the populations: without the lymph node's metrics in
            # cells (fractions of a primed cell would put the count panel on a log axis)
            "cells.tcell.priming.enabled=false",
        ],
    )
    return out


def test_cell_image_colours_match_categories(small_run):
    with tmesim.load(small_run) as res:
        r = FrameRenderer(res, "oxygen")
        img = r.cell_image(res.n_records - 1)
        cells = res.cells(res.n_records - 1)
        r.close()
    cat = cell_categories(cells)
    assert (cat >= 0).all()
    assert img[..., 3].sum() == len(cat)  # one opaque pixel per cell, nothing else
    np.testing.assert_allclose(img[cells["y"], cells["x"], :3], _COLOURS[cat])


def test_rendered_frame_is_not_blank_and_shows_tumour_colour(small_run):
    with tmesim.load(small_run) as res:
        r = FrameRenderer(res)
        r.update(res.n_records - 1)
        r.fig.canvas.draw()
        rgba = np.asarray(r.fig.canvas.buffer_rgba())[..., :3].astype(float) / 255
        r.close()
    assert rgba.std() > 0.05
    tumour = np.array(dict(CATEGORIES)["tumour"])
    close = np.abs(rgba - tumour).max(axis=-1) < 0.02
    # far more tumour-coloured pixels than the legend swatch alone provides
    assert close.sum() > 200


def test_snapshot_by_time_and_plot(small_run, tmp_path):
    png = viz.snapshot(small_run, tmp_path / "s.png", time_h=viz.parse_time_h("3h"), field="oxygen")
    assert png.stat().st_size > 10_000
    fig = viz.plot_timeseries(small_run, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    # one panel per unit, each with a labelled y axis; counts on the cell panel
    visible = [ax for ax in fig.axes if ax.get_visible()]
    ylabels = [ax.get_ylabel() for ax in visible]
    assert ylabels[0] == "cells" and "fraction (0-1)" in ylabels and "oxygen (mmHg)" in ylabels
    cells_ax = visible[0]
    names = {line.get_label() for line in cells_ax.lines}
    assert set(tmesim.model.POPULATIONS) <= names and "tumor burden" in names
    frac_ax = visible[ylabels.index("fraction (0-1)")]
    assert frac_ax.get_ylim()[1] < 1.1
    # the dose of the fixture's therapy is marked once in the legend of every panel
    for ax in visible:
        doses = [line for line in ax.lines if line.get_label().startswith("dose: ")]
        assert len(doses) == 1 and doses[0].get_xdata()[0] == pytest.approx(2.0 / 24)


def test_counts_spanning_decades_get_a_log_axis(small_run, tmp_path):
    from tmesim.viz.plots import spans_decades

    assert spans_decades([("tumor", [10, 1200]), ("stem", [0, 9]), ("necrotic", [0, 0])])
    assert not spans_decades([("tumor", [10, 85]), ("stem", [2, 2]), ("none", [np.nan])])
    fig = viz.plot_timeseries(small_run)  # tumour tens of cells, stem-like cells a few
    assert fig.axes[0].get_yscale() == "linear"
    tmesim.run("scenarios/tiny.yaml", tmp_path / "d.h5", overrides=[
        "time.duration_h=1", "cells.tumor.initial.count=400", "cells.stem.initial.count=1",
        "cells.tcell.initial.count=1", "cells.macrophage.initial.count=1",
        "cells.fibroblast.initial.count=1"])
    fig = viz.plot_timeseries(tmp_path / "d.h5")
    assert fig.axes[0].get_yscale() == "symlog" and "log scale" in fig.axes[0].get_ylabel()


def test_fractions_decades_below_the_others_get_their_own_panel():
    from tmesim.viz.plots import SMALL_FRACTIONS, _groups

    class Res:  # the two things _groups reads of a result file
        def __init__(self, metrics):
            self.counts = {"tumor": np.array([10.0, 1200.0])}
            self.metrics = metrics

        def units(self, key):
            return "1"

    res = Res({"hypoxic_fraction": np.array([0.0, 0.12]),
               "delivered_fraction": np.array([0.0, 2.9e-7]),
               "stem_fraction": np.array([0.05, 0.02]),
               "caf_fraction": np.array([0.0, 0.0])})
    groups = _groups(res, list(res.metrics))
    assert [n for n, _ in groups["1"]] == ["hypoxic_fraction", "stem_fraction", "caf_fraction"]
    assert [n for n, _ in groups[SMALL_FRACTIONS]] == ["delivered_fraction"]
    res = Res({"hypoxic_fraction": np.array([0.0, 0.12]), "stem_fraction": np.array([0.02])})
    assert SMALL_FRACTIONS not in _groups(res, list(res.metrics))


def test_gif_has_expected_frame_count(small_run, tmp_path):
    from PIL import Image

    out = tmp_path / "m.gif"
    assert main(["animate", str(small_run), "-o", str(out), "--every", "2", "--field", "oxygen"]) == 0
    with tmesim.load(small_run) as res:
        expected = len(range(0, res.n_records, 2))
    with Image.open(out) as im:
        assert im.n_frames == expected


def test_mp4_without_ffmpeg_is_usage_error(small_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    code = main(["animate", str(small_run), "-o", str(tmp_path / "m.mp4")])
    err = capsys.readouterr().err
    assert code == 2
    assert "fix:" in err and "imageio-ffmpeg" in err
    assert not (tmp_path / "m.mp4").exists()


def test_unknown_field_and_bad_time(small_run, tmp_path, capsys):
    assert main(["snapshot", str(small_run), "-o", str(tmp_path / "a.png"), "--field", "nope"]) == 2
    assert "oxygen" in capsys.readouterr().err
    assert main(["snapshot", str(small_run), "-o", str(tmp_path / "a.png"), "--time", "7 weeks"]) == 2


@pytest.mark.parametrize(
    ("text", "hours"), [("7d", 168.0), ("36h", 36.0), ("90min", 1.5), ("2.5", 2.5), ("1e1h", 10.0)]
)
def test_parse_time(text, hours):
    assert viz.parse_time_h(text) == pytest.approx(hours)


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory):
    out = tmp_path_factory.mktemp("viz3d") / "small3d.h5"
    tmesim.run(
        "scenarios/tiny.yaml",
        out,
        overrides=["domain.shape=[7, 30, 30]", "time.duration_h=3", "time.record_every_h=1"],
    )
    return out


def test_3d_frames_show_the_mid_plane_or_the_projection(run_3d, tmp_path):
    with tmesim.load(run_3d) as res:
        last = res.n_records - 1
        cells = res.cells(last)
        oxygen = res.field("oxygen", record=last)
        mid = FrameRenderer(res, "oxygen")
        proj = FrameRenderer(res, "oxygen", projection=True)
        img_mid, img_proj = mid.cell_image(last), proj.cell_image(last)
        f_mid, f_proj = mid._field_frame(last), proj._field_frame(last)
        mid.close()
        proj.close()
    assert mid.mid == 3
    # the mid-plane shows exactly the cells with z == 3; the projection every occupied column
    in_plane = cells["z"] == 3
    assert img_mid[..., 3].sum() == np.unique(cells["y"][in_plane] * 30 + cells["x"][in_plane]).size
    assert img_proj[..., 3].sum() == np.unique(cells["y"] * 30 + cells["x"]).size
    assert img_proj[..., 3].sum() > img_mid[..., 3].sum() > 0
    np.testing.assert_array_equal(np.ma.getdata(f_mid), oxygen[3])
    np.testing.assert_array_equal(np.ma.getdata(f_proj), oxygen.max(axis=0))
    with tmesim.load(run_3d) as res:
        plane = FrameRenderer(res, z=1)
        assert plane.cell_image(last)[..., 3].sum() == np.unique(
            cells["y"][cells["z"] == 1] * 30 + cells["x"][cells["z"] == 1]
        ).size
        plane.close()
    for extra in ([], ["--projection"], ["--z", "0"]):
        png = tmp_path / f"s{len(extra)}.png"
        assert main(["snapshot", str(run_3d), "-o", str(png), "--field", "oxygen", *extra]) == 0
        assert png.stat().st_size > 10_000


def test_orthogonal_slices_hold_the_cells_and_field_of_their_plane(run_3d, tmp_path):
    from tmesim.viz.slices import draw_slices

    with tmesim.load(run_3d) as res:
        last = res.n_records - 1
        cells = res.cells(last)
        oxygen = res.field("oxygen", record=last)
        r = FrameRenderer(res, "oxygen", figure=False, cells="none")
        with_cells = FrameRenderer(res, "oxygen", figure=False)
        x, y, z = 12, 17, 2
        for plane, keep, rows, cols, cut in (
            (("z", z), cells["z"] == z, "y", "x", oxygen[z]),
            (("y", y), cells["y"] == y, "z", "x", oxygen[:, y, :]),
            (("x", x), cells["x"] == x, "z", "y", oxygen[:, :, x]),
        ):
            img = with_cells.cell_image(last, plane)
            assert keep.any() and img.shape[:2] == cut.shape
            # exactly the cells whose coordinate lies on the plane, at their (row, column)
            assert img[..., 3].sum() == np.unique(cells[rows][keep] * 100 + cells[cols][keep]).size
            assert (img[cells[rows][keep], cells[cols][keep], 3] == 1).all()
            np.testing.assert_array_equal(np.ma.getdata(r._field_frame(last, plane)), cut)
            # the blended plane: the field's colour where tissue conducts, as in one plane's frame
            rgb = r.composite(last, plane)
            assert rgb.shape == (*cut.shape, 3)
        np.testing.assert_array_equal(r.composite(last, ("z", z)), FrameRenderer(
            res, "oxygen", figure=False, cells="none", z=z).composite(last))
        fig = draw_slices(res, last, "oxygen", at=(x, y, z))
        assert [a.get_images()[0].get_array().shape[:2] for a in fig.axes[:3]] == [
            (30, 30), (7, 30), (30, 7)]
        import matplotlib.pyplot as plt

        plt.close(fig)
    png = tmp_path / "slices.png"
    assert main(["snapshot", str(run_3d), "-o", str(png), "--slices", "--field", "oxygen"]) == 0
    assert png.stat().st_size > 10_000
    assert main(["snapshot", str(run_3d), "-o", str(png), "--slices", "12,17,2", "--color-by",
                 "pgp", "--overwrite"]) == 0


def test_slice_errors_are_usage_errors(run_3d, small_run, tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert main(["snapshot", str(run_3d), "-o", out, "--slices", "1,2"]) == 2
    assert main(["snapshot", str(run_3d), "-o", out, "--slices", "1,2,9"]) == 2
    assert "outside the lattice" in capsys.readouterr().err
    assert main(["snapshot", str(run_3d), "-o", out, "--slices", "--projection"]) == 2
    assert main(["snapshot", str(small_run), "-o", out, "--slices"]) == 2
    assert "3-D" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- look of a frame
def _lab(rgb):
    """CIE L*a*b* (D65) of sRGB colours in 0-1."""
    c = np.asarray(rgb, float)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    t = (lin @ m.T) / m.sum(axis=1)
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


#: colour-vision-deficiency simulation matrices on linear RGB (Machado et al. 2009, severity 1)
_CVD = {
    "normal": np.eye(3),
    "deuteranopia": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
    ),
    "protanopia": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
    ),
}


@pytest.mark.parametrize("vision", list(_CVD))
def test_cell_palette_is_distinct_and_visible_on_every_tissue(vision):
    from tmesim.viz.frames import TISSUE_COLOURS

    def seen(rgb):
        c = np.asarray(rgb, float)
        lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        out = np.clip(lin @ _CVD[vision].T, 0, 1)
        return _lab(np.where(out <= 0.0031308, out * 12.92, 1.055 * out ** (1 / 2.4) - 0.055))

    cells = seen([c for _, c in CATEGORIES])
    tissue = seen(list(TISSUE_COLOURS.values()))
    pair = np.linalg.norm(cells[:, None] - cells[None], axis=-1)
    pair[np.diag_indices(len(cells))] = np.inf
    assert pair.min() > 15  # CIE76 difference: distinct at a glance
    assert np.linalg.norm(cells[:, None] - tissue[None], axis=-1).min() > 10


@pytest.mark.parametrize("vision", list(_CVD))
def test_every_cell_colour_is_visible_on_every_shade_of_the_default_field(vision):
    """A field is drawn under the cells on the septa (FIELD_ALPHA over the septum colour): every
    cell colour stays apart from every shade of the default colour map there (viridis, the
    earlier default, hid M2 macrophages in its greens: CIE76 difference 1-4)."""
    import matplotlib as mpl

    from tmesim.viz.frames import FIELD_ALPHA, TISSUE_COLOURS, default_field_cmap

    def seen(rgb):
        c = np.asarray(rgb, float)
        lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        out = np.clip(lin @ _CVD[vision].T, 0, 1)
        return _lab(np.where(out <= 0.0031308, out * 12.92, 1.055 * out ** (1 / 2.4) - 0.055))

    for style in ("solid", "translucent", "outline"):
        shades = mpl.colormaps[default_field_cmap(style)](np.linspace(0, 1, 256))[:, :3]
        under = FIELD_ALPHA * shades + (1 - FIELD_ALPHA) * np.asarray(TISSUE_COLOURS[0])
        cells = seen([c for _, c in CATEGORIES])
        gap = np.linalg.norm(cells[:, None] - seen(under)[None], axis=-1).min(axis=1)
        assert gap.min() > 10, dict(zip([n for n, _ in CATEGORIES], gap.round(1), strict=True))
        # septa stay apart from alveolar air (white, no field drawn) at every value of the field
        air = seen([TISSUE_COLOURS[1]])
        assert np.linalg.norm(seen(under) - air, axis=-1).min() > 8
    assert default_field_cmap("none") == "viridis"  # no cells over it: a hued map is fine


def test_field_limits_span_the_whole_run_and_clipping_gets_arrows(small_run):
    from tmesim.viz.frames import _extend, field_limits, field_range

    with tmesim.load(small_run) as res:
        lo, hi = field_range(res, "ifng")
        plo, phi = field_limits(res, "ifng")
        assert lo <= plo < phi <= hi
        r = FrameRenderer(res, "ifng")
        assert (r.field_im.norm.vmin, r.field_im.norm.vmax) == (plo, phi)
        assert r.field_extend == _extend(lo, hi, plo, phi)
        r.close()
        r = FrameRenderer(res, "ifng", vmin=lo, vmax=hi)
        assert r.field_extend == "neither"
        r.close()
        olo, ohi = field_range(res, "oxygen")
        r = FrameRenderer(res, "oxygen", vmin=(olo + ohi) / 2, vmax=ohi)
        assert r.field_extend == "min"
        r.close()
        r = FrameRenderer(res, "oxygen", vmin=olo, vmax=(olo + ohi) / 2)
        assert r.field_extend == "max"
        r.close()
        r = FrameRenderer(res, "oxygen", log=True, cmap="magma")
        assert r.field_im.norm.vmin > 0 and r.field_im.cmap.name == "magma"
        rgb = r.composite(res.n_records - 1)
        r.close()
    assert rgb.dtype == np.uint8 and rgb.std() > 5


def test_cell_styles_colour_by_and_kinds(small_run):
    import matplotlib as mpl

    with tmesim.load(small_run) as res:
        last = res.n_records - 1
        cells = res.cells(last)
        outline = FrameRenderer(res, "oxygen", cells="outline").cell_image(last)
        solid = FrameRenderer(res, "oxygen").cell_image(last)
        glass = FrameRenderer(res, "oxygen", cells="translucent").cell_image(last)
        by = FrameRenderer(res, color_by="pgp")
        img = by.cell_image(last)
        only_t = FrameRenderer(res, kinds=["tcell"]).cell_image(last)
    # outlines: a subset of the cells; inside a block of one kind the field shows through
    assert 0 < outline[..., 3].sum() <= solid[..., 3].sum()
    assert ((outline[..., 3] > 0) <= (solid[..., 3] > 0)).all()
    block = np.full((7, 7), -1)
    block[1:6, 1:6] = 1
    block[3, 5] = 2
    edge = _outline(block)
    assert edge.sum() == 17 and not edge[2:5, 2:4].any() and edge[3, 4] and edge[3, 5]
    assert set(np.unique(glass[..., 3])) == {0.0, np.float32(0.55)}
    norm = by._cell_norm
    expect = mpl.colormaps["plasma"](norm(cells["pgp"].astype(float)))[:, :3]
    np.testing.assert_allclose(img[cells["y"], cells["x"], :3], expect, atol=1e-6)
    assert only_t[..., 3].sum() == (cells["kind"] == 2).sum()


def test_look_errors_are_usage_errors(small_run, tmp_path, capsys):
    base = ["snapshot", str(small_run), "-o", str(tmp_path / "a.png")]
    assert main([*base, "--color-by", "nope"]) == 2
    assert "pgp" in capsys.readouterr().err
    assert main([*base, "--field", "oxygen", "--cmap", "nope"]) == 2
    assert main([*base, "--kinds", "tumour"]) == 2
    assert main([*base, "--z", "3"]) == 2
    assert "fix:" in capsys.readouterr().err
    assert main([*base, "--field", "oxygen", "--vmax", "20", "--cells", "outline",
                 "--color-by", "drug"]) == 0
