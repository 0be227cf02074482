"""Distill: pick each example's training target (repaired, else a passing teacher sample, else drop)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nextedit.record import Example, Prediction
from nextedit.teacher.checks import ChecksConfig, check_prediction, is_checked_provider

__all__ = ["Decision", "DistillOptions", "choose_target", "distill_example"]


class DistillOptions(BaseModel):
    """How targets are chosen and what is kept."""

    model_config = ConfigDict(extra="forbid")

    max_alternatives: int = Field(4, ge=0, description="other passing samples kept in expected after the target")
    keep_working: bool = Field(False, description="keep predictions, checks and scores (default: cleared)")
    check_missing: bool = Field(True, description="run the checks on predictions that have none")


class Decision(BaseModel):
    """What distill decided for one example."""

    target: int | None  # index into predictions, None = dropped
    kind: str  # "repair" | "teacher" | "dropped"
    alternatives: list[int] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)  # failure codes when dropped


def _usable(p: Prediction) -> bool:
    return p.error is None and p.patch is not None


def choose_target(example: Example, *, max_alternatives: int = 4) -> Decision:
    """The final target: the last passing repair round (of the lowest repaired sample), else the first
    passing teacher sample; other passing predictions with distinct patches become alternatives
    (edits only, and only beside an edit target: a no-edit reference would reward never editing).
    A prediction passes when it is usable and none of its checks failed."""
    failed_idx = {c.prediction for c in example.checks if not c.passed}
    passing = [i for i, p in enumerate(example.predictions)
               if _usable(p) and i not in failed_idx
               and (p.provider.startswith("repair:") or p.provider.startswith("teacher:"))]
    repairs = [i for i in passing if example.predictions[i].provider.startswith("repair:")]
    teacher = [i for i in passing if example.predictions[i].provider.startswith("teacher:")]
    if repairs:
        key = min(repairs, key=lambda i: (getattr(example.predictions[i], "repairs", 0) or 0,
                                          -(getattr(example.predictions[i], "round", 0) or 0)))
        target, kind = key, "repair"
    elif teacher:
        target, kind = teacher[0], "teacher"
    else:
        codes = Counter(c.code for c in example.checks if not c.passed)
        if not any(p.provider.startswith(("teacher:", "repair:")) for p in example.predictions):
            codes["no_teacher_prediction"] += 1
        return Decision(target=None, kind="dropped", reasons=sorted(codes))
    seen = {example.predictions[target].patch}
    alternatives = []
    for i in teacher + repairs:
        patch = example.predictions[i].patch
        if not patch or not example.predictions[target].patch:
            continue  # a no-edit reference beside an edit would reward models that never edit
        if i != target and patch not in seen and len(alternatives) < max_alternatives:
            seen.add(patch)
            alternatives.append(i)
    return Decision(target=target, kind=kind, alternatives=alternatives)


def distill_example(example: Example, options: DistillOptions, checks: ChecksConfig,
                    stats: Any | None = None) -> Example | None:
    """Write the chosen target (and alternatives) to `expected`/`expected_cursors`, record the decision
    in the `distill` field, clear working fields; None when nothing passes (dropped)."""
    if options.check_missing:
        checked = {c.prediction for c in example.checks}
        for i, p in enumerate(example.predictions):
            if i not in checked and is_checked_provider(p.provider, checks):
                example.checks.extend(check_prediction(example, i, checks))
    decision = choose_target(example, max_alternatives=options.max_alternatives)
    if decision.target is None:
        if stats is not None:
            stats["dropped"] += 1
            for code in decision.reasons or ["no_passing_prediction"]:
                stats[f"dropped:{code}"] += 1
        return None
    chosen = [decision.target, *decision.alternatives]
    preds = [example.predictions[i] for i in chosen]
    record: dict[str, Any] = {
        "target": decision.kind, "provider": preds[0].provider, "sample": preds[0].sample,
        "round": getattr(preds[0], "round", None), "alternatives": len(decision.alternatives),
    }
    if example.expected:
        record["replaced_expected"] = list(example.expected)
    patches = [p.patch or "" for p in preds]
    if all(not patch for patch in patches):
        example.expected, example.expected_cursors = [], []
    else:
        example.expected = patches
        example.expected_cursors = [p.cursor if p.patch else None for p in preds]
    example.distill = record  # type: ignore[attr-defined]
    if not options.keep_working:
        example.predictions, example.checks, example.scores = [], [], []
    if stats is not None:
        stats["kept"] += 1
        stats[f"kept_{decision.kind}"] += 1
        if not example.expected:
            stats["kept_no_edits"] += 1
    return example
