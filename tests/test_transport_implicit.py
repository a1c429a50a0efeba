"""Implicit (unsplit backward-Euler) transport, the factored LOD path and per-field steps.

Against the dense twin (``naive_transport.backward_euler_step``), analytic steady states run
through scenario files at the packaged numerics (docs/numerics.md, "Implicit transport"), and a
sparse direct steady-state solve. Tolerances are stated next to each assertion.
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl

import naive_transport as nv
from tmesim.fields import FieldSet, FieldSpec
from tmesim.simulation import Simulation

DATA = Path(__file__).parent / "data" / "transport"
H = 20.0


def geometry(rng, shape):
    mask = rng.random(shape) < 0.15
    kf = rng.uniform(0.2, 3.0, shape)
    held = (rng.random(shape) < 0.1) & ~mask
    return mask, kf, held


def implicit_set(shape, dtype="float64", rtol=1e-12, **kw):
    nd = len(shape)
    bc = {"x_min": ("dirichlet", 2.0), "y_max": ("neumann", 30.0)}
    if nd == 3:
        bc["z_min"] = ("dirichlet", 1.0)
    specs = [
        FieldSpec("a", "u", 1e5, 0.1, 1.0, bc, "implicit"),
        FieldSpec("b", "u", 3000.0, 0.01, 0.5, {}, "implicit"),
    ]
    return FieldSet(specs, shape, H, dtype=dtype, rtol=rtol, **kw), [bc, {}]


# ---------------------------------------------------------------------- against the dense twin
@pytest.mark.parametrize("shape", [(1, 13, 17), (1, 1, 9), (6, 7, 9)])
def test_compact_system_matches_its_twin_bit_for_bit(shape):
    """kernels.implicit.system against naive_transport.compact_system: every array, bit for bit
    (the order of each row's sums is part of the result), on random free sets, face factors
    (some zero) and boundary terms."""
    from tmesim.kernels import implicit as ki

    nd = 3 if shape[0] > 1 else 2
    rng = np.random.default_rng(sum(shape))
    for trial in range(3):
        free = (rng.random(shape) < 0.7).astype(np.float64)
        g = rng.random((3, *shape)) * (rng.random((3, *shape)) < 0.8)
        kf = rng.random(shape)
        bt = rng.random((3, 6)) * (trial > 0)
        got = ki.system(free, g, kf, nd, 12.5, 1.3, bt)
        want = nv.compact_system(free, g, kf, nd, 12.5, 1.3, bt)
        assert len(got) == len(want)
        for k, (a, b) in enumerate(zip(got, want, strict=True)):
            assert a.shape == b.shape and a.dtype == b.dtype, k
            assert a.tobytes() == b.tobytes(), k


@pytest.mark.parametrize("shape", [(11, 13), (1, 9), (5, 6, 7)])
@pytest.mark.parametrize("geo", [False, True])
@pytest.mark.parametrize("dt", [0.1, 6.0])
def test_step_matches_dense_backward_euler(shape, geo, dt):
    rng = np.random.default_rng(3)
    fs, bcs = implicit_set(shape)
    s3 = fs.shape3
    fixed = np.zeros(fs.data.shape, dtype=bool)
    kfm = None
    if geo:
        mask, kf, held = geometry(rng, shape)
        fs.set_geometry(mask=mask, diffusivity_factor=kf)
        fs.set_fixed("a", held, 3.0)
        fixed[0] = held.reshape(s3)
        fixed |= mask.reshape(s3)[None]
        kfm = np.where(mask, 0.0, kf).reshape(s3)
    fs.data[...] = rng.uniform(0.0, 5.0, fs.data.shape)
    fs.impose_fixed()
    sink = np.where(rng.random(fs.data.shape) < 0.6, 3.1, 0.0)
    u0 = fs.data.copy()
    fs.diffuse(dt, sink)
    ref = nv.backward_euler_step(u0, [1e5, 3000.0], [0.1, 0.01], dt, H, bcs, len(shape), sink,
                                 kfm, fixed)  # fmt: skip
    # the solve stops on an error bound of rtol (1e-12) times the field's scale (<= 5)
    np.testing.assert_allclose(fs.data, ref, rtol=0, atol=1e-10)
    stats = fs.solver_stats()
    assert stats["a"]["failures"] == 0 and stats["a"]["solves"] == 1


def test_float32_tracks_float64():
    rng = np.random.default_rng(4)
    a, _ = implicit_set((12, 10), dtype="float32", rtol=1e-6)
    b, _ = implicit_set((12, 10), dtype="float64", rtol=1e-6)
    a.data[...] = b.data[...] = rng.uniform(0, 5, a.data.shape)
    sink = np.where(rng.random(a.data.shape) < 0.5, 3.1, 0.0)
    for _ in range(3):
        a.diffuse(1.0, sink)
        b.diffuse(1.0, sink)
    assert a.data.dtype == np.float32
    np.testing.assert_allclose(a.data, b.data, rtol=0, atol=1e-4)


def test_fixed_point_is_the_unsplit_steady_state():
    """Started from the dense steady state, a step at any dt leaves it (the exact-steady-state
    property that the split schemes lack)."""
    rng = np.random.default_rng(5)
    shape = (9, 11)
    fs, bcs = implicit_set(shape)
    mask, kf, held = geometry(rng, shape)
    fs.set_geometry(mask=mask, diffusivity_factor=kf)
    fs.set_fixed("a", held, 3.0)
    sink = np.where(rng.random(fs.data.shape) < 0.6, 3.1, 0.0)
    fixed = np.zeros(fs.data.shape, dtype=bool)
    fixed[0] = held.reshape(fs.shape3)
    fixed |= mask.reshape(fs.shape3)[None]
    heldv = np.zeros(fs.data.shape)
    heldv[0][held.reshape(fs.shape3)] = 3.0
    kfm = np.where(mask, 0.0, kf).reshape(fs.shape3)
    ss = nv.steady_state(fs.shape3, [1e5, 3000.0], [0.1, 0.01], H, bcs, 2, sink, kfm, fixed,
                         heldv)  # fmt: skip
    for dt in (0.01, 1.0, 6.0, 600.0):
        fs.data[...] = ss
        fs.diffuse(dt, sink)
        np.testing.assert_allclose(fs.data, ss, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------- guarantees
def test_point_source_stays_non_negative():
    """A secreting cell in an empty domain: the exact solution is positive; the Douglas step
    undershot to -6.4 here (docs/numerics.md); the implicit step never goes below 0."""
    spec = FieldSpec("c", "u", 6000.0, 0.01, 0.0, {"x_min": ("dirichlet", 0.0)}, "implicit")
    for shape in [(31, 31), (9, 9, 9)]:
        fs = FieldSet([spec], shape, H, rtol=1e-6)
        src = np.zeros(fs.data.shape)
        src.reshape(-1)[src.size // 2] = 100.0
        for dt in (0.1, 1.0, 6.0):
            fs.diffuse(dt, source=src)
            assert fs.data.min() >= 0.0
            assert fs.data.max() > 0.0


def test_failed_solve_is_counted():
    fs, _ = implicit_set((20, 20), rtol=1e-12, max_iterations=1)
    fs.data[...] = 0.0
    fs.diffuse(1.0)
    st = fs.solver_stats(reset=True)
    assert st["a"]["failures"] == 1 and st["a"]["max_residual"] > 1e-12
    assert fs.solver_stats() == {}


def test_error_bound_holds():
    """The returned bound max |r_i| / delta_i bounds the true error of the solve."""
    rng = np.random.default_rng(8)
    shape = (15, 17)
    for maxit in (1, 3, 8):
        fs, bcs = implicit_set(shape, rtol=1e-14, max_iterations=maxit)
        mask, kf, _held = geometry(rng, shape)
        fs.set_geometry(mask=mask, diffusivity_factor=kf)
        fs.data[...] = rng.uniform(0, 5, fs.data.shape)
        fs.impose_fixed()
        u0 = fs.data.copy()
        fs.diffuse(6.0)
        kfm = np.where(mask, 0.0, kf).reshape(fs.shape3)
        fixed = np.broadcast_to(mask.reshape(fs.shape3), fs.data.shape)
        ref = nv.backward_euler_step(u0, [1e5, 3000.0], [0.1, 0.01], 6.0, H, bcs, 2, None, kfm,
                                     fixed)  # fmt: skip
        stats = fs.solver_stats()
        for f, name in enumerate(fs.names):
            scale = max(2.0 if name == "a" else 0.0, float(u0[f].max()))
            bound = stats[name]["max_residual"] * scale
            err = float(np.abs(np.maximum(ref[f], 0) - fs.data[f]).max())
            assert err <= bound * (1 + 1e-9) + 1e-12


def test_bits_identical_for_one_and_two_threads():
    def run():
        rng = np.random.default_rng(12)
        out = []
        for shape in [(60, 70), (12, 14, 16)]:
            specs = [
                FieldSpec("o", "u", 1e5, 0.1, 38.0, {"x_min": ("dirichlet", 38.0)}, "implicit"),
                FieldSpec("c", "u", 6000.0, 0.05, 0.0, {"y_max": ("dirichlet", 0.0)}, "lod"),
            ]
            fs = FieldSet(specs, shape, H)
            mask, _kf, held = geometry(rng, shape)
            fs.set_geometry(mask=mask)
            fs.set_fixed("o", held, 38.0)
            sink = np.where(rng.random(fs.data.shape) < 0.5, 3.1, 0.0)
            src = np.where(rng.random(fs.data.shape) < 0.05, 10.0, 0.0)
            for _ in range(3):
                fs.diffuse(1.0, sink, src)
            out.append(fs.data.copy())
        return out

    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run()
    finally:
        numba.set_num_threads(old)
    for a, b in zip(one, two, strict=True):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------- mechanics of stepping
@pytest.mark.parametrize("scheme", ["lod", "implicit", "douglas"])
def test_source_argument_equals_adding_it_first(scheme):
    rng = np.random.default_rng(6)
    shape = (14, 16)
    spec = FieldSpec("c", "u", 6000.0, 0.05, 1.0, {"x_min": ("dirichlet", 1.0)}, scheme)
    a = FieldSet([spec], shape, H)
    b = FieldSet([spec], shape, H)
    mask, _, held = geometry(rng, shape)
    start = rng.uniform(0, 2, a.data.shape)
    for fs in (a, b):
        fs.set_geometry(mask=mask)
        fs.set_fixed("c", held, 2.0)
        fs.data[...] = start
        fs.impose_fixed()
    sink = np.where(rng.random(a.data.shape) < 0.5, 0.3, 0.0)
    src = np.where(rng.random(a.data.shape) < 0.1, 5.0, 0.0)
    for _ in range(3):
        a.diffuse(1.0, sink, src)
        b.data += 1.0 * src
        b.diffuse(1.0, sink)
    # same operations in the same order on free voxels (held and masked ones are reset)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-13, atol=1e-13)


def test_field_stepping_every_third_call_equals_one_long_step():
    rng = np.random.default_rng(7)
    shape = (10, 12)
    bc = {"x_min": ("dirichlet", 38.0)}
    slow = FieldSpec("o", "u", 1e5, 0.1, 38.0, bc, "implicit", 3)
    fine = FieldSpec("c", "u", 6000.0, 0.05, 0.0, {}, "lod")
    a = FieldSet([slow, fine], shape, H)
    b = FieldSet([FieldSpec("o", "u", 1e5, 0.1, 38.0, bc, "implicit")], shape, H)
    sink = np.where(rng.random(a.data.shape) < 0.5, 3.1, 0.0)
    src = np.where(rng.random(a.data.shape) < 0.1, 1.0, 0.0)
    for _ in range(2):
        before = a["o"].copy()
        for k in range(3):
            a.diffuse(0.5, sink, src)
            if k < 2:
                assert np.array_equal(a["o"], before)  # untouched until its step
        b.diffuse(1.5, sink[:1], src[:1])
        assert np.array_equal(a["o"], b["o"])
    assert a.solver_stats()["o"]["solves"] == 2


@pytest.mark.parametrize("scheme", ["lod", "implicit"])
@pytest.mark.parametrize("shape", [(30, 40), (8, 9, 10)])
def test_incremental_geometry_update_equals_a_rebuild(scheme, shape):
    """Changing the mask at a few voxels updates faces and lines in place: the same bits as a
    field set built with the new mask from the start."""
    rng = np.random.default_rng(11)
    spec = FieldSpec("c", "u", 1e5 if scheme == "implicit" else 6000.0, 0.1, 1.0,
                     {"x_min": ("dirichlet", 2.0)}, scheme)  # fmt: skip
    mask, _kf, held = geometry(rng, shape)
    a = FieldSet([spec], shape, H)
    a.set_geometry(mask=mask)
    a.set_fixed("c", held & ~mask, 3.0)
    sink = np.where(rng.random(a.data.shape) < 0.4, 3.1, 0.0)
    a.diffuse(1.0, sink)
    flip = np.zeros(mask.size, dtype=bool)
    flip[rng.choice(np.flatnonzero(~held.reshape(-1)), 6, replace=False)] = True
    mask2 = mask ^ flip.reshape(shape)
    a.set_geometry(mask=mask2)
    assert a._dt is not None  # updated in place, not rebuilt
    b = FieldSet([spec], shape, H)
    b.set_geometry(mask=mask2)
    b.set_fixed("c", held & ~mask, 3.0)
    b.data[...] = a.data
    a.diffuse(1.0, sink)
    b.diffuse(1.0, sink)
    assert a.data.tobytes() == b.data.tobytes()


@pytest.mark.parametrize("shape", [(1, 12, 17), (5, 7, 9)])
def test_changed_faces_kernel_matches_reference(shape):
    """The faces of a few changed voxels (domain edges included) and their harmonic means,
    against plain loops; a zero factor on both sides gives 0."""
    from tmesim.kernels import diffusion as kd

    rng = np.random.default_rng(3)
    nd = 3 if shape[0] > 1 else 2
    kf = rng.uniform(0.2, 3.0, shape)
    kf[rng.random(shape) < 0.3] = 0.0
    size = kf.size
    for changed in (np.array([0, size - 1]), np.sort(rng.choice(size, 15, replace=False)),
                    np.arange(shape[2])):
        faces = np.empty((nd, 2 * changed.size), dtype=np.int64)
        g = np.empty((nd, 2 * changed.size))
        count = kd.changed_faces(changed.astype(np.int64), kf.reshape(-1), *shape, nd, faces, g)
        for a, (want_f, want_g) in enumerate(nv.changed_faces(changed, kf, shape, nd)):
            assert count[a] == want_f.size
            np.testing.assert_array_equal(faces[a, : count[a]], want_f)
            assert g[a, : count[a]].tobytes() == want_g.tobytes()


@pytest.mark.parametrize("shape", [(30, 40), (8, 9, 10)])
def test_change_mask_with_deferred_line_factors_equals_set_geometry(shape):
    """A mixed set (two implicit fields, two LOD fields on the factored path, one static)
    driven by change_mask, with two mask changes between some steps, gives the same bits as
    one driven by set_geometry(mask=...), and its LOD line factors, recomputed at the step
    for the lines through the changed voxels only, equal a recomputation of every line."""
    rng = np.random.default_rng(21)
    bc = {"x_min": ("dirichlet", 2.0)}
    specs = [FieldSpec("o", "u", 1e5, 0.1, 1.0, bc, "implicit"),
             FieldSpec("k", "u", 3e4, 0.05, 0.5, {}, "implicit"),
             FieldSpec("a", "u", 6000.0, 0.01, 1.0, bc, "lod"),
             FieldSpec("b", "u", 300.0, 0.001, 2.0, {}, "lod"),
             FieldSpec("m", "u", 0.0, 0.0, 1.0, {}, "lod")]  # fmt: skip
    mask, _kf, held = geometry(rng, shape)
    a = FieldSet(specs, shape, H)
    b = FieldSet(specs, shape, H)
    for s in (a, b):
        s.set_geometry(mask=mask)
        s.set_fixed("o", held & ~mask, 3.0)
    sink = np.where(rng.random(a.data.shape) < 0.4, 0.3, 0.0)
    src = np.where(rng.random(a.data.shape) < 0.2, 0.1, 0.0)
    flat = mask.reshape(-1).copy()
    free = np.flatnonzero(~held.reshape(-1))
    for step in range(5):
        for _ in range(1 + step % 2):  # two geometry changes before every other step
            flip = rng.choice(free, 7, replace=False)
            was = flat[flip]
            flat[flip] = ~was
            a.change_mask(flat.copy(), np.sort(flip[was]), np.sort(flip[~was]))
            b.set_geometry(mask=flat.reshape(shape))
        for s in (a, b):
            s.diffuse(0.5, sink, src)
        assert a.data.tobytes() == b.data.tobytes()
    lod = next(p for _, p in a._parts if p is not None and p.scheme == "lod" and p.variable)
    kept = lod._facs.copy()
    lod._prepare_factors()
    assert kept.tobytes() == lod._facs.tobytes()


# ---------------------------------------------------------------------- acceptance cases
def run_scenario(name, **overrides):
    sim = Simulation(DATA / name, **overrides)
    while sim.running:
        sim.step()
    return sim


@pytest.mark.parametrize("shape, side", [([4, 50], "x_min"), ([4, 4, 50], "x_min"),
                                         ([4, 50, 4], "y_min"), ([50, 4, 4], "z_min")])
def test_cell_free_strip(shape, side):
    """D = 1e5 um^2/min, decay 10 /min, Dirichlet 1 on one side: max error <= 1 % of the
    boundary value against the exact discrete solution and <= 2 % against the continuum."""
    ov = {"domain.shape": shape}
    if side != "x_min":
        ov["fields.oxygen.boundary"] = {side: {"dirichlet": 1.0}}
    sim = run_scenario("strip.yaml", **ov)
    u = sim.fields["oxygen"]
    ax = {"x_min": -1, "y_min": -2, "z_min": -3}[side]
    prof = np.moveaxis(u, ax, -1).reshape(-1, 50)
    x = (np.arange(50) + 0.5) * H
    exact = np.cosh((1000.0 - x) / 100.0) / np.cosh(10.0)
    # discrete: (lam + L) u = b on the line, with the LOD line system at d0 = lam
    r = 1e5 / H**2
    m = np.diag(np.full(50, 10.0 + 2 * r)) - r * (np.eye(50, k=1) + np.eye(50, k=-1))
    m[0, 0] += 2 * r - r  # Dirichlet face: +2r; no lower neighbour: -r
    m[-1, -1] -= r  # zero flux: no upper neighbour
    b = np.zeros(50)
    b[0] = 2 * r * 1.0
    disc = np.linalg.solve(m, b)
    assert np.abs(prof - disc).max() <= 0.01
    assert np.abs(prof - exact).max() <= 0.02
    assert prof[:, 0].min() > 0.89  # the first voxel: 0.905 exact (0.16 at fe1d381's numerics)


def decay_length(u):
    """From interior voxels above 1 % of the boundary value: cosh(h/l) = (u_{j-1}+u_{j+1})/2u_j,
    exact for a cosh profile sampled at the voxel centres."""
    prof = u.mean(axis=0)
    keep = np.flatnonzero(prof > 0.01 * 38.0)
    j = keep[(keep > 0) & (keep < len(prof) - 1)]
    rat = (prof[j - 1] + prof[j + 1]) / (2 * prof[j])
    return H / np.arccosh(np.median(rat))


def crossing(prof, x, thr):
    i = np.flatnonzero(prof < thr)[0]
    return x[i - 1] + (prof[i - 1] - thr) / (prof[i - 1] - prof[i]) * H


@pytest.mark.parametrize("length_um", [500, 1000, 2000, 4000])
@pytest.mark.parametrize("volume", [2494.0, 8000.0])
def test_dense_cell_slab(length_um, volume):
    """Decay length within 2 % of sqrt(D/(decay + U V_cell/V_voxel)); the hypoxic (10 mmHg) and
    necrotic (5 mmHg) thresholds crossed within one voxel of the analytic distance."""
    nx = length_um // 20
    sim = run_scenario("slab.yaml", **{"domain.shape": [4, nx],
                                         "cells.tumor.initial.count": 4 * nx,
                                         "cells.tumor.volume_um3": volume})  # fmt: skip
    assert sim.population_counts()["tumor"] == 4 * nx
    u = sim.fields["oxygen"]
    lam = 0.1 + 10.0 * volume / 8000.0
    ell = math.sqrt(1e5 / lam)
    assert abs(decay_length(u) / ell - 1) <= 0.02
    x = (np.arange(nx) + 0.5) * H
    xx = np.linspace(0.0, length_um, 400001)
    exact = 38.0 * np.cosh((length_um - xx) / ell) / np.cosh(length_um / ell)
    for thr in (10.0, 5.0):
        want = xx[np.flatnonzero(exact < thr)[0]]
        got = crossing(u.mean(axis=0), x, thr)
        assert abs(got - want) <= H


def test_tumour_disc_with_toggling_uptake():
    """60 x 60 voxels, 80 % of a disc taking up 3.1 /min, 38 mmHg on the four sides, 5 % of the
    disc's voxels toggling every 6-min agent step, at the packaged oxygen numerics: after the
    abrupt start, within 1 % of the reference at the end of every agent step. The reference is
    the steady state of the step's uptake (sparse direct solve): the slowest mode decays at
    >= 1.47 /min, so the exact transient is within 2e-4 of it after 6 min."""
    sim = Simulation(None, **{"domain.shape": [60, 60], "time.duration_h": 1.0})
    fs = FieldSet([s for s in sim.fields.specs if s.name == "oxygen"], (60, 60), H)
    spec = fs.specs[0]
    assert spec.scheme == "implicit"
    n = 60
    sub = sim.scenario.diffusion_substeps
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:n, :n]
    disc = np.flatnonzero(((yy - n / 2 + 0.5) ** 2 + (xx - n / 2 + 0.5) ** 2 < (0.4 * n) ** 2).ravel())
    on = np.zeros(n * n, bool)
    on[rng.choice(disc, int(0.8 * len(disc)), replace=False)] = True
    errs = []
    for _ in range(12):
        tog = rng.choice(disc, int(0.05 * len(disc)), replace=False)
        on[tog] = ~on[tog]
        sink = np.where(on, 3.1, 0.0).reshape(1, 1, n, n)
        for _ in range(sub):
            fs.diffuse(sim.dt_min / sub, sink)
        errs.append(np.abs(fs["oxygen"] - steady_disc(sink.reshape(n, n), spec)).max() / 38.0)
    assert max(errs[1:]) <= 0.01


def steady_disc(k, spec):
    n = k.shape[0]
    r = spec.diffusion_um2_per_min / H**2
    idx = np.arange(n * n).reshape(n, n)
    diag = spec.decay_per_min + k.ravel().copy()
    rows, cols = [], []
    for a, c in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
        rows += [a.ravel(), c.ravel()]
        cols += [c.ravel(), a.ravel()]
        np.add.at(diag, a.ravel(), r)
        np.add.at(diag, c.ravel(), r)
    b = np.zeros(n * n)
    for edge in (idx[0, :], idx[-1, :], idx[:, 0], idx[:, -1]):
        np.add.at(diag, edge, 2 * r)
        np.add.at(b, edge, 2 * r * 38.0)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    a = sp.coo_matrix((np.full(rows.size, -r), (rows, cols)), shape=(n * n, n * n)).tocsr()
    a = a + sp.diags(diag)
    return spl.spsolve(a.tocsc(), b).reshape(n, n)


def test_packaged_oxygen_is_implicit_with_one_step_per_agent_step():
    sim = Simulation(None, **{"domain.shape": [20, 20], "time.duration_h": 0.2})
    assert sim.scenario.numerics.scheme == "auto"
    assert sim.scenario.fields["oxygen"].scheme is None  # chosen: k dt >> 0.1
    while sim.running:
        sim.step()
    stats = sim.fields.solver_stats()
    assert stats["oxygen"]["solves"] == sim.steps
    assert stats["chemokine"]["solves"] == sim.steps


def test_auto_scheme_is_lod_where_some_step_keeps_k_dt_small_and_implicit_otherwise():
    from tmesim.fields import choose_steps

    # (scheme, rate, own substeps) -> (scheme, steps per agent step) at dt 6, 6 calls, 0.1
    cases = {
        ("auto", 0.023, None): ("lod", 2),
        ("auto", 0.05, None): ("lod", 3),
        ("auto", 0.1, None): ("lod", 6),  # k dt = 0.1 at the finest step: still LOD
        ("auto", 0.33, None): ("implicit", 1),  # above the bound even at the finest step
        ("auto", 0.33, 3): ("implicit", 3),  # its own substeps win
        ("auto", None, None): ("lod", 6),  # a dosed agent
        ("implicit", 0.05, None): ("implicit", 6),  # a slow implicit field: every diffusion step
        ("implicit", 5.0, None): ("implicit", 1),
        ("lod", 5.0, None): ("lod", 6),
        ("douglas", 5.0, None): ("douglas", 6),
    }
    for (scheme, rate, sub), want in cases.items():
        assert choose_steps(scheme, rate, sub, 6.0, 6, 0.1) == want, (scheme, rate, sub)
    # a dosed agent steps every diffusion step; implicit when its exchange is fast
    assert choose_steps("auto", 4.6, None, 6.0, 6, 0.1, dosed=True) == ("implicit", 6)
    assert choose_steps("auto", 0.05, None, 6.0, 6, 0.1, dosed=True) == ("lod", 6)
    assert choose_steps("lod", 4.6, None, 6.0, 6, 0.1, dosed=True) == ("lod", 6)


def test_dosed_drug_entering_through_capillaries_reaches_the_exact_steady_state():
    """A drug held in plasma enters a strip through one capillary column (P S/V = 4.6 /min,
    k dt = 4.6) and decays in tissue: at the packaged numerics its profile is the exact discrete
    steady state within 0.1 % of the unbound plasma level, a quarter of the plasma level for
    doxorubicin (the capillary exchange split from LOD
    diffusion, as at fe1d381, was 28 % off), and the dose ledger still closes."""
    sim = run_scenario("vessel_strip.yaml")
    assert sim.fields.solver_stats()["doxorubicin"]["solves"] == 6 * sim.steps
    u = sim.fields["doxorubicin"]
    a = sim.therapy.agents[0]
    # only the unbound share of plasma drug crosses the wall (doxorubicin: 25 %)
    assert a.plasma_unbound == pytest.approx(0.25 * a.plasma, rel=1e-15)
    cp = a.plasma_unbound
    kv = 90.0 * math.pi * 6.5 / H**2
    r = 3000.0 / H**2
    n = 50
    m = np.diag(np.full(n, 0.05 + 2 * r)) - r * (np.eye(n, k=1) + np.eye(n, k=-1))
    m[0, 0] += kv - r  # the capillary column; zero flux at both ends
    m[-1, -1] -= r
    b = np.zeros(n)
    b[0] = kv * cp
    disc = np.linalg.solve(m, b)
    assert np.abs(u - disc).max() <= 1e-3 * cp
    # the continuum: a capillary wall of conductance P S/V h at x = 0, decay length 245 um
    lam = math.sqrt(3000.0 / 0.05)
    x = (np.arange(n) + 0.5) * H
    assert u[0, 25] / u[0, 5] == pytest.approx(math.cosh((1000 - x[25]) / lam)
                                               / math.cosh((1000 - x[5]) / lam), rel=0.02)
    ledger = sim.therapy.ledger()["doxorubicin"]
    rest = sum(v for k, v in ledger.items() if k not in ("dosed", "released"))
    assert rest == pytest.approx(ledger["dosed"], rel=1e-11)
    # what the solves (agent_solver_rtol 1e-5) did not conserve over 180 steps: 0.033 % of the
    # tissue content
    assert abs(ledger["unconserved"]) <= 1e-3 * ledger["tissue"]


def test_only_the_unbound_plasma_drug_enters_tissue():
    """The capillary exchange is driven by f_u C_p (agents.<a>.plasma_unbound_fraction): in the
    cell-free strip, linear in the plasma forcing, halving f_u halves the tissue profile, the
    plasma curve is the same (the strip's draw on plasma is negligible) and the ledger closes."""
    runs = {fu: run_scenario("vessel_strip.yaml", **{
        "time.duration_h": 1.0, "agents.doxorubicin.plasma_unbound_fraction": fu})
        for fu in (1.0, 0.5)}
    full, half = (runs[fu].fields["doxorubicin"] for fu in (1.0, 0.5))
    a_full, a_half = (runs[fu].therapy.agents[0] for fu in (1.0, 0.5))
    assert a_half.plasma == pytest.approx(a_full.plasma, rel=1e-6)
    assert a_half.plasma_unbound == pytest.approx(0.5 * a_half.plasma, rel=1e-15)
    assert full.max() > 0.5 * a_full.plasma  # the capillary column is near plasma
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-4, atol=1e-9 * a_full.plasma)
    for sim in runs.values():
        ledger = sim.therapy.ledger()["doxorubicin"]
        rest = sum(v for k, v in ledger.items() if k not in ("dosed", "released"))
        assert rest == pytest.approx(ledger["dosed"], rel=1e-11)


def test_lod_fields_take_steps_chosen_from_k_dt():
    """Without their own substeps, LOD fields take the fewest steps per agent step that keep
    k dt <= numerics.lod_kdt_max (0.1), k being the fastest local rate; a field above the
    bound even at the finest step (the chemokine) is implicit under the default 'auto'."""
    from tmesim.fields import accuracy_substeps, local_rates
    from tmesim.scenario import load_scenario

    sc = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "baseline.yaml")
    rates = local_rates(sc)
    # decay plus V_cell/V_voxel * (uptake + secretion rate) of the fastest kind
    ratio = 2494.0 / 8000.0
    assert rates["tgfb"] == pytest.approx(0.05)
    assert rates["ifng"] == pytest.approx(0.0039 + ratio * 0.06)
    assert rates["chemokine"] == pytest.approx(0.016 + ratio * 1.0)
    assert rates["ccl2"] == pytest.approx(0.01)  # decay only: CCL2 is released, not taken up
    assert rates["vegf"] == pytest.approx(0.0206)  # likewise VEGF (baseline.yaml)
    steps = {n: accuracy_substeps(rates[n], 6.0, 6, 0.1)
             for n in ("ifng", "tgfb", "egf", "ccl2", "vegf", "chemokine")}
    assert steps == {"ifng": 2, "tgfb": 3, "egf": 2, "ccl2": 1, "vegf": 2, "chemokine": 6}
    fs = FieldSet.from_scenario(sc)
    every = {n: ev[0] for (_, p), ev in zip(fs._parts, fs._every, strict=False) for n in p.names}
    assert every == {"oxygen": 6, "chemokine": 6, "tgfb": 2, "ifng": 3, "egf": 3, "vegf": 3,
                     "ccl2": 6}
    schemes = {n: p.scheme for _, p in fs._parts for n in p.names}
    assert schemes == {"oxygen": "implicit", "chemokine": "implicit", "tgfb": "lod",
                       "ifng": "lod", "egf": "lod", "vegf": "lod", "ccl2": "lod"}  # fmt: skip
    assert accuracy_substeps(0.0, 6.0, 6, 0.1) == 1
    assert accuracy_substeps(100.0, 6.0, 6, 0.1) == 6  # the finest step when none is enough


