"""The Mesa contract of TMEModel: defaults, steps, DataCollector, batch_run."""

from __future__ import annotations

import mesa
import numpy as np
import pandas as pd
import pytest

import tmesim
from conftest import TINY
from tmesim import TMEModel


def test_builds_with_defaults():
    model = TMEModel()
    assert isinstance(model, mesa.Model)
    assert model.scenario == tmesim.load_scenario(None)
    assert model.scenario.domain.shape == [150, 150]
    assert model.population_counts() == {
        "tumor": 200, "stem": 10, "tcell": 0, "macrophage": 0, "fibroblast": 0, "necrotic": 0
    }
    assert model.n_steps == 1200
    assert model.running
    assert model.steps == 0


def test_runs_ten_steps_then_stops():
    model = TMEModel(**{"time.duration_h": 1, "domain.shape": [30, 30]})
    assert model.scenario.domain.shape == [30, 30]
    seen = [model.population_counts()]
    while model.running:
        model.step()
        seen.append(model.population_counts())
    assert model.steps == 10
    assert model.running is False
    assert model.time_h == pytest.approx(1.0)
    df = model.datacollector.get_model_vars_dataframe()
    assert len(df) == 11  # the initial state and one row per step
    assert {"time_h", "tumor", "stem", "necrotic", "oxygen_mean_mmHg"} <= set(df.columns)
    assert df["tumor"].iloc[0] == 200
    assert df["stem"].iloc[0] == 10
    np.testing.assert_allclose(df["time_h"], np.arange(11) / 10)
    assert df["oxygen_mean_mmHg"].iloc[-1] < 38.0
    # every row holds that step's counts (the reporters share one count per step)
    for name in tmesim.model.POPULATIONS:
        assert df[name].tolist() == [c[name] for c in seen]
    assert df["tumor"].diff().abs().sum() > 0


def test_double_underscore_and_dotted_overrides_agree():
    a = TMEModel(**{"time.duration_h": 0.5, "domain.shape": [20, 20]})
    b = TMEModel(time__duration_h=0.5, domain__shape=[20, 20])
    assert a.scenario == b.scenario


def test_rng_replaces_seed_and_changes_the_run():
    runs = {}
    for rng in (1, 1, 2):
        m = TMEModel(TINY, rng=rng, **{"time.duration_h": 1.2})
        for _ in range(12):
            m.step()
        snap = m.cells.snapshot()
        runs.setdefault(rng, []).append((m.seed, snap["x"].tobytes(), snap["id"].tobytes()))
    assert runs[1][0] == runs[1][1]
    assert runs[1][0][0] == 1 and runs[2][0][0] == 2
    assert runs[1][0][1:] != runs[2][0][1:]


def test_bad_override_raises_scenario_error():
    with pytest.raises(tmesim.ScenarioError) as exc:
        TMEModel(**{"time.duraton_h": 1})
    assert exc.value.key == "time.duraton_h"
    assert "duration_h" in exc.value.fix


def test_batch_run():
    results = mesa.batch_run(
        TMEModel,
        parameters={"time__duration_h": 0.5, "domain__shape": [[20, 20]], "rng": [1, 2]},
        number_processes=1,
        max_steps=5,
        data_collection_period=-1,
        display_progress=False,
    )
    df = pd.DataFrame(results)
    assert len(df) == 2
    assert sorted(df["rng"]) == [1, 2]
    assert all(s == [20, 20] for s in df["domain__shape"])
    assert set(df["tumor"]) <= set(range(200, 400))
    assert (df["stem"] >= 10).all()
    # Mesa reports the collected row ``model.steps - 1``; row k is the state after k steps
    assert (df["Step"] == 4).all()
    np.testing.assert_allclose(df["time_h"], df["Step"] / 10)
    assert df["oxygen_mean_mmHg"].nunique() == 2  # different seeds, different runs
