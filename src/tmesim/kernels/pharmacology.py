"""Drug pharmacology on the lattice: cell uptake and P-gp efflux, release, vessel exchange.

Units: concentrations in uM, time in min, rates in 1/min.

A live cancer cell ``i`` (a cancer kind of ``codes.CANCER_CODES``, PROLIFERATING or QUIESCENT)
sits alone in voxel ``s = site[i]``. Its intracellular free drug ``C_i`` exchanges with the voxel's extracellular
concentration ``C_e`` (per whole-voxel volume); the cell fills the fraction ``phi = V_cell /
V_voxel`` of the voxel:

    dC_i/dt = k (C_e - C_i) - E(C_i),          E(x) = vmax P f_I x / (km + x)
    dC_e/dt = -phi [k (C_e - C_i) - E(C_i)]    (so C_e + phi C_i is conserved)
    f_I     = ic50 / (I + ic50)                (non-competitive P-gp inhibition)

with the membrane rate ``k`` (1/min), the pump capacity ``vmax`` (uM/min per unit P-gp level),
the Michaelis constant ``km`` (uM), the inhibitor's ``ic50`` (uM), the cell's P-gp level ``P``
and the local inhibitor concentration ``I`` (uM).

The exchange is stiff (``k dt`` ~ 2-10), so it is not stepped on its own: it is a term of the
drug field's transport step (docs/pharmacology.md, "Drug transport as one implicit step").
:func:`membrane_terms` eliminates the backward-Euler cell equation, with the efflux linearised
about the current ``C_i`` (``E(C_i') ~ vm C_i' / (km + C_i)``),

    C_i' = (C_i + dt k C_e') / d,     d = 1 + dt k + dt vm / (km + C_i),

into the voxel's equation as a first-order sink ``phi k / d`` (1/min) and a source
``phi C_i (d - 1) / (d dt)`` (uM/min); after the field's solve, :func:`membrane_update` sets
``C_i'`` from the solved ``C_e'``. Both terms are non-negative, so the field's system stays an
M-matrix (positive solutions), and the fixed point is the exact steady state
(:func:`steady_state_uptake`). Capillary exchange enters the same step as a sink ``rate`` and a
source ``rate C_p`` (:func:`vessel_flux` measures what it moved).

Every parallel loop writes only its own cell's row and voxel (at most one cell per voxel), and
every sum is taken in a serial loop, so results do not depend on the number of threads.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from ._jit import kernel
from .codes import PROLIFERATING, QUIESCENT, REMOVED
from .neighbourhood import is_cancer


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


#: rows of the per-kind parameter table of :func:`membrane_terms`: membrane rate (1/min), pump
#: capacity (uM/min per unit P-gp), Michaelis constant (uM), inhibitor IC50 (uM; <= 0: not
#: inhibitable), binding capacity (uM of cell volume; 0: no bound pool), binding Kd (uM), the
#: slow pool's filling rate per unit free drug while empty (1/min), its release rate (1/min)
#: and its capacity (uM of cell volume; 0: no slow pool)
K_MEM, VMAX, KM, IC50, BMAX, KD, R_IN, R_OUT, R_MAX = 0, 1, 2, 3, 4, 5, 6, 7, 8


class DrugPools(NamedTuple):
    """One drug's pools in the cells (uM of cell volume, float32, one entry per row): the free
    intracellular ``drug``, the ``bound`` (DNA-bound) drug and the slow ``retained`` pool; the
    agent's copies of the cell columns of those names."""

    drug: object
    bound: object
    retained: object


class Membrane(NamedTuple):
    """One drug's exchange across the cell membrane as :func:`membrane_terms` and
    :func:`membrane_update` share it: ``par`` the per-kind table (rows :data:`K_MEM` ...
    :data:`R_MAX`), ``phi = V_cell / V_voxel`` and ``den`` (float64, one entry per row) the
    denominators that :func:`membrane_terms` leaves for :func:`membrane_update`."""

    par: object
    phi: float
    den: object


class PgpRegulation(NamedTuple):
    """The rates of :func:`pgp_dynamics`: per kind the ``turnover`` (1/min; <= 0: no dynamics),
    ``induction_max`` (dimensionless) and ``induction_ec50`` (uM); and the knockdown by carried
    siRNA, per siRNA-carrying formulation (one entry each, in the rows of :func:`pgp_dynamics`'s
    ``payloads``): ``knockdown_max`` (dimensionless; 0: none) and ``knockdown_half`` (uM)."""

    turnover: object
    induction_max: object
    induction_ec50: object
    knockdown_max: object
    knockdown_half: object


