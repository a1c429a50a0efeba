"""The pH law of nanoparticle release and the size rule of the ligand's uptake gain
(tmesim.therapy.nano_rules, docs/pharmacology.md §13.6-13.8), and the interstitial diffusivity
by size (tmesim.therapy.particles, §13.2-13.3): hand-computed values, their use by the therapy,
and clear errors for bad values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from conftest import TINY
from tmesim import TMEModel
from tmesim.cli import main
from tmesim.errors import ScenarioError
from tmesim.scenario import scenario_from_dict
from tmesim.therapy.nano_rules import (
    intracellular_release_per_h,
    ligand_factor,
    ligand_gain,
    ph_release_rate,
)
from tmesim.therapy.particles import derived_transport, transport_of

MICELLE = "ph_micelle_doxorubicin"
LIPOSOME = "liposomal_doxorubicin"


def test_ph_law_passes_through_its_two_rates_and_is_linear_in_protons():
    k74, k5 = 0.0022, 0.07
    assert ph_release_rate(7.4, k74, k5) == pytest.approx(k74, rel=1e-12)
    assert ph_release_rate(5.0, k74, k5) == pytest.approx(k5, rel=1e-12)
    # above pH 7.4 the neutral rate holds (no base catalysis in the law)
    assert ph_release_rate(8.0, k74, k5) == k74
    # by hand: share = (10^-pH - 10^-7.4) / (10^-5 - 10^-7.4)
    lo, hi = 10**-7.4, 1e-5
    for ph, share in ((6.8, 0.011915), (6.5, 0.027752), (6.0, 0.096403)):
        assert (10**-ph - lo) / (hi - lo) == pytest.approx(share, rel=1e-4)
        assert ph_release_rate(ph, k74, k5) == pytest.approx(k74 + (k5 - k74) * share, rel=1e-4)
    # the tumour's extracellular pH 6.8 releases at 0.0030 /h (t1/2 231 h), 23 times slower than
    # the endosome at pH 5: the pH-5 rate no longer applies outside cells
    assert ph_release_rate(6.8, k74, k5) == pytest.approx(0.0030079, rel=1e-4)
    # pH 4.5 (lysosome) extrapolates the law: 10^0.5 times the acid excess
    assert ph_release_rate(4.5, k74, k5) == pytest.approx(
        k74 + (k5 - k74) * (10**-4.5 - lo) / (hi - lo), rel=1e-12)
    arr = ph_release_rate(np.array([7.4, 6.8, 6.5]), k74, k5)
    assert arr.shape == (3,) and np.all(np.diff(arr) > 0)


def test_ligand_gain_peaks_at_60_nm_and_vanishes_at_30_and_100_nm():
    assert ligand_gain(60.0) == pytest.approx(5.0, rel=1e-12)
    # 1 + 4 exp(-ln(d/60)^2 / 0.08), by hand
    assert ligand_gain(45.0) == pytest.approx(1 + 4 * math.exp(-math.log(0.75) ** 2 / 0.08))
    assert ligand_gain(45.0) == pytest.approx(2.4216, rel=1e-4)
    assert ligand_gain(80.0) == pytest.approx(ligand_gain(45.0), rel=1e-12)  # symmetric in ln d
    assert ligand_gain(100.0) == pytest.approx(1.1533, rel=1e-4)
    assert ligand_gain(30.0) == pytest.approx(1.0099, rel=1e-4)
    assert ligand_gain(15.0) == pytest.approx(1.0, abs=1e-9)


def _hand_diffusivity(d_nm, pore_nm):
    """Stokes-Einstein at 37 C (eta 0.69 mPa s) times Renkin's hindrance, um^2/min, by hand."""
    d0 = 1.380649e-23 * 310.15 / (6 * math.pi * 0.69e-3 * d_nm * 0.5e-9) * 1e12 * 60
    lam = d_nm / (2 * pore_nm)
    if lam >= 1:
        return 0.0
    return d0 * (1 - lam) ** 2 * (1 - 2.104 * lam + 2.09 * lam**3 - 0.95 * lam**5)


@pytest.mark.parametrize(
    "pore_nm, table",
    [
        # docs/pharmacology.md §13.3: the default (C26-like) matrix, r_p = 200 nm
        (None, {30: 950.0, 50: 448.3, 70: 246.9, 100: 112.4}),
        # the BxPC3-like matrix of validation/np_cabral_size, r_p = 100 nm
        (100.0, {30: 657.8, 50: 224.8, 70: 83.0, 100: 17.7}),
    ],
)
def test_interstitial_diffusivity_is_stokes_einstein_times_renkin(pore_nm, table):
    sets = [] if pore_nm is None else [("nanoparticle_transport.matrix_pore_radius_nm", pore_nm)]
    for d, documented in table.items():
        sc = scenario_from_dict(None, [*sets, (f"nanoparticles.{MICELLE}.size_nm", float(d))])
        got = transport_of(sc, MICELLE)["diffusion_um2_per_min"]
        assert got == pytest.approx(_hand_diffusivity(d, pore_nm or 200.0), rel=1e-12)
        assert got == pytest.approx(documented, abs=0.06)


