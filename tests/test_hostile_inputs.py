"""A corpus of hostile inputs and faults: every command exits 0, 1 or 2 with one clear message,
never a traceback, never a hang, and nothing already written is lost.

Each row of CORPUS is ``id: (command args, expected exit code, words expected in the output)``.
Paths in the args are relative to a scratch folder ("the lab", built once) holding the files the
rows need; ``{good}`` is a complete result file there. Most rows call ``tmesim.cli.main``
in process (one compiled process for all); the faults that need a real process (a kill, a full
disk, two writers at once, an ensemble parent's death) run as subprocesses with timeouts.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import TINY
from tmesim.cli import main

SHORT = ["--set", "time.duration_h=3", "--set", "time.record_every_h=1"]


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _nested_block(depth: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"


MASK_SCENARIO = (
    "extends: {tiny}\ndomain:\n  geometry: mask\n  shape: [6, 7]\n  mask: {{path: {mask}}}\n"
    "cells: {{tumor: {{initial: {{count: 3}}}}, stem: {{initial: {{count: 0}}}}, "
    "tcell: {{initial: {{count: 0}}}}, macrophage: {{initial: {{count: 0}}}}, "
    "fibroblast: {{initial: {{count: 0}}}}}}\n"
)

# name -> text of the files written into the lab before the rows run
FILES = {
    "bomb.yaml": _alias_bomb(),
    "selfref.yaml": "x: &a [1, *a]\n",
    "deep_flow.yaml": "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep_block.yaml": _nested_block(200),
    "many_aliases.yaml": "a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n",
    "cycle_a.yaml": "extends: cycle_b.yaml\n",
    "cycle_b.yaml": "extends: cycle_a.yaml\n",
    "pytag.yaml": 'x: !!python/object/apply:os.system ["echo owned"]\n',
    "toplist.yaml": "- 1\n- 2\n",
    "dup.yaml": "name: a\nname: b\n",
    "unknown.yaml": "tiem: {duration_h: 3}\n",
    "empty.yaml": "",
    "late_dose.yaml": f"extends: {TINY}\ntherapy:\n  - {{agent: doxorubicin, dose_mg_per_kg: 1.0, "
    "start_h: 20.0}\n",
    "sub/mask_ok.yaml": MASK_SCENARIO.format(tiny=TINY, mask="m.npy"),
    "sub/mask_missing.yaml": MASK_SCENARIO.format(tiny=TINY, mask="nope.npy"),
    "sub/mask_rgb.yaml": MASK_SCENARIO.format(tiny=TINY, mask="rgb.npy"),
    "sub/mask_shape.yaml": MASK_SCENARIO.format(tiny=TINY, mask="small.npy"),
    "sub/mask_label.yaml": MASK_SCENARIO.format(tiny=TINY, mask="label9.npy"),
    "sub/mask_txt.yaml": MASK_SCENARIO.format(tiny=TINY, mask="m.txt"),
    "sub/m.txt": "0 1\n",
    "not_h5.h5": "just text\n",
    "existing.png": "an older picture\n",
    "existing.h5": "an older result\n",
    "plain_file": "a file, so plain_file/ cannot be a folder\n",
}


def _write_extras(d, good):
    """Files that are not plain text: masks, FIFOs, links, edited result files."""
    mask = np.zeros((6, 7), np.int64)
    mask[2:4, 2:5] = 2  # a capillary patch
    np.save(d / "sub" / "m.npy", mask)
    (d / "cwd").mkdir()
    np.save(d / "cwd" / "m.npy", np.zeros((3, 3), np.int64))  # a decoy in the working directory
    rgb = np.zeros((6, 7, 3), np.int64)
    rgb[..., 1] = 1
    np.save(d / "sub" / "rgb.npy", rgb)
    np.save(d / "sub" / "small.npy", np.zeros((5, 5), np.int64))
    np.save(d / "sub" / "label9.npy", np.full((6, 7), 9, np.int64))
    (d / "big.yaml").write_bytes(b"# " + b"x" * (5 * 1024 * 1024) + b"\n")
    (d / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (d / "a_dir").mkdir()
    os.mkfifo(d / "fifo.yaml")
    os.mkfifo(d / "fifo.h5")
    os.symlink(d / "existing.h5", d / "link.h5")
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = 1
    for name, edit in {
        "no_time.h5": lambda f: f.__delitem__("time_h"),
        "zero_records.h5": lambda f: _cut(f, 0),
        "future.h5": lambda f: f.attrs.__setitem__("format_version", 99),
        "inf_metric.h5": lambda f: f["metrics/oxygen_mean_mmHg"].__setitem__(-1, np.inf),
        "far_cells.h5": lambda f: f["cells/x"].__setitem__(slice(None), 10_000),
    }.items():
        (d / name).write_bytes(good.read_bytes())
        with h5py.File(d / name, "r+") as f:
            edit(f)
    (d / "unfinished.h5.partial").write_bytes(good.read_bytes())
    with h5py.File(d / "unfinished.h5.partial", "r+") as f:
        f.attrs["status"] = "running"


def _cut(f, n):
    f["time_h"].resize(n, axis=0)


# id -> (args, exit code, words that must appear in stdout + stderr)
CORPUS = {
    # ---- YAML reading: bounded, data only
    "alias_bomb": (["validate", "@bomb.yaml"], 2, ["expands to more than"]),
    "self_referencing_alias": (["validate", "@selfref.yaml"], 2, ["contains it"]),
    "flow_nesting_5000": (["validate", "@deep_flow.yaml"], 2, ["nested more than 64"]),
    "block_nesting_200": (["validate", "@deep_block.yaml"], 2, ["nested more than 64"]),
    "1001_aliases": (["validate", "@many_aliases.yaml"], 2, ["more than 1000 YAML aliases"]),
    "extends_chain_100": (["validate", "@chain0.yaml"], 2, ["chain is longer than 32"]),
    "extends_cycle": (["validate", "@cycle_a.yaml"], 2, ["forms a cycle"]),
    "dev_zero": (["validate", "/dev/zero"], 2, ["not a regular file"]),
    "fifo_scenario": (["validate", "@fifo.yaml"], 2, ["not a regular file"]),
    "file_over_4_MiB": (["validate", "@big.yaml"], 2, ["larger than 4 MiB"]),
    "scenario_is_directory": (["validate", "@a_dir"], 2, ["is a directory"]),
    "scenario_missing": (["validate", "@missing.yaml"], 2, ["not found"]),
    "scenario_not_utf8": (["validate", "@latin1.yaml"], 2, ["not UTF-8"]),
    "python_tag": (["validate", "@pytag.yaml"], 2, ["tag not allowed"]),
    "top_level_list": (["validate", "@toplist.yaml"], 2, ["must be a mapping"]),
    "duplicate_key": (["validate", "@dup.yaml"], 2, ["duplicate key"]),
    "unknown_section": (["validate", "@unknown.yaml"], 2, ["unknown key", "did you mean"]),
    "nul_in_scenario_path": (["validate", "@a\0b.yaml"], 2, ["NUL"]),
    "empty_file_is_defaults": (["validate", "@empty.yaml"], 0, ["valid"]),
    "set_alias_bomb": (
        ["validate", str(TINY), "--set", "description=" + "[&a [1,1,1,1,1,1,1,1,1,1], "
         + ", ".join(f"&{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdef", "bcdefg", strict=True))
         + "]"],
        2,
        ["expands to more than"],
    ),
    "set_without_equals": (["validate", str(TINY), "--set", "time.duration_h"], 2, ["KEY=VALUE"]),
    "set_bad_yaml": (["validate", str(TINY), "--set", "x=[1,"], 2, ["not valid YAML"]),
    "share_sites_not_bool": (["validate", str(TINY), "--set",
                              "domain.small_cells_share_sites=maybe"], 2,
                             ["domain.small_cells_share_sites", "true or false"]),
    # ---- numbers: finite, bounded, sensible
    "decay_inf": (["validate", str(TINY), "--set", "fields.oxygen.decay_per_min=.inf"], 2,
                  ["finite number", "fields.oxygen.decay_per_min"]),
    "record_every_inf": (["validate", str(TINY), "--set", "time.record_every_h=.inf"], 2,
                         ["finite number"]),
    "duration_nan": (["validate", str(TINY), "--set", "time.duration_h=.nan"], 2,
                     ["finite number"]),
    "pgp_1e300": (["validate", str(TINY), "--set", "cells.tumor.pgp_mean=1.0e+300"], 2,
                  ["between -1e+30 and 1e+30", "cells.tumor.pgp_mean"]),
    "voxel_1e-300": (["validate", str(TINY), "--set", "domain.voxel_um=1.0e-300"], 2,
                     ["at least 0.1"]),
    "recruitment_1e20": (
        ["validate", str(TINY), "--set", "cells.tcell.recruitment.base_per_h=1.0e+20"], 2,
        ["at most 1000000"],
    ),
    "shape_46340_squared": (["validate", str(TINY), "--set", "domain.shape=[46340, 46340]"], 2,
                            ["would not fit in memory", "GiB"]),
    "shape_zero": (["validate", str(TINY), "--set", "domain.shape=[0, 10]"], 2,
                   ["at least 1 voxel"]),
    "shape_4d": (["validate", str(TINY), "--set", "domain.shape=[2, 2, 2, 2]"], 2,
                 ["a list of 2"]),
    "seed_2_pow_64": (["validate", str(TINY), "--set", "seed=18446744073709551616"], 2,
                      ["seed"]),
    "seed_negative": (["validate", str(TINY), "--set", "seed=-1"], 2, ["seed"]),
    "duration_text": (["validate", str(TINY), "--set", "time.duration_h=abc"], 2,
                      ["wrong type"]),
    "dose_after_end_warns": (["validate", "@late_dose.yaml"], 0,
                             ["warning", "never given", "valid"]),
    # ---- masks: relative to the scenario file, checked by validate
    "mask_relative_to_scenario": (["validate", "@sub/mask_ok.yaml"], 0, ["valid"]),
    "mask_missing": (["validate", "@sub/mask_missing.yaml"], 2,
                     ["mask file not found", "domain.mask.path"]),
    "mask_rgb_channels_differ": (["validate", "@sub/mask_rgb.yaml"], 2,
                                 ["colour channels that differ"]),
    "mask_wrong_shape": (["validate", "@sub/mask_shape.yaml"], 2, ["does not match"]),
    "mask_unmapped_label": (["validate", "@sub/mask_label.yaml"], 2, ["no tissue code"]),
    "mask_unsupported_format": (["validate", "@sub/mask_txt.yaml"], 2,
                                ["unsupported mask format"]),
    # ---- output paths of run
    "output_nul": (["run", str(TINY), "-q", "-o", "@out\0x.h5"], 2, ["control characters"]),
    "output_newline": (["run", str(TINY), "-q", "-o", "@out\nx.h5"], 2, ["control characters"]),
    "output_is_directory": (["run", str(TINY), "-q", "-o", "@a_dir"], 2, ["is a directory"]),
    "output_fifo_overwrite": (["run", str(TINY), "-q", "-o", "@fifo.h5", "--overwrite"], 2,
                              ["not a regular file"]),
    "output_symlink_overwrite": (["run", str(TINY), "-q", "-o", "@link.h5", "--overwrite"], 2,
                                 ["not a regular file"]),
    "output_dev_null_overwrite": (["run", str(TINY), "-q", "-o", "/dev/null", "--overwrite"], 2,
                                  ["not a regular file"]),
    "output_exists": (["run", str(TINY), "-q", "-o", "@existing.h5"], 2, ["already exists"]),
    "output_folder_is_file": (["run", str(TINY), "-q", "-o", "@plain_file/out.h5"], 2,
                              ["cannot create the output folder"]),
    "overwrite_with_bad_set_keeps_old": (
        ["run", str(TINY), "-q", "-o", "@existing.h5", "--overwrite", "--set",
         "fields.oxygen.decay_per_min=.inf"], 2, ["finite number"],
    ),
    "unfinished_partial_needs_resume": (["run", str(TINY), "-q", "-o", "@unfinished.h5"], 2,
                                        ["unfinished run", "--resume"]),
    "resume_nothing": (["run", "--resume", "@nothing.h5"], 2, ["nothing to resume"]),
    "resume_with_scenario": (["run", str(TINY), "--resume", "@x.h5"], 2, ["--resume takes"]),
    "run_without_scenario": (["run"], 2, ["no scenario given"]),
    "run_seed_2_pow_64": (["run", str(TINY), "-q", "-o", "@s.h5", "--seed", str(2**64)], 2,
                          ["seed"]),
    # ---- result files
    "inspect_missing": (["inspect", "@missing.h5"], 2, ["not found"]),
    "inspect_text_file": (["inspect", "@not_h5.h5"], 2, ["cannot open"]),
    "inspect_foreign_hdf5": (["inspect", "@foreign.h5"], 2, ["not a tmesim result"]),
    "inspect_no_time_h": (["inspect", "@no_time.h5"], 2, ["damaged", "/time_h"]),
    "inspect_zero_records": (["inspect", "@zero_records.h5"], 0, ["no complete record"]),
    "inspect_newer_format": (["inspect", "@future.h5"], 0, ["warning", "format_version 99"]),
    "inspect_json_inf_is_null": (["inspect", "--json", "@inf_metric.h5"], 0, ['"last": null']),
    "inspect_partial_while_running": (["inspect", "@unfinished.h5"], 0, ["status running"]),
    "snapshot_unknown_suffix": (["snapshot", "{good}", "-o", "@x.xyz"], 2, ["unknown format"]),
    "snapshot_exists": (["snapshot", "{good}", "-o", "@existing.png"], 2, ["already exists"]),
    "snapshot_time_1e999h": (["snapshot", "{good}", "-o", "@far.png", "--time", "1e999h"], 0,
                             ["warning", "outside the records"]),
    "snapshot_bad_time": (["snapshot", "{good}", "-o", "@t.png", "--time", "soon"], 2,
                          ["cannot read the time"]),
    "snapshot_zero_records": (["snapshot", "@zero_records.h5", "-o", "@z.png"], 2,
                              ["no complete record"]),
    "snapshot_cells_off_lattice": (["snapshot", "@far_cells.h5", "-o", "@far_cells.png"], 0,
                                   ["outside the lattice"]),
    "snapshot_nul_output": (["snapshot", "{good}", "-o", "@a\0.png"], 2, ["control characters"]),
    "plot_exists": (["plot", "{good}", "-o", "@existing.png"], 2, ["already exists"]),
    "plot_unknown_suffix": (["plot", "{good}", "-o", "@x.doc"], 2, ["unknown format"]),
    "plot_unknown_metric": (["plot", "{good}", "-o", "@m.png", "--metric", "nope"], 2,
                            ["not in"]),
    "animate_unknown_suffix": (["animate", "{good}", "-o", "@x.avi"], 2, ["unknown format"]),
    "animate_exists": (["animate", "{good}", "-o", "@existing.png"], 2, ["already exists"]),
    # ---- ensembles and usage
    "compare_seed_2_pow_64": (["compare", str(TINY), "-r", "1", "-o", "@ens", "--seed",
                               str(2**64)], 2, ["2**63"]),
    "compare_bad_scheduler": (["compare", str(TINY), "-r", "1", "-o", "@ens", "--scheduler",
                               "foo://bar"], 2, ["unknown protocol"]),
    "compare_zero_replicates": (["compare", str(TINY), "-r", "0", "-o", "@ens"], 2,
                                ["positive integer"]),
    "unknown_command": (["frobnicate"], 2, ["invalid choice"]),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_result):
    d = tmp_path_factory.mktemp("hostile")
    for name, text in FILES.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text, encoding="utf-8")
    for i in range(100):
        (d / f"chain{i}.yaml").write_text(f"extends: chain{i + 1}.yaml\n" if i < 99 else "")
    good = d / "good.h5"
    good.write_bytes(tiny_result.read_bytes())
    _write_extras(d, good)
    return d


def _digest(folder):
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.suffix != ".lock":
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _call(args, capsys):
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


@pytest.mark.parametrize("case", list(CORPUS))
def test_corpus(case, lab, monkeypatch, capsys):
    args, code, words = CORPUS[case]
    monkeypatch.chdir(lab / "cwd")  # a working directory with a decoy mask
    monkeypatch.delenv("TMESIM_DEBUG", raising=False)
    args = [a.replace("{good}", str(lab / "good.h5")) for a in args]
    args = [str(lab / a[1:]) if a.startswith("@") else a for a in args]
    before = _digest(lab)
    rc, out = _call(args, capsys)
    assert rc == code, out
    assert "Traceback" not in out
    for w in words:
        assert w in out, (w, out)
    if code != 0:
        assert out.count("tmesim: error:") + out.count("usage:") >= 1, out
    after = _digest(lab)
    # nothing already written is lost or changed; only new outputs may appear
    assert {k: v for k, v in after.items() if k in before} == before
    assert (lab / "fifo.h5").exists() and not (lab / "fifo.h5").is_file()
    assert not [p for p in lab.rglob("*.tmp*")], "a temporary file was left behind"


def test_corpus_has_at_least_60_rows():
    assert len(CORPUS) >= 60


# --------------------------------------------------------------------------- in-process faults
def test_failing_overwrite_keeps_previous_result(lab, monkeypatch, capsys):
    """A run that fails midway (an injected SimulationError) leaves the old result as it was."""
    from tmesim.errors import SimulationError
    from tmesim.simulation import Simulation

    out = lab / "kept.h5"
    out.write_bytes((lab / "good.h5").read_bytes())
    before = out.read_bytes()
    real = Simulation.check_fields

    def failing(self):
        if self.steps >= 3:
            raise SimulationError("injected failure at step 3")
        real(self)

    monkeypatch.setattr(Simulation, "check_fields", failing)
    rc, text = _call(["run", str(TINY), "-q", "-o", str(out), "--overwrite", *SHORT], capsys)
    assert rc == 1 and "injected failure" in text and "Traceback" not in text
    assert out.read_bytes() == before
    with h5py.File(str(out) + ".partial", "r") as f:
        assert f.attrs["status"] == "failed"
    # the failed partial does not block the next run
    monkeypatch.setattr(Simulation, "check_fields", real)
    rc, text = _call(["run", str(TINY), "-q", "-o", str(out), "--overwrite", *SHORT], capsys)
    assert rc == 0, text
    assert out.read_bytes() != before and not os.path.exists(str(out) + ".partial")


def test_locked_output_is_refused(lab, capsys):
    """A second writer of one path fails at once (the lock is held by another open file)."""
    from tmesim.io.safe import OutputLock

    out = lab / "locked.h5"
    with OutputLock(out):
        rc, text = _call(["run", str(TINY), "-q", "-o", str(out), *SHORT], capsys)
    assert rc == 2 and "another tmesim process is writing" in text
    assert not out.exists()


# --------------------------------------------------------------------------- process faults
def _spawn(args, **kw):
    env = {k: v for k, v in os.environ.items() if k != "TMESIM_DEBUG"}
    return subprocess.Popen(
        [sys.executable, "-m", "tmesim", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw,
    )


def test_two_writers_of_one_path_cannot_both_succeed(tmp_path):
    out = tmp_path / "race.h5"
    args = ["run", TINY, "-q", "-o", out, "--set", "time.duration_h=6"]
    procs = [_spawn(args) for _ in range(2)]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes in ([0, 2], [0, 0]), results
    if codes == [0, 0]:  # only if the second started after the first had finished
        pytest.skip("the two runs did not overlap on this machine")
    err = next(e for rc, e in results if rc == 2)
    assert "another tmesim process" in err or "already exists" in err, err
    assert "Traceback" not in err


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_full_disk_keeps_previous_result(tmp_path, tiny_result):
    """Writes that fail (a file-size limit stands in for a full disk) end with exit 1 and one
    message, and the previous result is untouched."""
    out = tmp_path / "full.h5"
    out.write_bytes(b"previous result\n")
    p = _spawn(["run", TINY, "-q", "-o", out, "--overwrite"], preexec_fn=_limit_file_size)
    rc = p.wait(timeout=240)
    err = p.stderr.read()
    assert rc == 1, err
    assert "Traceback" not in err and "tmesim: error:" in err
    assert out.read_bytes() == b"previous result\n"


def test_killing_the_ensemble_parent_ends_its_workers(tmp_path):
    psutil = pytest.importorskip("psutil")
    p = _spawn(["compare", TINY, "-r", "2", "--workers", "2", "-o", tmp_path / "ens", "--set",
                "time.duration_h=500", "-q"])
    try:
        parent = psutil.Process(p.pid)
        deadline = time.monotonic() + 120
        workers = []
        while len(workers) < 2:
            assert p.poll() is None, p.stderr.read()
            assert time.monotonic() < deadline, "the workers never started"
            workers = [c for c in parent.children(recursive=True) if "resource_tracker" not in
                       " ".join(c.cmdline())]
            time.sleep(0.2)
        time.sleep(1.0)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        _gone, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, f"workers still running after the parent died: {alive}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_mask_is_read_beside_the_scenario_and_copied_into_the_result(lab, monkeypatch, capsys):
    """Run from a folder holding a same-named decoy: the mask beside the scenario is used, and
    the result keeps a copy of it."""
    monkeypatch.chdir(lab / "cwd")
    out = lab / "masked.h5"
    rc, text = _call(["run", str(lab / "sub" / "mask_ok.yaml"), "-q", "-o", str(out), *SHORT],
                     capsys)
    assert rc == 0, text
    with h5py.File(out, "r") as f:
        stored = f["geometry/mask"][()]
        assert f["geometry/mask"].attrs["source"] == str(lab / "sub" / "m.npy")
    assert np.array_equal(stored, np.load(lab / "sub" / "m.npy"))
