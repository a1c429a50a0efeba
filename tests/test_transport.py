"""Transport engine: kernels against their reference twins, analytic solutions, guards.

Tolerances: float64 comparisons with the dense reference solves use rtol 1e-11 relative to the
field's magnitude (Thomas and LU differ by round-off only); float32 uses 2e-5. Analytic checks
state their tolerance next to the assertion, derived from the scheme's error terms.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import naive_transport as nv
from tmesim.errors import SimulationError
from tmesim.fields import FieldSet, FieldSpec
from tmesim.kernels import diffusion as kd
from tmesim.kernels import exchange as kx

SIDES = ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")
TOL = {"float64": 1e-11, "float32": 2e-5}
SHAPES = [(1, 1), (1, 9), (9, 1), (7, 13), (5, 1, 9), (1, 1, 1), (4, 6, 5), (3, 70, 19), (70, 3)]


def random_specs(rng, nf, ndim):
    specs = []
    for f in range(nf):
        bc = {}
        for side in SIDES[: 2 * ndim]:
            k = rng.integers(3)
            if k == 1:
                bc[side] = ("dirichlet", float(rng.uniform(0.5, 2.0)))
            elif k == 2:
                bc[side] = ("neumann", float(rng.uniform(0.0, 5.0)))
        specs.append(
            FieldSpec(
                f"f{f}",
                "a.u.",
                float(rng.uniform(10.0, 2000.0)),
                float(rng.uniform(0.0, 2.0)),
                1.0,
                bc,
            )
        )
    return specs


def naive_args(fs):
    return (
        [s.diffusion_um2_per_min for s in fs.specs],
        [s.decay_per_min for s in fs.specs],
    ), [s.boundary for s in fs.specs]


def step_naive(fs, u, dt, kf=None, fixed=None):
    (D, lam), bcs = naive_args(fs)
    return nv.lod_step(u, D, lam, dt, fs.voxel_um, bcs, fs.ndim, kf=kf, fixed=fixed)


def assert_close(got, want, dtype, what=""):
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want))) / scale
    assert err <= TOL[str(np.dtype(dtype))], f"{what}: relative error {err:.3g}"


# ---------------------------------------------------------------------- kernels vs twins
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES)
def test_constant_sweeps_match_reference(shape, dtype):
    rng = np.random.default_rng(hash((shape, dtype)) % 2**32)
    nf = int(rng.integers(1, 4))
    specs = random_specs(rng, nf, len(shape))
    fs = FieldSet(specs, shape, voxel_um=10.0, dtype=dtype)
    fs.data[...] = rng.uniform(0.0, 3.0, fs.data.shape)
    assert not fs.variable
    for dt in (0.05, 0.05, 0.3):
        want = step_naive(fs, fs.data, dt)
        fs.diffuse(dt)
        assert_close(fs.data, want, dtype, f"{shape} dt={dt}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES)
def test_variable_sweeps_match_reference(shape, dtype):
    rng = np.random.default_rng(1 + hash((shape, dtype)) % 2**32)
    nf = int(rng.integers(1, 4))
    specs = random_specs(rng, nf, len(shape))
    fs = FieldSet(specs, shape, voxel_um=10.0, dtype=dtype)
    fs.data[...] = rng.uniform(0.0, 3.0, fs.data.shape)
    mask = rng.random(shape) < 0.15
    factor = rng.uniform(0.2, 3.0, shape)
    factor[rng.random(shape) < 0.05] = 0.0  # conducting nothing but not masked
    fs.set_geometry(mask=mask, diffusivity_factor=factor)
    held = {}
    for f in range(nf):
        where = rng.random(shape) < 0.1
        fs.set_fixed(f"f{f}", where, 1.7 + f)
        held[f] = where.reshape(fs.shape3)
    kf = np.where(mask, 0.0, factor).reshape(fs.shape3)
    fixed = np.zeros(fs.data.shape, dtype=bool)
    for f in range(nf):
        fixed[f] = mask.reshape(fs.shape3) | held[f]
    assert fs.variable
    for dt in (0.05, 0.3):
        before = np.array(fs.data, dtype=np.float64)
        for f in range(nf):
            before[f][held[f]] = 1.7 + f
        before[:, mask.reshape(fs.shape3)] = 0.0
        want = step_naive(fs, before, dt, kf=kf, fixed=fixed)
        fs.diffuse(dt)
        assert_close(fs.data, want, dtype, f"{shape} dt={dt}")
        for f in range(nf):
            keep = held[f] & ~mask.reshape(fs.shape3)
            assert np.all(fs.data[f][keep] == np.asarray(1.7 + f, dtype=dtype))
        assert np.all(fs.data[:, mask.reshape(fs.shape3)] == 0.0)


@pytest.mark.parametrize("shape", [(7, 13), (5, 6, 9)])
def test_variable_path_with_unit_factor_equals_constant_path(shape):
    rng = np.random.default_rng(3)
    specs = random_specs(rng, 2, len(shape))
    a = FieldSet(specs, shape, 10.0)
    b = FieldSet(specs, shape, 10.0)
    a.data[...] = b.data[...] = rng.uniform(0, 2, a.data.shape)
    b.set_geometry(diffusivity_factor=np.ones(shape))
    for _ in range(3):
        a.diffuse(0.1)
        b.diffuse(0.1)
    np.testing.assert_allclose(b.data, a.data, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_uptake_and_find_invalid_match_reference(dtype):
    rng = np.random.default_rng(5)
    u = rng.uniform(0, 2, (2, 5, 1, 9)).astype(dtype)
    k = rng.uniform(0, 30, u.shape).astype(dtype)
    k[k < 5] = 0.0
    want = nv.uptake(u, k, 0.07)
    kd.uptake_implicit(u, k, 0.07)
    assert_close(u, want, dtype)
    for pos in (0, 17, u.size - 1):
        for bad in (np.nan, np.inf, -1e-30):
            v = u.copy()
            v.reshape(-1)[pos] = bad
            assert kd.find_invalid(v) == nv.find_invalid(v) == pos
    assert kd.find_invalid(u) == nv.find_invalid(u) == -1
    # several of the kernel's blocks of 4096 values: the first bad value of a late block, at a
    # block's edges, and more than one bad value in a grid
    big = rng.uniform(0, 2, (3, 1, 70, 90)).astype(dtype)
    big.reshape(-1)[::7] = 0.0
    big.reshape(-1)[5] = -0.0  # a signed zero is valid
    assert kd.find_invalid(big) == nv.find_invalid(big) == -1
    for pos in (4095, 4096, 8191, 12288, big.size - 1):
        for bad in (np.nan, np.inf, -np.inf, -1e-30):
            v = big.copy()
            v.reshape(-1)[pos] = bad
            v.reshape(-1)[big.size - 1 if pos < big.size - 1 else 0] = np.nan
            want = min(pos, big.size - 1 if pos < big.size - 1 else 0)
            assert kd.find_invalid(v) == nv.find_invalid(v) == want


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cell_exchange_matches_reference_and_conserves_mass(dtype):
    rng = np.random.default_rng(11)
    nf, nvox, nc = 3, 40, 200
    u = rng.uniform(0, 5, (nf, nvox)).astype(dtype)
    site = rng.integers(0, nvox, nc)  # many cells share voxels
    site[::17] = -1  # empty slots
    sec = rng.uniform(0, 2, (nc, nf)) * (rng.random((nc, nf)) < 0.5)
    tgt = rng.uniform(0, 10, (nc, nf))
    upt = rng.uniform(0, 3, (nc, nf)) * (rng.random((nc, nf)) < 0.5)
    exp_ = rng.uniform(0, 50, (nc, nf)) * (rng.random((nc, nf)) < 0.3)
    vr = rng.uniform(0.1, 1.0, nc)
    internal = rng.uniform(0, 100, (nc, nf))
    vvox, dt, n = 1000.0, 0.2, nc - 5
    arrs = [a.astype(dtype) for a in (sec, tgt, upt, exp_, vr, internal)]
    sec, tgt, upt, exp_, vr, internal = arrs
    total0 = u.astype(np.float64).sum(axis=1) * vvox + internal.astype(np.float64).sum(axis=0)
    want_u, want_i = nv.cell_exchange(u, n, site, sec, tgt, upt, exp_, vr, vvox, internal, dt)
    kx.cell_exchange(u, n, site, sec, tgt, upt, exp_, vr, vvox, internal, dt)
    assert_close(u, want_u, dtype, "field")
    np.testing.assert_allclose(internal, want_i, rtol=TOL[dtype], atol=TOL[dtype] * 1e3)
    total1 = u.astype(np.float64).sum(axis=1) * vvox + internal.astype(np.float64).sum(axis=0)
    # exact to round-off: each update moves the stored difference; float32 round-off of the
    # ~1e2-1e3 sized terms summed over 200 cells
    rel = np.abs(total1 - total0) / np.abs(total0)
    assert np.all(rel < (1e-14 if dtype == "float64" else 1e-6)), rel


def test_fieldset_exchange_conserves_mass_with_diffusion():
    """Field + internal pools conserved to round-off through exchange and no-flux diffusion."""
    rng = np.random.default_rng(2)
    specs = [FieldSpec("o", "a", 1000.0, 0.0, 1.0, {}), FieldSpec("g", "a", 50.0, 0.0, 0.0, {})]
    fs = FieldSet(specs, (12, 15), 10.0)
    nc = 30
    site = rng.integers(0, 12 * 15, nc)
    sec = rng.uniform(0, 1, (nc, 2))
    tgt = rng.uniform(0, 3, (nc, 2))
    upt = rng.uniform(0, 2, (nc, 2))
    exp_ = rng.uniform(0, 5, (nc, 2))
    vr = np.full(nc, 0.5)
    internal = np.zeros((nc, 2))
    vv = fs.voxel_volume
    t0 = fs.data.reshape(2, -1).sum(axis=1) * vv + internal.sum(axis=0)
    for _ in range(20):
        fs.exchange(nc, site, sec, tgt, upt, exp_, vr, internal, 0.1)
        fs.diffuse(0.1)
    t1 = fs.data.reshape(2, -1).sum(axis=1) * vv + internal.sum(axis=0)
    scale = fs.data.reshape(2, -1).sum(axis=1) * vv + np.abs(internal).sum(axis=0)
    assert np.all(np.abs(t1 - t0) <= 1e-13 * scale), (t1 - t0) / scale
    assert fs.total("o") == pytest.approx(fs.data[0].sum() * vv)


# ---------------------------------------------------------------------- masks and held voxels
def test_mask_splits_domain_into_isolated_parts():
    """A masked wall isolates the two sides bit for bit; each side conserves its mass."""
    shape = (9, 11, 14)
    wall = np.zeros(shape, dtype=bool)
    wall[:, :, 6] = True
    right = np.zeros(shape, dtype=bool)
    right[:, :, 7:] = True
    rng = np.random.default_rng(4)
    init = rng.uniform(0, 1, shape)
    outs = []
    for left_value in (0.0, 5.0):
        spec = FieldSpec("c", "a", 500.0, 0.0, 0.0, {"x_min": ("dirichlet", left_value)})
        fs = FieldSet([spec], shape, 10.0)
        fs["c"][...] = init
        fs.set_geometry(mask=wall)
        m0 = fs["c"][right].sum()
        for _ in range(10):
            fs.diffuse(0.5)
        np.testing.assert_allclose(fs["c"][right].sum(), m0, rtol=1e-13)
        outs.append(fs["c"].copy())
    assert np.array_equal(outs[0][right], outs[1][right])
    assert not np.array_equal(outs[0][~right], outs[1][~right])


def test_held_voxel_is_part_of_the_implicit_solve():
    """1-D steady state around a held voxel equals the exact discrete solution C rho^|j-j0|."""
    n, j0, c, h, D, lam, dt = 201, 100, 3.0, 10.0, 1000.0, 1.0, 0.5
    fs = FieldSet([FieldSpec("o", "a", D, lam, 0.0, {})], (1, n), h)
    where = np.zeros((1, n), dtype=bool)
    where[0, j0] = True
    fs.set_fixed("o", where, c)
    fs.diffuse(dt)
    # after one step the neighbours already feel the source (identity row, not re-imposed)
    assert fs["o"][0, j0 - 1] > 0.1 and fs["o"][0, j0 + 1] > 0.1
    for _ in range(400):
        fs.diffuse(dt)
    # LOD with ny == 1: x sweep with decay lam*dt/2, then division by (1 + lam*dt/2)
    kappa, c_eff = lod_effective(lam, dt, D, h, ndim=2, pos=0)
    rho = discrete_ratio(kappa)
    j = np.arange(n)
    want = c * c_eff * rho ** np.abs(j - j0)
    want[j0] = c
    # the no-flux ends 100 voxels away reflect a part rho^200 ~ 1e-26 of the profile
    np.testing.assert_allclose(fs["o"][0], want, rtol=1e-10, atol=1e-13 * c)


# ---------------------------------------------------------------------- guards
@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 5)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.5])
def test_check_raises_with_field_voxel_and_step(shape, bad):
    specs = [FieldSpec("oxygen", "mmHg", 1e5, 0.1, 1.0, {}), FieldSpec("drug", "uM", 1, 0, 0, {})]
    fs = FieldSet(specs, shape, 20.0)
    fs.check(0)
    voxel = (2, 3) if len(shape) == 2 else (1, 2, 3)
    fs["drug"][voxel] = bad
    with pytest.raises(SimulationError) as e:
        fs.check(42)
    msg = str(e.value)
    assert "'drug'" in msg and str(voxel) in msg and "step 42" in msg


def test_geometry_and_held_values_validated():
    fs = FieldSet([FieldSpec("o", "a", 1.0, 0.0, 0.0, {})], (3, 4), 1.0)
    with pytest.raises(ValueError):
        fs.set_geometry(diffusivity_factor=-np.ones((3, 4)))
    with pytest.raises(ValueError):
        fs.set_fixed("o", np.ones((3, 4), dtype=bool), np.nan)
    fs.set_fixed("o", np.ones((3, 4), dtype=bool), 2.0)
    fs.set_fixed("o", None, 0.0)
    assert not fs.variable


# ---------------------------------------------------------------------- analytic solutions
def lod_effective(lam, dt, D, h, ndim, pos):
    """Steady state of the LOD scheme for a profile along the sweep number ``pos``.

    Sweeps before it divide by (1+a), after it by (1+a) too (a = lam dt / ndim; the other axes
    are uniform). The steady state solves kappa u - Lap_h u = 2 C' e_0 with the returned
    kappa and C' / C (docs/numerics.md, "splitting error").
    """
    a = lam * dt / ndim
    r = D * dt / h**2
    q = ndim - 1 - pos
    kappa = ((1 + a) ** (q + 1) - (1 + a) ** (-pos)) / (r * (1 + a) ** q)
    return kappa, 1.0 / (1 + a) ** q


def discrete_ratio(kappa):
    """Root below 1 of rho + 1/rho = 2 + kappa."""
    b = 2.0 + kappa
    return (b - math.sqrt(b * b - 4.0)) / 2.0


@pytest.mark.parametrize(
    "shape,axis", [((1, 200), "x"), ((200, 1), "y"), ((3, 2, 200), "x"), ((200, 2, 3), "z")]
)
def test_steady_decay_from_dirichlet_side_exact_discrete(shape, axis):
    """c_j = 2 C' rho^(j+1) / (1 + rho) (face half a voxel out) to 1e-10; PhysiCell numbers."""
    h, D, lam, C0, dt = 20.0, 1e5, 10.0, 38.0, 0.1
    fs = FieldSet([FieldSpec("o", "a", D, lam, 0.0, {f"{axis}_min": ("dirichlet", C0)})], shape, h)
    for _ in range(300):
        fs.diffuse(dt)
    ndim = len(shape)
    pos = {"x": 0, "y": 1, "z": 2}[axis]
    kappa, ceff = lod_effective(lam, dt, D, h, ndim, pos)
    rho = discrete_ratio(kappa)
    j = np.arange(200)
    want = 2 * C0 * ceff * rho ** (j + 1) / (1 + rho)
    prof = np.moveaxis(fs["o"], {"x": -1, "y": -2, "z": -3}[axis], -1).reshape(-1, 200)
    for p in prof:
        # atol: round-off of the O(C0) values near the boundary propagates down the line
        np.testing.assert_allclose(p, want, rtol=1e-10, atol=1e-13 * C0)


