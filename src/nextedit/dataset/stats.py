"""Summary statistics of an examples file: counts, languages, sizes, sources, labels, predictions."""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nextedit.languages import language_name
from nextedit.record import Example

PERCENTILES = (50, 90, 99)


def distribution(values: Iterable[float]) -> dict[str, float | int | None]:
    """count, min, p50, p90, p99, max and mean of a list of numbers (None values when empty)."""
    arr = np.asarray(list(values) if not isinstance(values, array) else values, dtype=float)
    if arr.size == 0:
        return {"count": 0, "min": None, **{f"p{p}": None for p in PERCENTILES}, "max": None, "mean": None}

    def tidy(x: float) -> float | int:
        return int(x) if float(x).is_integer() else round(float(x), 3)

    out: dict[str, float | int | None] = {"count": int(arr.size), "min": tidy(arr.min())}
    for p, v in zip(PERCENTILES, np.percentile(arr, PERCENTILES), strict=True):
        out[f"p{p}"] = tidy(v)
    out["max"] = tidy(arr.max())
    out["mean"] = tidy(arr.mean())
    return out


def count_changed_lines(patch: str) -> int | None:
    """Number of added plus removed lines in a unified diff, or None when it does not parse."""
    from nextedit.patch import PatchError, changed_lines

    try:
        return len(changed_lines(patch))
    except PatchError:
        return None


