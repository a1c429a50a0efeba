"""The plain-Mesa reference of the tumour/stem rules (benchmarks/mesa_reference.py) behaves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("mesa")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "mesa_reference.py"
_spec = importlib.util.spec_from_file_location("mesa_reference", _PATH)
ref = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mesa_reference", ref)
_spec.loader.exec_module(ref)


def _check_invariants(model, max_divisions):
    coords = [a.cell.coordinate for a in model.agents]
    assert len(coords) == len(set(coords)), "two agents share a grid cell"
    for cell in model.grid.all_cells:
        assert len(cell.agents) <= 1
    for a in model.agents:
        assert a.cell is not None and a in a.cell.agents
        if not a.stem:
            assert 0 <= a.divisions_left <= max_divisions


def test_colony_grows_from_one_stem_cell():
    model = ref.TumorCSCModel(
        width=41, height=41, p_div=0.5, p_mig=0.3, p_death=0.01, max_divisions=5, rng=3
    )
    sizes = [len(model.agents)]
    for _ in range(50):
        model.step()
        sizes.append(len(model.agents))
        _check_invariants(model, 5)
    counts = model.counts()
    assert sizes[0] == 1
    assert sizes[-1] > 50
    assert counts["stem"] >= 1  # a stem-like cell never dies
    assert counts["tumor"] > 0
    assert counts["necrotic"] == 0  # uniform 38 mmHg is above every threshold
    assert sizes[-1] <= 41 * 41


def test_tumour_cells_respect_division_budget():
    # tumour cells only (no stem): the clone is bounded by 2**max_divisions and dies out
    model = ref.TumorCSCModel(
        width=31,
        height=31,
        p_div=1.0,
        p_mig=0.0,
        p_death=0.0,
        max_divisions=3,
        stem_cells=[],
        tumor_cells=[(15, 15)],
        rng=1,
    )
    peak = 0
    for _ in range(20):
        model.step()
        peak = max(peak, len(model.agents))
        _check_invariants(model, 3)
    assert 1 < peak <= 2**3
    assert len(model.agents) == 0  # every cell used up its divisions and died at the next attempt


def test_contact_inhibition_and_hypoxia():
    # a full 3x3 grid: nobody can act; a hypoxic model never divides
    full = [(x, y) for x in range(3) for y in range(3)]
    model = ref.TumorCSCModel(width=3, height=3, stem_cells=full, p_div=1.0, p_mig=1.0, rng=0)
    before = {a.unique_id: a.cell.coordinate for a in model.agents}
    model.step()
    assert {a.unique_id: a.cell.coordinate for a in model.agents} == before

    hyp = ref.TumorCSCModel(width=9, height=9, p_div=1.0, p_mig=0.0, oxygen_mmHg=8.0, rng=0)
    for _ in range(5):
        hyp.step()
    assert len(hyp.agents) == 1
    assert all(a.quiescent for a in hyp.agents)


def test_necrosis_and_lysis():
    model = ref.TumorCSCModel(
        width=5, height=5, oxygen_mmHg=1.0, p_necrosis_max=1.0, lysis_steps=2, rng=0
    )
    model.step()
    assert model.counts() == {"tumor": 0, "stem": 0, "necrotic": 1}
    model.step()
    model.step()
    assert len(model.agents) == 0
    assert all(cell.is_empty for cell in model.grid.all_cells)


def test_reproducible_for_a_seed():
    def run(seed):
        m = ref.TumorCSCModel(width=25, height=25, p_div=0.4, p_mig=0.4, rng=seed)
        for _ in range(20):
            m.step()
        return sorted((a.cell.coordinate, a.stem, a.divisions_left) for a in m.agents)

    assert run(7) == run(7)


def test_draw_first_model_grows_and_keeps_one_cell_per_site():
    model = ref.DrawFirstTumorModel(
        width=41, height=41, p_div=0.5, p_mig=0.3, p_death=0.01, max_divisions=5, rng=3
    )
    assert all(isinstance(a, ref.DrawFirstCancerCell) for a in model.agents)
    sizes = [len(model.agents)]
    for _ in range(40):
        model.step()
        sizes.append(len(model.agents))
        _check_invariants(model, 5)
    assert sizes[-1] > 20 * sizes[0]
    assert model.counts()["stem"] >= 1


def test_draw_first_model_decides_on_the_starting_state():
    """Two cells next to each other with one free site between them each pick it; the second
    one to act finds it taken and retries elsewhere, so both act and none is lost."""
    model = ref.DrawFirstTumorModel(width=5, height=1, p_div=1.0, p_mig=0.0, p_death=0.0,
                                    p_symmetric=1.0, stem_cells=[(1, 0), (3, 0)], rng=1)
    model.step()
    assert len(model.agents) == 4  # sites 0, 2, 4 were free: both divided
    _check_invariants(model, 10)
