"""Shared by the runtime tests: a throwaway model cache per test and a predictor's answers to several examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextedit.predictors import get_predictor


@pytest.fixture(autouse=True)
def model_cache(tmp_path, monkeypatch):
    """Conversions (ct2, GGUF) go into this test's own model cache."""
    monkeypatch.setenv("NEXTEDIT_MODEL_CACHE", str(tmp_path / "cache"))


def predict_each(model: Path, examples, **options):
    """A zeta1 predictor for `model` (40 new tokens at most, confidence on) and its first answer to each example."""
    p = get_predictor(f"local:{model}", format="zeta1", max_new_tokens=40, confidence=True, **options)
    return p, [p.predict_sync(ex)[0] for ex in examples]
