"""The worst-scored examples per provider in a scored file (for `nextedit eval --worst N`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from nextedit.jsonl import read_examples

__all__ = ["worst_examples"]


def worst_examples(scored: Path, n: int, metric: str = "delta_chrf") -> dict[str, list[tuple[str, float]]]:
    """Per provider, the `n` examples with the lowest `metric` (mean over that provider's samples),
    lowest first; ties keep file order. Predictions without that score are left out."""
    per: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for order, ex in enumerate(read_examples(scored)):
        values: dict[str, list[float]] = defaultdict(list)
        for score in ex.scores:
            if score.prediction is None or score.prediction >= len(ex.predictions):
                continue
            value = score.values.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[ex.predictions[score.prediction].provider].append(float(value))
        for provider, vs in values.items():
            per[provider].append((sum(vs) / len(vs), order, ex.id))
    return {p: [(eid, v) for v, _, eid in sorted(rows)[:n]] for p, rows in sorted(per.items())}
