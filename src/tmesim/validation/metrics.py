"""The read-outs of the validation cases: small named functions of replicated result files.

Every metric takes a :class:`RunData` (the result files of a case's runs, replicate by
replicate, read through :func:`tmesim.load`) and keyword arguments from the case's
``case.yaml``, and returns a :class:`Measurement`: the model value (mean over replicates, with
a 95 % Student-t interval when there are several), the per-replicate values, and what the
case figure draws. :data:`METRICS` maps the names that ``case.yaml`` uses to the functions.

Conventions: times in hours, distances in µm, concentrations in the field's units; the first
record of a file is the initial state (time 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ensemble.stats import mean_ci
from ..errors import UsageError


@dataclass
class Measurement:
    """A model value, its interval and what the figure draws."""

    value: float
    units: str
    per_replicate: list[float] = field(default_factory=list)
    low: float = math.nan
    high: float = math.nan
    display: str = ""
    plot: dict = field(default_factory=dict)

    @classmethod
    def of(cls, values, units: str, plot: dict | None = None) -> Measurement:
        """The mean of per-replicate ``values`` with its 95 % interval."""
        vals = [float(v) for v in values]
        finite = [v for v in vals if math.isfinite(v)]
        if len(finite) < len(vals):  # a replicate without a value: the case has no value
            return cls(math.nan, units, vals, plot=plot or {})
        m, lo, hi = mean_ci(finite)
        return cls(m, units, vals, lo, hi, plot=plot or {})


class RunData:
    """The complete result files of a case's runs: ``files(label)`` in replicate order."""

    def __init__(self, files: dict[str, list[Path]]):
        self._files = {k: [Path(p) for p in v] for k, v in files.items()}

    def files(self, label: str) -> list[Path]:
        """Result files of run ``label``, one per replicate."""
        return self._files[label]

    def series(self, label: str, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(time_h, values)`` of a metric (``tumor_burden``) or a count (``counts/tcell``)
        for every replicate of run ``label``."""
        from ..io import load

        out = []
        for path in self.files(label):
            with load(path) as res:
                group, _, key = name.rpartition("/")
                table = res.counts if group == "counts" else res.metrics
                if key not in table:
                    raise UsageError(
                        f"{path}: no series {name!r}\n  fix: use one of "
                        f"{', '.join(sorted(res.metrics))} or counts/<population>"
                    )
                out.append((np.asarray(res.time_h, float), np.asarray(table[key], float)))
        return out

    def field(self, label: str, name: str, record: int) -> list[np.ndarray]:
        """One frame of field ``name`` for every replicate of run ``label``."""
        from ..io import load

        frames = []
        for path in self.files(label):
            with load(path) as res:
                frames.append(np.asarray(res.field(name, record=record), float))
        return frames

    def scenarios(self, label: str) -> list:
        """The resolved scenario of every replicate of run ``label``."""
        return [_scenario_of(path) for path in self.files(label)]

    def voxel_um(self, label: str) -> float:
        """The lattice spacing of run ``label`` (read from its first replicate)."""
        return float(_scenario_of(self.files(label)[0]).domain.voxel_um)


def _scenario_of(path):
    """The resolved scenario stored in the result file ``path``."""
    from ..io import load

    with load(path) as res:
        return res.scenario


def _window(t: np.ndarray, v: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    sel = (t >= lo - 1e-9) & (t <= hi + 1e-9)
    return t[sel], v[sel]


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    return {
        "xs": [c[0].tolist() for c in curves],
        "ys": [c[1].tolist() for c in curves],
    }


# --------------------------------------------------------------------------- growth
def _nearest(curves, at_h: float) -> list[float]:
    """Each replicate's value at the record nearest ``at_h`` (``curves``: ``(time_h, values)``
    per replicate, as :meth:`RunData.series` gives them)."""
    return [float(v[int(np.argmin(abs(t - at_h)))]) for t, v in curves]


def doubling_time(
    data: RunData, run: str, from_h: float, to_h: float, series: str = "tumor_burden"
) -> Measurement:
    """Doubling time (h) of ``series`` from a least-squares fit of log(count) against time
    over ``[from_h, to_h]``. A shrinking or flat population has no doubling time: the value
    is +inf (a regression never matches a doubling time)."""
    curves = data.series(run, series)
    values = []
    for t, v in curves:
        tw, vw = _window(t, v, from_h, to_h)
        ok = vw > 0
        if ok.sum() < 2:
            values.append(math.inf)
            continue
        slope = np.polyfit(tw[ok], np.log(vw[ok]), 1)[0]
        values.append(math.log(2.0) / slope if slope > 0 else math.inf)
    if all(math.isfinite(v) for v in values):
        m = Measurement.of(values, "h")
    else:
        m = Measurement(math.inf, "h", values, display="no growth")
    m.plot = {"type": "growth", "xlabel": "time (h)", "ylabel": series.replace("_", " "),
              "logy": True, "fit_from_h": from_h, "fit_to_h": to_h, **_mean_curve(curves)}
    return m


def max_regression(data: RunData, run: str, after_h: float, series: str = "tumor_burden"):
    """The largest fall of ``series`` below its running maximum after ``after_h``, as a
    fraction of that maximum (0: it never fell)."""
    curves = data.series(run, series)
    values = []
    for t, v in curves:
        peak = np.maximum.accumulate(v)
        fall = np.where((t >= after_h) & (peak > 0), 1.0 - v / np.where(peak > 0, peak, 1), 0)
        values.append(float(fall.max()))
    m = Measurement.of(values, "1")
    m.plot = {"type": "growth", "xlabel": "time (h)", "ylabel": series.replace("_", " "),
              "logy": True, "marks_h": [after_h], **_mean_curve(curves)}
    return m


def growth_ratio(data: RunData, run: str, from_h: float, to_h: float,
                 series: str = "tumor_burden") -> Measurement:
    """``series`` at ``to_h`` over its value at ``from_h`` (nearest records)."""
    curves = data.series(run, series)
    values = []
    for t, v in curves:
        a = v[int(np.argmin(abs(t - from_h)))]
        b = v[int(np.argmin(abs(t - to_h)))]
        values.append(b / a if a > 0 else math.nan)
    m = Measurement.of(values, "1")
    m.plot = {"type": "growth", "xlabel": "time (h)", "ylabel": series.replace("_", " "),
              "logy": True, "marks_h": [from_h, to_h], **_mean_curve(curves)}
    return m


# --------------------------------------------------------------------------- oxygen
def first_crossing(x, y, level: float, *, log: bool = False) -> float:
    """The first ``x`` at which ``y`` falls below ``level``, interpolated linearly in ``y``
    (in log ``y`` with ``log``) between the samples around it; ``x[0]`` when ``y`` starts
    below, +inf when it never gets there."""
    y = np.asarray(y, float)
    below = np.flatnonzero(y < level)
    if below.size == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        return float(x[0])
    f = np.log if log else (lambda v: v)
    a, b = f(y[i - 1]), f(max(y[i], 1e-300) if log else y[i])
    return float(x[i - 1] + (a - f(level)) / (a - b) * (x[i] - x[i - 1]))


def threshold_distance(data: RunData, run: str, threshold: float, field: str = "oxygen",
                       record: int = 1) -> Measurement:
    """Distance (µm) from the ``x_min`` face at which ``field``, averaged over the other axes,
    first falls below ``threshold``; voxel centres lie at (i + 1/2) voxel from the face.
    +inf when it never does."""
    h = data.voxel_um(run)
    values, profiles = [], []
    for frame in data.field(run, field, record):
        prof = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
        x = (np.arange(prof.size) + 0.5) * h
        profiles.append((x, prof))
        values.append(first_crossing(x, prof, threshold))
    m = Measurement.of(values, "um")
    if not math.isfinite(m.value):
        m.display = f"> {profiles[0][0][-1]:.0f}"
    m.plot = {"type": "axis", "axis": "x", "xlabel": "distance from the vessel wall (µm)",
              "ylabel": f"{field} (mmHg)", "hline": threshold, **_mean_curve(profiles)}
    return m


def spheroid_core_onset(data: RunData, runs: list, threshold: float, field: str = "oxygen",
                        record: int = -1) -> Measurement:
    """The smallest spheroid diameter (µm) whose centre falls below ``threshold``.

    Each run is one packed ball of tumour cells (3-D); its diameter is that of a sphere of the
    same volume as its sites. The centre value is the mean of the 2 x 2 x 2 (or 1) central
    voxels. The onset is interpolated linearly in log(centre value) between the sizes that
    bracket the threshold; +inf ("> largest size") when no size reaches it.
    """
    from ..io import load

    diam, centre = [], []
    for label in runs:
        cvals = []
        for path, frame in zip(data.files(label), data.field(label, field, record), strict=True):
            with load(path) as res:
                n = float(res.counts["tumor"][0] + res.counts["stem"][0])
                h = float(res.scenario.domain.voxel_um)
            sl = tuple(slice((s - 1) // 2, s // 2 + 1) for s in frame.shape)
            cvals.append(float(frame[sl].mean()))
        diam.append(2.0 * (3.0 * n / (4.0 * math.pi)) ** (1.0 / 3.0) * h)
        centre.append(cvals)
    order = np.argsort(diam)
    d = np.asarray(diam)[order]
    c = np.asarray(centre)[order]  # (sizes, replicates)
    values = [first_crossing(d, c[:, k], threshold, log=True) for k in range(c.shape[1])]
    m = Measurement.of(values, "um")
    if not math.isfinite(m.value):
        m.display = f"> {d[-1]:.0f}"
    m.plot = {"type": "axis", "axis": "x", "xlabel": "spheroid diameter (µm)",
              "ylabel": f"{field} at the centre (mmHg)", "hline": threshold, "logy": True,
              "xs": [d.tolist()] * c.shape[1], "ys": c.T.tolist(), "marker": "o"}
    return m


# --------------------------------------------------------------------------- drugs
def fit_log_logistic(conc, surv) -> tuple[float, float]:
    """Least-squares fit of ``s = 1 / (1 + (C / IC50)^h)`` to survival ``surv`` at ``conc``;
    returns ``(IC50, h)``. A grid over log IC50 and h, refined twice around the best point:
    two parameters and a handful of points need no optimiser."""
    c = np.asarray(conc, float)
    s = np.asarray(surv, float)
    lo, hi = math.log(c.min()) - 2.0, math.log(c.max()) + 2.0
    hlo, hhi = 0.2, 5.0
    best = (math.nan, math.nan)
    for _ in range(3):
        li = np.linspace(lo, hi, 161)[:, None]
        hh = np.linspace(hlo, hhi, 97)[None, :]
        err = np.zeros((li.size, hh.size))
        for ci, si in zip(np.log(c), s, strict=True):
            err += (si - 1.0 / (1.0 + np.exp(hh * (ci - li)))) ** 2
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        best = (float(li[i, 0]), float(hh[0, j]))
        dl, dh = (hi - lo) / 16, (hhi - hlo) / 16
        lo, hi = best[0] - dl, best[0] + dl
        hlo, hhi = max(0.05, best[1] - dh), best[1] + dh
    return math.exp(best[0]), best[1]


def ic50(data: RunData, control_run: str, runs: list, at_h: float,
         concentration: str = "doxorubicin_plasma", nominal: list | None = None) -> Measurement:
    """Concentration halving the cell count at ``at_h`` relative to the untreated control.

    Survival of replicate k at a dose is its live cancer cells over those of control replicate
    k (the same seed, so common random numbers). The exposure of a run is the time mean of the
    ``concentration`` metric over its records after time 0, or, for exposures shorter than the
    record interval, the ``nominal`` concentrations of ``runs``. Per replicate, IC50 comes from a
    least-squares fit of the log-logistic curve 1 / (1 + (C / IC50)^h) to the survivals (the
    usual analysis of growth-inhibition assays).
    """
    ctrl = _nearest(data.series(control_run, "tumor_burden"), at_h)
    conc, surv = [], []
    for label in runs:
        burden = data.series(label, "tumor_burden")
        if nominal is None:
            exposure = data.series(label, concentration)
            conc.append(float(np.mean([np.mean(v[t > 0]) for t, v in exposure])))
        else:
            conc.append(float(nominal[len(conc)]))
        surv.append([b / c for b, c in zip(_nearest(burden, at_h), ctrl, strict=True)])
    order = np.argsort(conc)
    x = np.asarray(conc)[order]
    s = np.asarray(surv)[order]
    values = [fit_log_logistic(x, s[:, k])[0] for k in range(s.shape[1])]
    m = Measurement.of(values, "uM")
    m.plot = {"type": "axis", "axis": "x", "logx": True, "xlabel": "exposure (µM)",
              "ylabel": f"cells at {at_h:g} h / untreated", "hline": 0.5,
              "xs": [x.tolist()] * s.shape[1], "ys": s.T.tolist(), "marker": "o"}
    return m


def ic50_ratio(data: RunData, control_run: str, runs: list, ref_control_run: str,
               ref_runs: list, at_h: float, concentration: str = "doxorubicin_plasma",
               nominal: list | None = None, ref_nominal: list | None = None) -> Measurement:
    """Fold resistance: the :func:`ic50` of ``runs`` over that of ``ref_runs``, replicate by
    replicate (each against its own untreated control); ``nominal``, ``ref_nominal``: their
    concentrations when the exposure is shorter than the record interval."""
    a = ic50(data, control_run, runs, at_h, concentration, nominal)
    b = ic50(data, ref_control_run, ref_runs, at_h, concentration, ref_nominal)
    m = Measurement.of([x / y for x, y in zip(a.per_replicate, b.per_replicate, strict=True)],
                       "1")
    # both dose-response curves; the fold itself is not a position on the exposure axis
    m.plot = {**a.plot, "type": "curves", "xs": a.plot["xs"] + b.plot["xs"],
              "ys": a.plot["ys"] + b.plot["ys"]}
    return m


def series_ratio(data: RunData, run: str, ref_run: str, series: str, at_h: float,
                 ref_at_h: float | None = None) -> Measurement:
    """``series`` of ``run`` at the record nearest ``at_h`` over that of ``ref_run`` at the
    record nearest ``ref_at_h`` (by default ``at_h`` as well), replicate by replicate (e.g. the
    drug an MDR culture holds relative to its parental line, or, with ``ref_run`` = ``run``,
    what a tumour still holds at 168 h of what it held at 24 h). The figure draws the ratio
    of the two runs over time, or, with ``ref_at_h``, ``run``'s series over its reference
    value."""
    curves = data.series(run, series)
    ref = data.series(ref_run, series)
    ref_vals = _nearest(ref, at_h if ref_at_h is None else ref_at_h)
    values = [x / y if y > 0 else math.nan
              for x, y in zip(_nearest(curves, at_h), ref_vals, strict=True)]
    m = Measurement.of(values, "1")
    if ref_at_h is None:
        ys = [(v / np.where(r > 0, r, np.nan)).tolist()
              for (_, v), (_, r) in zip(curves, ref, strict=True)]
        label = f"{series.replace('_', ' ')}: {run} / {ref_run}"
    else:
        # on a log axis (a tumour's content over days spans decades), without the empty start
        ys = [np.where((v > 0) & (y > 0), v / (y if y > 0 else 1.0), np.nan).tolist()
              for (_, v), y in zip(curves, ref_vals, strict=True)]
        label = f"{series.replace('_', ' ')} / {ref_run} at {ref_at_h:g} h"
    m.plot = {"type": "axis", "axis": "y", "xlabel": "time (h)", "ylabel": label,
              "logy": ref_at_h is not None, "xs": [t.tolist() for t, _ in curves], "ys": ys}
    return m


def accumulation_ratio(data: RunData, run: str, at_h: float,
                       inside: str = "intracellular_drug_total_mean_uM",
                       outside: str = "doxorubicin_plasma") -> Measurement:
    """Cellular accumulation: the ``inside`` series (mean total drug of live cancer cells) over
    the ``outside`` one (the medium) of ``run`` at the record nearest ``at_h``, per replicate."""
    ins, outs = data.series(run, inside), data.series(run, outside)
    values = []
    for (t, v), (_, o) in zip(ins, outs, strict=True):
        j = int(np.argmin(abs(t - at_h)))
        values.append(float(v[j]) / float(o[j]) if o[j] > 0 else math.nan)
    m = Measurement.of(values, "1")
    m.plot = {"type": "axis", "axis": "y", "xlabel": "time (h)",
              "ylabel": "cell drug / medium", "logy": True,
              "xs": [t.tolist() for t, _ in ins],
              "ys": [(v / np.where(o > 0, o, np.nan)).tolist()
                     for (_, v), (_, o) in zip(ins, outs, strict=True)]}
    return m


# --------------------------------------------------------------------------- drug around vessels
def _vessel_profiles(data: RunData, run: str, agent: str, at_h: float, max_um: float):
    """Per replicate, ``(distances, profile, sites)``: the mean total ``agent`` (µM of tissue)
    of the sites at each distance (µm, centre to centre) from the nearest perfused site of
    ``/geometry/tissue`` (capillaries and vessels, as written at the start of the run), from
    the perfused sites themselves (distance 0: a site holds its capillary and the cell beside
    it) out to ``max_um``, at the record nearest ``at_h``; ``sites`` counts the sites at each
    distance. A site's total is its field value plus, for a dosed drug, the free, bound and
    retained drug of the cancer cell on it (live or dead) times that cell's share of the site
    (cell volume over site volume), the sum that ``tumor_drug_total_uM`` averages over the
    sites of live cancer cells; for any other field, the field value alone."""
    from scipy.ndimage import distance_transform_edt

    from ..io import load
    from ..kernels.codes import CANCER_CODES

    out = []
    for path in data.files(run):
        with load(path) as res:
            geo = res.f.get("geometry")
            if geo is None or "tissue" not in geo:
                raise UsageError(f"{path}: no /geometry/tissue to find the vessels in")
            tissue = np.asarray(geo["tissue"][()])
            codes = dict(zip(geo["tissue"].attrs["code_names"],
                             geo["tissue"].attrs["code_values"], strict=True))
            perfused = np.isin(tissue, [codes["capillary"], codes["vessel"]])
            if not perfused.any():
                raise UsageError(f"{path}: the run has no capillary or vessel to measure from")
            h = float(res.scenario.domain.voxel_um)
            phi = float(res.scenario.cells.tumor.volume_um3) / h**3
            rec = res.record_at(at_h)
            total = np.asarray(res.field(agent, rec), float).reshape(tissue.shape).copy()
            drugs = res.scenario.pool_roles["drug"]
            if agent in drugs:  # the cell columns of the run's first drug, or suffixed ones
                suffix = "" if agent == drugs[0] else f"_{agent}"
                c = res.cells(rec)
                cancer = np.isin(c["kind"], CANCER_CODES)
                pools = sum(np.asarray(c[k + suffix], float) for k in ("drug", "bound", "retained"))
                where = tuple(np.asarray(c[a])[cancer] for a in ("z", "y", "x")[-tissue.ndim:])
                np.add.at(total, where, phi * pools[cancer])
        dist = distance_transform_edt(~perfused, sampling=h)
        keep = dist <= max_um + 1e-9
        d, v = dist[keep], total[keep]
        bins, which, sites = np.unique(np.round(d, 6), return_inverse=True, return_counts=True)
        prof = np.bincount(which, weights=v) / sites
        out.append((bins, prof, sites))
    return out


def vessel_half_distance(data: RunData, run: str, at_h: float, agent: str = "doxorubicin",
                         max_um: float = 100.0) -> Measurement:
    """How far (µm) from the nearest vessel total drug falls to half its value at the vessel,
    per replicate: the first distance at which the profile of :func:`_vessel_profiles` (out to
    ``max_um``) falls below half its value on the perfused sites, interpolated linearly, as a
    histological drug-versus-distance profile is read; +inf ("> max") when it stays above
    half within ``max_um``. The figure draws each replicate's profile over its value at the
    vessel."""
    profiles = _vessel_profiles(data, run, agent, at_h, max_um)
    values, curves = [], []
    for d, p, _ in profiles:
        values.append(first_crossing(d, p, 0.5 * p[0]))
        curves.append((d, p / p[0]))
    m = Measurement.of(values, "um")
    if not math.isfinite(m.value):
        m.display = f"> {max_um:.0f}"
    m.plot = {"type": "axis", "axis": "x",
              "xlabel": "distance from the nearest vessel (µm)",
              "ylabel": f"total {agent} / its value at the vessel", "hline": 0.5,
              **_mean_curve(curves)}
    return m


def vessel_profile_ratio(data: RunData, run: str, ref_run: str, at_h: float,
                         agent: str = "doxorubicin", at_um: float | None = None,
                         gradient_to_um: float | None = None,
                         max_um: float = 100.0) -> Measurement:
    """Total drug of ``run`` over that of ``ref_run`` around vessels, replicate by replicate.

    By default the two profiles' values at the vessels (e.g. how much more drug the cells
    beside vessels hold); with ``at_um`` their values at that distance (the nearest one on the
    lattice); with ``gradient_to_um`` the ratio of the two runs' gradients, each the value at
    the vessels over the value at that distance, so above 1 when ``run`` falls more steeply.
    Profiles as :func:`_vessel_profiles`, out to ``max_um``. The figure draws the mean profile
    of each run."""
    if at_um is not None and gradient_to_um is not None:
        raise UsageError("vessel_profile_ratio: give at_um or gradient_to_um, not both")
    runs = {r: _vessel_profiles(data, r, agent, at_h, max_um) for r in (run, ref_run)}

    def read(d, p, _):
        if gradient_to_um is not None:
            return p[0] / p[int(np.argmin(abs(d - gradient_to_um)))]
        return p[0] if at_um is None else p[int(np.argmin(abs(d - at_um)))]

    values = [read(*a) / read(*b) for a, b in zip(runs[run], runs[ref_run], strict=True)]
    m = Measurement.of(values, "1")
    mark = gradient_to_um if gradient_to_um is not None else at_um
    m.plot = {"type": "arms", "xlabel": "distance from the nearest vessel (µm)",
              "ylabel": f"total {agent} (µM)", "marks_h": [] if mark is None else [mark],
              "groups": {r: (ps[0][0].tolist(), np.mean([p[1] for p in ps], axis=0).tolist())
                         for r, ps in runs.items()}}
    return m


# --------------------------------------------------------------------------- tissue PK
def _curves_of(data: RunData, run: str, series: str, from_h: float, to_h: float):
    return [_window(t, v, from_h, to_h) for t, v in data.series(run, series)]


def _pk_plot(curves, series: str, **extra) -> dict:
    return {"type": "axis", "axis": "y", "xlabel": "time (h)",
            "ylabel": series.replace("_", " "), **_mean_curve(curves), **extra}


def series_peak(data: RunData, run: str, series: str, from_h: float = 0.0,
                to_h: float = math.inf, units: str = "") -> Measurement:
    """Largest recorded value (Cmax) of ``series`` between ``from_h`` and ``to_h``."""
    curves = _curves_of(data, run, series, from_h, to_h)
    m = Measurement.of([float(v.max()) if len(v) else math.nan for _, v in curves], units)
    m.plot = _pk_plot(curves, series)
    return m


def series_peak_time(data: RunData, run: str, series: str, from_h: float = 0.0,
                     to_h: float = math.inf) -> Measurement:
    """Time (h) of the largest recorded value (Tmax) of ``series`` between ``from_h`` and
    ``to_h``: the first record that reaches it."""
    curves = _curves_of(data, run, series, from_h, to_h)
    m = Measurement.of([float(t[int(np.argmax(v))]) if len(v) else math.nan
                        for t, v in curves], "h")
    m.plot = {**_pk_plot(curves, series), "axis": "x"}
    return m


def _auc(t: np.ndarray, v: np.ndarray) -> float:
    """Trapezoidal area under the recorded ``v`` over ``t`` (0 with fewer than two records)."""
    if len(t) < 2:
        return 0.0
    return float(np.sum(0.5 * (v[1:] + v[:-1]) * np.diff(t)))


def series_auc(data: RunData, run: str, series: str, from_h: float, to_h: float,
               units: str = "") -> Measurement:
    """Area under ``series`` (trapezoids between records) from ``from_h`` to ``to_h``."""
    curves = _curves_of(data, run, series, from_h, to_h)
    m = Measurement.of([_auc(t, v) for t, v in curves], units)
    m.plot = {**_pk_plot(curves, series), "type": "curves"}
    return m


def auc_ratio(data: RunData, run: str, ref_run: str, series: str, to_h: float,
              ref_to_h: float) -> Measurement:
    """Area under ``series`` of ``run`` from 0 to ``to_h`` over that of ``ref_run`` from 0 to
    ``ref_to_h``, replicate by replicate (windows may differ, as published ratios of AUC(0-7 d)
    over AUC(0-24 h) do)."""
    a = series_auc(data, run, series, 0.0, to_h)
    b = series_auc(data, ref_run, series, 0.0, ref_to_h)
    m = Measurement.of([x / y if y > 0 else math.nan
                        for x, y in zip(a.per_replicate, b.per_replicate, strict=True)], "1")
    m.plot = {**a.plot, "xs": a.plot["xs"] + b.plot["xs"], "ys": a.plot["ys"] + b.plot["ys"],
              "logy": True}
    return m


def decline_half_life(data: RunData, run: str, series: str, from_h: float, to_h: float
                      ) -> Measurement:
    """Half-life (h) of the decline of ``series`` between ``from_h`` and ``to_h``: ln 2 over
    minus the slope of a least-squares line through ln(value) against time (per replicate inf
    when it does not fall, and then the case has no value)."""
    curves = _curves_of(data, run, series, from_h, to_h)
    values = []
    for t, v in curves:
        ok = v > 0
        if ok.sum() < 2:
            values.append(math.nan)
            continue
        slope = float(np.polyfit(t[ok], np.log(v[ok]), 1)[0])
        values.append(math.log(2.0) / -slope if slope < 0 else math.inf)
    m = Measurement.of(values, "h")
    m.plot = {**_pk_plot(curves, series), "type": "curves", "logy": True}
    return m


def injected_nmol(scenario, agent: str, until_h: float = math.inf) -> float:
    """The drug (nmol, drug-equivalent for a formulation) injected i.v. as ``agent`` up to
    ``until_h``: every bolus of its dosing lines started by then, infusions pro rata, at the
    scenario's body mass, converted with the molar mass of the drug (the payload drug of a
    formulation)."""
    drug = (scenario.nanoparticles[agent].payload.drug if agent in scenario.nanoparticles
            else agent)
    if drug not in scenario.agents:
        raise UsageError(f"no agent or formulation named {agent!r} in the scenario\n"
                         "  fix: name one of its therapy lines' agents")
    lines = [adm for adm in scenario.therapy if adm.agent == agent and adm.route == "iv"]
    if not lines:
        raise UsageError(f"no i.v. dosing line of {agent!r} in the scenario\n"
                         "  fix: name the agent or formulation the run injects")
    mg = 0.0
    for adm in lines:
        for t0 in adm.times_h():
            if adm.duration_h > 0:
                mg += adm.dose_mg_per_kg * min(max((until_h - t0) / adm.duration_h, 0.0), 1.0)
            elif t0 <= until_h + 1e-9:
                mg += adm.dose_mg_per_kg
    mg *= scenario.subject.body_mass_kg
    return mg * 1e6 / scenario.agents[drug].molar_mass_g_per_mol  # mg -> nmol


def percent_injected_dose(data: RunData, run: str, series: str, agent: str, at_h: float,
                          tumour_mass_g: float | None = None) -> Measurement:
    """Share of the injected dose (% ID) held by a whole tumour of ``tumour_mass_g`` grams at
    the record nearest ``at_h``; without a mass, the share per gram of tumour (%ID/g).

    ``series`` is a tumour concentration in µM drug-equivalent (``tumor_drug_total_uM``,
    ``tumor_np_drug_uM`` for the part still carried by particles, or ``tumor_np_label_uM`` for
    the particles' label, emptied particles included), read as nmol per gram of
    tumour at a density of 1 g/mL; the injected dose is that of ``agent``'s i.v. lines given
    by then (:func:`injected_nmol`). The model tumour is a patch, not a whole tumour, so
    ``%ID/g = 100 C / dose`` is its model quantity and the tumour mass, a stated choice of the
    case, turns it into %ID per tumour: ``%ID = %ID/g x tumour_mass_g``. The figure draws
    %ID over time and the display shows the product.
    """
    per_gram_only = tumour_mass_g is None
    if per_gram_only:
        tumour_mass_g = 1.0
    elif not tumour_mass_g > 0:
        raise UsageError(f"percent_injected_dose: tumour_mass_g must be positive, "
                         f"not {tumour_mass_g!r}")
    curves = data.series(run, series)
    values, per_gram, ys = [], [], []
    for scenario, (t, v) in zip(data.scenarios(run), curves, strict=True):
        dose = injected_nmol(scenario, agent, at_h)
        dose_t = np.array([injected_nmol(scenario, agent, x) for x in t])
        pg = 100.0 * float(v[int(np.argmin(abs(t - at_h)))]) / dose if dose > 0 else math.nan
        per_gram.append(pg)
        values.append(pg * tumour_mass_g)
        shown = (dose_t > 0) & (v > 0)  # drawn on a log axis: before the dose there is none
        ys.append(np.where(shown, 100.0 * v * tumour_mass_g / np.where(shown, dose_t, 1.0),
                           np.nan).tolist())
    if per_gram_only:
        m = Measurement.of(values, "%ID/g")
        ylabel = "% injected dose per g tumour"
    else:
        m = Measurement.of(values, "%ID")
        ylabel = f"% injected dose per {tumour_mass_g:g} g tumour"
        if math.isfinite(m.value):
            # the unit, %ID, follows the display wherever it is printed
            m.display = (f"{float(np.mean(per_gram)):.3g} %ID/g x {tumour_mass_g:g} g = "
                         f"{m.value:.3g}")
    m.plot = {"type": "axis", "axis": "y", "xlabel": "time (h)", "ylabel": ylabel, "logy": True,
              "xs": [t.tolist() for t, _ in curves], "ys": ys}
    return m


# --------------------------------------------------------------------------- immunity
def _kills(data: RunData, run: str):
    """Per replicate: times, cumulative kills and cumulative T-cell days of a run in which
    every cancer cell lost is a T-cell kill."""
    cancer = data.series(run, "tumor_burden")
    tcells = data.series(run, "counts/tcell")
    necrotic = data.series(run, "counts/necrotic")
    out = []
    for (t, c), (_, tc), (_, nec) in zip(cancer, tcells, necrotic, strict=True):
        if nec.max() > 0:
            raise UsageError(
                f"kill metrics: run {run!r} has necrotic cells, so the fall of the cancer count "
                "is not all T-cell killing\n  fix: give the run ample oxygen (a smaller nest)"
            )
        tdays = np.concatenate([[0.0], np.cumsum(np.diff(t) * 0.5 * (tc[1:] + tc[:-1]))]) / 24
        out.append((t, c[0] - c, tdays))
    return out


def kill_rate(data: RunData, run: str, from_h: float = 0.0, to_h: float = math.inf):
    """Cancer cells killed per T cell per day between ``from_h`` and ``to_h``.

    For a run in which cancer cells neither divide nor die of anything but T-cell killing (no
    division, no necrosis, no other killers; a run with necrotic cells is refused), kills are
    the fall of live cancer cells and T-cell days the time integral of the T-cell count
    (trapezoid rule on the records).
    """
    values, xs, ys = [], [], []
    for t, kills, tdays in _kills(data, run):
        i = int(np.argmin(abs(t - from_h)))
        j = int(np.argmin(abs(t - min(to_h, t[-1]))))
        dt = tdays[j] - tdays[i]
        values.append((kills[j] - kills[i]) / dt if dt > 0 else math.nan)
        xs.append(tdays.tolist())
        ys.append(kills.tolist())
    m = Measurement.of(values, "1/day")
    m.plot = {"type": "slope", "xlabel": "T-cell days", "ylabel": "cancer cells killed",
              "xs": xs, "ys": ys}
    return m


def time_per_kill(data: RunData, run: str, from_h: float = 0.0, to_h: float = math.inf):
    """T-cell hours per kill between ``from_h`` and ``to_h`` (24 / :func:`kill_rate`)."""
    rate = kill_rate(data, run, from_h, to_h)
    values = [24.0 / v if v > 0 else math.inf for v in rate.per_replicate]
    m = Measurement.of(values, "h")
    m.plot = {"type": "slope_time", "xlabel": "T-cell hours", "ylabel": "cancer cells killed",
              "xs": [[24 * x for x in xs] for xs in rate.plot["xs"]], "ys": rate.plot["ys"],
              "window_h": [from_h, to_h]}
    return m


def rise_time(data: RunData, run: str, series: str, level: float, per_h: float = 24.0):
    """The first time (in units of ``per_h`` hours, days by default) at which ``series``
    reaches ``level``, interpolated linearly between the records around it; +inf when it never
    does (e.g. the day by which half of the T cells are exhausted)."""
    curves = data.series(run, series)
    values = []
    for t, v in curves:
        # the first crossing from below of ``level`` is the first fall below ``-level`` of -v
        values.append(first_crossing(t / per_h, -v, -level))
    m = Measurement.of(values, "day" if per_h == 24.0 else f"{per_h:g} h")
    m.plot = {"type": "axis", "axis": "x", "xlabel": "time (days)" if per_h == 24.0 else
              f"time ({per_h:g} h)", "ylabel": series.replace("_", " "), "hline": level,
              "xs": [(t / per_h).tolist() for t, _ in curves], "ys": [v.tolist() for _, v in curves]}
    return m


def series_at(data: RunData, run: str, series: str, at_h: float):
    """``series`` at the record nearest ``at_h``, replicate by replicate."""
    curves = data.series(run, series)
    m = Measurement.of(_nearest(curves, at_h), "1")
    m.plot = {"type": "axis", "axis": "y", "xlabel": "time (h)",
              "ylabel": series.replace("_", " "), **_mean_curve(curves)}
    return m


def population_density(data: RunData, run: str, at_h: float, population: str = "counts/tcell",
                       per: str = "tumour_mm2"):
    """Cells of ``population`` (a count, by default the T cells) at the record nearest
    ``at_h``, replicate by replicate, as histology or flow cytometry report them.

    ``per: tumour_mm2``: per mm² of tumour section, the tumour being the live and necrotic
    cancer cells (``tumor_burden`` + ``counts/necrotic``), one site of ``voxel_um``² each in a
    section one site thick (in 3-D the same ratio holds for every such section on average).
    ``per: share``: as a share of the population plus the live cancer cells, as in a
    dissociated tumour. Every cell of the population in the domain counts, also those around
    the tumour rather than in it, so on a patch larger than the tumour the value is an upper
    bound of the density within it. The figure draws the same quantity over time.
    """
    if per not in ("tumour_mm2", "share"):
        raise UsageError(f"population_density: per must be 'tumour_mm2' or 'share', not {per!r}")
    name = population.rpartition("/")[2].replace("_", " ")
    cells = data.series(run, population)
    burden = data.series(run, "tumor_burden")
    with np.errstate(divide="ignore", invalid="ignore"):
        if per == "share":
            curves = [(t, np.where(c + b > 0, c / (c + b), np.nan))
                      for (t, c), (_, b) in zip(cells, burden, strict=True)]
            units, ylabel = "1", f"{name} / ({name} + live cancer cells)"
        else:
            necrotic = data.series(run, "counts/necrotic")
            site_mm2 = (data.voxel_um(run) * 1e-3) ** 2
            curves = [(t, np.where(b + d > 0, c / ((b + d) * site_mm2), np.nan))
                      for (t, c), (_, b), (_, d) in zip(cells, burden, necrotic, strict=True)]
            units, ylabel = "cells/mm²", f"{name} per mm² of tumour section"
    m = Measurement.of(_nearest(curves, at_h), units)
    m.plot = {"type": "axis", "axis": "y", "xlabel": "time (h)", "ylabel": ylabel,
              **_mean_curve(curves)}
    return m


# --------------------------------------------------------------------------- take
def clone_take(data: RunData, stem_run: str, tumour_run: str, stem_share: float,
               min_cells: int, at_h: float, implanted: int) -> Measurement:
    """Tumour take predicted from the clonogenic fraction of single seeded cells.

    A replicate of ``stem_run`` (``tumour_run``) seeds one stem-like (tumour) cell; its clone
    counts as a colony when it has at least ``min_cells`` live cancer cells at ``at_h``. The
    clonogenic fraction p mixes the two by ``stem_share``, the stem-like share of the cells a
    scenario seeds; the take of ``implanted`` cells is 1 - (1 - p)^implanted (independent
    clones). The interval is that of a Wilson score interval on p (pooled replicates).
    """
    def sizes(label):
        return _nearest(data.series(label, "tumor_burden"), at_h)

    s_stem, s_tum = sizes(stem_run), sizes(tumour_run)
    p_stem = float(np.mean([s >= min_cells for s in s_stem]))
    p_tum = float(np.mean([s >= min_cells for s in s_tum]))
    p = stem_share * p_stem + (1.0 - stem_share) * p_tum
    n = len(s_stem) + len(s_tum)

    def take(q):
        return 1.0 - (1.0 - min(max(q, 0.0), 1.0)) ** implanted

    z = 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    m = Measurement(take(p), "1", [*s_stem, *s_tum], take(centre - half), take(centre + half))
    m.display = f"{take(p):.3g} (p = {p:.3g})"
    m.plot = {"type": "clones", "xlabel": "seeded cell", "ylabel": f"clone size at {at_h:g} h",
              "groups": {"stem-like": s_stem, "tumour": s_tum}, "hline": min_cells,
              "logy": True}
    return m


def window_change(data: RunData, run: str, series: str, early_h: list, late_h: list):
    """Mean of ``series`` over the ``late_h`` window minus its mean over ``early_h``."""
    curves = data.series(run, series)
    values = []
    for t, v in curves:
        a = _window(t, v, *early_h)[1]
        b = _window(t, v, *late_h)[1]
        values.append(float(b.mean() - a.mean()) if a.size and b.size else math.nan)
    m = Measurement.of(values, "1")
    m.plot = {"type": "windows", "xlabel": "time (h)", "ylabel": series.replace("_", " "),
              "windows": [list(early_h), list(late_h)], **_mean_curve(curves)}
    return m


def combination_ratio(data: RunData, control_run: str, runs: list, combo_run: str,
                      at_h: float, reference: str = "bliss", series: str = "tumor_burden"):
    """How a combination compares with its two single arms, replicate by replicate.

    With ``S_x`` = ``series`` of run ``x`` over that of ``control_run`` at the record nearest
    ``at_h`` (the replicates of every run share their seeds, so they are paired), the value
    is ``S_combo / (S_a S_b)`` for ``reference: bliss`` (below 1: more than Bliss independence
    of the two arms ``runs`` = ``[a, b]``, i.e. synergy), or ``S_combo / min(S_a, S_b)`` for
    ``reference: best`` (below 1: the combination beats the better single arm). The figure
    draws each arm's ``S(t)``, the mean over replicates.
    """
    if reference not in ("bliss", "best"):
        raise UsageError(f"combination_ratio: reference must be 'bliss' or 'best', "
                         f"not {reference!r}")  # fmt: skip
    if len(runs) != 2:
        raise UsageError(f"combination_ratio: runs must name the two single arms, not {runs!r}")
    ctrl = data.series(control_run, series)

    def rel(run):
        out = []
        for (t, v), (tc, c) in zip(data.series(run, series), ctrl, strict=True):
            n = min(len(t), len(tc))
            out.append((t[:n], v[:n] / np.where(c[:n] > 0, c[:n], np.nan)))
        return out
    arms = {run: rel(run) for run in (*runs, combo_run)}
    sa, sb, sab = (_nearest(arms[r], at_h) for r in (*runs, combo_run))
    values = []
    for a, b, ab in zip(sa, sb, sab, strict=True):
        ref = a * b if reference == "bliss" else min(a, b)
        values.append(ab / ref if ref > 0 else math.nan)
    m = Measurement.of(values, "1")
    groups = {}
    for run, curves in arms.items():
        n = min(len(t) for t, _ in curves)
        groups[run] = (curves[0][0][:n].tolist(),
                       np.mean([v[:n] for _, v in curves], axis=0).tolist())
    m.plot = {"type": "arms", "xlabel": "time (h)",
              "ylabel": f"{series.replace('_', ' ')} / {control_run}", "groups": groups,
              "hline": 1.0, "marks_h": [at_h]}
    return m


#: the metric names ``case.yaml`` may use
METRICS: dict[str, Callable[..., Measurement]] = {
    "doubling_time": doubling_time,
    "max_regression": max_regression,
    "growth_ratio": growth_ratio,
    "threshold_distance": threshold_distance,
    "spheroid_core_onset": spheroid_core_onset,
    "ic50": ic50,
    "ic50_ratio": ic50_ratio,
    "series_ratio": series_ratio,
    "accumulation_ratio": accumulation_ratio,
    "vessel_half_distance": vessel_half_distance,
    "vessel_profile_ratio": vessel_profile_ratio,
    "kill_rate": kill_rate,
    "time_per_kill": time_per_kill,
    "rise_time": rise_time,
    "series_at": series_at,
    "population_density": population_density,
    "clone_take": clone_take,
    "window_change": window_change,
    "series_peak": series_peak,
    "series_peak_time": series_peak_time,
    "series_auc": series_auc,
    "auc_ratio": auc_ratio,
    "decline_half_life": decline_half_life,
    "percent_injected_dose": percent_injected_dose,
    "combination_ratio": combination_ratio,
}

#: argument names that name runs of the case (checked when a case is loaded)
RUN_ARGS = ("run", "control_run", "stem_run", "tumour_run", "ref_run", "ref_control_run",
            "combo_run")
RUN_LIST_ARGS = ("runs", "ref_runs")
