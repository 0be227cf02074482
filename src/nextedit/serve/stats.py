"""Cluster-robust statistics for comparing arms: ratio-of-sums with the delta method, cluster
bootstrap, and a sample-ratio-mismatch check (see reference ab-stats.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class RatioEstimate:
    """R = sum(a) / sum(s) over users, with its delta-method standard error and 95% interval."""

    value: float | None
    se: float | None
    low: float | None
    high: float | None
    users: int
    numerator: float
    denominator: float


@dataclass(frozen=True)
class Difference:
    """Treatment minus control of a ratio metric, its 95% interval, relative lift and verdict."""

    diff: float | None
    low: float | None
    high: float | None
    lift: float | None
    verdict: str  # "better" | "worse" | "inconclusive"
    method: str


def ratio_delta(a: Sequence[float], s: Sequence[float]) -> RatioEstimate:
    """Ratio of sums over users (clusters) with the first-order delta-method variance.

    Var(R) ~ (Var(a) - 2 R Cov(a, s) + R^2 Var(s)) / (n * mean(s)^2), per-user a_i and s_i.
    Users with s_i = 0 still count as clusters (they contribute to n and the variances).
    """
    av, sv = np.asarray(a, dtype=float), np.asarray(s, dtype=float)
    n = len(av)
    num, den = float(av.sum()), float(sv.sum())
    if n == 0 or den <= 0:
        return RatioEstimate(None, None, None, None, n, num, den)
    r = num / den
    if n < 2:
        return RatioEstimate(r, None, None, None, n, num, den)
    var_a, var_s = av.var(ddof=1), sv.var(ddof=1)
    cov = float(np.cov(av, sv, ddof=1)[0, 1])
    var_r = max(0.0, (var_a - 2 * r * cov + r * r * var_s) / (n * sv.mean() ** 2))
    se = math.sqrt(var_r)
    return RatioEstimate(r, se, r - Z95 * se, r + Z95 * se, n, num, den)


def compare_ratios(treatment: RatioEstimate, control: RatioEstimate, *, higher_is_better: bool = True) -> Difference:
    """Difference of two independent ratio estimates with a 95% interval; verdict from the interval.

    Fixed-horizon test: decide the end date before looking, or the 5% error rate does not hold.
    """
    method = "delta method, users as clusters, fixed horizon 95%"
    if treatment.value is None or control.value is None or treatment.se is None or control.se is None:
        return Difference(None, None, None, None, "inconclusive", method)
    d = treatment.value - control.value
    se = math.sqrt(treatment.se ** 2 + control.se ** 2)
    low, high = d - Z95 * se, d + Z95 * se
    lift = d / control.value if control.value else None
    if se == 0 and d == 0:
        verdict = "inconclusive"
    elif low > 0:
        verdict = "better" if higher_is_better else "worse"
    elif high < 0:
        verdict = "worse" if higher_is_better else "better"
    else:
        verdict = "inconclusive"
    return Difference(d, low, high, lift, verdict, method)


def cluster_bootstrap_diff(a_t: Sequence[float], s_t: Sequence[float], a_c: Sequence[float], s_c: Sequence[float], *,
                           resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of R_t - R_c, resampling users with replacement within each arm."""
    at, st, ac, sc = (np.asarray(x, dtype=float) for x in (a_t, s_t, a_c, s_c))
    if len(at) < 2 or len(ac) < 2:
        return None
    rng = np.random.default_rng(seed)
    it = rng.integers(0, len(at), size=(resamples, len(at)))
    ic = rng.integers(0, len(ac), size=(resamples, len(ac)))
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = at[it].sum(1) / st[it].sum(1) - ac[ic].sum(1) / sc[ic].sum(1)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0:
        return None
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def bootstrap_percentile_diff(t: Sequence[Sequence[float]], c: Sequence[Sequence[float]], q: float, *,
                              resamples: int = 500, seed: int = 0) -> tuple[float, float] | None:
    """95% interval of percentile q (0..100) of per-request values, treatment minus control,
    resampling users (each a list of their request latencies) within each arm."""
    t = [np.asarray(x, dtype=float) for x in t if len(x)]
    c = [np.asarray(x, dtype=float) for x in c if len(x)]
    if len(t) < 2 or len(c) < 2:
        return None
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        tt = np.concatenate([t[i] for i in rng.integers(0, len(t), len(t))])
        cc = np.concatenate([c[i] for i in rng.integers(0, len(c), len(c))])
        out.append(np.percentile(tt, q) - np.percentile(cc, q))
    return float(np.percentile(out, 2.5)), float(np.percentile(out, 97.5))


def chi2_sf(x: float, df: int) -> float:
    """Survival function of the chi-square distribution (integer df), by the closed-form series."""
    if x <= 0:
        return 1.0
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= (x / 2) / i
            total += term
        return min(1.0, math.exp(-x / 2) * total)
    total = math.erfc(math.sqrt(x / 2))
    term = math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
    for i in range(1, (df - 1) // 2 + 1):
        total += term
        term *= x / (2 * i + 1)
    return min(1.0, total)


def sample_ratio_mismatch(counts: Sequence[int], shares: Sequence[float]) -> float | None:
    """p-value of the chi-square test that user counts per arm follow the configured shares."""
    n = sum(counts)
    if n == 0 or len(counts) < 2 or any(s <= 0 for s in shares):
        return None
    total_share = sum(shares)
    stat = sum((o - n * s / total_share) ** 2 / (n * s / total_share) for o, s in zip(counts, shares, strict=True))
    return chi2_sf(stat, len(counts) - 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Percentile q (0..100) by linear interpolation, or None when empty."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None
