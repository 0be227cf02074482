"""`skipped` feedback events: how many of a client's prediction attempts ended without a prediction for a
reason decided in the editor (excluded file, back-off, ...), per reason; counted on the dashboard."""

from __future__ import annotations

from typing import Any

#: At most this many reasons per event; reason names are short identifiers.
MAX_REASONS = 50
MAX_REASON_CHARS = 64
MAX_COUNT = 1_000_000


def check_counts(counts: dict[str, int] | None) -> str | None:
    """Why a `counts` field cannot be stored (None when it can)."""
    if not counts:
        return "field counts: required for a skipped event (reason -> number of attempts)"
    if len(counts) > MAX_REASONS:
        return f"field counts: at most {MAX_REASONS} reasons"
    for reason, n in counts.items():
        if not reason or len(reason) > MAX_REASON_CHARS or not reason.replace("_", "").replace("-", "").isalnum():
            return f"field counts: {reason[:80]!r} is not a reason name (letters, digits, _ and -)"
        if not 0 <= n <= MAX_COUNT:
            return f"field counts.{reason}: {n} is outside 0..{MAX_COUNT}"
    return None


def skipped_payload(event: dict[str, Any], received_at: str) -> dict[str, Any]:
    """The stored row: who, when, and the counts (no code, no request id)."""
    keep = ("type", "client_id", "user_id", "arm", "counts", "at")
    payload = {k: event.get(k) for k in keep if event.get(k) is not None}
    payload["received_at"] = received_at
    payload.setdefault("at", received_at)
    return payload
