"""Shared pieces of the teacher stages: LLM and privacy config, license guard, scrubbed requests, record edits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nextedit.formats.base import FormatError
from nextedit.formats.jump import parse_jump
from nextedit.llm import ChatRequest, ClientOptions, LLMClient, get_client
from nextedit.privacy.licenses import LicenseExpressionError, license_allowed
from nextedit.privacy.records import learn_example
from nextedit.privacy.scrub import Scrubber
from nextedit.record import Example, Prediction, Snapshot, Usage
from nextedit.teacher.parse import ParsedOutput, ParseError, parse_output, region_patch

__all__ = [
    "LLMConfig", "LicenseRefused", "PrivacyConfig", "check_license", "drop_predictions", "make_client",
    "make_request", "new_scrubber", "parse_to_prediction", "unscrub_parsed", "usage_share",
]

DEFAULT_PROVIDER = "anthropic:claude-sonnet-4-6"


class LLMConfig(BaseModel):
    """Which model answers and how it is called (the `client` table takes nextedit.llm ClientOptions)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(DEFAULT_PROVIDER, description="anthropic:MODEL, openai:MODEL or "
                                                        "openai-compatible:BASE_URL#MODEL")
    temperature: float | None = Field(None, ge=0, le=2, description="default: 0 for one sample, 0.7 for several")
    max_tokens: int = Field(4096, ge=1)
    seed: int | None = None
    max_cost_usd: float | None = Field(None, ge=0, description="stop paying past this many dollars (per run)")
    client: ClientOptions = Field(default_factory=ClientOptions)


class PrivacyConfig(BaseModel):
    """What may leave the machine: secrets are scrubbed from every text sent; licenses can be allow-listed."""

    model_config = ConfigDict(extra="forbid")

    scrub: bool = Field(True, description="replace secrets by placeholders in every text sent to a provider")
    entropy: bool = Field(True, description="also scrub high-entropy quoted strings (detect-secrets)")
    licenses: list[str] | None = Field(None, description="refuse examples whose source.license (an SPDX expression: "
                                                         "'MIT OR Apache-2.0' passes a list holding MIT) is not "
                                                         "allowed by this list (SPDX ids, case-insensitive); None: "
                                                         "no check")


class LicenseRefused(ValueError):
    """An example whose source license is not allow-listed: it is never sent to a provider."""


def check_license(example: Example, privacy: PrivacyConfig) -> None:
    """Raise LicenseRefused unless the example's source.license is in the allow-list (when one is set)."""
    if privacy.licenses is None:
        return
    lic = (example.source.license or "").strip()
    try:
        ok = license_allowed(lic, privacy.licenses)
    except LicenseExpressionError as exc:
        raise LicenseRefused(f"example {example.id}: field source.license: {exc}; not sent to the provider") from None
    if not ok:
        shown = lic or "none"
        raise LicenseRefused(f"example {example.id}: field source.license: {shown!r} is not in the allow-list "
                             f"({', '.join(privacy.licenses) or 'empty'}); not sent to the provider")


def make_client(llm: LLMConfig) -> LLMClient:
    """The nextedit.llm client for a config (max_cost_usd at the top level wins over client's)."""
    options = llm.client.model_dump()
    if llm.max_cost_usd is not None:
        options["max_cost_usd"] = llm.max_cost_usd
    return get_client(llm.provider, **options)


def new_scrubber(privacy: PrivacyConfig, example: Example | None = None) -> Scrubber | None:
    """A Scrubber for one conversation about `example`, or None when scrubbing is off. It has read
    every text of the example (snapshot, history, related code, expected and predicted patches) with
    that text's own path (a `.env` excerpt by .env rules), so the rendered prompt loses those secrets
    wherever they appear. The snapshot is read first, so its placeholders are the same in every
    conversation about the example (a repair continues the teacher's answer)."""
    if not privacy.scrub:
        return None
    scrubber = Scrubber(entropy=privacy.entropy)
    if example is not None:
        learn_example(scrubber, example)
    return scrubber


