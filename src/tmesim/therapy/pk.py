"""Systemic pharmacokinetics: linear one- or two-compartment models with exact stepping.

State per agent: amounts (mg) in the central compartment (plasma, volume ``V_c``), in the
peripheral compartment (``V_p``), and the cumulative amount cleared. With clearance ``CL`` and
inter-compartmental clearance ``Q`` (L/h):

    dA_c/dt = R(t) - (CL + Q)/V_c A_c + Q/V_p A_p
    dA_p/dt = Q/V_c A_c - Q/V_p A_p
    dA_cl/dt = CL/V_c A_c

``R(t)`` is the infusion rate (mg/h), piecewise constant; boluses add to ``A_c`` at an instant.
Between events the system is linear with constant input, so one step is exact:

    x(t + h) = e^{M h} x(t) + (integral_0^h e^{M s} ds) b,

evaluated together as the exponential of the augmented matrix [[M, b], [0, 0]] (Van Loan).
``A_c + A_p + A_cl`` equals the amount dosed to round-off, which the tests check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring with a degree-18 Taylor sum.

    Meant for the small, well-conditioned matrices of compartment models; accurate to a few
    ulps there (tests compare with the closed forms).
    """
    a = np.asarray(a, dtype=np.float64)
    norm = np.abs(a).sum(axis=1).max() if a.size else 0.0
    s = max(0, int(np.ceil(np.log2(norm / 0.5))) + 1) if norm > 0.5 else 0
    x = a / (2.0**s)
    term = np.eye(a.shape[0])
    out = np.eye(a.shape[0])
    for k in range(1, 19):
        term = term @ x / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


@dataclass(frozen=True)
class PKModel:
    """Linear PK parameters: volumes in L, clearances in L/h (``q = 0``: one compartment)."""

    v_central_L: float
    clearance_L_per_h: float
    q_L_per_h: float = 0.0
    v_peripheral_L: float = 0.0

    def matrix(self) -> np.ndarray:
        """The rate matrix M of ``x = (A_c, A_p, A_cl)``, 1/h."""
        vc, cl, q, vp = self.v_central_L, self.clearance_L_per_h, self.q_L_per_h, self.v_peripheral_L
        m = np.zeros((3, 3))
        m[0, 0] = -(cl + q) / vc
        m[2, 0] = cl / vc
        if q > 0 and vp > 0:
            m[0, 1] = q / vp
            m[1, 0] = q / vc
            m[1, 1] = -q / vp
        return m

    @classmethod
    def from_half_lives(cls, v_central_L, half_life_h, *, alpha_half_life_h=None,
                        v_peripheral_L=None) -> PKModel:
        """One compartment from a half-life; two if a distribution half-life and V_p are given.

        For two compartments the micro-constants follow from the hybrid rates
        alpha = ln2 / t_alpha, beta = ln2 / t_beta and the volume ratio (standard relations:
        k21 = Q / V_p with alpha beta = k10 k21 and alpha + beta = k10 + k12 + k21).
        """
        beta = np.log(2.0) / half_life_h
        if alpha_half_life_h is None:
            return cls(v_central_L, beta * v_central_L)
        alpha = np.log(2.0) / alpha_half_life_h
        ratio = v_peripheral_L / v_central_L  # = k12 / k21
        # unknowns k10, k21 (k12 = ratio k21): alpha beta = k10 k21, alpha + beta = k10 + (1 + ratio) k21
        # -> (1 + ratio) k21^2 - (alpha + beta) k21 + alpha beta = 0; take the root in (beta, alpha)
        a, b, c = 1.0 + ratio, -(alpha + beta), alpha * beta
        roots = np.roots([a, b, c]).real
        # Both positive roots reproduce alpha, beta and V_p / V_c; they differ in how the fast
        # phase splits between distribution and elimination. The larger k21 gives the smaller
        # elimination clearance k10 V_c: distribution dominates the alpha phase, as for drugs
        # with a large V_ss such as doxorubicin (docs/pharmacology.md §2).
        k21 = float(roots[(roots > 0)].max())
        k10 = alpha * beta / k21
        q = k21 * v_peripheral_L
        return cls(v_central_L, k10 * v_central_L, q, v_peripheral_L)


@dataclass(frozen=True)
class Administration:
    """One dose: ``amount_mg`` given at ``start_h`` as a bolus (``duration_h == 0``) or infusion."""

    start_h: float
    amount_mg: float
    duration_h: float = 0.0


def schedule(start_h: float, every_h: float, count: int, amount_mg: float,
             duration_h: float = 0.0) -> list[Administration]:
    """``count`` doses of ``amount_mg`` every ``every_h`` hours from ``start_h``."""
    return [Administration(start_h + i * every_h, amount_mg, duration_h) for i in range(count)]


