"""Drug pharmacology on the lattice: cell uptake and P-gp efflux, release, vessels and decay.

Units: concentrations in uM, time in min, rates in 1/min.

A live cancer cell ``i`` (kind TUMOR or STEM, state PROLIFERATING or QUIESCENT) sits alone in
voxel ``s = site[i]``. Its intracellular free drug ``C_i`` exchanges with the voxel's extracellular
concentration ``C_e`` (per whole-voxel volume); the cell fills the fraction ``phi = V_cell /
V_voxel`` of the voxel:

    dC_i/dt = k (C_e - C_i) - E(C_i),          E(x) = vmax P f_I x / (km + x)
    dC_e/dt = -phi [k (C_e - C_i) - E(C_i)]    (so C_e + phi C_i is conserved)
    f_I     = ic50 / (I + ic50)                (non-competitive P-gp inhibition)

with the membrane rate ``k`` (1/min), the pump capacity ``vmax`` (uM/min per unit P-gp level),
the Michaelis constant ``km`` (uM), the inhibitor's ``ic50`` (uM), the cell's P-gp level ``P``
and the local inhibitor concentration ``I`` (uM).

The exchange is stiff (``k dt`` ~ 30), so each call takes one backward-Euler step, solved
exactly (Newton safeguarded by bisection, see :func:`exchange_root`). The fixed point of
backward Euler is the true steady state (:func:`steady_state_uptake`). The cell's new drug is
stored as float32 and the voxel is charged with the stored value, so
``sum(c_out) + phi * sum(drug)`` is conserved to float64 round-off.

Every parallel loop writes only its own cell's row and voxel (at most one cell per voxel), and
every sum is taken in a serial loop, so results do not depend on the number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import kernel
from .codes import PROLIFERATING, QUIESCENT, REMOVED, STEM, TUMOR

EPS = 2.220446049250313e-16  # float64 machine epsilon
ROOT_RTOL = 4.0 * EPS  # relative tolerance of the exchange root
ROOT_MAX_ITER = 60  # Newton/bisection iterations (60 halvings reach 2**-60 of the bracket)


@kernel
def inhibition_factor(inhibitor, s, ic50):
    """Fraction of P-gp activity left by a non-competitive inhibitor (dimensionless).

        f_I = ic50 / (I + ic50),    I = max(inhibitor[s], 0)  (uM),  ic50 (uM)

    ``f_I = 1`` when ``ic50 <= 0`` or ``inhibitor`` has length 1 (no inhibitor field).
    """
    if inhibitor.shape[0] == 1 or ic50 <= 0.0:
        return 1.0
    conc = inhibitor[s]
    if conc < 0.0:
        conc = 0.0
    return ic50 / (conc + ic50)


@kernel
def solve_exchange(a, b, vd, km, x):
    """Root in ``[0, b/a]`` of ``g(x) = a x - b + vd x / (km + x)`` (uM), starting from ``x``.

    For ``a > 0``, ``b > 0``, ``vd > 0``, ``km > 0`` (``a`` dimensionless, ``b`` and ``km`` in uM,
    ``vd = dt vm`` in uM), ``g`` is strictly increasing and concave, with ``g(0) = -b < 0`` and
    ``g(b/a) > 0``. Newton steps ``x - g/g'``, ``g' = a + vd km / (km + x)^2``, are kept inside the
    bracket, which every evaluation shrinks; a step that leaves it is replaced by bisection. Stops
    when a step is below ``4 eps x``, the bracket below ``4 eps`` of its upper end, or after
    ``ROOT_MAX_ITER`` iterations. A start outside ``(0, b/a)`` is replaced by the midpoint.
    """
    lo = 0.0
    hi = b / a
    if not (x > lo and x < hi):
        x = 0.5 * (lo + hi)
    for _ in range(ROOT_MAX_ITER):
        e = km + x
        gx = a * x - b + vd * x / e
        if gx == 0.0:
            return x
        if gx < 0.0:
            lo = x
        else:
            hi = x
        xn = x - gx / (a + vd * km / (e * e))
        if abs(xn - x) <= ROOT_RTOL * x:
            return min(max(xn, lo), hi)
        if not (xn > lo and xn < hi):
            xn = 0.5 * (lo + hi)
        x = xn
        if hi - lo <= ROOT_RTOL * hi:
            break
    return x


@kernel
def exchange_root(ci, ce, k, vm, km, phi, dt):
    """New intracellular drug after one backward-Euler step of the cell-voxel exchange (uM).

    With ``T = C_e + phi C_i`` conserved (``phi > 0``; for ``phi <= 0`` the outside is held,
    ``T = C_e`` and ``phi = 0``), the new ``x = C_i'`` and ``C_e' = T - phi x`` solve

        g(x) = x - C_i - dt [k (C_e' - x) - vm x / (km + x)]
             = a x - b + dt vm x / (km + x) = 0,
        a = 1 + k dt (1 + phi),   b = C_i + k dt T,

    where ``vm = vmax P f_I`` (uM/min), ``k`` (1/min), ``km`` (uM), ``dt`` (min). ``g`` is
    strictly increasing with ``g(0) = -b <= 0`` and ``g(b/a) = dt vm (b/a)/(km + b/a) >= 0``,
    so the unique root lies in ``[0, b/a]`` (``b/a`` is the step without efflux). The root of the
    equivalent quadratic ``a x^2 + (a km - b + dt vm) x - b km = 0`` (cancellation-free form)
    starts :func:`solve_exchange` (Newton safeguarded by bisection, relative tolerance
    ``4 eps``). ``vm < 0`` counts as 0; ``km <= 0`` is a zero-order pump, whose root is
    ``max(0, (b - dt vm) / a)``.
    """
    p = phi if phi > 0.0 else 0.0
    kd = k * dt
    total = ce + p * ci
    a = 1.0 + kd * (1.0 + p)
    b = ci + kd * total
    hi = b / a
    if not hi > 0.0:
        return 0.0
    vd = vm * dt
    if vd <= 0.0:
        return hi
    if km <= 0.0:
        x0 = (b - vd) / a
        return x0 if x0 > 0.0 else 0.0
    bq = a * km - b + vd
    disc = math.sqrt(bq * bq + 4.0 * a * b * km)
    if bq > 0.0:
        x = 2.0 * b * km / (bq + disc)
    else:
        x = (disc - bq) / (2.0 * a)
    return solve_exchange(a, b, vd, km, x)


@kernel(parallel=True)
def cell_drug_exchange(
    n, kind, state, site, drug, pgp, c_out, inhibitor, k_mem, vmax, km, ic50, phi, dt
):
    """One backward-Euler step of drug exchange between live cancer cells and their voxels.

        dC_i/dt = k (C_e - C_i) - vmax P f_I C_i / (km + C_i)     (uM/min)
        dC_e/dt = -phi [k (C_e - C_i) - vmax P f_I C_i / (km + C_i)]

    solved exactly per cell by :func:`exchange_root`. The new ``C_i`` is stored as float32 in
    ``drug[i]`` and the voxel is charged with the stored value,
    ``c_out[s] -= phi (drug_new - drug_old)``, so ``sum(c_out) + phi sum(drug)`` is conserved;
    with ``phi <= 0`` the outside is held and ``c_out`` is not modified.

    Parameters
    ----------
    n : number of cell rows to visit (``0..n-1``).
    kind, state : (cap,) int arrays of kind and state codes; only TUMOR/STEM cells that are
        PROLIFERATING or QUIESCENT with ``k_mem[kind] > 0`` and ``site >= 0`` are stepped.
    site : (cap,) int array, flat voxel index of each cell (at most one stepped cell per voxel).
    drug : (cap,) float32 array, intracellular free drug ``C_i`` (uM), updated in place.
    pgp : (cap,) float32 array, P-gp level ``P`` (dimensionless, >= 0).
    c_out : (nvox,) float64 array, extracellular drug ``C_e`` (uM), updated in place.
    inhibitor : (nvox,) float64 array of the P-gp inhibitor ``I`` (uM), or length 1 for none.
    k_mem, vmax, km, ic50 : (N_KINDS,) float64 arrays indexed by kind: membrane rate (1/min),
        pump capacity (uM/min per unit P-gp), Michaelis constant (uM), inhibitor IC50 (uM;
        ``<= 0`` means not inhibitable).
    phi : V_cell / V_voxel (dimensionless).
    dt : step (min).
    """
    for i in prange(n):
        kd = kind[i]
        if kd != TUMOR and kd != STEM:
            continue
        st = state[i]
        if st != PROLIFERATING and st != QUIESCENT:
            continue
        kk = k_mem[kd]
        if not kk > 0.0:
            continue
        s = site[i]
        if s < 0:
            continue
        ci = np.float64(drug[i])
        vm = vmax[kd] * np.float64(pgp[i]) * inhibition_factor(inhibitor, s, ic50[kd])
        x = exchange_root(ci, c_out[s], kk, vm, km[kd], phi, dt)
        new = np.float32(x)
        drug[i] = new
        if phi > 0.0:
            c_out[s] -= phi * (np.float64(new) - ci)


@kernel
def steady_state_uptake(c_e, k, vmax_eff, km):
    """Steady intracellular drug under a held outside concentration (uM).

    Solves ``k (c_e - x) = vmax_eff x / (km + x)`` for ``x >= 0``, i.e. the positive root of

        k x^2 + (k km + vmax_eff - k c_e) x - k c_e km = 0,

    with ``c_e``, ``km`` (uM), ``k`` (1/min), ``vmax_eff = vmax P f_I`` (uM/min). Dividing by
    ``k`` and writing ``B = km + vmax_eff / k - c_e``, the root is ``2 c_e km / (B + sqrt(D))``
    for ``B > 0`` and ``(sqrt(D) - B) / 2`` otherwise, ``D = B^2 + 4 c_e km``. For
    ``c_e << km`` it tends to ``c_e / (1 + R)``, ``R = vmax_eff / (k km)``. Returns ``c_e`` when
    ``vmax_eff == 0``, and 0 when ``c_e <= 0`` or ``k <= 0`` (with ``vmax_eff > 0``).
    """
    if vmax_eff == 0.0:
        return c_e
    if c_e <= 0.0 or k <= 0.0:
        return 0.0
    bq = km + vmax_eff / k - c_e
    disc = math.sqrt(bq * bq + 4.0 * c_e * km)
    if bq > 0.0:
        return 2.0 * c_e * km / (bq + disc)
    return 0.5 * (disc - bq)


@kernel
def release_removed(n, state, site, drug, c_out, phi):
    """Give the drug of REMOVED cells back to their voxels (serial).

        c_out[site[i]] += phi drug[i];   drug[i] = 0     for i < n, state[i] == REMOVED

    ``drug`` (uM, float32) is per cell volume and ``c_out`` (uM, float64) per voxel volume, so
    ``phi = V_cell / V_voxel`` converts. Returns the total released, ``sum(phi drug)`` (uM times
    voxel volumes), as float64. Rows with a negative site are left untouched.
    """
    total = 0.0
    for i in range(n):
        if state[i] != REMOVED or drug[i] == 0.0:
            continue
        s = site[i]
        if s < 0:
            continue
        amount = phi * np.float64(drug[i])
        c_out[s] += amount
        total += amount
        drug[i] = 0.0
    return total


@kernel
def vessel_exchange(c, sites, rate, c_plasma, dt):
    """Exact relaxation of vessel voxels toward the plasma concentration (serial).

        dc/dt = rate (c_plasma - c)   =>   c' = c_plasma + (c - c_plasma) exp(-rate dt)

    for each listed voxel ``v = sites[j]`` with ``rate[j]`` (1/min), ``c`` and ``c_plasma`` (uM),
    ``dt`` (min). A voxel listed twice relaxes twice, in list order. Returns the net amount that
    entered the tissue, ``sum(c' - c)`` (uM times voxels; positive = into tissue), as float64.
    """
    net = 0.0
    for j in range(sites.shape[0]):
        v = sites[j]
        old = c[v]
        new = c_plasma + (old - c_plasma) * math.exp(-rate[j] * dt)
        c[v] = new
        net += new - old
    return net


@kernel
def decay_exact(c, lam, dt):
    """Exact first-order decay of a flat (1-D) float64 field (serial).

        dc/dt = -lam c   =>   c' = c exp(-lam dt)

    with ``lam`` (1/min), ``dt`` (min). Returns the total removed, ``sum(c - c')`` (field units
    times voxels), as float64.
    """
    f = math.exp(-lam * dt)
    removed = 0.0
    for v in range(c.shape[0]):
        old = c[v]
        new = old * f
        c[v] = new
        removed += old - new
    return removed


@kernel(parallel=True)
def pgp_dynamics(n, kind, state, pgp, pgp_base, drug, payload, turnover, induction_max,
                 induction_ec50, knockdown_max, knockdown_half, dt):
    """P-gp level of live cancer cells relaxing toward a target set by drug exposure and
    internalised siRNA (rates in 1/min, concentrations in uM):

        dP/dt = turnover (T - P),
        T = P_base (1 + induction_max C_i / (induction_ec50 + C_i))
                   (1 - knockdown_max S / (knockdown_half + S)),

    with ``C_i = drug[i]`` and ``S = payload[i]`` (internalised siRNA-carrying particles, drug-
    equivalent). ``T`` is held over the step and the relaxation is exact. ``turnover``,
    ``induction_max``, ``induction_ec50`` are per kind; kinds with ``turnover <= 0`` are
    skipped. ``knockdown_max = 0`` switches knockdown off.
    """
    for i in prange(n):
        k = kind[i]
        rate = turnover[k]
        if rate <= 0.0 or (state[i] != PROLIFERATING and state[i] != QUIESCENT):
            continue
        target = np.float64(pgp_base[i])
        c = np.float64(drug[i])
        if induction_max[k] > 0.0 and c > 0.0:
            target *= 1.0 + induction_max[k] * c / (induction_ec50[k] + c)
        s = np.float64(payload[i])
        if knockdown_max > 0.0 and s > 0.0:
            target *= 1.0 - knockdown_max * s / (knockdown_half + s)
        p = np.float64(pgp[i])
        pgp[i] = np.float32(target + (p - target) * math.exp(-rate * dt))
