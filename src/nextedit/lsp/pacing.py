"""When to ask for a prediction and when to show it: the debounce (stretched when the editor's changes
come at a steady pace, so an editor that batches its didChange messages gets one request per pause in
typing, not one per batch), the minimum pause before an offer is shown, and the back-off after
consecutive rejections."""

from __future__ import annotations

import statistics
from collections import deque

from nextedit.lsp.settings import Settings

#: Gaps between changes longer than this are pauses, not typing.
TYPING_GAP_S = 1.0
#: Rejections that count towards the back-off: the user saw the offer and went another way.
USER_REJECTIONS = frozenset({"typed", "cursor_moved", "dismissed"})


class Pacer:
    """Per-document change clocks, and the user's recent verdicts on shown predictions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._last: dict[str, float] = {}
        self._gaps: dict[str, deque[float]] = {}
        self.rejections = 0
        self.paused_until = 0.0

    def changed(self, uri: str, now: float) -> None:
        """The user changed `uri` at `now` (monotonic seconds)."""
        last = self._last.get(uri)
        self._last[uri] = now
        if last is not None and now - last < TYPING_GAP_S:
            self._gaps.setdefault(uri, deque(maxlen=4)).append(now - last)

    def forget(self, uri: str) -> None:
        """The document was closed."""
        self._last.pop(uri, None)
        self._gaps.pop(uri, None)

    def delay_s(self, uri: str) -> float:
        """How long to wait after the latest change before asking: the debounce, or 1.25 times the usual
        gap between this document's recent changes when that is longer (capped at max_debounce_ms)."""
        s = self.settings
        delay = s.debounce_ms / 1000
        gaps = self._gaps.get(uri)
        if s.coalesce and gaps:
            delay = max(delay, min(1.25 * statistics.median(gaps), s.max_debounce_ms / 1000))
        return delay

    def hold_s(self, uri: str, now: float) -> float:
        """How much longer an offer for `uri` must wait before it is shown (min_pause_ms since the last change)."""
        last = self._last.get(uri)
        if last is None or not self.settings.min_pause_ms:
            return 0.0
        return max(0.0, last + self.settings.min_pause_ms / 1000 - now)

    def rejected(self, reason: str, now: float) -> None:
        """A shown prediction was rejected; enough in a row pause suggestions (doubling each time)."""
        if reason not in USER_REJECTIONS:
            return
        self.rejections += 1
        s = self.settings
        if s.backoff_after and self.rejections >= s.backoff_after and s.backoff_s > 0:
            extra = self.rejections - s.backoff_after
            self.paused_until = now + min(s.backoff_s * 2 ** min(extra, 16), max(s.backoff_max_s, s.backoff_s))

    def accepted(self) -> None:
        """A prediction was accepted (wholly or in part): the back-off ends."""
        self.rejections = 0
        self.paused_until = 0.0

    def paused(self, now: float) -> bool:
        """Whether automatic suggestions are paused (explicit requests still go through)."""
        return now < self.paused_until
