"""The Mesa contract of TMEModel: defaults, steps, DataCollector, batch_run."""

from __future__ import annotations

import subprocess
import sys

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
        "tumor": 200, "stem": 10, "tcell": 0, "macrophage": 0, "fibroblast": 0, "mdsc": 0,
        "necrotic": 0,
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


def test_simulation_without_mesa_steps_the_same_bits_as_tmemodel():
    """tmesim run steps a Simulation (no Mesa); TMEModel is the same model as a mesa.Model."""
    from tmesim.simulation import Simulation

    kw = {"time.duration_h": 2.0}
    sim, mod = Simulation(TINY, rng=5, **kw), TMEModel(TINY, rng=5, **kw)
    assert not isinstance(sim, mesa.Model) and isinstance(mod, Simulation)
    while sim.running:
        sim.step()
        mod.step()
        assert sim.steps == mod.steps and sim.time_h == mod.time_h
    assert not mod.running
    n = sim.cells.n
    assert n == mod.cells.n and n > 0
    a, b = sim.cells, mod.cells
    for x, y in ((a._i64, b._i64), (a._i32, b._i32), (a._f32, b._f32)):
        np.testing.assert_array_equal(x[:, :n], y[:, :n])
    for x, y in ((a.kind, b.kind), (a.state, b.state), (a.site, b.site)):
        np.testing.assert_array_equal(x[:n], y[:n])
    np.testing.assert_array_equal(sim.fields.data, mod.fields.data)
    assert sim.metrics() == mod.metrics()
    # the same initial draws from the same generator as Mesa's
    assert Simulation(TINY, rng=5).rng.random() == TMEModel(TINY, rng=5).rng.random()


def test_a_run_does_not_import_mesa(tmp_path):
    code = (
        "import sys\n"
        "from tmesim.cli import main\n"
        f"assert main(['run', {str(TINY)!r}, '-o', {str(tmp_path / 'o.h5')!r}, '-q',"
        " '--set', 'time.duration_h=1']) == 0\n"
        "print('MESA', 'mesa' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "MESA False" in proc.stdout
