"""Obviously-correct pure-Python twins of tmesim/kernels/pharmacology.py.

Plain loops over Python floats, written for clarity, not speed. Twins change their arguments in
place like the kernels do.
"""

from __future__ import annotations

import math

import numpy as np

from tmesim.kernels.codes import PROLIFERATING, QUIESCENT, REMOVED, STEM, TUMOR


def inhibition_factor(inhibitor, s, ic50):
    """f_I = ic50 / (I + ic50); 1 without an inhibitor field (length 1) or with ic50 <= 0."""
    if len(inhibitor) == 1 or ic50 <= 0.0:
        return 1.0
    conc = max(float(inhibitor[s]), 0.0)
    return ic50 / (conc + ic50)


def bound_at_equilibrium(total, bmax, kd, iterations=200):
    """Twin: B in [0, min(total, bmax)] with B (kd + total - B) == bmax (total - B), by
    bisection (the left side minus the right rises with B)."""
    if bmax <= 0.0 or total <= 0.0:
        return 0.0
    lo, hi = 0.0, min(float(total), float(bmax))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if mid * (kd + total - mid) - bmax * (total - mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _free_and_capacity(total, bmax, kd):
    """Free drug at binding equilibrium and dT/dC = 1 + bmax kd / (kd + C)^2 there."""
    if bmax <= 0.0:
        return float(total), 1.0
    c = float(total) - bound_at_equilibrium(total, bmax, kd)
    return c, 1.0 + bmax * kd / (kd + c) ** 2


def retention_rates(par, kd, retained, dt):
    """Twin: backward-Euler rates (a', r') of the slow pool dS/dt = a C - r S with
    a = R_IN (1 - S / R_MAX) at the current S: S' = (S + dt a C') / (1 + dt r)."""
    if len(par) < 9 or not par[8][kd] > 0.0:
        return 0.0, 0.0
    a = float(par[6][kd]) * max(1.0 - float(retained) / float(par[8][kd]), 0.0)
    r = float(par[7][kd])
    return a / (1.0 + dt * r), r / (1.0 + dt * r)


def membrane_terms(n, kind, state, site, pools, pgp, inhibitor, membrane, dt, sink, source):
    """Twin: each live cancer cell's backward-Euler equation, with the efflux taken at the slope
    vm / (km + C) of the current free drug C, the bound pool linearised about its equilibrium
    (beta (C' - C) = change of the fast pools) and the slow pool's exchange a' C' - r' S, solved
    for C' = (beta C + dt r' S + dt k C_e') / d; the voxel loses phi dt (k (C_e' - C') - slope C'),
    written as a sink and a source. ``pools``: (drug, bound, retained); ``membrane``: (par, phi,
    den)."""
    drug, bound, retained = pools
    par, phi, den = membrane
    p = max(float(phi), 0.0)
    k_mem, vmax, km, ic50, bmax, kdb = par[:6]
    for i in range(n):
        den[i] = 0.0
        kd = int(kind[i])
        if kd not in (TUMOR, STEM) or int(state[i]) not in (PROLIFERATING, QUIESCENT):
            continue
        k = float(k_mem[kd])
        s = int(site[i])
        if not k > 0.0 or s < 0:
            continue
        if bmax[kd] > 0.0:
            ci, beta = _free_and_capacity(float(drug[i]) + float(bound[i]), bmax[kd], kdb[kd])
        else:
            ci, beta = float(drug[i]), 1.0
        a_in, r_out = retention_rates(par, kd, retained[i], dt)
        vm = max(float(vmax[kd]) * float(pgp[i]) * inhibition_factor(inhibitor, s, ic50[kd]), 0.0)
        if vm == 0.0:
            slope = 0.0
        elif km[kd] > 0.0:
            slope = vm / (float(km[kd]) + ci)
        else:
            slope = vm / ci if ci > 0.0 else 0.0
        d = beta + dt * (k + slope + a_in)
        den[i] = d
        x = beta * ci + dt * r_out * float(retained[i])
        # C' = (x + dt k C_e') / d; the voxel's rate -phi (k C_e' - (k + slope) C')
        sink[s] += p * k * (1.0 - dt * (k + slope) / d)
        source[s] += p * (k + slope) * x / d


def membrane_update(n, kind, site, pools, c_out, membrane, dt):
    drug, bound, retained = pools
    par, phi, den = membrane
    k_mem, bmax, kdb = par[0], par[4], par[5]
    moved = 0.0
    for i in range(n):
        if not den[i] > 0.0:
            continue
        kd = int(kind[i])
        k = float(k_mem[kd])
        ce = float(c_out[int(site[i])])
        a_in, r_out = retention_rates(par, kd, retained[i], dt)
        s_old = float(retained[i])
        if bmax[kd] > 0.0:
            old = float(drug[i]) + float(bound[i])
            ci, beta = _free_and_capacity(old, bmax[kd], kdb[kd])
        else:
            old = float(drug[i])
            ci, beta = old, 1.0
        c_new = (beta * ci + dt * r_out * s_old + dt * k * ce) / float(den[i])
        if a_in > 0.0 or r_out > 0.0:
            retained[i] = np.float32(s_old + dt * (a_in * c_new - r_out * s_old))
            moved += float(retained[i]) - s_old
        if bmax[kd] > 0.0:
            total = max(old + beta * (c_new - ci), 0.0)
            bound[i] = np.float32(bound_at_equilibrium(total, bmax[kd], kdb[kd]))
            drug[i] = np.float32(total - float(bound[i]))
            moved += float(drug[i]) + float(bound[i]) - old
        else:
            drug[i] = np.float32(c_new)
            moved += float(drug[i]) - old
    return max(float(phi), 0.0) * moved


def damage_step(n, kind, state, bound, retained, damage, repair, dt):
    """Twin: dD/dt = B + S - lam D over dt with B + S held, solved exactly."""
    for i in range(n):
        if int(kind[i]) not in (TUMOR, STEM) or int(state[i]) not in (PROLIFERATING, QUIESCENT):
            continue
        lam = float(repair[int(kind[i])])
        b, d0 = float(bound[i]) + float(retained[i]), float(damage[i])
        if lam > 0.0:
            damage[i] = np.float32(b / lam + (d0 - b / lam) * math.exp(-lam * dt))
        else:
            damage[i] = np.float32(d0 + b * dt)


def steady_state_uptake(c_e, k, vmax_eff, km, iterations=200):
    """x >= 0 with k*(c_e - x) == vmax_eff*x/(km + x), by bisection on [0, c_e]."""
    if vmax_eff == 0.0:
        return float(c_e)
    if c_e <= 0.0 or k <= 0.0:
        return 0.0
    lo, hi = 0.0, float(c_e)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if k * (c_e - mid) - vmax_eff * mid / (km + mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def release_removed(n, state, site, drug, c_out, phi):
    total = 0.0
    for i in range(n):
        if int(state[i]) != REMOVED or float(drug[i]) == 0.0 or int(site[i]) < 0:
            continue
        amount = phi * float(drug[i])
        c_out[int(site[i])] += amount
        total += amount
        drug[i] = 0.0
    return total


def vessel_flux(c, sites, rate, c_plasma, dt):
    return dt * sum(float(r) * (c_plasma - float(c[int(v)])) for v, r in zip(sites, rate,
                                                                               strict=True))


def pgp_dynamics(n, kind, state, pgp, pgp_base, drug, payloads, regulation, dt):
    """Twin of kernels.pharmacology.pgp_dynamics: one cell at a time, plain floats."""
    turnover, induction_max, induction_ec50, knockdown_max, knockdown_half = regulation
    for i in range(n):
        k = int(kind[i])
        if turnover[k] <= 0 or int(state[i]) not in (PROLIFERATING, QUIESCENT):
            continue
        base = float(pgp_base[i])
        c = float(drug[i])
        induction = induction_max[k] * c / (induction_ec50[k] + c) if c > 0 else 0.0
        target = base * (1 + induction)
        for j in range(len(payloads)):  # several siRNAs: remaining fractions multiply
            s = float(payloads[j][i])
            if s > 0 and knockdown_max[j] > 0:
                target *= 1 - knockdown_max[j] * s / (knockdown_half[j] + s)
        pgp[i] = np.float32(target + (float(pgp[i]) - target) * math.exp(-turnover[k] * dt))
