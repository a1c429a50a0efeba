"""Obviously-correct pure-Python twins of tmesim/kernels/pharmacology.py.

Plain loops over Python floats, written for clarity, not speed. The backward-Euler exchange step
is solved here by plain bisection on the residual written exactly as the model states it (the
kernel uses Newton from a quadratic guess), so the twin is an independent check of the root.
Twins change their arguments in place like the kernels do.
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


def exchange_root(ci, ce, k, vm, km, phi, dt, iterations=200):
    """Root of g(x) = x - ci - dt*(k*(ce_new(x) - x) - vm*x/(km + x)) by bisection.

    ce_new(x) = (ce + phi*ci) - phi*x for phi > 0, else ce (held).
    """
    ci, ce, k, vm, km, phi, dt = map(float, (ci, ce, k, vm, km, phi, dt))
    held = not phi > 0.0
    total = ce if held else ce + phi * ci
    vm = max(vm, 0.0)

    def ce_new(x):
        return ce if held else total - phi * x

    def efflux(x):
        if vm == 0.0:
            return 0.0
        if km <= 0.0:  # zero-order pump: full rate for any x > 0
            return vm if x > 0.0 else 0.0
        return vm * x / (km + x)

    def g(x):
        return x - ci - dt * (k * (ce_new(x) - x) - efflux(x))

    # upper end: ci + everything outside could ever hold
    hi = ci + (ce if held else total / phi) + dt * k * (abs(ce) + abs(total)) + 1.0
    lo = 0.0
    if g(lo) >= 0.0:
        return 0.0
    assert g(hi) > 0.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if g(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def cell_drug_exchange(
    n, kind, state, site, drug, pgp, c_out, inhibitor, k_mem, vmax, km, ic50, phi, dt
):
    """Twin of the kernel: live cancer cells, one bisection-solved implicit step each."""
    for i in range(n):
        kd = int(kind[i])
        if kd not in (TUMOR, STEM):
            continue
        if int(state[i]) not in (PROLIFERATING, QUIESCENT):
            continue
        k = float(k_mem[kd])
        if not k > 0.0:
            continue
        s = int(site[i])
        if s < 0:
            continue
        old = float(drug[i])
        vm = float(vmax[kd]) * float(pgp[i]) * inhibition_factor(inhibitor, s, float(ic50[kd]))
        x = exchange_root(old, c_out[s], k, vm, km[kd], phi, dt)
        drug[i] = np.float32(x)
        if phi > 0.0:
            c_out[s] = float(c_out[s]) - phi * (float(drug[i]) - old)


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


def vessel_exchange(c, sites, rate, c_plasma, dt):
    net = 0.0
    for j in range(len(sites)):
        v = int(sites[j])
        old = float(c[v])
        c[v] = c_plasma + (old - c_plasma) * math.exp(-float(rate[j]) * dt)
        net += float(c[v]) - old
    return net


def decay_exact(c, lam, dt):
    removed = 0.0
    for v in range(len(c)):
        old = float(c[v])
        c[v] = old * math.exp(-lam * dt)
        removed += old - float(c[v])
    return removed


def pgp_dynamics(n, kind, state, pgp, pgp_base, drug, payload, turnover, induction_max,
                 induction_ec50, knockdown_max, knockdown_half, dt):
    """Twin of kernels.pharmacology.pgp_dynamics: one cell at a time, plain floats."""
    for i in range(n):
        k = int(kind[i])
        if turnover[k] <= 0 or int(state[i]) not in (PROLIFERATING, QUIESCENT):
            continue
        base = float(pgp_base[i])
        c = float(drug[i])
        s = float(payload[i])
        induction = induction_max[k] * c / (induction_ec50[k] + c) if c > 0 else 0.0
        knockdown = knockdown_max * s / (knockdown_half + s) if s > 0 and knockdown_max > 0 else 0.0
        target = base * (1 + induction) * (1 - knockdown)
        pgp[i] = np.float32(target + (float(pgp[i]) - target) * math.exp(-turnover[k] * dt))
