"""Ensembles: seeds, statistics, local and Dask executors, resume after a kill, failures, Mesa."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tmesim.ensemble import compare, parse_params, replicate_seed, sweep
from tmesim.ensemble import stats as st
from tmesim.ensemble.cli import main as ensemble_main
from tmesim.ensemble.executors import execute
from tmesim.errors import ScenarioError, UsageError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.yaml"
SETS = [
    "domain.shape=[24,24]",
    "time.duration_h=3",
    "time.record_every_h=1",
    "output.cells=false",
]


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenarios")
    variant = d / "stem_high.yaml"
    variant.write_text(
        f"extends: {TINY}\nname: stem_high\ncells:\n  stem:\n    symmetric_division_prob: 0.9\n"
    )
    return [str(TINY), str(variant)]


@pytest.fixture(scope="module")
def local_run(scenarios, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ens"
    return compare(scenarios, 3, out, base_seed=7, overrides=SETS, workers=2)


def summary_contents(path) -> dict:
    """Every dataset and every attribute of a summary file, for exact comparison."""
    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            for k, v in obj.attrs.items():
                out[f"{name}@{k}"] = v

        f.visititems(visit)
        for k, v in f.attrs.items():
            out[f"@{k}"] = v
    return out


def assert_same_summary(a, b) -> None:
    ca, cb = summary_contents(a), summary_contents(b)
    assert sorted(ca) == sorted(cb)
    for k in ca:
        np.testing.assert_array_equal(ca[k], cb[k], err_msg=k)


# --------------------------------------------------------------------------- seeds
def test_seeds_are_deterministic_and_independent_of_count():
    s = [replicate_seed(0, "tiny", k) for k in range(5)]
    assert len(set(s)) == 5
    assert s == [replicate_seed(0, "tiny", k) for k in range(5)]
    assert all(0 <= x < 2**63 for x in s)
    assert replicate_seed(0, "other", 0) != s[0]
    assert replicate_seed(1, "tiny", 0) != s[0]
    import zlib

    ss = np.random.SeedSequence(0, spawn_key=(zlib.crc32(b"tiny"), 3))
    assert s[3] == int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    with pytest.raises(UsageError):
        replicate_seed(-1, "tiny", 0)


# --------------------------------------------------------------------------- statistics
def test_t_quantile_and_mean_ci_match_scipy():
    sps = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 9, 30, 200):
        assert st.t_ppf(0.975, df) == pytest.approx(sps.t.ppf(0.975, df), rel=1e-10)
        assert st.t_ppf(0.05, df) == pytest.approx(sps.t.ppf(0.05, df), rel=1e-10)
    x = np.array([3.0, 5.0, 4.0, 8.0, 6.5])
    m, lo, hi = st.mean_ci(x)
    lo_ref, hi_ref = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert m == pytest.approx(x.mean())
    assert (lo, hi) == pytest.approx((lo_ref, hi_ref), rel=1e-10)
    m, lo, hi = st.mean_ci([np.nan, 2.0])
    assert m == 2.0 and np.isnan(lo) and np.isnan(hi)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1.0, 2.0, 3.5], [4.0, 5.0, 6.0]),  # exact, complete separation
        ([3.1, 1.2, 5.5, 2.2], [2.0, 4.4, 6.1, 7.3, 0.5]),  # exact
        ([1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0, 5.0]),  # ties: normal approximation
        (list(np.linspace(0, 1, 10)), list(np.linspace(0.3, 1.4, 12))),  # both > 8
    ],
)
def test_mann_whitney_matches_scipy(x, y):
    sps = pytest.importorskip("scipy.stats")
    u, p = st.mann_whitney_u(x, y)
    ref = sps.mannwhitneyu(x, y)
    assert u == pytest.approx(float(ref.statistic))
    assert p == pytest.approx(float(ref.pvalue), rel=1e-9)


def test_effect_sizes_closed_forms():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([3.0, 4.0, 5.0, 6.0, 7.0])
    # means 2.5 and 5; pooled variance (3 * 5/3 + 4 * 5/2) / 7 = 15/7; J = 1 - 3 / (4*9 - 9)
    d = 2.5 / np.sqrt(15.0 / 7.0)
    assert st.hedges_g(a, b) == pytest.approx(d * (1 - 3 / 27))
    # Cliff's delta = 2 U / (n1 n2) - 1, with U of b
    u, _ = st.mann_whitney_u(b, a)
    assert st.cliffs_delta(a, b) == pytest.approx(2 * u / 20 - 1)
    assert st.mean_difference(a, b) == pytest.approx(2.5)
    # fixed-seed bootstrap: reproducible, and brackets the estimate
    ci1 = st.bootstrap_ci(st.mean_difference, a, b)
    assert ci1 == st.bootstrap_ci(st.mean_difference, a, b)
    assert ci1[0] < 2.5 < ci1[1]
    assert np.isnan(st.hedges_g([1.0, 1.0], [1.0, 1.0]))


def _wilcoxon_cases():
    rng = np.random.default_rng(3)
    cases = []
    for n in (3, 6, 12, 20, 60):
        x = rng.normal(10.0, 2.0, n)
        y = x + rng.normal(0.8, 1.5, n)
        cases.append((x, y))  # no ties: exact up to 50 pairs, then normal
        cases.append((np.round(x), np.round(y)))  # ties and zeros: permutation or normal
    return cases


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # SciPy's own z with all-zero pairs
@pytest.mark.parametrize(("x", "y"), _wilcoxon_cases())
def test_wilcoxon_signed_rank_matches_scipy(x, y):
    sps = pytest.importorskip("scipy.stats")
    w, p = st.wilcoxon_signed_rank(x, y)
    ref = sps.wilcoxon(x, y)
    assert w == pytest.approx(float(ref.statistic))
    assert p == pytest.approx(float(ref.pvalue), rel=1e-9)


def test_paired_statistics_closed_forms():
    a = np.array([10.0, 20.0, 9.0, 30.0, 15.0])
    b = a - np.array([2.0, 3.0, 1.0, 4.0, 2.5])  # every pair falls; spread between pairs is large
    s = st.compare_pairs(a, b)
    assert s["paired_n"] == 5
    assert s["paired_mean_difference"] == pytest.approx(-2.5)
    assert s["paired_percent_change"] == pytest.approx(-2.5 / 16.8 * 100)
    assert s["paired_cohens_dz"] == pytest.approx(-2.5 / np.std([2, 3, 1, 4, 2.5], ddof=1))
    # all five differences negative: W = 0, exact p = 2 / 2**5
    assert (s["wilcoxon_w"], s["wilcoxon_p"]) == (0.0, pytest.approx(2 / 32))
    # pair resampling: every resample has a negative mean difference
    assert s["paired_mean_difference_ci_high"] < 0 < 2.5
    assert s["paired_mean_difference_ci_low"] >= -4.0
    # the unpaired test sees the same data as overlapping samples and cannot tell
    assert st.mann_whitney_u(b, a)[1] > 0.1
    # a missing replicate drops its pair only
    s2 = st.compare_pairs(np.r_[a, np.nan], np.r_[b, 5.0])
    assert s2["paired_n"] == 5 and s2["paired_mean_difference"] == pytest.approx(-2.5)


def test_paired_compare_shares_seeds_and_pairs_replicates(scenarios, tmp_path):
    """With --paired replicate k of every scenario has one seed; a scenario compared with an
    identical copy of itself then differs by exactly nothing, pair by pair."""
    copy = tmp_path / "tiny_copy.yaml"
    copy.write_text(f"extends: {TINY}\n")
    out = tmp_path / "paired"
    rc = ensemble_main(
        ["compare", str(TINY), str(copy), scenarios[1], "-r", "3", "-o", str(out), "--seed", "7",
         "--workers", "2", "--paired", "-q", *[a for x in SETS for a in ("--set", x)]]
    )
    assert rc == 0
    with h5py.File(out / "summary.h5", "r") as f:
        assert f.attrs["design"] == "paired"
        seeds = [f[f"groups/{g}/seed"][()] for g in ("tiny", "tiny_copy", "stem_high")]
        np.testing.assert_array_equal(seeds[0], seeds[1])
        np.testing.assert_array_equal(seeds[0], seeds[2])
        assert list(seeds[0]) == [replicate_seed(7, "paired", k) for k in range(3)]
        same = f["stats/tiny_copy/metrics/tumor_burden"].attrs
        assert same["paired_mean_difference"] == 0.0 and same["wilcoxon_p"] == 1.0
        a = f["groups/tiny/endpoints/metrics/tumor_burden"][()]
        b = f["groups/stem_high/endpoints/metrics/tumor_burden"][()]
        other = f["stats/stem_high/metrics/tumor_burden"].attrs
        assert other["paired_mean_difference"] == pytest.approx((b - a).mean())
        assert other["wilcoxon_p"] == pytest.approx(st.wilcoxon_signed_rank(a, b)[1])
    table = (out / "summary.txt").read_text()
    assert "paired by replicate" in table and "Wilcoxon" in table
    assert "tiny_copy: 3 pairs  diff +0.00" in table
    # the same folder without --paired holds other seeds: refused, nothing overwritten
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/rep_*.h5")}
    with pytest.raises(UsageError, match="different configuration"):
        compare([str(TINY), str(copy)], 3, out, base_seed=7, overrides=SETS, workers=1)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/rep_*.h5")} == before


# --------------------------------------------------------------------------- end to end
def test_compare_local_end_to_end(local_run, scenarios):
    from tmesim.io import load

    res = local_run
    assert not res.failed and not res.skipped and len(res.runs) == 6
    for label in ("tiny", "stem_high"):
        for k in range(3):
            path = res.outdir / label / f"rep_{k}.h5"
            with load(path) as r:
                assert r.complete
                assert r.seed == replicate_seed(7, label, k)
    assert not list(res.outdir.rglob("*.partial"))
    with h5py.File(res.summary_path, "r") as f:
        assert json.loads(f.attrs["groups"]) == ["tiny", "stem_high"]
        np.testing.assert_array_equal(f["time_h"][()], [0.0, 1.0, 2.0, 3.0])
        g = f["groups/tiny"]
        assert g["complete"][()].all()
        burden = g["series/metrics/tumor_burden"][()]
        assert burden.shape == (3, 4)
        np.testing.assert_array_equal(g["endpoints/metrics/tumor_burden"][()], burden[:, -1])
        with load(res.outdir / "tiny" / "rep_1.h5") as r:
            np.testing.assert_array_equal(burden[1], r.metrics["tumor_burden"])
            # the cumulative burden: trapezoid rule over the record times, in cell-days
            auc = np.trapezoid(r.metrics["tumor_burden"], r.time_h) / 24.0
        assert g["endpoints/derived/tumor_burden_auc_cell_days"][1] == pytest.approx(auc)
        a = f["stats/stem_high/derived/tumor_burden_auc_cell_days"].attrs
        assert a["mann_whitney_p"] == pytest.approx(st.mann_whitney_u(
            f["groups/stem_high/endpoints/derived/tumor_burden_auc_cell_days"][()],
            g["endpoints/derived/tumor_burden_auc_cell_days"][()])[1])
        s = f["stats/stem_high/metrics/tumor_burden"].attrs
        ref = f["groups/tiny/endpoints/metrics/tumor_burden"][()]
        other = f["groups/stem_high/endpoints/metrics/tumor_burden"][()]
        assert s["mean_difference"] == pytest.approx(other.mean() - ref.mean())
        assert s["mann_whitney_p"] == pytest.approx(st.mann_whitney_u(other, ref)[1])
    lines = res.table.splitlines()
    assert lines[0].split()[:2] == ["scenario", "n"]
    assert "delivered fraction" in lines[0] and "T cells" in lines[0]
    assert lines[2].startswith("tiny") and "3/3" in lines[2] and "n/a" in lines[2]
    assert "Mann-Whitney" in res.table
    assert "cumulative tumour burden (cell-days) against tiny" in res.table
    assert (res.outdir / "timeseries.png").stat().st_size > 1000
    # three replicates: the table says the sample is small; the figures come in pages
    assert "warning: fewer than 5 replicates" in res.table
    assert "(n 3 vs 3)" in res.table
    assert {p.name for p in res.figures} >= {"timeseries.png", "timeseries_counts.png"}
    with h5py.File(res.summary_path, "r") as f:
        assert f["stats/tiny/metrics/stem_fraction"].attrs["ci_method"] == "transformed-t"


def test_report_of_a_comparison_opens_in_chromium(local_run, tmp_path, browser):
    from browser import check_html_page
    from tmesim.cli import main

    out = tmp_path / "cmp.html"
    assert main(["report", str(local_run.outdir), "-o", str(out)]) == 0
    figures = len(list(local_run.outdir.glob("*.png")))
    assert figures >= 2
    check_html_page(browser, out, images=figures)
    assert "tmesim compare --paired" not in browser.text()
    assert "tmesim compare" in browser.text() and "stem_high" in browser.text()


def test_compare_dask_local_gives_the_same_summary(local_run, scenarios, tmp_path):
    pytest.importorskip("dask.distributed")
    res = compare(scenarios, 3, tmp_path / "dask", base_seed=7, overrides=SETS, dask_local=2)
    assert not res.failed
    assert_same_summary(res.summary_path, local_run.summary_path)
    assert res.table == local_run.table


def test_resume_after_sigkill(local_run, scenarios, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tmesim.ensemble", "compare", *scenarios, "-r", "3"]
    cmd += ["-o", str(out), "--seed", "7", "--workers", "1"]
    for s in SETS:
        cmd += ["--set", s]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*/rep_*.h5")):
            assert proc.poll() is None, "the compare finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in out.glob("*/rep_*.h5")}
    assert 1 <= len(done) < 6
    assert not (out / "summary.h5").exists()

    code = ensemble_main(
        ["compare", *scenarios, "-r", "3", "-o", str(out), "--seed", "7", "--workers", "2", "-q"]
        + [a for s in SETS for a in ("--set", s)]
    )
    assert code == 0
    for p, mtime in done.items():
        assert p.stat().st_mtime_ns == mtime
    log = [json.loads(line) for line in (out / "ensemble.log").read_text().splitlines()]
    skipped = {(e["group"], e["index"]) for e in log if e["event"] == "skip"}
    assert skipped == {(p.parent.name, int(p.stem.split("_")[1])) for p in done}
    assert not list(out.rglob("*.partial"))
    assert_same_summary(out / "summary.h5", local_run.summary_path)


def test_failing_replicate_is_reported_and_others_kept(scenarios, tmp_path, monkeypatch, capsys):
    import importlib

    cmp = importlib.import_module("tmesim.ensemble.compare")  # the module, not the function

    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    real_execute = cmp.execute

    def sabotage(tasks, **kw):
        for t in tasks:
            if t["group"] == "stem_high" and t["index"] == 1:
                t["output"] = str(blocker / "sub" / "rep_1.h5")  # cannot be created
        return real_execute(tasks, **kw)

    monkeypatch.setattr(cmp, "execute", sabotage)
    out = tmp_path / "ens"
    args = ["compare", *scenarios, "-r", "3", "-o", str(out), "--workers", "2"]
    args += [a for s in SETS for a in ("--set", s)]
    assert ensemble_main(args) == 1
    err = capsys.readouterr().err
    assert "stem_high rep 1" in err and "FAILED: OutputError" in err
    assert "Traceback" not in err
    with h5py.File(out / "summary.h5", "r") as f:
        np.testing.assert_array_equal(f["groups/stem_high/complete"][()], [True, False, True])
        assert "cannot create the output folder" in f["groups/stem_high/error"][1].decode()
        assert np.isnan(f["groups/stem_high/endpoints/metrics/tumor_burden"][1])
        assert f["stats/stem_high/metrics/tumor_burden"].attrs["n"] == 2
        assert f["groups/tiny/complete"][()].all()
    # fixed: the same command runs only the missing replicate
    monkeypatch.setattr(cmp, "execute", real_execute)
    assert ensemble_main([*args, "-q"]) == 0
    log = [json.loads(line) for line in (out / "ensemble.log").read_text().splitlines()]
    assert [(e["group"], e["index"]) for e in log[-6:] if e["event"] == "run"] == [("stem_high", 1)]


def test_execute_reports_an_error_without_losing_the_others(tmp_path):
    from tmesim.scenario import dump_scenario, load_scenario

    good = dump_scenario(load_scenario(TINY, SETS))
    bad = good.replace("duration_h: 3.0", "duration_h: -3.0")
    assert bad != good
    tasks = [
        {
            "group": "g",
            "index": k,
            "seed": k,
            "scenario_yaml": y,
            "output": str(tmp_path / f"{k}.h5"),
        }
        for k, y in enumerate([good, bad, good])
    ]
    results = sorted(execute(tasks, workers=2), key=lambda r: r["index"])
    assert [r["status"] for r in results] == ["complete", "failed", "complete"]
    assert results[1]["error"].startswith("ScenarioError:") and "duration_h" in results[1]["error"]
    assert (tmp_path / "0.h5").exists() and (tmp_path / "2.h5").exists()
    assert not (tmp_path / "1.h5").exists() and not (tmp_path / "1.h5.partial").exists()


def test_sweep_grid_and_plot(tmp_path):
    res = sweep(
        TINY,
        ["cells.stem.symmetric_division_prob=0.1,0.9"],
        2,
        tmp_path / "sw",
        overrides=SETS,
        workers=2,
    )
    assert not res.failed
    labels = ["symmetric_division_prob=0.1", "symmetric_division_prob=0.9"]
    with h5py.File(res.summary_path, "r") as f:
        assert json.loads(f.attrs["groups"]) == labels
        assert json.loads(f["groups"][labels[1]].attrs["params"]) == {
            "cells.stem.symmetric_division_prob": 0.9
        }
    from tmesim.io import load

    with load(tmp_path / "sw" / labels[1] / "rep_0.h5") as r:
        assert r.scenario.cells.stem.symmetric_division_prob == 0.9
    assert (tmp_path / "sw" / "sweep_cells.stem.symmetric_division_prob.png").exists()


def test_parse_params():
    assert parse_params(["a.b=1,2.5,x"]) == {"a.b": [1, 2.5, "x"]}
    assert parse_params(["domain.shape=[24,24],[32,32]", "seed=3"]) == {
        "domain.shape": [[24, 24], [32, 32]],
        "seed": [3],
    }
    with pytest.raises(ScenarioError):
        parse_params(["nokey"])
    with pytest.raises(UsageError):
        parse_params([])
    with pytest.raises(UsageError):
        parse_params(["a=1", "a=2"])


def test_bad_input_exits_2(scenarios, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert ensemble_main(["compare", "missing.yaml", "-r", "2", "-o", out]) == 2
    assert "fix:" in capsys.readouterr().err
    assert (
        ensemble_main(["compare", str(TINY), "-r", "2", "-o", out, "--set", "time.dt_min=-1"]) == 2
    )
    assert "fix:" in capsys.readouterr().err
    assert ensemble_main(["sweep", str(TINY), "-r", "2", "-o", out, "--param", "x"]) == 2
    with pytest.raises(SystemExit) as exc:
        ensemble_main(
            ["compare", str(TINY), "-r", "2", "-o", out, "--workers", "1", "--dask-local", "2"]
        )
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        ensemble_main(["compare", str(TINY), "-r", "0", "-o", out])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()  # nothing created on bad input


def test_resume_refuses_a_different_configuration(local_run, scenarios, capsys):
    args = ["compare", *scenarios, "-r", "3", "-o", str(local_run.outdir), "--seed", "7"]
    args += [a for s in SETS[:-1] for a in ("--set", s)]  # output.cells differs
    assert ensemble_main(args) == 2
    assert "different configuration" in capsys.readouterr().err


def test_add_subcommands_wires_a_parser():
    import argparse

    from tmesim.ensemble.cli import add_subcommands, cmd_compare, cmd_sweep

    parser = argparse.ArgumentParser(prog="tmesim")
    add_subcommands(parser.add_subparsers(dest="command"))
    a = parser.parse_args(
        ["compare", "a.yaml", "b.yaml", "--replicates", "4", "-o", "d", "--dask-local", "2"]
    )
    assert a.func is cmd_compare and a.scenarios == ["a.yaml", "b.yaml"] and a.dask_local == 2
    a = parser.parse_args(["sweep", "a.yaml", "--param", "x=1,2", "-r", "2", "-o", "d"])
    assert a.func is cmd_sweep and a.params == ["x=1,2"] and a.seed == 0


def test_kernels_load_from_the_disk_cache(tmp_path):
    """A fresh worker process loads the compiled kernels instead of compiling them."""
    code = (
        "from tmesim.runner import run; "
        f"run({str(TINY)!r}, {str(tmp_path / 'x.h5')!r}, overrides={SETS!r}, overwrite=True)"
    )
    env = {**os.environ, "NUMBA_DEBUG_CACHE": "1", "NUMBA_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)  # warm
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    text = out.stdout.decode() + out.stderr.decode()
    assert "data loaded from" in text
    assert "data saved to" not in text


# --------------------------------------------------------------------------- Mesa
def test_mesa_batch_run_drives_tmemodel():
    import mesa

    from tmesim import TMEModel

    rows = mesa.batch_run(
        TMEModel,
        parameters={
            "scenario": str(TINY),
            "domain__shape": [[24, 24]],  # a list value must be wrapped: lists are swept
            "time__duration_h": 1,
            "cells__stem__symmetric_division_prob": [0.1, 0.9],
            "rng": [1, 2],
        },
        number_processes=1,
        data_collection_period=-1,
        display_progress=False,
    )
    assert len(rows) == 4
    assert sorted((r["rng"], r["cells__stem__symmetric_division_prob"]) for r in rows) == [
        (1, 0.1),
        (1, 0.9),
        (2, 0.1),
        (2, 0.9),
    ]
    for row in rows:
        assert {"RunId", "Step", "tumor", "stem", "necrotic", "time_h"} <= set(row)
        # Mesa 3.3.1 reports datacollector row ``model.steps - 1``; TMEModel collects once in
        # __init__ and once per step, so the row is the state after 9 of the 10 steps
        assert row["Step"] == 9
        assert row["time_h"] == pytest.approx(0.9)
        m = TMEModel(
            TINY,
            rng=row["rng"],
            domain__shape=[24, 24],
            time__duration_h=1,
            cells__stem__symmetric_division_prob=row["cells__stem__symmetric_division_prob"],
        )
        while m.running:
            m.step()
        assert m.steps == 10
        assert m.datacollector.model_vars["tumor"][9] == row["tumor"]
        assert m.datacollector.model_vars["stem"][9] == row["stem"]


# --------------------------------------------------------------------------- honest intervals
@pytest.mark.parametrize(
    ("values", "lower", "upper"),
    [
        ([0, 0, 1, 3], 0.0, None),  # counts: a t interval would go below zero
        ([0.9, 1.0, 0.95], 0.0, 1.0),  # fractions near 1
        ([0.0, 0.02, 0.0, 0.01, 0.0, 0.05, 0.0], 0.0, 1.0),
        ([12.0, 80.0], 0.0, None),
    ],
)
def test_range_ci_stays_in_range_and_holds_the_mean(values, lower, upper):
    m, lo, hi, method = st.range_ci(values, lower=lower, upper=upper)
    assert lo <= m <= hi
    assert lo >= lower and (upper is None or hi <= upper)
    assert method == ("bootstrap" if len(values) >= st.MIN_REPLICATES else "transformed-t")


def test_small_samples_get_wider_intervals_than_the_bootstrap():
    x = [10.0, 14.0, 11.0, 13.0]
    _, lo, hi, method = st.range_ci(x, lower=0.0)
    b_lo, b_hi = st.bootstrap_ci(lambda a, b: b.mean(), x, x)
    assert method == "transformed-t" and hi - lo > b_hi - b_lo
    assert st.range_ci([5.0], lower=0.0)[3] == "none"
    mean, lo, hi = st.range_band(np.array([[0.0, 1.0], [0.0, 0.0], [2.0, 0.0]]), lower=0.0)
    np.testing.assert_allclose(mean, [2 / 3, 1 / 3])
    assert (lo >= 0).all() and (hi >= mean).all()


def test_sweep_figures_cover_the_named_endpoints_on_a_log_axis(tmp_path):
    from tmesim.ensemble.compare import plot_sweep, sweep_endpoints

    src = tmp_path / "np.yaml"
    src.write_text("# Expected: np_penetration_um falls with size\nextends: tiny.yaml\n")
    sizes = [10, 20, 50, 100, 200]
    rng = np.random.default_rng(1)
    groups = []
    for size in sizes:
        ends = {
            "metrics/tumor_burden": rng.poisson(50, 3).astype(float),
            "metrics/np_penetration_um": rng.normal(200 / size, 1.0, 3).clip(0),
            "metrics/delivered_fraction": rng.uniform(0, 0.2, 3),
            "metrics/oxygen_mean_mmHg": rng.normal(30, 1, 3),
        }
        groups.append(
            {"label": f"size={size}", "source": str(src), "params": {"np.size_nm": size},
             "complete": np.ones(3, bool), "endpoints": ends}
        )
    data = {"groups": groups, "units": {"metrics/delivered_fraction": "1"}}
    names = sweep_endpoints(data)
    assert names == [
        "metrics/tumor_burden", "metrics/np_penetration_um", "metrics/delivered_fraction"
    ]
    (path,) = plot_sweep(data, {"np.size_nm": sizes}, tmp_path)
    assert path.name == "sweep_np.size_nm.png" and path.stat().st_size > 1000


def test_figure_titles_stay_inside_the_figure(tmp_path, monkeypatch):
    """The title of a sweep figure (a long swept key and the small-sample note) is wrapped to
    the figure's width instead of running off both edges."""
    import importlib

    cmp = importlib.import_module("tmesim.ensemble.compare")

    figures = []
    monkeypatch.setattr(cmp, "_save_figure", lambda fig, path: figures.append(fig))
    key = "nanoparticles.ph_micelle_doxorubicin.size_nm"
    groups = [
        {"label": f"size_nm={v}", "source": None, "params": {key: v},
         "complete": np.ones(2, bool), "endpoints": {"metrics/tumor_burden": np.array([9.0, 11])}}
        for v in (10, 50, 200)
    ]
    cmp.plot_sweep({"groups": groups, "units": {}}, {key: [10, 50, 200]}, tmp_path,
                   endpoints=["metrics/tumor_burden"])
    (fig,) = figures
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert "fewer than 5 replicates" in " ".join(fig._suptitle.get_text().split())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height


