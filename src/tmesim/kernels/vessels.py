"""Vascular remodelling: capillary regression inside tumour tissue (docs/biology.md §9.1) and
VEGF-driven angiogenesis with immature, leaky vessels (§9.2).

* A perfused capillary voxel whose lattice neighbourhood is mostly cancer tissue stops being
  perfused with a constant hazard: capillaries enclosed by tumour are compressed and regress.
* A perfused voxel sprouts into a face neighbour with a hazard that rises with VEGF there (a Hill
  function); the sprout picks the eligible neighbour with the most VEGF, and a site is eligible
  only when no other perfused voxel touches it, so new vessels grow as threads, not sheets.
* An angiogenic (immature) vessel regresses with a constant hazard while VEGF at its voxel is
  below a survival level (VEGF withdrawal).

Each draw is keyed by the site it belongs to, so the result does not depend on the order of the
sites or on the thread count.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .codes import REMOVED
from .neighbourhood import face_site_at, is_cancer, site_coords
from .random import uniform

#: purpose code of the regression draw (one per capillary site and step)
PURPOSE_REGRESS = 80
#: purpose code of the sprouting draw (one per perfused site and step)
PURPOSE_SPROUT = 81
#: purpose code of the regression draw of an immature vessel without VEGF
PURPOSE_WITHDRAW = 82
#: purpose codes of the two uniforms behind a new vessel's leakiness (Box-Muller)
PURPOSE_LEAK_A = 83
PURPOSE_LEAK_B = 84
#: purpose code of a new vessel's perfusion draw
PURPOSE_PERFUSION = 85


@kernel
def enclosed_by_cancer(site, occ, kind, state, nz, ny, nx, min_fraction):
    """True when at least ``min_fraction`` of the in-domain neighbours of ``site`` (8 in 2-D,
    26 in 3-D) hold a cancer cell, live or necrotic (necrotic debris still fills its site).
    The coordinates of ``site`` are found once; the neighbours are walked from them."""
    z, y, x = site_coords(site, ny, nx)
    zlo = -1 if nz > 1 else 0
    n_in = 0
    n_cancer = 0
    for zz in range(max(z + zlo, 0), min(z - zlo + 1, nz)):
        for yy in range(max(y - 1, 0), min(y + 2, ny)):
            for xx in range(max(x - 1, 0), min(x + 2, nx)):
                t = (zz * ny + yy) * nx + xx
                if t == site:
                    continue
                n_in += 1
                j = occ[t]
                if j >= 0 and is_cancer(kind[j]) and state[j] != REMOVED:
                    n_cancer += 1
    return n_in > 0 and n_cancer >= min_fraction * n_in


@kernel
def capillary_regression(sites, occ, kind, state, nz, ny, nx, min_fraction, p, seed, step, out):
    """``out[i] = True`` when capillary ``sites[i]`` regresses this step: it is enclosed by
    cancer (:func:`enclosed_by_cancer`) and its draw, keyed by ``(seed, site, step)``, falls
    below ``p``. Returns the number that regress."""
    n = 0
    for i in range(sites.shape[0]):
        s = sites[i]
        hit = False
        if enclosed_by_cancer(s, occ, kind, state, nz, ny, nx, min_fraction):
            hit = uniform(seed, s, step, PURPOSE_REGRESS) < p
        out[i] = hit
        if hit:
            n += 1
    return n


@kernel
def touches_other_vessel(t, parent, perfused, nz, ny, nx):
    """True when a perfused voxel other than ``parent`` is among the lattice neighbours of site
    ``t`` (8 in 2-D, 26 in 3-D)."""
    z, y, x = site_coords(t, ny, nx)
    zlo = -1 if nz > 1 else 0
    for zz in range(max(z + zlo, 0), min(z - zlo + 1, nz)):
        for yy in range(max(y - 1, 0), min(y + 2, ny)):
            for xx in range(max(x - 1, 0), min(x + 2, nx)):
                u = (zz * ny + yy) * nx + xx
                if u != t and u != parent and perfused[u]:
                    return True
    return False


@kernel
def sprout_targets(sites, perfused, open_, vegf, nz, ny, nx, law, seed, step, out):
    """Where each perfused voxel ``sites[i]`` sprouts this step: ``out[i]`` is the new vessel
    site, or -1.

    The candidates are the face neighbours ``t`` that are ``open_`` (tissue that conducts and
    may hold a vessel), not perfused, and touched by no perfused voxel but ``sites[i]``
    (:func:`touches_other_vessel`); the sprout heads for the candidate with the most VEGF (the
    first in face order, -z, +z, -y, +y, -x, +x, on ties) and forms with probability
    ``p_max * H(vegf[t])``, where ``law = (p_max, half, h)`` and
    ``H(v) = v^h / (v^h + half^h)``, by a draw keyed by ``(seed, sites[i], step)``. Returns the
    number of sprouts; two sprouts may name the same site. The coordinates of each site are
    found once, and its face neighbours from them.
    """
    p_max, half, hill = law
    first = 0 if nz > 1 else 2  # 2-D: the faces along y and x only
    n = 0
    for i in range(sites.shape[0]):
        s = sites[i]
        z, y, x = site_coords(s, ny, nx)
        best = -1
        best_v = -1.0
        for f in range(first, 6):
            t = face_site_at(s, f, z, y, x, nz, ny, nx)
            if t < 0 or perfused[t] or not open_[t]:
                continue
            if touches_other_vessel(t, s, perfused, nz, ny, nx):
                continue
            if vegf[t] > best_v:
                best_v = vegf[t]
                best = t
        out[i] = -1
        if best < 0 or best_v <= 0.0:
            continue
        vh = best_v**hill
        if uniform(seed, s, step, PURPOSE_SPROUT) < p_max * vh / (vh + half**hill):
            out[i] = best
            n += 1
    return n


@kernel
def vegf_withdrawal(sites, vegf, survival, p, seed, step, out):
    """``out[i] = True`` when immature vessel ``sites[i]`` regresses this step: VEGF at its voxel
    is below ``survival`` and its draw, keyed by ``(seed, site, step)``, falls below ``p``.
    Returns the number that regress."""
    n = 0
    for i in range(sites.shape[0]):
        s = sites[i]
        hit = vegf[s] < survival and uniform(seed, s, step, PURPOSE_WITHDRAW) < p
        out[i] = hit
        if hit:
            n += 1
    return n


@kernel
def vessel_traits(sites, sigma, seed, step, leak, perfusion):
    """The traits of new, angiogenic vessels at ``sites``, from draws keyed by ``(seed, site,
    step)``: ``leak[i]``, a log-normal wall-permeability factor with median 1 and log standard
    deviation ``sigma`` (Box-Muller from two uniforms), and ``perfusion[i]``, uniform on
    [0, 1): the share of full blood supply the vessel carries."""
    for i in range(sites.shape[0]):
        s = sites[i]
        u1 = uniform(seed, s, step, PURPOSE_LEAK_A)
        u2 = uniform(seed, s, step, PURPOSE_LEAK_B)
        z = np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
        leak[i] = np.exp(sigma * z)
        perfusion[i] = uniform(seed, s, step, PURPOSE_PERFUSION)