@kernel
def retention_rates(par, kd, retained, dt):
    """The slow pool's backward-Euler rates of one cell over ``dt`` (min), ``(a', r')``:

        dS/dt = a C - r S,    a = R_IN (1 - S / R_MAX),    r = R_OUT          (S, C in uM)
        S' = (S + dt a C') / (1 + dt r)   =>   S' - S = dt (a' C' - r' S),
        a' = a / (1 + dt r),  r' = r / (1 + dt r)                               (1/min)

    with the filling rate ``a`` taken at the current ``S`` (saturable sites, the capacity
    lagged one step). ``(0, 0)`` when the table has no slow-pool rows or ``R_MAX <= 0``.
    """
    if par.shape[0] <= R_MAX or not par[R_MAX, kd] > 0.0:
        return 0.0, 0.0
    room = 1.0 - np.float64(retained) / par[R_MAX, kd]
    if room < 0.0:
        room = 0.0
    g = 1.0 / (1.0 + dt * par[R_OUT, kd])
    return par[R_IN, kd] * room * g, par[R_OUT, kd] * g


@kernel
def bound_at_equilibrium(total, bmax, kd):
    """Bound drug (uM) of a cell holding ``total = C + B`` (uM) at binding equilibrium.

    Saturable binding ``B = bmax C / (kd + C)`` with ``C = total - B`` gives

        B^2 - (total + bmax + kd) B + total bmax = 0,

    whose smaller root ``B = 2 total bmax / (S + sqrt(S^2 - 4 total bmax))``, ``S = total + bmax +
    kd``, lies in ``[0, min(total, bmax)]`` (the form without cancellation). 0 when ``bmax <= 0``
    or ``total <= 0``.
    """
    if bmax <= 0.0 or total <= 0.0:
        return 0.0
    sq = total + bmax + kd
    disc = sq * sq - 4.0 * total * bmax
    if disc < 0.0:
        disc = 0.0
    b = 2.0 * total * bmax / (sq + math.sqrt(disc))
    return b if b < total else total


@kernel
def _free_and_capacity(total, bmax, kd):
    """Free drug at binding equilibrium for ``total`` and the pool's capacity factor
    ``beta = dT/dC = 1 + bmax kd / (kd + C)^2`` there (1 without binding)."""
    if bmax <= 0.0:
        return total, 1.0
    c = total - bound_at_equilibrium(total, bmax, kd)
    return c, 1.0 + bmax * kd / ((kd + c) * (kd + c))


