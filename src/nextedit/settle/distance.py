"""Distances between candidate editable regions and the settled region (0 = same text, 1 = unrelated).

Metrics (each with a signature stored next to every distance):
- `levenshtein` (default): normalized Levenshtein distance, edits / max(len(a), len(b)), with
  rapidfuzz `cdist` (one settled text against all of an example's candidates in one call).
- `kept_rate`: 1 - F1 of kept rate and recall rate (section 3.4: how much of the candidate's
  change survived in the settled text, and how much of the settled change the candidate made).
- `delta_chrf`: 1 - deltaChrF(original -> settled, original -> candidate) / 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist, cpdist

from nextedit import patch as patchlib
from nextedit.record import Example, Prediction

__all__ = ["METRICS", "Metric", "candidate_regions", "distances", "pair_distances", "signature"]

Metric = Literal["levenshtein", "kept_rate", "delta_chrf"]
METRICS: tuple[str, ...] = ("levenshtein", "kept_rate", "delta_chrf")


def signature(metric: str) -> str:
    """How a distance was computed, e.g. `settle_distance:v1|metric=levenshtein|norm=max_len`."""
    if metric == "levenshtein":
        return "settle_distance:v1|metric=levenshtein|unit=chars|norm=max_len"
    if metric == "kept_rate":
        from nextedit.metrics.kept import KEPT_RATE_SIGNATURE

        return f"settle_distance:v1|metric=1-f1(kept,recall)|{KEPT_RATE_SIGNATURE}"
    if metric == "delta_chrf":
        from nextedit.metrics.chrf import VARIANTS

        return f"settle_distance:v1|metric=1-delta_chrf/100|{VARIANTS['v3'].signature}"
    raise ValueError(f"unknown distance metric {metric!r} (known: {', '.join(METRICS)})")


def candidate_regions(example: Example, predictions: Sequence[Prediction]) -> list[str | None]:
    """The editable-region text each prediction leads to; None for a failed sample or a patch that
    does not apply or edits outside the region. An empty patch leaves the region as it is."""
    snap = example.snapshot
    editable = snap.editable or (0, len(snap.text))
    original = snap.text[editable[0]:editable[1]]
    out: list[str | None] = []
    for pred in predictions:
        if pred.error is not None or pred.patch is None:
            out.append(None)
        elif not pred.patch.strip():
            out.append(original)
        else:
            try:
                out.append(patchlib.to_region(pred.patch, snap.text, editable, start_line=snap.start_line)[1])
            except patchlib.PatchError:
                out.append(None)
    return out


def _kept_distance(original: str, settled: str, candidate: str) -> float:
    from nextedit.metrics.kept import kept_rate

    k = kept_rate(original, candidate, settled)
    total = k.kept_rate + k.recall_rate
    return 1.0 - (2 * k.kept_rate * k.recall_rate / total if total > 0 else 0.0)


def _chrf_distance(original: str, settled: str, candidate: str) -> float:
    from nextedit.metrics.chrf import delta_chrf

    return 1.0 - delta_chrf(original, settled, candidate).score / 100.0


def distances(original: str, settled: str, candidates: Sequence[str], metric: str = "levenshtein",
              *, workers: int = 1) -> np.ndarray:
    """Distance of every candidate region to the settled region (float64 array, same order)."""
    if not candidates:
        return np.zeros(0)
    if metric == "levenshtein":
        return cdist([settled], list(candidates), scorer=Levenshtein.normalized_distance,
                     dtype=np.float64, workers=workers)[0]
    if metric == "kept_rate":
        return np.array([_kept_distance(original, settled, c) for c in candidates])
    if metric == "delta_chrf":
        return np.array([_chrf_distance(original, settled, c) for c in candidates])
    raise ValueError(f"unknown distance metric {metric!r} (known: {', '.join(METRICS)})")


def pair_distances(settled: Sequence[str], candidates: Sequence[str], *, workers: int = 1) -> np.ndarray:
    """Normalized Levenshtein distance of each (settled[i], candidates[i]) pair, many examples at once
    (rapidfuzz `cpdist`): the batch form used when candidates of many examples are scored together."""
    return cpdist(list(settled), list(candidates), scorer=Levenshtein.normalized_distance,
                  dtype=np.float64, workers=workers)
