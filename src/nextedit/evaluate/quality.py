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
               max_reversal: float | None = None, quiet_when_clean: bool = False,
               progress: bool | None = None) -> list[Example]:
    """Apply the student's abstention rules to recorded predictions, score everything, return the examples."""
    from pathlib import Path

    from nextedit.evaluate.stages import AbstainStage, ScoreStage
    from nextedit.jsonl import read_examples
    from nextedit.pipeline.engine import run_stage

    dst = Path(dst)
    decided = dst.with_name(dst.stem + ".decided.jsonl")
    run_stage(AbstainStage(AbstainStage.Config(provider=student, abstain_below=abstain_below,
                                               max_reversal=max_reversal, quiet_when_clean=quiet_when_clean)),
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


#: Reversal-guard limits tried when `max_reversal = "calibrate"`, strictest first (None: no guard).
REVERSAL_LIMITS: tuple[float | None, ...] = (0.0, 0.1, 0.25, 0.5, None)
#: Candidate margins tried when `candidate_margin = "calibrate"` (nats by which the model's own answer must be
#: likelier than the heuristic's candidate to be offered instead), in the order choose_rules weighs them: inf (the
#: heuristic's edit whenever it proposes one) first, then 0 (the likelier answer wins), 2 and 5. Candidates first
#: is the prior because it scored higher wherever a test could tell: our handwritten cases (+6.54 [+0.82, +14.06]),
#: Zed's cases and the held-out repositories in every replay (docs/training.md); a validation repository where
#: propagate rarely proposes an edit shows no difference, so the start is what a few dev examples keep.
CANDIDATE_MARGINS: tuple[float, ...] = (float("inf"), 0.0, 2.0, 5.0)


@dataclass(frozen=True)
class Abstention:
    """The decision rules written into a student's nextedit.json: the confidence threshold (None: never withhold
    for low confidence), the reversal guard (None: off), the candidate margin (see CANDIDATE_MARGINS) and whether
    its own edits are withheld where the linter finds the code near the cursor clean (given, never chosen)."""

    threshold: float | None
    max_reversal: float | None
    candidate_margin: float = 0.0
    quiet_when_clean: bool = False


def choose_rules(scored: dict[tuple[float, float | None], list[Example]], *, student: str = "student") -> Abstention:
    """The candidate margin, reversal limit and confidence threshold chosen on validation examples; `scored` maps
    each (margin, limit) tried to the same examples scored under it, each pair with its threshold (`_threshold`).
    The prior pair goes first (margins in CANDIDATE_MARGINS order: the heuristic's edit where it proposes one; the
    strictest limit: a wrong edit that undoes the user's work costs more than no edit); a later pair replaces the
    one chosen so far only when its paired gain on the same predictions has a 95% bootstrap interval above zero,
    so a few validation examples never change the rules by chance."""
    from nextedit.predictors.abstain import outcomes_of

    def order(key: tuple[float, float | None]) -> tuple[int, float]:
        rank = CANDIDATE_MARGINS.index(key[0]) if key[0] in CANDIDATE_MARGINS else len(CANDIDATE_MARGINS)
        return rank, float("inf") if key[1] is None else key[1]

    best: tuple[dict[str, float], Abstention] | None = None
    for margin, limit in sorted(scored, key=order):
        outcomes = outcomes_of(scored[(margin, limit)], student)
        threshold, per = _threshold(outcomes)
        rules = Abstention(threshold, limit, margin)
        if best is None:
            best = (per, rules)
            continue
        if len(per) != len(best[0]):
            raise ValueError(f"margin {margin:g}, limit {limit}: {len(per)} scored predictions, not {len(best[0])}")
        gain = paired_difference(best[0], per)
        if gain is not None and gain["ci"][0] > 0:
            best = (per, rules)
    if best is None:
        raise ValueError("no decision rule was scored")
    return best[1]


def _threshold(outcomes: list[Any]) -> tuple[float | None, dict[str, float]]:
    """The confidence threshold for these validation outcomes (None: never abstain) and each one's score under it:
    never abstain, unless the threshold with the best mean beats it with a paired 95% interval above zero (a
    threshold chosen on a few examples by its mean alone withheld most edits on other repositories)."""
    from nextedit.predictors.abstain import choose_threshold

    never = {str(i): o.score(float("-inf")) for i, o in enumerate(outcomes)}
    best, _ = choose_threshold(outcomes)
    per = {str(i): o.score(best.threshold) for i, o in enumerate(outcomes)}
    gain = paired_difference(never, per)
    if best.threshold == float("-inf") or gain is None or not gain["ci"][0] > 0:
        return None, never
    return best.threshold, per


def replay_margins(student: Any, src: Any, dsts: dict[float, Any], *, options: dict[str, Any] | None = None,
                   provider: str = "student") -> None:
    """The recorded predictions of `src` (made with candidate margin 0) as the student would have decided them
    with each margin of `dsts` (margin -> output file): its own answer and the heuristic candidates are scored
    under the model once per example (no generation), then each margin's pick and its confidence are recorded.
    Earlier abstentions are undone."""
    from nextedit.jsonl import read_examples, write_examples
    from nextedit.predictors.abstain import restore
    from nextedit.predictors.local import LocalPredictor

    model = LocalPredictor(str(student), **{**(options or {}), "label": provider})
    out: dict[float, list[Example]] = {m: [] for m in dsts}
    for ex in read_examples(src):
        bare = ex.model_copy(update={"predictions": [], "scores": []})
        preds: dict[float, list[Any]] = {m: [] for m in dsts}
        for pred in ex.predictions:
            scored = None
            if pred.provider == provider and not pred.error:
                pred = restore(pred)
                scored = model.score_answers(bare, pred.raw)
            for m in dsts:
                if scored is None:
                    preds[m].append(pred)
                    continue
                name = scored.choose(m)
                patch, cursor = scored.answers[name]
                preds[m].append(pred.model_copy(update={"patch": patch, "cursor": cursor, "candidate": name or None,
                                                        "confidence": round(scored.confidence(name), 4)}))
        for m in dsts:
            out[m].append(ex.model_copy(update={"predictions": preds[m], "scores": []}))
    for m, dst in dsts.items():
        write_examples(dst, out[m])


def margin_json(margin: float) -> float | str:
    """A candidate margin as JSON holds it ("inf" for infinity, which JSON has no number for)."""
    return "inf" if margin == float("inf") else margin


def _key(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def calibrate_student(student: Any, dev: Any, work: Any, *, limit: int, max_reversal: float | str | None,
                      options: dict[str, Any] | None = None, threshold: float | str | None = "calibrate",
                      candidate_margin: float | str = 0.0, quiet_when_clean: bool = False) -> Abstention:
    """Set a trained student's decision rules in its nextedit.json, so every later `local:` use of it
    (predict, eval, serve) decides the same way: the reversal guard, the candidate margin and the threshold,
    each either given or (`"calibrate"`) chosen on `limit` examples of `dev` (a seeded sample spread over it)
    by choose_rules (the guard among REVERSAL_LIMITS, the margin among CANDIDATE_MARGINS). They are predicted
    once into `work` (confidence on, no guard, no threshold, margin 0 or the one margin given); other margins
    re-score the recorded answers (replay_margins) and each guard is re-applied to the recorded edits. An empty or
    missing dev file means "never abstain for low confidence", the strictest guard and the first margin of
    CANDIDATE_MARGINS (candidates first). `quiet_when_clean` is given, not chosen: the rules are chosen with it
    applied to the dev predictions, and it is stored beside them. Returns the rules."""
    import json
    from pathlib import Path

    from nextedit.jsonl import copy_sample
    from nextedit.train.export import METADATA_FILE

    limits = list(REVERSAL_LIMITS) if max_reversal == "calibrate" else [max_reversal]
    margins = list(CANDIDATE_MARGINS) if candidate_margin == "calibrate" else [float(candidate_margin)]
    dev = Path(dev) if dev is not None else None
    has_dev = dev is not None and dev.exists() and dev.stat().st_size > 0
    if has_dev and (threshold == "calibrate" or len(limits) > 1 or len(margins) > 1):
        work = Path(work)
        contender = student_contenders(str(student), max_reversal=None)[0]
        predicted = margins[0] if len(margins) == 1 else 0.0  # a single margin needs no replay
        contender.options.update({**(options or {}), "candidate_margin": predicted})
        copy_sample(dev, work / "dev-sample.jsonl", limit)
        preds = predict_all(work / "dev-sample.jsonl", work, [contender], progress=False)
        decided = {m: work / f"predictions.margin-{_key(m)}.jsonl" for m in margins if m != predicted}
        if decided:
            replay_margins(student, preds, decided,
                           options={k: v for k, v in contender.options.items() if k != "label"})
        scored = {(m, lim): score_file(decided.get(m, preds), work / f"scored.margin-{_key(m)}.limit-{_key(lim)}"
                                       ".jsonl", max_reversal=lim, quiet_when_clean=quiet_when_clean,
                                       progress=False)
                  for m in margins for lim in limits}
        rules = choose_rules(scored)
        rules = Abstention(rules.threshold if threshold == "calibrate" else _given(threshold), rules.max_reversal,
                           rules.candidate_margin, quiet_when_clean)
    else:
        rules = Abstention(None if threshold == "calibrate" else _given(threshold), limits[0],  # type: ignore[arg-type]
                           margins[0], quiet_when_clean)
    meta_path = Path(student) / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    new = {**meta, "abstain_below": rules.threshold, "max_reversal": rules.max_reversal,
           "candidate_margin": margin_json(rules.candidate_margin), "quiet_when_clean": rules.quiet_when_clean}
    if new != meta:  # rewritten only on change: the file is part of the model's cache fingerprint
        tmp = meta_path.with_name(meta_path.name + ".tmp")
        tmp.write_text(json.dumps(new, indent=2) + "\n")
        tmp.replace(meta_path)
    return rules


def _given(threshold: float | str | None) -> float | None:
    return None if threshold is None else float(threshold)
