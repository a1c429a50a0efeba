"""Counter-based random numbers.

A draw is a pure function of ``(seed, cell id, step, purpose)``: the SplitMix64 finaliser
(Steele, Lea & Flood, OOPSLA 2014) is applied to the key words in turn. The same key gives the
same number whichever thread evaluates it and in whichever order, so stochastic rules stay
bit-reproducible under ``prange``.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

#: purpose codes, one per independent random decision
PURPOSE_ORDER = 1
PURPOSE_DIVIDE = 2
PURPOSE_DIVIDE_SITE = 3
PURPOSE_NECROSIS = 4
PURPOSE_MIGRATE = 5
PURPOSE_MIGRATE_SITE = 6
PURPOSE_DEATH = 7
PURPOSE_FATE = 8
PURPOSE_PLACE = 9


@kernel
def mix64(z):
    """SplitMix64 finaliser: a bijective avalanche mix of one 64-bit word."""
    z = np.uint64(z)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@kernel
def key_hash(seed, a, b, c):
    """Hash four integers (non-negative, below 2**63) into one 64-bit word."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    h = mix64(np.uint64(seed) + golden)
    h = mix64(h ^ (np.uint64(a) + golden))
    h = mix64(h ^ (np.uint64(b) + golden))
    h = mix64(h ^ (np.uint64(c) + golden))
    return h


@kernel
def cell_key(seed, step, cell_id):
    """The first three mixes of :func:`key_hash` over ``(seed, step, cell_id)``: what all the
    draws of one cell in one step share."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    h = mix64(np.uint64(seed) + golden)
    h = mix64(h ^ (np.uint64(step) + golden))
    return mix64(h ^ (np.uint64(cell_id) + golden))


@kernel
def uniform_of(key, purpose):
    """The uniform of purpose ``purpose`` from a :func:`cell_key`:
    ``uniform_of(cell_key(seed, step, cell_id), purpose) == uniform(seed, cell_id, step, purpose)``.
    """
    h = mix64(key ^ (np.uint64(purpose) + np.uint64(0x9E3779B97F4A7C15)))
    return np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel
def uniform(seed, cell_id, step, purpose):
    """A float64 uniform on [0, 1) keyed by ``(seed, cell_id, step, purpose)``.

    The words are mixed in the order seed, step, cell id, purpose: inside a kernel's loop over
    cells the first two mixes are loop-invariant and the third is shared by all the draws of one
    cell. A kernel whose draws sit in different branches computes the shared part once with
    :func:`cell_key` and each draw with :func:`uniform_of`, so each further draw costs one mix.
    """
    h = key_hash(seed, step, cell_id, purpose)
    return np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel
def randint(seed, cell_id, step, purpose, n):
    """An integer uniform on ``[0, n)`` keyed like :func:`uniform` (``n >= 1``)."""
    k = np.int64(uniform(seed, cell_id, step, purpose) * n)
    if k >= n:
        k = n - 1
    return k


@kernel
def randint_of(key, purpose, n):
    """The integer of :func:`randint` from a :func:`cell_key`:
    ``randint_of(cell_key(seed, step, cell_id), purpose, n) == randint(seed, cell_id, step,
    purpose, n)``."""
    k = np.int64(uniform_of(key, purpose) * n)
    if k >= n:
        k = n - 1
    return k
