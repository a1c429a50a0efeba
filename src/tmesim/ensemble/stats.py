"""Statistics of replicate endpoints, in plain NumPy (no SciPy needed at run time).

* :func:`mean_ci`: mean and two-sided Student-t confidence interval.
* :func:`mann_whitney_u`: the Mann-Whitney U rank test, two-sided, with the same choice of
  method as ``scipy.stats.mannwhitneyu(method="auto")``: the exact null distribution when one
  sample has at most 8 values and there are no ties, otherwise the normal approximation with tie
  and continuity corrections.
* :func:`hedges_g`, :func:`cliffs_delta`: effect sizes of ``y`` against ``x``.
* :func:`bootstrap_ci`: percentile bootstrap interval with a fixed seed.
* :func:`compare_samples`: all of the above for one scenario against the reference.
* :func:`wilcoxon_signed_rank`: the Wilcoxon signed-rank test of paired values, two-sided, with
  the choices of ``scipy.stats.wilcoxon`` (defaults: zeros dropped, no continuity correction,
  ``method="auto"``): the exact null distribution for at most 50 pairs without ties or zero
  differences; with ties or zeros, the exact sign-flip permutation distribution for at most 13
  pairs, else the normal approximation with tie correction.
* :func:`range_ci`, :func:`range_band`: intervals of a mean that respect the quantity's range
  (never a negative count, never a fraction above 1): the percentile bootstrap of the mean from
  :data:`MIN_REPLICATES` replicates on, and below that the wider Student-t interval computed on
  a scale that maps the range onto the real line (log for non-negative quantities, logit for
  fractions) and mapped back.
* :func:`compare_pairs`: paired mean difference with a pair-resampling bootstrap interval and the
  signed-rank test, for designs where replicate k of every scenario shares its seed.

Non-finite values (missing replicates) are dropped before any computation.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

#: seed of every bootstrap, so that a summary is reproducible
BOOTSTRAP_SEED = 20240611
BOOTSTRAP_RESAMPLES = 2000


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


# --------------------------------------------------------------------------- Student t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
    lbt += b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution."""
    tail = 0.5 * betainc(0.5 * df, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t distribution (bisection on :func:`t_cdf`), ``0 < q < 1``."""
    if not 0.0 < q < 1.0:
        raise ValueError("q must lie in (0, 1)")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_ci(x, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its two-sided Student-t interval (NaN if n < 2)."""
    a = _clean(x)
    n = a.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    m = float(a.mean())
    if n < 2:
        return (m, math.nan, math.nan)
    half = t_ppf(0.5 + level / 2.0, n - 1) * float(a.std(ddof=1)) / math.sqrt(n)
    return (m, m - half, m + half)


# --------------------------------------------------------------------------- Mann-Whitney
def _rank_average(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based) and the sizes of the tie groups."""
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    ranks = np.empty(a.size, dtype=np.float64)
    bounds = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
    ties = np.diff(bounds)
    for lo, hi in itertools.pairwise(bounds):
        ranks[order[lo:hi]] = 0.5 * (lo + 1 + hi)
    return ranks, ties


@lru_cache(maxsize=256)
def _u_counts(n1: int, n2: int) -> np.ndarray:
    """Number of arrangements giving each U = 0 .. n1*n2 (Gaussian binomial coefficients)."""
    if n1 == 0 or n2 == 0:
        return np.ones(1, dtype=np.float64)
    # f(n1, n2)(q) = f(n1 - 1, n2)(q) * q**n2 + f(n1, n2 - 1)(q)
    a = _u_counts(n1 - 1, n2)
    b = _u_counts(n1, n2 - 1)
    out = np.zeros(n1 * n2 + 1, dtype=np.float64)
    out[n2 : n2 + a.size] += a
    out[: b.size] += b
    return out


def mann_whitney_u(x, y) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test; returns ``(U of x, p)`` as SciPy's ``mannwhitneyu``."""
    a, b = _clean(x), _clean(y)
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return (math.nan, math.nan)
    ranks, ties = _rank_average(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u = max(u1, n1 * n2 - u1)
    has_ties = bool((ties > 1).any())
    if (n1 <= 8 or n2 <= 8) and not has_ties:
        counts = _u_counts(min(n1, n2), max(n1, n2))
        p = 2.0 * float(counts[round(u) :].sum() / counts.sum())
    else:
        n = n1 + n2
        tie_term = float((ties.astype(np.float64) ** 3 - ties).sum())
        s = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
        if s == 0.0:
            return (u1, 1.0)
        z = (u - n1 * n2 / 2.0 - 0.5) / s
        p = 2.0 * 0.5 * math.erfc(z / math.sqrt(2.0))
    return (u1, min(max(p, 0.0), 1.0))


# --------------------------------------------------------------------------- effect sizes
def hedges_g(x, y) -> float:
    """Hedges' g of ``y`` against ``x``: (mean y - mean x) / pooled SD, small-sample corrected."""
    a, b = _clean(x), _clean(y)
    n1, n2 = a.size, b.size
    if n1 < 2 or n2 < 2:
        return math.nan
    pooled = ((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2)
    if pooled <= 0.0:
        return math.nan
    d = (b.mean() - a.mean()) / math.sqrt(pooled)
    return float(d * (1.0 - 3.0 / (4.0 * (n1 + n2) - 9.0)))


def cliffs_delta(x, y) -> float:
    """Cliff's delta of ``y`` against ``x``: P(y > x) - P(y < x)."""
    a, b = _clean(x), _clean(y)
    if a.size == 0 or b.size == 0:
        return math.nan
    diff = b[:, None] - a[None, :]
    return float((np.sign(diff)).mean())


def mean_difference(x, y) -> float:
    """mean(y) - mean(x)."""
    a, b = _clean(x), _clean(y)
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(b.mean() - a.mean())


def bootstrap_ci(
    stat,
    x,
    y,
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(x, y)``, resampling each sample independently."""
    a, b = _clean(x), _clean(y)
    if a.size < 2 or b.size < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(resamples, a.size))
    ib = rng.integers(0, b.size, size=(resamples, b.size))
    return _percentile_interval([stat(a[i], b[j]) for i, j in zip(ia, ib, strict=False)], level)


def _percentile_interval(values, level: float) -> tuple[float, float]:
    """The central ``level`` interval of the finite bootstrap ``values``."""
    vals = np.asarray(values, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(vals, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def compare_samples(ref, other, *, level: float = 0.95) -> dict[str, float]:
    """Effect sizes and the rank test of ``other`` against ``ref`` (NaN where undefined)."""
    u, p = mann_whitney_u(other, ref)
    diff_lo, diff_hi = bootstrap_ci(mean_difference, ref, other, level=level)
    g_lo, g_hi = bootstrap_ci(hedges_g, ref, other, level=level)
    d_lo, d_hi = bootstrap_ci(cliffs_delta, ref, other, level=level)
    ref_mean = float(_clean(ref).mean()) if _clean(ref).size else math.nan
    diff = mean_difference(ref, other)
    pct = (
        100.0 * diff / ref_mean if ref_mean not in (0.0,) and math.isfinite(ref_mean) else math.nan
    )
    return {
        "mean_difference": diff,
        "mean_difference_ci_low": diff_lo,
        "mean_difference_ci_high": diff_hi,
        "percent_change": pct,
        "hedges_g": hedges_g(ref, other),
        "hedges_g_ci_low": g_lo,
        "hedges_g_ci_high": g_hi,
        "cliffs_delta": cliffs_delta(ref, other),
        "cliffs_delta_ci_low": d_lo,
        "cliffs_delta_ci_high": d_hi,
        "mann_whitney_u": u,
        "mann_whitney_p": p,
    }


# --------------------------------------------------------------------------- paired designs
def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``(x[k], y[k])`` in which both values are finite."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


@lru_cache(maxsize=64)
def _signed_rank_counts(n: int) -> np.ndarray:
    """Number of sign patterns of ranks 1..n giving each W+ = 0 .. n(n+1)/2."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.float64)
    counts[0] = 1.0
    top = 0
    for r in range(1, n + 1):
        counts[r : top + r + 1] += counts[: top + 1].copy()
        top += r
    return counts


def wilcoxon_signed_rank(x, y) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of the pairs ``(x[k], y[k])``; returns
    ``(W, p)`` as ``scipy.stats.wilcoxon(x, y)`` does (W = min(W+, W-))."""
    a, b = _pairs(x, y)
    d = a - b
    n_all = d.size
    if n_all == 0:
        return (math.nan, math.nan)
    nz = d[d != 0.0]
    n = nz.size
    if n == 0:
        return (0.0, 1.0)
    ranks, ties = _rank_average(np.abs(nz))
    w_plus = float(ranks[nz > 0].sum())
    w_minus = float(ranks[nz < 0].sum())
    w = min(w_plus, w_minus)
    has_ties = bool((ties > 1).any())
    n_zero = n_all - n
    if n_all <= 50 and not has_ties and n_zero == 0:
        counts = _signed_rank_counts(n)
        total = counts.sum()
        sf = counts[math.floor(w_plus) :].sum() / total  # P(W+ >= w_plus)
        cdf = counts[: math.ceil(w_plus) + 1].sum() / total  # P(W+ <= w_plus)
        p = 2.0 * min(sf, cdf)
    elif n_all <= 13:
        # every sign pattern of the non-zero differences (zeros keep their sign-free value)
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
        null = signs.astype(np.float64) @ ranks
        gamma = abs(1e-14 * w_plus) if w_plus else 1e-14
        less = float((null <= w_plus + gamma).mean())
        greater = float((null >= w_plus - gamma).mean())
        p = 2.0 * min(less, greater)
    else:
        mean = n * (n + 1) / 4.0
        var = (n * (n + 1) * (2 * n + 1) - float((ties.astype(np.float64) ** 3 - ties).sum()) / 2)
        se = math.sqrt(var / 24.0)
        if se == 0.0:
            return (w, 1.0)
        z = (w_plus - mean) / se
        p = math.erfc(abs(z) / math.sqrt(2.0))
    return (w, min(max(p, 0.0), 1.0))


def bootstrap_paired_ci(
    stat,
    x,
    y,
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(x, y)``, resampling whole pairs."""
    a, b = _pairs(x, y)
    if a.size < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    return _percentile_interval([stat(a[i], b[i]) for i in idx], level)


def _paired_percent(a: np.ndarray, b: np.ndarray) -> float:
    ref = float(a.mean()) if a.size else math.nan
    if not math.isfinite(ref) or ref == 0.0:
        return math.nan
    return 100.0 * float((b - a).mean()) / ref


def compare_pairs(ref, other, *, level: float = 0.95) -> dict[str, float]:
    """Paired statistics of ``other`` against ``ref`` (replicate k against replicate k)."""
    a, b = _pairs(ref, other)
    diff = float((b - a).mean()) if a.size else math.nan
    lo, hi = bootstrap_paired_ci(lambda u, v: float((v - u).mean()), a, b, level=level)
    p_lo, p_hi = bootstrap_paired_ci(_paired_percent, a, b, level=level)
    sd = float((b - a).std(ddof=1)) if a.size >= 2 else math.nan
    w, p = wilcoxon_signed_rank(a, b)
    return {
        "paired_n": int(a.size),
        "paired_mean_difference": diff,
        "paired_mean_difference_ci_low": lo,
        "paired_mean_difference_ci_high": hi,
        "paired_percent_change": _paired_percent(a, b),
        "paired_percent_change_ci_low": p_lo,
        "paired_percent_change_ci_high": p_hi,
        "paired_cohens_dz": diff / sd if sd and math.isfinite(sd) and sd > 0 else math.nan,
        "wilcoxon_w": w,
        "wilcoxon_p": p,
    }


# --------------------------------------------------------------------------- range-aware intervals
#: below this many replicates intervals use the wider transformed Student-t method and the
#: table and figures say that the sample is small
MIN_REPLICATES = 5


def _to_line(a: np.ndarray, lower, upper):
    """Map values in [lower, upper] onto the real line; return (mapped, inverse function).

    Values at a bound are moved inside by a fraction of the data's own scale (half the smallest
    positive distance to a lower bound; a quarter of the smallest distance of an inner value to
    either bound of a range), so zeros and ones stay finite.
    """
    if lower is None and upper is None:
        return a, (lambda y: y)
    if upper is None:  # [lower, inf): log of the distance to the bound
        d = a - lower
        pos = d[d > 0]
        eps = 0.5 * float(pos.min()) if pos.size else 1.0
        return np.log(d + eps), (lambda y: lower - eps + np.exp(y))
    span = upper - lower  # [lower, upper]: logit of the position in the range
    p = (a - lower) / span
    inner = p[(p > 0) & (p < 1)]
    gaps = np.concatenate([inner, 1 - inner]) if inner.size else np.array([])
    eps = min(0.25 * float(gaps.min()), 0.25) if gaps.size else 0.25
    q = np.clip(p, eps, 1 - eps)

    def back(y):
        return lower + span * (1.0 / (1.0 + np.exp(-y)))

    return np.log(q / (1 - q)), back


def range_ci(
    x,
    *,
    lower: float | None = None,
    upper: float | None = None,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float, str]:
    """``(mean, low, high, method)``: the mean and an interval that stays within
    ``[lower, upper]`` (either may be None).

    ``method`` is ``"bootstrap"`` (percentile bootstrap of the mean; n >= :data:`MIN_REPLICATES`),
    ``"transformed-t"`` (Student-t interval on the log or logit scale mapped back, wider than
    the bootstrap at small n; 2 <= n < :data:`MIN_REPLICATES`) or ``"none"`` (n < 2: NaN bounds).
    The interval always contains the mean.
    """
    a = _clean(x)
    n = a.size
    if n == 0:
        return (math.nan, math.nan, math.nan, "none")
    m = float(a.mean())
    if n < 2:
        return (m, math.nan, math.nan, "none")
    if np.ptp(a) == 0:
        return (m, m, m, "bootstrap" if n >= MIN_REPLICATES else "transformed-t")
    if n >= MIN_REPLICATES:
        rng = np.random.default_rng(seed)
        means = a[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
        lo, hi = _percentile_interval(means, level)
        method = "bootstrap"
    else:
        y, back = _to_line(a, lower, upper)
        half = t_ppf(0.5 + level / 2.0, n - 1) * float(y.std(ddof=1)) / math.sqrt(n)
        c = float(y.mean())
        lo, hi = float(back(c - half)), float(back(c + half))
        method = "transformed-t"
    if lower is not None:
        lo = max(lo, lower)
    if upper is not None:
        hi = min(hi, upper)
    return (m, min(lo, m), max(hi, m), method)


def range_band(
    values,
    *,
    lower: float | None = None,
    upper: float | None = None,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean and :func:`range_ci` interval of an (R, T) array (NaN = missing)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full((3, v.shape[1]), np.nan)
    for j in range(v.shape[1]):
        out[:, j] = range_ci(v[:, j], lower=lower, upper=upper, level=level)[:3]
    return out[0], out[1], out[2]
