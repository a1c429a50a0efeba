"""Diffusing fields: one contiguous array per field set, solved with the LOD kernels.

:class:`FieldSet` owns ``data[f, z, y, x]`` for every field of a scenario, the precomputed
Thomas factors of each field and axis, and the boundary contributions. :meth:`FieldSet.diffuse`
advances all fields by one diffusion step; :meth:`FieldSet.apply_sink` applies first-order
per-voxel uptake implicitly. The numerical method is described in docs/numerics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SimulationError
from .kernels import diffusion as kd


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


_AXES = (("x", -1), ("y", -2), ("z", -3))


class FieldSet:
    """All diffusing fields of a run on a ``(nz, ny, nx)`` grid of cubic voxels."""

    def __init__(self, specs, shape, voxel_um: float, dtype="float64"):
        shape = tuple(int(n) for n in shape)
        self.ndim = len(shape)
        self.shape3 = (1, *shape) if self.ndim == 2 else shape
        self.specs = list(specs)
        self.names = [s.name for s in self.specs]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.voxel_um = float(voxel_um)
        self.dtype = np.dtype(dtype)
        nf = len(self.specs)
        self.data = np.empty((nf, *self.shape3), dtype=self.dtype)
        for i, s in enumerate(self.specs):
            self.data[i] = s.initial
        self._dt = None
        self._coeffs = {}

    @classmethod
    def from_scenario(cls, scenario) -> FieldSet:
        """Build the field set a scenario describes."""
        specs = []
        for name, fc in scenario.fields.items():
            bc = {}
            for side, cond in fc.boundary.items():
                if cond.dirichlet is not None:
                    bc[side] = ("dirichlet", float(cond.dirichlet))
                else:
                    bc[side] = ("neumann", float(cond.neumann))
            specs.append(
                FieldSpec(
                    name, fc.units, fc.diffusion_um2_per_min, fc.decay_per_min, fc.initial, bc
                )
            )
        return cls(
            specs, scenario.domain.shape, scenario.domain.voxel_um, scenario.numerics.precision
        )

    # ------------------------------------------------------------------ views
    def __getitem__(self, name: str) -> np.ndarray:
        """The array of one field with the scenario's rank (``(ny, nx)`` or ``(nz, ny, nx)``)."""
        arr = self.data[self.index[name]]
        return arr[0] if self.ndim == 2 else arr

    def flat(self, name: str) -> np.ndarray:
        """A flat view of one field, indexed by lattice site."""
        return self.data[self.index[name]].reshape(-1)

    # ------------------------------------------------------------------ coefficients
    def _prepare(self, dt: float) -> None:
        """Precompute Thomas factors and boundary right-hand sides for step ``dt`` (min)."""
        nf = len(self.specs)
        h2 = self.voxel_um**2
        active = _AXES[: self.ndim]
        nsweeps = len(active)
        self._coeffs = {}
        for name, ax in active:
            n = self.shape3[ax]
            r = np.empty(nf, dtype=self.dtype)
            cp = np.empty((nf, n), dtype=self.dtype)
            inv = np.empty((nf, n), dtype=self.dtype)
            lo_rhs = np.zeros(nf, dtype=self.dtype)
            hi_rhs = np.zeros(nf, dtype=self.dtype)
            for f, s in enumerate(self.specs):
                rf = s.diffusion_um2_per_min * dt / h2
                diag0 = 1.0 + dt * s.decay_per_min / nsweeps
                lo_d = hi_d = 0.0
                for side, is_lo in ((f"{name}_min", True), (f"{name}_max", False)):
                    cond = s.boundary.get(side)
                    if cond is None:
                        continue
                    kind, val = cond
                    if kind == "dirichlet":
                        add_d, add_rhs = 2.0 * rf, 2.0 * rf * val
                    else:
                        add_d, add_rhs = 0.0, dt * val / self.voxel_um
                    if is_lo:
                        lo_d, lo_rhs[f] = add_d, add_rhs
                    else:
                        hi_d, hi_rhs[f] = add_d, add_rhs
                tmp_cp = np.empty(n)
                tmp_inv = np.empty(n)
                kd.thomas_factors(n, rf, diag0, lo_d, hi_d, tmp_cp, tmp_inv)
                r[f] = rf
                cp[f] = tmp_cp
                inv[f] = tmp_inv
            self._coeffs[name] = (r, cp, inv, lo_rhs, hi_rhs)
        self._dt = dt

    # ------------------------------------------------------------------ stepping
    def diffuse(self, dt: float) -> None:
        """Advance every field by one implicit LOD step of ``dt`` minutes (x, y, then z)."""
        if self._dt != dt:
            self._prepare(dt)
        for name, sweep in (("x", kd.sweep_x), ("y", kd.sweep_y), ("z", kd.sweep_z)):
            c = self._coeffs.get(name)
            if c is not None:
                sweep(self.data, *c)

    def apply_sink(self, sink_per_min: np.ndarray, dt: float) -> None:
        """Apply per-voxel first-order uptake ``sink_per_min`` (shape of ``data``) implicitly."""
        kd.uptake_implicit(self.data, sink_per_min, dt)

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
