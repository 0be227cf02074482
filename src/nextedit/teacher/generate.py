"""Asks the teacher model for N predictions of one example (scrubbed prompt in, parsed predictions out)."""

from __future__ import annotations

from nextedit.llm import LLMClient
from nextedit.privacy.scrub import Scrubber
from nextedit.record import Example, Prediction
from nextedit.teacher.common import (
    LLMConfig,
    PrivacyConfig,
    check_license,
    make_request,
    new_scrubber,
    parse_to_prediction,
    usage_share,
)
from nextedit.teacher.prompt import (
    MARK_CURSOR,
    MARK_END,
    MARK_START,
    PromptOptions,
    TeacherPrompt,
    build_prompt,
)

__all__ = ["MarkersInText", "conversation_start", "teacher_predictions"]


class MarkersInText(ValueError):
    """The snapshot already contains the prompt's region or cursor markers: the answer could not be read
    unambiguously, so the example is refused."""


def conversation_start(example: Example, options: PromptOptions,
                       privacy: PrivacyConfig) -> tuple[TeacherPrompt, Scrubber | None]:
    """The teacher prompt and the scrubber that will clean every text of this conversation.
    Raises LicenseRefused before anything is rendered when the license is not allow-listed, and
    MarkersInText when the text holds the prompt's own markers."""
    check_license(example, privacy)
    found = [m for m in (MARK_START, MARK_END, MARK_CURSOR) if m in example.snapshot.text]
    if found:
        raise MarkersInText(f"example {example.id}: field snapshot.text: contains {found[0]}, a marker of the "
                            "teacher prompt; refused")
    return build_prompt(example, options), new_scrubber(privacy, example)


async def teacher_predictions(example: Example, client: LLMClient, llm: LLMConfig, *, samples: int = 1,
                              options: PromptOptions | None = None,
                              privacy: PrivacyConfig | None = None) -> list[Prediction]:
    """`samples` teacher predictions (provider `teacher:<spec>`); an unreadable answer becomes that
    prediction's `error`. Raises LLMError / BudgetExceeded when the call itself fails."""
    prompt, scrubber = conversation_start(example, options or PromptOptions(), privacy or PrivacyConfig())
    req = make_request(llm, prompt.system, [{"role": "user", "content": prompt.user}], n=samples,
                       scrubber=scrubber)
    completion = await client.complete(req)
    provider = f"teacher:{llm.provider}"
    out = []
    for i, text in enumerate(completion.texts):
        finish = completion.finish_reasons[i] if i < len(completion.finish_reasons) else None
        pred = parse_to_prediction(text, provider=provider, sample=i, snapshot=example.snapshot,
                                   scrubber=scrubber, latency_ms=completion.latency_ms,
                                   usage=usage_share(completion.usage, i), prompt_version=prompt.version,
                                   finish_reason=finish, secrets_scrubbed=scrubber.count if scrubber else 0)
        out.append(pred)
    return out
