"""Generated lung geometry and user masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tmesim.errors import ScenarioError
from tmesim.geometry import (
    AIR,
    CAPILLARY,
    TISSUE,
    VESSEL,
    alveolar_surface,
    generate_lung,
    lattice_spacing_um,
    load_mask,
    measure_lung,
)


@pytest.mark.parametrize(
    ("shape", "voxel", "diameter"),
    [((150, 150), 20.0, 200.0), ((200, 200), 10.0, 50.0), ((40, 50, 50), 20.0, 200.0)],
)
def test_lung_matches_configured_geometry(shape, voxel, diameter):
    tissue, alv = generate_lung(
        shape, voxel, alveolar_diameter_um=diameter, septum_um=10.0, capillary_fraction=0.4, seed=3
    )
    m = measure_lung(tissue, alv, voxel)
    # mean equivalent diameter of whole alveoli within 8 % of the configured value
    assert m["mean_alveolar_diameter_um"] == pytest.approx(diameter, rel=0.08)
    # capillary share of septal sites: binomial, thousands of sites -> within 0.03
    assert m["capillary_fraction_of_septum"] == pytest.approx(0.4, abs=0.03)
    # air fraction against the tiling's closed form (lumen / cell), within 0.06
    ndim = len(shape)
    wall = 2 * max(5.0, 0.75 * voxel)
    s = lattice_spacing_um(diameter, wall, ndim)
    expected = ((s - wall) / s) ** ndim
    assert m["air_fraction"] == pytest.approx(expected, abs=0.06)


def test_same_seed_same_map_other_seed_differs():
    kw = dict(alveolar_diameter_um=100.0, septum_um=10.0, capillary_fraction=0.5)
    a, _ = generate_lung((60, 80), 10.0, seed=5, **kw)
    b, _ = generate_lung((60, 80), 10.0, seed=5, **kw)
    c, _ = generate_lung((60, 80), 10.0, seed=6, **kw)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_vessel_and_airway_are_placed_with_a_wall():
    t, _ = generate_lung(
        (100, 100), 10.0, alveolar_diameter_um=100.0, septum_um=10.0, capillary_fraction=0.5,
        airway_diameter_um=200.0, vessel_diameter_um=100.0, seed=1,
    )
    vessel_area = (t == VESSEL).sum() * 100.0
    assert vessel_area == pytest.approx(math.pi * 50.0**2, rel=0.15)
    assert (t == 4).sum() * 100.0 == pytest.approx(math.pi * 100.0**2, rel=0.15)


def test_alveolar_surface_is_tissue_next_to_air():
    t = np.zeros((5, 5), np.int8)
    t[2, 2] = AIR
    s = alveolar_surface(t)
    assert s.sum() == 4 and s[1, 2] and s[3, 2] and s[2, 1] and s[2, 3] and not s[2, 2]


def test_mask_npy_png_and_errors(tmp_path):
    labels = np.zeros((6, 7), np.uint8)
    labels[1:3, 1:3] = 10
    labels[4, 4] = 20
    np.save(tmp_path / "m.npy", labels)
    codes = {"tissue": 0, "air": 10, "capillary": 20}
    out = load_mask(tmp_path / "m.npy", (6, 7), codes)
    assert (out == AIR).sum() == 4 and out[4, 4] == CAPILLARY and out[0, 0] == TISSUE

    import matplotlib.image as mpimg

    mpimg.imsave(tmp_path / "m.png", labels.astype(np.float64) / 255.0, cmap="gray", vmin=0, vmax=1)
    assert np.array_equal(load_mask(tmp_path / "m.png", (6, 7), codes), out)

    with pytest.raises(ScenarioError) as e:
        load_mask(tmp_path / "m.npy", (7, 6), codes)
    assert e.value.key == "domain.shape" and "[6, 7]" in e.value.fix
    with pytest.raises(ScenarioError) as e:
        load_mask(tmp_path / "m.npy", (6, 7), {"tissue": 0, "air": 10})
    assert "20" in str(e.value) and e.value.key.endswith("codes")
    with pytest.raises(ScenarioError):
        load_mask(tmp_path / "missing.npy", (6, 7), codes)


# --------------------------------------------------------------------------- the tissue object
def _surface_by_shifts(tissue):
    """Alveolar surface by shifted masks (an independent twin of the face walk)."""
    air = np.isin(tissue, (1, 4))
    near = np.zeros_like(air)
    for axis in range(tissue.ndim):
        for shift in (1, -1):
            rolled = np.roll(air, shift, axis=axis)
            idx = [slice(None)] * tissue.ndim
            idx[axis] = 0 if shift == 1 else -1
            rolled[tuple(idx)] = False
            near |= rolled
    return ~air & near


@pytest.mark.parametrize("shape", [(30, 40), (1, 30, 40), (7, 9, 11), (1, 1, 5)])
def test_face_walk_visits_each_in_bounds_face_neighbour_once(shape):
    from tmesim.geometry import alveolar_surface, face_neighbours

    rng = np.random.default_rng(len(shape))
    tissue = rng.integers(0, 5, shape).astype(np.int8)
    np.testing.assert_array_equal(alveolar_surface(tissue), _surface_by_shifts(tissue))
    sites = np.arange(tissue.size)
    coords = np.array(np.unravel_index(sites, shape))
    seen = 0
    for d, (inside, nb) in enumerate(face_neighbours(sites, shape)):
        axis, step = divmod(d, 2)
        step = 2 * step - 1  # -1 first, then +1
        expect = coords.copy()
        expect[axis] += step
        ok = (expect[axis] >= 0) & (expect[axis] < shape[axis])
        np.testing.assert_array_equal(inside, ok)
        np.testing.assert_array_equal(nb[ok], np.ravel_multi_index(expect[:, ok], shape))
        seen += 1
    assert seen == 2 * len(shape)


def test_tissue_sets_and_empty_lumen():
    from tmesim.cells import CellPopulation
    from tmesim.kernels import codes
    from tmesim.tissue import Tissue

    m = np.array([[0, 1, 1], [2, 1, 4], [3, 0, 0]], np.int8)
    t = Tissue(m, (1, 3, 3))
    np.testing.assert_array_equal(t.lumen, np.isin(m, (1, 4)).ravel())
    np.testing.assert_array_equal(t.perfused, np.isin(m, (2, 3)).ravel())
    np.testing.assert_array_equal(t.capillaries, (m == 2).ravel())
    np.testing.assert_array_equal(t.alveolar_surface, _surface_by_shifts(m).ravel())
    np.testing.assert_array_equal(t.entry_sites(), [3, 6])
    cells = CellPopulation((1, 3, 3))
    cells.add(codes.TUMOR, np.array([1]), 3)  # a cancer cell fills lumen site 1
    cells.add(codes.TCELL, np.array([2]), 0)  # any other kind does not
    empty = t.empty_lumen(cells.occ, cells.kind)
    np.testing.assert_array_equal(np.flatnonzero(empty), [2, 4, 5])
    assert Tissue.uniform((1, 3, 3)).empty_lumen(cells.occ, cells.kind) is None
    assert Tissue.uniform((1, 3, 3)).blocked.shape == (1,)
    np.testing.assert_array_equal(Tissue.uniform((1, 3, 3)).entry_sites(),
                                  [0, 1, 2, 3, 5, 6, 7, 8])


def _empty_lumen_by_sets(lumen, occ, kind):
    """The empty lumen straight from its definition: lumen sites without a cancer cell."""
    from tmesim.kernels import codes

    out = np.zeros(lumen.size, dtype=bool)
    for s in np.flatnonzero(lumen):
        j = occ[s]
        out[s] = not (j >= 0 and int(kind[j]) in codes.CANCER_CODES)
    return out


def test_update_empty_lumen_in_place_matches_its_definition():
    """Cancer cells and other kinds come and go on a lung map: after every change the in-place
    update equals the definition, and it reports exactly the lumen sites filled and left."""
    from tmesim.kernels import codes
    from tmesim.tissue import Tissue

    rng = np.random.default_rng(4)
    codes_map = np.where(rng.random((1, 20, 30)) < 0.5, AIR, TISSUE).astype(np.int8)
    t = Tissue(codes_map, (1, 20, 30))
    n = t.n_sites
    occ = np.full(n, -1, dtype=np.int64)
    kind = rng.choice([codes.TUMOR, codes.STEM, codes.TCELL, codes.MACROPHAGE], 200).astype(
        np.int8)
    empty = t.empty_lumen(occ, kind)
    np.testing.assert_array_equal(empty, t.lumen)
    for it in range(12):
        before = empty.copy()
        occ[:] = -1
        occ[rng.choice(n, 200, replace=False)] = np.arange(200)
        filled, emptied = t.update_empty_lumen(empty, occ, kind)
        want = _empty_lumen_by_sets(t.lumen, occ, kind)
        np.testing.assert_array_equal(empty, want)
        np.testing.assert_array_equal(filled, np.flatnonzero(before & ~want))
        np.testing.assert_array_equal(emptied, np.flatnonzero(want & ~before))
        assert filled.size and (emptied.size or it == 0)  # the test exercises both
        np.testing.assert_array_equal(t.empty_lumen(occ, kind), want)
