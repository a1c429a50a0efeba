"""Scenario loading through the library API: every error carries file, line and key path."""

from __future__ import annotations

import shutil

import pytest
import yaml

import tmesim
from conftest import SCENARIOS, TINY
from tmesim import ScenarioError, load_scenario
from tmesim.scenario import dump_scenario, parse_set_options, scenario_from_dict

# id -> (files, overrides, expected key, file of the error (name, or "--set"), line)
ERRORS = {
    "malformed_yaml": ({"bad.yaml": "name: x\ntime: [1, 2\n"}, [], None, "bad.yaml", 3),
    "unknown_key": (
        {"bad.yaml": "name: u\ntime:\n  duraton_h: 5\n"},
        [],
        "time.duraton_h",
        "bad.yaml",
        3,
    ),
    "wrong_type": (
        {"bad.yaml": "name: w\ntime:\n  duration_h: twelve\n"},
        [],
        "time.duration_h",
        "bad.yaml",
        3,
    ),
    "negative_duration": (
        {"bad.yaml": "name: neg\ntime:\n  dt_min: 6\n  duration_h: -1\n"},
        [],
        "time.duration_h",
        "bad.yaml",
        4,
    ),
    "dt_larger_than_record": (
        {"bad.yaml": "time:\n  record_every_h: 1\n  dt_min: 90\n"},
        [],
        "time.dt_min",
        "bad.yaml",
        3,
    ),
    "record_not_multiple_of_dt": (
        {"bad.yaml": "time:\n  record_every_h: 0.25\n"},
        [],
        "time.record_every_h",
        "bad.yaml",
        2,
    ),
    "shape_rank": ({"bad.yaml": "domain:\n  shape: [40]\n"}, [], "domain.shape", "bad.yaml", 2),
    "missing_extends": ({"bad.yaml": "extends: gone.yaml\n"}, [], "extends", "bad.yaml", 1),
    "extends_cycle": (
        {"bad.yaml": "name: a\nextends: c.yaml\n", "c.yaml": "\n\nextends: bad.yaml\n"},
        [],
        "extends",
        "c.yaml",
        3,
    ),
    "z_side_in_2d": (
        {"bad.yaml": "fields:\n  oxygen:\n    boundary:\n      z_max: {neumann: 0.0}\n"},
        [],
        "fields.oxygen.boundary.z_max",
        "bad.yaml",
        4,
    ),
    "output_fields_unknown": (
        {"bad.yaml": "output:\n  fields: [glucose]\n"},
        [],
        "output.fields",
        "bad.yaml",
        2,
    ),
    "top_level_list": ({"bad.yaml": "- 1\n"}, [], None, "bad.yaml", 1),
    "duplicate_key": (
        {"bad.yaml": "domain:\n  voxel_um: 10\n  voxel_um: 20\n"},
        [],
        "domain.voxel_um",
        "bad.yaml",
        3,
    ),
    "missing_file": ({}, [], None, "missing.yaml", None),
    "necrosis_pair": (
        {"bad.yaml": "cells:\n  tumor:\n    necrosis_mmHg: 2\n"},
        [],
        "cells.tumor.necrosis_max_mmHg",
        "bad.yaml",
        2,  # necrosis_max_mmHg comes from the defaults: the nearest line in the file
    ),
    "too_many_cells": (
        {"bad.yaml": "domain: {shape: [5, 5]}\n"},
        [],
        "cells.tumor.initial.count",
        "bad.yaml",
        None,
    ),
    "python_tag": (
        {"bad.yaml": "seed: !!python/object/apply:os.getpid []\n"},
        [],
        None,
        "bad.yaml",
        1,
    ),
    "set_syntax": ({"bad.yaml": "name: ok\n"}, ["seed"], "seed", "--set", None),
    "set_unknown_key": (
        {"bad.yaml": "name: ok\n"},
        ["domain.shap=[3, 3]"],
        "domain.shap",
        "--set",
        None,
    ),
    "set_wrong_type": (
        {"bad.yaml": "name: ok\n"},
        ["domain.voxel_um=wide"],
        "domain.voxel_um",
        "--set",
        None,
    ),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_load_scenario_error_attributes(case, tmp_path):
    files, overrides, key, file, line = ERRORS[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / ("missing.yaml" if case == "missing_file" else "bad.yaml")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path, overrides)
    err = exc.value
    assert isinstance(err, tmesim.TmesimError)
    assert err.exit_code == 2
    assert err.key == key
    if file == "--set":
        assert err.file == file
    else:
        assert err.file == str(tmp_path / file)
    assert err.line == line
    assert err.fix
    assert "fix:" in str(err)
    if key is not None:
        assert f"key:      {key}" in str(err)


def test_unknown_key_suggests_the_close_name(tmp_path):
    (tmp_path / "s.yaml").write_text("time:\n  duraton_h: 5\n")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(tmp_path / "s.yaml")
    assert exc.value.fix.startswith("did you mean 'duration_h'?")
    assert exc.value.value == 5
    assert "dt_min" in exc.value.expected


def test_error_line_follows_the_extends_chain(tmp_path):
    shutil.copy(TINY, tmp_path / "tiny.yaml")
    shutil.copy(SCENARIOS / "baseline.yaml", tmp_path / "baseline.yaml")
    (tmp_path / "child.yaml").write_text("extends: tiny.yaml\ntime:\n  dt_min: 7\n")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(tmp_path / "child.yaml")
    # record_every_h comes from tiny.yaml; the error points at it there
    assert exc.value.key == "time.record_every_h"
    assert exc.value.file == str(tmp_path / "tiny.yaml")
    lines = (tmp_path / "tiny.yaml").read_text().splitlines()
    assert lines[exc.value.line - 1].strip().startswith("record_every_h:")


def test_extends_merges_and_overrides_apply_last(tmp_path):
    shutil.copy(TINY, tmp_path / "tiny.yaml")
    shutil.copy(SCENARIOS / "baseline.yaml", tmp_path / "baseline.yaml")
    (tmp_path / "child.yaml").write_text("extends: tiny.yaml\ntime:\n  duration_h: 6\n")
    sc = load_scenario(tmp_path / "child.yaml", ["seed=5", "cells.stem.initial.count=3"])
    assert sc.name == "tiny"
    assert sc.time.duration_h == 6.0
    assert sc.time.record_every_h == 3.0  # from tiny.yaml
    assert sc.domain.shape == [40, 40]
    assert sc.cells.tumor.initial.count == 30
    assert sc.cells.tumor.initial.placement == "capillary_cluster"  # from tiny.yaml
    assert sc.cells.tumor.initial.radius_um == 200.0  # from the packaged defaults
    assert sc.cells.stem.initial.count == 3
    assert sc.seed == 5
    assert sc.extends is None
    assert load_scenario(tmp_path / "child.yaml", seed=9).seed == 9


def test_scenario_is_frozen():
    sc = load_scenario(TINY)
    with pytest.raises(Exception, match="frozen"):
        sc.seed = 3


def test_derived_step_counts():
    sc = load_scenario(TINY)
    assert sc.n_steps == 120
    assert sc.record_every_steps == 30
    assert sc.diffusion_substeps == 6
    assert sc.stored_fields() == ["oxygen", "ifng", "tgfb", "egf", "ccl2", "chemokine", "ecm"]


def test_dump_round_trip(tmp_path):
    sc = load_scenario(TINY, ["time.duration_h=1.5"])
    text = dump_scenario(sc)
    assert "extends" not in yaml.safe_load(text)
    (tmp_path / "d.yaml").write_text(text)
    assert load_scenario(tmp_path / "d.yaml") == sc
    assert scenario_from_dict(yaml.safe_load(text)) == sc


def test_parse_set_options_values_are_yaml():
    assert parse_set_options(["a.b=48", "c=[1, 2]", "d=true", "e=text", "f="]) == [
        ("a.b", 48),
        ("c", [1, 2]),
        ("d", True),
        ("e", "text"),
        ("f", None),
    ]


def test_scenario_from_dict_error_label():
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict({"time": {"duration_h": 0}}, label="mine")
    assert exc.value.key == "time.duration_h"
    assert exc.value.file == "mine"


def test_numbers_in_exponent_form_are_numbers():
    """YAML 1.1 (PyYAML) reads ``1e-5`` as text; scenario files and --set read it as a float."""
    from tmesim.scenario.loader import parse_set_options

    got = dict(parse_set_options(["a=1e-5", "b=10", "c=2E3", "d=-3e2", "e=abc", "f=1.5e+1"]))
    assert got == {"a": 1e-5, "b": 10, "c": 2000.0, "d": -300.0, "e": "abc", "f": 15.0}
    assert isinstance(got["b"], int)
    sc = load_scenario(None, [("numerics.solver_rtol", got["a"])])
    assert sc.numerics.solver_rtol == 1e-5


def test_pgp_presets_set_the_level_unless_it_is_given(tmp_path):
    """cells.<kind>.pgp_preset sets pgp_mean to the named line's level; an explicit pgp_mean
    wins; the resolved scenario round-trips; an unknown name is a clear error (exit code 2)."""
    from tmesim.scenario.cells_schema import PGP_PRESETS

    assert PGP_PRESETS == {"parental": 0.0, "moderate": 1.0, "mdr_high": 40.0}
    for name, level in PGP_PRESETS.items():
        sc = load_scenario(TINY, [f"cells.tumor.pgp_preset={name}"])
        assert sc.cells.tumor.pgp_mean == level
        assert sc.cells.stem.pgp_mean == 1.0  # the other kind keeps its own default
        (tmp_path / "r.yaml").write_text(dump_scenario(sc))
        assert load_scenario(tmp_path / "r.yaml") == sc
    sc = load_scenario(TINY, ["cells.stem.pgp_preset=parental", "cells.tumor.pgp_mean=0.7",
                              "cells.tumor.pgp_preset=mdr_high"])
    assert (sc.cells.stem.pgp_mean, sc.cells.tumor.pgp_mean) == (0.0, 0.7)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(TINY, ["cells.tumor.pgp_preset=mcf7"])
    assert exc.value.exit_code == 2
    assert exc.value.key == "cells.tumor.pgp_preset"
