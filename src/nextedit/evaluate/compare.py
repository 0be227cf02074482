"""Compare evaluation runs: side-by-side summaries and paired bootstrap CIs on per-example differences."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from nextedit.evaluate import bootstrap
from nextedit.evaluate.report import fmt, lookup
from nextedit.evaluate.summary import SUMMARY_FORMAT

COMPARE_FORMAT = "nextedit-eval-compare"
#: Per-example metrics compared by default (means over each example's samples).
DEFAULT_METRICS = ("delta_chrf", "exact_lines_f1", "reversal_ratio", "kept_rate")
#: Side-by-side rows: (label, JSON pointer below a provider, digits).
SIDE_BY_SIDE: list[tuple[str, str, int]] = [
    ("examples", "counts/examples", 0),
    ("predictions", "counts/predictions", 0),
    ("deltaChrF", "means/delta_chrf", 2),
    ("exact-lines F1 (micro)", "micro/exact_lines/f1", 3),
    ("exact-lines F1 (mean)", "means/exact_lines_f1", 3),
    ("reversal ratio", "means/reversal_ratio", 3),
    ("kept rate", "means/kept_rate", 3),
    ("no edit predicted", "rates/no_edit_predicted", 3),
    ("wrong editable region", "rates/wrong_editable_region", 3),
]


class CompareError(ValueError):
    """A file that is not an evaluation summary, or runs that cannot be compared; one line."""


@dataclass
class Run:
    """One provider's results inside one summary file."""

    label: str
    source: str
    provider: str
    stats: dict[str, Any]
    rows: list[dict[str, Any]]
    signatures: dict[str, Any]

    def per_example(self, metric: str) -> dict[str, float]:
        """Example id -> mean of `metric` over that example's scored samples (missing values skipped)."""
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for row in self.rows:
            v = row.get("values", {}).get(metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                sums[row["id"]] += float(v)
                counts[row["id"]] += 1
        return {k: sums[k] / counts[k] for k in sums}


def load_summary(path: str | Path) -> dict[str, Any]:
    """Read a summary JSON (or `DIR/summary.json` when given a report folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "summary.json"
    try:
        data = orjson.loads(p.read_bytes())
    except FileNotFoundError:
        raise CompareError(f"{p}: no such file (expected a summary JSON written by `nextedit eval`)") from None
    except orjson.JSONDecodeError as exc:
        raise CompareError(f"{p}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SUMMARY_FORMAT:
        raise CompareError(f"{p}: field format: not a nextedit evaluation summary "
                           f"(expected {SUMMARY_FORMAT!r})")
    if "examples" not in data:
        raise CompareError(f"{p}: field examples: missing (written with per-example rows turned off); "
                           "paired comparison needs them")
    return data


def runs_of(paths: list[str | Path]) -> list[Run]:
    """Every (file, provider) run, labelled by provider (prefixed by the file when ambiguous)."""
    loaded = [(str(p), load_summary(p)) for p in paths]
    pairs = [(src, s, prov) for src, s in loaded for prov in s.get("providers", {})]
    if not pairs:
        raise CompareError("no scored predictions in the given summaries")
    names = [prov for _, _, prov in pairs]
    runs = []
    for src, s, prov in pairs:
        label = prov
        if names.count(prov) > 1:
            stem = Path(src).name if Path(src).is_dir() else Path(src).stem
            parent = Path(src).parent.name if stem == "summary" else stem
            label = f"{parent}:{prov}"
        rows = [r for r in s["examples"] if r.get("provider") == prov]
        runs.append(Run(label, src, prov, s["providers"][prov], rows, s.get("signatures", {})))
    labels = [r.label for r in runs]
    for i, r in enumerate(runs):
        if labels.count(r.label) > 1:
            r.label = f"{r.label}#{i + 1}"
    return runs


def paired_difference(a: dict[str, float], b: dict[str, float], *, resamples: int = bootstrap.DEFAULT_RESAMPLES,
                      seed: int = bootstrap.DEFAULT_SEED) -> dict[str, Any] | None:
    """Mean of b - a over shared example ids with a paired bootstrap 95% CI; None when none shared."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    d = np.array([b[i] - a[i] for i in shared])
    ci = bootstrap.ratio_ci(d, np.ones_like(d), resamples=resamples, seed=seed)
    lo, hi = ci if ci is not None else (float("nan"), float("nan"))
    return {
        "shared_examples": len(shared),
        "mean_a": float(np.mean([a[i] for i in shared])),
        "mean_b": float(np.mean([b[i] for i in shared])),
        "difference": float(d.mean()),
        "ci": [lo, hi],
        "significant": bool(lo > 0 or hi < 0),
        "run_higher": int((d > 0).sum()),
        "run_lower": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
    }


def signature_mismatches(runs: list[Run]) -> list[str]:
    """Metrics whose signatures differ between runs (their numbers are not comparable)."""
    out = []
    metrics = sorted({m for r in runs for m in r.signatures})
    for m in metrics:
        seen = {str(r.signatures.get(m)) for r in runs if m in r.signatures}
        if len(seen) > 1:
            out.append(f"{m}: " + " vs ".join(sorted(seen)))
    return out


def compare(paths: list[str | Path], *, metrics: tuple[str, ...] = DEFAULT_METRICS, baseline: str | None = None,
            resamples: int = bootstrap.DEFAULT_RESAMPLES, seed: int = bootstrap.DEFAULT_SEED) -> dict[str, Any]:
    """The comparison JSON: each run's headline numbers, and paired differences against the baseline run."""
    runs = runs_of(paths)
    base = runs[0]
    if baseline is not None:
        matches = [r for r in runs if baseline in (r.label, r.provider)]
        if not matches:
            raise CompareError(f"baseline {baseline!r} is none of the runs: {', '.join(r.label for r in runs)}")
        base = matches[0]
    differences = []
    for run in runs:
        if run is base:
            continue
        per_metric = {}
        for m in metrics:
            diff = paired_difference(base.per_example(m), run.per_example(m), resamples=resamples, seed=seed)
            if diff is not None:
                per_metric[m] = diff
        differences.append({"run": run.label, "baseline": base.label, "metrics": per_metric})
    return {
        "format": COMPARE_FORMAT,
        "version": 1,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": bootstrap.DEFAULT_LEVEL, "unit": "example",
                      "paired": True},
        "runs": [{"label": r.label, "source": r.source, "provider": r.provider, "stats": {
            key: lookup(r.stats, *key.split("/")) for _, key, _ in SIDE_BY_SIDE}} for r in runs],
        "baseline": base.label,
        "differences": differences,
        "signature_mismatches": signature_mismatches(runs),
    }