def _parse_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class StatsCollector:
    """Accumulates statistics one example at a time (memory: a few numbers per example)."""

    def __init__(self, top: int = 10):
        self.top = top
        self.examples = 0
        self.languages: Counter[str] = Counter()
        self.sizes: dict[str, array] = defaultdict(lambda: array("d"))
        self.kinds: Counter[str] = Counter()
        self.repos: Counter[str] = Counter()
        self.licenses: Counter[str] = Counter()
        self.without_repo = 0
        self.without_time = 0
        self.time_min: tuple[datetime, str] | None = None
        self.time_max: tuple[datetime, str] | None = None
        self.with_expected = 0
        self.bad_expected = 0
        self.alternatives: Counter[int] = Counter()
        self.with_expected_cursors = 0
        self.with_settled = 0
        self.with_rejected = 0
        self.with_predictions = 0
        self.providers: dict[str, dict[str, Any]] = {}
        self.latency: dict[str, array] = defaultdict(lambda: array("d"))
        self.checks: dict[str, Counter[str]] = defaultdict(Counter)
        self.scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.scored: Counter[str] = Counter()

    def add(self, ex: Example) -> None:
        """Count one example."""
        snap = ex.snapshot
        self.examples += 1
        self.languages[language_name(snap.path)] += 1
        e0, e1 = snap.editable or (0, len(snap.text))
        self.sizes["text_chars"].append(len(snap.text))
        self.sizes["text_lines"].append(snap.text.count("\n") + (0 if snap.text.endswith("\n") or not snap.text else 1))
        self.sizes["editable_chars"].append(e1 - e0)
        self.sizes["history_events"].append(len(snap.history))
        self.sizes["related_excerpts"].append(len(snap.related))
        self.sizes["diagnostics"].append(len(snap.diagnostics))
        for patch in ex.expected:
            changed = count_changed_lines(patch)
            if changed is None:
                self.bad_expected += 1
            else:
                self.sizes["expected_changed_lines"].append(changed)

        src = ex.source
        self.kinds[src.kind] += 1
        if src.repo:
            self.repos[src.repo] += 1
        else:
            self.without_repo += 1
        if src.license:
            self.licenses[src.license] += 1
        t = _parse_time(src.time) if src.time else None
        if t is None:
            self.without_time += 1
        else:
            if self.time_min is None or t < self.time_min[0]:
                self.time_min = (t, src.time or "")
            if self.time_max is None or t > self.time_max[0]:
                self.time_max = (t, src.time or "")

        if ex.expected:
            self.with_expected += 1
            self.alternatives[len(ex.expected)] += 1
        if ex.expected_cursors and any(c is not None for c in ex.expected_cursors):
            self.with_expected_cursors += 1
        self.with_settled += ex.settled is not None
        self.with_rejected += bool(ex.rejected)

        if ex.predictions:
            self.with_predictions += 1
        for pred in ex.predictions:
            p = self.providers.setdefault(pred.provider, {
                "predictions": 0, "errors": 0, "empty_patches": 0,
                "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
            p["predictions"] += 1
            p["errors"] += bool(pred.error)
            p["empty_patches"] += pred.patch is not None and not pred.patch.strip()
            if pred.latency_ms is not None:
                self.latency[pred.provider].append(pred.latency_ms)
            if pred.usage is not None:
                p["input_tokens"] += pred.usage.input_tokens
                p["output_tokens"] += pred.usage.output_tokens
                p["cost_usd"] += pred.usage.cost_usd
        for check in ex.checks:
            self.checks[check.code]["passed" if check.passed else "failed"] += 1
        for score in ex.scores:
            provider = (ex.predictions[score.prediction].provider
                        if 0 <= score.prediction < len(ex.predictions) else "?")
            self.scored[provider] += 1
            for key, value in score.values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.scores[provider][key].append(float(value))

    def result(self, file: str | None = None) -> dict[str, Any]:
        """All statistics as JSON-ready data."""
        n = self.examples
        providers = {}
        for name, p in sorted(self.providers.items()):
            providers[name] = {**p, "cost_usd": round(p["cost_usd"], 6),
                               "latency_ms": distribution(self.latency.get(name, array("d")))}
        scores = {prov: {"scored": self.scored[prov],
                         "means": {k: round(sum(v) / len(v), 4) for k, v in sorted(keys.items())}}
                  for prov, keys in sorted(self.scores.items())}
        return {
            "file": file,
            "examples": n,
            "languages": dict(self.languages.most_common()),
            "sizes": {name: distribution(self.sizes.get(name, array("d"))) for name in (
                "text_chars", "text_lines", "editable_chars", "expected_changed_lines",
                "history_events", "related_excerpts", "diagnostics")},
            "sources": {
                "kinds": dict(self.kinds.most_common()),
                "repos": {"distinct": len(self.repos), "without_repo": self.without_repo,
                          "top": [[repo, c] for repo, c in self.repos.most_common(self.top)]},
                "licenses": dict(self.licenses.most_common()),
                "time": {"oldest": self.time_min[1] if self.time_min else None,
                         "newest": self.time_max[1] if self.time_max else None,
                         "without_time": self.without_time},
            },
            "labels": {
                "with_expected": self.with_expected,
                "without_expected": n - self.with_expected,
                "alternatives": {str(k): v for k, v in sorted(self.alternatives.items())},
                "unparseable_expected_patches": self.bad_expected,
                "with_expected_cursors": self.with_expected_cursors,
                "with_settled": self.with_settled,
                "with_rejected": self.with_rejected,
            },
            "predictions": {"examples_with_predictions": self.with_predictions, "providers": providers},
            "checks": {code: {"passed": c["passed"], "failed": c["failed"]} for code, c in sorted(self.checks.items())},
            "scores": scores,
        }


def collect_stats(examples: Iterable[Example], *, top: int = 10, file: str | None = None) -> dict[str, Any]:
    """Statistics of a stream of examples (see StatsCollector.result for the fields)."""
    collector = StatsCollector(top=top)
    for ex in examples:
        collector.add(ex)
    return collector.result(file)


def stats_file(path: Path, *, top: int = 10) -> dict[str, Any]:
    """Statistics of one JSONL file, read as a stream. Lines that are not valid records are skipped
    and counted (`bad_lines`, with the first reasons in `bad_line_reasons`), not fatal."""
    from nextedit.jsonl import read_examples
    from nextedit.mine.miner import read_mining_log

    reasons: list[str] = []
    bad = [0]

    def on_error(line: int, raw: bytes, reason: str) -> None:
        bad[0] += 1
        if len(reasons) < 5:
            reasons.append(reason)

    result = collect_stats(read_examples(path, errors="skip", on_error=on_error), top=top, file=str(path))
    result["bad_lines"] = bad[0]
    result["bad_line_reasons"] = reasons
    log = read_mining_log(path) if not str(path).endswith(".gz") else None
    if log is not None:
        result["mining"] = log
    return result


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def render_stats(stats: dict[str, Any], console: Any) -> None:
    """Print statistics as rich tables."""
    from rich.table import Table

    n = stats["examples"]
    from rich.markup import escape

    console.print(f"[bold]{escape(stats.get('file') or 'examples')}[/bold]: {n} examples")
    if stats.get("bad_lines"):
        console.print(f"[yellow]warning[/yellow] {stats['bad_lines']} bad lines skipped, e.g. "
                      + escape("; ".join(stats.get("bad_line_reasons", [])[:3])))

    def counts_table(title: str, counts: dict[str, int] | list[list[Any]], label: str) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column(label)
        table.add_column("examples", justify="right")
        table.add_column("share", justify="right")
        items = counts.items() if isinstance(counts, dict) else counts
        for key, c in items:
            table.add_row(str(key), str(c), _pct(c, n))
        return table

    console.print(counts_table("languages", stats["languages"], "language"))
    sizes = Table(title="sizes", title_justify="left")
    sizes.add_column("measure")
    for col in ("count", "min", "p50", "p90", "p99", "max", "mean"):
        sizes.add_column(col, justify="right")
    for name, d in stats["sizes"].items():
        sizes.add_row(name, *("-" if d[col] is None else str(d[col])
                              for col in ("count", "min", "p50", "p90", "p99", "max", "mean")))
    console.print(sizes)
    src = stats["sources"]
    console.print(counts_table("source kinds", src["kinds"], "kind"))
    repos = src["repos"]
    console.print(counts_table(f"repositories (top {len(repos['top'])} of {repos['distinct']})",
                               repos["top"], "repo"))
    console.print(f"examples without repo: {repos['without_repo']}")
    if src["time"]["oldest"]:
        console.print(f"time: {src['time']['oldest']} .. {src['time']['newest']} "
                      f"({src['time']['without_time']} without time)")
    labels = stats["labels"]
    console.print(f"expected: {labels['with_expected']} with ({_pct(labels['with_expected'], n)}), "
                  f"{labels['without_expected']} without (no edit or unlabelled); alternatives "
                  + ", ".join(f"{k}: {v}" for k, v in labels["alternatives"].items())
                  + f"; settled {labels['with_settled']}; rejected {labels['with_rejected']}")
    preds = stats["predictions"]
    if preds["providers"]:
        table = Table(title=f"predictions ({preds['examples_with_predictions']} examples with predictions)",
                      title_justify="left")
        for col in ("provider", "predictions", "errors", "empty", "p50 ms", "p90 ms", "cost $"):
            table.add_column(col, justify="left" if col == "provider" else "right")
        for name, p in preds["providers"].items():
            lat = p["latency_ms"]
            table.add_row(name, str(p["predictions"]), str(p["errors"]), str(p["empty_patches"]),
                          "-" if lat["p50"] is None else str(lat["p50"]),
                          "-" if lat["p90"] is None else str(lat["p90"]), f"{p['cost_usd']:.4f}")
        console.print(table)
    if stats.get("mining"):
        render_mining_log(stats["mining"], console)
    if stats["checks"]:
        table = Table(title="checks", title_justify="left")
        for col in ("code", "passed", "failed"):
            table.add_column(col, justify="left" if col == "code" else "right")
        for code, c in stats["checks"].items():
            table.add_row(code, str(c["passed"]), str(c["failed"]))
        console.print(table)
    if stats["scores"]:
        keys = [k for k in ("delta_chrf", "exact_lines_f1", "reversal_ratio", "kept_rate")
                if any(k in s["means"] for s in stats["scores"].values())]
        table = Table(title="scores (means)", title_justify="left")
        table.add_column("provider")
        table.add_column("scored", justify="right")
        for k in keys:
            table.add_column(k, justify="right")
        for prov, s in stats["scores"].items():
            table.add_row(prov, str(s["scored"]), *(str(s["means"].get(k, "-")) for k in keys))
        console.print(table)


def render_mining_log(log: dict[str, Any], console: Any) -> None:
    """Print the mining log's totals: skipped commits and files, examples dropped by each filter."""
    from rich.table import Table

    console.print(f"mining log {log['log']}: {log['commits']} commits, {log['mined']} mined, "
                  f"{log['examples']} examples kept")
    table = Table(title="mining filters", title_justify="left")
    for col in ("what", "reason", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for what, key in (("examples", "filtered"), ("files", "skipped_files"), ("commits", "skipped_commits")):
        for reason, count in log[key].items():
            table.add_row(what, reason, str(count))
    console.print(table)
