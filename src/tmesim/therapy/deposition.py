"""Alveolar deposition of an inhaled aerosol by its size (docs/pharmacology.md §4).

The host species gives a deposition curve: the share of the inhaled mass that deposits in the
alveolar (pulmonary) region at a set of aerodynamic diameters
(``species.<name>.alveolar_deposition``). Between its points the curve is linear in the
logarithm of the diameter; beyond its ends it keeps its end values. A monodisperse aerosol
(geometric standard deviation 1) deposits the curve's value at its mass median aerodynamic
diameter (MMAD); a polydisperse one, log-normal in mass with geometric standard deviation
``gsd``, deposits the curve averaged over its mass distribution, an integral taken exactly
segment by segment (the curve is linear in ``u = ln d`` and the mass density is normal in
``u``).
"""

from __future__ import annotations

import bisect
import math


def _cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def curve_value(diameters_um, fractions, d_um: float) -> float:
    """The curve at one aerodynamic diameter ``d_um``: linear in ln d between its points, its
    end values beyond them."""
    d = list(diameters_um)
    f = list(fractions)
    if d_um <= d[0]:
        return float(f[0])
    if d_um >= d[-1]:
        return float(f[-1])
    k = bisect.bisect_right(d, d_um) - 1  # d[k] <= d_um < d[k + 1]
    if d_um == d[k]:
        return float(f[k])  # a point of the curve: its value exactly
    a, b = math.log(d[k]), math.log(d[k + 1])
    return float(f[k] + (f[k + 1] - f[k]) * (math.log(d_um) - a) / (b - a))


def alveolar_fraction(diameters_um, fractions, mmad_um: float, gsd: float = 1.0) -> float:
    """Share of an inhaled aerosol of MMAD ``mmad_um`` and geometric standard deviation ``gsd``
    deposited in the alveolar region, from the curve ``(diameters_um, fractions)``.

    With ``gsd == 1`` it is the curve at the MMAD. Otherwise, with ``u = ln d`` normal in mass
    (mean ``mu = ln MMAD``, standard deviation ``s = ln gsd``) and the curve ``f_a + m (u - a)``
    on a segment ``[a, b]``, the segment adds ``(f_a + m (mu - a)) (Phi(beta) - Phi(alpha)) +
    m s (phi(alpha) - phi(beta))`` with ``alpha = (a - mu) / s``, ``beta = (b - mu) / s``; the
    tails below the first point and above the last add their end values times their mass.
    """
    if gsd <= 1.0:
        return curve_value(diameters_um, fractions, mmad_um)
    d = [math.log(x) for x in diameters_um]
    f = [float(x) for x in fractions]
    mu, s = math.log(mmad_um), math.log(gsd)
    z = [(u - mu) / s for u in d]
    total = f[0] * _cdf(z[0]) + f[-1] * (1.0 - _cdf(z[-1]))
    for k in range(len(d) - 1):
        slope = (f[k + 1] - f[k]) / (d[k + 1] - d[k])
        alpha, beta = z[k], z[k + 1]
        total += (f[k] + slope * (mu - d[k])) * (_cdf(beta) - _cdf(alpha))
        total += slope * s * (_pdf(alpha) - _pdf(beta))
    return min(1.0, max(0.0, total))


def deposited_fraction(scenario, adm) -> float:
    """The share of the inhaled administration ``adm`` deposited on alveolar surfaces:
    ``subject.inhaled_deposited_fraction`` where given, else the size model on the deposition
    curve of the subject's species."""
    override = scenario.subject.inhaled_deposited_fraction
    if override is not None:
        return float(override)
    curve = scenario.species_set.alveolar_deposition
    return alveolar_fraction(
        curve.aerodynamic_diameter_um, curve.alveolar_fraction, adm.mmad_um, adm.gsd
    )
