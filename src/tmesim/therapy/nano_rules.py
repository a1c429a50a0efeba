"""Release by pH and ligand targeting by size: the two nanoparticle rules that turn a
formulation's keys into the rates the kernels use (docs/pharmacology.md §13.6-13.8).

Units: pH, rates in 1/h, diameters in nm. Both rules are closed forms of scalars or arrays;
the kernels in :mod:`tmesim.kernels.nanoparticles` take their results as plain rates.
"""

from __future__ import annotations

import math

import numpy as np

#: the two pH values at which a formulation states its release rates (ReleaseConfig)
PH_NEUTRAL = 7.4
PH_ACID = 5.0
#: intracellular release of formulations without trigger 'ph' and without their own value,
#: 1/h: pH-5 release half-lives of about 5-20 h (parameters.md §5.4) [A]
INTRACELLULAR_DEFAULT_PER_H = 0.07

#: ligand gain by size, fitted to Sykes et al. 2014: transferrin-coated gold particles
#: accumulated in tumours 5 times faster than PEG-only ones at 60 nm and not significantly
#: differently at 15, 30 and 100 nm (parameters.md §5.5) [V, abstract]
LIGAND_PEAK_GAIN = 5.0
LIGAND_PEAK_NM = 60.0
#: log-normal width (natural log of the diameter): the gain is 1.15 at 100 nm and 1.01 at
#: 30 nm, below 1.25, read as "no significant difference" (widths up to 0.217 would; choice)
LIGAND_LOG_WIDTH = 0.2


def ph_release_rate(ph, k_neutral: float, k_acid: float):
    """First-order release rate (1/h) at ``ph`` of a formulation that releases with ``k_neutral``
    at pH 7.4 and ``k_acid`` at pH 5.0. Hydrazone hydrolysis is acid-catalysed: the rate above
    the neutral one grows in proportion to the proton concentration,

        k(pH) = k_7.4 + (k_5 - k_7.4) (10^-pH - 10^-7.4) / (10^-5 - 10^-7.4)    (pH < 7.4)
        k(pH) = k_7.4                                                            (pH >= 7.4)

    so k(7.4) = k_7.4 and k(5) = k_5 exactly, and pH 6.8 lies 1.2 % and pH 6.5 2.8 % of the
    way from k_7.4 to k_5. Scalars give a float, arrays an array.
    """
    h = np.power(10.0, -np.asarray(ph, dtype=np.float64))
    lo, hi = 10.0**-PH_NEUTRAL, 10.0**-PH_ACID
    share = np.maximum(h - lo, 0.0) / (hi - lo)
    k = k_neutral + (k_acid - k_neutral) * share
    return float(k) if np.ndim(k) == 0 else k


def intracellular_release_per_h(release) -> float:
    """Release rate inside cells (1/h) of a formulation's ``release`` (ReleaseConfig): its own
    ``intracellular_per_h`` if given; else, for trigger 'ph', the pH law at ``endosomal_ph``
    (internalised particles sit in endosomes and lysosomes); else the default 0.07 /h."""
    if release.intracellular_per_h is not None:
        return release.intracellular_per_h
    if release.trigger == "ph":
        return ph_release_rate(release.endosomal_ph, release.ph74_per_h, release.ph5_per_h)
    return INTRACELLULAR_DEFAULT_PER_H


def ligand_gain(size_nm: float) -> float:
    """Internalisation gain of a ligand on a particle of diameter ``size_nm``: a log-normal bump,

        gain(d) = 1 + (G - 1) exp(-ln(d / d_peak)^2 / (2 w^2)),   G = 5, d_peak = 60 nm, w = 0.2

    1 far from 60 nm, 5 at 60 nm; 2.4 at 45 and 80 nm, 1.15 at 100 nm, 1.01 at 30 nm."""
    x = math.log(size_nm / LIGAND_PEAK_NM)
    return 1.0 + (LIGAND_PEAK_GAIN - 1.0) * math.exp(-x * x / (2.0 * LIGAND_LOG_WIDTH**2))


def ligand_factor(cfg) -> float:
    """The uptake factor of receptor-positive cells for formulation ``cfg``
    (NanoparticleConfig): 1 without a ligand, its ``ligand_uptake_factor`` if given, else
    :func:`ligand_gain` of its size."""
    if not cfg.ligand:
        return 1.0
    if cfg.ligand_uptake_factor is not None:
        return cfg.ligand_uptake_factor
    return ligand_gain(cfg.size_nm)
