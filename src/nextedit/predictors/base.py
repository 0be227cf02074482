"""The predictor interface (anything that proposes the next edit for an example) and its registry."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable
from typing import Any, ClassVar

from nextedit.record import Example, Prediction

# Provider scheme -> "module:Class". A provider string is "SCHEME" or "SCHEME:ARGUMENT"
# (e.g. "noop", "propagate", "local:./model", "openai-compatible:http://host:8000/v1").
# To add a provider, add one line here; the class is imported only when used.
PREDICTORS: dict[str, str] = {
    "noop": "nextedit.predictors.baselines:NoopPredictor",
    "propagate": "nextedit.predictors.baselines:PropagatePredictor",
    "jump": "nextedit.predictors.jumps:JumpPredictor",
    "teacher": "nextedit.teacher.predictor:TeacherPredictor",
    "local": "nextedit.predictors.local:LocalPredictor",
    "openai-compatible": "nextedit.predictors.openai_compat:OpenAICompatiblePredictor",
    "scripted": "nextedit.predictors.scripted:ScriptedPredictor",
}


class PredictorError(ValueError):
    """A provider string that names no known predictor, or a predictor that cannot be built."""


class Predictor:
    """Proposes edits for an example. Subclasses set `scheme` and implement `predict`.

    `predict` may be a plain method or `async def`; callers use `predict_async`, which accepts both.
    """

    scheme: ClassVar[str] = ""
    #: Bump when the predictions change for the same input: it keys the predict stage's cache.
    version: ClassVar[str] = "1"

    def __init__(self, argument: str | None = None, **options: Any) -> None:
        if argument:
            raise PredictorError(f"provider {self.scheme!r} takes no argument (got {argument!r})")
        if options:
            raise PredictorError(f"provider {self.scheme!r} takes no options (got {sorted(options)})")
        self.argument = argument

    @property
    def name(self) -> str:
        """The provider string recorded in `Prediction.provider`."""
        return f"{self.scheme}:{self.argument}" if self.argument else self.scheme

    def predict(self, example: Example, *, samples: int = 1) -> list[Prediction] | Awaitable[list[Prediction]]:
        """Return `samples` predictions for the example (sync or async)."""
        raise NotImplementedError

    async def predict_async(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """`predict`, awaited when the subclass implements it as a coroutine."""
        result = self.predict(example, samples=samples)
        if inspect.isawaitable(result):
            result = await result
        return list(result)


def parse_provider(provider: str) -> tuple[str, str | None]:
    """Split "SCHEME:ARGUMENT" into (scheme, argument); the argument may itself contain colons."""
    scheme, sep, argument = provider.strip().partition(":")
    if not scheme:
        raise PredictorError(f"empty provider {provider!r}; known: {', '.join(sorted(PREDICTORS))}")
    return scheme, (argument if sep else None)


def predictor_class(scheme: str) -> type[Predictor]:
    """The Predictor class registered for a scheme (imported lazily)."""
    target = PREDICTORS.get(scheme)
    if target is None:
        raise PredictorError(f"unknown provider {scheme!r}; known: {', '.join(sorted(PREDICTORS))}")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PredictorError(f"provider {scheme!r} cannot be loaded from {target}: {exc}") from exc
    return cls


def get_predictor(provider: str, **options: Any) -> Predictor:
    """Build the predictor named by a provider string, e.g. `get_predictor("propagate")`."""
    scheme, argument = parse_provider(provider)
    return predictor_class(scheme)(argument, **options)