def test_compare_figures_mark_the_doses(tmp_path, monkeypatch):
    """Dose times on the compare time series: grey where both scenarios dose alike, in a
    scenario's colour, named in the legend, where only it doses."""
    import importlib

    cmp = importlib.import_module("tmesim.ensemble.compare")
    figures = []
    monkeypatch.setattr(cmp, "_save_figure", lambda fig, path: figures.append(fig))
    rng = np.random.default_rng(0)
    dox = ("doxorubicin", "iv", 24.0)
    groups = [
        {"label": label, "complete": np.ones(3, bool), "doses": doses,
         "series": {"metrics/tumor_burden": rng.poisson(50, (3, 4)).astype(float)}}
        for label, doses in (("free", [dox]), ("tariquidar", [("tariquidar", "iv", 23.0), dox]))
    ]
    data = {"time_h": np.array([0.0, 24, 48, 72]), "series_names": ["metrics/tumor_burden"],
            "units": {"metrics/tumor_burden": "cells"}, "groups": groups}
    cmp.plot_timeseries(data, tmp_path / "t.png")
    ax = figures[0].axes[0]
    marks = {line.get_label(): (line.get_xdata()[0], line.get_color())
             for line in ax.lines if line.get_label().startswith("dose")}
    assert marks == {"dose: doxorubicin (iv)": (1.0, "0.35"),
                     "dose: tariquidar (iv), tariquidar": (23.0 / 24, "C1")}


