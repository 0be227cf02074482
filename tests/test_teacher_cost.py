"""Cost estimate: prompt tokens times the price table, per 1,000 examples."""

from __future__ import annotations

import pytest

from nextedit.llm import PriceTable
from nextedit.record import Example, Snapshot
from nextedit.teacher.cost import (
    ANSWER_OVERHEAD,
    REPAIR_MESSAGE,
    estimate_cost,
    estimate_tokens,
)
from nextedit.teacher.prompt import build_prompt

PRICES = PriceTable.model_validate({"batch_discount": 0.5, "models": {
    "teach": {"input": 3.0, "output": 15.0, "cache_read": 0.3}}})


def examples() -> list[Example]:
    text = "def f(x):\n    return x\n" * 10
    return [Example(id=str(i), snapshot=Snapshot(path="a.py", text=text, cursor=0)) for i in range(3)]


def test_estimate_matches_a_hand_computation() -> None:
    exs = examples()
    prompt = build_prompt(exs[0])
    system, user = estimate_tokens(prompt.system), estimate_tokens(prompt.user)
    answer = estimate_tokens(exs[0].snapshot.text) + ANSWER_OVERHEAD
    est = estimate_cost(exs, "anthropic:teach", samples=2, repair_rate=0.5, prices=PRICES)
    teacher = 2 * (system * 0.3 + user * 3.0 + answer * 15.0) / 1e6
    repair = (system * 0.3 + (user + answer + REPAIR_MESSAGE) * 3.0 + answer * 15.0) / 1e6
    assert est.usd_per_1000 == pytest.approx(1000 * (teacher + 0.5 * repair), abs=0.01)
    assert est.usd_per_1000_batch == pytest.approx(est.usd_per_1000 / 2, abs=0.01)
    assert (est.examples, est.system_tokens) == (3, system)


def test_openai_bills_the_prompt_once_for_n_samples() -> None:
    one = estimate_cost(examples(), "openai:teach", samples=1, repair_rate=0, prices=PRICES)
    three = estimate_cost(examples(), "openai:teach", samples=3, repair_rate=0, prices=PRICES)
    anth = estimate_cost(examples(), "anthropic:teach", samples=3, repair_rate=0, prices=PRICES)
    assert one.usd_per_1000 < three.usd_per_1000 < anth.usd_per_1000 == pytest.approx(3 * one.usd_per_1000, abs=0.02)


def test_unpriced_local_model_and_empty_input() -> None:
    assert estimate_cost(examples(), "openai-compatible:http://h/v1#q", prices=PRICES).usd_per_1000 is None
    with pytest.raises(ValueError, match="no examples"):
        estimate_cost([], "anthropic:teach", prices=PRICES)
