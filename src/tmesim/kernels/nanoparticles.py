"""Nanoparticles on the lattice: internalisation by cells, and release of their payload.

Units: particle concentrations in uM of drug-equivalent (the drug a particle carries, per whole
voxel volume), time in min, rates in 1/min. A cell's internalised particles are stored in its
``payload`` column as a concentration in the cell volume; the cell fills the fraction ``phi``
of its voxel, so ``c[s] + phi * payload[i]`` is what one voxel and its cell hold together.
Particles that released their payload inside a cell stay in its ``carrier`` column, in the
same drug-equivalent units at loading, until they are lost (:func:`lose_carriers`) or leave
with the dead cell (:func:`remove_dead`) (docs/pharmacology.md §13.12).

Every step is an exact exponential of a first-order process, and each kernel charges the voxel
with the value actually stored in the float32 cell column, so amounts are conserved to float64
round-off. Parallel loops write only their own cell's row and voxel (one cell per voxel).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from ._jit import kernel
from .codes import PROLIFERATING, QUIESCENT, REMOVED
from .layout import ID
from .random import uniform

PURPOSE_RECEPTOR = 70


@kernel
def receptor_positive(seed, cell_id, fraction):
    """Whether cell ``cell_id`` carries the ligand's receptor: a keyed draw below ``fraction``,
    so a fixed share of cells is positive without a stored column."""
    if fraction <= 0.0:
        return False
    if fraction >= 1.0:
        return True
    return uniform(seed, cell_id, 0, PURPOSE_RECEPTOR) < fraction


class Uptake(NamedTuple):
    """How cells internalise one formulation: ``rate`` and ``receptor_fraction`` per kind
    (1/min, fraction) and the ``ligand_factor`` of receptor-positive cells."""

    rate: object
    receptor_fraction: object
    ligand_factor: float


@kernel(parallel=True)
def internalise(n, ids, kind, state, site, payload, c_np, uptake, seed, phi, dt):
    """Live cells take particles up from their voxel by first-order internalisation:

        dc/dt = -r c,    d(payload)/dt = r c / phi,    r = rate[kind] * (ligand_factor if the
        cell is receptor-positive, else 1)

    over ``dt`` exactly: the voxel keeps ``c exp(-r dt)``. ``rate``, ``receptor_fraction`` and
    ``ligand_factor`` are the fields of ``uptake`` (:class:`Uptake`); kinds with ``rate <= 0``
    are skipped.
    """
    # read-only tables, taken out of the tuple before the parallel loop
    rate = uptake.rate
    receptor_fraction = uptake.receptor_fraction
    ligand_factor = uptake.ligand_factor
    for i in prange(n):
        k = kind[i]
        r = rate[k]
        if r <= 0.0 or (state[i] != PROLIFERATING and state[i] != QUIESCENT):
            continue
        s = site[i]
        c = c_np[s]
        if c <= 0.0:
            continue
        if receptor_positive(seed, ids[ID, i], receptor_fraction[k]):
            r *= ligand_factor
        taken = c * -math.expm1(-r * dt)
        old = np.float64(payload[i])
        payload[i] = np.float32(old + taken / phi)
        c_np[s] = c - phi * (np.float64(payload[i]) - old)


@kernel
def _drain(i, kind, state, payload, rate, dt):
    """First-order release from cell ``i``'s ``payload`` at ``rate[kind[i]]`` over ``dt``,
    exactly: stores ``payload exp(-k dt)`` as float32 and returns the stored decrease (float64);
    0 for dead cells, kinds without a rate and empty payloads."""
    k = rate[kind[i]]
    if k <= 0.0 or (state[i] != PROLIFERATING and state[i] != QUIESCENT):
        return 0.0
    p = np.float64(payload[i])
    if p <= 0.0:
        return 0.0
    out = p * -math.expm1(-k * dt)
    payload[i] = np.float32(p - out)
    return p - np.float64(payload[i])


@kernel
def _empty(i, carrier, moved):
    """The particles that released ``moved`` (uM of cell volume) in cell ``i`` stay as emptied
    carriers: adds it to ``carrier[i]`` and returns the stored increase (float64)."""
    old = np.float64(carrier[i])
    carrier[i] = np.float32(old + moved)
    return np.float64(carrier[i]) - old


@kernel
def _co_release(inhibitor, v, released, inhibitor_per_drug):
    """A co-loaded inhibitor follows ``released`` drug (uM x voxels) into voxel ``v`` of
    ``inhibitor`` at ``inhibitor_per_drug`` mol per mol; returns what it added (0 without an
    inhibitor field, length 1, or without a co-load)."""
    if inhibitor.shape[0] <= 1 or inhibitor_per_drug <= 0.0:
        return 0.0
    add = released * inhibitor_per_drug
    inhibitor[v] += add
    return add


@kernel
def release_inside(n, kind, state, site, payload, carrier, drug, rate, inhibitor,
                   inhibitor_per_drug, phi, dt):
    """Internalised particles release their drug into the cell (endosomal pH, glutathione):

        d(payload)/dt = -k payload,    d(drug)/dt = d(carrier)/dt = +k payload,    k = rate[kind]

    exactly over ``dt``: the emptied particles stay in the cell's ``carrier``. A co-loaded
    inhibitor (``inhibitor_per_drug`` mol per mol of drug) is
    released with it into the voxel's ``inhibitor`` field (skipped when it has length 1).
    Only live cells release. Returns ``(to_drug, from_payload, to_inhibitor, to_carrier)``: the
    stored change of the drug column, of the payload column (both uM x cell volumes), the
    inhibitor added to the field (uM x voxels) and the stored increase of the carrier column
    (uM x cell volumes), as float64 sums; serial, so the sums are reproducible.
    """
    to_drug = 0.0
    from_payload = 0.0
    to_inhibitor = 0.0
    to_carrier = 0.0
    for i in range(n):
        moved = _drain(i, kind, state, payload, rate, dt)
        if moved <= 0.0:
            continue
        old = np.float64(drug[i])
        drug[i] = np.float32(old + moved)
        from_payload += moved
        to_drug += np.float64(drug[i]) - old
        to_carrier += _empty(i, carrier, moved)
        to_inhibitor += _co_release(inhibitor, site[i], phi * moved, inhibitor_per_drug)
    return to_drug, from_payload, to_inhibitor, to_carrier


@kernel
def release_outside(c_np, c_drug, rate, inhibitor, inhibitor_per_drug, dt):
    """Extracellular release, exact over ``dt``: each voxel ``v`` moves
    ``c_np[v] (1 - exp(-rate[v] dt))`` from particles to free drug (and the co-loaded inhibitor,
    ``inhibitor_per_drug`` mol per mol, to ``inhibitor`` unless it has length 1). Returns the
    total drug released (uM x voxels) as a float64 sum."""
    total = 0.0
    for v in range(c_np.shape[0]):
        r = rate[v]
        if r <= 0.0:
            continue
        c = c_np[v]
        if c <= 0.0:
            continue
        d = c * -math.expm1(-r * dt)
        c_np[v] = c - d
        c_drug[v] += d
        total += d
        _co_release(inhibitor, v, d, inhibitor_per_drug)
    return total


@kernel
def release_to_field(n, kind, state, site, payload, carrier, c_drug, rate, inhibitor,
                     inhibitor_per_drug, phi, dt):
    """Particles held by a cell act as a depot that releases free drug into the cell's voxel
    (tumour-associated macrophages; docs/pharmacology.md §13.8):

        d(payload)/dt = -k payload,    dC_d(site)/dt = +phi k payload,    k = rate[kind]

    exactly over ``dt``. The voxel receives ``phi`` times the stored float32 decrease of the
    payload, so ``C_d + phi payload`` is conserved to float64 round-off, and the emptied
    particles stay in the cell's ``carrier``; a co-loaded inhibitor follows at
    ``inhibitor_per_drug`` mol per mol into ``inhibitor`` (skipped when it has length 1). Only
    live cells (proliferating or quiescent) release. Returns ``(from_payload, to_field,
    to_inhibitor, to_carrier)``: the stored decrease of the payload column (uM x cell volumes),
    what the drug and inhibitor fields gained (uM x voxels) and the stored increase of the
    carrier column (uM x cell volumes), float64 sums; serial, so the sums and the order of
    additions into shared voxels are reproducible.
    """
    from_payload = 0.0
    to_field = 0.0
    to_inhibitor = 0.0
    to_carrier = 0.0
    for i in range(n):
        moved = _drain(i, kind, state, payload, rate, dt)
        if moved <= 0.0:
            continue
        add = phi * moved
        c_drug[site[i]] += add
        from_payload += moved
        to_field += add
        to_carrier += _empty(i, carrier, moved)
        to_inhibitor += _co_release(inhibitor, site[i], add, inhibitor_per_drug)
    return from_payload, to_field, to_inhibitor, to_carrier


@kernel
def lose_carriers(n, kind, state, carrier, rate, dt):
    """Emptied particles leave live cells by degradation and exocytosis, first order:

        d(carrier)/dt = -k carrier,    k = rate[kind]

    exactly over ``dt`` (uM of cell volume, 1/min). What leaves is no longer particle material
    of the model. Dead cells keep theirs until they are removed (:func:`remove_dead`). Returns
    the stored decrease of the column (uM x cell volumes) as a float64 sum; serial."""
    lost = 0.0
    for i in range(n):
        lost += _drain(i, kind, state, carrier, rate, dt)
    return lost


@kernel
def remove_dead(n, state, held):
    """Cells marked REMOVED take column ``held`` with them: sets it to 0 in those rows and
    returns what they held (uM x cell volumes) as a float64 sum; serial."""
    total = 0.0
    for i in range(n):
        if state[i] != REMOVED or held[i] == 0.0:
            continue
        total += np.float64(held[i])
        held[i] = 0.0
    return total
