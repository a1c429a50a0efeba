"""Transvascular flux of dosed agents and particles: diffusion and convection across the
capillary wall (docs/pharmacology.md §3.1).

Per unit tissue volume, the Patlak (Kedem-Katchalsky) solute flux from plasma ``C_p`` into a
perfused voxel at concentration ``C`` is

    J = c C_p + k (C_p - C) B(Pe),     Pe = c / k,     B(x) = x / (e^x - 1),

with ``k = P S/V`` the diffusive rate (1/min), ``c = q (1 - sigma)`` the convective rate
(1/min), ``q = L_p S/V [p_v - p_i - sigma_T (pi_v - pi_i)]`` the fluid filtration per unit
tissue volume and ``sigma`` the solvent-drag reflection coefficient. Because
``B(-x) = x + B(x)``, the flux is linear in ``C``:

    J = gain C_p - loss C,     loss = k B(Pe),     gain = k B(-Pe) = loss + c,

so it enters the agent's implicit transport step as the sink ``loss`` and the source
``gain C_p``; at ``Pe -> 0`` it is ``k (C_p - C)``, at large ``Pe`` back-diffusion
(``loss``) vanishes and entry is ``c C_p``. Negative ``q`` (absorption) is the same formula.
"""

from __future__ import annotations

import numpy as np

#: hydrodynamic radius of a globular solute, ``A M^B`` nm for molar mass M in g/mol
#: (Venturoli & Rippe 2005)
RADIUS_PREFACTOR_NM = 0.0483
RADIUS_EXPONENT = 0.386


def bernoulli(x) -> np.ndarray:
    """``B(x) = x / (e^x - 1)``, with ``B(0) = 1``, finite for every real ``x`` (0 above
    ``x = 700``, where ``x e^-x`` is below 1e-300; ``-x`` for large negative ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) < 1e-6
    big = x > 700.0
    safe = np.where(small | big, 1.0, x)
    with np.errstate(over="ignore"):
        out = safe / np.expm1(safe)
    out = np.where(small, 1.0 - 0.5 * x, out)
    return np.where(big, 0.0, out)


def patlak_coefficients(k, c) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, gain)`` per voxel (1/min) of the flux ``gain C_p - loss C`` for diffusive rates
    ``k`` and convective rates ``c`` (arrays, 1/min). Where ``k`` is 0 the flux is pure
    convection, upwind: ``gain = max(c, 0)``, ``loss = max(-c, 0)``."""
    k = np.asarray(k, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    pos = k > 0
    pe = np.where(pos, c / np.where(pos, k, 1.0), 0.0)
    loss = np.where(pos, k * bernoulli(pe), np.maximum(-c, 0.0))
    gain = loss + c
    return loss, gain


def renkin_crone(k, unbound: float, plasma_flow) -> np.ndarray:
    """Flow-limited exchange rate (1/min) of a wall rate ``k = P S/V`` (1/min) fed by the plasma
    flow ``plasma_flow`` per unit volume (1/min) of an agent whose unbound plasma share is
    ``unbound``: ``k (1 - e^-x) / x`` with ``x = unbound k / plasma_flow`` (Renkin 1959; Crone
    1963). Plasma loses unbound drug along the capillary, so the rate, written on the unbound
    arterial concentration, tends to ``k`` when flow is ample (``x -> 0``) and to
    ``plasma_flow / unbound`` (all the drug the plasma brings) when it is not; 0 without flow.
    """
    k = np.asarray(k, dtype=np.float64)
    f = np.broadcast_to(np.asarray(plasma_flow, dtype=np.float64), k.shape)
    out = np.zeros_like(k)
    ok = (k > 0) & (f > 0)
    x = unbound * k[ok] / f[ok]
    small = x < 1e-8
    # (1 - e^-x) / x = -expm1(-x) / x, and 1 - x/2 below round-off
    g = np.where(small, 1.0 - 0.5 * x, -np.expm1(-x) / np.where(small, 1.0, x))
    out[ok] = k[ok] * g
    return out


def hydrodynamic_radius_nm(molar_mass_g_per_mol: float) -> float:
    """Stokes-Einstein radius (nm) of a globular solute of the given molar mass."""
    return RADIUS_PREFACTOR_NM * molar_mass_g_per_mol**RADIUS_EXPONENT


def pore_reflection(radius_nm: float, pore_radius_nm: float) -> float:
    """Solvent-drag reflection coefficient of a sphere of ``radius_nm`` in cylindrical pores of
    ``pore_radius_nm``: ``sigma = (1 - Phi)^2`` with the partition coefficient
    ``Phi = (1 - r / r_p)^2`` (1 when the sphere does not fit)."""
    lam = radius_nm / pore_radius_nm
    if lam >= 1.0:
        return 1.0
    phi = (1.0 - lam) ** 2
    return (1.0 - phi) ** 2


def filtration_per_min(vessels, surface_per_volume: float) -> tuple[float, float]:
    """Fluid filtration per unit tissue volume ``q = L_p S/V [p_v - p_i - sigma_T (pi_v -
    pi_i)]`` (1/min) at tumour and at normal vessels, from the ``vessels`` section of the
    scenario; ``(0, 0)`` without convection."""
    if not vessels.convection:
        return 0.0, 0.0
    v = vessels

    def starling(lp, p_i, sigma_t, pi_i):
        return lp * (v.vascular_pressure_mmHg - p_i - sigma_t * (v.plasma_oncotic_mmHg - pi_i))

    tumour = starling(v.tumor_hydraulic_conductivity_um_per_min_mmHg,
                      v.tumor_interstitial_pressure_mmHg, v.tumor_protein_reflection,
                      v.tumor_interstitial_oncotic_mmHg)
    normal = starling(v.normal_hydraulic_conductivity_um_per_min_mmHg,
                      v.normal_interstitial_pressure_mmHg, v.normal_protein_reflection,
                      v.normal_interstitial_oncotic_mmHg)
    return tumour * surface_per_volume, normal * surface_per_volume


def reflection_of(scenario, name: str) -> tuple[float, float]:
    """Reflection coefficients ``(tumour, normal)`` of dosed agent or formulation ``name``: its
    explicit ``reflection_coefficient`` at both, else pore theory with its radius (half the
    particle diameter, or from the agent's molar mass) and each vessel type's pore radius."""
    if name in scenario.nanoparticles:
        cfg = scenario.nanoparticles[name]
        radius = 0.5 * cfg.size_nm
    else:
        cfg = scenario.agents[name]
        radius = hydrodynamic_radius_nm(cfg.molar_mass_g_per_mol)
    if cfg.reflection_coefficient is not None:
        return cfg.reflection_coefficient, cfg.reflection_coefficient
    tumour_pore = 0.5 * scenario.nanoparticle_transport.pore_cutoff_nm
    return (
        pore_reflection(radius, tumour_pore),
        pore_reflection(radius, scenario.vessels.normal_pore_radius_nm),
    )

