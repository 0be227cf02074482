"""Seeded bootstrap confidence intervals over examples (cluster bootstrap; paired when comparing runs)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
_MAX_CELLS = 4_000_000  # resample indices drawn per chunk (keeps memory flat on big eval sets)


def _resampled_stats(columns: list[np.ndarray], stat: Callable[..., np.ndarray], resamples: int,
                     seed: int) -> np.ndarray:
    """`stat` applied to `resamples` resamples (with replacement) of the rows of `columns`."""
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // max(n, 1))
    out: list[np.ndarray] = []
    done = 0
    while done < resamples:
        k = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(k, n))
        out.append(stat(*(col[idx].sum(axis=1) for col in columns)))
        done += k
    return np.concatenate(out)


def _interval(values: np.ndarray, level: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def ratio_ci(numerators: np.ndarray, denominators: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL) -> tuple[float, float] | None:
    """CI of sum(num)/sum(den) over resampled clusters (rows = examples); a mean when den = counts."""
    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    if num.size == 0 or den.sum() == 0:
        return None

    def stat(s_num: np.ndarray, s_den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return s_num / s_den

    return _interval(_resampled_stats([num, den], stat, resamples, seed), level)


def f1_ci(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
          seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL) -> tuple[float, float] | None:
    """CI of the micro F1 2TP/(2TP+FP+FN) over resampled clusters (rows = examples)."""
    cols = [np.asarray(c, dtype=float) for c in (tp, fp, fn)]
    if cols[0].size == 0:
        return None

    def stat(s_tp: np.ndarray, s_fp: np.ndarray, s_fn: np.ndarray) -> np.ndarray:
        den = 2 * s_tp + s_fp + s_fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 2 * s_tp / np.where(den > 0, den, 1), 1.0)

    return _interval(_resampled_stats(cols, stat, resamples, seed), level)


def ratio_difference_ci(num_b: np.ndarray, den_b: np.ndarray, num_a: np.ndarray, den_a: np.ndarray, *,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                        level: float = DEFAULT_LEVEL) -> tuple[float, float] | None:
    """CI of sum(num_b)/sum(den_b) - sum(num_a)/sum(den_a) over resampled clusters (rows = clusters seen by
    both runs, e.g. users): a paired comparison of two ratios such as acceptance rates."""
    cols = [np.asarray(c, dtype=float) for c in (num_b, den_b, num_a, den_a)]
    if cols[0].size == 0 or cols[1].sum() == 0 or cols[3].sum() == 0:
        return None

    def stat(nb: np.ndarray, db: np.ndarray, na: np.ndarray, da: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return nb / db - na / da

    return _interval(_resampled_stats(cols, stat, resamples, seed), level)
