"""Cost estimate of a teacher run before any request: prompt token counts times the price table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from nextedit.llm import PriceTable, load_prices, parse_spec
from nextedit.record import Example
from nextedit.teacher.prompt import PromptOptions, build_prompt

__all__ = ["CostEstimate", "estimate_cost", "estimate_tokens"]

ANSWER_OVERHEAD = 40  # tokens of explanation + fence + markers around the region in an answer
REPAIR_MESSAGE = 350  # tokens of a repair turn (failures, statistics, word diff)
JUDGE_OUTPUT = 80


def estimate_tokens(text: str) -> int:
    """Tokens as UTF-8 bytes / 3 (Zed's estimate; a little high for English, about right for code)."""
    return (len(text.encode()) + 2) // 3


@dataclass(frozen=True)
class CostEstimate:
    """Average tokens per example and dollars per 1,000 examples for one model."""

    model: str
    examples: int
    system_tokens: int
    user_tokens: float
    answer_tokens: float
    samples: int
    repair_rate: float
    judge: bool
    usd_per_1000: float | None  # None: the model has no price (a local server)
    usd_per_1000_batch: float | None

    def to_dict(self) -> dict[str, object]:
        """Plain data."""
        return asdict(self)


def estimate_cost(examples: Iterable[Example], provider: str, *, samples: int = 1, repair_rate: float = 0.2,
                  judge: bool = False, prompt_cache: bool = True, options: PromptOptions | None = None,
                  prices: PriceTable | None = None) -> CostEstimate:
    """Dollars per 1,000 examples: teacher (`samples` answers; OpenAI-style APIs bill the prompt once for
    n samples, Anthropic once per sample), a repair round for `repair_rate` of the examples, optionally
    one judge call each. The system prompt is read from the provider's prompt cache
    after the first request when `prompt_cache`; output = the editable region plus ANSWER_OVERHEAD."""
    table = prices or load_prices()
    kind, model, _ = parse_spec(provider)
    input_per_sample = kind == "anthropic"  # no `n` there: every sample is its own request
    n = 0
    system = 0
    user = answer = 0.0
    for ex in examples:
        prompt = build_prompt(ex, options)
        system = estimate_tokens(prompt.system)
        user += estimate_tokens(prompt.user)
        answer += estimate_tokens(ex.snapshot.editable_text) + ANSWER_OVERHEAD
        n += 1
    if n == 0:
        raise ValueError("no examples to estimate from")
    user, answer = user / n, answer / n

    def call(system_tokens: int, user_tokens: float, output_tokens: float, k: int = 1) -> float | None:
        cached = system_tokens if prompt_cache else 0
        m = k if input_per_sample else 1  # OpenAI bills the prompt once for n samples
        return table.cost(model, input_tokens=int(system_tokens + user_tokens) * m,
                          output_tokens=int(output_tokens) * k, cached_input_tokens=cached * m)

    parts = [call(system, user, answer, samples)]
    if repair_rate:
        repair = call(system, user + answer + REPAIR_MESSAGE, answer)
        parts.append(None if repair is None else repair * repair_rate)
    if judge:
        parts.append(call(400, user + answer / 2, JUDGE_OUTPUT))
    usd = None if any(p is None for p in parts) else 1000 * sum(p for p in parts if p is not None)
    return CostEstimate(model=model, examples=n, system_tokens=system, user_tokens=round(user, 1),
                        answer_tokens=round(answer, 1), samples=samples, repair_rate=repair_rate, judge=judge,
                        usd_per_1000=None if usd is None else round(usd, 2),
                        usd_per_1000_batch=None if usd is None else round(usd * table.batch_discount, 2))