def test_incremental_geometry_in_a_mixed_set_equals_a_rebuild():
    rng = np.random.default_rng(21)
    shape = (24, 30)
    specs = [
        FieldSpec("o", "u", 1e5, 0.1, 38.0, {"x_min": ("dirichlet", 38.0)}, "implicit", 1),
        FieldSpec("c", "u", 6000.0, 0.05, 0.0, {"y_max": ("dirichlet", 0.0)}, "lod", 2),
        FieldSpec("e", "u", 0.0, 0.0, 0.1, {}, None),
    ]
    mask, _, held = geometry(rng, shape)
    sink = np.where(rng.random((3, 1, *shape)) < 0.4, 0.5, 0.0)
    src = np.where(rng.random((3, 1, *shape)) < 0.05, 2.0, 0.0)
    a = FieldSet(specs, shape, H)
    a.set_geometry(mask=mask)
    a.set_fixed("o", held & ~mask, 38.0)
    for _ in range(2):
        a.diffuse(1.0, sink, src)
    flip = np.zeros(mask.size, dtype=bool)
    flip[rng.choice(np.flatnonzero(~held.reshape(-1)), 8, replace=False)] = True
    mask2 = mask ^ flip.reshape(shape)
    a.set_geometry(mask=mask2)
    b = FieldSet(specs, shape, H)
    b.set_geometry(mask=mask2)
    b.set_fixed("o", held & ~mask, 38.0)
    b.data[...] = a.data
    for fs in (a, b):
        for ev in fs._every:
            ev[1] = 0
        for _ in range(4):
            fs.diffuse(1.0, sink, src)
    assert a.data.tobytes() == b.data.tobytes()


