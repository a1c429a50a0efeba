"""Transvascular flux with convection (docs/pharmacology.md §3.1): the Patlak coefficients
against the textbook formula, the pore-theory reflection coefficient, and a perfused voxel of
a running model against the closed form of the single-voxel Patlak ODE; flow-limited exchange
at tumour vessels (§3.2): the Renkin-Crone rate against a capillary integrated along its
length, and the rates a running model sets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tmesim import TMEModel
from tmesim.scenario import scenario_from_dict
from tmesim.therapy.transvascular import (
    bernoulli,
    filtration_per_min,
    hydrodynamic_radius_nm,
    patlak_coefficients,
    pore_reflection,
    reflection_of,
    renkin_crone,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.yaml"
MICELLE = "ph_micelle_doxorubicin"


def patlak_flux_naive(k, c, cp, ci):
    """J_s / V = J_v (1 - sigma) C_p + P S (C_p - C_i) Pe / (e^Pe - 1), one voxel at a time."""
    if k == 0.0:
        return max(c, 0.0) * cp + min(c, 0.0) * ci  # pure convection, upwind
    pe = c / k
    if pe == 0.0:
        f = 1.0
    elif pe > 0.0:  # the same ratio, written without overflow
        f = pe * math.exp(-pe) / (1.0 - math.exp(-pe))
    else:
        f = pe / (math.exp(pe) - 1.0)
    return c * cp + k * (cp - ci) * f


def test_bernoulli_function():
    x = np.array([-30.0, -2.0, -1e-3, 0.0, 1e-9, 1e-3, 0.5, 3.0, 40.0])
    direct = [1.0 if v == 0 else v / math.expm1(v) for v in x]
    np.testing.assert_allclose(bernoulli(x), direct, rtol=1e-9)
    # B(-x) - B(x) = x, the identity that makes gain = loss + c
    np.testing.assert_allclose(bernoulli(-x) - bernoulli(x), x, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(bernoulli(np.array([-1e4, 1e4]))))
    assert bernoulli(np.array([1e4]))[0] == 0.0
    assert bernoulli(np.array([-1e4]))[0] == pytest.approx(1e4)


def test_patlak_coefficients_match_the_patlak_flux():
    rng = np.random.default_rng(3)
    k = np.concatenate([10 ** rng.uniform(-6, 1, 200), [0.0, 0.0, 0.0, 1e-3]])
    c = np.concatenate([rng.uniform(-0.02, 0.05, 200), [0.01, -0.01, 0.0, 0.0]])
    cp, ci = rng.uniform(0, 10, len(k)), rng.uniform(0, 10, len(k))
    loss, gain = patlak_coefficients(k, c)
    got = gain * cp - loss * ci
    want = [patlak_flux_naive(*v) for v in zip(k, c, cp, ci, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-14)
    assert np.all(loss >= 0) and np.all(gain >= 0)
    # no filtration: purely diffusive, loss = gain = k
    loss0, gain0 = patlak_coefficients(k, np.zeros_like(k))
    np.testing.assert_array_equal(loss0, k)
    np.testing.assert_array_equal(gain0, k)
    # strong convection: back-diffusion vanishes, entry is c C_p
    loss_hi, gain_hi = patlak_coefficients(np.array([1e-4]), np.array([1e-2]))
    assert loss_hi[0] < 1e-40 and gain_hi[0] == pytest.approx(1e-2)


def test_pore_reflection_coefficient():
    assert pore_reflection(0.0, 5.0) == 0.0
    assert pore_reflection(5.0, 5.0) == 1.0 and pore_reflection(60.0, 5.0) == 1.0
    lam = 0.3
    phi = (1 - lam) ** 2
    assert pore_reflection(3.0, 10.0) == pytest.approx((1 - phi) ** 2)
    sigmas = [pore_reflection(r, 200.0) for r in (15, 25, 35, 50)]
    assert sigmas == sorted(sigmas)
    # IgG (150 kDa): about 5 nm (Stokes radius 5.3 nm measured); doxorubicin about 0.5 nm
    assert 4.5 < hydrodynamic_radius_nm(150_000) < 5.5
    assert 0.4 < hydrodynamic_radius_nm(543.5) < 0.7


def test_small_drugs_stay_diffusive_and_particles_are_convective():
    """The Peclet number of doxorubicin is about 1e-3 at every vessel (its exchange is k (C_p
    - C) to 0.1 %), that of the 100 nm liposome about 20 at tumour vessels."""
    sc = scenario_from_dict(None, [("vessels.convection", True)])
    sv = math.pi * sc.vessels.capillary_diameter_um / sc.domain.voxel_um**2
    q_t, q_n = filtration_per_min(sc.vessels, sv)
    assert q_t > 0 and q_n > 0
    dox = sc.agents["doxorubicin"]
    for p, q, sigma in zip((dox.tumor_permeability_um_per_min, dox.permeability_um_per_min),
                           (q_t, q_n), reflection_of(sc, "doxorubicin"), strict=True):
        k = p * sv
        pe = q * (1 - sigma) / k
        assert pe < 2e-3
        loss, gain = patlak_coefficients(np.array([k]), np.array([q * (1 - sigma)]))
        assert loss[0] == pytest.approx(k, rel=1e-3) and gain[0] == pytest.approx(k, rel=1e-3)
    from tmesim.therapy.particles import transport_of

    lipo = transport_of(sc, "liposomal_doxorubicin")
    sigma_t, sigma_n = reflection_of(sc, "liposomal_doxorubicin")
    assert sigma_n == 1.0  # 100 nm particles do not fit the 5 nm pores of normal capillaries
    pe = q_t * (1 - sigma_t) / (lipo["tumor_permeability_um_per_min"] * sv)
    assert 10 < pe < 40
    no = scenario_from_dict(None, [])  # the default: no filtration
    assert filtration_per_min(no.vessels, sv) == (0.0, 0.0)


def test_a_perfused_voxel_follows_the_closed_form_of_the_patlak_ode():
    """Particles that neither diffuse, decay, release nor enter cells, with a plasma that hardly
    clears: each perfused voxel obeys dC/dt = gain C_p - loss C, whose backward-Euler solution
    over n sub-steps is (gain / loss) C_p (1 - (1 + dt loss)^-n) and whose exact solution
    (gain / loss) C_p (1 - exp(-loss t)); the dose ledger closes."""
    m = TMEModel(
        TINY,
        **{
            "time.duration_h": 2.0,
            "vessels.convection": True,
            "therapy": [{"agent": MICELLE, "dose_mg_per_kg": 5.0, "start_h": 0.0}],
            f"nanoparticles.{MICELLE}.diffusion_um2_per_min": 0.0,
            f"nanoparticles.{MICELLE}.half_life_h": 1e6,
            f"nanoparticles.{MICELLE}.reflection_coefficient": 0.5,
            f"nanoparticles.{MICELLE}.tumor_uptake_per_h": 0.0,
            f"nanoparticles.{MICELLE}.macrophage_uptake_per_h": 0.0,
            f"nanoparticles.{MICELLE}.release.trigger": "none",
            f"nanoparticles.{MICELLE}.release.base_per_h": 0.0,
            f"nanoparticles.{MICELLE}.release.intracellular_per_h": 0.0,
        },
    )
    while m.running:
        m.step()
    th = m.therapy
    a = th.carriers[0]
    assert not th.tumor_vessel.any()
    k = a.vessel_rate
    c = a.vessel_convection
    assert np.all(c > 0) and np.all(c / k > 5)  # convection-dominated at every vessel
    cp = a.plasma
    t_min = 120.0
    content = th.fields.flat(MICELLE)[th.perfused_sites]
    exact = a.vessel_gain / a.vessel_loss * cp * -np.expm1(-a.vessel_loss * t_min)
    np.testing.assert_allclose(content, exact, rtol=1e-5)
    # without convection (and the same wall permeability) the voxel tends to C_p instead and
    # holds far less: (1 - exp(-k t)) C_p
    assert np.all(content > 3 * cp * -np.expm1(-k * t_min))
    entry = th.ledger()[MICELLE]
    accounted = sum(v for key, v in entry.items() if key != "dosed")
    assert accounted == pytest.approx(entry["dosed"], rel=1e-9)


def capillary_extraction_naive(k, unbound, flow, c_art, c_tissue, n=20000):
    """Plasma (total concentration ``c``) flowing along a capillary through tissue at
    ``c_tissue``, losing ``k (unbound c - c_tissue)`` per unit length fraction: march the
    capillary in ``n`` explicit steps and return what it delivered per unit volume and time,
    ``flow (c_art - c_venous)``."""
    c = c_art
    for _ in range(n):
        c -= k * (unbound * c - c_tissue) / flow / n
    return flow * (c_art - c)


@pytest.mark.parametrize("k, unbound, flow", [(9.2, 0.25, 0.66), (9.2, 1.0, 0.66),
                                              (0.01, 1.0, 0.66), (9.2, 0.25, 100.0)])
def test_renkin_crone_rate_is_what_a_capillary_delivers(k, unbound, flow):
    """The flux the rate gives on the unbound arterial concentration equals what plasma loses
    along a capillary integrated step by step, for flow-limited and wall-limited agents."""
    c_art, c_t = 2.0, 0.1
    rate = renkin_crone(np.array([k]), unbound, np.array([flow]))[0]
    expected = capillary_extraction_naive(k, unbound, flow, c_art, c_t)
    assert rate * (unbound * c_art - c_t) == pytest.approx(expected, rel=1e-3)


def test_renkin_crone_limits():
    """Ample flow keeps the wall rate, scarce flow gives what the plasma brings, no flow or no
    wall nothing, and the rate never exceeds either."""
    k = np.array([9.2, 9.2, 9.2, 0.0, 1e-12])
    flow = np.array([1e9, 1e-3, 0.0, 1.0, 1.0])
    r = renkin_crone(k, 0.25, flow)
    assert r[0] == pytest.approx(9.2, rel=1e-6)
    assert r[1] == pytest.approx(1e-3 / 0.25, rel=1e-6)
    assert r[2] == 0.0 and r[3] == 0.0
    assert r[4] == pytest.approx(1e-12, rel=1e-9)
    assert np.all(r <= k) and np.all(r[:2] <= flow[:2] / 0.25 * (1 + 1e-12))
    assert renkin_crone(k, 0.0, flow)[0] == 9.2  # nothing crosses, nothing is extracted


def _tumour_patch(**over):
    """The solid tumour patch of pk_laginha_doxil for 30 min, free doxorubicin at 0 h."""
    case = ROOT / "validation" / "pk_laginha_doxil" / "scenario.yaml"
    return TMEModel(case, **{"time.duration_h": 0.5, **over})


def test_tumour_vessels_exchange_at_the_flow_limited_rate():
    """At tumour vessels each agent's rate is the Renkin-Crone rate of its wall rate with the
    tumour's plasma flow shared over its vessels; host vessels and a null flow keep the wall
    rate; the dose ledger closes either way."""
    m = _tumour_patch()
    m.step()
    th = m.therapy
    th.update_vessels()  # with the cells as they stand now
    a = th.drugs[0]
    tv = th.tumor_vessel
    assert tv.any()
    v = m.scenario.vessels
    perf = th.tissue.perfusion[th.perfused_sites]
    live = int(np.count_nonzero(th._live_cancer()))
    share = (tv.sum() + live) / perf[tv].sum()
    f = v.tumor_blood_flow_per_min * (1 - v.hematocrit) * share * perf[tv]
    expect = a.wall_rate[tv] * -np.expm1(-a.unbound * a.wall_rate[tv] / f) / (
        a.unbound * a.wall_rate[tv] / f)
    np.testing.assert_allclose(a.vessel_rate[tv], expect, rtol=1e-12)
    assert np.all(a.vessel_rate[tv] < 0.5 * a.wall_rate[tv])  # doxorubicin is flow-limited here
    np.testing.assert_array_equal(a.vessel_rate[~tv], a.wall_rate[~tv])
    free = _tumour_patch(**{"vessels.tumor_blood_flow_per_min": None})
    free.step()
    b = free.therapy.agents[0]
    np.testing.assert_array_equal(b.vessel_rate, b.wall_rate)
    for model in (m, free):
        while model.running:
            model.step()
        entry = model.therapy.ledger()["doxorubicin"]
        accounted = sum(x for key, x in entry.items() if key != "dosed")
        assert accounted == pytest.approx(entry["dosed"], rel=1e-9)
