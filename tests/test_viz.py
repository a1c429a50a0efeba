"""Rendering: frames are not blank, legend colours sit where the cells are, movies have the
expected frame count, and a missing ffmpeg for MP4 is a clean usage error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tmesim
from tmesim import viz
from tmesim.cli import main
from tmesim.viz.frames import _COLOURS, CATEGORIES, FrameRenderer, cell_categories


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("viz") / "small.h5"
    tmesim.run(
        "scenarios/tiny.yaml",
        out,
        overrides=["time.duration_h=6", "time.record_every_h=1"],
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
    assert len(fig.axes[0].lines) == len(tmesim.model.POPULATIONS)
    assert (tmp_path / "p.png").stat().st_size > 10_000


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
    for extra in ([], ["--projection"]):
        png = tmp_path / f"s{len(extra)}.png"
        assert main(["snapshot", str(run_3d), "-o", str(png), "--field", "oxygen", *extra]) == 0
        assert png.stat().st_size > 10_000