def test_interstitial_diffusivity_falls_with_size_and_matrix_density():
    sc = scenario_from_dict(None, [])
    t, mic, mouse = sc.nanoparticle_transport, sc.nanoparticles[MICELLE], sc.species_set

    def diff(size, ecm):
        cfg = mic.model_copy(update={"size_nm": size})
        return derived_transport(cfg, t, ecm, mouse)["diffusion_um2_per_min"]

    for ecm in (0.05, 0.1, 0.2, 0.4):
        # the pore radius is 200 nm x (0.1 / ecm)^(1/2); a particle as wide as the pore is stuck
        width = 2 * 200.0 * math.sqrt(0.1 / ecm)
        ds = [diff(s, ecm) for s in (10.0, 30.0, 50.0, 70.0, 100.0, 0.99 * width)]
        assert all(a > b > 0 for a, b in itertools.pairwise(ds))
        assert diff(width, ecm) == 0.0
    for s in (30.0, 100.0):
        ds = [diff(s, ecm) for ecm in (0.05, 0.1, 0.2, 0.4)]
        assert all(a > b for a, b in itertools.pairwise(ds))
    # §13.3: ecm_0 = 0.4 halves the pore radius, the BxPC3-like 100 nm: 17.7 um^2/min at 100 nm
    assert diff(100.0, 0.4) == pytest.approx(_hand_diffusivity(100.0, 100.0), rel=1e-12)


def test_formulation_defaults_resolve_through_the_rules():
    sc = scenario_from_dict(None, [])
    mic, lip = sc.nanoparticles[MICELLE], sc.nanoparticles[LIPOSOME]
    # trigger ph: inside cells the law at the endosomal pH 5 = the pH-5 rate
    assert intracellular_release_per_h(mic.release) == pytest.approx(0.07, rel=1e-12)
    # the liposome keeps Harashima's 0.06 /h
    assert intracellular_release_per_h(lip.release) == 0.06
    assert ligand_factor(mic) == 1.0  # no ligand
    sc = scenario_from_dict(None, [(f"nanoparticles.{MICELLE}.ligand", True)])
    assert ligand_factor(sc.nanoparticles[MICELLE]) == pytest.approx(ligand_gain(30.0))
    sc = scenario_from_dict(None, [(f"nanoparticles.{MICELLE}.ligand", True),
                                   (f"nanoparticles.{MICELLE}.ligand_uptake_factor", 3.0),
                                   (f"nanoparticles.{MICELLE}.release.endosomal_ph", 6.0)])
    assert ligand_factor(sc.nanoparticles[MICELLE]) == 3.0  # an explicit value overrides
    assert intracellular_release_per_h(sc.nanoparticles[MICELLE].release) == pytest.approx(
        ph_release_rate(6.0, 0.0022, 0.07), rel=1e-12)


def test_the_therapy_releases_by_the_ph_map_outside_and_the_endosomal_rate_inside():
    m = TMEModel(TINY, **{
        "time.duration_h": 1.0,
        "therapy": [{"agent": MICELLE, "dose_mg_per_kg": 5.0, "start_h": 0.0}],
    })
    m.step()
    th = m.therapy
    ph = th.tissue_ph()
    rate = th.release_rate_map(0.0)
    assert {6.8, 7.4} <= set(np.unique(ph))
    for value in np.unique(ph):
        assert np.all(rate[ph == value] == ph_release_rate(value, 0.0022, 0.07))
    assert rate[ph == 7.4][0] == pytest.approx(0.0022)
    assert rate[ph == 6.8][0] == pytest.approx(0.0030079, rel=1e-4)
    assert th.carriers[0].np_release_in[0] == pytest.approx(0.07 / 60.0, rel=1e-12)
    assert th.carriers[0].ligand_factor == 1.0


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        (f"nanoparticles.{MICELLE}.release.ph5_per_h", "0.001", ["ph5_per_h", "at least ph74"]),
        (f"nanoparticles.{MICELLE}.release.endosomal_ph", "15", ["endosomal_ph", "less than 14"]),
        (f"nanoparticles.{MICELLE}.ligand_uptake_factor", "0.5", ["ligand_uptake_factor",
                                                                 "at least 1"]),
    ],
)
def test_bad_release_and_ligand_values_exit_2_naming_the_key(key, value, words, capsys):
    assert main(["validate", str(TINY), "--set", f"{key}={value}"]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    for w in words:
        assert w in text
    with pytest.raises(ScenarioError):
        scenario_from_dict(None, [(key, float(value))])