@kernel
def membrane_terms(n, kind, state, site, pools, pgp, inhibitor, membrane, dt, sink, source):
    """Add the drug exchange of live cancer cells with their voxels to a transport step (serial).

    ``pools`` (:class:`DrugPools`) holds ``drug``, ``bound`` and ``retained``; ``membrane``
    (:class:`Membrane`) holds ``par``, ``phi`` and ``den``. ``par`` ``(6 or 9, N_KINDS)``: the
    rows :data:`K_MEM` ... :data:`R_MAX` by kind. For each
    live cancer cell ``i`` (a cancer kind, PROLIFERATING or QUIESCENT, ``site >= 0``,
    ``k = par[K_MEM, kind] > 0``) in voxel ``s``, holding ``T = drug[i] + bound[i]`` (uM) in its
    fast pools and ``S = retained[i]`` (uM) in its slow pool, with ``C`` its free drug at binding
    equilibrium and ``beta = 1 + bmax kd / (kd + C)^2`` (:func:`_free_and_capacity`;
    ``C = drug[i]``, ``beta = 1`` without binding) and ``a', r'`` the slow pool's rates
    (:func:`retention_rates`; 0 without it)::

        vm = vmax * pgp[i] * f_I                      (uM/min)
        slope = vm / (km + C)                         (1/min; ``km <= 0``: vm / C)
        d  = beta + dt (k + slope + a')               (dimensionless)
        X  = beta C + dt r' S                         (uM)
        sink[s]   += phi k (beta + dt a') / d         (1/min)
        source[s] += phi (k + slope) X / d            (uM/min)

    and ``den[i] = d``; every other row gets ``den[i] = 0`` (not exchanged). This is the
    backward-Euler step ``beta (C' - C) = dt [k (C_e' - C') - slope C' - (a' C' - r' S)]`` of the
    fast pools, bound drug linearised about its equilibrium, solved for ``C' = (X + dt k C_e') /
    d`` and eliminated into the voxel, whose change is ``-phi dt [k (C_e' - C') - slope C']``.
    ``dt`` (min) is the transport step, ``phi = V_cell / V_voxel``; ``phi <= 0`` adds nothing to
    the voxel (the outside is held) but still sets ``den``. At most one exchanging cell per voxel.
    """
    drug, bound, retained = pools  # a serial kernel: unpacking keeps the writes
    par, phi, den = membrane
    p = phi if phi > 0.0 else 0.0
    for i in range(n):
        den[i] = 0.0
        kd = kind[i]
        if not is_cancer(kd):
            continue
        st = state[i]
        if st != PROLIFERATING and st != QUIESCENT:
            continue
        kk = par[K_MEM, kd]
        if not kk > 0.0:
            continue
        s = site[i]
        if s < 0:
            continue
        ci = np.float64(drug[i])
        beta = 1.0
        if par[BMAX, kd] > 0.0:
            ci, beta = _free_and_capacity(ci + np.float64(bound[i]), par[BMAX, kd], par[KD, kd])
        a_in, r_out = retention_rates(par, kd, retained[i], dt)
        vm = par[VMAX, kd] * np.float64(pgp[i]) * inhibition_factor(inhibitor, s, par[IC50, kd])
        if vm < 0.0:
            vm = 0.0
        slope = 0.0
        if vm > 0.0:
            if par[KM, kd] > 0.0:
                slope = vm / (par[KM, kd] + ci)
            elif ci > 0.0:
                slope = vm / ci  # a zero-order pump: the full rate, as long as there is drug
        d = beta + dt * (kk + slope + a_in)
        den[i] = d
        x = beta * ci + dt * r_out * np.float64(retained[i])
        sink[s] += p * kk * (beta + dt * a_in) / d
        source[s] += p * (kk + slope) * x / d


@kernel
def membrane_update(n, kind, site, pools, c_out, membrane, dt):
    """Intracellular drug after the transport step that :func:`membrane_terms` set up (serial),
    with the same ``pools`` (:class:`DrugPools`) and ``membrane`` (:class:`Membrane`).

    For every row with ``den[i] > 0``: the free drug ``C' = (beta C + dt r' S + dt k
    c_out[site[i]]) / den[i]`` (``C``, ``beta``, ``a'``, ``r'`` as in :func:`membrane_terms`),
    the slow pool ``S' = S + dt (a' C' - r' S)`` and the fast pools' total ``T' = T + beta (C' -
    C)`` (never negative: ``T - beta C >= 0`` at equilibrium), split exactly into free and bound
    at binding equilibrium (:func:`bound_at_equilibrium`); all stored as float32. Without binding
    (``par[BMAX] <= 0``) ``drug = C'`` and ``bound`` is untouched; without a slow pool
    ``retained`` is untouched. ``c_out`` is the solved extracellular drug (uM). Returns ``phi *
    sum(new - old)`` of the stored totals of all three pools (uM per voxel volume; what entered
    cells).
    """
    drug, bound, retained = pools  # a serial kernel: unpacking keeps the writes
    par, phi, den = membrane
    moved = 0.0
    for i in range(n):
        d = den[i]
        if not d > 0.0:
            continue
        kd = kind[i]
        k = par[K_MEM, kd]
        bmax = par[BMAX, kd]
        a_in, r_out = retention_rates(par, kd, retained[i], dt)
        s_old = np.float64(retained[i])
        ci = np.float64(drug[i])
        old = ci
        beta = 1.0
        if bmax > 0.0:
            old = ci + np.float64(bound[i])
            ci, beta = _free_and_capacity(old, bmax, par[KD, kd])
        c_new = (beta * ci + dt * r_out * s_old + dt * k * c_out[site[i]]) / d
        if a_in > 0.0 or r_out > 0.0:
            s32 = np.float32(s_old + dt * (a_in * c_new - r_out * s_old))
            retained[i] = s32
            moved += np.float64(s32) - s_old
        if bmax > 0.0:
            total = old + beta * (c_new - ci)
            if total < 0.0:
                total = 0.0
            b32 = np.float32(bound_at_equilibrium(total, bmax, par[KD, kd]))
            c32 = np.float32(total - np.float64(b32))
            bound[i] = b32
            drug[i] = c32
            moved += (np.float64(c32) + np.float64(b32)) - old
        else:
            new = np.float32(c_new)
            drug[i] = new
            moved += np.float64(new) - old
    return (phi if phi > 0.0 else 0.0) * moved