def test_agent_step_runs_the_once_per_step_fields_beside_the_others():
    """FieldSet.step: the once-per-agent-step fields (oxygen-like, chemokine-like) and the
    sub-stepped ones are shared between two threads when there are two; whichever thread runs
    what, the bits are those of running the once-per-step fields after the sub-steps, on one
    thread."""
    rng = np.random.default_rng(31)
    shape = (40, 50)
    specs = [
        FieldSpec("o", "u", 1e5, 0.1, 38.0, {"x_min": ("dirichlet", 38.0)}, "implicit", 6),
        FieldSpec("k", "u", 1000.0, 0.016, 0.0, {}, "implicit", 6),
        FieldSpec("c", "u", 6000.0, 0.05, 0.0, {"y_max": ("dirichlet", 0.0)}, "lod", 1),
        FieldSpec("t", "u", 6000.0, 0.01, 0.0, {}, "lod", 3),
    ]
    mask, _, held = geometry(rng, shape)
    sink = np.where(rng.random((4, 1, *shape)) < 0.4, 0.5, 0.0)
    src = np.where(rng.random((4, 1, *shape)) < 0.05, 2.0, 0.0)
    calls = []
    out = []
    old = numba.get_num_threads()
    two = min(2, numba.config.NUMBA_NUM_THREADS)
    # task costs (s) set before each step: the sub-stepped calls first, then "k", then "o"
    presets = [None, [9.0, 1.0, 1.0], [1.0, 9.0, 1.0], [1.0, 1.0, 9.0]]
    try:
        for threads, preset in [(1, None)] + [(two, p) for p in presets]:
            numba.set_num_threads(threads)
            fs = FieldSet(specs, shape, H)
            assert [p.names for _, p in fs._parts] == [["k"], ["o"], ["c"], ["t"]]
            fs.set_geometry(mask=mask)
            fs.set_fixed("o", held & ~mask, 38.0)
            for _ in range(3):
                if preset is not None:
                    fs._task_cost[:] = preset
                fs.step(6.0, 6, sink, src, before=lambda i, dt: calls.append((i, dt)))
            out.append(fs.data.copy())
            assert fs.solver_stats()["o"]["solves"] == 3
            assert fs.solver_stats()["k"]["solves"] == 3
            assert numba.get_num_threads() == threads
    finally:
        numba.set_num_threads(old)
    for o in out[1:]:
        assert o.tobytes() == out[0].tobytes()
    assert calls[:6] == [(i, 1.0) for i in range(6)]
    # the same as the sub-steps of the others, then one 6-min step of each once-per-step field
    ref = FieldSet(specs, shape, H)
    ref.set_geometry(mask=mask)
    ref.set_fixed("o", held & ~mask, 38.0)
    for _ in range(3):
        for _ in range(6):
            ref.diffuse(1.0, sink, src, skip=[0, 1])
        for i in (0, 1):
            sl, part = ref._parts[i]
            part.diffuse(6.0, sink[sl], src[sl])
    assert ref.data.tobytes() == out[0].tobytes()


