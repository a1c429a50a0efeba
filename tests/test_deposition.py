"""Alveolar deposition of inhaled doses by aerosol size (docs/pharmacology.md §4): the packaged
curves hold the published values, the interpolation stays between its points, the
polydisperse average matches a brute-force integral, scenario errors name their key, and a
run deposits the size-derived share of an inhaled dose (the override wins)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tmesim import TMEModel
from tmesim.errors import ScenarioError
from tmesim.scenario import scenario_from_dict
from tmesim.therapy.deposition import alveolar_fraction, curve_value, deposited_fraction

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "scenarios" / "tiny.yaml"
LUNG = [("domain.geometry", "lung"), ("domain.shape", [30, 30])]
INHALED = {"agent": "doxorubicin", "route": "inhaled", "dose_mg_per_kg": 1.0}

#: Raabe et al. 1988, nose-only CF1 mice: pulmonary deposition at the measured sizes
#: (docs/parameters.md §4.6)
MOUSE = {1.0: 0.12, 3.0: 0.06, 5.0: 0.02, 10.0: 0.0}


def hinds_alveolar(d_um: float) -> float:
    """ICRP 66 alveolar deposition as fitted by Hinds 1999 (eq. 11.7), unit-density spheres."""
    u = math.log(d_um)
    return 0.0155 / d_um * (
        math.exp(-0.416 * (u + 2.84) ** 2) + 19.11 * math.exp(-0.482 * (u - 1.362) ** 2)
    )


def packaged(species: str):
    sc = scenario_from_dict(None, [*LUNG, ("subject.species", species)])
    curve = sc.species[species].alveolar_deposition
    return curve.aerodynamic_diameter_um, curve.alveolar_fraction


def test_mouse_curve_is_the_published_table():
    d, f = packaged("mouse")
    assert dict(zip(d, f, strict=True)) == MOUSE
    for x, y in MOUSE.items():
        assert alveolar_fraction(d, f, x) == y


def test_human_curve_is_the_icrp_fit_at_its_points():
    d, f = packaged("human")
    assert len(d) >= 8
    for x, y in zip(d, f, strict=True):
        assert y == pytest.approx(hinds_alveolar(x), abs=5e-5), x  # tabulated to 4 decimals
        assert alveolar_fraction(d, f, x) == y
    # between its points the table stays within 0.005 or 6 % of the fit, whichever is larger
    for x in np.geomspace(d[0], d[-1], 200):
        assert curve_value(d, f, x) == pytest.approx(hinds_alveolar(x), abs=0.005, rel=0.06)


@pytest.mark.parametrize("species", ["mouse", "human"])
def test_interpolation_is_monotone_between_points(species):
    """Linear in ln d: on each segment the curve runs from one point's value to the next
    without overshoot, in the direction of the data."""
    d, f = packaged(species)
    for k in range(len(d) - 1):
        xs = np.geomspace(d[k], d[k + 1], 25)
        ys = np.array([curve_value(d, f, x) for x in xs])
        steps = np.diff(ys) * np.sign(f[k + 1] - f[k] or 1.0)
        assert np.all(steps >= -1e-15)
        assert ys[0] == pytest.approx(f[k]) and ys[-1] == pytest.approx(f[k + 1])
    # beyond the ends the curve keeps its end values
    assert curve_value(d, f, d[0] / 3) == f[0]
    assert curve_value(d, f, d[-1] * 3) == f[-1]


def brute_force(d, f, mmad, gsd, n=200_001):
    """The mass-weighted mean of the curve over a log-normal aerosol, by the trapezoid rule on
    a fine grid in ln d (the slow twin of the exact segment sums)."""
    s = math.log(gsd)
    u = np.linspace(math.log(mmad) - 9 * s, math.log(mmad) + 9 * s, n)
    w = np.exp(-0.5 * ((u - math.log(mmad)) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    vals = np.array([curve_value(d, f, x) for x in np.exp(u)])
    return float(np.trapezoid(w * vals, u))


@pytest.mark.parametrize("species", ["mouse", "human"])
@pytest.mark.parametrize(("mmad", "gsd"), [(2.0, 1.8), (1.0, 2.5), (5.0, 1.3), (3.0, 1.01)])
def test_polydisperse_average_is_the_integral(species, mmad, gsd):
    d, f = packaged(species)
    got = alveolar_fraction(d, f, mmad, gsd)
    assert got == pytest.approx(brute_force(d, f, mmad, gsd), abs=1e-7)


def test_narrow_aerosol_tends_to_the_curve_and_wide_one_is_not_it():
    d, f = packaged("mouse")
    point = curve_value(d, f, 2.0)
    assert alveolar_fraction(d, f, 2.0, 1.0) == point
    assert alveolar_fraction(d, f, 2.0, 1.0001) == pytest.approx(point, abs=1e-6)
    assert abs(alveolar_fraction(d, f, 2.0, 2.5) - point) > 1e-3


def test_default_fraction_comes_from_the_size_model_and_the_override_wins():
    sc = scenario_from_dict(None, [*LUNG, ("therapy", [INHALED])])
    d, f = packaged("mouse")
    assert deposited_fraction(sc, sc.therapy[0]) == curve_value(d, f, 2.0)  # default MMAD
    sized = scenario_from_dict(
        None, [*LUNG, ("therapy", [{**INHALED, "aerosol_mmad_um": 3.0}])]
    )
    assert deposited_fraction(sized, sized.therapy[0]) == MOUSE[3.0]
    human = scenario_from_dict(None, [*LUNG, ("therapy", [INHALED]), ("subject.species", "human")])
    dh, fh = packaged("human")
    assert deposited_fraction(human, human.therapy[0]) == curve_value(dh, fh, 2.0)
    override = scenario_from_dict(
        None, [*LUNG, ("therapy", [{**INHALED, "aerosol_mmad_um": 3.0}]), ("subject.inhaled_deposited_fraction", 0.3)]
    )
    assert deposited_fraction(override, override.therapy[0]) == 0.3


IV = {"agent": "doxorubicin", "dose_mg_per_kg": 1.0}


@pytest.mark.parametrize(
    ("pairs", "key"),
    [
        ([("therapy", [{**INHALED, "aerosol_mmad_um": 0.5}])], "therapy.0.aerosol_mmad_um"),
        ([("therapy", [{**INHALED, "aerosol_mmad_um": 12.0}])], "therapy.0.aerosol_mmad_um"),
        ([("therapy", [{**IV, "aerosol_mmad_um": 2.0}])], "therapy.0.aerosol_mmad_um"),
        ([("therapy", [{**IV, "aerosol_gsd": 2.0}])], "therapy.0.aerosol_gsd"),
        ([("therapy", [{**INHALED, "aerosol_gsd": 0.5}])], "therapy.0.aerosol_gsd"),
        (
            [("species.mouse.alveolar_deposition.aerodynamic_diameter_um", [3.0, 1.0, 5.0, 10.0])],
            "species.mouse.alveolar_deposition.aerodynamic_diameter_um",
        ),
        (
            [("species.mouse.alveolar_deposition.alveolar_fraction", [0.1, 0.2])],
            "species.mouse.alveolar_deposition.alveolar_fraction",
        ),
        (
            [("species.mouse.alveolar_deposition.alveolar_fraction", [0.1, 0.2, 0.3, 1.2])],
            "species.mouse.alveolar_deposition.alveolar_fraction",
        ),
        (
            [("therapy", [INHALED]), ("species.mouse.alveolar_deposition", None)],
            "species.mouse.alveolar_deposition",
        ),
    ],
)
def test_bad_deposition_input_names_the_key(pairs, key):
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(None, LUNG + pairs)
    assert err.value.key == key
    assert err.value.exit_code == 2


def test_the_override_without_a_curve_is_enough():
    """A species without a deposition curve can still be dosed by inhalation when the user
    gives the deposited fraction."""
    sc = scenario_from_dict(
        None, [*LUNG, ("therapy", [INHALED]), ("species.mouse.alveolar_deposition", None), ("subject.inhaled_deposited_fraction", 0.25)]
    )
    assert deposited_fraction(sc, sc.therapy[0]) == 0.25


def inhaled_ledger(**overrides):
    m = TMEModel(TINY, **{"time.duration_h": 0.2, "therapy": [
        {**INHALED, "start_h": 0.0, **overrides.pop("entry", {})}], **overrides})
    while m.running:
        m.step()
    return m, m.therapy.ledger()["doxorubicin"]


def test_a_run_deposits_the_size_derived_share_and_the_override_wins():
    m, led = inhaled_ledger(entry={"aerosol_mmad_um": 3.0})
    dose = 1.0 * m.scenario.subject.body_mass_kg
    assert led["dosed"] == pytest.approx(dose, rel=1e-12)
    assert led["exhaled"] == pytest.approx(dose * (1 - MOUSE[3.0]), rel=1e-12)
    m, led = inhaled_ledger(entry={"aerosol_mmad_um": 3.0},
                            **{"subject.inhaled_deposited_fraction": 0.3})
    assert led["exhaled"] == pytest.approx(dose * 0.7, rel=1e-12)


def test_the_override_without_an_inhaled_dose_is_accepted():
    """Result files written before the size model store a deposited share in every scenario,
    inhaled doses or not; they must still load (the share then simply has nothing to act on)."""
    sc = scenario_from_dict(
        None, [*LUNG, ("therapy", [IV]), ("subject.inhaled_deposited_fraction", 0.3)]
    )
    assert sc.subject.inhaled_deposited_fraction == 0.3
