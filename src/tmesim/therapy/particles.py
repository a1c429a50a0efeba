"""Size physics of nanoparticle formulations (docs/pharmacology.md §13): circulation half-life
(clearance by the kidneys or by the mononuclear phagocyte system of the host species),
interstitial diffusivity and capillary permeabilities from a formulation's diameter and surface,
where the scenario leaves them null.

The scenario (:mod:`tmesim.scenario.therapy_schema`) only states the formulation; this module
derives what the transport needs from it.
"""

from __future__ import annotations

import math

BOLTZMANN_J_PER_K = 1.380649e-23
BODY_TEMPERATURE_K = 310.15
#: viscosity of interstitial water at 37 C (parameters.md §5.3)
WATER_VISCOSITY_PA_S = 0.69e-3
#: tumour capillary permeability of a 9.4 nm particle, cm/s (Dogra et al. 2020) [V]
P_TUMOR_9NM_CM_PER_S = 2.82e-7
#: exponent of P ~ d^-a through Dogra's 9.4 nm and ~90 nm values (2.82e-7, 2e-8 cm/s) [D]
P_SIZE_EXPONENT = math.log(2.82e-7 / 2e-8) / math.log(90.0 / 9.4)
#: particles below this diameter are cleared by the kidneys (Wilhelm et al. 2016) [V]
RENAL_CUTOFF_NM = 5.5


def stokes_einstein_um2_per_min(size_nm: float) -> float:
    """Free diffusivity ``k_B T / (6 pi eta r)`` of a sphere of diameter ``size_nm`` in water at
    37 C, um^2/min."""
    r_m = 0.5 * size_nm * 1e-9
    d_m2_per_s = BOLTZMANN_J_PER_K * BODY_TEMPERATURE_K / (6 * math.pi * WATER_VISCOSITY_PA_S * r_m)
    return d_m2_per_s * 1e12 * 60.0


def renkin_hindrance(size_nm: float, pore_radius_nm: float) -> float:
    """Renkin's hindrance ``(1 - l)^2 (1 - 2.104 l + 2.09 l^3 - 0.95 l^5)``, ``l = r / r_p``
    (0 when the particle does not fit)."""
    lam = 0.5 * size_nm / pore_radius_nm
    if lam >= 1.0:
        return 0.0
    return (1 - lam) ** 2 * (1 - 2.104 * lam + 2.09 * lam**3 - 0.95 * lam**5)


def circulation_half_life_h(size_nm: float, peg: bool, species) -> float:
    """Circulation half-life (h) of particles of diameter ``size_nm`` in the host ``species``
    (a :class:`~tmesim.scenario.therapy_schema.SpeciesConfig`): renal filtration below
    :data:`RENAL_CUTOFF_NM`; above it, clearance by the mononuclear phagocyte system, slowest
    from 100 to 200 nm (the species' PEG or bare half-life), faster for smaller particles (down
    to a quarter at 25 nm and below) and as 1/d above 200 nm (docs/pharmacology.md §13.2)."""
    if size_nm < RENAL_CUTOFF_NM:
        return species.renal_half_life_h
    ref = species.nanoparticle_peg_half_life_h if peg else species.nanoparticle_bare_half_life_h
    t_half = ref * min(1.0, max(0.25, size_nm / 100.0))
    if size_nm > 200.0:
        t_half *= 200.0 / size_nm
    return t_half


def derived_transport(np_cfg, transport, mean_ecm: float, species) -> dict[str, float]:
    """Circulation half-life (h), diffusivity (um^2/min) and capillary permeabilities (um/min)
    of a formulation in the host ``species``: explicit values where given, else the size rules
    of docs/pharmacology.md §13."""
    d = np_cfg.size_nm
    if np_cfg.half_life_h is not None:
        t_half = np_cfg.half_life_h
    else:
        t_half = circulation_half_life_h(d, np_cfg.peg, species)
    if np_cfg.diffusion_um2_per_min is not None:
        diff = np_cfg.diffusion_um2_per_min
    else:
        pore = transport.matrix_pore_radius_nm * math.sqrt(
            transport.reference_ecm / max(mean_ecm, 1e-12)
        )
        diff = stokes_einstein_um2_per_min(d) * renkin_hindrance(d, pore)
    if np_cfg.tumor_permeability_um_per_min is not None:
        p_tumor = np_cfg.tumor_permeability_um_per_min
    elif d > transport.pore_cutoff_nm:
        p_tumor = 0.0
    else:
        p_tumor = P_TUMOR_9NM_CM_PER_S * 1e4 * 60.0 * (d / 9.4) ** (-P_SIZE_EXPONENT)
    if np_cfg.permeability_um_per_min is not None:
        p_normal = np_cfg.permeability_um_per_min
    else:
        p_normal = p_tumor * transport.normal_vessel_factor
    return {
        "half_life_h": t_half,
        "diffusion_um2_per_min": diff,
        "tumor_permeability_um_per_min": p_tumor,
        "permeability_um_per_min": p_normal,
    }


def transport_of(scenario, name: str) -> dict[str, float]:
    """Half-life, diffusivity and permeabilities of formulation ``name`` of ``scenario``
    (:func:`derived_transport`), with the matrix density of the initial ``ecm`` field."""
    ecm = scenario.fields["ecm"].initial if "ecm" in scenario.fields else None
    t = scenario.nanoparticle_transport
    return derived_transport(
        scenario.nanoparticles[name], t, t.reference_ecm if ecm is None else ecm,
        scenario.species_set,
    )