def test_steady_decay_continuum_cosh_slab():
    """Slab of 8 diffusion lengths, no flux at the far end: continuum cosh within 1.5 %.

    Error budget: splitting C' = C/(1 + lam dt/2) = 0.5 % at lam dt = 0.01, space (h/l)^2/8 and
    a slightly shifted decay length (~0.3 % over the profile).
    """
    h, D, lam, C0, dt, n = 10.0, 1e5, 10.0, 38.0, 0.001, 80
    ell = math.sqrt(D / lam)
    L = n * h
    fs = FieldSet([FieldSpec("o", "a", D, lam, 0.0, {"x_min": ("dirichlet", C0)})], (1, n), h)
    x = (np.arange(n) + 0.5) * h
    want = C0 * np.cosh((L - x) / ell) / np.cosh(L / ell)
    fs["o"][0] = want  # start near the answer; 2000 steps = 2 min = 20 decay times
    for _ in range(2000):
        fs.diffuse(dt)
    got = fs["o"][0]
    assert np.max(np.abs(got - want) / want) < 0.015


def erfc_run(nx, dt, t_end, L=10.0, D=1.0):
    h = L / nx
    fs = FieldSet([FieldSpec("c", "a", D, 0.0, 0.0, {"x_min": ("dirichlet", 1.0)})], (1, nx), h)
    for _ in range(round(t_end / dt)):
        fs.diffuse(dt)
    x = (np.arange(nx) + 0.5) * h
    return fs["c"][0], np.array([math.erfc(v / (2 * math.sqrt(D * t_end))) for v in x])


