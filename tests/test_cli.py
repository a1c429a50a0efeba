"""The command line: bad inputs through the real CLI (exit 2, key path, fix, no traceback),
inspect and schema output, and a run killed with SIGKILL midway."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import tmesim
from conftest import REPO, SCENARIOS, kill_when, run_cli
from tmesim.cli import main
from tmesim.model import POPULATIONS

# --------------------------------------------------------------------------- bad inputs
# id -> (extra files, command args, key path named on stderr or None, substrings on stderr)
# Files are written into a scratch folder that also holds copies of scenarios/*.yaml, so
# ``extends: tiny.yaml`` resolves. Every file written beforehand must be left untouched.
BAD_INPUTS = {
    "malformed_yaml": (
        {"bad.yaml": "name: x\ntime: [1, 2\n"},
        ["validate", "bad.yaml"],
        None,
        ["malformed YAML", "bad.yaml, line 3"],
    ),
    "unknown_key_did_you_mean": (
        {"bad.yaml": "extends: tiny.yaml\ntime:\n  duraton_h: 5\n"},
        ["validate", "bad.yaml"],
        "time.duraton_h",
        ["unknown key", "did you mean 'duration_h'?", "bad.yaml, line 3"],
    ),
    "wrong_type": (
        {"bad.yaml": "extends: tiny.yaml\ntime:\n  duration_h: twelve\n"},
        ["validate", "bad.yaml"],
        "time.duration_h",
        ["wrong type", "a number (h)", "'twelve'"],
    ),
    "negative_duration": (
        {"bad.yaml": "extends: tiny.yaml\ntime:\n  duration_h: -5\n"},
        ["validate", "bad.yaml"],
        "time.duration_h",
        ["greater than 0", "value:    -5"],
    ),
    "dt_larger_than_record_interval": (
        {"bad.yaml": "extends: tiny.yaml\ntime:\n  dt_min: 600\n  record_every_h: 3\n"},
        ["validate", "bad.yaml"],
        "time.dt_min",
        ["record_every_h * 60", "bad.yaml, line 3"],
    ),
    "record_interval_not_multiple_of_dt": (
        {"bad.yaml": "extends: tiny.yaml\ntime:\n  record_every_h: 0.25\n"},
        ["validate", "bad.yaml"],
        "time.record_every_h",
        ["whole multiple of time.dt_min", "bad.yaml, line 3"],
    ),
    "shape_wrong_rank": (
        {"bad.yaml": "extends: tiny.yaml\ndomain:\n  shape: [2, 3, 4, 5]\n"},
        ["validate", "bad.yaml"],
        "domain.shape",
        ["a list of 2", "[2, 3, 4, 5]"],
    ),
    "missing_extends_file": (
        {"bad.yaml": "name: x\nextends: nowhere.yaml\n"},
        ["validate", "bad.yaml"],
        "extends",
        ["does not exist", "'nowhere.yaml'", "bad.yaml, line 2"],
    ),
    "extends_cycle": (
        {"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"},
        ["validate", "a.yaml"],
        "extends",
        ["cycle", "a.yaml -> b.yaml -> a.yaml"],
    ),
    "unwritable_output_location": (
        {"blocker": "a plain file, so blocker/ cannot be a folder\n"},
        ["run", "tiny.yaml", "-o", "blocker/out.h5", "-q"],
        None,
        ["cannot create the output folder blocker"],
    ),
    "existing_output_without_overwrite": (
        {"exists.h5": "precious bytes \x00\x01 that must survive\n"},
        ["run", "tiny.yaml", "-o", "exists.h5", "-q"],
        None,
        ["already exists", "--overwrite"],
    ),
    "z_boundary_in_2d": (
        {
            "bad.yaml": "extends: tiny.yaml\nfields:\n  oxygen:\n    boundary:\n"
            "      z_min: {dirichlet: 1.0}\n"
        },
        ["validate", "bad.yaml"],
        "fields.oxygen.boundary.z_min",
        ["z sides exist only in 3-D", "bad.yaml, line 5"],
    ),
    "output_fields_unknown": (
        {"bad.yaml": "extends: tiny.yaml\noutput:\n  fields: [oxygen, glucose]\n"},
        ["validate", "bad.yaml"],
        "output.fields",
        ["'glucose' is not one"],
    ),
    "bad_set_syntax": (
        {},
        ["validate", "tiny.yaml", "--set", "time.duration_h"],
        "time.duration_h",
        ["KEY=VALUE", "file:     --set"],
    ),
    "set_unknown_key": (
        {},
        ["run", "tiny.yaml", "-o", "never.h5", "--set", "time.duraton_h=5"],
        "time.duraton_h",
        ["unknown key", "did you mean 'duration_h'?", "file:     --set"],
    ),
    "top_level_not_a_mapping": (
        {"bad.yaml": "- name\n- time\n"},
        ["validate", "bad.yaml"],
        None,
        ["must be a mapping", "bad.yaml, line 1"],
    ),
    "duplicate_key": (
        {"bad.yaml": "name: a\ntime:\n  dt_min: 6\n  dt_min: 3\n"},
        ["validate", "bad.yaml"],
        "time.dt_min",
        ["duplicate key", "bad.yaml, line 4", "line 3"],
    ),
    "missing_scenario_file": (
        {},
        ["run", "no_such_file.yaml", "-o", "x.h5"],
        None,
        ["scenario file not found", "no_such_file.yaml"],
    ),
    "necrosis_threshold_pair": (
        {"bad.yaml": "extends: tiny.yaml\ncells:\n  stem:\n    necrosis_max_mmHg: 8\n"},
        ["validate", "bad.yaml"],
        "cells.stem.necrosis_max_mmHg",
        ["at most necrosis_mmHg", "bad.yaml, line 4"],
    ),
    "too_many_initial_cells": (
        {"bad.yaml": "extends: tiny.yaml\ncells:\n  tumor:\n    initial: {count: 5000}\n"},
        ["validate", "bad.yaml"],
        "cells.tumor.initial.count",
        ["at most 1600 initial cells", "5037 requested"],
    ),
    "yaml_python_tag_is_data": (
        {"bad.yaml": 'name: !!python/object/apply:os.system ["echo hacked > pwned.txt"]\n'},
        ["validate", "bad.yaml"],
        None,
        ["YAML tag not allowed", "bad.yaml, line 1"],
    ),
}


# The same kind of checks, run in process (cheaper) for inputs beyond the subprocess set.
MORE_BAD_INPUTS = {
    "output_is_a_directory": (
        {"outdir/keep.txt": "x\n"},
        ["run", "tiny.yaml", "-o", "outdir", "-q"],
        None,
        ["is a directory"],
    ),
    "bad_set_yaml_value": (
        {},
        ["validate", "tiny.yaml", "--set", "domain.shape=[1,"],
        "domain.shape",
        ["not valid YAML"],
    ),
    "set_inside_a_value": (
        {},
        ["validate", "tiny.yaml", "--set", "name.first=5"],
        "name.first",
        ["not a mapping"],
    ),
    "bad_seed": (
        {},
        ["validate", "tiny.yaml", "--set", "seed=-1"],
        "seed",
        ["at least 0"],
    ),
    "inspect_not_a_result": (
        {},
        ["inspect", "tiny.yaml"],
        None,
        ["cannot open tiny.yaml as HDF5"],
    ),
    "unknown_subcommand_flag": (
        {},
        ["run", "tiny.yaml", "--frobnicate"],
        None,
        ["unrecognized arguments: --frobnicate"],
    ),
    "therapy_agent_misspelt": (
        {
            "bad.yaml": "extends: tiny.yaml\ntherapy:\n"
            "  - {agent: doxorubicn, dose_mg_per_kg: 5.0}\n"
        },
        ["validate", "bad.yaml"],
        "therapy.0.agent",
        ["value:    'doxorubicn'", "did you mean 'doxorubicin'?", "bad.yaml, line 3"],
    ),
    "subject_species_unknown": (
        {"bad.yaml": "extends: tiny.yaml\nsubject:\n  species: mose\n"},
        ["validate", "bad.yaml"],
        "subject.species",
        ["value:    'mose'", "did you mean 'mouse'?", "mouse, human", "bad.yaml, line 3"],
    ),
}


def _prepare(files, folder):
    """Write a case's files next to copies of scenarios/*.yaml; return what was written."""
    for src in SCENARIOS.glob("*.yaml"):
        shutil.copy(src, folder / src.name)
    written = {}
    for name, text in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode())
        written[p] = text.encode()
    return written


