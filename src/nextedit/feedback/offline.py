"""Offline evaluation of a new student on held-out users' feedback records, paired against the current one.

Per record and model, from the model's answer for the record's snapshot:
- `reproduces_rejected` (rejected records): the model proposes the very region the user rejected;
- `no_edit_where_rejected` (rejected records): the model proposes no edit;
- `keeps_accepted` (accepted records): the model still proposes the accepted region;
- `delta_chrf` (records with a settled text): deltaChrF of the model's edit against the user's settled edit;
- `reversal_ratio` (every record): how much of the user's last edit the model's answer undoes.

Each metric: the mean per model, and the paired difference candidate - current over the records where
both are defined, with a 95% bootstrap interval that resamples users (a user's records move together).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nextedit import patch as patchlib
from nextedit.evaluate import bootstrap
from nextedit.feedback.records import FeedbackRecord
from nextedit.metrics.chrf import delta_chrf
from nextedit.metrics.reversal import reversal_from_history
from nextedit.record import Example

__all__ = ["METRICS", "RECORDED", "Answer", "evaluate_answers", "predict_answers", "record_values"]

RECORDED = "recorded"
#: metric -> (lower is better, label)
METRICS: dict[str, tuple[bool, str]] = {
    "reproduces_rejected": (True, "reproduces rejected"),
    "no_edit_where_rejected": (False, "no edit where rejected"),
    "keeps_accepted": (False, "keeps accepted"),
    "delta_chrf": (False, "deltaChrF vs settled"),
    "reversal_ratio": (True, "reversal ratio"),
}


@dataclass(frozen=True)
class Answer:
    """A model's answer for one record: the editable region it proposes (the original when no edit)."""

    region: str
    error: str | None = None


def recorded_answer(record: FeedbackRecord) -> Answer:
    """The current student's answer as logged: the shown prediction."""
    return Answer(record.prediction.region)


def _region(record: FeedbackRecord, patch: str | None) -> Answer:
    snap = record.snapshot
    if not patch or not patch.strip():
        return Answer(record.original)
    try:
        return Answer(patchlib.to_region(patch, snap.text, snap.editable or (0, len(snap.text)),
                                         start_line=snap.start_line)[1])
    except patchlib.PatchError as exc:
        return Answer(record.original, error=str(exc))


def predict_answers(records: list[FeedbackRecord], predictor: Any,
                    progress: Callable[[int], None] | None = None) -> list[Answer]:
    """The predictor's answer (one greedy sample) for each record's snapshot."""
    import asyncio

    out = []
    for i, rec in enumerate(records):
        preds = asyncio.run(predictor.predict_async(Example(id=rec.id, snapshot=rec.snapshot)))
        pred = preds[0] if preds else None
        answer = _region(rec, pred.patch if pred is not None else None)
        if pred is not None and pred.error and answer.error is None:
            answer = Answer(answer.region, pred.error)
        out.append(answer)
        if progress is not None:
            progress(i + 1)
    return out


def _text(record: FeedbackRecord, region: str) -> str:
    snap = record.snapshot
    start, end = snap.editable or (0, len(snap.text))
    return snap.text[:start] + region + snap.text[end:]


def record_values(record: FeedbackRecord, answer: Answer) -> dict[str, float]:
    """The metrics defined for this record and answer (see the module docstring)."""
    snap = record.snapshot
    values: dict[str, float] = {}
    proposed = answer.region != record.original
    if record.outcome == "rejected":
        values["reproduces_rejected"] = float(answer.region == record.prediction.region)
        values["no_edit_where_rejected"] = float(not proposed)
    if record.outcome == "accepted":
        values["keeps_accepted"] = float(answer.region == record.prediction.region)
    actual = _text(record, answer.region)
    if record.settled is not None:
        values["delta_chrf"] = delta_chrf(snap.text, _text(record, record.settled.text), actual).score
    values["reversal_ratio"] = reversal_from_history(snap.text, actual, snap.history, path=snap.path,
                                                     start_line=snap.start_line).ratio
    return values


def _by_user(records: list[FeedbackRecord], values: list[float | None]) -> tuple[np.ndarray, np.ndarray]:
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for rec, v in zip(records, values, strict=True):
        if v is not None:
            sums[rec.user] += v
            counts[rec.user] += 1
    users = sorted(counts)
    return np.array([sums[u] for u in users]), np.array([counts[u] for u in users], dtype=float)


def _mean_ci(records: list[FeedbackRecord], values: list[float | None], resamples: int,
             seed: int) -> dict[str, Any] | None:
    num, den = _by_user(records, values)
    if den.sum() == 0:
        return None
    ci = bootstrap.ratio_ci(num, den, resamples=resamples, seed=seed)
    return {"mean": float(num.sum() / den.sum()), "ci": list(ci) if ci else None, "records": int(den.sum()),
            "users": int((den > 0).sum())}


def evaluate_answers(records: list[FeedbackRecord], answers: dict[str, list[Answer]], *, current: str,
                     resamples: int = bootstrap.DEFAULT_RESAMPLES, seed: int = bootstrap.DEFAULT_SEED
                     ) -> dict[str, Any]:
    """Means per model and paired differences (model - current) per metric, intervals by user."""
    values = {name: [record_values(r, a) for r, a in zip(records, ans, strict=True)]
              for name, ans in answers.items()}
    out: dict[str, Any] = {
        "records": len(records), "users": len({r.user for r in records}), "current": current,
        "outcomes": dict(sorted(Counter(r.outcome for r in records).items())),
        "models": {}, "paired": {}, "resamples": resamples, "seed": seed,
        "interval": "95% bootstrap over users (records of a user resampled together)",
    }
    for name, rows in values.items():
        out["models"][name] = {"errors": sum(1 for a in answers[name] if a.error),
                               **{m: _mean_ci(records, [row.get(m) for row in rows], resamples, seed)
                                  for m in METRICS}}
    base = values[current]
    for name, rows in values.items():
        if name == current:
            continue
        paired: dict[str, Any] = {}
        for m, (lo_better, _label) in METRICS.items():
            diffs = [row[m] - b[m] if m in row and m in b else None for row, b in zip(rows, base, strict=True)]
            paired[m] = _mean_ci(records, diffs, resamples, seed)
            if paired[m] is not None:
                ci = paired[m]["ci"]
                better = ci is not None and (ci[1] < 0 if lo_better else ci[0] > 0)
                worse = ci is not None and (ci[0] > 0 if lo_better else ci[1] < 0)
                paired[m]["verdict"] = "better" if better else "worse" if worse else "inconclusive"
        out["paired"][name] = paired
    return out