def print_comparison(result: dict[str, Any], console: Console | None = None) -> None:
    """Console tables: runs side by side, then the paired differences against the baseline."""
    console = console or Console()
    side = Table(title="runs")
    side.add_column("metric")
    for run in result["runs"]:
        side.add_column(run["label"], justify="right")
    for label, key, digits in SIDE_BY_SIDE:
        side.add_row(label, *(fmt(run["stats"].get(key), digits) for run in result["runs"]))
    console.print(side)
    diff = Table(title=f"paired differences vs {result['baseline']} (shared examples, 95% bootstrap CI)")
    for col in ("run", "metric", "shared", "baseline", "run mean", "Δ", "95% CI", "higher/lower/equal"):
        diff.add_column(col, justify="left" if col in ("run", "metric") else "right")
    for d in result["differences"]:
        for metric, v in d["metrics"].items():
            digits = 2 if metric == "delta_chrf" else 3
            mark = " *" if v["significant"] else ""
            diff.add_row(d["run"], metric, str(v["shared_examples"]), fmt(v["mean_a"], digits),
                         fmt(v["mean_b"], digits), fmt(v["difference"], digits) + mark,
                         f"[{fmt(v['ci'][0], digits)}, {fmt(v['ci'][1], digits)}]",
                         f"{v['run_higher']}/{v['run_lower']}/{v['ties']}")
    console.print(diff)
    console.print("[dim]* the 95% interval excludes 0[/dim]")
    for line in result["signature_mismatches"]:
        console.print(f"[bold red]warning:[/bold red] metric versions differ, numbers not comparable: {line}")