@pytest.fixture(scope="session")
def bad_input_runs(tmp_path_factory):
    """Every bad-input case run through the real CLI, a few subprocesses at a time."""
    prepared = {}
    for case in BAD_INPUTS:
        folder = tmp_path_factory.mktemp(case)
        written = _prepare(BAD_INPUTS[case][0], folder)
        prepared[case] = (folder, written, sorted(p.name for p in folder.rglob("*")))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            case: pool.submit(run_cli, *BAD_INPUTS[case][1], cwd=prepared[case][0])
            for case in BAD_INPUTS
        }
        return {case: (futures[case].result(), *prepared[case]) for case in BAD_INPUTS}


def _check_bad_input(rc, stdout, stderr, key, needles, folder, written, before):
    out = stdout + stderr
    assert rc == 2, out
    assert "Traceback" not in out
    assert "fix:" in stderr, stderr
    assert stderr.startswith(("tmesim: error:", "usage:")), stderr
    if key is not None:
        assert re.search(rf"^  key:\s+{re.escape(key)}$", stderr, re.M), stderr
    for needle in needles:
        assert needle in stderr, (needle, stderr)
    # nothing was created or changed: every check happens before simulating or writing
    for p, data in written.items():
        assert p.read_bytes() == data
    assert sorted(p.name for p in folder.rglob("*")) == before
    assert "hacked" not in stdout


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_with_key_and_fix(case, bad_input_runs):
    """Real subprocesses: ``python -m tmesim ...``."""
    _, _, key, needles = BAD_INPUTS[case]
    proc, folder, written, before = bad_input_runs[case]
    _check_bad_input(
        proc.returncode, proc.stdout, proc.stderr, key, needles, folder, written, before
    )


