"""The `teacher:SPEC` predictor: the teacher prompt through nextedit.llm, e.g. `teacher:anthropic:MODEL`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from nextedit.llm import LLMClient, preflight
from nextedit.predictors.base import Predictor, PredictorError
from nextedit.record import Example, Prediction
from nextedit.teacher.generate import teacher_predictions
from nextedit.teacher.prompt import prompt_version
from nextedit.teacher.stages import TeacherConfig


class TeacherPredictor(Predictor):
    """`nextedit predict --provider teacher:anthropic:claude-sonnet-4-6`; options are teacher-stage
    options (temperature, max_tokens, max_cost_usd, client, prompt, privacy)."""

    scheme = "teacher"
    version = "1+" + prompt_version()

    def __init__(self, argument: str | None = None, **options: Any) -> None:
        if not argument:
            raise PredictorError("provider 'teacher' needs a model spec: teacher:anthropic:MODEL, "
                                 "teacher:openai:MODEL or teacher:openai-compatible:URL#MODEL")
        try:
            self.config = TeacherConfig(provider=argument, **options)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise PredictorError(f"provider teacher:{argument}: option {field}: {first['msg']}") from None
        try:
            preflight(argument, **self.config.client.model_dump())
        except ValueError as exc:
            raise PredictorError(f"provider teacher:{argument}: {exc}") from None
        self.argument = argument
        self._client: LLMClient | None = None

    async def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """`samples` teacher predictions (LLM errors propagate; the predict stage quarantines them)."""
        if self._client is None:
            from nextedit.teacher.common import make_client

            self._client = make_client(self.config)
        return await teacher_predictions(example, self._client, self.config, samples=samples,
                                         options=self.config.prompt, privacy=self.config.privacy)