def test_a_tiny_fraction_fills_its_panel(tmp_path, monkeypatch):
    """A delivered fraction of 10^-7 is drawn on a 0 to ~10^-7 axis, not flat on 0 to 0.05."""
    import importlib

    cmp = importlib.import_module("tmesim.ensemble.compare")
    figures = []
    monkeypatch.setattr(cmp, "_save_figure", lambda fig, path: figures.append(fig))
    frac = np.array([[0.0, 1e-7, 2e-7, 3e-7]] * 3) * np.array([[0.9], [1.0], [1.1]])
    zero = np.zeros((3, 4))
    groups = [{"label": "a", "complete": np.ones(3, bool),
               "series": {"metrics/delivered_fraction": frac, "metrics/necrotic_fraction": zero}}]
    data = {"time_h": np.array([0.0, 24, 48, 72]),
            "series_names": ["metrics/delivered_fraction", "metrics/necrotic_fraction"],
            "units": {"metrics/delivered_fraction": "1", "metrics/necrotic_fraction": "1"},
            "groups": groups}
    cmp.plot_timeseries(data, tmp_path / "t.png")
    tops = {ax.get_title(): ax.get_ylim() for ax in figures[0].axes if ax.get_visible()}
    assert tops["necrotic fraction"] == (0.0, pytest.approx(0.054))
    low, high = tops["delivered fraction"]
    assert low == 0.0 and 3e-7 < high < 5e-7
