"""In-flight predict requests by (client, file): a newer request cancels the one it supersedes,
in this process at once and in other processes through the shared state's ordered messages."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class Inflight:
    """One running request: its id, the flag backends poll, and the future that wakes the handler."""

    request_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    superseded: asyncio.Future[str] | None = None
    #: Its place in the shared order of requests (None until the shared state has numbered it).
    seq: int | None = None

    def fire(self, by: str) -> None:
        """Mark the request cancelled (superseded by request `by`)."""
        self.cancel.set()
        if self.superseded is not None and not self.superseded.done():
            self.superseded.set_result(by)


def inflight_key(client_id: str, path: str) -> str:
    """The key requests supersede each other by (one client's one file)."""
    return f"{client_id}\x1f{path}"


class InflightRegistry:
    """At most one running request per (client id, file path); registering a new one cancels the old."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._running: dict[str, Inflight] = {}
        #: The highest sequence number announced per key (by any process), most recent keys last.
        self._newest: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self.max_keys = max_keys
        self.cancelled = 0

    def start(self, client_id: str, path: str, request_id: str) -> Inflight:
        """Register a request; the previous request of the same client and file is cancelled."""
        loop = asyncio.get_running_loop()
        entry = Inflight(request_id, superseded=loop.create_future())
        key = inflight_key(client_id, path)
        previous = self._running.get(key)
        self._running[key] = entry
        if previous is not None:
            previous.fire(request_id)
            self.cancelled += 1
        return entry

    def numbered(self, client_id: str, path: str, entry: Inflight, seq: int) -> None:
        """The shared state numbered `entry`: cancel it at once if a later request was already announced."""
        entry.seq = seq
        newest = self._newest.get(inflight_key(client_id, path))
        if newest is not None and newest[0] > seq and not entry.cancel.is_set():
            entry.fire(newest[1])
            self.cancelled += 1

    def announced(self, key: str, seq: int, request_id: str) -> None:
        """Request `request_id` numbered `seq` started somewhere: cancel an earlier one running here."""
        newest = self._newest.get(key)
        if newest is None or seq > newest[0]:
            self._newest[key] = (seq, request_id)
            self._newest.move_to_end(key)
            while len(self._newest) > self.max_keys:
                self._newest.popitem(last=False)
        entry = self._running.get(key)
        if entry is not None and entry.seq is not None and entry.seq < seq and not entry.cancel.is_set():
            entry.fire(request_id)
            self.cancelled += 1

    def finish(self, client_id: str, path: str, entry: Inflight) -> None:
        """Forget a finished request (only if it is still the current one for its key)."""
        key = inflight_key(client_id, path)
        if self._running.get(key) is entry:
            del self._running[key]

    def __len__(self) -> int:
        return len(self._running)
