"""Editor trace events (documented in docs/traces.md) and their import: request + settled pairs -> example records.

Readers: `iter_trace_events(path)` yields raw event dicts from a JSONL file (`.gz` ok) or from a
SQLite event store whose `events` table (and optional `requests` table) has a JSON `payload`
column in this format (other columns fill fields the payload lacks). `parse_event` validates one.

`import_traces` reads the files twice: first the small events (outcomes, settled texts, and —
for replay — edits and the requests' region coordinates), then the request events, each turned
into an example when it has a settled region (a `settled` event, or one derived by replaying
`edit` events through the reference `SettleTracker`). Snapshots are never all held in memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from nextedit import patch as patchlib
from nextedit.jsonl import iter_lines
from nextedit.record import Example, Settled, Snapshot, Source
from nextedit.settle.tracker import DEFAULT_QUIET_S, DEFAULT_TTL_S, SettleTracker

__all__ = ["EVENT_TYPES", "ImportStats", "TraceError", "import_traces", "iter_trace_events", "parse_event"]

EVENT_TYPES = ("request", "shown", "accepted", "rejected", "edit", "settled")
SQLITE_MAGIC = b"SQLite format 3\x00"


class TraceError(ValueError):
    """A trace event that does not validate; `str()` is one line naming file, line and field."""


def _to_seconds(value: Any) -> float | None:
    """`at` as epoch seconds: a number is taken as is, a string as an ISO 8601 time (UTC unless it has an offset)."""
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        when = datetime.fromisoformat(value)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    raise ValueError("expected epoch seconds or an ISO 8601 time")


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    at: float | None = Field(None, description="epoch seconds or ISO 8601 time")
    client_id: str | None = None
    user_id: str | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> float | None:
        return _to_seconds(value)


class TracePrediction(BaseModel):
    """What the model returned for a request (a patch against the snapshot text)."""

    model_config = ConfigDict(extra="allow")

    patch: str = ""
    cursor: int | None = None


class RequestEvent(_Event):
    """A prediction request: the snapshot the model saw, who asked, and what came back."""

    type: Literal["request"]
    request_id: str = Field(min_length=1)
    snapshot: Snapshot
    model_version: str | None = None
    arm: str | None = None
    collectable: bool = False
    open_source: bool = False
    prediction: TracePrediction | None = None
    reason: str | None = None
    document_offset: int = Field(0, ge=0, description="document offset of snapshot.text[0] (for edit replay)")
    source: dict[str, Any] | None = None


class ShownEvent(_Event):
    """The prediction was displayed."""

    type: Literal["shown"]
    request_id: str = Field(min_length=1)


class AcceptedEvent(_Event):
    """The user accepted the prediction."""

    type: Literal["accepted"]
    request_id: str = Field(min_length=1)


class RejectedEvent(_Event):
    """The prediction was discarded: rejected, replaced, canceled, empty, ..."""

    type: Literal["rejected"]
    request_id: str = Field(min_length=1)
    reason: str | None = None


class EditEvent(_Event):
    """A buffer edit: document [start, end) (character offsets before the edit) became `text`."""

    type: Literal["edit"]
    path: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str = ""


class SettledEvent(_Event):
    """The request's editable region after the user went quiet."""

    type: Literal["settled"]
    request_id: str = Field(min_length=1)
    text: str = Field(validation_alias=AliasChoices("text", "settled_text"))
    quiet_s: float | None = None


TraceEvent = Annotated[RequestEvent | ShownEvent | AcceptedEvent | RejectedEvent | EditEvent | SettledEvent,
                       Field(discriminator="type")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(TraceEvent)


def _field(loc: tuple[Any, ...]) -> str:
    # Drop the union tag pydantic puts first ("request", "settled", ...).
    parts = [str(p) for p in loc]
    if parts and parts[0] in EVENT_TYPES:
        parts = parts[1:]
    return ".".join(parts) or "(event)"


def parse_event(data: dict[str, Any], *, file: str, line: int) -> Any:
    """Validate one event dict; raise TraceError("file:line: field F: message")."""
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        raise TraceError(f"{file}:{line}: field type: expected one of {', '.join(EVENT_TYPES)} (got {kind!r})")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        msg = first["msg"].removeprefix("Value error, ")
        raise TraceError(f"{file}:{line}: field {_field(tuple(first['loc']))}: {msg}") from None


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(16) == SQLITE_MAGIC


def _sqlite_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any] | bytes]]:
    try:
        yield from _sqlite_table_rows(path)
    except sqlite3.DatabaseError as exc:  # a damaged file that starts like SQLite
        raise TraceError(f"{path}: not a readable SQLite event store ({exc})") from None