class PKState:
    """Amounts of one agent in the body, advanced exactly across dosing events."""

    def __init__(self, model: PKModel, doses):
        self.model = model
        self.doses = sorted(doses, key=lambda d: d.start_h)
        self.t_h = 0.0
        self.x = np.zeros(3)  # central, peripheral, cleared (mg)
        self.dosed_mg = 0.0
        self._m = model.matrix()
        self._given = [False] * len(self.doses)
        self.lost_mg = 0.0  # removed by the first-order loss of advance (loss_per_h)
        self.received_mg = 0.0  # added by receive

    def _rate(self, t0: float, t1: float) -> float:
        """Infusion rate (mg/h), constant on [t0, t1) by construction of the breakpoints."""
        r = 0.0
        mid = 0.5 * (t0 + t1)
        for d in self.doses:
            if d.duration_h > 0 and d.start_h <= mid < d.start_h + d.duration_h:
                r += d.amount_mg / d.duration_h
        return r

    def _breakpoints(self, t0: float, t1: float) -> list[float]:
        pts = {t1}
        for d in self.doses:
            for t in (d.start_h, d.start_h + d.duration_h):
                if t0 < t < t1:
                    pts.add(t)
        return sorted(pts)

    def _boluses_at(self, t: float) -> None:
        for i, d in enumerate(self.doses):
            if not self._given[i] and d.duration_h == 0 and d.start_h <= t + 1e-12:
                self.x[0] += d.amount_mg
                self.dosed_mg += d.amount_mg
                self._given[i] = True

    def advance(self, t_end_h: float, sink_L_per_h: float = 0.0, loss_per_h: float = 0.0,
                loss_below_mg: float = math.inf) -> float:
        """Advance to ``t_end_h``; ``sink_L_per_h`` is extra plasma clearance into tissue.

        The tissue flux is accumulated in :attr:`to_tissue_mg` (it leaves plasma exactly as the
        coupling code puts it into the lattice).

        ``loss_per_h`` is a first-order loss from the central compartment (1/h) that acts in
        each interval between dosing events whose central amount, after that instant's boluses,
        is below ``loss_below_mg``; the rate is held over the interval. What it removes is added
        to :attr:`lost_mg` and returned (mg). Micelles that dissociate below their critical
        micelle concentration use it (docs/pharmacology.md §13.4).
        """
        self._boluses_at(self.t_h)
        t = self.t_h
        lost = 0.0
        for t_next in self._breakpoints(t, t_end_h):
            h = t_next - t
            if h > 0:
                r = self._rate(t, t_next)
                m = self._m.copy()
                if sink_L_per_h:
                    m[0, 0] -= sink_L_per_h / self.model.v_central_L
                loss = loss_per_h if loss_per_h > 0 and self.x[0] < loss_below_mg else 0.0
                size = 6 if loss else 5
                aug = np.zeros((size, size))
                if loss:
                    m[0, 0] -= loss
                    aug[5, 0] = loss
                aug[:3, :3] = m
                aug[0, 3] = r  # constant infusion into the central compartment
                aug[4, 0] = sink_L_per_h / self.model.v_central_L
                e = expm(aug * h)
                before = np.zeros(size)
                before[:3] = self.x
                before[3] = 1.0
                after = e @ before
                self.x = after[:3]
                self.to_tissue_mg = getattr(self, "to_tissue_mg", 0.0) + after[4]
                if loss:
                    lost += after[5]
                for d in self.doses:
                    if d.duration_h > 0:
                        lo, hi = max(t, d.start_h), min(t_next, d.start_h + d.duration_h)
                        if hi > lo:
                            self.dosed_mg += d.amount_mg * (hi - lo) / d.duration_h
            t = t_next
            self.t_h = t
            self._boluses_at(t)
        self.lost_mg += lost
        return lost

    def receive(self, amount_mg: float) -> None:
        """Add ``amount_mg`` to plasma now from another agent's state (e.g. the drug of
        dissociated micelles); it is counted in :attr:`received_mg`, not as dosed."""
        self.x[0] += amount_mg
        self.received_mg += amount_mg

    def inject(self, amount_mg: float) -> None:
        """Add ``amount_mg`` to plasma now (e.g. the systemically absorbed part of an inhaled
        dose); it counts as dosed."""
        self.x[0] += amount_mg
        self.dosed_mg += amount_mg

    def transfer_to_tissue(self, amount_mg: float) -> None:
        """Move ``amount_mg`` from plasma into the simulated tissue (negative: back to plasma)."""
        self.x[0] -= amount_mg
        self.to_tissue_mg = getattr(self, "to_tissue_mg", 0.0) + amount_mg

    @property
    def plasma_mg_per_L(self) -> float:
        """Plasma (central) concentration, mg/L."""
        return self.x[0] / self.model.v_central_L

    @property
    def accounted_mg(self) -> float:
        """Central + peripheral + cleared + moved to tissue + lost, less received (equals
        :attr:`dosed_mg`)."""
        return float(self.x.sum() + getattr(self, "to_tissue_mg", 0.0) + self.lost_mg
                     - self.received_mg)
