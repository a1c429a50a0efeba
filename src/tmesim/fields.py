"""Diffusing fields: one contiguous array per field set, solved with the LOD kernels.

:class:`FieldSet` owns ``data[f, z, y, x]`` for every field of a scenario, the precomputed
Thomas factors of each field and axis, and the boundary contributions. :meth:`FieldSet.diffuse`
advances all fields by one diffusion step; :meth:`FieldSet.apply_sink` applies first-order
per-voxel uptake implicitly; :meth:`FieldSet.exchange` applies BioFVM-style per-cell
secretion/uptake/export with exact bookkeeping of each cell's internal amount.

:meth:`FieldSet.set_geometry` (non-conducting mask, per-voxel diffusivity factor) and
:meth:`FieldSet.set_fixed` (interior Dirichlet voxels) switch :meth:`diffuse` from the
precomputed constant-coefficient kernels to the variable-coefficient ones. Cells should not sit
in masked voxels: masked voxels are reset to 0 before every diffusion step. The numerical
method is described in docs/numerics.md.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import numba
import numpy as np

from .errors import SimulationError
from .kernels import diffusion as kd
from .kernels import exchange as kx
from .kernels import implicit as ki


@dataclass(frozen=True)
class FieldSpec:
    """Transport parameters of one field in internal units (um, min)."""

    name: str
    units: str
    diffusion_um2_per_min: float
    decay_per_min: float
    initial: float
    #: per side name: ("dirichlet", value) or ("neumann", flux)
    boundary: dict
    #: time-stepping scheme of this field ("lod", "douglas" or "implicit"); None: the field
    #: set's own
    scheme: str | None = None
    #: the field takes one step of ``every`` times the step on every ``every``-th call of
    #: :meth:`FieldSet.diffuse` (per-field sub-stepping)
    every: int = 1
    #: implicit solves: the tolerance relative to the field's scale; None: the field set's own
    rtol: float | None = None


_AXES = (("x", -1), ("y", -2), ("z", -3))
#: a geometry change touching at most this fraction of the voxels updates the solver's
#: coefficients in place (faces and lines through the changed voxels); a larger one rebuilds them
INCREMENTAL_FRACTION = 0.05
#: bytes the precomputed line factors of the LOD variable-coefficient path may take (two
#: arrays per axis, each the size of the field data); above it the factors are built on the fly
FACTOR_BUDGET = 256 * 2**20
#: the interpreter's thread switch interval (s) while two threads share the transport step
SWITCH_INTERVAL_S = 1e-4
SCHEMES = ("lod", "douglas", "implicit")

#: statistics of the transport solves, kept per field (see :meth:`FieldSet.solver_stats`)
STAT_NAMES = ("solves", "iterations", "max_iterations", "max_residual", "failures", "clipped",
              "fallbacks")


class FieldSet:
    """All diffusing fields of a run on a ``(nz, ny, nx)`` grid of cubic voxels."""

    def __init__(self, specs, shape, voxel_um: float, dtype="float64", scheme="lod", data=None,
                 rtol: float = 1e-6, max_iterations: int = 2000):
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        #: "lod" (sequential backward-Euler sweeps) or "douglas" (Douglas ADI, exact steady state)
        self.scheme = scheme
        shape = tuple(int(n) for n in shape)
        self.ndim = len(shape)
        self.shape3 = (1, *shape) if self.ndim == 2 else shape
        specs = list(specs)

        def own_scheme(s):
            # a field that neither diffuses nor decays nor has boundary conditions never changes
            # in the transport step (e.g. extracellular matrix): it is skipped
            if s.diffusion_um2_per_min == 0 and s.decay_per_min == 0 and not s.boundary:
                return ("static", 1, "")
            own = s.scheme or scheme
            # implicit fields solve one by one anyway: each is a sub-set of its own, so that
            # :meth:`step` can run them on different threads (and with their own tolerance)
            return (own, int(s.every), s.name if own == "implicit" else "")

        # fields are grouped by (scheme, every) into contiguous blocks of ``data``, each solved
        # by a sub-set sharing that memory: implicit, Douglas, LOD, then static fields
        order = ("implicit", "douglas", "lod", "static")
        own = [own_scheme(s) for s in specs]
        keys = sorted(set(own), key=lambda k: (order.index(k[0]), k[1], k[2]))
        if len(keys) > 1:
            pairs = sorted(zip(own, range(len(specs)), strict=True), key=lambda p: keys.index(p[0]))
            specs = [specs[i] for _, i in pairs]
            own = [o for o, _ in pairs]
        self.specs = specs
        self.names = [s.name for s in self.specs]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.voxel_um = float(voxel_um)
        self.dtype = np.dtype(dtype)
        nf = len(self.specs)
        if data is None:
            self.data = np.empty((nf, *self.shape3), dtype=self.dtype)
            for i, s in enumerate(self.specs):
                self.data[i] = s.initial
        else:
            self.data = data
        #: sub-sets of fields with another scheme or step: (slice of data, FieldSet or None)
        self._parts = []
        #: per sub-set: [calls of :meth:`diffuse` per step of its own, calls since its last step]
        self._every = []
        #: the block of static fields (neither diffusing nor decaying), or None
        self._static = None
        if len(keys) > 1 or (keys and keys[0][1] > 1):
            start = 0
            for key in keys:
                k = own.count(key)
                sl = slice(start, start + k)
                start += k
                if key[0] == "static":
                    self._static = sl
                    if len(keys) == 1:
                        self._parts = [(slice(0, 0), None)]
                    continue
                sub = [
                    FieldSpec(s.name, s.units, s.diffusion_um2_per_min, s.decay_per_min,
                              s.initial, s.boundary)
                    for s in self.specs[sl]
                ]
                own_rtol = [s.rtol for s in self.specs[sl] if s.rtol is not None]
                part = FieldSet(sub, shape, voxel_um, dtype, scheme=key[0], data=self.data[sl],
                                rtol=min(own_rtol, default=rtol), max_iterations=max_iterations)
                self._parts.append((sl, part))
                self._every.append([key[1], 0])
        elif keys and keys[0][0] == "static":
            self._parts = [(slice(0, 0), None)]
            self._static = slice(0, nf)
        elif keys:
            self.scheme = keys[0][0]  # every field has the same scheme of its own
            rtol = min((s.rtol for s in specs if s.rtol is not None), default=rtol)
        self._dt = None
        self._coeffs = {}
        self._vcoeffs = {}
        self._kf = None
        #: flat indices of masked (non-conducting) voxels, or None
        self._masked = None
        #: field index -> (flat voxel indices, held values) of interior Dirichlet voxels
        self._fixed = {}
        self._fac = None
        #: flat voxels whose lines' LOD factors wait for the next step (:meth:`_update_geometry`)
        self._factors_due = []
        #: whether the geometry is a mask alone (:meth:`change_mask` may update it in place)
        self._mask_only = False
        self._fallbacks = 0
        self._guard = True
        #: implicit solves: the maximum residual allowed, relative to the field's scale
        self.rtol = float(rtol)
        self.max_iterations = int(max_iterations)
        self._stats = np.zeros((nf, len(STAT_NAMES)))
        #: seconds each task of :meth:`step` took (moving average), to share them out
        self._task_cost = []

    @property
    def douglas_fallbacks(self) -> int:
        """Douglas steps redone with LOD because they would have produced a negative value
        (summed over the sub-sets of a mixed field set)."""
        return self._fallbacks + sum(p.douglas_fallbacks for _, p in self._parts if p is not None)

    @douglas_fallbacks.setter
    def douglas_fallbacks(self, value: int) -> None:
        self._fallbacks = value

    def solved_fields(self) -> list[str]:
        """Fields whose steps have solver statistics (implicit and Douglas fields)."""
        if self._parts:
            return [n for _, p in self._parts if p is not None for n in p.solved_fields()]
        return list(self.names) if self.scheme in ("implicit", "douglas") else []

    def solver_stats(self, reset: bool = False) -> dict[str, dict[str, float]]:
        """Statistics of the transport solves since the last reset, per field that has any.

        For an implicit field: ``solves``, ``iterations`` (total), ``max_iterations`` (of one
        solve), ``max_residual`` (largest final maximum residual relative to the field's
        scale, which bounds the relative error of a step), ``failures`` (solves that stopped
        at ``max_iterations`` above the tolerance) and ``clipped`` (negative values within the
        tolerance set to 0). For a Douglas field: ``solves`` and ``fallbacks`` (steps redone
        with LOD by the positivity guard). ``reset`` zeroes the counters afterwards.
        """
        out = {}
        for _sl, part in self._parts:
            if part is not None:
                out.update(part.solver_stats(reset))
        if self._parts:
            return out
        for f, name in enumerate(self.names):
            if self._stats[f, 0] > 0:
                out[name] = {k: float(v) for k, v in zip(STAT_NAMES, self._stats[f], strict=True)}
        if reset:
            self._stats[:] = 0.0
        return out

    @property
    def positivity_guard(self) -> bool:
        """Redo a Douglas step with LOD when it would produce a negative value (tests turn it
        off); setting it reaches the sub-sets of a mixed field set."""
        return self._guard

    @positivity_guard.setter
    def positivity_guard(self, value: bool) -> None:
        self._guard = bool(value)
        for _, p in self._parts:
            if p is not None:
                p.positivity_guard = value

    #: allow Douglas in 3-D with variable coefficients, where it can amplify (for studies
    #: and tests of that regime only)
    unstable_douglas = False

    @property
    def douglas_usable(self) -> bool:
        """Whether this set's Douglas steps are used: not in 3-D with a mask, diffusivity
        factor or held voxels, where the iteration can amplify (docs/numerics.md); there the
        field set steps with LOD."""
        return self.unstable_douglas or not (self.ndim == 3 and self.variable)

    @classmethod
    def from_scenario(cls, scenario) -> FieldSet:
        """Build the field set a scenario describes."""
        specs = []
        from .therapy.delivery import local_rates as agent_rates

        calls = scenario.diffusion_substeps
        rates = local_rates(scenario)
        dosed = agent_rates(scenario)
        for name, fc in field_configs(scenario).items():
            scheme, steps = choose_steps(
                fc.scheme or scenario.numerics.scheme, rates.get(name, dosed.get(name)),
                fc.substeps, scenario.time.dt_min, calls, scenario.numerics.lod_kdt_max,
                dosed=name in dosed,
            )  # fmt: skip
            bc = {}
            for side, cond in fc.boundary.items():
                if cond.dirichlet is not None:
                    bc[side] = ("dirichlet", float(cond.dirichlet))
                else:
                    bc[side] = ("neumann", float(cond.neumann))
            specs.append(
                FieldSpec(
                    name, fc.units, fc.diffusion_um2_per_min, fc.decay_per_min, fc.initial, bc,
                    scheme, calls // steps,
                    scenario.numerics.agent_solver_rtol if name in dosed else None,
                )
            )
        num = scenario.numerics
        return cls(
            specs,
            scenario.domain.shape,
            scenario.domain.voxel_um,
            num.precision,
            scheme="lod" if num.scheme == "auto" else num.scheme,
            rtol=num.solver_rtol,
            max_iterations=num.solver_max_iterations,
        )

    # ------------------------------------------------------------------ views
    def __getitem__(self, name: str) -> np.ndarray:
        """The array of one field with the scenario's rank (``(ny, nx)`` or ``(nz, ny, nx)``)."""
        arr = self.data[self.index[name]]
        return arr[0] if self.ndim == 2 else arr

    def flat(self, name: str) -> np.ndarray:
        """A flat view of one field, indexed by lattice site."""
        return self.data[self.index[name]].reshape(-1)

    # ------------------------------------------------------------------ geometry
    def set_geometry(self, mask=None, diffusivity_factor=None) -> None:
        """Declare non-conducting voxels and a per-voxel diffusivity factor.

        ``mask`` (bool, grid shape) marks voxels no flux enters or leaves (e.g. alveolar air);
        their values are set to 0 and kept there by the solver. ``diffusivity_factor`` (>= 0,
        broadcastable to the grid shape) multiplies every field's D voxel by voxel; a face
        between two voxels conducts with the harmonic mean of their factors (0 if either is
        masked). Either switches :meth:`diffuse` to the variable-coefficient kernels; pass both
        ``None`` to go back. A change at a few voxels (at most ``INCREMENTAL_FRACTION`` of them)
        updates the solvers' coefficients in place.
        """
        self._mask_only = mask is not None and diffusivity_factor is None
        if mask is None and diffusivity_factor is None:
            kf = masked = changed = None
        else:
            kf = np.ones(self.shape3, dtype=self.dtype)
            if diffusivity_factor is not None:
                grid = self.shape3[1:] if self.ndim == 2 else self.shape3
                fac = np.asarray(diffusivity_factor, dtype=np.float64)
                fac = np.broadcast_to(fac, grid).reshape(self.shape3)
                if not np.all(np.isfinite(fac)) or np.any(fac < 0):
                    raise ValueError("diffusivity_factor must be finite and >= 0")
                kf[...] = fac
            masked = None
            if mask is not None:
                m = np.asarray(mask, dtype=bool).reshape(self.shape3)
                kf[m] = 0.0
                masked = np.flatnonzero(m) if m.any() else None
            changed = None
            if self._kf is not None and self._kf.shape == kf.shape:
                changed = np.flatnonzero(kf != self._kf)
        self._geometry_to_parts(kf, masked, changed)

    def change_mask(self, mask, opened, closed) -> None:
        """The mask-only case of :meth:`set_geometry`, told what changed: ``mask`` (bool, one
        per voxel) is the new mask, ``opened`` the flat voxels that left it and ``closed`` those
        that joined it since the last geometry change (each ascending). The result is that of
        ``set_geometry(mask=mask)``; when the geometry so far is a mask alone, the diffusivity
        factors (1, or 0 where masked) are updated in place at those voxels instead of being
        rebuilt and compared over the whole grid."""
        kf = self._kf
        if kf is None or not self._mask_only:
            self.set_geometry(mask=np.asarray(mask, dtype=bool).reshape(self.shape3))
            return
        # every sub-set holds this same array (set_geometry hands one to all of them)
        flat = kf.reshape(-1)
        flat[closed] = 0.0
        flat[opened] = 1.0
        changed = np.concatenate((opened, closed)).astype(np.int64)
        changed.sort()
        m = np.asarray(mask, dtype=bool).reshape(-1)
        masked = np.flatnonzero(m)
        self._geometry_to_parts(kf, masked if masked.size else None, changed)

    def _geometry_to_parts(self, kf, masked, changed) -> None:
        """Hand a new geometry to every sub-set, then take it here (:meth:`_apply_geometry`)."""
        memo = {}  # the new face conductances, computed by the first sub-set that needs them
        for _, part in self._parts:
            if part is not None:
                part._apply_geometry(kf, masked, changed, memo)
        self._apply_geometry(kf, masked, changed, memo)

    def _apply_geometry(self, kf, masked, changed, memo=None) -> None:
        """Take the diffusivity factors ``kf`` (0 on masked voxels) and the flat ``masked``
        voxels; ``changed`` lists the voxels whose factor differs from the previous geometry
        (None: unknown). ``memo`` is shared by the sub-sets of one geometry change, which hold
        the same grid: the faces it changed are computed once for all of them."""
        incremental = (
            kf is not None and changed is not None and self._dt is not None
            and self._kf is not None and changed.size <= INCREMENTAL_FRACTION * kf.size
        )  # fmt: skip
        self._kf = kf
        self._masked = masked
        if incremental:
            if changed.size:
                memo = {} if memo is None else memo
                if "shut" not in memo:  # the same mask for every sub-set
                    memo["shut"] = self._is_masked(changed)
                gone = changed[memo["shut"]]
                if gone.size:
                    self.data.reshape(len(self.specs), -1)[:, gone] = 0.0
                self._update_geometry(changed, memo)
            return
        if kf is not None and (not self._parts or self._static is not None):
            if self._parts:  # the parts zero their own blocks; the static block is ours
                if masked is not None:
                    self.data[self._static].reshape(-1, kf.size)[:, masked] = 0.0
            else:
                self.impose_fixed()
        self._dt = None

    def _changed_faces(self, changed: np.ndarray, memo: dict) -> dict:
        """Per axis, the flat indices of the faces of the voxels ``changed`` and their new
        conductances (the harmonic mean of the factors either side), kept in ``memo``."""
        if "faces" in memo:
            return memo["faces"]
        nz, ny, nx = self.shape3
        changed = np.ascontiguousarray(changed, dtype=np.int64)
        faces = np.empty((self.ndim, 2 * changed.size), dtype=np.int64)
        g = np.empty((self.ndim, 2 * changed.size))
        count = kd.changed_faces(changed, self._kf.reshape(-1), nz, ny, nx, self.ndim, faces, g)
        out = {name: (faces[a, : count[a]], g[a, : count[a]])
               for a, (name, _) in enumerate(_AXES[: self.ndim])}  # fmt: skip
        memo["faces"] = out
        return out

    def _update_geometry(self, changed: np.ndarray, memo: dict) -> None:
        """Bring faces and identity rows up to date after the diffusivity factor (or the mask)
        changed at the flat voxels ``changed``; only the faces of those voxels are recomputed
        (once per geometry change, ``memo``). The LOD line factors of the lines through them
        are recomputed by the next LOD step (:meth:`_diffuse_factored`), which on two threads
        runs in a transport lane rather than in the serial glue between steps."""
        if self._parts:
            return  # the parts hold the solvers
        self._kf_eff = self._kf
        for name, (faces, g) in self._changed_faces(changed, memo).items():
            self._faces[name].reshape(-1)[faces] = g
        nf = len(self.specs)
        free = self._free.reshape(nf, -1)
        shut = memo["shut"]  # set by _apply_geometry, the only caller
        free[:, changed] = np.where(shut, 0.0, 1.0)
        for f, (idx, _) in self._fixed.items():
            free[f, idx] = 0.0
        if self._fac is not None:
            hold = self._hold.reshape(nf, -1)
            for f, (idx, val) in self._fixed.items():
                hold[f, idx] = val
            hold[:, changed[shut]] = 0.0
            # the lines through these voxels get their factors at the next step (on its lane,
            # :meth:`step`): a line's factors depend only on its geometry then
            self._factors_due.append(changed)
        if self.scheme == "implicit":
            self._system_stale = True  # rebuilt by the next step (on its thread)

    def _is_masked(self, voxels: np.ndarray) -> np.ndarray:
        """Whether each flat voxel is masked (not merely of zero diffusivity)."""
        if self._masked is None:
            return np.zeros(voxels.size, dtype=bool)
        i = np.searchsorted(self._masked, voxels)
        i = np.minimum(i, self._masked.size - 1)
        return self._masked[i] == voxels

    def set_fixed(self, name: str, where, value) -> None:
        """Hold field ``name`` at ``value`` in the voxels ``where`` (see below)."""
        for _, part in self._parts:
            if part is not None and name in part.index:
                part.set_fixed(name, where, value)
        self._set_fixed(name, where, value)

    def _set_fixed(self, name: str, where, value) -> None:
        """Hold field ``name`` at ``value`` (scalar or grid-shaped) in the voxels ``where``.

        Interior Dirichlet voxels (e.g. vessel lumens) enter the implicit solve as identity rows,
        so their neighbours see the held value within the same step. ``where=None`` clears them.
        """
        f = self.index[name]
        if where is None:
            self._fixed.pop(f, None)
        else:
            w = np.asarray(where, dtype=bool).reshape(self.shape3)
            idx = np.flatnonzero(w)
            val = np.broadcast_to(np.asarray(value, dtype=self.dtype), self.shape3)
            val = np.ascontiguousarray(val.reshape(-1)[idx])
            if np.any(~np.isfinite(val)) or np.any(val < 0):
                raise ValueError("held values must be finite and >= 0")
            self._fixed[f] = (idx, val)
            self.data[f].reshape(-1)[idx] = val
        self._dt = None

    @property
    def variable(self) -> bool:
        """True when a mask, a diffusivity factor or held voxels need the variable kernels."""
        return self._kf is not None or bool(self._fixed)

    # ------------------------------------------------------------------ coefficients
    def _boundary_terms(self, s, name, rf, dt):
        """(lo_diag, lo_rhs_dirichlet, lo_flux, hi_diag, hi_rhs_dirichlet, hi_flux) of one axis."""
        out = []
        for side in (f"{name}_min", f"{name}_max"):
            cond = s.boundary.get(side)
            if cond is None:
                out += [0.0, 0.0, 0.0]
            elif cond[0] == "dirichlet":
                out += [2.0 * rf, 2.0 * rf * cond[1], 0.0]
            else:
                out += [0.0, 0.0, dt * cond[1] / self.voxel_um]
        return out

    def _prepare(self, dt: float) -> None:
        """Precompute Thomas factors and boundary right-hand sides for step ``dt`` (min)."""
        nf = len(self.specs)
        h2 = self.voxel_um**2
        active = _AXES[: self.ndim]
        nsweeps = len(active)
        self._coeffs = {}
        self._vcoeffs = {}
        for name, ax in active:
            n = self.shape3[ax]
            r = np.empty(nf, dtype=self.dtype)
            d0 = np.empty(nf, dtype=self.dtype)
            bt = np.zeros((6, nf), dtype=self.dtype)
            cp = np.empty((nf, n), dtype=self.dtype)
            inv = np.empty((nf, n), dtype=self.dtype)
            for f, s in enumerate(self.specs):
                rf = s.diffusion_um2_per_min * dt / h2
                diag0 = 1.0 + dt * s.decay_per_min / nsweeps
                terms = self._boundary_terms(s, name, rf, dt)
                bt[:, f] = terms
                tmp_cp = np.empty(n)
                tmp_inv = np.empty(n)
                kd.thomas_factors(n, rf, diag0, terms[0], terms[3], tmp_cp, tmp_inv)
                r[f] = rf
                d0[f] = diag0
                cp[f] = tmp_cp
                inv[f] = tmp_inv
            lo_rhs = np.ascontiguousarray(bt[1] + bt[2])
            hi_rhs = np.ascontiguousarray(bt[4] + bt[5])
            self._coeffs[name] = (r, cp, inv, lo_rhs, hi_rhs)
            self._vcoeffs[name] = (r, d0, *(np.ascontiguousarray(b) for b in bt))
        self._prepare_douglas(dt)
        self._fac = None
        if self.variable:
            self._prepare_variable()
            if self.scheme != "implicit" and 2 * self.ndim * self.data.nbytes <= FACTOR_BUDGET:
                self._fac = {}
                self._prepare_factors()
        if self.scheme == "implicit":
            self._prepare_implicit(dt)
            self._system_stale = False
        self._dt = dt

    def _prepare_douglas(self, dt: float) -> None:
        """Coefficients of the Douglas step (docs/numerics.md, "Douglas ADI").

        Per axis: ``r``, the six boundary terms of :meth:`_boundary_terms` (residual), and the
        homogeneous implicit factors: the y factor carries ``1 + dt lam`` and the sink; the x
        and z factors have a unit diagonal and no right-hand-side boundary terms.
        """
        nf = len(self.specs)
        zeros = np.zeros(nf, dtype=self.dtype)
        lam = np.array([s.decay_per_min for s in self.specs], dtype=self.dtype)
        dc = {"lam": lam}
        for name, _ in _AXES:
            if name not in self._vcoeffs:  # z of a 2-D grid: no terms
                dc[name] = (zeros, np.zeros((4, nf), self.dtype), np.zeros((6, nf), self.dtype))
                continue
            r, _, *bt = self._vcoeffs[name]
            bt = np.array(bt, dtype=self.dtype)
            b4 = np.ascontiguousarray(np.stack([bt[0], bt[1] + bt[2], bt[3], bt[4] + bt[5]]))
            dc[name] = (r, b4, np.ascontiguousarray(bt))
        # first factor along y: diagonal without the sink
        ny = self.shape3[1]
        r, _, _ = dc["y"]
        bt = dc["y"][2]
        bdiag = np.empty((nf, ny), dtype=self.dtype)
        for f in range(nf):
            row = np.full(ny, 1.0 + dt * lam[f] + 2.0 * r[f])
            row[0] += bt[0, f] - r[f]
            row[-1] += bt[3, f] - r[f]
            bdiag[f] = row
        dc["ybdiag"] = bdiag
        cpy = np.empty((nf, ny), dtype=self.dtype)
        invy = np.empty((nf, ny), dtype=self.dtype)
        for f in range(nf):
            tmp_cp = np.empty(ny)
            tmp_inv = np.empty(ny)
            d0 = 1.0 + dt * float(lam[f])
            kd.thomas_factors(
                ny, float(r[f]), d0, float(bt[0, f]), float(bt[3, f]), tmp_cp, tmp_inv
            )
            cpy[f] = tmp_cp
            invy[f] = tmp_inv
        dc["y_factors"] = (cpy, invy)
        one = np.ones(nf, dtype=self.dtype)
        for name, ax in _AXES[: self.ndim]:
            if name == "y":
                continue
            n = self.shape3[ax]
            r, _, bt = dc[name]
            cp = np.empty((nf, n), dtype=self.dtype)
            inv = np.empty((nf, n), dtype=self.dtype)
            for f in range(nf):
                tmp_cp = np.empty(n)
                tmp_inv = np.empty(n)
                kd.thomas_factors(
                    n, float(r[f]), 1.0, float(bt[0, f]), float(bt[3, f]), tmp_cp, tmp_inv
                )
                cp[f] = tmp_cp
                inv[f] = tmp_inv
            dc[name + "_sweep"] = (r, cp, inv, zeros, zeros)
            dc[name + "_vsweep"] = (r, one, bt[0].copy(), zeros, zeros, bt[3].copy(), zeros, zeros)
        self._dcoeffs = dc

    def _prepare_implicit(self, dt: float, geometry_only: bool = False) -> None:
        """Compact systems of the unsplit backward-Euler step (kernels.implicit.system), one
        per field, and each field's scale (its largest boundary or held value).
        ``geometry_only``: the step and boundaries are as before; the faces or the identity
        rows changed."""
        nz, ny, nx = self.shape3
        kf = self._kf if self._kf is not None else np.ones(self.shape3, dtype=self.dtype)
        if not geometry_only:
            g = self._ig = np.zeros((3, nz, ny, nx), dtype=np.float64)
            if not self.variable:
                g[0, :, :, :-1] = 1.0
                g[1, :, :-1, :] = 1.0
                if self.ndim == 3:
                    g[2, :-1] = 1.0
            self._iterms = []
            h2 = self.voxel_um**2
            for f, s in enumerate(self.specs):
                rf = s.diffusion_um2_per_min * dt / h2
                bt = np.zeros((3, 6))
                scale = 0.0
                for a, (name, _) in enumerate(_AXES[: self.ndim]):
                    for side in (0, 1):
                        cond = s.boundary.get(f"{name}_{('min', 'max')[side]}")
                        if cond is None:
                            continue
                        if cond[0] == "dirichlet":
                            bt[a, 3 * side] = 2.0 * rf
                            bt[a, 3 * side + 1] = 2.0 * rf * cond[1]
                            scale = max(scale, abs(cond[1]))
                        else:
                            bt[a, 3 * side + 2] = dt * cond[1] / self.voxel_um
                if f in self._fixed:
                    scale = max(scale, float(np.max(self._fixed[f][1], initial=0.0)))
                self._iterms.append((rf, 1.0 + dt * s.decay_per_min, bt, scale))
        g = self._ig
        if self.variable:
            for a, (name, _) in enumerate(_AXES[: self.ndim]):
                g[a] = self._faces[name]
            free = self._free
        else:
            free = np.ones(self.data.shape, dtype=self.dtype)
        old = getattr(self, "_icoeffs", None) or []
        self._icoeffs = []
        for f, (rf, d0, bt, scale) in enumerate(self._iterms):
            system = ki.system(free[f], g, kf, self.ndim, rf, d0, bt)
            n1 = system[0].size + 1
            work = old[f][-1] if f < len(old) and old[f][-1].shape[1] >= n1 else None
            if work is None:
                work = np.zeros((ki.N_WORK, n1 + n1 // 4))  # room to grow
            self._icoeffs.append((system, scale, work))

    def _diffuse_implicit(self, dt: float, sink) -> None:
        """One unsplit backward-Euler step per field, solved by PCG (kernels.implicit)."""
        if getattr(self, "_system_stale", False):
            self._prepare_implicit(self._dt, geometry_only=True)
            self._system_stale = False
        sink = self._sink_array(sink)
        self.impose_fixed()
        eps = 8.0 * np.finfo(self.dtype).eps
        for f, (system, scale, work) in enumerate(self._icoeffs):
            u = self.data[f]
            sc = max(scale, float(u.max()))
            tol = max(self.rtol, eps) * sc if sc > 0 else self.rtol
            it, res, clipped = ki.pcg_solve(u, sink[f], dt, system, tol, self.max_iterations,
                                            work)
            st = self._stats[f]
            st[0] += 1
            st[1] += it
            st[2] = max(st[2], it)
            st[3] = max(st[3], res / sc if sc > 0 else res)
            st[4] += res > tol
            st[5] += clipped

    def _prepare_factors(self, voxels: np.ndarray | None = None) -> None:
        """Line factors of the LOD variable path (kernels.diffusion, "factored variable
        path") of every line, or of the lines through the flat ``voxels``."""
        nf = len(self.specs)
        nd = self.ndim
        if voxels is None:
            self._factors_due = []
            # the value of every identity row: held, or 0 when masked (masked wins)
            hold = self._hold = np.zeros(self.data.shape, dtype=self.dtype)
            for f, (idx, val) in self._fixed.items():
                hold[f].reshape(-1)[idx] = val
            if self._masked is not None:
                hold.reshape(nf, -1)[:, self._masked] = 0.0
            self._facs = np.empty((nd, 2, *self.data.shape), dtype=self.dtype)
            self._fac = {name: self._facs[a] for a, (name, _) in enumerate(_AXES[:nd])}
            # the faces live in one stack the kernel reads; _faces holds views of it, so that
            # a geometry update writes them once
            self._gstack = np.stack([self._faces[name] for name, _ in _AXES[:nd]])
            for a, (name, _) in enumerate(_AXES[:nd]):
                self._faces[name] = self._gstack[a]
            vc = [self._vcoeffs[name] for name, _ in _AXES[:nd]]
            self._fr = np.array([c[0] for c in vc], dtype=np.float64)
            self._fd0 = np.array([c[1] for c in vc], dtype=np.float64)
            self._fbt = np.ascontiguousarray(
                np.array([np.stack(c[2:], axis=1) for c in vc], dtype=np.float64)
            )
        kd.all_line_factors(
            self._gstack, self._kf_eff, self._free, self._hold, self._fr, self._fd0, self._fbt,
            self._facs, np.empty(0, np.int64) if voxels is None else voxels.astype(np.int64),
            voxels is None,
        )

    def _diffuse_factored(self, dt: float, sink, source) -> None:
        """LOD step on the precomputed line factors: the forward x pass applies the local terms
        and sets held and masked voxels to their values."""
        if self._factors_due:
            # geometry changes since the last step: the lines through the voxels of any of
            # them, recomputed once (a voxel named twice costs nothing more)
            due = self._factors_due
            self._factors_due = []
            self._prepare_factors(due[0] if len(due) == 1 else np.concatenate(due))
        u = self.data
        nf, nz, ny, nx = u.shape
        if sink is None and source is None:
            src = snk = np.empty((0, 0, 0, 0), dtype=self.dtype)
        else:
            snk = self._sink_array(sink)
            src = self._sink_array(source)
        r = {name: self._vcoeffs[name][0] for name, _ in _AXES[: self.ndim]}
        kd.sweep_fac_x(u, self._fac["x"], self._faces["x"], r["x"], src, snk, dt)
        kd.sweep_fac_lanes(
            u.reshape(nf * nz, ny, nx), self._fac["y"].reshape(2, nf * nz, ny, nx),
            self._faces["y"], r["y"], nz,
        )
        if self.ndim == 3:
            kd.sweep_fac_lanes(
                u.reshape(nf, nz, ny * nx), self._fac["z"].reshape(2, nf, nz, ny * nx),
                self._faces["z"].reshape(1, nz, ny * nx), r["z"], 1,
            )

    def _prepare_variable(self) -> None:
        """Face conductance factors per axis and the identity-row flags of every field."""
        kf = self._kf if self._kf is not None else np.ones(self.shape3, dtype=self.dtype)
        self._kf_eff = kf
        self._faces = {}
        for name, ax in _AXES[: self.ndim]:
            a = np.moveaxis(kf, ax, -1).astype(np.float64)
            g = np.zeros_like(a)
            lo, hi = a[..., :-1], a[..., 1:]
            den = lo + hi
            with np.errstate(invalid="ignore", divide="ignore"):
                g[..., :-1] = np.where(den > 0, 2.0 * lo * hi / np.where(den > 0, den, 1.0), 0.0)
            self._faces[name] = np.ascontiguousarray(np.moveaxis(g, -1, ax), dtype=self.dtype)
        free = np.ones(self.data.shape, dtype=self.dtype)  # 0 marks an identity row
        if self._masked is not None:
            free.reshape(len(self.specs), -1)[:, self._masked] = 0.0
        for f, (idx, _) in self._fixed.items():
            free[f].reshape(-1)[idx] = 0.0
        self._free = free

    # ------------------------------------------------------------------ stepping
    def impose_fixed(self) -> None:
        """Write the held values of interior Dirichlet voxels (and 0 into masked voxels)."""
        for f, (idx, val) in self._fixed.items():
            self.data[f].reshape(-1)[idx] = val
        if self._masked is not None:
            self.data.reshape(len(self.specs), -1)[:, self._masked] = 0.0

    def step(self, dt_agent: float, calls: int, sink=None, source=None, before=None,
             after=None) -> None:
        """Advance every field by one agent step of ``dt_agent`` minutes: ``calls`` calls of
        :meth:`diffuse` of ``dt_agent / calls`` each (``before(i, dt)`` runs before call ``i``
        and ``after(i, dt)`` after it, e.g. the delivery of dosed agents), except that the sub-sets stepping once per agent
        step (``every == calls``: the packaged oxygen and chemokine) take their one step of
        ``dt_agent`` beside them. When the parallel kernels have more than one thread, these
        steps and the sub-stepped calls are shared between this thread and a second one, each
        running its kernels on one thread, the longest first (as timed on earlier steps) to the
        less loaded one. They share no data, so the bits do not depend on the thread count or
        on which thread runs what."""
        whole = [i for i, ev in enumerate(self._every) if calls > 1 and ev[0] == calls]
        dt = dt_agent / calls

        def one_step(i):
            sl, part = self._parts[i]
            part.diffuse(dt_agent, None if sink is None else sink[sl],
                         None if source is None else source[sl])  # fmt: skip

        def sub_stepped():
            for i in range(calls):
                if before is not None:
                    before(i, dt)
                self.diffuse(dt, sink, source, skip=whole)
                if after is not None:
                    after(i, dt)

        tasks = [sub_stepped] + [lambda i=i: one_step(i) for i in whole]
        if len(tasks) == 1 or numba.get_num_threads() < 2:
            for task in tasks:
                task()
            return
        # two lanes, this thread and a second one, each running its kernels on one thread;
        # the tasks go longest first (as timed on earlier steps) to the less loaded lane
        cost = self._task_cost
        if len(cost) != len(tasks):
            cost[:] = [0.0] * len(tasks)
        lanes = ([], [])
        load = [0.0, 0.0]
        for t in sorted(range(len(tasks)), key=lambda t: -cost[t]):
            lane = 0 if load[0] <= load[1] else 1
            lanes[lane].append(t)
            load[lane] += cost[t]
        errors = []

        def run(lane):
            for t in lane:
                t0 = time.perf_counter()
                tasks[t]()
                cost[t] = 0.8 * cost[t] + 0.2 * (time.perf_counter() - t0)

        def second():
            numba.set_num_threads(1)
            try:
                run(lanes[1])
            except BaseException as exc:  # re-raised on the calling thread
                errors.append(exc)

        worker = threading.Thread(target=second, name="tmesim-transport")
        threads = numba.get_num_threads()
        # both lanes alternate Python glue and kernels that release the GIL: hand it over
        # quickly, so that neither waits long for it between two kernels
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        worker.start()
        numba.set_num_threads(1)
        try:
            run(lanes[0])
        finally:
            worker.join()
            numba.set_num_threads(threads)
            sys.setswitchinterval(interval)
        if errors:
            raise errors[0]

    def diffuse(self, dt: float, sink: np.ndarray | None = None, source=None, skip=()) -> None:
        """Advance every field by one diffusion step of ``dt`` minutes.

        ``sink`` (1/min, shaped like :attr:`data`, or None) is a per-voxel first-order uptake
        on top of each field's decay. With ``scheme == "lod"`` it is applied implicitly first
        (:meth:`apply_sink`), then the LOD sweeps (x, y, then z) run. With ``scheme ==
        "douglas"`` it is part of the implicit operator of one Douglas ADI step, whose fixed
        point is the steady state of the unsplit discrete operator. ``skip``: indices of
        sub-sets left alone (:meth:`step` runs them).
        """
        if self._parts:
            for k, ((sl, part), ev) in enumerate(zip(self._parts, self._every, strict=False)):
                if k in skip:
                    continue
                src = None if source is None else source[sl]
                snk = None if sink is None else sink[sl]
                if ev[0] == 1:
                    part.diffuse(dt, snk, src)
                    continue
                # a field stepping every ev[0] calls takes one step of ev[0] calls' length, its
                # sources included (the maps hold for the whole agent step)
                ev[1] += 1
                if ev[1] == ev[0]:
                    ev[1] = 0
                    part.diffuse(dt * ev[0], snk, src)
            if source is not None and self._static is not None:
                self.data[self._static] += dt * source[self._static]
            return
        if self._dt != dt:
            self._prepare(dt)
        if self.scheme == "lod" or (self.scheme == "douglas" and not self.douglas_usable):
            self._step_lod(dt, sink, source)
            return
        if source is not None:
            self.data += dt * np.asarray(source).reshape(self.data.shape)
        if self.scheme == "implicit":
            self._diffuse_implicit(dt, sink)
        else:
            self._diffuse_douglas(dt, sink)

    def _step_lod(self, dt: float, sink, source) -> None:
        """One LOD step: on the precomputed line factors when there are any, else local terms
        first, then the sweeps."""
        if self._fac is not None:
            self._diffuse_factored(dt, sink, source)
            return
        if source is not None:
            self.data += dt * np.asarray(source).reshape(self.data.shape)
        if sink is not None:
            self.apply_sink(sink, dt)
        self._diffuse_lod()

    def _diffuse_lod(self) -> None:
        if self.variable:
            self._diffuse_variable()
        elif self.ndim == 3:
            cx, cy = self._coeffs["x"], self._coeffs["y"]
            kd.sweep_xy(self.data, *cx, *cy)
            kd.sweep_z(self.data, *self._coeffs["z"])
        else:
            kd.sweep_x(self.data, *self._coeffs["x"])
            kd.sweep_y(self.data, *self._coeffs["y"])

    def _sink_array(self, sink):
        if sink is None:
            z = getattr(self, "_zero_sink", None)
            if z is None:
                z = self._zero_sink = np.zeros(self.data.shape, dtype=self.dtype)
            return z
        sink = np.asarray(sink)
        if sink.shape != self.data.shape:
            sink = sink.reshape(self.data.shape)
        if sink.dtype != self.dtype or not sink.flags.c_contiguous:
            sink = np.ascontiguousarray(sink, dtype=self.dtype)
        return sink

    def _diffuse_douglas(self, dt: float, sink) -> None:
        """One Douglas ADI step in delta form (see kernels.diffusion and docs/numerics.md)."""
        sink = self._sink_array(sink)
        u = self.data
        d = getattr(self, "_delta", None)
        if d is None or d.shape != u.shape or d.dtype != u.dtype:
            d = self._delta = np.empty_like(u)
        nf, nz, ny, nx = u.shape
        c = self._dcoeffs
        (rx, bx4, bx6), (ry, by4, by6), (rz, bz4, bz6) = c["x"], c["y"], c["z"]
        lam = c["lam"]
        if self.variable:
            self.impose_fixed()
            kf, fr = self._kf_eff, self._free
            gz = self._faces["z"] if self.ndim == 3 else kf
            kd.douglas_residual_var(
                u, d, sink, fr, kf, (self._faces["x"], self._faces["y"], gz), dt, lam,
                (rx, ry, rz), (bx6, by6, bz6),
            )  # fmt: skip
            d0 = (1.0 + dt * lam).astype(self.dtype)
            kd.douglas_sweep_y_var(
                d, sink, self._faces["y"], kf, fr, dt, ry, d0, by6[0].copy(), by6[3].copy()
            )
            kd.sweep_var_x(d, self._faces["x"], kf, fr, *_lane_args(c["x_vsweep"]))
            if self.ndim == 3:
                m = ny * nx
                kd.sweep_var_lanes(
                    d.reshape(nf, nz, m),
                    self._faces["z"].reshape(1, nz, m),
                    kf.reshape(1, nz, m),
                    fr.reshape(nf, nz, m),
                    1,
                    *_lane_args(c["z_vsweep"]),
                )
        else:
            kd.douglas_residual(u, d, sink, dt, lam, rx, ry, rz, bx4, by4, bz4)
            kd.douglas_sweep_y(d, sink, dt, ry, c["ybdiag"], *c["y_factors"])
            kd.sweep_x(d, *c["x_sweep"])
            if self.ndim == 3:
                kd.sweep_z(d, *c["z_sweep"])
        flags = getattr(self, "_negflags", None)
        if flags is None or flags.size != nf * nz * ny:
            flags = self._negflags = np.zeros(nf * nz * ny, dtype=np.int8)
        kd.douglas_negative_rows(u, d, flags)
        self._stats[:, 0] += 1
        if self._guard and flags.any():
            # positivity guard: redo this step with the LOD path, which is positive for any dt
            self._fallbacks += 1
            self._stats[:, 6] += 1
            self._step_lod(dt, None if sink is self._zero_sink_or_none() else sink, None)
            return
        kd.douglas_add(u, d)

    def _zero_sink_or_none(self):
        return getattr(self, "_zero_sink", None)

    def _diffuse_variable(self) -> None:
        self.impose_fixed()
        u = self.data
        nf, nz, ny, nx = u.shape
        kf = self._kf_eff
        fx = self._free
        kd.sweep_var_x(u, self._faces["x"], kf, fx, *_lane_args(self._vcoeffs["x"]))
        kd.sweep_var_lanes(
            u.reshape(nf * nz, ny, nx),
            self._faces["y"],
            kf,
            fx.reshape(nf * nz, ny, nx),
            nz,
            *_lane_args(self._vcoeffs["y"]),
        )
        if self.ndim == 3:
            m = ny * nx
            kd.sweep_var_lanes(
                u.reshape(nf, nz, m),
                self._faces["z"].reshape(1, nz, m),
                kf.reshape(1, nz, m),
                fx.reshape(nf, nz, m),
                1,
                *_lane_args(self._vcoeffs["z"]),
            )

    def apply_sink(self, sink_per_min: np.ndarray, dt: float) -> None:
        """Apply per-voxel first-order uptake ``sink_per_min`` (shape of ``data``) implicitly."""
        kd.uptake_implicit(self.data, sink_per_min, dt)

    @property
    def voxel_volume(self) -> float:
        """Voxel volume in um**3 (a 2-D grid is one voxel thick)."""
        return self.voxel_um**3

    def exchange(self, n, site, secretion, target, uptake, export, vol_ratio, internal, dt):
        """BioFVM per-cell secretion/uptake/export for cells ``0..n-1`` (see kernels.exchange).

        ``secretion``, ``target``, ``uptake``, ``export`` and ``internal`` are ``(ncells, nf)``;
        ``internal`` (field units * um**3) receives exactly what leaves the field.
        """
        nf = len(self.specs)
        kx.cell_exchange(
            self.data.reshape(nf, -1),
            int(n),
            site,
            secretion,
            target,
            uptake,
            export,
            vol_ratio,
            self.voxel_volume,
            internal,
            dt,
        )

    def total(self, name: str) -> float:
        """Amount of field ``name`` in the domain (sum of values times the voxel volume)."""
        return float(np.sum(self.data[self.index[name]], dtype=np.float64) * self.voxel_volume)

    def check(self, step: int) -> None:
        """Raise :class:`SimulationError` naming the field, voxel and step of a bad value."""
        bad = kd.find_invalid(self.data)
        if bad < 0:
            return
        idx = np.unravel_index(bad, self.data.shape)
        name = self.names[idx[0]]
        voxel = tuple(int(i) for i in (idx[2:] if self.ndim == 2 else idx[1:]))
        value = float(self.data[idx])
        raise SimulationError(
            f"field '{name}' has an invalid value {value!r} at voxel {voxel} "
            f"(index order {'(y, x)' if self.ndim == 2 else '(z, y, x)'}) after agent step {step}; "
            "check the field's sources, uptake and boundary values, or lower "
            "numerics.diffusion_dt_min"
        )


def field_configs(scenario) -> dict:
    """The fields of a run of ``scenario``: its own, then one per dosed agent and per dosed
    nanoparticle formulation (named like it; a formulation's diffusivity from its size,
    :func:`tmesim.therapy.particles.transport_of`).

    An agent's tissue decay is applied exactly by the therapy phase (so that the amount lost is
    accounted for); its field therefore diffuses with zero decay here.
    """
    from .scenario.schema import FieldConfig
    from .therapy.particles import transport_of

    out = dict(scenario.fields)
    for name in scenario.dosed_agents:
        a = scenario.agents[name]
        out[name] = FieldConfig(units=a.units, diffusion_um2_per_min=a.diffusion_um2_per_min)
    for name in scenario.dosed_nanoparticles:
        diff = transport_of(scenario, name)["diffusion_um2_per_min"]
        out[name] = FieldConfig(units="uM", diffusion_um2_per_min=diff)
    return out


def _lane_args(coeffs) -> tuple:
    """``(r, d0, bc)`` for the variable-coefficient sweeps from ``(r, d0, *six boundary
    arrays)`` (:func:`tmesim.kernels.diffusion.sweep_var_lanes`)."""
    r, d0, *bc = coeffs
    return r, d0, tuple(bc)


def local_rates(scenario) -> dict[str, float]:
    """The fastest first-order local rate of each of a scenario's own fields (1/min): its decay
    plus the largest per-voxel rate at which one cell of any kind takes it up or secretes it
    towards a target, ``V_cell / V_voxel * (uptake + secretion rate)`` (oxygen: the oxygen
    uptake, unscaled for a kind whose ``oxygen_uptake_basis`` is 'site'). It sets the LOD
    splitting error, which grows with ``k dt`` (docs/numerics.md)."""
    v_vox = scenario.domain.voxel_um**3
    cells = scenario.cells
    out = {}
    for name, fc in scenario.fields.items():
        fastest = 0.0
        for kind in type(cells).model_fields:
            cfg = getattr(cells, kind)
            ratio = cfg.volume_um3 / v_vox
            site_rate = 0.0  # per-voxel rate of one cell of this kind
            if name == "oxygen":
                o2_ratio = 1.0 if cfg.oxygen_uptake_basis == "site" else ratio
                site_rate = o2_ratio * cfg.oxygen_uptake_per_min
            sec = cfg.secretion.get(name)
            if sec is not None:
                site_rate += ratio * (sec.uptake_per_min + sec.rate_per_min)
            fastest = max(fastest, site_rate)
        out[name] = fc.decay_per_min + fastest
    return out


def choose_steps(scheme, rate, substeps, dt_agent, calls, kdt_max, dosed=False) -> tuple[str, int]:
    """A field's scheme and steps per agent step (docs/numerics.md, "Steps chosen from
    accuracy"). ``rate``: its fastest local rate (1/min); ``substeps``: its own count or None;
    ``dosed``: a dosed agent's field (its plasma forcing and doses change within an agent step,
    so it steps every diffusion step).

    - 'auto' is LOD when some step keeps ``rate * dt <= kdt_max`` (for a dosed agent: the
      diffusion step), implicit otherwise;
    - an LOD field takes the fewest such steps (:func:`accuracy_substeps`);
    - an implicit field that is fast (``rate * dt_agent / calls > kdt_max``: it relaxes within
      a few of the finest steps, and its steady state is exact at any step) takes one step per
      agent step, a slower one a step per diffusion step."""
    fast = rate is not None and rate * dt_agent / calls > kdt_max * (1 + 1e-9)
    if scheme == "auto":
        scheme = "implicit" if fast else "lod"
    if substeps:
        return scheme, substeps
    if rate is None or dosed:
        return scheme, calls
    if scheme == "lod":
        return scheme, accuracy_substeps(rate, dt_agent, calls, kdt_max)
    if scheme == "implicit" and fast:
        return scheme, 1
    return scheme, calls


def accuracy_substeps(rate: float, dt_agent: float, calls: int, kdt_max: float) -> int:
    """The fewest steps per agent step, a divisor of ``calls``, that keep ``rate * dt`` at or
    below ``kdt_max``; ``calls`` (the finest step) when none does."""
    for n in range(1, calls + 1):
        if calls % n == 0 and rate * dt_agent / n <= kdt_max * (1 + 1e-9):
            return n
    return calls