@pytest.mark.parametrize("case", list(MORE_BAD_INPUTS), ids=list(MORE_BAD_INPUTS))
def test_more_bad_inputs_in_process(case, tmp_path, monkeypatch, capsys):
    files, args, key, needles = MORE_BAD_INPUTS[case]
    written = _prepare(files, tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    cap = capsys.readouterr()
    _check_bad_input(rc, cap.out, cap.err, key, needles, tmp_path, written, before)


def test_many_distinct_bad_inputs():
    assert len(BAD_INPUTS) >= 15
    cases = [*BAD_INPUTS.values(), *MORE_BAD_INPUTS.values()]
    distinct = {(tuple(v[1]), tuple(v[0].items())) for v in cases}
    assert len(distinct) == len(cases)


def test_no_arguments_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "fix:" in capsys.readouterr().err


def test_overwrite_replaces_existing_output(tmp_path, capsys):
    out = tmp_path / "o.h5"
    out.write_bytes(b"old")
    rc = main(["run", str(SCENARIOS / "tiny.yaml"), "-o", str(out), "-q", "--overwrite"])
    assert rc == 0
    with tmesim.load(out) as res:
        assert res.complete
        assert res.n_records == 5


# --------------------------------------------------------------------------- inspect / schema
def test_inspect_text(tiny_result, capsys):
    assert main(["inspect", str(tiny_result)]) == 0
    out = capsys.readouterr().out
    assert "scenario:  tiny (seed 0, status complete)" in out
    assert "0 h .. 12 h in 5 records" in out
    assert re.search(r"^  oxygen\s+mmHg\s+shape \(40, 40\) per record$", out, re.M)
    assert re.search(r"^  tumor_burden\s+\d+", out, re.M)


def test_inspect_json(tiny_result, capsys):
    assert main(["inspect", "--json", str(tiny_result)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["scenario_name"] == "tiny"
    assert info["seed"] == 0
    assert info["status"] == "complete"
    assert info["records"] == 5
    assert info["time_h"] == {"start": 0.0, "end": 12.0}
    assert info["format_version"] == 1
    assert info["tmesim_version"] == tmesim.__version__
    assert set(info["populations"]) == set(POPULATIONS)
    assert info["populations"]["tumor"][0] == 30
    assert info["populations"]["stem"][0] == 2
    assert info["fields"]["oxygen"] == {"units": "mmHg", "shape": [40, 40]}
    assert set(info["fields"]) == {"oxygen", "ifng", "tgfb", "egf", "ccl2", "chemokine", "ecm"}
    assert info["metrics"]["oxygen_mean_mmHg"]["units"] == "mmHg"


def test_inspect_missing_file_in_process(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.h5")]) == 2
    err = capsys.readouterr().err
    assert "result file not found" in err and "fix:" in err


def test_schema_json(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"time", "domain", "fields", "cells", "output", "seed"} <= set(schema["properties"])
    assert schema["title"] == "tmesim scenario"
    assert "required" not in schema


def test_schema_markdown_matches_docs(capsys):
    assert main(["schema", "--markdown"]) == 0
    out = capsys.readouterr().out
    doc = REPO / "docs" / "scenario-reference.md"
    assert doc.read_text(encoding="utf-8") == out, (
        "docs/scenario-reference.md is stale: regenerate it with "
        "'tmesim schema --markdown > docs/scenario-reference.md'"
    )
    for key in ("`time.duration_h`", "`domain.shape`", "`fields.oxygen.diffusion_um2_per_min`"):
        assert key in out


def test_validate_print_round_trips(tmp_path, capsys):
    assert main(["validate", str(SCENARIOS / "tiny.yaml"), "--print"]) == 0
    text = capsys.readouterr().out
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(text)
    assert tmesim.load_scenario(dumped) == tmesim.load_scenario(SCENARIOS / "tiny.yaml")


# --------------------------------------------------------------------------- SIGKILL midway
def _records(path) -> int:
    try:
        with tmesim.load(path) as res:
            return res.n_records
    except tmesim.TmesimError:
        return -1


@pytest.mark.parametrize("kill_after", [2, 5, 9])
def test_sigkill_midway_leaves_readable_file(tmp_path, kill_after):
    out = tmp_path / "killed.h5"
    args = [
        sys.executable,
        "-m",
        "tmesim",
        "run",
        str(SCENARIOS / "tiny.yaml"),
        "-o",
        str(out),
        "-q",
        "--set",
        "time.duration_h=200",
        "--set",
        "domain.shape=[80,80]",
        "--set",
        "time.record_every_h=0.5",
    ]
    proc = kill_when(args, lambda: _records(out) >= kill_after)
    assert proc.returncode == -signal.SIGKILL

    r = run_cli("inspect", "--json", out)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["status"] == "running"  # never marked complete
    n = info["records"]
    assert kill_after <= n < 401
    assert info["time_h"]["start"] == 0.0
    assert info["time_h"]["end"] == pytest.approx(0.5 * (n - 1))
    with tmesim.load(out) as res:
        assert not res.complete
        assert res.field("oxygen").shape == (n, 80, 80)
        last = res.cells(n - 1)
        assert len(last["id"]) == sum(int(c[-1]) for c in res.counts.values())
        df = res.to_pandas()
        assert len(df) == n


def test_light_commands_do_not_load_mesa_or_numba(tmp_path):
    """validate, inspect and schema start fast: the heavy stack is imported only to simulate."""
    code = (
        "import sys\n"
        "from tmesim.cli import main\n"
        f"assert main(['validate', {str(SCENARIOS / 'tiny.yaml')!r}]) == 0\n"
        "assert main(['schema']) == 0\n"
        "heavy = sorted({'mesa', 'numba'} & set(sys.modules))\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