def test_task_costs_share_the_step_between_two_threads():
    """With two threads the longest task goes first to one thread, the others to the less
    loaded one; the costs are timed when the step runs."""
    import threading

    shape = (20, 24)
    specs = [
        FieldSpec("o", "u", 1e5, 0.1, 38.0, {"x_min": ("dirichlet", 38.0)}, "implicit", 6),
        FieldSpec("k", "u", 1000.0, 0.016, 0.0, {}, "implicit", 6),
        FieldSpec("t", "u", 6000.0, 0.01, 0.0, {}, "lod", 3),
    ]
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        if numba.get_num_threads() < 2:
            pytest.skip("needs two threads")
        fs = FieldSet(specs, shape, H)
        fs.step(6.0, 6)
        assert len(fs._task_cost) == 3 and all(c > 0 for c in fs._task_cost)
        seen = {}
        for i, (_, part) in enumerate(fs._parts[:2]):
            orig = part.diffuse

            def spy(*a, i=i, orig=orig):
                seen[i] = threading.current_thread().name
                return orig(*a)

            part.diffuse = spy
        fs._task_cost[:] = [1.0, 1.0, 9.0]  # "o" (the last task) is the longest
        fs.step(6.0, 6)
        assert seen[1] != seen[0]  # "o" alone on one thread, "k" with the sub-steps
    finally:
        numba.set_num_threads(old)
