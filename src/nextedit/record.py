"""The example record: the one data contract every nextedit stage reads and writes (pydantic v2)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = "1"


class Model(BaseModel):
    """Base for record parts: unknown fields are kept and written back unchanged."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Source(Model):
    """Where an example came from: a git commit, a Zed spec, production traces, ..."""

    kind: str = "unknown"
    repo: str | None = None
    local_repo: str | None = Field(default=None, description="absolute path of the local clone the example was "
                                   "read from (where `context` and `diagnostics` look first); `repo` stays the "
                                   "remote URL, for provenance")
    revision: str | None = None
    license: str | None = None
    time: str | None = None
    tags: list[str] = Field(default_factory=list)


class HistoryEvent(Model):
    """One recent edit by the user: a unified diff, line numbers counted from the top of the file."""

    path: str
    old_path: str | None = None
    diff: str
    predicted: bool = False


class RelatedExcerpt(Model):
    """A piece of other code shown to the model as context (a definition, a BM25 hit, ...)."""

    path: str
    start_line: int = Field(default=0, ge=0)
    text: str
    source: str = "unknown"
    rank: int = 0


class Diagnostic(Model):
    """A compiler or linter message near the cursor; lines are 0-based file lines."""

    severity: Literal["error", "warning", "info", "hint"] = "error"
    message: str
    start_line: int = Field(ge=0)
    end_line: int = Field(ge=0)
    code: str | None = None


class Snapshot(Model):
    """The situation the model sees: an excerpt of the cursor file, cursor, editable region, context."""

    path: str
    text: str
    start_line: int = Field(default=0, ge=0)
    cursor: int = Field(ge=0)
    editable: tuple[int, int] | None = None
    history: list[HistoryEvent] = Field(default_factory=list)
    related: list[RelatedExcerpt] = Field(default_factory=list)
    diagnostics: list[Diagnostic] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_offsets(self) -> Snapshot:
        n = len(self.text)
        if self.cursor > n:
            raise ValueError(f"cursor {self.cursor} is past the end of text (length {n})")
        if self.editable is None:
            self.editable = (0, n)
        start, end = self.editable
        if not 0 <= start <= end <= n:
            raise ValueError(f"editable {[start, end]} is not a range inside text (length {n})")
        if not start <= self.cursor <= end:
            raise ValueError(f"cursor {self.cursor} lies outside editable {[start, end]}")
        return self

    @property
    def editable_text(self) -> str:
        """The text of the editable region."""
        start, end = self.editable or (0, len(self.text))
        return self.text[start:end]


class Location(Model):
    """Where an edit lies: a file and its 0-based line range [start_line, end_line) in the file as it stands at
    the snapshot (history applied); `end_line == start_line` for a pure insertion before `start_line`."""

    path: str
    start_line: int = Field(ge=0)
    end_line: int = Field(ge=0)
    #: The edit there, a hunk-only unified diff numbered as file lines (None: the location alone).
    patch: str | None = None
    #: Predicted locations: the predictor's own score (higher = surer) and why it chose the place.
    score: float | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _check_range(self) -> Location:
        if self.end_line < self.start_line:
            raise ValueError(f"end_line {self.end_line} is before start_line {self.start_line}")
        return self


class Settled(Model):
    """What the editable region looked like once the user had been quiet for `quiet_s` seconds."""

    text: str
    quiet_s: float = 10.0


class Usage(Model):
    """Tokens and money spent on one model call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class Prediction(Model):
    """One model output for the example: raw text, the parsed patch, or the error why not."""

    provider: str
    sample: int = 0
    raw: str | None = None
    patch: str | None = None
    cursor: int | None = None
    error: str | None = None
    latency_ms: float | None = None
    usage: Usage | None = None
    #: Where the predictor expects the next edit, best first (a jump when outside the editable region).
    locations: list[Location] = Field(default_factory=list)
    #: How much more likely the model finds this answer than leaving the region unchanged (log-likelihood
    #: ratio in nats; local predictors with `confidence` or `abstain_below` set). Higher = surer.
    confidence: float | None = None
    #: Why the predictor withheld its edit (low confidence, reverts the user's last edit); `patch` is then
    #: empty and `withheld` holds the edit it would have offered.
    abstained: str | None = None
    withheld: str | None = None
    #: The heuristic whose answer was offered because the model scored it above its own (`raw` keeps the
    #: model's own output); None when the model's own answer was offered.
    candidate: str | None = None


class Check(Model):
    """One deterministic check of one prediction: a failure code and a human message."""

    prediction: int | None = None
    code: str
    passed: bool
    message: str = ""


class Score(Model):
    """Metric values for one prediction, each metric with the signature of how it was computed."""

    prediction: int
    reference: int | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    signatures: dict[str, str] = Field(default_factory=dict)


class LineageEntry(Model):
    """A stage that touched the example: name, version, config hash and time."""

    stage: str
    version: str
    config: str = ""
    at: str = ""


class Example(Model):
    """One next-edit example: snapshot, expected edits (alternatives) and pipeline state."""

    id: str = Field(min_length=1)
    source: Source = Field(default_factory=Source)
    snapshot: Snapshot
    expected: list[str] = Field(default_factory=list)
    expected_cursors: list[int | None] = Field(default_factory=list)
    #: Where the change's remaining edits are, the next edit group first (any file, inside the editable
    #: region or not); empty when unknown. docs/jumps.md.
    locations: list[Location] = Field(default_factory=list)
    settled: Settled | None = None
    rejected: str | None = None
    predictions: list[Prediction] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    scores: list[Score] = Field(default_factory=list)
    lineage: list[LineageEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_cursors(self) -> Example:
        if self.expected_cursors and len(self.expected_cursors) != len(self.expected):
            raise ValueError(
                f"expected_cursors has {len(self.expected_cursors)} entries but expected has "
                f"{len(self.expected)}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON data, unknown fields included."""
        return self.model_dump(mode="json")

    def to_json(self) -> bytes:
        """One JSONL line (without the newline)."""
        return orjson.dumps(self.to_dict())


class RecordError(ValueError):
    """A record that does not validate; `str()` is one line naming file, line and field."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [p for p in (where, f"field {field}" if field else None, message) if p]
        super().__init__(": ".join(parts))


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(record)"


def _first_error(err: ValidationError) -> tuple[str, str]:
    first = err.errors(include_url=False)[0]
    msg = first["msg"].removeprefix("Value error, ")
    return _field_path(tuple(first["loc"])), msg


def parse_example(data: dict[str, Any] | bytes | str, *, file: str | None = None,
                  line: int | None = None) -> Example:
    """Validate one record (a dict or a JSON line); raise RecordError naming file, line and field."""
    if isinstance(data, (bytes, str)):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"malformed JSON ({exc})", file=file, line=line) from None
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {type(data).__name__}", file=file, line=line)
    try:
        return Example.model_validate(data)
    except ValidationError as exc:
        field, msg = _first_error(exc)
        raise RecordError(msg, file=file, line=line, field=field) from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of the example record (written to docs/schema.json)."""
    schema = Example.model_json_schema()
    schema["$id"] = f"https://nextedit.dev/schema/example-v{SCHEMA_VERSION}.json"
    schema["title"] = "nextedit example"
    return schema
