"""Baselines (and any predictor) on the handwritten next-edit cases, per category and overall.

Usage:
  .venv/bin/python bench/handwritten.py [--cases bench/cases/handwritten] [--provider local:out/student/merged]
      [--limit N] [--out DIR] [--append]

Imports the Zed Markdown cases (bench/cases/handwritten/, see its README.md), predicts them with noop,
propagate and every `--provider` (any provider string `nextedit predict` accepts), scores them with the
project's metrics and prints one table: per category and overall, each provider's deltaChrF with its 95%
bootstrap interval, the paired difference to noop measured in the same run, exact-lines F1, no-edit
precision / recall and the reversal ratio. `--append` adds the table to BENCHMARKS.md. Predictions are cached
in `--out` (a re-run resumes).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _report import append_section, markdown_table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "bench" / "cases" / "handwritten"
BASELINES = ("noop", "propagate")
TAG = "category:"


def category(example) -> str:
    """The case's category: its `category:NAME` tag (`other` when it has none)."""
    return next((t[len(TAG):] for t in example.source.tags if t.startswith(TAG)), "other")


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def rows_for(name: str, examples: list, providers: list[str], resamples: int) -> tuple[list[list[str]], dict]:
    """Table rows (one per provider) and JSON figures for one group of scored examples."""
    from nextedit.evaluate.compare import paired_difference
    from nextedit.evaluate.quality import quality

    table = quality(examples, resamples=resamples)
    rows, figures = [], {}
    for p in providers:
        q = table.get(p)
        if q is None:
            continue
        ci = f" [{_f(q.delta_chrf_ci[0])}, {_f(q.delta_chrf_ci[1])}]" if q.delta_chrf_ci else ""
        diff = None
        if p != "noop" and "noop" in table:
            diff = paired_difference(table["noop"].per_example, q.per_example, resamples=resamples)
        vs = "-" if diff is None else f"{diff['difference']:+.2f} [{diff['ci'][0]:+.2f}, {diff['ci'][1]:+.2f}]"
        rows.append([name, p, str(q.examples), f"{q.delta_chrf:.2f}{ci}", vs, _f(q.exact_lines_f1, 3),
                     f"{_f(q.no_edit_precision)} / {_f(q.no_edit_recall)}", _f(q.reversal_ratio, 3),
                     f"{q.parse_errors}/{q.predictions}"])
        figures[p] = {**q.row(), "vs_noop": diff}
    return rows, figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=CASES, help="folder of Zed Markdown cases")
    ap.add_argument("--provider", action="append", default=[], metavar="SPEC",
                    help="another provider string to score (repeatable), e.g. local:PATH or teacher:MODEL")
    ap.add_argument("--limit", type=int, help="only the first N cases (by file name)")
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()

    from nextedit.evaluate.quality import Contender, predict_all, score_file
    from nextedit.evaluate.running import import_markdown

    if not args.cases.is_dir():
        ap.error(f"--cases {args.cases}: no such folder")
    t0 = time.monotonic()
    out = args.out or Path(tempfile.mkdtemp(prefix="handwritten-"))
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in args.cases.glob("*.md") if p.name.lower() != "readme.md")[: args.limit]
    cases = out / "cases.jsonl"
    import_markdown(files, cases)
    providers = list(dict.fromkeys([*BASELINES, *args.provider]))
    contenders = [Contender(p, f"p{k}") for k, p in enumerate(providers)]
    predicted = predict_all(cases, out, contenders, progress=False)
    examples = score_file(predicted, out / "scored.jsonl", progress=False)

    groups: dict[str, list] = {}
    for ex in examples:
        groups.setdefault(category(ex), []).append(ex)
    rows, figures = [], {}
    for name in sorted(groups):
        r, figures[name] = rows_for(name, groups[name], providers, args.resamples)
        rows += r
    r, figures["overall"] = rows_for("**overall**", examples, providers, args.resamples)
    rows += r
    headers = ("category", "provider", "cases", "deltaChrF [95% CI]", "Δ vs noop [95% CI]", "exact-lines F1",
               "no-edit P / R", "reversal", "parse errors")
    seconds = round(time.monotonic() - t0, 1)
    counts = ", ".join(f"{k} {len(v)}" for k, v in sorted(groups.items()))
    where = args.cases.relative_to(ROOT) if args.cases.is_relative_to(ROOT) else args.cases
    intro = (f"{len(examples)} handwritten cases from `{where}` ({counts}); deltaChrF v3 per case, 95% bootstrap "
             f"intervals over cases ({args.resamples} resamples, seed 0); Δ vs noop is the paired difference in the "
             "same run; no-edit P / R: precision and recall of predicting no edit where none is expected.")
    lines = [intro, "", *markdown_table(rows, headers, "llrrrrrrr"), "", f"{seconds} s in all."]
    (out / "handwritten.json").write_text(json.dumps(figures, indent=2, default=str))
    print("\n".join(lines))
    print(f"work folder: {out}")
    if args.append:
        append_section("handwritten next-edit cases: " + ", ".join(providers), lines)


if __name__ == "__main__":
    main()
