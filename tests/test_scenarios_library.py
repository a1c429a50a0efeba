"""Every scenario in scenarios/ validates and runs for two steps (new files are picked up)."""

from __future__ import annotations

import pytest

import tmesim
from conftest import SCENARIOS
from tmesim.cli import main

FILES = sorted(SCENARIOS.glob("*.yaml"))


def test_library_is_not_empty():
    assert {"baseline.yaml", "tiny.yaml"} <= {p.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_validates(path, capsys):
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: valid (")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_runs_two_steps(path, tmp_path):
    out = tmp_path / f"{path.stem}.h5"
    rc = main(["run", str(path), "-o", str(out), "-q", "--set", "time.duration_h=0.2"])
    assert rc == 0
    with tmesim.load(out) as res:
        assert res.complete
        assert res.n_records == 2  # the initial state and the end of step 2
        assert res.time_h[-1] == pytest.approx(0.2)
        sc = tmesim.load_scenario(path, ["time.duration_h=0.2"])
        assert res.scenario == sc
        assert res.counts["tumor"][0] == sc.cells.tumor.initial.count
