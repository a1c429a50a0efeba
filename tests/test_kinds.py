"""The cell-kind registry (:mod:`tmesim.kinds`): the built-in kinds agree with the kernels'
codes, and a kind added to the registry, and nowhere else, is placed, decides, divides, is
counted, recorded and drawn."""

from __future__ import annotations

import numpy as np
import pytest

from tmesim import kinds
from tmesim.io import load
from tmesim.kernels import agents as ka
from tmesim.kernels import codes, layout
from tmesim.runner import run
from tmesim.viz.frames import CATEGORIES, FrameRenderer, cell_categories

BUD_COLOUR = "#12AB34"


def test_built_in_kinds_follow_the_kernel_codes():
    assert kinds.names() == codes.KIND_NAMES
    assert [k.code for k in kinds.all_kinds()] == list(range(codes.N_KINDS))
    assert kinds.populations() == (*codes.KIND_NAMES, "necrotic")
    assert tuple(kinds.population_colours()) == kinds.populations()
    # stem-like cells are placed first, then the others in code order (the placements share
    # one random stream, so this order is part of every run's bits)
    assert [k.name for k in kinds.placement_order()] == [
        "stem", "tumor", "tcell", "macrophage", "fibroblast", "mdsc"]
    # every look drawn has a legend entry; necrotic cancer cells share one
    assert [label for label, _ in CATEGORIES] == [label for label, _, _ in kinds.legend()]
    assert dict((label, c) for label, _, c in kinds.legend())["necrotic"] == (
        codes.TUMOR, codes.STEM)


def test_register_checks_the_code_and_the_name():
    k = kinds.by_name("tcell")
    with pytest.raises(ValueError, match="expected"):
        kinds.register(k)
    with pytest.raises(ValueError, match="already"):
        kinds.register(kinds.Kind(kinds.count(), "tcell", "T", "T", ()))
    with pytest.raises(ValueError, match="last registered"):
        kinds.unregister("tumor")


#: the code the test kind gets: the next free one
BUD = codes.N_KINDS


def _place(dyn, rng) -> None:
    """Four budding cells on the free tissue sites nearest the middle of the lattice."""
    cells = dyn.cells
    free = np.flatnonzero((cells.occ[: cells.n_sites] < 0) & ~dyn.tissue.lumen)
    middle = cells.n_sites // 2 + cells.shape3[2] // 2
    sites = free[np.argsort(np.abs(free - middle), kind="stable")[:4]]
    cells.add(BUD, np.sort(sites), 0)


def _decide(dyn):
    return _divide


def _divide(n, arrays, lattice, views, keys, intents) -> None:
    """Every budding cell divides into its first free face neighbour in the plane (plain
    Python: a test kind needs no kernel of its own)."""
    kind, site, occ = arrays[layout.KIND], arrays[layout.SITE], arrays[layout.OCC]
    action, target = intents[ka.ACTION], intents[ka.TARGET]
    dkind, ddiv = intents[ka.DKIND], intents[ka.DDIV]
    _nz, ny, nx = lattice[0]
    blocked = lattice[1]
    for i in range(n):
        if kind[i] != BUD:
            continue
        action[i] = ka.NONE
        s = int(site[i])
        y, x = (s // nx) % ny, s % nx
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            yy, xx = y + dy, x + dx
            if not (0 <= yy < ny and 0 <= xx < nx):
                continue
            t = s + dy * nx + dx
            if occ[t] < 0 and (len(blocked) == 1 or not blocked[t]):
                action[i], target[i], dkind[i], ddiv[i] = ka.DIVIDE, t, BUD, 0
                break


@pytest.fixture
def budding():
    """A test-only kind, registered for the test and removed after it."""
    k = kinds.register(kinds.Kind(
        code=BUD, name="budding", label="budding cell", short="bud",
        looks=(kinds.Look("budding cell", BUD_COLOUR, (codes.PROLIFERATING,)),),
        decide=_decide, place=_place, section=False,
    ))
    try:
        yield k
    finally:
        kinds.unregister("budding")
    assert kinds.names() == codes.KIND_NAMES


def test_a_kind_in_the_registry_divides_and_is_counted_recorded_and_drawn(tmp_path, budding):
    out = run("scenarios/tiny.yaml", tmp_path / "bud.h5",
              overrides=["time.duration_h=6", "time.record_every_h=3"])
    with load(out) as res:
        counts = res.counts["budding"]
        assert counts[0] == 4 and counts[-1] > counts[0]  # placed, then divided
        assert list(res.f["cells"].attrs["kind_codes"])[-1] == "budding"
        cells = res.cells(res.n_records - 1)
        mine = cells["kind"] == budding.code
        assert mine.sum() == counts[-1]
        # drawn in its own colour, with a legend entry, and can be picked by name
        cat = cell_categories(cells)
        labels = [label for label, _, _ in kinds.legend()]
        assert np.all(cat[mine] == labels.index("budding cell"))
        r = FrameRenderer(res, figure=False, kinds=["budding"])
        assert [label for label, _ in r.legend_entries()[0]] == ["budding cell"]
        img = r.cell_image(res.n_records - 1)
        drawn = img[..., 3] > 0
        assert drawn.sum() == counts[-1]
        want = np.array([int(BUD_COLOUR[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        assert np.allclose(img[drawn][:, :3], want, atol=1e-6)


def test_cancer_kinds_are_named_in_one_place():
    """Kernels and Python read cancer-ness from ``codes.CANCER_CODES`` alone: the kernel test,
    the Python test and the code list agree, and no kernel spells out "tumour or stem-like"."""
    import re
    from pathlib import Path

    from tmesim.kernels.neighbourhood import is_cancer

    every = np.arange(codes.N_KINDS)
    assert [is_cancer(int(k)) for k in every] == [int(k) in codes.CANCER_CODES for k in every]
    assert kinds.cancer(every).tolist() == [int(k) in codes.CANCER_CODES for k in every]
    spelled = re.compile(r"==\s*TUMOR\s+or\b|!=\s*TUMOR\s+and\b|==\s*codes\.TUMOR\)\s*\|")
    src = Path(kinds.__file__).resolve().parents[1]
    hits = [f"{p.name}:{i}" for p in src.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if spelled.search(line)]
    assert not hits, hits
