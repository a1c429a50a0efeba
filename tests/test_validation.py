"""The validation suite: every case under validation/ is a test.

Quick cases run here in the default suite; slow ones are marked ``slow`` (``pytest -m slow``).
A case whose ``case.yaml`` documents a model failure is an expected failure with
``strict=True``: once the model is fixed the test fails, so that the case file (and
docs/validation.md) must be updated. The cases a session selects run in one batch, on up to
two worker processes, into a temporary folder, so cases that read the same run (the 21-day
lung) simulate it once.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tmesim.errors import UsageError
from tmesim.validation import load_cases, render, run_validation
from tmesim.validation.cases import Tolerance, load_case
from tmesim.validation.metrics import fit_log_logistic

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = ROOT / "validation"
DOCS = ROOT / "docs" / "validation.md"
FIGURES = ROOT / "docs" / "images" / "validation"
CASES = load_cases(VALIDATION)


class CaseError(RuntimeError):
    """A case that could not be evaluated: never taken for an expected failure."""


#: replicates of the in-vitro dish cases in the default suite. Each runs 5-15 dish cultures
#: for 72 h per replicate, and one replicate already checks every read-out against the same
#: published band (replicates are paired and agree to a few per cent, case result.json); the
#: case's own count, which the committed results use, runs under the slow marker.
DEFAULT_REPLICATES = {"drug_ic50_invitro": 1, "drug_exposure_time": 1,
                      "drug_mdr_resistance": 1, "drug_mdr_presets": 1}


def _params(case):
    marks = []
    if case.expected == "fail":
        marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=case.reason))
    if not case.quick:
        return [pytest.param(case.name, None, marks=[pytest.mark.slow, *marks], id=case.name)]
    if case.name not in DEFAULT_REPLICATES:
        return [pytest.param(case.name, None, marks=marks, id=case.name)]
    return [
        pytest.param(case.name, DEFAULT_REPLICATES[case.name], marks=marks, id=case.name),
        pytest.param(case.name, None, marks=[pytest.mark.slow, *marks],
                     id=f"{case.name}-all-replicates"),
    ]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("validation-runs")


@pytest.fixture(scope="session")
def case_results(request, workdir):
    """Every case this session selected, run in one batch per replicate count on up to two
    worker processes; keyed by (case name, replicates or None for the case's own count).

    One pool for all cases spreads their replicates over the cores (results do not depend on
    the executor: test_a_case_runs_the_same_in_this_process_and_on_dask) and starts its
    workers once. Read-only: each test reads its own case's result.
    """
    selected: dict[int | None, list[str]] = {}
    for item in request.session.items:
        if item.originalname == "test_case_agrees_with_the_published_data":
            p = item.callspec.params
            selected.setdefault(p["replicates"], []).append(p["name"])
    workers = min(2, os.cpu_count() or 1)
    results = {}
    for replicates, names in selected.items():
        for res in run_validation(VALIDATION, names, replicates=replicates, workdir=workdir,
                                  write=False, workers=workers if workers > 1 else None):
            results[res.case.name, replicates] = res
    return results


@pytest.mark.parametrize(("name", "replicates"), [p for c in CASES for p in _params(c)])
def test_case_agrees_with_the_published_data(name, replicates, case_results):
    res = case_results[name, replicates]
    if res.error:
        raise CaseError(res.error)
    failed = [
        f"{c.name} = {c.measurement.display or c.measurement.value:.4g} outside "
        f"{spec.tolerance.text(c.measurement.units)}"
        if not c.measurement.display
        else f"{c.name} = {c.measurement.display} outside {spec.tolerance.text()}"
        for spec, c in zip(res.case.checks, res.checks, strict=True)
        if not c.passed
    ]
    assert not failed, "; ".join(failed)


def test_there_are_quick_and_slow_cases_and_every_case_is_complete():
    assert {c.speed for c in CASES} == {"quick", "slow"}
    for case in CASES:
        assert case.folder.name == case.name
        for cite in case.data["citations"]:
            assert cite["reference"].strip() and cite["read"].strip()
        for check in case.checks:
            assert check.why and check.tolerance.kind in ("within", "at_least", "at_most")
        if case.expected == "fail":
            assert len(case.reason) > 40, f"{case.name}: state the model reason for the failure"


def test_the_committed_page_is_what_the_committed_results_give():
    text = render(VALIDATION, DOCS, FIGURES)
    assert DOCS.read_text(encoding="utf-8") == text, (
        "docs/validation.md is stale: run 'tmesim validation report' (or 'validation run')"
    )
    for case in CASES:
        assert f'<a id="{case.name}"></a>' in text
        result = case.folder / "result.json"
        assert result.is_file(), f"{case.name} has no result.json: run it once"
        fig = json.loads(result.read_text())["figure"]
        assert fig and (FIGURES / fig).is_file()
        assert (FIGURES / fig).stat().st_size < 150_000


def test_tolerances_and_the_log_logistic_fit():
    assert Tolerance("within", 1, 2).accepts(1.5)
    assert not Tolerance("within", 1, 2).accepts(math.nan)
    assert not Tolerance("within", 1, 2).accepts(math.inf)
    assert Tolerance("at_least", low=0.6).accepts(math.inf)
    assert Tolerance("at_most", high=0.1).text() == "≤ 0.1"
    conc = np.array([0.03, 0.1, 0.3, 1.0, 3.0])
    surv = 1.0 / (1.0 + (conc / 0.2) ** 1.3)
    ic50, hill = fit_log_logistic(conc, surv)
    assert ic50 == pytest.approx(0.2, rel=2e-3) and hill == pytest.approx(1.3, rel=1e-2)


def test_tissue_pk_metrics_against_closed_forms():
    """Cmax, Tmax, AUC, AUC ratio and decline half-life of the tissue PK checks on known
    curves: a bi-exponential rise and fall and a pure exponential."""
    from tmesim.validation.metrics import (
        RunData,
        auc_ratio,
        decline_half_life,
        series_auc,
        series_peak,
        series_peak_time,
    )

    t = np.linspace(0.0, 48.0, 4801)
    curves = {"rise": 10.0 * (np.exp(-t / 12.0) - np.exp(-t / 2.0)),
              "fall": 4.0 * np.exp(-np.log(2) * t / 6.0)}

    class Fake(RunData):
        def series(self, label, name):
            return [(t, curves[label])]

    data = Fake({})
    tmax = np.log(6.0) / (1 / 2.0 - 1 / 12.0)  # where d/dt (e^-t/12 - e^-t/2) = 0
    peak = 10.0 * (np.exp(-tmax / 12.0) - np.exp(-tmax / 2.0))
    assert series_peak(data, "rise", "x").value == pytest.approx(peak, rel=1e-6)
    assert series_peak_time(data, "rise", "x").value == pytest.approx(tmax, abs=0.01)
    assert series_peak_time(data, "rise", "x", from_h=10.0).value == pytest.approx(10.0)
    exact = 4.0 * 6.0 / np.log(2) * (1 - 2.0 ** -4)  # integral of the fall over 0-24 h
    assert series_auc(data, "fall", "x", 0, 24).value == pytest.approx(exact, rel=1e-5)
    rise = 10.0 * (12.0 * (1 - np.exp(-4.0)) - 2.0 * (1 - np.exp(-24.0)))  # over 0-48 h
    assert auc_ratio(data, "rise", "fall", "x", 48, 24).value == pytest.approx(
        rise / exact, rel=1e-5)
    assert decline_half_life(data, "fall", "x", 4, 24).value == pytest.approx(6.0, rel=1e-9)
    rising = decline_half_life(data, "rise", "x", 0, 1)  # no decline: no half-life
    assert rising.per_replicate == [math.inf] and math.isnan(rising.value)



def test_vessel_profile_metrics_on_exponential_profiles(monkeypatch):
    """Half distance and the ratios of two runs' profiles on profiles known in closed form:
    A exp(-d / lam) sampled every micrometre from the vessel out to 100 um."""
    from tmesim.validation import metrics

    d = np.arange(0.0, 100.5, 1.0)
    shapes = {"steep": (3.0, 20.0), "flat": (1.5, 200.0), "none": (1.0, 1e12)}

    def profiles(data, run, agent, at_h, max_um):
        a, lam = shapes[run]
        return [(d, a * np.exp(-d / lam), np.ones_like(d))]

    monkeypatch.setattr(metrics, "_vessel_profiles", profiles)
    data = metrics.RunData({})
    half = metrics.vessel_half_distance(data, "steep", at_h=1.0)
    assert half.value == pytest.approx(20.0 * np.log(2), rel=1e-3) and half.units == "um"
    never = metrics.vessel_half_distance(data, "none", at_h=1.0)
    assert math.isnan(never.value) and never.display == "> 100"
    near = metrics.vessel_profile_ratio(data, "steep", "flat", at_h=1.0)
    assert near.value == pytest.approx(2.0, rel=1e-12)
    far = metrics.vessel_profile_ratio(data, "steep", "flat", at_h=1.0, at_um=100.0)
    assert far.value == pytest.approx(2.0 * np.exp(-100.0 / 20.0 + 100.0 / 200.0), rel=1e-12)
    steeper = metrics.vessel_profile_ratio(data, "steep", "flat", at_h=1.0, gradient_to_um=100)
    assert steeper.value == pytest.approx(np.exp(100.0 / 20.0 - 100.0 / 200.0), rel=1e-12)
    with pytest.raises(UsageError, match="not both"):
        metrics.vessel_profile_ratio(data, "steep", "flat", 1.0, at_um=50, gradient_to_um=100)


def test_the_vessel_profile_adds_up_to_the_runs_tumour_drug(tmp_path):
    """Averaged over every site, the profile of total drug around vessels is the run's own
    tumor_drug_total_uM (every site of the patch holds a live cancer cell), and it falls with
    distance from the vessels minutes after the dose; a field without cell pools (oxygen)
    averages to its own mean."""
    from tmesim import load, run
    from tmesim.validation.metrics import RunData, _vessel_profiles

    out = run(VALIDATION / "drug_penetration_gradient" / "scenario.yaml", tmp_path / "r.h5",
              overrides=["time.duration_h=0.7", "output.fields=[doxorubicin, oxygen]"], seed=1)
    data = RunData({"r": [out]})
    (d, prof, sites), = _vessel_profiles(data, "r", "doxorubicin", at_h=0.6667, max_um=1e9)
    with load(out) as res:
        rec = res.record_at(0.6667)
        total = float(res.metrics["tumor_drug_total_uM"][rec])
    assert sites.sum() == 3600 and d[0] == 0.0 and sites[0] == 36
    assert np.average(prof, weights=sites) == pytest.approx(total, rel=1e-5)
    assert prof[0] > 2.0 * prof[np.searchsorted(d, 100.0)]
    # a field that cells hold no pools of: the field alone
    (_, oxy, sites), = _vessel_profiles(data, "r", "oxygen", at_h=0.6667, max_um=1e9)
    with load(out) as res:
        field = np.asarray(res.field("oxygen", res.record_at(0.6667)), float)
    assert np.average(oxy, weights=sites) == pytest.approx(field.mean(), rel=1e-9)


def test_percent_injected_dose_and_a_ratio_of_two_times_against_hand_values():
    """%ID/g = 100 C / injected nmol and %ID = %ID/g x tumour mass, counting only the doses
    given by the read-out time (infusions pro rata); and series_ratio between two times of
    one run."""
    from types import SimpleNamespace as NS

    from tmesim.scenario.therapy_schema import Administration
    from tmesim.validation.metrics import (
        RunData,
        injected_nmol,
        percent_injected_dose,
        series_ratio,
    )

    t = np.arange(0.0, 169.0, 4.0)
    scenario = NS(
        nanoparticles={"lipo": NS(payload=NS(drug="dox"))},
        agents={"dox": NS(molar_mass_g_per_mol=500.0)},
        subject=NS(body_mass_kg=0.025),
        therapy=[Administration(agent="lipo", dose_mg_per_kg=4.0, every_h=48.0, count=2),
                 Administration(agent="dox", dose_mg_per_kg=1.0)],
    )

    class Fake(RunData):
        def series(self, label, name):
            return [(t, {"flat": np.full(t.size, 10.0),
                         "fall": 8.0 * np.exp(-t / 20.0)}[label])]

        def scenarios(self, label):
            return [scenario]

    data = Fake({})
    # 4 mg/kg x 0.025 kg = 0.1 mg = 200 nmol at 500 g/mol per dose; the free-drug line is apart
    assert injected_nmol(scenario, "lipo", 24.0) == pytest.approx(200.0)
    assert injected_nmol(scenario, "lipo") == pytest.approx(400.0)
    assert injected_nmol(scenario, "dox") == pytest.approx(50.0)
    one = percent_injected_dose(data, "flat", "x", "lipo", at_h=24.0, tumour_mass_g=0.2)
    assert one.value == pytest.approx(100 * 10.0 / 200.0 * 0.2) and one.units == "%ID"
    two = percent_injected_dose(data, "flat", "x", "lipo", at_h=72.0, tumour_mass_g=0.2)
    assert two.value == pytest.approx(0.5) and "2.5 %ID/g" in two.display
    # without a tumour mass: the share per gram, in its own unit
    per_g = percent_injected_dose(data, "flat", "x", "lipo", at_h=24.0)
    assert per_g.value == pytest.approx(5.0) and per_g.units == "%ID/g"
    with pytest.raises(UsageError, match="tumour_mass_g must be positive"):
        percent_injected_dose(data, "flat", "x", "lipo", at_h=24.0, tumour_mass_g=0.0)
    infusion = NS(**{**vars(scenario), "therapy": [
        Administration(agent="lipo", dose_mg_per_kg=4.0, duration_h=10.0)]})
    assert injected_nmol(infusion, "lipo", 5.0) == pytest.approx(100.0)
    with pytest.raises(UsageError, match="no agent or formulation named 'other'"):
        percent_injected_dose(data, "flat", "x", "other", at_h=24.0, tumour_mass_g=0.2)
    undosed = NS(**{**vars(scenario), "therapy": scenario.therapy[1:]})
    with pytest.raises(UsageError, match=r"no i\.v\. dosing line of 'lipo'"):
        injected_nmol(undosed, "lipo")
    kept = series_ratio(data, "fall", "fall", "x", at_h=168.0, ref_at_h=24.0)
    assert kept.value == pytest.approx(np.exp(-144.0 / 20.0), rel=1e-12)
    assert series_ratio(data, "fall", "flat", "x", at_h=24.0).value == pytest.approx(
        0.8 * np.exp(-24.0 / 20.0), rel=1e-12)


def test_population_density_per_tumour_area_and_as_a_share():
    """T cells per mm² of tumour section (live + necrotic cancer cells, voxel_um² each) and
    as a share of T cells plus live cancer cells, at the record nearest at_h."""
    from tmesim.validation.metrics import RunData, population_density

    t = np.array([0.0, 168.0, 336.0])
    table = {"counts/tcell": [5.0, 40.0, 90.0], "tumor_burden": [100.0, 900.0, 2700.0],
             "counts/necrotic": [0.0, 100.0, 300.0]}

    class Fake(RunData):
        def series(self, label, name):
            return [(t, np.array(table[name])), (t, 2.0 * np.array(table[name]))]

        def voxel_um(self, label):
            return 20.0

    data = Fake({})
    per_area = population_density(data, "lung", at_h=330.0)
    # 90 T cells over 3000 sites of 20 x 20 um = 1.2 mm^2: 75 per mm^2 (both replicates)
    assert per_area.per_replicate == pytest.approx([75.0, 75.0]) and per_area.units == "cells/mm²"
    share = population_density(data, "lung", at_h=168.0, per="share")
    assert share.value == pytest.approx(40.0 / 940.0)
    # the figure draws the checked quantity over time, not the raw count
    assert share.plot["ys"][1] == pytest.approx([10.0 / 210.0, 80.0 / 1880.0, 180.0 / 5580.0])
    assert per_area.plot["ys"][0] == pytest.approx([5.0 / 0.04, 40.0 / 0.4, 75.0])
    with pytest.raises(UsageError, match="per must be"):
        population_density(data, "lung", at_h=0.0, per="volume")


class _Series:
    """Stands in for RunData: fixed burden curves per run, two paired replicates."""

    def __init__(self, finals):
        self.finals = finals

    def series(self, run, name):
        t = np.array([0.0, 100.0, 200.0])
        return [(t, np.array([100.0, 100.0 + f / 2, f]) * k) for f, k in
                ((self.finals[run], 1.0), (self.finals[run], 2.0))]


def test_combination_ratio_against_bliss_and_the_better_arm():
    from tmesim.validation.metrics import combination_ratio

    # surviving fractions at 200 h: drug 0.8, antibody 0.5, both 0.3 (Bliss expects 0.4)
    data = _Series({"ctrl": 1000.0, "drug": 800.0, "ab": 500.0, "both": 300.0})
    bliss = combination_ratio(data, "ctrl", ["drug", "ab"], "both", at_h=200)
    assert bliss.value == pytest.approx(0.3 / 0.4) and bliss.per_replicate == pytest.approx([0.75] * 2)
    best = combination_ratio(data, "ctrl", ["drug", "ab"], "both", at_h=200, reference="best")
    assert best.value == pytest.approx(0.6)
    # an antagonistic combination, worse than the better arm, is above 1 on both scales
    data.finals["both"] = 600.0
    assert combination_ratio(data, "ctrl", ["drug", "ab"], "both", at_h=200).value > 1
    assert combination_ratio(data, "ctrl", ["drug", "ab"], "both", at_h=200,
                             reference="best").value == pytest.approx(1.2)
    assert set(bliss.plot["groups"]) == {"drug", "ab", "both"}
    with pytest.raises(UsageError, match="reference"):
        combination_ratio(data, "ctrl", ["drug", "ab"], "both", at_h=200, reference="loewe")
    with pytest.raises(UsageError, match="two single arms"):
        combination_ratio(data, "ctrl", ["drug"], "both", at_h=200)

def _write_case(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True)
    (folder / "s.yaml").write_text("time: {duration_h: 0.1, record_every_h: 0.1}\n")
    case = {
        "name": folder.name,
        "title": "t",
        "speed": "quick",
        "replicates": 1,
        "question": "q",
        "readout": "r",
        "runs": {"a": {"scenario": "s.yaml"}},
        "checks": [{"name": "c", "metric": "growth_ratio",
                    "args": {"run": "a", "from_h": 0, "to_h": 0.1}, "published": "x",
                    "tolerance": {"at_least": 1}, "why": "w"}],
    }
    case.update(changes)
    import yaml

    (folder / "case.yaml").write_text(yaml.safe_dump(case))
    (folder / "data.yaml").write_text(yaml.safe_dump({
        "citations": [{"id": "p", "reference": "ref", "read": "how"}],
        "quantities": {"x": {"text": "t", "units": "1", "value": 1, "sources": ["p"]}},
    }))
    return folder


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"speed": "fast"}, "speed"),
        ({"replicates": 0}, "replicates"),
        ({"runs": {"a": {"scenario": "missing.yaml"}}}, "file not found"),
        ({"checks": [{"name": "c", "metric": "nope", "published": "x",
                      "tolerance": {"at_least": 1}, "why": "w"}]}, "unknown metric"),
        ({"checks": [{"name": "c", "metric": "growth_ratio", "args": {"run": "b"},
                      "published": "x", "tolerance": {"at_least": 1}, "why": "w"}]},
         "growth_ratio"),
        ({"checks": [{"name": "c", "metric": "growth_ratio",
                      "args": {"run": "a", "from_h": 0, "to_h": 1}, "published": "x",
                      "tolerance": {"within": [2, 1]}, "why": "w"}]}, "low is above high"),
        ({"expected": {"result": "fail"}}, "reason"),
    ],
)
def test_a_malformed_case_names_the_file_and_key(tmp_path, changes, words):
    folder = _write_case(tmp_path / "validation" / "bad_case", **changes)
    with pytest.raises(UsageError, match=words) as err:
        load_case(folder)
    assert "case.yaml" in str(err.value) and "fix:" in str(err.value)


def test_a_case_runs_the_same_in_this_process_and_on_dask(tmp_path):
    pytest.importorskip("dask.distributed")
    kw = {"write": False}
    (a,) = run_validation(VALIDATION, ["hypoxia_vessel_distance"], workdir=tmp_path / "a", **kw)
    (b,) = run_validation(VALIDATION, ["hypoxia_vessel_distance"], workdir=tmp_path / "b",
                          dask_local=1, **kw)
    assert a.checks[0].measurement.value == b.checks[0].measurement.value


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "tmesim", "validation", *args], cwd=cwd,
                          capture_output=True, text=True)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "--case", "no_such_case", "--no-write"], "unknown case"),
        (["run", "--replicates", "0", "--no-write"], "positive integer"),
        (["run", "--root", "no/such/folder", "--no-write"], "validation folder not found"),
        (["run", "--workers", "2", "--dask-local", "2", "--no-write"], "not allowed with"),
        (["list", "--root", "no/such/folder"], "validation folder not found"),
    ],
)
def test_bad_command_lines_exit_with_2_and_say_why(args, words):
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr


def test_list_and_report_read_only_the_stored_results(tmp_path):
    r = _cli("list")
    assert r.returncode == 0 and all(c.name in r.stdout for c in CASES)
    out = tmp_path / "validation.md"
    r = _cli("report", "--docs", str(out), "--figures", str(FIGURES))
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8").count('<a id="') == len(CASES)
