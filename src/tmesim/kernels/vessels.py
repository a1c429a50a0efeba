"""Capillary regression inside tumour tissue (docs/biology.md §9.1).

A perfused capillary voxel whose lattice neighbourhood is mostly cancer tissue stops being
perfused with a constant hazard: co-opted capillaries enclosed by tumour are compressed and
regress. The draw of each capillary is keyed by its site, so the result does not depend on the
order of the capillaries or on the thread count.
"""

from __future__ import annotations

from ._jit import kernel
from .codes import REMOVED, STEM, TUMOR
from .neighbourhood import neighbour_site
from .random import uniform

#: purpose code of the regression draw (one per capillary site and step)
PURPOSE_REGRESS = 80


@kernel
def enclosed_by_cancer(site, occ, kind, state, nz, ny, nx, min_fraction):
    """True when at least ``min_fraction`` of the in-domain neighbours of ``site`` (8 in 2-D,
    26 in 3-D) hold a cancer cell, live or necrotic (necrotic debris still fills its site)."""
    nq = 26 if nz > 1 else 8
    n_in = 0
    n_cancer = 0
    for q in range(nq):
        t = neighbour_site(site, q, nz, ny, nx)
        if t < 0:
            continue
        n_in += 1
        j = occ[t]
        if j >= 0 and (kind[j] == TUMOR or kind[j] == STEM) and state[j] != REMOVED:
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
