"""Per-cell secretion, uptake and export, exchanged with each cell's internal pool.

BioFVM couples a cell to the voxel ``v`` that contains it (physicell.md section 2):

    d rho / dt = c S (T - rho) - c U rho + E / V_v,     c = V_c / V_v,

with secretion rate ``S`` (1/min) toward the target ``T``, uptake rate ``U`` (1/min) and net
export ``E`` (amount/min). Each step is solved implicitly for the first two terms and then the
export is added:

    rho' = (rho + dt c S T) / (1 + dt c (S + U)),     rho'' = rho' + dt E / V_v.

The amount that leaves the voxel, ``(rho - rho'') V_v``, is added to the cell's internal amount,
so ``sum(rho) V_v + sum(internal)`` is conserved to round-off. Cells sharing a voxel are applied
one after another in array order (as BioFVM does). The only parallel loop is over fields, whose
updates are independent, so the result does not depend on the thread count.
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel


@kernel(parallel=True)
def cell_exchange(
    u, n, site, secretion, target, uptake, export, vol_ratio, voxel_volume, internal, dt
):
    """Apply the BioFVM cell source/sink update for cells ``0..n-1``.

    Parameters
    ----------
    u : (nf, nvox) array, the fields (a flat view of ``FieldSet.data``), updated in place.
    n : number of cells to apply (the first ``n`` rows).
    site : (ncap,) int array, flat voxel index of each cell; negative entries are skipped.
    secretion, target, uptake, export : (ncap, nf) arrays (1/min, field units, 1/min,
        amount/min).
    vol_ratio : (ncap,) array, cell volume over voxel volume.
    voxel_volume : voxel volume (um**3).
    internal : (ncap, nf) array, internal amount of each cell (field units * um**3), updated.
    dt : step (min).
    """
    nf = u.shape[0]
    for f in prange(nf):
        for c in range(n):
            s = site[c]
            if s < 0:
                continue
            rho = u[f, s]
            k = dt * vol_ratio[c]
            sec = secretion[c, f]
            new = (rho + k * sec * target[c, f]) / (1.0 + k * (sec + uptake[c, f]))
            new = new + dt * export[c, f] / voxel_volume
            u[f, s] = new
            internal[c, f] += (rho - u[f, s]) * voxel_volume
