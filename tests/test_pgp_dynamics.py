"""P-gp induction by drug exposure and siRNA knockdown: kernel against its twin, the exact time
course, targets, and thread-count independence."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import naive_pharmacology as naive
from tmesim.kernels import pharmacology as kp

TURN = np.array([0.01, 0.02, 0.0, 0.0, 0.0])  # per kind, 1/min; immune and stroma skipped
IND_MAX = np.array([1.0, 0.5, 0.0, 0.0, 0.0])
IND_EC50 = np.array([0.5, 1.0, 1.0, 1.0, 1.0])


def regulation(knockdown, half=(1.0,)):
    """The per-kind rates above, with siRNA knockdown ``knockdown`` (a number, or one per
    siRNA formulation) and half effects ``half`` (uM)."""
    kd = np.atleast_1d(np.asarray(knockdown, dtype=np.float64))
    return kp.PgpRegulation(TURN, IND_MAX, IND_EC50, kd, np.asarray(half, dtype=np.float64))


def population(n, seed):
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 5, n).astype(np.int8)
    state = rng.choice([0, 1, 2, 3], n, p=[0.5, 0.3, 0.1, 0.1]).astype(np.int8)
    base = rng.lognormal(0, 0.5, n).astype(np.float32)
    pgp = (base * rng.uniform(0.5, 2, n)).astype(np.float32)
    drug = np.where(rng.random(n) < 0.3, 0, rng.exponential(1.0, n)).astype(np.float32)
    payload = np.where(rng.random((2, n)) < 0.5, 0, rng.exponential(2.0, (2, n)))
    return kind, state, pgp, base, drug, payload.astype(np.float32)


@pytest.mark.parametrize("knockdown", [[0.0], [0.8], [0.8, 0.5]])
def test_pgp_dynamics_matches_twin(knockdown):
    kind, state, pgp, base, drug, payloads = population(3000, 4)
    payloads = payloads[: len(knockdown)]
    reg = regulation(knockdown, (1.0, 3.0)[: len(knockdown)])
    a, b = pgp.copy(), pgp.copy()
    for dt in (0.5, 6.0, 60.0):
        kp.pgp_dynamics(len(a), kind, state, a, base, drug, payloads, reg, dt)
        naive.pgp_dynamics(len(b), kind, state, b, base, drug, payloads, reg, dt)
        np.testing.assert_array_max_ulp(a, b, maxulp=2)
    skipped = (kind >= 2) | (state >= 2)
    np.testing.assert_array_equal(a[skipped], pgp[skipped])
    assert not np.array_equal(a[~skipped], pgp[~skipped])


def run(steps, dt, pgp0, base, drug, payload, knockdown):
    p = np.array([pgp0], np.float32)
    for _ in range(steps):
        kp.pgp_dynamics(1, np.zeros(1, np.int8), np.zeros(1, np.int8), p,
                        np.array([base], np.float32), np.array([drug], np.float32),
                        np.array([[payload]], np.float32), regulation(knockdown), dt)
    return float(p[0])


def test_time_course_is_the_exact_exponential():
    """Constant exposure: P(t) = T + (P0 - T) exp(-turnover t), whatever the step."""
    drug, payload, kd = 2.0, 3.0, 0.6
    target = 1.0 * (1 + 1.0 * drug / (0.5 + drug)) * (1 - kd * payload / (1.0 + payload))
    t = 240.0
    exact = target + (0.7 - target) * math.exp(-0.01 * t)
    for steps in (1, 40, 240):
        assert run(steps, t / steps, 0.7, 1.0, drug, payload, kd) == pytest.approx(exact, rel=1e-6)


def test_targets_induction_doubles_and_knockdown_silences():
    # saturating drug, no siRNA: induction_max = 1 doubles the level
    assert run(400, 60.0, 1.0, 1.0, 1e6, 0.0, 0.0) == pytest.approx(2.0, rel=1e-5)
    # no drug, saturating siRNA with 90 % knockdown: a tenth of the baseline
    assert run(400, 60.0, 1.0, 1.0, 0.0, 1e6, 0.9) == pytest.approx(0.1, rel=1e-4)
    # neither: back to the baseline from any start
    assert run(400, 60.0, 3.0, 0.4, 0.0, 0.0, 0.9) == pytest.approx(0.4, rel=1e-5)


def test_two_sirnas_multiply_their_remaining_fractions():
    """Two siRNA formulations, 50 % and 80 % knockdown at saturation: 0.5 x 0.2 = 0.1 remains."""
    p = np.array([1.0], np.float32)
    one = np.zeros(1, np.int8)
    for _ in range(400):
        kp.pgp_dynamics(1, one, one, p, np.ones(1, np.float32), np.zeros(1, np.float32),
                        np.full((2, 1), 1e6, np.float32), regulation([0.5, 0.8], (1.0, 2.0)),
                        60.0)
    assert float(p[0]) == pytest.approx(0.1, rel=1e-4)


def test_thread_count_does_not_change_the_result():
    kind, state, pgp, base, drug, payload = population(50_000, 9)
    payload = payload[:1]
    out = []
    old = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            p = pgp.copy()
            kp.pgp_dynamics(len(p), kind, state, p, base, drug, payload, regulation(0.5), 6.0)
            out.append(p)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(out[0], out[1])