def test_transient_from_held_boundary_erfc_and_time_order():
    """Semi-infinite erfc profile: max error < 1.2 % at dt = 0.01; time order 1 (0.8-1.2)."""
    errs = []
    for dt in (0.04, 0.02, 0.01):
        got, want = erfc_run(400, dt, 1.0)
        errs.append(np.max(np.abs(got - want)))
    assert errs[-1] < 0.012
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(0.8 < p < 1.2 for p in orders), orders


def cosine_mode(nx, dt, t_end, ny=1, L=500.0, D=1e5):
    """BioFVM convergence test 1: 1 + cos(pi x / L) exp(-D pi^2 t / L^2), no-flux ends."""
    h = L / nx
    fs = FieldSet([FieldSpec("c", "a", D, 0.0, 0.0, {})], (ny, nx), h)
    x = (np.arange(nx) + 0.5) * h
    fs["c"][...] = 1.0 + np.cos(np.pi * x / L)
    steps = round(t_end / dt)
    for _ in range(steps):
        fs.diffuse(dt)
    exact = 1.0 + np.cos(np.pi * x / L) * math.exp(-D * np.pi**2 * t_end / L**2)
    # exact solution of the semi-discrete system (cos is an eigenvector of the Neumann Laplacian)
    mu = 4.0 / h**2 * math.sin(np.pi * h / (2 * L)) ** 2
    semi = 1.0 + np.cos(np.pi * x / L) * math.exp(-D * mu * t_end)
    return fs["c"][0], exact, semi