@kernel(parallel=True)
def damage_step(n, kind, state, bound, retained, damage, repair, dt):
    """Damage of live cancer cells after ``dt`` (h), exact for the DNA-bound drug held over the
    step:

        dD/dt = B - lam D,    D' = D e^{-lam dt} + B (1 - e^{-lam dt}) / lam   (D' = D + B dt
                                                                               for lam = 0)

    with ``D = damage[i]`` (uM h, float32), ``B = bound[i] + retained[i]`` (uM; the fast and
    the slow pool) and ``lam = repair[kind]`` (1/h). Rows that are not live cancer cells are
    left untouched.
    """
    for i in prange(n):
        k = kind[i]
        if not is_cancer(k):
            continue
        if state[i] != PROLIFERATING and state[i] != QUIESCENT:
            continue
        b = np.float64(bound[i]) + np.float64(retained[i])
        d0 = np.float64(damage[i])
        lam = repair[k]
        if lam > 0.0:
            keep = math.exp(-lam * dt)
            damage[i] = np.float32(d0 * keep + b * (1.0 - keep) / lam)
        else:
            damage[i] = np.float32(d0 + b * dt)


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
def vessel_flux(c, sites, rate, c_plasma, dt):
    """What a transport step moved from plasma into vessel voxels (serial).

    ``dt * sum(rate[j] * (c_plasma - c[sites[j]]))`` (uM times voxels; positive = into tissue)
    for the solved concentrations ``c`` (uM), rates ``rate`` (1/min), plasma ``c_plasma`` (uM) and
    step ``dt`` (min): the backward-Euler flux of the exchange term ``rate (c_plasma - c)``.
    """
    total = 0.0
    for j in range(sites.shape[0]):
        total += rate[j] * (c_plasma - c[sites[j]])
    return dt * total


@kernel(parallel=True)
def pgp_dynamics(n, kind, state, pgp, pgp_base, drug, payloads, regulation, dt):
    """P-gp level of live cancer cells relaxing toward a target set by drug exposure and
    internalised siRNA (rates in 1/min, concentrations in uM):

        dP/dt = turnover (T - P),
        T = P_base (1 + induction_max C_i / (induction_ec50 + C_i))
                   prod_j (1 - knockdown_max_j S_j / (knockdown_half_j + S_j)),

    with ``C_i = drug[i]`` and ``S_j = payloads[j, i]`` (the internalised particles of the
    ``j``-th siRNA-carrying formulation, drug-equivalent; ``payloads`` is ``(m, n)``): several
    siRNAs knock P-gp down independently (Bliss), their remaining fractions multiply. ``T`` is
    held over the step and the relaxation is exact. The rates are the fields of ``regulation``
    (:class:`PgpRegulation`): ``turnover``, ``induction_max``, ``induction_ec50`` per kind
    (kinds with ``turnover <= 0`` are skipped); ``knockdown_max[j] = 0`` switches formulation
    ``j``'s knockdown off.
    """
    # read-only, taken out of the tuple before the parallel loop
    turnover = regulation.turnover
    induction_max = regulation.induction_max
    induction_ec50 = regulation.induction_ec50
    knockdown_max = regulation.knockdown_max
    knockdown_half = regulation.knockdown_half
    for i in prange(n):
        k = kind[i]
        rate = turnover[k]
        if rate <= 0.0 or (state[i] != PROLIFERATING and state[i] != QUIESCENT):
            continue
        target = np.float64(pgp_base[i])
        c = np.float64(drug[i])
        if induction_max[k] > 0.0 and c > 0.0:
            target *= 1.0 + induction_max[k] * c / (induction_ec50[k] + c)
        for j in range(payloads.shape[0]):
            s = np.float64(payloads[j, i])
            if knockdown_max[j] > 0.0 and s > 0.0:
                target *= 1.0 - knockdown_max[j] * s / (knockdown_half[j] + s)
        p = np.float64(pgp[i])
        pgp[i] = np.float32(target + (p - target) * math.exp(-rate * dt))
