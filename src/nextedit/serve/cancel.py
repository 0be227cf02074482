"""In-flight predict requests by (client, file): a newer request cancels the one it supersedes."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass
class Inflight:
    """One running request: its id, the flag backends poll, and the future that wakes the handler."""

    request_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    superseded: asyncio.Future[str] | None = None

    def fire(self, by: str) -> None:
        """Mark the request cancelled (superseded by request `by`)."""
        self.cancel.set()
        if self.superseded is not None and not self.superseded.done():
            self.superseded.set_result(by)


class InflightRegistry:
    """At most one running request per (client id, file path); registering a new one cancels the old."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], Inflight] = {}
        self.cancelled = 0

    def start(self, client_id: str, path: str, request_id: str) -> Inflight:
        """Register a request; the previous request of the same client and file is cancelled."""
        loop = asyncio.get_running_loop()
        entry = Inflight(request_id, superseded=loop.create_future())
        key = (client_id, path)
        previous = self._running.get(key)
        self._running[key] = entry
        if previous is not None:
            previous.fire(request_id)
            self.cancelled += 1
        return entry

    def finish(self, client_id: str, path: str, entry: Inflight) -> None:
        """Forget a finished request (only if it is still the current one for its key)."""
        key = (client_id, path)
        if self._running.get(key) is entry:
            del self._running[key]

    def __len__(self) -> int:
        return len(self._running)