def test_convergence_order_time_and_space():
    """Time order vs the semi-discrete solution ~1; space order with dt ~ h^2 ~2."""
    t = 0.5
    et = []
    for dt in (0.05, 0.025, 0.0125):
        got, _, semi = cosine_mode(50, dt, t)
        et.append(np.max(np.abs(got - semi)))
    pt = [math.log2(et[i] / et[i + 1]) for i in range(2)]
    assert all(0.9 < p < 1.1 for p in pt), pt
    es = []
    for nx in (10, 20, 40):
        dt = 0.05 * (10 / nx) ** 2
        got, exact, _ = cosine_mode(nx, dt, t)
        es.append(np.max(np.abs(got - exact)))
    ps = [math.log2(es[i] / es[i + 1]) for i in range(2)]
    assert all(1.8 < p < 2.2 for p in ps), ps


@pytest.mark.parametrize("shape", [(48, 48), (24, 24, 24)])
def test_gaussian_pulse_with_decay(shape):
    """Gaussian spreading with decay: mass exactly M/(1+a)^(d n); profile within 2 % of peak."""
    ndim = len(shape)
    h, D, lam, dt, steps = 1.0, 1.0, 0.2, 0.02, 100
    sigma0 = 2.5
    fs = FieldSet([FieldSpec("c", "a", D, lam, 0.0, {})], shape, h)
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * h - n * h / 2 for n in shape], indexing="ij")
    r2 = sum(g**2 for g in grids)
    fs["c"][...] = np.exp(-r2 / (2 * sigma0**2)) / (2 * np.pi * sigma0**2) ** (ndim / 2)
    m0 = fs["c"].sum() * h**ndim
    for _ in range(steps):
        fs.diffuse(dt)
    t = steps * dt
    a = lam * dt / ndim
    np.testing.assert_allclose(fs["c"].sum() * h**ndim, m0 / (1 + a) ** (ndim * steps), rtol=1e-12)
    s2 = sigma0**2 + 2 * D * t
    want = np.exp(-r2 / (2 * s2) - lam * t) / (2 * np.pi * s2) ** (ndim / 2)
    err = np.max(np.abs(fs["c"] - want)) / want.max()
    assert err < 0.02, err


