"""Reports and exports: the HTML page is self-contained, and what is exported reads back equal
to the result file (CSV, legacy VTK, AnnData)."""

from __future__ import annotations

import os
from html.parser import HTMLParser

import numpy as np
import pytest

import tmesim
from tmesim.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("share") / "r.h5"
    tmesim.run("scenarios/tiny.yaml", out, overrides=["time.duration_h=6"])
    return out


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.srcs.append(a[key])


def test_report_of_a_run_is_self_contained(run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    p = _Tags()
    p.feed(text)
    assert p.tags.count("img") == 2 and "table" in p.tags and "script" not in p.tags
    assert all(s.startswith("data:image/png;base64,") for s in p.srcs)  # nothing fetched
    assert "tmesim run scenario.yaml" in text and "name: tiny" in text
    assert main(["report", str(run), "-o", str(out)]) == 2  # no silent overwrite
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any new file


def test_report_opens_in_chromium(run, tmp_path, browser):
    from browser import check_html_page

    out = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    check_html_page(browser, out, images=2)
    assert "tmesim run: tiny" in browser.driver.title
    text = browser.text()
    assert "Commands that reproduce this page" in text and "tumor_burden" in text


def test_report_of_a_folder_without_summary_is_a_usage_error(tmp_path, capsys):
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "summary.h5" in capsys.readouterr().err


def test_csv_round_trip(run, tmp_path):
    pd = pytest.importorskip("pandas")
    assert main(["export", str(run), "--to", "csv", "-o", str(tmp_path / "x")]) == 0
    ts = pd.read_csv(tmp_path / "x_timeseries.csv")
    cells = pd.read_csv(tmp_path / "x_cells.csv")
    with tmesim.load(run) as res:
        np.testing.assert_array_equal(ts["time_h"], res.time_h)
        np.testing.assert_array_equal(ts["tumor"], res.counts["tumor"])
        np.testing.assert_allclose(ts["oxygen_mean_mmHg"], res.metrics["oxygen_mean_mmHg"])
        last = res.cells(res.n_records - 1)
        rows = cells[cells["record"] == res.n_records - 1]
        np.testing.assert_array_equal(rows["id"], last["id"])
        np.testing.assert_allclose(rows["pgp"], last["pgp"], rtol=1e-6)
        np.testing.assert_allclose(rows["x_um"], (last["x"] + 0.5) * res.f.attrs["voxel_um"])


def _read_legacy_vtk(path):
    """A minimal reader of the binary legacy VTK files tmesim writes."""
    data = path.read_bytes()
    out, pos = {}, 0

    def line():
        nonlocal pos
        end = data.index(b"\n", pos)
        text = data[pos:end].decode()
        pos = end + 1
        return text

    for _ in range(4):
        out.setdefault("header", []).append(line())
    while pos < len(data):
        words = line().split()
        if not words:
            continue
        if words[0] == "DIMENSIONS":
            out["dims"] = tuple(int(w) - 1 for w in words[1:])
        elif words[0] == "CELL_DATA" or words[0] == "POINT_DATA":
            out["n"] = int(words[1])
        elif words[0] == "POINTS":
            n = int(words[1])
            out["points"] = np.frombuffer(data, ">f4", 3 * n, pos).reshape(n, 3)
            pos += 12 * n
        elif words[0] == "VERTICES":
            pos += 4 * int(words[2])
        elif words[0] == "SCALARS":
            dt = ">f4" if words[2] == "float" else ">f8"
            line()  # LOOKUP_TABLE
            out[words[1]] = np.frombuffer(data, dt, out["n"], pos)
            pos += np.dtype(dt).itemsize * out["n"]
    return out


def test_vtk_round_trip(run, tmp_path):
    assert main(["export", str(run), "--to", "vtk", "-o", str(tmp_path / "v")]) == 0
    with tmesim.load(run) as res:
        last = res.n_records - 1
        fields = _read_legacy_vtk(tmp_path / f"v_fields_{last}.vtk")
        ny, nx = res.field("oxygen", last).shape
        assert fields["dims"] == (nx, ny, 1)
        for name in res.field_names:
            np.testing.assert_array_equal(fields[name].reshape(ny, nx), res.field(name, last))
        cells = _read_legacy_vtk(tmp_path / f"v_cells_{last}.vtk")
        snap = res.cells(last)
        np.testing.assert_array_equal(cells["id"], snap["id"])
        np.testing.assert_array_equal(cells["kind"], snap["kind"])
        voxel = res.f.attrs["voxel_um"]
        np.testing.assert_allclose(cells["points"][:, 1], (snap["y"] + 0.5) * voxel)


def test_anndata_round_trip(run, tmp_path):
    anndata = pytest.importorskip("anndata")
    assert main(["export", str(run), "--to", "anndata", "-o", str(tmp_path / "a"),
                 "--time", "3h"]) == 0
    ad = anndata.read_h5ad(tmp_path / "a.h5ad")
    with tmesim.load(run) as res:
        rec = res.record_at(3.0)
        voxel = res.f.attrs["voxel_um"]
        snap = res.cells(rec)
        assert ad.uns["tmesim"]["record"] == rec and ad.uns["tmesim"]["scenario_name"] == "tiny"
    assert list(ad.obs_names) == [str(i) for i in snap["id"]]
    np.testing.assert_array_equal(ad.obs["kind"], snap["kind"])
    np.testing.assert_allclose(ad.obsm["spatial"][:, 0], (snap["x"] + 0.5) * voxel)
