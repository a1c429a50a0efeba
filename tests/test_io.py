"""The HDF5 result contract, reading it back, and bit-for-bit reproducibility."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml

import tmesim
from conftest import TINY, run_cli
from tmesim.cli import main
from tmesim.io.writer import CELL_COLUMNS
from tmesim.priming import Priming


def datasets(path) -> dict[str, tuple[str, tuple, bytes]]:
    """Every dataset of a file: name -> (dtype, shape, raw bytes)."""
    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = obj[()]
                out[name] = (str(a.dtype), a.shape, np.ascontiguousarray(a).tobytes())

        f.visititems(visit)
    return out


def assert_identical(a, b):
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        assert da[name] == db[name], f"dataset {name} differs"


# --------------------------------------------------------------------------- the contract
def test_root_attributes(tiny_result):
    with h5py.File(tiny_result, "r") as f:
        a = f.attrs
        assert a["format"] == "tmesim"
        assert isinstance(a["format_version"], (int, np.integer))
        assert int(a["format_version"]) == 1
        assert a["tmesim_version"] == tmesim.__version__
        assert a["scenario_name"] == "tiny"
        assert int(a["seed"]) == 0
        assert a["status"] == "complete"
        assert a["wall_time_s"] > 0
        created = str(a["created_utc"])
        assert created.endswith("+00:00") and created[:2] == "20"
        scenario = yaml.safe_load(str(a["scenario"]))
        assert scenario["name"] == "tiny"
        assert scenario["domain"]["shape"] == [40, 40]
        assert "extends" not in scenario


def test_series_layout(tiny_result):
    with h5py.File(tiny_result, "r") as f:
        t = f["time_h"]
        assert t.dtype == np.float64
        np.testing.assert_array_equal(t[()], [0.0, 3.0, 6.0, 9.0, 12.0])
        assert t.attrs["units"] == "h"
        assert set(f["counts"]) == set(tmesim.model.POPULATIONS)
        for d in f["counts"].values():
            assert np.issubdtype(d.dtype, np.integer)
            assert d.shape == (5,)
        assert f["counts/tumor"][0] == 30 and f["counts/stem"][0] == 2
        # with the lymph node of the defaults, its metrics too (biology.md §5.8)
        units = {**tmesim.model.METRIC_UNITS, **Priming.METRIC_UNITS}
        assert set(f["metrics"]) == set(units)
        for name, d in f["metrics"].items():
            assert d.dtype == np.float64
            assert d.shape == (5,)
            assert d.attrs["units"] == units[name]
        np.testing.assert_array_equal(
            f["metrics/tumor_burden"][()], f["counts/tumor"][()] + f["counts/stem"][()]
        )


def test_fields_layout(tiny_result):
    with h5py.File(tiny_result, "r") as f:
        d = f["fields/oxygen"]
        assert d.shape == (5, 40, 40)
        assert d.dtype == np.float32
        assert d.compression == "gzip"
        assert d.compression_opts == 4
        assert d.shuffle
        assert d.chunks == (1, 40, 40)
        assert d.attrs["units"] == "mmHg"
        assert [dim.label for dim in d.dims] == ["time_h", "y_um", "x_um"]
        np.testing.assert_allclose(f["fields/x_um"][()], (np.arange(40) + 0.5) * 20.0)
        assert f["fields/x_um"].attrs["units"] == "um"
        frame0 = d[0]
        air = f["geometry/tissue"][()] == 1
        assert air.any() and (~air).any()
        assert np.all(frame0[~air] == np.float32(38.0))  # tissue starts at the initial value
        assert np.all(frame0[air] == 0.0)  # alveolar air holds no field
        assert d[-1][~air].min() < 38.0  # the cells took up oxygen


def test_cells_ragged(tiny_result):
    with h5py.File(tiny_result, "r") as f:
        g = f["cells"]
        off = g["offsets"][()]
        assert off.dtype == np.int64
        assert off[0] == 0 and len(off) == 6
        assert np.all(np.diff(off) >= 0)
        for name, dtype in CELL_COLUMNS.items():
            assert g[name].dtype == dtype
            assert g[name].shape == (off[-1],)
            # a chunk spans records: filters would move it on every append and a killed run
            # could corrupt complete records (see test_cli.py::test_sigkill_*)
            assert g[name].compression is None and not g[name].shuffle
        assert list(g.attrs["kind_codes"])[:2] == ["tumor", "stem"]
        total = sum(f[f"counts/{p}"][()] for p in tmesim.model.POPULATIONS)
        np.testing.assert_array_equal(np.diff(off), total)
        ids0 = g["id"][off[0] : off[1]]
        np.testing.assert_array_equal(np.sort(ids0), np.arange(total[0]))
        assert np.all(g["parent"][off[0] : off[1]] == -1)
        last = slice(off[-2], off[-1])
        xs, ys = g["x"][last], g["y"][last]
        assert xs.min() >= 0 and xs.max() < 40 and ys.min() >= 0 and ys.max() < 40
        assert len(set(zip(xs.tolist(), ys.tolist(), strict=True))) == len(xs)  # one per site
        assert np.all(g["z"][last] == 0)
        # P-gp is a cancer-cell property: log-normal about cells.<kind>.pgp_mean (0.2), 0 elsewhere
        kind, pgp = g["kind"][last], g["pgp"][last]
        cancer = kind <= 1
        assert np.all(pgp[cancer] > 0) and np.all(pgp[~cancer] == 0)
        assert 0.1 < pgp[cancer].mean() < 0.3
        assert np.all(g["payload"][()] == 0)  # no nanoparticles dosed


def test_xarray_named_dimensions(tiny_result):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    with xr.open_dataset(tiny_result, group="fields", engine="h5netcdf") as ds:
        assert ds["oxygen"].dims == ("time_h", "y_um", "x_um")
        assert ds.sizes == {"time_h": 5, "y_um": 40, "x_um": 40}
        assert ds["oxygen"].attrs["units"] == "mmHg"
        np.testing.assert_allclose(ds["x_um"].values, (np.arange(40) + 0.5) * 20.0)
        assert float(ds["oxygen"].isel(time_h=0).max()) == pytest.approx(38.0)


@pytest.mark.parametrize("method, module", [("to_pandas", "pandas"), ("to_xarray", "xarray")])
def test_without_the_analysis_extra_the_error_names_it(tiny_result, monkeypatch, method, module):
    """The README's set-up installs the core only; to_pandas()/to_xarray() then say which extra
    they need instead of failing on a bare import."""
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # as if the package were not installed
    with tmesim.load(tiny_result) as res, pytest.raises(ModuleNotFoundError) as info:
        getattr(res, method)()
    assert "tmesim[analysis]" in str(info.value) and info.value.name == module


def test_load_api(tiny_result):
    with tmesim.load(tiny_result) as res:
        assert res.n_records == 5
        assert res.complete
        assert res.name == "tiny" and res.seed == 0
        np.testing.assert_array_equal(res.time_h, [0, 3, 6, 9, 12])
        assert res.counts["tumor"][0] == 30
        assert res.metrics["oxygen_mean_mmHg"][0] == pytest.approx(38.0)
        assert set(res.field_names) == {"oxygen", "ifng", "tgfb", "egf", "ccl2", "chemokine",
                                        "ecm"}
        assert res.field("oxygen").shape == (5, 40, 40)
        np.testing.assert_array_equal(res.field("oxygen", record=-1), res.field("oxygen")[4])
        with pytest.raises(IndexError):
            res.field("oxygen", record=5)
        c0 = res.cells(0)
        assert len(c0["id"]) == sum(int(res.counts[p][0]) for p in tmesim.model.POPULATIONS)
        assert int((c0["kind"] == 1).sum()) == 2
        assert res.record_at(7.9) == 3
        assert res.units("fields/oxygen") == "mmHg"
        assert res.scenario == tmesim.load_scenario(TINY)

        df = res.to_pandas()
        assert df.index.name == "time_h"
        assert list(df.index) == [0.0, 3.0, 6.0, 9.0, 12.0]
        assert {"tumor", "stem", "necrotic", "tumor_burden", "oxygen_min_mmHg"} <= set(df)
        assert df["tumor"].iloc[0] == 30

        ds = res.to_xarray()
        assert ds["oxygen"].dims == ("time_h", "y_um", "x_um")
        assert ds["tumor"].dims == ("time_h",)
        assert ds["oxygen"].attrs["units"] == "mmHg"
        assert ds.attrs["scenario_name"] == "tiny"
        np.testing.assert_array_equal(ds["tumor"].values, res.counts["tumor"])
        assert "Results(" in repr(res)


def test_load_rejects_non_tmesim_hdf5(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = 1
    with pytest.raises(tmesim.TmesimError, match="not a tmesim result"):
        tmesim.load(p)


def test_dumped_scenario_reproduces_the_run(tiny_result, tmp_path):
    with tmesim.load(tiny_result) as res:
        text = res.scenario_yaml
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(text)
    out = tmp_path / "again.h5"
    assert main(["run", str(dumped), "-o", str(out), "-q"]) == 0
    assert_identical(tiny_result, out)
    with h5py.File(out, "r") as f:
        assert f.attrs["scenario"] == text


# --------------------------------------------------------------------------- reproducibility
def test_same_seed_bit_identical(tiny_result, tmp_path):
    out = tmp_path / "same.h5"
    tmesim.run(TINY, out)
    assert_identical(tiny_result, out)


def test_different_seed_differs(tiny_result, tmp_path):
    out = tmp_path / "seed7.h5"
    tmesim.run(TINY, out, seed=7)
    a, b = datasets(tiny_result), datasets(out)
    assert a["cells/id"] != b["cells/id"] or a["cells/x"] != b["cells/x"]
    assert a["fields/oxygen"] != b["fields/oxygen"]
    with tmesim.load(out) as res:
        assert res.seed == 7


def run_on_one_and_two_threads(scenario, tmp_path):
    """Run ``scenario`` through the command line with 1 and then 2 Numba threads; return the
    two result files."""
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads{threads}.h5"
        r = run_cli("run", scenario, "-o", out, "-q", env={"NUMBA_NUM_THREADS": threads})
        assert r.returncode == 0, r.stderr
        outs.append(out)
    return outs


def test_thread_count_does_not_change_results(tiny_result, tmp_path):
    outs = run_on_one_and_two_threads(TINY, tmp_path)
    assert_identical(outs[0], outs[1])
    assert_identical(outs[0], tiny_result)


def test_thread_count_does_not_change_tcell_dynamics(tmp_path):
    """Same seed, 1 and 2 threads: identical files for a run in which T cells engage, kill from
    their lytic store, divide and exhaust (every T-cell rule draws keyed random numbers)."""
    f = tmp_path / "tcells.yaml"
    f.write_text(
        f"extends: {TINY}\nname: tcells\n"
        "time: {duration_h: 12.0, record_every_h: 3.0}\n"
        "cells:\n  tcell:\n    initial: {count: 60, placement: random}\n"
        "    recruitment: {base_per_h: 4.0}\n    exhaustion_antigen_h: 4.0\n"
        "    division_h: 4.0\n    lytic_store_kills: 1.0\n    kill_rate_per_h: 2.0\n")
    outs = run_on_one_and_two_threads(f, tmp_path)
    assert_identical(outs[0], outs[1])
    with h5py.File(outs[0], "r") as h:
        t = np.asarray(h["cells/kind"]) == 2
        assert np.any(np.asarray(h["cells/state"])[t] == 1)  # exhausted T cells
        assert np.any(np.asarray(h["cells/generation"])[t] > 0)  # T-cell daughters
        assert np.any(np.asarray(h["cells/lytic_spent"])[t] > 0)  # kills spent the store


def test_unreadable_structure_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch):
    """HDF5 metadata that cannot be read (a damaged file, or a reader catching a running 'tmesim
    run' between two records) gives a UsageError that names the file and what to do, not h5py's
    bare KeyError; and the file is closed again."""
    import tmesim.io.results as results
    from tmesim.errors import UsageError

    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "tmesim"
    opened = []

    class Broken(h5py.File):
        def get(self, name, *args, **kwargs):
            raise KeyError("Unable to synchronously open object (unable to determine object "
                           "type)")

    def open_broken(p):
        opened.append(Broken(p, "r"))
        return opened[-1]

    monkeypatch.setattr(results, "_open_for_reading", open_broken)
    with pytest.raises(UsageError, match=r"cannot read .*r\.h5: it is damaged, or a run is "
                                         r"writing it") as err:
        tmesim.load(path)
    assert "unable to determine object type" in str(err.value)
    assert "fix:" in str(err.value)
    assert not opened[0].id.valid  # closed
