"""The cell-column table (tmesim.kernels.layout) agrees with the store, the kernels, the writer
and docs/output-format.md."""

from __future__ import annotations

import re

import numpy as np

from conftest import REPO
from tmesim.cells import CellPopulation
from tmesim.io.writer import CELL_COLUMNS, cell_columns_markdown
from tmesim.kernels import codes, layout

DOC = REPO / "docs" / "output-format.md"


def test_every_block_column_has_its_named_row():
    for c in layout.COLUMNS:
        if c.block is None:  # its upper-case name, if any, is its position in CellArrays
            assert getattr(layout, c.name.upper(), None) in (
                None, layout.CellArrays._fields.index(c.name))
            continue
        assert getattr(layout, c.name.upper()) == layout.block_names(c.block).index(c.name)


def test_store_blocks_follow_the_table():
    pop = CellPopulation((1, 4, 4), capacity=8)
    for block, dtype in layout.BLOCKS.items():
        a = getattr(pop, f"_{block}")
        assert a.dtype == np.dtype(dtype)
        assert a.shape[0] == len(layout.block_names(block))
    for name, dtype in layout.OWN_ARRAYS.items():
        assert getattr(pop, name).dtype == np.dtype(dtype)
    # 8 + 8 (id, parent) + 4 + 4 (generation, divisions_left) + 4 per float32 column + 1 + 1 + 4
    assert pop.nbytes_per_cell == 30 + 4 * len(layout.block_names("f32"))
    assert len(layout.block_names("f32")) == 15  # the count the docs (architecture.md) state
    for c in layout.COLUMNS:
        pop.column(c.name)[0] = 1
        assert pop.column(c.name)[0] == 1


def test_division_rules_are_the_biology():
    # the clock restarts in both cells; drug and internalised particles are conserved amounts
    # (and the mark of an immunogenic death, which only a dying cell carries); emptied
    # particles are split too, but leave with a dead cell instead of returning to a field
    assert layout.RESET_AT_DIVISION == (layout.CLOCK_H, layout.ICD)
    assert layout.POOLS == (layout.DRUG, layout.BOUND, layout.RETAINED, layout.PAYLOAD,
                            layout.CARRIER)
    assert [layout.division(c) for c in ("drug", "payload", "carrier")] == ["pool", "pool",
                                                                             "held"]


def test_snapshot_writer_and_table_agree():
    pop = CellPopulation((2, 3, 4), capacity=8)
    pop.add(codes.MACROPHAGE, np.array([0, 5, 23]), 0)
    pop.column("aux")[:3] = (1.0, 0.0, 1.0)
    snap = pop.snapshot()
    assert list(snap) == [r.name for r in layout.RECORDED] == list(CELL_COLUMNS)
    for name, a in snap.items():
        assert a.dtype == CELL_COLUMNS[name], name
        assert a.shape == (3,)
    np.testing.assert_array_equal(snap["resident"], [1, 0, 1])
    np.testing.assert_array_equal(np.c_[snap["z"], snap["y"], snap["x"]],
                                  [[0, 0, 0], [0, 1, 1], [1, 2, 3]])


def test_output_format_lists_the_table():
    text = DOC.read_text()
    assert cell_columns_markdown() in text, (
        "docs/output-format.md §5 differs from the column table; replace its table with "
        "tmesim.io.writer.cell_columns_markdown()"
    )
    tree = text[text.index("├── cells/"): text.index("├── diagnostics/")]
    listed = re.findall(r"[a-z_0-9]+", tree.split("offsets", 1)[1].split("ragged")[0])
    listed = [w for w in listed if not w.isdigit() and w not in ("int64", "T")]
    assert listed == list(CELL_COLUMNS)


def test_no_bare_column_numbers_in_kernels():
    """Kernels and their twins index the cell blocks by the layout's named rows only."""
    bare = re.compile(r"\b(ids|i64|i32|f32|fl)\[\d")
    files = [*(REPO / "src" / "tmesim" / "kernels").glob("*.py"),
             *(REPO / "tests").glob("naive_*.py"), REPO / "benchmarks" / "bench_cells.py"]
    hits = [f"{p.name}:{i}: {line.strip()}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert not hits, "\n".join(hits)


# --------------------------------------------------------------------------- named tuples in prange
def test_numba_keeps_prange_writes_to_arrays_taken_by_position():
    """The pattern every parallel kernel uses for its tuple arguments (one array per statement,
    by position, before the loop) keeps the writes made inside ``prange``, for a plain tuple
    (as the model passes) and a named one (as the tests may)."""
    import numba
    from numba import prange

    @numba.njit(parallel=True)
    def by_position(n, t):
        a = t[layout.F32]
        s = t[layout.STATE]
        for i in prange(n):
            a[0, i] += 1.0
            s[i] = 1

    for wrap in (tuple, lambda x: x):
        pop = CellPopulation((1, 2, 2), capacity=4)
        by_position(4, wrap(pop.arrays()))
        assert np.all(pop.column("clock_h")[:4] == 1.0) and np.all(pop.state[:4] == 1)


def test_parallel_kernels_do_not_unpack_tuples():
    """No parallel kernel unpacks a tuple argument (``a, b = cells``): Numba drops the writes
    made inside prange to arrays obtained so."""
    import ast

    bad = []
    for p in (REPO / "src" / "tmesim" / "kernels").glob("*.py"):
        for fn in ast.parse(p.read_text()).body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            if not any("parallel=True" in ast.unparse(d) for d in fn.decorator_list):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple)
                        and isinstance(node.value, (ast.Name, ast.Attribute))
                        and not ast.unparse(node.value).endswith(".shape")):
                    bad.append(f"{p.name}:{node.lineno} {fn.name}: {ast.unparse(node)}")
    assert not bad, "\n".join(bad)


def test_parallel_decide_writes_reach_the_store():
    """A fibroblast whose activation crosses 1/2 becomes a CAF (state QUIESCENT) in the store
    itself (with the writes dropped, the state stayed PROLIFERATING)."""
    from tmesim.kernels import agents as ka
    from tmesim.kernels import immune as ki

    pop = CellPopulation((1, 1, 30), capacity=8)
    pop.add(codes.FIBROBLAST, np.array([0, 3, 6, 9]), 0)
    pop.column("phenotype")[:4] = 0.6
    t = ka.Intents(np.zeros(8, np.int8), np.zeros(8, np.int64), np.zeros(8, np.int8),
                   np.zeros(8, np.int32))
    ki.fibroblast_decide(4, pop.arrays(), ka.Lattice(np.array([1, 1, 30]), np.zeros(1, bool)),
                         np.ones(30), np.zeros(30), np.array([1.0, 1.0, 1.0, 0.0, 0.0]),
                         ka.StepKeys(0.5, 1, 0), t)
    assert np.all(pop.column("phenotype")[:4] > 0.6)
    assert np.all(pop.state[:4] == codes.QUIESCENT)
    assert np.all(pop.column("clock_h")[:4] == 0.5)
