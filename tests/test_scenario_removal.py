"""A scenario removes a packaged field by setting it to null; cells stop exchanging with it."""

from __future__ import annotations

import pytest

from tmesim import TMEModel
from tmesim.errors import ScenarioError
from tmesim.scenario import load_scenario


def test_null_field_removes_it_and_its_exchanges(tmp_path):
    f = tmp_path / "only_oxygen.yaml"
    f.write_text("fields:\n  ifng: null\n  tgfb: null\n  egf: null\n  ccl2: null\n"
                 "  chemokine: null\n  ecm: null\n")
    sc = load_scenario(f)
    assert list(sc.fields) == ["oxygen"]
    for name in ("tumor", "stem", "tcell", "macrophage", "fibroblast"):
        assert getattr(sc.cells, name).secretion == {}
    assert sc.cells.macrophage.recruitment.signal is None  # the CCL2 it followed is gone
    m = TMEModel(sc, **{"time.duration_h": 0.2, "domain.shape": [20, 20]})
    while m.running:
        m.step()
    assert m.fields.names == ["oxygen"]


def test_unknown_secretion_field_is_still_an_error(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("cells:\n  tumor:\n    secretion:\n      chemokin: {rate_per_min: 1.0}\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    assert e.value.key == "cells.tumor.secretion.chemokin"
    assert "chemokine" in e.value.expected


def test_null_on_a_non_entry_key_is_a_type_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("time:\n  duration_h: null\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    assert e.value.key == "time.duration_h"


def test_dump_of_a_reduced_scenario_loads_back_equal(tmp_path):
    from tmesim.scenario import dump_scenario

    f = tmp_path / "reduced.yaml"
    f.write_text(
        "fields:\n  tgfb: null\ncells:\n  tumor:\n    secretion:\n      chemokine: null\n"
    )
    sc = load_scenario(f)
    assert "tgfb" not in sc.fields and "chemokine" not in sc.cells.tumor.secretion
    g = tmp_path / "dumped.yaml"
    g.write_text(dump_scenario(sc))
    assert load_scenario(g) == sc


def test_a_removed_field_switches_its_mechanisms_off_and_says_so(tmp_path):
    from tmesim.kernels import immune as ki

    f = tmp_path / "no_tgfb.yaml"
    f.write_text("fields:\n  tgfb: null\n  ecm: null\n")
    with pytest.warns(UserWarning) as rec:
        m = TMEModel(load_scenario(f), **{"time.duration_h": 1.0, "domain.shape": [20, 20],
                                           "cells.fibroblast.initial.count": 30})
    text = " ".join(str(w.message) for w in rec)
    assert "fields.tgfb is not defined" in text and "cells.tcell.tgfb_half_ng_per_mL" in text
    assert "fields.ecm is not defined" in text and "ecm_deposition_per_h" in text
    dyn = m.dynamics
    assert dyn.t_par[ki.T_TGFB_HALF] == 0.0 and dyn.t_par[ki.T_ECM_HALF] == 0.0
    assert dyn.f_par[ki.F_ECM_DEPOSITION] == 0.0
    # (cxcl1, the MDSCs' chemokine, is not a packaged field: its mechanism is off, silently)
    assert {x.field for ms in dyn.off.values() for x in ms} == {"tgfb", "ecm", "cxcl1"}
    while m.running:
        m.step()
    # the fibroblasts deposited no matrix into the zeros that stand in for missing fields
    assert not dyn._zero.any()


def test_every_field_the_cell_kernels_read_is_declared():
    """A field read by name in behaviour.py is oxygen (required), a dosed agent, or declared by
    the mechanisms that read it (behaviour.FIELD_NEEDS)."""
    import re
    from pathlib import Path

    from tmesim import behaviour

    src = Path(behaviour.__file__).read_text()
    read = set(re.findall(r'_field\("([a-z0-9_]+)"\)', src))
    read |= {behaviour.GROWTH_FIELD, behaviour.CCL2_FIELD}
    declared = {m.field for m in behaviour.FIELD_NEEDS}
    assert read - {"oxygen"} <= declared, read - declared


def test_no_warning_for_a_mechanism_that_would_not_act(tmp_path):
    """Without macrophages in the run, removing CCL2 switches its mechanism off silently; with
    its strength set to 0, so does removing EGF."""
    import warnings

    f = tmp_path / "quiet.yaml"
    f.write_text("fields:\n  ccl2: null\n  egf: null\n"
                 "cells:\n  macrophage:\n    initial: {count: 0}\n"
                 "    recruitment: {base_per_h: 0, per_1000_tumor_per_h: 0}\n"
                 "  tumor:\n    growth_factor_boost: 0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = TMEModel(load_scenario(f), **{"domain.shape": [20, 20]})
    assert set(m.dynamics.off) == {"ccl2", "egf", "cxcl1"}
