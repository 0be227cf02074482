"""The quality table: a student against its base and the baselines on one eval set, with 95% intervals, no-edit
precision/recall, parse errors and the paired difference to the best baseline (bench/quality.py, recipes)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextedit.evaluate import bootstrap
from nextedit.evaluate.compare import paired_difference
from nextedit.record import Example


@dataclass
class ProviderQuality:
    """One provider's figures on one eval set."""

    provider: str
    examples: int = 0
    predictions: int = 0
    parse_errors: int = 0
    delta_chrf: float = 0.0
    delta_chrf_ci: tuple[float, float] | None = None
    exact_lines_f1: float = 0.0
    reversal_ratio: float = 0.0
    no_edit_rate: float = 0.0
    no_edit_precision: float | None = None
    no_edit_recall: float | None = None
    withheld: int = 0
    per_example: dict[str, float] = field(default_factory=dict)
    vs_best_baseline: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        """The JSON-friendly figures (without the per-example values)."""
        out = {k: v for k, v in self.__dict__.items() if k != "per_example"}
        out["parse_error_rate"] = self.parse_errors / self.predictions if self.predictions else None
        return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def quality(examples: Iterable[Example], *, resamples: int = 1000, seed: int = 0) -> dict[str, ProviderQuality]:
    """Per-provider figures from scored examples (every metric is the mean over each example's samples)."""
    per: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    counts: dict[str, ProviderQuality] = {}
    for ex in examples:
        scores = {s.prediction: s.values for s in ex.scores}
        for i, pred in enumerate(ex.predictions):
            q = counts.setdefault(pred.provider, ProviderQuality(pred.provider))
            q.predictions += 1
            q.withheld += bool(pred.abstained)
            values = scores.get(i, {})
            cell = per[pred.provider][ex.id]
            if pred.error:
                q.parse_errors += 1
                cell["delta_chrf"].append(0.0)  # an unusable output helps the user as much as no edit
                continue
            for key in ("delta_chrf", "exact_lines_f1", "reversal_ratio"):
                if values.get(key) is not None:
                    cell[key].append(float(values[key]))
            predicted, expected = values.get("no_edit_predicted"), values.get("no_edit_expected")
            if predicted is not None:
                cell["no_edit_predicted"].append(float(predicted))
                cell["no_edit_right"].append(float(bool(predicted) and bool(expected)))
            if expected is not None:
                cell["no_edit_expected"].append(float(bool(expected)))
    for provider, by_example in per.items():
        q = counts[provider]
        q.examples = len(by_example)
        means = {key: {eid: _mean(cell[key]) for eid, cell in by_example.items() if cell[key]}
                 for key in ("delta_chrf", "exact_lines_f1", "reversal_ratio")}
        q.per_example = means["delta_chrf"]
        values = np.array(list(q.per_example.values()), dtype=float)
        q.delta_chrf = float(values.mean()) if len(values) else 0.0
        if len(values) > 1:
            q.delta_chrf_ci = bootstrap.ratio_ci(values, np.ones_like(values), resamples=resamples, seed=seed)
        q.exact_lines_f1 = _mean(list(means["exact_lines_f1"].values()))
        q.reversal_ratio = _mean(list(means["reversal_ratio"].values()))
        said = sum(sum(c["no_edit_predicted"]) for c in by_example.values())
        right = sum(sum(c["no_edit_right"]) for c in by_example.values())
        wanted = sum(sum(c["no_edit_expected"]) for c in by_example.values())
        total = sum(len(c["no_edit_predicted"]) for c in by_example.values())
        q.no_edit_rate = said / total if total else 0.0
        q.no_edit_precision = right / said if said else None
        q.no_edit_recall = right / wanted if wanted else None
    return counts