def make_request(llm: LLMConfig, system: str | None, messages: list[dict[str, str]], *, n: int = 1,
                 scrubber: Scrubber | None, max_tokens: int | None = None) -> ChatRequest:
    """A ChatRequest whose every text went through the scrubber (the only way teacher text leaves)."""
    def clean(text: str) -> str:
        return scrubber.scrub(text) if scrubber is not None else text

    temperature = llm.temperature if llm.temperature is not None else (0.0 if n == 1 else 0.7)
    return ChatRequest(
        system=clean(system) if system else None,
        messages=[{"role": m["role"], "content": clean(m["content"])} for m in messages],
        max_tokens=max_tokens or llm.max_tokens, temperature=temperature, n=n, seed=llm.seed,
    )


def unscrub_parsed(parsed: ParsedOutput, scrubber: Scrubber | None) -> ParsedOutput:
    """The parse with placeholders turned back into the real secrets (cursor offset kept in place)."""
    if scrubber is None or parsed.region is None:
        return parsed
    region, cursor = parsed.region, parsed.cursor
    if cursor is None:
        return ParsedOutput(parsed.kind, scrubber.unscrub(region), None, parsed.notes, parsed.newline_taken)
    head, tail = scrubber.unscrub(region[:cursor]), scrubber.unscrub(region[cursor:])
    return ParsedOutput(parsed.kind, head + tail, len(head), parsed.notes, parsed.newline_taken)


def parse_to_prediction(raw: str, *, provider: str, sample: int, snapshot: Snapshot,
                        scrubber: Scrubber | None, allow_keep_previous: bool = False,
                        previous: Prediction | None = None, **extra: Any) -> Prediction:
    """A Prediction from one answer: patch and cursor, or `error` when it cannot be read.
    KEEP_PREVIOUS (repair) copies `previous`'s patch and cursor."""
    fields: dict[str, Any] = {"provider": provider, "sample": sample, "raw": raw, **extra}
    try:
        location = parse_jump(raw)
    except FormatError as exc:
        return Prediction(**fields, error=f"unparseable jump: {exc}")
    if location is not None:  # a jump (prompt option `jumps`): the excerpt stays, the edit is elsewhere
        if scrubber is not None and location.patch:
            location.patch = scrubber.unscrub(location.patch)
        return Prediction(**fields, patch="", locations=[location.model_copy(update={"reason": "teacher"})])
    try:
        parsed = parse_output(raw, allow_keep_previous=allow_keep_previous)
    except ParseError as exc:
        return Prediction(**fields, error=f"unparseable answer: {exc}")
    if parsed.kind == "keep_previous":
        if previous is None or previous.patch is None:
            return Prediction(**fields, error="KEEP_PREVIOUS but there is no usable previous prediction")
        return Prediction(**fields, patch=previous.patch, cursor=previous.cursor, keep_previous=True)
    try:
        patch, cursor = region_patch(snapshot, unscrub_parsed(parsed, scrubber))
    except Exception as exc:  # noqa: BLE001 - a region that yields no patch is this prediction's error
        return Prediction(**fields, error=f"cannot build a patch from the answer: {exc}")
    return Prediction(**fields, patch=patch, cursor=cursor)


def drop_predictions(example: Example, drop: Callable[[Prediction], bool]) -> Example:
    """Remove predictions for which `drop` is true, with their checks and scores; re-index the rest."""
    mapping: dict[int, int] = {}
    kept: list[Prediction] = []
    for i, pred in enumerate(example.predictions):
        if not drop(pred):
            mapping[i] = len(kept)
            kept.append(pred)
    example.predictions = kept
    example.scores = [s.model_copy(update={"prediction": mapping[s.prediction]})
                      for s in example.scores if s.prediction in mapping]
    example.checks = [c if c.prediction is None else c.model_copy(update={"prediction": mapping[c.prediction]})
                      for c in example.checks if c.prediction is None or c.prediction in mapping]
    return example


def usage_share(usage: Usage | None, i: int) -> Usage | None:
    """A completion's usage goes on its first sample (so sums over predictions stay right)."""
    if usage is None:
        return None
    return usage if i == 0 else Usage()
