"""Aggregate scored examples into the summary JSON: means, micro sums, percentiles, counts, CIs, breakdowns."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from nextedit.evaluate import bootstrap
from nextedit.evaluate.plots import nice_ceiling
from nextedit.languages import language_name
from nextedit.metrics.lines import prf
from nextedit.record import Example

SUMMARY_FORMAT = "nextedit-eval-summary"
SUMMARY_VERSION = 1
WORST_COUNT = 20
#: Metrics whose mean gets a bootstrap CI (those present in the scores).
CI_METRICS = ("delta_chrf", "exact_lines_f1", "reversal_ratio", "kept_rate", "recall_rate")
#: Metrics shown as histograms in the report, with their value range.
HISTOGRAMS: dict[str, tuple[float, float]] = {
    "delta_chrf": (0.0, 100.0),
    "reversal_ratio": (0.0, 1.0),
    "kept_rate": (0.0, 1.0),
}
HISTOGRAM_BINS = 10
PERCENTILES = (25, 50, 75, 90, 99)
#: Values that are bookkeeping, not metrics: no mean is reported for them.
NOT_AVERAGED = frozenset({"reference_index", "references", "delta_chrf_beta"})
#: Prefixes whose `_tp/_fp/_fn` values are summed into micro precision / recall / F1.
MICRO_PREFIXES = ("exact_lines", "delta_chrf")
_CONTEXT_LINES = 12
#: Examples kept for the report's per-example view (the first ones in input order).
VIEW_COUNT = 100
#: Most lines of a region shown in the per-example view (a window around the cursor beyond that).
VIEW_MAX_LINES = 40
#: Metrics of the paired per-example differences against the baseline provider.
PAIRED_METRICS = ("delta_chrf", "exact_lines_f1", "kept_rate", "reversal_ratio")
#: Baseline provider when none is named: the first of these present, else the first provider by name.
BASELINE_PREFERENCE = ("propagate", "noop")
LATENCY_BINS = 20


@dataclass
class Row:
    """One scored prediction, flattened: example id, provider, sample, language and metric values."""

    id: str
    provider: str
    sample: int
    language: str
    values: dict[str, Any]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as stored in the summary's `examples` list."""
        out: dict[str, Any] = {"id": self.id, "provider": self.provider, "sample": self.sample,
                               "language": self.language, "values": self.values}
        if self.error:
            out["error"] = self.error
        return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _plain(value: Any) -> Any:
    """A JSON-safe metric value (numbers, bools, None; non-finite floats become None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def _mark_cursor(text: str, cursor: int, start_line: int, focus: int = _CONTEXT_LINES) -> dict[str, Any]:
    """Lines around the cursor (numbered as file lines) with the cursor's line and column."""
    before = text[:cursor]
    row = before.count("\n")
    col = cursor - (before.rfind("\n") + 1)
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "" and row < len(lines) - 1:
        lines.pop()  # the empty "line" after a final newline
    lo, hi = max(0, row - focus), min(len(lines), row + focus + 1)
    return {"first_line": start_line + lo + 1, "lines": lines[lo:hi], "cursor_row": row - lo,
            "cursor_col": col}