def compare_to_baselines(table: dict[str, ProviderQuality], student: str, baselines: list[str], *,
                         resamples: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Paired differences student - baseline (deltaChrF per example, 95% bootstrap CI) for every baseline;
    the best baseline's difference is also stored on the student's row."""
    if student not in table:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name in baselines:
        if name in table and name != student:
            diff = paired_difference(table[name].per_example, table[student].per_example,
                                     resamples=resamples, seed=seed)
            if diff is not None:
                out[name] = diff
    present = [b for b in baselines if b in out]
    if present:
        best = max(present, key=lambda b: table[b].delta_chrf)
        table[student].vs_best_baseline = {"baseline": best, **out[best]}
    return out


def verdict(student: str, diffs: dict[str, dict[str, Any]]) -> str:
    """One line: whether the student beat each baseline, by how much, and whether the 95% interval clears 0."""
    parts = []
    for name, d in diffs.items():
        lo, hi = d["ci"]
        word = "beats" if lo > 0 else ("loses to" if hi < 0 else "ties with")
        parts.append(f"{word} {name} by {d['difference']:+.2f} deltaChrF [{lo:+.2f}, {hi:+.2f}]")
    return f"{student}: " + "; ".join(parts) if parts else f"{student}: no baseline to compare with"


def markdown(table: dict[str, ProviderQuality], order: list[str]) -> str:
    """The table as Markdown rows (BENCHMARKS.md)."""
    head = ("| provider | examples | deltaChrF [95% CI] | exact-lines F1 | reversal | no-edit rate | "
            "no-edit P / R | parse errors | Δ vs best baseline [95% CI] |")
    lines = [head, "|" + "---|" * 9]

    def f(x: float | None, d: int = 2) -> str:
        return "-" if x is None else f"{x:.{d}f}"

    for name in order:
        q = table.get(name)
        if q is None:
            continue
        ci = f" [{f(q.delta_chrf_ci[0])}, {f(q.delta_chrf_ci[1])}]" if q.delta_chrf_ci else ""
        vs = "-"
        if q.vs_best_baseline:
            v = q.vs_best_baseline
            vs = f"{v['difference']:+.2f} [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}] vs {v['baseline']}"
        lines.append(f"| {name} | {q.examples} | {f(q.delta_chrf)}{ci} | {f(q.exact_lines_f1, 3)} | "
                     f"{f(q.reversal_ratio, 3)} | {f(q.no_edit_rate)} | {f(q.no_edit_precision)} / "
                     f"{f(q.no_edit_recall)} | {q.parse_errors}/{q.predictions} | {vs} |")
    return "\n".join(lines)


@dataclass
class Contender:
    """A provider in a quality run: the provider string, options, the label its predictions carry."""

    provider: str
    label: str
    options: dict[str, Any] = field(default_factory=dict)


def student_contenders(student: str, *, base: str | None = None, base_options: dict[str, Any] | None = None,
                       max_reversal: float | None = 0.5) -> list[Contender]:
    """The student (confidence on, no threshold yet: it is calibrated afterwards), optionally its base model,
    then noop and propagate."""
    out = [Contender(f"local:{student}", "student",
                     {"label": "student", "confidence": True, "abstain_below": "none", "max_reversal": max_reversal})]
    if base:
        out.append(Contender(f"local:{base}", "base", {"label": "base", "abstain_below": "none",
                                                       "max_reversal": "none", **(base_options or {})}))
    out += [Contender("noop", "noop"), Contender("propagate", "propagate")]
    return out


def predict_all(src: Any, out_dir: Any, contenders: list[Contender], *, limit: int | None = None,
                progress: bool | None = None) -> Any:
    """Predict `src` with every contender in turn (cached, resumable); returns the file with all predictions."""
    from pathlib import Path

    from nextedit.evaluate.stages import PredictStage
    from nextedit.pipeline.engine import run_stage

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    current = Path(src)
    if limit is not None:
        from nextedit.jsonl import copy_head

        copy_head(current, out_dir / "examples.jsonl", limit)
        current = out_dir / "examples.jsonl"
    for k, c in enumerate(contenders):
        out = out_dir / f"predictions.{k}.{c.label}.jsonl"
        run_stage(PredictStage({"provider": c.provider, "options": c.options}), current, out, concurrency=1,
                  progress=progress)
        current = out
    return current


def score_file(src: Any, dst: Any, *, student: str = "student", abstain_below: float | None = None,
               max_reversal: float | None = None, progress: bool | None = None) -> list[Example]:
    """Apply the student's abstention rules to recorded predictions, score everything, return the examples."""
    from pathlib import Path

    from nextedit.evaluate.stages import AbstainStage, ScoreStage
    from nextedit.jsonl import read_examples
    from nextedit.pipeline.engine import run_stage

    dst = Path(dst)
    decided = dst.with_name(dst.stem + ".decided.jsonl")
    run_stage(AbstainStage(AbstainStage.Config(provider=student, abstain_below=abstain_below,
                                               max_reversal=max_reversal)),
              src, decided, concurrency=1, progress=progress)
    run_stage(ScoreStage(), decided, dst, concurrency=1, progress=progress)
    return list(read_examples(dst))


def calibrate(examples: list[Example], *, student: str = "student", min_gain: float = 0.0) -> float | None:
    """The abstention threshold chosen on scored validation examples (None: never abstain)."""
    from nextedit.predictors.abstain import choose_threshold, outcomes_of

    best, _ = choose_threshold(outcomes_of(examples, student), min_gain=min_gain)
    return None if best.threshold == float("-inf") else best.threshold


def merge_predictions(examples: list[Example], extra: Iterable[Example]) -> None:
    """Add the predictions (and their scores) of `extra` to the examples of the same id, in place: a provider
    evaluated on a subset (a slow base model) joins the others' table."""
    by_id = {ex.id: ex for ex in examples}
    for ex in extra:
        target = by_id.get(ex.id)
        if target is None:
            continue
        offset = len(target.predictions)
        target.predictions.extend(ex.predictions)
        target.scores.extend(s.model_copy(update={"prediction": s.prediction + offset}) for s in ex.scores)


def calibrate_student(student: Any, dev: Any, work: Any, *, limit: int, max_reversal: float | None,
                      options: dict[str, Any] | None = None, threshold: float | str | None = "calibrate"
                      ) -> float | None:
    """Set a trained student's abstention rules in its nextedit.json, so every later `local:` use of it
    (predict, eval, serve) abstains the same way: the reversal guard, and the threshold, either given or
    (`"calibrate"`) chosen on the first `limit` examples of `dev` (predicted with confidence on and no
    threshold, into `work`) by maximising their mean deltaChrF. An empty or missing dev file means "never
    abstain for low confidence". Returns the threshold."""
    import json
    from pathlib import Path

    from nextedit.train.export import METADATA_FILE

    if threshold == "calibrate":
        dev = Path(dev) if dev is not None else None
        if dev is None or not dev.exists() or dev.stat().st_size == 0:
            threshold = None
        else:
            contenders = student_contenders(str(student), max_reversal=max_reversal)[:1]
            contenders[0].options.update(options or {})
            preds = predict_all(dev, work, contenders, limit=limit, progress=False)
            threshold = calibrate(score_file(preds, Path(work) / "scored.jsonl", max_reversal=max_reversal,
                                             progress=False))
    meta_path = Path(student) / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    new = {**meta, "abstain_below": threshold, "max_reversal": max_reversal}
    if new != meta:  # rewritten only on change: the file is part of the model's cache fingerprint
        tmp = meta_path.with_name(meta_path.name + ".tmp")
        tmp.write_text(json.dumps(new, indent=2) + "\n")
        tmp.replace(meta_path)
    return threshold  # type: ignore[return-value]