def _sqlite_table_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any] | bytes]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "events" not in tables:
            raise TraceError(f"{path}: SQLite file has no table 'events' (see docs/traces.md)")
        for table in ("requests", "events"):
            if table not in tables:
                continue
            cur = con.execute(f"SELECT rowid AS _rowid, * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cur.description]
            if "payload" not in names:
                raise TraceError(f"{path}: table {table!r} has no 'payload' column (see docs/traces.md)")
            for row in cur:
                values = dict(zip(names, row, strict=True))
                rowid = values.pop("_rowid")
                payload = values.pop("payload")
                try:
                    data = orjson.loads(payload) if payload is not None else {}
                except orjson.JSONDecodeError as exc:
                    yield f"{path}:{table}", rowid, f"malformed JSON payload ({exc})".encode()
                    continue
                if not isinstance(data, dict):
                    yield f"{path}:{table}", rowid, b"payload is not a JSON object"
                    continue
                for key, value in values.items():
                    if value is not None and key not in data and key != "id":
                        data[key] = value
                if table == "requests":
                    data.setdefault("type", "request")
                yield f"{path}:{table}", rowid, data
    finally:
        con.close()


def iter_trace_events(path: str | Path) -> Iterator[tuple[str, int, dict[str, Any] | bytes]]:
    """(file, line or row id, event dict) per event of a JSONL trace file or a SQLite event store.

    A row that is not a JSON object comes back as bytes (the reason) for the caller to report.
    """
    p = Path(path)
    if _is_sqlite(p):
        yield from _sqlite_rows(p)
        return
    name = str(p)
    for line, raw in iter_lines(p):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield name, line, f"malformed JSON ({exc})".encode()
            continue
        if not isinstance(data, dict):
            yield name, line, f"expected a JSON object, got {type(data).__name__}".encode()
            continue
        yield name, line, data


@dataclass
class ImportStats:
    """What an import did."""

    events: int = 0
    requests: int = 0
    examples: int = 0
    no_settled: int = 0
    not_consented: int = 0
    not_open_source: int = 0
    duplicates: int = 0
    replayed: int = 0
    failed: int = 0
    settled_by: dict[str, int] = field(default_factory=dict)


@dataclass
class _Outcome:
    shown: bool = False
    accepted: bool = False
    rejected_reason: str | None = None
    rejected: bool = False


OnError = Callable[[str, int, str, Any], None]


def _events(files: Iterable[Path], stats: ImportStats | None, on_error: OnError) -> Iterator[tuple[str, int, Any]]:
    for path in files:
        for file, line, data in iter_trace_events(path):
            if stats is not None:
                stats.events += 1
            if isinstance(data, bytes):
                on_error(file, line, f"{file}:{line}: {data.decode()}", None)
                continue
            try:
                yield file, line, parse_event(data, file=file, line=line)
            except TraceError as exc:
                on_error(file, line, str(exc), data)


def _replay(tracks: list[tuple[float, int, str, Any]], quiet_s: float, ttl_s: float,
            end: float) -> dict[str, tuple[str, float]]:
    """Settled regions derived from requests and edits in time order, one tracker per client;
    `end` is the log's last time (of any event): regions quiet by then settle."""
    trackers: dict[str | None, SettleTracker] = {}
    out: dict[str, tuple[str, float]] = {}

    def poll(tracker: SettleTracker, now: float) -> None:
        for r in tracker.poll(now):
            out[r.request_id] = (r.text, quiet_s)

    tracks.sort(key=lambda t: (t[0], t[1]))
    last = end
    for at, _order, kind, item in tracks:
        tracker = trackers.setdefault(item[0], SettleTracker(quiet_s, ttl_s))
        poll(tracker, at)
        if kind == "track":
            _client, rid, path, start, text = item
            tracker.track(rid, path, start, start + len(text), text, at)
        else:
            _client, path, start, stop, text = item
            tracker.edit(path, start, stop, text, at)
        last = max(last, at)
    for tracker in trackers.values():
        poll(tracker, last)
    return out


@dataclass
class _Index:
    """What the first pass keeps: settled texts, outcomes, and (for replay) regions and edits in time order."""

    settled: dict[str, tuple[str, float]] = field(default_factory=dict)
    outcomes: dict[str, _Outcome] = field(default_factory=dict)
    tracks: list[tuple[float, int, str, Any]] = field(default_factory=list)
    edits: int = 0
    end: float = float("-inf")  # the log's last time


def _first_pass(paths: list[Path], stats: ImportStats, report: OnError, *, replay: bool, quiet_s: float) -> _Index:
    index = _Index()
    for order, (file, line, ev) in enumerate(_events(paths, stats, report)):
        if ev.at is not None:
            index.end = max(index.end, ev.at)
        if isinstance(ev, SettledEvent):
            index.settled.setdefault(ev.request_id, (ev.text, ev.quiet_s if ev.quiet_s is not None else quiet_s))
        elif isinstance(ev, (ShownEvent, AcceptedEvent, RejectedEvent)):
            o = index.outcomes.setdefault(ev.request_id, _Outcome())
            o.shown |= isinstance(ev, (ShownEvent, AcceptedEvent))
            o.accepted |= isinstance(ev, AcceptedEvent)
            if isinstance(ev, RejectedEvent):
                o.rejected, o.rejected_reason = True, ev.reason
        elif replay and isinstance(ev, EditEvent):
            if ev.at is None:
                report(file, line, f"{file}:{line}: field at: needed to replay edits", None)
            elif ev.end < ev.start:
                report(file, line, f"{file}:{line}: field end: before start", None)
            else:
                index.edits += 1
                index.tracks.append((ev.at, order, "edit", (ev.client_id, ev.path, ev.start, ev.end, ev.text)))
        elif replay and isinstance(ev, RequestEvent) and ev.at is not None:
            snap = ev.snapshot
            lo, hi = snap.editable or (0, len(snap.text))
            index.tracks.append((ev.at, order, "track", (ev.client_id, ev.request_id, snap.path,
                                                         ev.document_offset + lo, snap.text[lo:hi])))
    return index


def import_traces(files: Iterable[str | Path], *, require_consent: bool = False, require_open_source: bool = False,
                  replay: bool = True, quiet_s: float = DEFAULT_QUIET_S, ttl_s: float = DEFAULT_TTL_S,
                  expected_from_settled: bool = True, on_error: OnError | None = None,
                  stats: ImportStats | None = None) -> Iterator[Example]:
    """Examples from trace files: one per request with a settled region (and consent when required).

    `expected` is the diff from the request's editable region to the settled text (as Zed's
    `settled` import does; `nextedit settle` later swaps it for the closest candidate), `settled`
    the settled text, `rejected` the model's own output when it differs from the settled text and the
    user did not accept it, and an extra `trace` field the request's metadata and outcome (shown /
    accepted / rejected reason / touched_up: accepted, then edited before it settled).
    """
    paths = [Path(f) for f in files]
    stats = stats if stats is not None else ImportStats()

    def report(file: str, line: int, reason: str, raw: Any) -> None:
        stats.failed += 1
        if on_error is not None:
            on_error(file, line, reason, raw)

    index = _first_pass(paths, stats, report, replay=replay, quiet_s=quiet_s)
    settled, outcomes = index.settled, index.outcomes
    replayed = _replay(index.tracks, quiet_s, ttl_s, index.end) if index.edits else {}
    seen: set[str] = set()
    for file, line, ev in _events(paths, None, lambda *a: None):
        if not isinstance(ev, RequestEvent):
            continue
        stats.requests += 1
        if ev.request_id in seen:
            stats.duplicates += 1
            report(file, line, f"{file}:{line}: field request_id: duplicate request {ev.request_id!r}", None)
            continue
        seen.add(ev.request_id)
        if require_consent and not ev.collectable:
            stats.not_consented += 1
            continue
        if require_open_source and not ev.open_source:
            stats.not_open_source += 1
            continue
        how = "event" if ev.request_id in settled else "replay" if ev.request_id in replayed else None
        if how is None:
            stats.no_settled += 1
            continue
        text, quiet = settled.get(ev.request_id) or replayed[ev.request_id]
        stats.settled_by[how] = stats.settled_by.get(how, 0) + 1
        stats.replayed += how == "replay"
        stats.examples += 1
        yield _example(ev, text, quiet, outcomes.get(ev.request_id, _Outcome()), how, expected_from_settled)


def _example(ev: RequestEvent, text: str, quiet_s: float, outcome: _Outcome, how: str,
             expected_from_settled: bool) -> Example:
    snap = ev.snapshot
    editable = snap.editable or (0, len(snap.text))
    original = snap.text[editable[0]:editable[1]]
    expected: list[str] = []
    if expected_from_settled and text != original:
        expected = [patchlib.from_region(snap.text, editable, text, path=snap.path, start_line=snap.start_line)]
    patch = ev.prediction.patch if ev.prediction is not None else ""
    rejected = None
    touched_up = False
    if patch.strip():
        try:
            predicted = patchlib.to_region(patch, snap.text, editable, start_line=snap.start_line)[1]
        except patchlib.PatchError:
            predicted = None
        # An explicitly accepted prediction the user then touched up is a positive, never a negative.
        touched_up = outcome.accepted and predicted != text
        rejected = None if predicted == text or outcome.accepted else patch
    src = ev.source or {}
    when = datetime.fromtimestamp(ev.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ev.at is not None else None
    source = Source(kind="trace", repo=src.get("repo"), revision=src.get("revision"), license=src.get("license"),
                    time=when, tags=[t for t in ("open-source" if ev.open_source else None,
                                                 "collectable" if ev.collectable else None) if t])
    example = Example(id=f"trace-{ev.request_id}", source=source, snapshot=snap, expected=expected,
                      settled=Settled(text=text, quiet_s=quiet_s), rejected=rejected)
    example.trace = {  # type: ignore[attr-defined]  # an extra record field
        "request_id": ev.request_id, "model_version": ev.model_version, "arm": ev.arm,
        "client_id": ev.client_id, "user_id": ev.user_id, "collectable": ev.collectable,
        "open_source": ev.open_source, "at": ev.at, "reason": ev.reason, "prediction": patch or None,
        "shown": outcome.shown, "accepted": outcome.accepted, "rejected": outcome.rejected,
        "rejected_reason": outcome.rejected_reason, "touched_up": touched_up, "settled_by": how,
    }
    return example