@pytest.mark.parametrize("shape", [(1, 17), (13, 1), (7, 13), (5, 1, 9), (6, 7, 8)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_no_flux_conserves_mass(shape, dtype):
    rng = np.random.default_rng(8)
    fs = FieldSet([FieldSpec("c", "a", 3000.0, 0.0, 0.0, {})] * 2, shape, 5.0, dtype=dtype)
    fs.data[...] = rng.uniform(0, 1, fs.data.shape)
    m0 = fs.data.astype(np.float64).sum(axis=(1, 2, 3))
    for dt in (0.01, 1.0, 100.0):
        fs.diffuse(dt)
    m1 = fs.data.astype(np.float64).sum(axis=(1, 2, 3))
    # round-off only; with dt = 100 the off-diagonals are r = 1.2e4 times the data, so the
    # elimination's cancellation costs a few hundred ulps in float64
    np.testing.assert_allclose(m1, m0, rtol=1e-12 if dtype == "float64" else 2e-6)


def test_precision_float32_tracks_float64():
    rng = np.random.default_rng(9)
    specs = random_specs(rng, 3, 3)
    a = FieldSet(specs, (10, 11, 12), 10.0, dtype="float32")
    b = FieldSet(specs, (10, 11, 12), 10.0, dtype="float64")
    a.data[...] = b.data[...] = rng.uniform(0, 2, a.data.shape)
    for _ in range(20):
        a.diffuse(0.1)
        b.diffuse(0.1)
    assert a.data.dtype == np.float32
    np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- determinism
def run_everything(shape):
    rng = np.random.default_rng(12)
    specs = random_specs(rng, 3, len(shape))
    out = []
    for variable in (False, True):
        fs = FieldSet(specs, shape, 10.0)
        fs.data[...] = rng.uniform(0, 2, fs.data.shape)
        if variable:
            fs.set_geometry(mask=rng.random(shape) < 0.1, diffusivity_factor=rng.random(shape))
            fs.set_fixed("f0", rng.random(shape) < 0.05, 2.0)
        nc = 500
        site = rng.integers(0, fs.data[0].size, nc)
        par = [rng.random((nc, 3)) for _ in range(4)]
        internal = np.zeros((nc, 3))
        for _ in range(3):
            fs.exchange(nc, site, *par, np.full(nc, 0.3), internal, 0.1)
            fs.diffuse(0.1)
        out += [fs.data.copy(), internal]
    return out


@pytest.mark.parametrize("shape", [(150, 130), (20, 70, 33)])
def test_bits_identical_for_one_and_two_threads(shape):
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_everything(shape)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run_everything(shape)
    finally:
        numba.set_num_threads(old)
    for a, b in zip(one, two, strict=True):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------- slow studies
@pytest.mark.slow
def test_convergence_order_study_3d():
    """Cosine mode along each axis of a 3-D grid: space order 2 with dt ~ h^2 on 4 levels."""
    for axis in range(3):
        es = []
        for n in (10, 20, 40, 80):
            shape = [4, 4, 4]
            shape[axis] = n
            h, L, D, t = 500.0 / n, 500.0, 1e5, 0.5
            fs = FieldSet([FieldSpec("c", "a", D, 0.0, 0.0, {})], tuple(shape), h)
            x = (np.arange(n) + 0.5) * h
            sl = [None, None, None]
            sl[axis] = slice(None)
            fs["c"][...] = 1.0 + np.cos(np.pi * x / L)[tuple(sl)]
            dt = 0.05 * (10 / n) ** 2
            for _ in range(round(t / dt)):
                fs.diffuse(dt)
            exact = 1.0 + np.cos(np.pi * x / L) * math.exp(-D * np.pi**2 * t / L**2)
            es.append(np.max(np.abs(fs["c"] - exact[tuple(sl)])))
        ps = [math.log2(es[i] / es[i + 1]) for i in range(3)]
        assert all(1.9 < p < 2.1 for p in ps), (axis, ps)


@pytest.mark.slow
def test_erfc_time_and_space_study():
    errs = []
    for dt in (0.04, 0.02, 0.01, 0.005, 0.0025):
        got, want = erfc_run(1000, dt, 1.0)
        errs.append(np.max(np.abs(got - want)))
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(4)]
    assert all(0.85 < p < 1.15 for p in orders), orders


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_model_runs_with_either_precision(precision):
    """numerics.precision reaches the field arrays and a model step stays valid."""
    from pathlib import Path

    from tmesim import TMEModel

    tiny = Path(__file__).resolve().parents[1] / "scenarios" / "tiny.yaml"
    model = TMEModel(tiny, **{"time.duration_h": 0.2, "numerics.precision": precision})
    model.step()
    model.step()
    assert model.fields.data.dtype == np.dtype(precision)
    assert kd.find_invalid(model.fields.data) == -1
    assert 0.0 < float(model.fields["oxygen"].mean()) < 200.0


@pytest.mark.parametrize("variable", [False, True])
def test_neumann_influx_adds_exact_amount(variable):
    """Influx q through y_max adds dt q h^2 per open boundary voxel and step (no decay)."""
    shape, h, q, dt, steps = (6, 9), 5.0, 3.0, 0.2, 7
    fs = FieldSet([FieldSpec("c", "a", 400.0, 0.0, 0.5, {"y_max": ("neumann", q)})], shape, h)
    open_faces = shape[1]
    if variable:
        mask = np.zeros(shape, dtype=bool)
        mask[-1, :2] = True  # two boundary voxels closed: no influx there
        mask[2, 4] = True
        fs.set_geometry(mask=mask, diffusivity_factor=np.linspace(0.5, 2, shape[1])[None, :])
        open_faces -= 2
    m0 = fs.total("c")
    for _ in range(steps):
        fs.diffuse(dt)
    added = steps * dt * q * open_faces * h**2
    assert fs.total("c") == pytest.approx(m0 + added, rel=1e-13)


# ---------------------------------------------------------------------- per-field schemes
def mixed_specs():
    """Two Douglas fields, two LOD fields (one by default), one static field (D = 0, no decay,
    no boundary conditions), deliberately interleaved."""
    return [
        FieldSpec("a", "a", 1e5, 0.1, 38.0, {"x_min": ("dirichlet", 38.0)}, "douglas"),
        FieldSpec("b", "a", 500.0, 0.2, 1.0, {"y_max": ("neumann", 2.0)}, "lod"),
        FieldSpec("ecm", "a", 0.0, 0.0, 0.5, {}),
        FieldSpec("d", "a", 2e3, 0.5, 2.0, {"y_min": ("dirichlet", 1.0)}, "douglas"),
        FieldSpec("e", "a", 50.0, 0.01, 0.0, {}),  # None: the set's scheme (lod)
    ]


def split_sets(shape):
    """The mixed set and the single-scheme sets of the same fields."""
    specs = mixed_specs()
    by = {n: s for n, s in zip("abcde", specs, strict=True)}
    mixed = FieldSet(specs, shape, 20.0, scheme="lod")
    dou = FieldSet([by["a"], by["d"]], shape, 20.0, scheme="douglas")
    lod = FieldSet([by["b"], by["e"]], shape, 20.0, scheme="lod")
    home = {"a": dou, "d": dou, "b": lod, "e": lod}
    return mixed, home


def fill(sets, rng):
    """Same random initial values, field by field, in every set holding the field."""
    names = sets[0].names
    for n in names:
        v = rng.uniform(0.0, 3.0, sets[0][n].shape)
        for s in sets:
            if n in s.index:
                s[n][...] = v


@pytest.mark.parametrize("shape", [(9, 70), (4, 6, 5)])
def test_mixed_schemes_equal_single_scheme_sets_bit_for_bit(shape):
    """Fields grouped by scheme (Douglas, LOD, static) are solved by sub-sets sharing the
    parent's memory: each field gets exactly the bits of a single-scheme set, with and without
    a per-voxel sink; the static field is never touched."""
    rng = np.random.default_rng(31)
    mixed, home = split_sets(shape)
    assert mixed.names == ["a", "d", "b", "e", "ecm"]  # contiguous blocks
    assert [p.scheme for _, p in mixed._parts] == ["douglas", "lod"]
    for _, p in mixed._parts:  # the sub-sets are views of the parent's data
        assert np.shares_memory(p.data, mixed.data)
    dou, lod = home["a"], home["b"]
    fill([mixed, dou, lod], rng)
    ecm0 = mixed["ecm"].copy()
    for dt in (0.1, 1.0, 1.0):
        sink = rng.uniform(0.0, 3.0, mixed.data.shape) * (rng.random(mixed.data.shape) < 0.5)
        mixed.diffuse(dt, sink=sink)
        for s in (dou, lod):
            rows = [mixed.index[n] for n in s.names]
            s.diffuse(dt, sink=np.ascontiguousarray(sink[rows]))
        mixed.diffuse(dt)
        dou.diffuse(dt)
        lod.diffuse(dt)
    for n, s in home.items():
        assert mixed[n].tobytes() == s[n].tobytes(), n
    assert mixed["ecm"].tobytes() == ecm0.tobytes()


def test_all_static_set_is_untouched():
    fs = FieldSet([FieldSpec("ecm", "a", 0.0, 0.0, 0.7, {})], (5, 6), 10.0, scheme="douglas")
    before = fs.data.copy()
    fs.diffuse(1.0, sink=np.ones(fs.data.shape))
    assert fs.data.tobytes() == before.tobytes()
    assert fs._parts == [(slice(0, 0), None)]  # nothing to solve
    # a field with decay or a boundary condition is not static (with D = 0 a boundary value
    # does not reach the interior, but the set still solves it)
    fs = FieldSet([FieldSpec("c", "a", 0.0, 0.1, 0.7, {})], (5, 6), 10.0)
    fs.diffuse(1.0)
    assert np.all(fs.data < 0.7)
    fs = FieldSet([FieldSpec("c", "a", 0.0, 0.0, 0.7, {"x_min": ("dirichlet", 1.0)})], (5, 6), 1.0)
    assert fs._parts == []


@pytest.mark.parametrize("shape", [(9, 70), (4, 6, 5)])
def test_geometry_and_held_voxels_reach_the_sub_sets(shape):
    """set_geometry and set_fixed on the mixed set reach its sub-sets: masked voxels stay 0 in
    every field (static included), held voxels hold, and each field's bits equal those of a
    single-scheme set with the same geometry."""
    rng = np.random.default_rng(32)
    mixed, home = split_sets(shape)
    dou, lod = home["a"], home["b"]
    fill([mixed, dou, lod], rng)
    mask = rng.random(shape) < 0.1
    factor = rng.uniform(0.5, 2.0, shape)
    held = {"a": rng.random(shape) < 0.05, "b": rng.random(shape) < 0.05}
    for s in (mixed, dou, lod):
        s.set_geometry(mask=mask, diffusivity_factor=factor)
        s.positivity_guard = False  # (the sub-sets keep their own flag)
    for _, p in mixed._parts:
        p.positivity_guard = False
        assert p.variable
    for n, where in held.items():
        mixed.set_fixed(n, where, 5.0 + len(n))
        home[n].set_fixed(n, where, 5.0 + len(n))
    for dt in (0.1, 1.0):
        sink = rng.uniform(0.0, 3.0, mixed.data.shape)
        mixed.diffuse(dt, sink=sink)
        for s in (dou, lod):
            rows = [mixed.index[n] for n in s.names]
            s.diffuse(dt, sink=np.ascontiguousarray(sink[rows]))
    for n in mixed.names:
        assert np.all(mixed[n][mask] == 0.0), n
    for n, where in held.items():
        assert np.all(mixed[n][where & ~mask] == 5.0 + len(n)), n
    for n, s in home.items():
        assert mixed[n].tobytes() == s[n].tobytes(), n


@pytest.mark.parametrize("shape3", [(1, 9, 11), (5, 6, 7)])
def test_fill_from_face_neighbours_matches_twin(shape3):
    """Opened lumen sites get the mean of their unmasked face neighbours (kernel vs twin, bit
    for bit), neighbouring opened sites read each other's old values, and a site without an
    unmasked neighbour keeps its values."""
    from naive_transport import fill_from_face_neighbours as twin
    from tmesim.kernels.lattice import fill_from_face_neighbours

    rng = np.random.default_rng(sum(shape3))
    n = int(np.prod(shape3))
    data = rng.uniform(0, 5, (4, n))
    masked = rng.random(n) < 0.4
    sites = np.sort(rng.choice(n, n // 5, replace=False)).astype(np.int64)
    lonely = 0  # a site whose neighbours are all masked
    nbs = [lonely + d for d in (1, shape3[2])] + ([shape3[1] * shape3[2]] if shape3[0] > 1 else [])
    masked[nbs] = True
    sites = np.unique(np.append(sites, lonely))
    rows = np.array([0, 2, 3], np.int64)
    a, b = data.copy(), data.copy()
    fill_from_face_neighbours(a, sites, masked, *shape3, rows)
    twin(b, sites, masked, shape3, rows)
    assert np.array_equal(a, b)
    assert np.array_equal(a[1], data[1])  # a row not listed is untouched
    assert np.array_equal(a[:, lonely], data[:, lonely])
    assert not np.array_equal(a[0, sites], data[0, sites])
