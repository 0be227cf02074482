"""Reporting what happened to predictions (shown, accepted, rejected, settled) to the server's
/v1/events, in order, from a background queue that never blocks typing and never raises."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from nextedit.languages import language_for_path
from nextedit.lsp.client import ServeClient
from nextedit.lsp.jump import Jump
from nextedit.lsp.offer import Offer

log = logging.getLogger("nextedit.lsp")

MAX_QUEUED = 1000
RETRY_DELAYS_S = (0.25, 1.0)


def _syntax_errors(text: str, path: str) -> int | None:
    lang = language_for_path(path)
    if lang is None or not text:
        return None
    try:
        from nextedit.metrics.syntax import syntax_errors
        return syntax_errors(text, lang.name)
    except Exception as exc:  # noqa: BLE001 - a grammar problem must not stop reporting
        log.debug("syntax error count failed for %s: %s", path, exc)
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventReporter:
    """Builds event bodies as the serve contract describes and posts them one after another."""

    def __init__(self, client: ServeClient, *, client_id: str, user_id: str, collectable: bool) -> None:
        self.client = client
        self.client_id = client_id
        self.user_id = user_id
        self.collectable = collectable
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUED)
        self._worker: asyncio.Task[None] | None = None
        self.sent = 0
        self.lost = 0

    def body(self, kind: str, offer: Offer | Jump, *, reason: str | None = None, settled_text: str | None = None,
             quiet_s: float | None = None, partial: str | None = None) -> dict[str, Any]:
        """The /v1/events body for one event about `offer` (a jump, or the edit a jump led to: `"jump": true`).

        A settled event carries the settled region's text whatever the consent: the server needs it
        to compute the kept rate, and stores it only when `collectable` is true (serve contract)."""
        before = after = None
        if kind == "settled" and isinstance(offer, Offer):
            before = _syntax_errors(offer.region_before, offer.path)
            after = _syntax_errors(offer.region_predicted, offer.path)
        jump = {"jump": True} if offer.jump else {}
        return {
            "type": kind,
            "request_id": offer.request_id,
            "client_id": self.client_id,
            "user_id": self.user_id,
            "arm": offer.arm,
            "model_version": offer.model_version,
            "reason": reason,
            "settled_text": settled_text,
            "quiet_s": quiet_s,
            "collectable": self.collectable,
            "syntax_errors_before": before,
            "syntax_errors_after": after,
            "partial": partial,
            **jump,
            "at": _now(),
        }

    def skipped(self, counts: dict[str, int], arm: str | None) -> bool:
        """Queue one `skipped` event: how many prediction attempts ended without a prediction, per
        client-side reason, since the last one. False if it was not queued."""
        body = {"type": "skipped", "client_id": self.client_id, "user_id": self.user_id, "arm": arm,
                "counts": counts, "at": _now()}
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            self.lost += 1
            return False
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._run())
        return True

    def report(self, kind: str, offer: Offer | Jump, **fields: Any) -> bool:
        """Queue one event; each kind is reported at most once per offer (or jump). False if it was not queued."""
        if kind in offer.reported:
            return False
        offer.reported.add(kind)
        try:
            self._queue.put_nowait(self.body(kind, offer, **fields))
        except asyncio.QueueFull:
            self.lost += 1
            log.warning("event queue full; %s event for %s dropped", kind, offer.request_id)
            return False
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._run())
        return True

    async def _run(self) -> None:
        while True:
            body = await self._queue.get()
            try:
                await self._send(body)
            finally:
                self._queue.task_done()

    async def _send(self, body: dict[str, Any]) -> None:
        for delay in (*RETRY_DELAYS_S, None):
            if await self.client.event(body):
                self.sent += 1
                return
            if delay is None:
                break
            await asyncio.sleep(delay)
        self.lost += 1
        log.info("%s event for %s not stored (server unreachable)", body["type"], body.get("request_id"))

    async def drain(self, timeout_s: float = 3.0) -> None:
        """Wait (at most `timeout_s`) until every queued event has been sent or given up on."""
        if self._worker is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.warning("%d events still queued at shutdown; dropped", self._queue.qsize())

    def close(self) -> None:
        """Stop the background worker."""
        if self._worker is not None:
            self._worker.cancel()
