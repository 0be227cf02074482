"""Why no prediction came: each prediction attempt's outcome shown to the user ($/progress where the
client supports it, the `$/nextedit/status` notification, a log line when the reason changes) and
counted per reason for the server's dashboard (`skipped` events); a rejected API key shown once."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from lsprotocol import types

log = logging.getLogger("nextedit.lsp")

STATUS_METHOD = "$/nextedit/status"

#: What each reason tells the user; {detail} is filled in where there is one.
REASONS: dict[str, str] = {
    # decided in the editor: nothing was sent, or the answer was not used
    "excluded": "file excluded by pattern {detail!r}: nothing is sent",
    "backoff": "suggestions paused after {detail} rejected predictions in a row",
    "too_large": "the cursor line is longer than the editable budget",
    "stale": "the document changed while the prediction was made",
    "bad_prediction": "the prediction does not fit the document ({detail})",
    "no_change": "the prediction changes nothing",
    "unreachable": "the prediction server did not answer ({detail})",
    "unauthorized": "the prediction server refused the API key ({detail})",
    # decided by the server (reason codes of /v1/predict)
    "empty": "the model proposes no edit here",
    "timeout": "the model did not answer within the deadline",
    "parse_failed": "the model's answer could not be read",
    "filtered": "the model's edit lies outside the editable region",
    "cancelled": "superseded by a newer request",
    "error": "the model backend failed ({detail})",
}
#: Reasons decided in the editor, reported to the server as `skipped` events (the server has its own).
CLIENT_REASONS = frozenset({"excluded", "backoff", "too_large", "stale", "bad_prediction", "no_change", "unreachable"})
FLUSH_S = 30.0


def describe(reason: str, detail: str | None = None) -> str:
    """One line for the user: why there is no prediction."""
    template = REASONS.get(reason, reason.replace("_", " ") + (" ({detail})" if detail else ""))
    return "no prediction: " + template.format(detail=detail or "?")


class StatusReporter:
    """Shows each prediction attempt's outcome and counts the ones without a prediction.

    `send(method, params)` sends a notification to the client; `progress` is pygls' work-done
    progress helper when the client announced `window.workDoneProgress` (None otherwise);
    `skipped(counts)` posts the aggregated client-side reasons to the server (True once stored)."""

    def __init__(self, send: Callable[[str, Any], None], *, log_line: Callable[[int, str], None],
                 show: Callable[[str], None], progress: Any = None) -> None:
        self.send = send
        self.log_line = log_line
        self.show = show
        self.progress = progress
        self.counts: Counter[str] = Counter()
        self.pending: Counter[str] = Counter()  # not yet sent to the server
        self._last: dict[str, str | None] = {}
        self._tokens = itertools.count(1)
        self._open: dict[str, tuple[str, asyncio.Future[bool]]] = {}  # uri -> progress token in flight
        self._alerted: str | None = None

    # ------------------------------------------------------------------ progress

    def started(self, uri: str) -> None:
        """A prediction request for `uri` is on its way (a progress spinner where the client has one)."""
        if self.progress is None or uri in self._open:
            return
        token = f"nextedit-{next(self._tokens)}"
        self._open[uri] = (token, asyncio.ensure_future(self._begin(token)))

    async def _begin(self, token: str) -> bool:
        try:  # the token may be used once the client has answered the create request
            await asyncio.wait_for(self.progress.create_async(token), 5.0)
            self.progress.begin(token, types.WorkDoneProgressBegin(title="nextedit", message="predicting…"))
            return True
        except Exception as exc:  # noqa: BLE001 - a client that refuses progress: the notification remains
            log.debug("progress %s not begun: %s", token, exc)
            return False

    def _end(self, uri: str, message: str) -> None:
        opened = self._open.pop(uri, None)
        if opened is not None:
            asyncio.ensure_future(self._finish(*opened, message))

    async def _finish(self, token: str, begun: asyncio.Future[bool], message: str) -> None:
        try:
            if await begun:
                self.progress.end(token, types.WorkDoneProgressEnd(message=message))
        except Exception as exc:  # noqa: BLE001
            log.debug("progress %s not ended: %s", token, exc)
        finally:
            self.progress.tokens.pop(token, None)

    # ------------------------------------------------------------------ outcomes

    def offered(self, uri: str, request_id: str, where: str) -> None:
        """The attempt gave a prediction (shown as `where`, e.g. "line 12")."""
        message = f"prediction ready ({where})"
        self._end(uri, message)
        self._last[uri] = None
        self._notify(uri, "ready", None, message, request_id)

    def skipped(self, uri: str, reason: str, detail: str | None = None, request_id: str | None = None, *,
                visible: bool = True) -> None:
        """The attempt gave no prediction, for `reason` (a key of REASONS or a server reason code).
        `visible=False`: counted, not shown (a newer attempt for the same document is under way)."""
        message = describe(reason, detail)
        self._end(uri, message)
        self.counts[reason] += 1
        if reason in CLIENT_REASONS:
            self.pending[reason] += 1
        if not visible:
            return
        if self._last.get(uri) != reason:  # a log line when the reason changes, not per keystroke
            self._last[uri] = reason
            self.log_line(logging.INFO, message)
        self._notify(uri, "none", reason, message, request_id)

    def jump_dropped(self, uri: str, reason: str, message: str, request_id: str | None = None) -> None:
        """A predicted jump was dropped (its target changed, or lies outside the workspace): shown and logged,
        not counted as an attempt without a prediction (the server gets a `rejected` jump event)."""
        text = f"jump dropped: {message}"
        self.log_line(logging.INFO, text)
        self._notify(uri, "none", reason, text, request_id)

    def cancelled(self, uri: str) -> None:
        """The attempt was superseded by a newer one in the editor (no outcome to show)."""
        self._end(uri, "superseded")

    def _notify(self, uri: str, state: str, reason: str | None, message: str, request_id: str | None) -> None:
        try:
            self.send(STATUS_METHOD, {"uri": uri, "state": state, "reason": reason, "message": message,
                                      "requestId": request_id})
        except Exception as exc:  # noqa: BLE001 - no transport (tests, shutdown)
            log.debug("%s not sent: %s", STATUS_METHOD, exc)

    # ------------------------------------------------------------------ errors the user must see

    def alert(self, message: str) -> None:
        """Show an error once (window/showMessage) until `clear_alert`: a refused API key, say."""
        if self._alerted == message:
            return
        self._alerted = message
        self.show(message)

    def clear_alert(self) -> None:
        """The server answers again: a later failure is shown again."""
        self._alerted = None

    # ------------------------------------------------------------------ server counts

    def take_pending(self) -> dict[str, int]:
        """The client-side reasons counted since the last call (the caller sends them)."""
        out = dict(self.pending)
        self.pending.clear()
        return out

    def give_back(self, counts: dict[str, int]) -> None:
        """Counts that could not be sent: kept for the next flush."""
        self.pending.update(counts)


async def flush_loop(reporter: StatusReporter, post: Callable[[dict[str, int]], bool],
                     every_s: float = FLUSH_S) -> None:
    """Every `every_s`, hand the client-side skip counts to `post` (kept when it does not take them)."""
    while True:
        await asyncio.sleep(every_s)
        flush(reporter, post)


def flush(reporter: StatusReporter, post: Callable[[dict[str, int]], bool]) -> None:
    """Hand the pending counts to `post` once."""
    counts = reporter.take_pending()
    if counts and not post(counts):
        reporter.give_back(counts)