def _region_lines(snapshot: Any, max_lines: int = VIEW_MAX_LINES) -> dict[str, Any]:
    """The excerpt's lines around the editable region as segments: class "" (outside), "ed" (editable region)
    and one "cursor" mark; a window of `max_lines` around the cursor when the region is longer."""
    text, cursor = snapshot.text, snapshot.cursor
    start, end = snapshot.editable or (0, len(text))
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    row_of = lambda off: max(0, min(len(lines) - 1, text.count("\n", 0, off)))
    last = end - 1 if end > start and text[end - 1:end] == "\n" else end  # a region ending at a line start
    lo, hi = max(0, row_of(start) - 3), min(len(lines), row_of(last) + 4)
    crow = row_of(cursor)
    if hi - lo > max_lines:
        lo = max(0, min(crow - max_lines // 2, len(lines) - max_lines))
        hi = min(len(lines), lo + max_lines)
    out = []
    for row in range(lo, hi):
        a, line = offsets[row], lines[row]
        cuts = sorted({0, len(line), *(x - a for x in (start, end, cursor) if a <= x <= a + len(line))})
        parts: list[list[str]] = []
        for i, c in enumerate(cuts):
            if a + c == cursor and row == crow:
                parts.append(["▌", "cursor"])
            if i + 1 < len(cuts) and cuts[i + 1] > c:
                parts.append([line[c:cuts[i + 1]], "ed" if start <= a + c < end else ""])
        if not line and start <= a < end:
            parts.append(["", "ed"])
        out.append({"n": snapshot.start_line + row + 1, "parts": parts,
                    "editable": start <= a + len(line) and a < max(end, start + 1)})
    return {"lines": out, "first_line": snapshot.start_line + lo + 1, "total_lines": len(lines)}


def choose_baseline(providers: Iterable[str], requested: str | None = None) -> str | None:
    """The provider others are compared with: `requested`, else propagate, else noop, else the first by name."""
    names = sorted(providers)
    if requested is not None:
        if requested not in names:
            raise ValueError(f"baseline {requested!r} is none of the providers: {', '.join(names) or '(none)'}")
        return requested
    for name in BASELINE_PREFERENCE:
        if name in names:
            return name
    return names[0] if names else None


@dataclass
class SummaryBuilder:
    """Collects rows (and the worst examples per provider) from a stream of scored examples."""

    worst_count: int = WORST_COUNT
    view_count: int = VIEW_COUNT
    views: list[dict[str, Any]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    signatures: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    examples: int = 0
    unscored: int = 0
    _worst: dict[str, list[tuple[float, int, dict[str, Any]]]] = field(default_factory=dict)
    _tick: int = 0

    def add(self, example: Example) -> None:
        """Add every score of one example."""
        self.examples += 1
        language = language_name(example.snapshot.path)
        scored = {s.prediction for s in example.scores}
        view = self._view(example) if example.scores and len(self.views) < self.view_count else None
        self.unscored += sum(1 for i in range(len(example.predictions)) if i not in scored)
        for score in example.scores:
            if not 0 <= score.prediction < len(example.predictions):
                continue
            pred = example.predictions[score.prediction]
            values = {k: _plain(v) for k, v in score.values.items()}
            # Serving cost of the prediction (not a metric of its content): latency, tokens, money.
            if pred.latency_ms is not None:
                values["latency_ms"] = float(pred.latency_ms)
            if pred.usage is not None:
                values.update(input_tokens=pred.usage.input_tokens, output_tokens=pred.usage.output_tokens,
                              cost_usd=pred.usage.cost_usd)
            row = Row(example.id, pred.provider, pred.sample, language, values, pred.error)
            self.rows.append(row)
            for metric, sig in score.signatures.items():
                self.signatures[metric].add(sig)
            self._consider_worst(example, score.prediction, score.reference, row)
            if view is not None and pred.provider not in view["predictions"]:
                if not view["expected"] and score.reference is not None and 0 <= score.reference < len(example.expected):
                    view["expected"] = example.expected[score.reference]
                view["predictions"][pred.provider] = {
                    "sample": pred.sample, "patch": pred.patch or "", "error": pred.error,
                    "delta_chrf": _number(values.get("delta_chrf")),
                    "no_edit": bool(values.get("no_edit_predicted", not (pred.patch or "").strip()))}

    def _view(self, example: Example) -> dict[str, Any]:
        view = {"id": example.id, "path": example.snapshot.path, "language": language_name(example.snapshot.path),
                "region": _region_lines(example.snapshot), "expected": "", "predictions": {}}
        self.views.append(view)
        return view

    def _consider_worst(self, example: Example, index: int, reference: int | None, row: Row) -> None:
        value = _number(row.values.get("delta_chrf"))
        if value is None or self.worst_count <= 0:
            return
        heap = self._worst.setdefault(row.provider, [])
        self._tick += 1
        key = (-value, -self._tick)  # max-heap on score: the root is the best of the worst kept
        if len(heap) >= self.worst_count and key <= heap[0][:2]:
            return
        snap = example.snapshot
        expected = example.expected[reference] if reference is not None and 0 <= reference < len(example.expected) else ""
        pred = example.predictions[index]
        entry = {
            "id": example.id, "provider": row.provider, "sample": row.sample, "language": row.language,
            "path": snap.path, "values": row.values, "error": pred.error,
            "expected": expected, "predicted": pred.patch or "",
            "snapshot": _mark_cursor(snap.text, snap.cursor, snap.start_line),
        }
        item = (key[0], key[1], entry)
        if len(heap) < self.worst_count:
            heapq.heappush(heap, item)
        else:
            heapq.heapreplace(heap, item)

    def worst(self) -> dict[str, list[dict[str, Any]]]:
        """The worst examples per provider by deltaChrF, lowest first."""
        return {p: [e for _, _, e in sorted(h, key=lambda t: (-t[0], -t[1]))] for p, h in sorted(self._worst.items())}


def _micro(rows: list[Row], prefix: str) -> dict[str, Any] | None:
    keys = [f"{prefix}_{k}" for k in ("tp", "fp", "fn")]
    if not any(keys[0] in r.values for r in rows):
        return None
    tp, fp, fn = (sum(_number(r.values.get(k)) or 0.0 for r in rows) for k in keys)
    precision, recall, f1 = prf(int(tp), int(fp), int(fn))
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "precision": precision, "recall": recall, "f1": f1}


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    points = np.percentile(np.asarray(values, dtype=float), PERCENTILES)
    return {f"p{p}": float(v) for p, v in zip(PERCENTILES, points, strict=True)}


def histogram(values: list[float], lo: float, hi: float, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Counts of values in `bins` equal bins over [lo, hi] (values outside are clipped to the ends)."""
    arr = np.clip(np.asarray(values, dtype=float), lo, hi)
    counts, edges = np.histogram(arr, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts], "n": int(arr.size)}


def _by_example(rows: list[Row], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-example sum and count of a metric (the bootstrap resamples examples, not predictions)."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        v = _number(r.values.get(key))
        if v is not None:
            sums[r.id] += v
            counts[r.id] += 1
    ids = list(sums)
    return np.array([sums[i] for i in ids]), np.array([counts[i] for i in ids], dtype=float)


def group_stats(rows: list[Row], *, resamples: int = bootstrap.DEFAULT_RESAMPLES,
                seed: int = bootstrap.DEFAULT_SEED, ci: bool = True) -> dict[str, Any]:
    """Statistics of one group of rows (one provider, or one provider and language)."""
    numeric: dict[str, list[float]] = defaultdict(list)
    flags: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        for k, v in r.values.items():
            if isinstance(v, bool):
                flags[k].append(v)
            elif k not in NOT_AVERAGED and (x := _number(v)) is not None:
                numeric[k].append(x)
    counts = {
        "examples": len({r.id for r in rows}),
        "predictions": len(rows),
        "errors": sum(1 for r in rows if r.error),
    }
    for flag in ("no_edit_predicted", "no_edit_expected"):
        if flags.get(flag):
            counts[flag] = sum(flags[flag])
    stats: dict[str, Any] = {
        "counts": counts,
        "means": {k: float(np.mean(v)) for k, v in sorted(numeric.items())},
        "rates": {k: sum(v) / len(v) for k, v in sorted(flags.items())},
        "n": {k: len(v) for k, v in sorted({**numeric, **flags}.items())},
        "micro": {p: m for p in MICRO_PREFIXES if (m := _micro(rows, p)) is not None},
    }
    edited = [r for r in rows if r.values.get("no_edit_predicted") is False]
    sizes: dict[str, Any] = {}
    for key in ("inserted_tokens", "deleted_tokens"):
        sizes[key] = _percentiles([x for r in edited if (x := _number(r.values.get(key))) is not None])
    totals = [(_number(r.values.get("inserted_tokens")) or 0.0) + (_number(r.values.get("deleted_tokens")) or 0.0)
              for r in edited if "inserted_tokens" in r.values]
    sizes["total_tokens"] = _percentiles(totals)
    stats["edit_size"] = {k: v for k, v in sizes.items() if v is not None}
    latency = _percentiles(numeric.get("latency_ms", []))
    if latency is not None:
        stats["latency_ms"] = latency
    if "cost_usd" in numeric:
        stats["usage"] = {"cost_usd": float(sum(numeric["cost_usd"])),
                          "input_tokens": int(sum(numeric.get("input_tokens", []))),
                          "output_tokens": int(sum(numeric.get("output_tokens", [])))}
    if ci:
        intervals: dict[str, list[float]] = {}
        for key in CI_METRICS:
            if key in numeric:
                sums, cnts = _by_example(rows, key)
                interval = bootstrap.ratio_ci(sums, cnts, resamples=resamples, seed=seed)
                if interval is not None:
                    intervals[key] = list(interval)
        if "exact_lines" in stats["micro"]:
            cols = [_by_example(rows, f"exact_lines_{k}")[0] for k in ("tp", "fp", "fn")]
            interval = bootstrap.f1_ci(*cols, resamples=resamples, seed=seed)
            if interval is not None:
                intervals["exact_lines_micro_f1"] = list(interval)
        stats["ci"] = intervals
    return stats


def _per_example(rows: list[Row], metric: str) -> dict[str, float]:
    """Example id -> mean of `metric` over that example's samples."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        if (v := _number(r.values.get(metric))) is not None:
            sums[r.id] += v
            counts[r.id] += 1
    return {i: sums[i] / counts[i] for i in sums}


def paired(by_provider: dict[str, list[Row]], baseline: str | None, *, resamples: int, seed: int) -> dict[str, Any]:
    """Paired per-example differences (provider minus baseline) with 95% bootstrap CIs, per metric."""
    from nextedit.evaluate.compare import (
        paired_difference,  # compare imports this module
    )

    out: dict[str, Any] = {"baseline": baseline, "metrics": list(PAIRED_METRICS), "differences": {}}
    if baseline is None:
        return out
    base = by_provider[baseline]
    for p, rows in sorted(by_provider.items()):
        if p == baseline:
            continue
        diffs = {}
        for m in PAIRED_METRICS:
            d = paired_difference(_per_example(base, m), _per_example(rows, m), resamples=resamples, seed=seed)
            if d is not None:
                d["ci"] = [x if math.isfinite(x) else None for x in d["ci"]]
                diffs[m] = d
        out["differences"][p] = diffs
    return out


def _quantiles(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    q = np.percentile(arr, (10, 25, 50, 75, 90))
    return {"n": int(arr.size), "min": float(arr.min()), "p10": float(q[0]), "p25": float(q[1]), "p50": float(q[2]),
            "p75": float(q[3]), "p90": float(q[4]), "max": float(arr.max()), "mean": float(arr.mean())}


def latency_histogram(by_provider: dict[str, list[Row]], bins: int = LATENCY_BINS) -> dict[str, Any] | None:
    """Latency counts per provider over shared bins from 0 to a round number above the p99 of all latencies
    (slower predictions land in the last bin)."""
    values = {p: [x for r in rows if (x := _number(r.values.get("latency_ms"))) is not None]
              for p, rows in sorted(by_provider.items())}
    values = {p: v for p, v in values.items() if v}
    if not values:
        return None
    everything = [x for v in values.values() for x in v]
    top = nice_ceiling(max(float(np.percentile(everything, 99)), 1.0))
    out: dict[str, Any] = {"edges": [], "counts": {}, "n": {}}
    for p, v in values.items():
        h = histogram(v, 0.0, top, bins)
        out["edges"], out["counts"][p], out["n"][p] = h["edges"], h["counts"], h["n"]
    return out


def _outcomes(views: list[dict[str, Any]], baseline: str | None) -> None:
    """Tag each shown prediction: better / worse / same (deltaChrF against the baseline's on that example),
    error, no-edit, baseline."""
    for view in views:
        base = view["predictions"].get(baseline) if baseline else None
        b = base["delta_chrf"] if base else None
        for p, pred in view["predictions"].items():
            tags = []
            if p == baseline:
                tags.append("baseline")
            elif pred["delta_chrf"] is not None and b is not None:
                v = pred["delta_chrf"]
                tags.append("better" if v > b + 1e-9 else "worse" if v < b - 1e-9 else "same")
            if pred["error"]:
                tags.append("error")
            if pred["no_edit"]:
                tags.append("no-edit")
            pred["outcome"] = tags


def summarize(builder: SummaryBuilder, *, input_name: str = "", resamples: int = bootstrap.DEFAULT_RESAMPLES,
              seed: int = bootstrap.DEFAULT_SEED, include_rows: bool = True,
              failed: int = 0, baseline: str | None = None) -> dict[str, Any]:
    """The summary JSON for everything added to `builder` (`failed`: examples a stage quarantined;
    `baseline`: the provider of the paired differences and the per-example outcomes, see `choose_baseline`)."""
    by_provider: dict[str, list[Row]] = defaultdict(list)
    for r in builder.rows:
        by_provider[r.provider].append(r)
    providers = {p: group_stats(rows, resamples=resamples, seed=seed) for p, rows in sorted(by_provider.items())}
    by_language: dict[str, dict[str, Any]] = {}
    histograms: dict[str, dict[str, Any]] = {}
    for p, rows in sorted(by_provider.items()):
        langs: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            langs[r.language].append(r)
        by_language[p] = {lang: group_stats(lr, resamples=resamples, seed=seed) for lang, lr in sorted(langs.items())}
        histograms[p] = {}
        for metric, (lo, hi) in HISTOGRAMS.items():
            vals = [x for r in rows if (x := _number(r.values.get(metric))) is not None]
            if vals:
                histograms[p][metric] = histogram(vals, lo, hi)
    signatures = {k: min(v) if len(v) == 1 else sorted(v) for k, v in sorted(builder.signatures.items())}
    base = choose_baseline(by_provider, baseline)
    _outcomes(builder.views, base)
    plots: dict[str, Any] = {"delta_chrf": {}}
    for p, rows in sorted(by_provider.items()):
        q = _quantiles([x for r in rows if (x := _number(r.values.get("delta_chrf"))) is not None])
        if q is not None:
            plots["delta_chrf"][p] = q
    if (lat := latency_histogram(by_provider)) is not None:
        plots["latency_ms"] = lat
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "input": input_name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "bootstrap": {"resamples": resamples, "seed": seed, "level": bootstrap.DEFAULT_LEVEL, "unit": "example"},
        "totals": {"examples": builder.examples, "scored_predictions": len(builder.rows),
                   "unscored_predictions": builder.unscored, "failed_examples": failed},
        "signatures": signatures,
        "providers": providers,
        "by_language": by_language,
        "histograms": histograms,
        "worst": builder.worst(),
        "plots": plots,
        "paired": paired(by_provider, base, resamples=resamples, seed=seed),
        "views": {"baseline": base, "total": builder.examples, "examples": builder.views},
    }
    if include_rows:
        summary["examples"] = [r.to_dict() for r in builder.rows]
    return summary


def summarize_examples(examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
    """Convenience: build the summary of an iterable of scored examples."""
    builder = SummaryBuilder()
    for ex in examples:
        builder.add(ex)
    return summarize(builder, **kwargs)
