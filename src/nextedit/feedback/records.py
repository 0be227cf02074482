"""The feedback record: one shown prediction with its prompt context, explicit outcome and settled text (pydantic).

`nextedit feedback export` writes them, preference training (`method = "kto" | "dpo"`) and `nextedit
feedback eval` read them. Regions are texts of the snapshot's editable region: `original` (what the
model saw), `prediction.region` (what it proposed), `settled.text` (what the user ended with).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextedit.jsonl import iter_lines
from nextedit.record import Settled, Snapshot

__all__ = ["FEEDBACK_FORMAT", "OUTCOMES", "FeedbackError", "FeedbackPrediction", "FeedbackRecord", "Outcome",
           "read_feedback"]

FEEDBACK_FORMAT = "nextedit-feedback/1"
Outcome = Literal["accepted", "partially_accepted", "rejected", "ignored"]
OUTCOMES: tuple[str, ...] = ("accepted", "partially_accepted", "rejected", "ignored")


class FeedbackError(ValueError):
    """Feedback data or options that cannot be used; `str()` is one line naming file, line and field."""


class FeedbackPrediction(BaseModel):
    """What was shown: the patch against `snapshot.text`, the cursor after it, and the editable region it yields."""

    model_config = ConfigDict(extra="allow")

    patch: str = Field(min_length=1)
    cursor: int | None = None
    region: str = Field(description="the snapshot's editable region with the patch applied")


class FeedbackRecord(BaseModel):
    """One shown prediction and what the user did with it."""

    model_config = ConfigDict(extra="allow")

    format: Literal["nextedit-feedback/1"] = FEEDBACK_FORMAT
    id: str = Field(min_length=1)
    request_id: str = Field(min_length=1)
    user: str = Field(min_length=1, description="pseudonymous user key (a hash of the user id); the split unit")
    split: Literal["train", "eval"] = "train"
    at: str | None = Field(None, description="when the prediction was requested (ISO 8601 UTC)")
    arm: str | None = None
    model_version: str | None = None
    snapshot: Snapshot = Field(description="the prompt context: the format renders the prompt from it")
    prediction: FeedbackPrediction
    outcome: Outcome
    reason: str | None = Field(None, description="the decision event's reason (e.g. discarded, typed-over, partial)")
    time_to_decision_s: float | None = Field(None, ge=0, description="shown -> accepted/rejected, seconds")
    settled: Settled | None = Field(None, description="the editable region once the user went quiet")
    kept_rate: float | None = None
    open_source: bool = False
    source: dict | None = None

    @property
    def original(self) -> str:
        """The editable region the model saw."""
        return self.snapshot.editable_text

    @property
    def positive(self) -> bool:
        """Accepted, wholly or in part."""
        return self.outcome in ("accepted", "partially_accepted")


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(record)"


def read_feedback(path: str | os.PathLike[str], *,
                  on_error: Callable[[str], None] | None = None) -> Iterator[FeedbackRecord]:
    """Records of a feedback JSONL file (`.gz` ok). A bad line raises FeedbackError ("file:line: field F:
    message"), or is passed to `on_error` (and skipped) when given."""
    name = str(path)
    if not os.path.exists(path):
        raise FeedbackError(f"{name}: no such file (write one with `nextedit feedback export`)")
    for line, raw in iter_lines(path):
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise FeedbackError(f"{name}:{line}: expected a JSON object")
            yield FeedbackRecord.model_validate(data)
        except orjson.JSONDecodeError as exc:
            reason = f"{name}:{line}: malformed JSON ({exc})"
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            reason = f"{name}:{line}: field {_field(tuple(err['loc']))}: {err['msg'].removeprefix('Value error, ')}"
        except FeedbackError as exc:
            reason = str(exc)
        else:
            continue
        if on_error is None:
            raise FeedbackError(reason)
        on_error(reason)
