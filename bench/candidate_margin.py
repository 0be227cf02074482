"""Heuristic candidates first? Replays a student's recorded predictions under several `candidate_margin` values
(and confidence thresholds).

Usage: .venv/bin/python bench/candidate_margin.py --student PATH [--provider LABEL] NAME=SCORED.jsonl ...
           [--margins 0,2,5,10,inf] [--thresholds none,0] [--max-reversal 0.5] [--no-append]

Each SCORED file holds evaluated examples with the student's predictions (provider LABEL, e.g. a recipe's
`eval/held-out/scored.jsonl` or the quickstart's `report/scored.jsonl`). For every example the student's
recorded output, propagate's candidate and the unchanged region are scored under the model once
(`LocalPredictor.score_answers`, no generation); each margin then picks an answer (`ScoredAnswers.choose`),
the reversal guard and each threshold apply (an answer whose confidence, its log-probability minus the unchanged
region's, is below the threshold becomes "no edit"), and the pick is scored with nextedit's metrics. Reports
deltaChrF per margin and threshold with the paired bootstrap difference against margin 0 without a threshold,
noop and propagate, measured in the same run. Appends a section to BENCHMARKS.md. Pass the dev split first: that
is where a margin is chosen.
"""

from __future__ import annotations

import argparse
import sys

from _report import append_section, markdown_table

from nextedit.evaluate.compare import paired_difference
from nextedit.jsonl import read_examples
from nextedit.metrics.score import score_prediction
from nextedit.predictors.abstain import prediction_reversal
from nextedit.predictors.baselines import PropagatePredictor
from nextedit.predictors.local import LocalPredictor
from nextedit.record import Example, Prediction


def delta_chrf(example: Example, patch: str) -> float:
    """deltaChrF of `patch` (empty: no edit) on `example`."""
    one = example.model_copy(update={"predictions": [Prediction(provider="replay", patch=patch)], "scores": []})
    return float(score_prediction(one, 0).values.get("delta_chrf") or 0.0)


def label(margin: float, threshold: float | None) -> str:
    """A contender's name in the table."""
    return f"margin={margin:g}" + ("" if threshold is None else f" threshold={threshold:g}")


def replay(model: LocalPredictor, examples: list[Example], provider: str, margins: list[float],
           max_reversal: float | None, thresholds: list[float | None]) -> dict[str, dict[str, float]]:
    """Per contender ("noop", "propagate", "margin=M[ threshold=T]"): example id -> deltaChrF."""
    rules = [(m, t) for m in margins for t in thresholds]
    out: dict[str, dict[str, float]] = {"noop": {}, "propagate": {}, **{label(m, t): {} for m, t in rules}}
    for k, ex in enumerate(examples):
        mine = [p for p in ex.predictions if p.provider == provider]
        if not mine:
            continue
        bare = ex.model_copy(update={"predictions": [], "scores": []})
        out["noop"][ex.id] = delta_chrf(bare, "")
        out["propagate"][ex.id] = delta_chrf(bare, PropagatePredictor().propose(bare) or "")
        scored = model.score_answers(bare, mine[0].raw if not mine[0].error else None)
        for m, t in rules:
            name = scored.choose(m) if scored else ""
            patch = scored.answers[name][0] if scored else ""
            if patch and max_reversal is not None and prediction_reversal(bare, patch) > max_reversal:
                patch = ""
            if patch and t is not None and scored.confidence(name) < t:
                patch = ""
            out[label(m, t)][ex.id] = delta_chrf(bare, patch)
        print(f"\r{k + 1}/{len(examples)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return out


def fmt(d: dict | None) -> str:
    if d is None:
        return "-"
    mark = " *" if d["significant"] else ""
    return f"{d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]{mark}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="NAME=SCORED.jsonl")
    ap.add_argument("--student", required=True, help="the student's model folder")
    ap.add_argument("--provider", default="student", help="the provider label of its recorded predictions")
    ap.add_argument("--margins", default="0,2,5,10,inf")
    ap.add_argument("--thresholds", default="none", help="confidence thresholds, e.g. none,0 (none: never abstain)")
    ap.add_argument("--max-reversal", type=float, default=0.5)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    if 0.0 not in margins:
        margins.insert(0, 0.0)
    thresholds = [None if t.strip().lower() == "none" else float(t) for t in args.thresholds.split(",")]
    if None not in thresholds:
        thresholds.insert(0, None)
    model = LocalPredictor(args.student, candidates="propagate", abstain_below="none", max_reversal="none")
    lines = [(f"Student `{args.student}` (provider `{args.provider}`), its recorded outputs replayed; "
              f"reversal guard {args.max_reversal:g}; \\* the paired 95% interval excludes 0."), ""]
    for spec in args.sets:
        name, _, path = spec.partition("=")
        examples = list(read_examples(path))
        table = replay(model, examples, args.provider, margins, args.max_reversal, thresholds)
        n = len(table["noop"])
        rows = []
        for label, values in table.items():
            mean = sum(values.values()) / max(len(values), 1)
            rows.append((label, f"{mean:.2f}", fmt(paired_difference(table["margin=0"], values)),
                         fmt(paired_difference(table["noop"], values)),
                         fmt(paired_difference(table["propagate"], values))))
        lines += [f"**{name}** ({n} examples)", "",
                  *markdown_table(rows, ("answer", "deltaChrF", "− margin 0", "− noop", "− propagate"), "lrrrr"), ""]
        print("\n".join(lines[-len(rows) - 4:]))
    if not args.no_append:
        append_section("quality: heuristic candidates first (candidate_margin replay)", lines)


if __name__ == "__main__":
    main()
