"""Distances between candidate editable regions and the settled region (0 = same text, 1 = unrelated).

Metrics (each with a signature stored next to every distance):
- `levenshtein` (default): normalized Levenshtein distance, edits / max(len(a), len(b)), with
  rapidfuzz `cpdist` (the settled text paired with each of an example's candidates, one call).
- `levenshtein_change`: Levenshtein(candidate, settled) / max(Levenshtein(original, settled),
  Levenshtein(original, candidate)), at most 1: the distance relative to the size of the edits, so
  a one-line edit in a large region is not "close" just because the region is large (a candidate
  that edits nothing while the user did is at 1).
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
from nextedit.settle.fastapply import apply_at_hints, split_keep

__all__ = [
    "METRICS",
    "Metric",
    "RegionApplier",
    "candidate_regions",
    "distances",
    "matrix_distances",
    "pair_distances",
    "region_after_patch",
    "signature",
]

Metric = Literal["levenshtein", "levenshtein_change", "kept_rate", "delta_chrf"]
METRICS: tuple[str, ...] = ("levenshtein", "levenshtein_change", "kept_rate", "delta_chrf")


def signature(metric: str) -> str:
    """How a distance was computed, e.g. `settle_distance:v1|metric=levenshtein|norm=max_len`."""
    if metric == "levenshtein":
        return "settle_distance:v1|metric=levenshtein|unit=chars|norm=max_len"
    if metric == "levenshtein_change":
        return ("settle_distance:v1|metric=levenshtein_change|unit=chars"
                "|norm=max(lev(original,settled),lev(original,candidate))|clip=1")
    if metric == "kept_rate":
        from nextedit.metrics.kept import KEPT_RATE_SIGNATURE

        return f"settle_distance:v1|metric=1-f1(kept,recall)|{KEPT_RATE_SIGNATURE}"
    if metric == "delta_chrf":
        from nextedit.metrics.chrf import VARIANTS

        return f"settle_distance:v1|metric=1-delta_chrf/100|{VARIANTS['v3'].signature}"
    raise ValueError(f"unknown distance metric {metric!r} (known: {', '.join(METRICS)})")


def _window(text: str, start: int, end: int, margin: int) -> tuple[int, int]:
    """Character range of the region widened to whole lines plus `margin` lines on each side."""
    ws = start
    for _ in range(margin + 1):
        ws = text.rfind("\n", 0, max(ws - 1, 0)) + 1 if ws > 0 else 0
    we = end
    for _ in range(margin + (0 if end == 0 or text[end - 1] == "\n" else 1)):
        nl = text.find("\n", we)
        we = len(text) if nl < 0 else nl + 1
    return ws, we


class RegionApplier:
    """Applies candidate patches to one snapshot and returns the editable region each one leads to.

    `region(patch)` tries the hunks exactly at their header lines in the region plus `margin` lines of
    context (`fastapply`), then `patch.to_region` on the whole text; it raises PatchError like
    `patch.to_region` when the patch does not apply or edits outside the region. A hunk that does not
    apply at its header line is never searched for inside the window alone: the nearest match there
    can differ from the nearest match in the whole text. The window is computed once per snapshot,
    not once per candidate, and a patch seen before (samples often repeat) is answered from memory.
    """

    def __init__(self, text: str, editable: tuple[int, int], *, start_line: int = 0, margin: int = 3) -> None:
        self.text, self.editable, self.start_line = text, editable, start_line
        start, end = editable
        ws, we = _window(text, start, end, margin)
        self.first_row = start_line + text.count("\n", 0, ws)
        self.lines = split_keep(text[ws:we])
        self.seen: dict[str, str] = {}
        self.prefix, self.suffix = text[ws:start], text[end:we]

    def _inner(self, new: str) -> str | None:
        p, s = self.prefix, self.suffix
        if len(new) >= len(p) + len(s) and new.startswith(p) and new.endswith(s):
            return new[len(p):len(new) - len(s)]
        return None

    def region(self, patch: str) -> str:
        """The editable region once `patch` is applied."""
        found = self.seen.get(patch)
        if found is None:
            found = self.seen[patch] = self._region(patch)
        return found

    def _region(self, patch: str) -> str:
        new_lines = apply_at_hints(patch, self.lines, self.first_row)
        if new_lines is not None:
            found = self._inner("".join(new_lines))
            if found is not None:
                return found
        return patchlib.to_region(patch, self.text, self.editable, start_line=self.start_line)[1]


def region_after_patch(patch: str, text: str, editable: tuple[int, int], *, start_line: int = 0) -> str:
    """The editable region once `patch` is applied (see `RegionApplier`); raises PatchError."""
    return RegionApplier(text, editable, start_line=start_line).region(patch)


def candidate_regions(example: Example, predictions: Sequence[Prediction]) -> list[str | None]:
    """The editable-region text each prediction leads to; None for a failed sample or a patch that
    does not apply or edits outside the region. An empty patch leaves the region as it is."""
    snap = example.snapshot
    editable = snap.editable or (0, len(snap.text))
    original = snap.text[editable[0]:editable[1]]
    applier = RegionApplier(snap.text, editable, start_line=snap.start_line)
    out: list[str | None] = []
    for pred in predictions:
        if pred.error is not None or pred.patch is None:
            out.append(None)
        elif not pred.patch.strip():
            out.append(original)
        else:
            try:
                out.append(applier.region(pred.patch))
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
        # cpdist (pairwise) rather than cdist (matrix): it strips the common prefix and suffix of each
        # pair first, which makes near-identical regions ~5x cheaper (bench/settle.py measures both).
        return cpdist([settled] * len(candidates), list(candidates), scorer=Levenshtein.normalized_distance,
                      dtype=np.float64, workers=workers)
    if metric == "levenshtein_change":
        cands = list(candidates)
        apart = cpdist([settled] * len(cands), cands, scorer=Levenshtein.distance, dtype=np.float64, workers=workers)
        moved = cpdist([original] * len(cands), cands, scorer=Levenshtein.distance, dtype=np.float64, workers=workers)
        scale = np.maximum(moved, float(Levenshtein.distance(original, settled)))
        return np.minimum(1.0, np.divide(apart, scale, out=np.zeros_like(apart), where=scale > 0))
    if metric == "kept_rate":
        return np.array([_kept_distance(original, settled, c) for c in candidates])
    if metric == "delta_chrf":
        return np.array([_chrf_distance(original, settled, c) for c in candidates])
    raise ValueError(f"unknown distance metric {metric!r} (known: {', '.join(METRICS)})")


def pair_distances(settled: Sequence[str], candidates: Sequence[str], *, workers: int = 1) -> np.ndarray:
    """Normalized Levenshtein distance of each (settled[i], candidates[i]) pair, many examples at once
    (rapidfuzz `cpdist`): the batch form for scoring the candidates of many examples together."""
    return cpdist(list(settled), list(candidates), scorer=Levenshtein.normalized_distance,
                  dtype=np.float64, workers=workers)


def matrix_distances(settled: str, candidates: Sequence[str], *, workers: int = 1) -> np.ndarray:
    """The same distances through rapidfuzz `cdist` (1 x N matrix); kept for the benchmark's comparison."""
    return cdist([settled], list(candidates), scorer=Levenshtein.normalized_distance,
                 dtype=np.float64, workers=workers)[0]
