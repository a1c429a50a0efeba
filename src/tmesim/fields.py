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

from dataclasses import dataclass

import numpy as np

from .errors import SimulationError
from .kernels import diffusion as kd
from .kernels import exchange as kx


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
        self._vcoeffs = {}
        self._kf = None
        #: flat indices of masked (non-conducting) voxels, or None
        self._masked = None
        #: field index -> (flat voxel indices, held values) of interior Dirichlet voxels
        self._fixed = {}

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

    # ------------------------------------------------------------------ geometry
    def set_geometry(self, mask=None, diffusivity_factor=None) -> None:
        """Declare non-conducting voxels and a per-voxel diffusivity factor.

        ``mask`` (bool, grid shape) marks voxels no flux enters or leaves (e.g. alveolar air);
        their values are set to 0 and kept there by the solver. ``diffusivity_factor`` (>= 0,
        broadcastable to the grid shape) multiplies every field's D voxel by voxel; a face between two voxels
        conducts with the harmonic mean of their factors (0 if either is masked). Either switches
        :meth:`diffuse` to the variable-coefficient kernels; pass both ``None`` to go back.
        """
        if mask is None and diffusivity_factor is None:
            self._kf = None
            self._masked = None
        else:
            kf = np.ones(self.shape3, dtype=self.dtype)
            if diffusivity_factor is not None:
                grid = self.shape3[1:] if self.ndim == 2 else self.shape3
                fac = np.asarray(diffusivity_factor, dtype=np.float64)
                fac = np.broadcast_to(fac, grid).reshape(self.shape3)
                if not np.all(np.isfinite(fac)) or np.any(fac < 0):
                    raise ValueError("diffusivity_factor must be finite and >= 0")
                kf[...] = fac
            masked = np.zeros(self.shape3, dtype=bool)
            if mask is not None:
                masked = np.asarray(mask, dtype=bool).reshape(self.shape3).copy()
                kf[masked] = 0.0
            self._kf = kf
            self._masked = np.flatnonzero(masked) if masked.any() else None
            self.impose_fixed()
        self._dt = None

    def set_fixed(self, name: str, where, value) -> None:
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
        if self.variable:
            self._prepare_variable()
        self._dt = dt

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

    def diffuse(self, dt: float) -> None:
        """Advance every field by one implicit LOD step of ``dt`` minutes (x, y, then z)."""
        if self._dt != dt:
            self._prepare(dt)
        if self.variable:
            self._diffuse_variable()
        elif self.ndim == 3:
            cx, cy = self._coeffs["x"], self._coeffs["y"]
            kd.sweep_xy(self.data, *cx, *cy)
            kd.sweep_z(self.data, *self._coeffs["z"])
        else:
            kd.sweep_x(self.data, *self._coeffs["x"])
            kd.sweep_y(self.data, *self._coeffs["y"])

    def _diffuse_variable(self) -> None:
        self.impose_fixed()
        u = self.data
        nf, nz, ny, nx = u.shape
        kf = self._kf_eff
        fx = self._free
        kd.sweep_var_x(u, self._faces["x"], kf, fx, *self._vcoeffs["x"])
        kd.sweep_var_lanes(
            u.reshape(nf * nz, ny, nx),
            self._faces["y"],
            kf,
            fx.reshape(nf * nz, ny, nx),
            nz,
            *self._vcoeffs["y"],
        )
        if self.ndim == 3:
            m = ny * nx
            kd.sweep_var_lanes(
                u.reshape(nf, nz, m),
                self._faces["z"].reshape(1, nz, m),
                kf.reshape(1, nz, m),
                fx.reshape(nf, nz, m),
                1,
                *self._vcoeffs["z"],
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
