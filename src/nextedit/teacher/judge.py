"""LLM as judge (zed-ep.md 4.1): does a prediction revert the user's edits, and how confident is acceptance (1-5)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from nextedit.llm import LLMClient
from nextedit.record import Check, Example
from nextedit.teacher.common import (
    LLMConfig,
    PrivacyConfig,
    check_license,
    make_request,
    new_scrubber,
)
from nextedit.teacher.parse import fenced_blocks
from nextedit.teacher.prompt import render_current_file, render_template
from nextedit.teacher.worddiff import word_diff

__all__ = ["JudgeOptions", "Verdict", "judge_example", "judge_prediction", "judge_prompt", "parse_verdict"]

JUDGE_CODES = ("judge_reverts", "judge_low_confidence")


class JudgeOptions(BaseModel):
    """Which predictions are judged and what counts as low confidence."""

    model_config = ConfigDict(extra="forbid")

    targets: Literal["first", "all"] = Field("first", description="judge the first teacher prediction or all")
    confidence_threshold: int = Field(2, ge=1, le=5, description="confidence at or below this fails")
    max_tokens: int = Field(1024, ge=1)


class Verdict(BaseModel):
    """The judge's answer."""

    reasoning: str = ""
    reverts_edits: bool
    confidence: int = Field(ge=1, le=5)


def parse_verdict(raw: str) -> Verdict:
    """The first fenced block parsed as JSON, else the whole answer; raises ValueError when neither is a
    verdict."""
    candidates = [b.body for b in fenced_blocks(raw)] + [raw]
    first_error: Exception | None = None
    for text in candidates[:1] + candidates[-1:]:
        try:
            data = orjson.loads(text.strip())
            return Verdict.model_validate(data)
        except Exception as exc:  # noqa: BLE001 - try the next candidate
            first_error = first_error or exc
    raise ValueError(f"judge answer is not a verdict JSON object: {first_error}")


def _history(example: Example) -> str:
    parts = []
    for ev in example.snapshot.history:
        diff = ev.diff if ev.diff.startswith("--- ") else f"--- a/{ev.old_path or ev.path}\n+++ b/{ev.path}\n{ev.diff}"
        try:
            parts.append(word_diff(diff))
        except Exception:  # noqa: BLE001 - a history diff that does not parse is shown as is
            parts.append(diff.rstrip("\n"))
    return "\n".join(parts) or "(No edit history)"


def judge_prompt(example: Example, index: int) -> tuple[str, str]:
    """(system, user) texts of the judge prompt for prediction `index` (not yet scrubbed)."""
    ctx = {"history": _history(example), "current_file": render_current_file(example.snapshot),
           "path": example.snapshot.path, "prediction": word_diff(example.predictions[index].patch or "")}
    return (render_template("judge.md.j2", "system", **ctx), render_template("judge.md.j2", "task", **ctx))


def _targets(example: Example, options: JudgeOptions) -> list[int]:
    idx = [i for i, p in enumerate(example.predictions)
           if p.provider.startswith("teacher:") and p.error is None and p.patch]
    return idx[:1] if options.targets == "first" else idx


async def judge_prediction(example: Example, index: int, client: LLMClient, llm: LLMConfig, *,
                           options: JudgeOptions, privacy: PrivacyConfig, stats: Any | None = None) -> list[Check]:
    """Judge prediction `index`: set its `judge` field (verdict, or error and response) and append and
    return the checks judge_reverts / judge_low_confidence (none when the verdict is unreadable)."""
    system, user = judge_prompt(example, index)
    req = make_request(llm, system, [{"role": "user", "content": user}], scrubber=new_scrubber(privacy, example),
                       max_tokens=options.max_tokens)
    completion = await client.complete(req)
    raw = completion.texts[0]
    pred = example.predictions[index]
    try:
        verdict = parse_verdict(raw)
    except ValueError as exc:
        pred.judge = {"model": llm.provider, "error": str(exc), "response": raw}  # type: ignore[attr-defined]
        if stats is not None:
            stats["judge_errors"] += 1
        return []
    pred.judge = {"model": llm.provider, **verdict.model_dump()}  # type: ignore[attr-defined]
    low = verdict.confidence <= options.confidence_threshold
    new = [Check(prediction=index, code="judge_reverts", passed=not verdict.reverts_edits,
                 message=verdict.reasoning),
           Check(prediction=index, code="judge_low_confidence", passed=not low,
                 message=f"confidence {verdict.confidence}/5 (fails at or below {options.confidence_threshold})")]
    example.checks.extend(new)
    if stats is not None:
        stats["judged"] += 1
        stats["judge_reverts"] += int(verdict.reverts_edits)
    return new


async def judge_example(example: Example, client: LLMClient, llm: LLMConfig, *, options: JudgeOptions,
                        privacy: PrivacyConfig, stats: Any | None = None) -> Example:
    """Judge the example's teacher predictions: set `prediction.judge` (verdict or error) and add checks
    judge_reverts / judge_low_confidence (earlier judge checks of those predictions are replaced)."""
    check_license(example, privacy)
    targets = _targets(example, options)
    example.checks = [c for c in example.checks if not (c.prediction in targets and c.code in JUDGE_CODES)]
    for index in targets:
        await judge_prediction(example, index, client, llm, options=options, privacy=privacy, stats=stats)
    return example
