"""Repair: a failing teacher prediction goes back to the teacher in the same conversation, up to N rounds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nextedit.llm import LLMClient
from nextedit.metrics import token_changes
from nextedit.record import Check, Example, Prediction
from nextedit.teacher.checks import (
    CODES,
    ChecksConfig,
    check_prediction,
    failed,
    is_checked_provider,
)
from nextedit.teacher.common import (
    LLMConfig,
    PrivacyConfig,
    make_request,
    parse_to_prediction,
    usage_share,
)
from nextedit.teacher.generate import conversation_start
from nextedit.teacher.judge import JudgeOptions, judge_prediction
from nextedit.teacher.prompt import PromptOptions, render_template
from nextedit.teacher.worddiff import word_diff

__all__ = ["RepairOptions", "needs_repair", "repair_example", "repair_message"]


class RepairOptions(BaseModel):
    """Which predictions are repaired and how many rounds each may take."""

    model_config = ConfigDict(extra="forbid")

    max_rounds: int = Field(2, ge=1, description="repair rounds per prediction (Zed does one)")
    targets: Literal["first", "all"] = Field("first", description="repair the first failing teacher sample, "
                                                                 "or every failing one")
    skip_if_any_passes: bool = Field(True, description="no repair when another teacher sample already passes")
    max_tokens: int = Field(8192, ge=1)
    large_tokens: int = Field(100, ge=1, description="ask for a tighter edit above this many changed tokens")
    rejudge: bool = Field(False, description="judge a round that passes the checks (same model); a failing "
                                             "verdict sends it to the next round")
    confidence_threshold: int = Field(2, ge=1, le=5, description="re-judge: confidence at or below this fails")


def repair_message(example: Example, prediction: Prediction, failures: list[Check], *,
                   large_tokens: int = 100) -> str:
    """The repair turn: failure codes explained, judge verdict, token statistics, the word diff."""
    tc = token_changes(prediction.patch) if prediction.patch else None
    judge = getattr(prediction, "judge", None)
    if not isinstance(judge, dict) or "confidence" not in judge:
        judge = None
    return render_template(
        "repair.md.j2",
        failures=[{"code": c.code, "explanation": CODES.get(c.code, c.code), "message": c.message}
                  for c in failures],
        judge=judge,
        inserted=tc.inserted if tc else 0,
        deleted=tc.deleted if tc else 0,
        large_tokens=large_tokens,
        large=bool(tc and max(tc.inserted, tc.deleted) > large_tokens),
        word_diff=word_diff(prediction.patch) if prediction.patch else "",
    )


def _ensure_checks(example: Example, index: int, checks: ChecksConfig) -> list[Check]:
    """The checks of prediction `index`, computed (and stored) when the checks stage has not run."""
    mine = [c for c in example.checks if c.prediction == index]
    if not any(c.code in CODES and c.code not in ("judge_reverts", "judge_low_confidence") for c in mine):
        new = check_prediction(example, index, checks)
        example.checks.extend(new)
        mine += new
    return [c for c in mine if not c.passed]


def needs_repair(example: Example, options: RepairOptions, checks: ChecksConfig) -> list[int]:
    """Indexes of teacher predictions to repair (computing missing checks on the way)."""
    teacher = [i for i, p in enumerate(example.predictions) if p.provider.startswith("teacher:")]
    failing = [i for i in teacher if _ensure_checks(example, i, checks)]
    if not failing:
        return []
    if options.skip_if_any_passes and len(failing) < len(teacher):
        return []
    return failing[:1] if options.targets == "first" else failing


async def repair_example(example: Example, client: LLMClient, llm: LLMConfig, *, options: RepairOptions,
                         checks: ChecksConfig, prompt_options: PromptOptions,
                         privacy: PrivacyConfig, stats: Any | None = None) -> Example:
    """Repair the example's failing teacher predictions; every round is appended as a prediction
    (provider `repair:<spec>`, extra fields `repairs` = index repaired and `round`) with its checks.
    Raises LLMError when a call fails (rounds already done are lost with the example's result)."""
    provider = f"repair:{llm.provider}"
    for index in needs_repair(example, options, checks):
        original = example.predictions[index]
        if original.raw is None:
            continue  # nothing to continue the conversation from (the teacher call itself failed)
        prompt, scrubber = conversation_start(example, prompt_options, privacy)
        messages = [{"role": "user", "content": prompt.user}, {"role": "assistant", "content": original.raw}]
        previous, previous_failures = original, failed(example.checks, index)
        for round_no in range(1, options.max_rounds + 1):
            messages.append({"role": "user", "content": repair_message(example, previous, previous_failures,
                                                                       large_tokens=options.large_tokens)})
            req = make_request(llm, prompt.system, messages, scrubber=scrubber, max_tokens=options.max_tokens)
            completion = await client.complete(req)
            text = completion.texts[0]
            pred = parse_to_prediction(text, provider=provider, sample=original.sample, snapshot=example.snapshot,
                                       scrubber=scrubber, allow_keep_previous=True, previous=previous,
                                       latency_ms=completion.latency_ms, usage=usage_share(completion.usage, 0),
                                       repairs=index, round=round_no)
            example.predictions.append(pred)
            new_index = len(example.predictions) - 1
            if not is_checked_provider(provider, checks):
                new_checks: list[Check] = []
            else:
                new_checks = check_prediction(example, new_index, checks)
            example.checks.extend(new_checks)
            if stats is not None:
                stats["repair_rounds"] += 1
            previous_failures = [c for c in new_checks if not c.passed]
            if not previous_failures and options.rejudge and pred.patch:
                verdict = await judge_prediction(example, new_index, client, llm, privacy=privacy, stats=stats,
                                                 options=JudgeOptions(confidence_threshold=options.confidence_threshold))
                previous_failures = [c for c in verdict if not c.passed]
            if not previous_failures:
                if stats is not None:
                    stats["repaired"] += 1
                break
            previous = pred
            messages.append({"role": "assistant", "content": text})
        else:
            if stats is not None:
                stats["repair_failed"] += 1
    return example
