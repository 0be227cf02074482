"""Feedback datasets from the serve event store: one record per shown prediction, split by user.

Two passes over the store (SQLite or PostgreSQL, `nextedit.serve.store`): the `events` table first
(shown / accepted / rejected / settled, small), then the `requests` table (the consented, scrubbed
snapshots and predictions), streamed. Requests that were not `collectable` never reached `requests`,
so they cannot be exported: consent is enforced by what the server stored.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nextedit import patch as patchlib
from nextedit.feedback.records import (
    FeedbackError,
    FeedbackPrediction,
    FeedbackRecord,
    Outcome,
)
from nextedit.record import Settled
from nextedit.serve.store import EventStore, StoreError, open_store
from nextedit.settle.traces import (
    AcceptedEvent,
    RejectedEvent,
    RequestEvent,
    SettledEvent,
    ShownEvent,
    TraceError,
    parse_event,
)

__all__ = ["DEFAULT_SPLIT_SALT", "IGNORED_REASONS", "PARTIAL_REASONS", "ExportStats", "check_since",
           "eval_user", "export_feedback", "open_existing_store", "user_key"]

#: Reasons of an `accepted` event that mean only part of the prediction was taken (word- or line-wise accept).
PARTIAL_REASONS = frozenset({"partial", "partially_accepted", "partially-accepted", "partial_accept", "word", "line"})
#: Reasons of a `rejected` event that mean the user never decided (the prediction went away on its own).
IGNORED_REASONS = frozenset({"ignored", "timeout", "timed_out", "timed-out", "expired", "replaced", "superseded",
                             "canceled", "cancelled"})
DEFAULT_SPLIT_SALT = "nextedit-feedback-split"


@dataclass
class ExportStats:
    """What an export did."""

    requests: int = 0
    records: int = 0
    no_prediction: int = 0
    not_shown: int = 0
    not_open_source: int = 0
    other_model: int = 0
    failed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    splits: Counter[str] = field(default_factory=Counter)
    users: dict[str, set[str]] = field(default_factory=lambda: {"train": set(), "eval": set()})

    def lines(self) -> list[str]:
        """A short human summary."""
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())) or "none"
        split = (f"split: train {self.splits['train']} records / {len(self.users['train'])} users, "
                 f"eval {self.splits['eval']} records / {len(self.users['eval'])} users")
        skipped = (f"skipped: {self.no_prediction} without a prediction, {self.not_shown} never shown, "
                   f"{self.not_open_source} not open source, {self.other_model} of other model versions, "
                   f"{self.failed} unreadable")
        return [f"{self.records} records from {self.requests} stored requests ({outcomes})", split, skipped]


def check_since(since: str | None) -> str | None:
    """`since` as given when it is an ISO date or time; FeedbackError naming the option otherwise."""
    if since is None:
        return None
    try:
        datetime.fromisoformat(since)
    except ValueError:
        raise FeedbackError(f"--since {since!r}: not an ISO date or time (e.g. 2026-11-01 or "
                            "2026-11-01T12:00:00Z)") from None
    return since


def open_existing_store(url: str | Path) -> EventStore:
    """The event store at a path or URL; FeedbackError when a file path does not exist or is not a store."""
    text = str(url)
    if "://" not in text and not Path(text).is_file():
        raise FeedbackError(f"{text}: no such event store (the `store` of `nextedit serve`)")
    try:
        return open_store(text)
    except StoreError as exc:
        raise FeedbackError(str(exc)) from None


def user_key(user_id: str | None, client_id: str | None, request_id: str) -> str:
    """Pseudonymous user key: a hash of the user id (else the client id, else the request alone)."""
    raw = f"user:{user_id}" if user_id else f"client:{client_id}" if client_id else f"request:{request_id}"
    return "u-" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def eval_user(user: str, fraction: float, salt: str = DEFAULT_SPLIT_SALT) -> bool:
    """Whether `user` is held out: a hash of (salt, user) mapped to [0, 1) falls below `fraction`.

    Stable: a user keeps their side as data grows, and every export with the same salt agrees."""
    digest = hashlib.sha256(f"{salt}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Feedback:
    shown_at: float | None = None
    shown: bool = False
    decision: str | None = None  # "accepted" | "rejected"
    decision_at: float | None = None
    reason: str | None = None
    settled: Settled | None = None
    kept_rate: float | None = None


def _outcome(fb: _Feedback) -> Outcome:
    reason = (fb.reason or "").lower()
    if fb.decision == "accepted":
        return "partially_accepted" if reason in PARTIAL_REASONS else "accepted"
    if fb.decision == "rejected" and reason not in IGNORED_REASONS:
        return "rejected"
    return "ignored"


OnError = Callable[[str], None]


def _rows(store: EventStore, table: str, since: str | None, stats: ExportStats,
          report: OnError) -> Iterator[Any]:
    for row in store.events(since=since, tables=(table,)):
        data = dict(row.payload)
        data.pop("event_id", None)
        if table == "requests":
            data.setdefault("type", "request")
        try:
            yield parse_event(data, file=f"{store.url}:{table}", line=row.id)
        except TraceError as exc:
            stats.failed += 1
            report(str(exc))


def _index(store: EventStore, since: str | None, stats: ExportStats, report: OnError) -> dict[str, _Feedback]:
    index: dict[str, _Feedback] = {}
    for ev in _rows(store, "events", since, stats, report):
        if not isinstance(ev, (ShownEvent, AcceptedEvent, RejectedEvent, SettledEvent)):
            continue
        fb = index.setdefault(ev.request_id, _Feedback())
        if isinstance(ev, SettledEvent):
            if fb.settled is None:
                fb.settled = Settled(text=ev.text, quiet_s=ev.quiet_s if ev.quiet_s is not None else 10.0)
                kept = (ev.model_extra or {}).get("kept")
                if isinstance(kept, dict) and isinstance(kept.get("kept_rate"), (int, float)):
                    fb.kept_rate = float(kept["kept_rate"])
            continue
        fb.shown = True  # an accept or reject implies the prediction was displayed
        if isinstance(ev, ShownEvent):
            if ev.at is not None and (fb.shown_at is None or ev.at < fb.shown_at):
                fb.shown_at = ev.at
        elif fb.decision is None:  # the first decision counts
            fb.decision = "accepted" if isinstance(ev, AcceptedEvent) else "rejected"
            fb.decision_at, fb.reason = ev.at, getattr(ev, "reason", None)
    return index


def export_feedback(store: EventStore, *, since: str | None = None, eval_users: float = 0.0,
                    salt: str = DEFAULT_SPLIT_SALT, require_open_source: bool = False,
                    model_versions: Collection[str] | None = None, on_error: OnError | None = None,
                    stats: ExportStats | None = None) -> Iterator[FeedbackRecord]:
    """One FeedbackRecord per shown prediction of a collectable request at or after `since` (ISO).

    Outcome: `accepted` / `partially_accepted` (an accepted event whose reason is in PARTIAL_REASONS),
    `rejected` (a rejected event with any other reason than those in IGNORED_REASONS), `ignored` (shown,
    then no decision, or a rejection reason in IGNORED_REASONS). A fraction `eval_users` of users (by a
    salted hash of their pseudonymous key) goes to the `eval` split, everyone else to `train`. With
    `model_versions`, only predictions served by those model versions are exported.
    """
    if not 0.0 <= eval_users < 1.0:
        raise FeedbackError(f"--eval-users {eval_users}: a fraction in [0, 1) of users to hold out")
    stats = stats if stats is not None else ExportStats()
    report = on_error or (lambda reason: None)
    index = _index(store, check_since(since), stats, report)
    for ev in _rows(store, "requests", since, stats, report):
        if not isinstance(ev, RequestEvent):
            continue
        stats.requests += 1
        patch = ev.prediction.patch if ev.prediction is not None else ""
        fb = index.get(ev.request_id)
        if not patch.strip():
            stats.no_prediction += 1
            continue
        if fb is None or not fb.shown:
            stats.not_shown += 1
            continue
        if require_open_source and not ev.open_source:
            stats.not_open_source += 1
            continue
        if model_versions is not None and ev.model_version not in model_versions:
            stats.other_model += 1
            continue
        snap = ev.snapshot
        try:
            region = patchlib.to_region(patch, snap.text, snap.editable or (0, len(snap.text)),
                                        start_line=snap.start_line)[1]
        except patchlib.PatchError as exc:
            stats.failed += 1
            report(f"{store.url}:requests: request {ev.request_id}: field prediction.patch: {exc}")
            continue
        user = user_key(ev.user_id, ev.client_id, ev.request_id)
        split = "eval" if eval_users and eval_user(user, eval_users, salt) else "train"
        waited = None
        if fb.decision_at is not None and fb.shown_at is not None:
            waited = round(max(0.0, fb.decision_at - fb.shown_at), 3)
        record = FeedbackRecord(
            id=f"fb-{ev.request_id}", request_id=ev.request_id, user=user, split=split, at=_iso(ev.at),
            arm=ev.arm, model_version=ev.model_version, snapshot=snap,
            prediction=FeedbackPrediction(patch=patch, cursor=ev.prediction.cursor, region=region),
            outcome=_outcome(fb), reason=fb.reason, time_to_decision_s=waited, settled=fb.settled,
            kept_rate=fb.kept_rate, open_source=ev.open_source, source=ev.source)
        stats.records += 1
        stats.outcomes[record.outcome] += 1
        stats.splits[split] += 1
        stats.users[split].add(user)
        yield record
