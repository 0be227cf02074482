"""Glue between one server process and the shared state: supersession across processes, the
remembered predictions of the kept-rate join, config reloads that reach every worker, rate limits."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nextedit.serve.cancel import Inflight, InflightRegistry, inflight_key
from nextedit.serve.config import LimitsConfig
from nextedit.serve.shared import SharedState

log = logging.getLogger("nextedit.serve")

#: Rate-limit window (seconds): limits are per minute, counted in fixed windows.
WINDOW_S = 60.0


class RateLimited(Exception):
    """A request over a configured limit; `retry_after_s` until the window ends."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def file_version(path: Path | None) -> str:
    """The config file's version: the SHA-256 of its bytes ("" without a file)."""
    if path is None:
        return ""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


class Coordinator:
    """One process's view of the cross-process state (see nextedit.serve.shared)."""

    def __init__(self, shared: SharedState, registry: InflightRegistry, *, config_path: Path | None = None,
                 reload: Callable[[], Any] | None = None) -> None:
        self.shared, self.registry = shared, registry
        self.config_path, self._reload = config_path, reload
        self.version = file_version(config_path)
        self.remote_reloads = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen for other processes' messages (on the running loop)."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.shared.start, self._message)

    async def close(self) -> None:
        """Stop listening."""
        await asyncio.to_thread(self.shared.close)

    def _message(self, kind: str, key: str, seq: int, value: str) -> None:  # on the listener thread
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_loop, kind, key, seq, value)

    def _on_loop(self, kind: str, key: str, seq: int, value: str) -> None:
        if kind == "cancel":
            self.registry.announced(key, seq, value)
        elif kind == "config" and value and value != self.version and self._reload is not None:
            self._spawn(self._remote_reload(value))

    async def _remote_reload(self, version: str) -> None:
        try:
            await asyncio.to_thread(self._reload)
        except Exception as exc:  # noqa: BLE001 - the old config stays live, as for a refused reload
            log.warning("reload announced by another worker failed here, old config kept: %s", exc)
            return
        self.version = file_version(self.config_path) or version
        self.remote_reloads += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- supersession ------------------------------------------------------------------------
    def start_request(self, client_id: str, path: str, request_id: str) -> Inflight:
        """Register a request here and announce it to every process (in the background)."""
        entry = self.registry.start(client_id, path, request_id)
        if self.shared.shared:
            self.shared.busy.set()
            self._spawn(self._announce(client_id, path, entry))
        return entry

    async def _announce(self, client_id: str, path: str, entry: Inflight) -> None:
        try:
            seq = await asyncio.to_thread(self.shared.announce, inflight_key(client_id, path), entry.request_id)
        except Exception as exc:  # noqa: BLE001 - the request still runs; only remote supersession is lost
            log.warning("shared state: announcing a request failed: %s", exc)
            return
        self.registry.numbered(client_id, path, entry, seq)

    def finish_request(self, client_id: str, path: str, entry: Inflight) -> None:
        """Forget a finished request."""
        self.registry.finish(client_id, path, entry)
        if not len(self.registry):
            self.shared.busy.clear()

    # -- kept-rate join ----------------------------------------------------------------------
    async def remember(self, request_id: str, info: dict[str, Any], ttl_s: float) -> None:
        """Keep a prediction's join data where every process finds it (no-op in memory-only mode)."""
        if self.shared.shared:
            try:
                await asyncio.to_thread(self.shared.remember, request_id, info, ttl_s)
            except Exception as exc:  # noqa: BLE001 - the answer still goes out; the join falls back to the store
                log.warning("shared state: remembering %s failed: %s", request_id[:12], exc)

    async def recall(self, request_id: str) -> dict[str, Any] | None:
        """What another process remembered about a request, or None."""
        if not self.shared.shared:
            return None
        try:
            return await asyncio.to_thread(self.shared.recall, request_id)
        except Exception as exc:  # noqa: BLE001 - the caller falls back to the store
            log.warning("shared state: recall failed: %s", exc)
            return None

    # -- config reloads ----------------------------------------------------------------------
    async def publish_config(self) -> None:
        """This process reloaded its config: every other worker and replica reloads too."""
        self.version = file_version(self.config_path)
        if self.shared.shared and self.version:
            await asyncio.to_thread(self.shared.publish_config, self.version)

    # -- rate limits -------------------------------------------------------------------------
    async def admit(self, limits: LimitsConfig, api_key: str | None, user_id: str | None) -> None:
        """Count the request against the configured limits; RateLimited when one is exceeded."""
        checks = []
        if limits.requests_per_key_per_minute and api_key:
            digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]
            checks.append(("key", digest, limits.requests_per_key_per_minute, "API key"))
        if limits.predict_per_user_per_minute and user_id:
            checks.append(("user", user_id, limits.predict_per_user_per_minute, "user"))
        if not checks:
            return
        now = time.time()
        window = int(now // WINDOW_S)
        retry = (window + 1) * WINDOW_S - now
        for scope, ident, limit, label in checks:
            try:
                n = await asyncio.to_thread(self.shared.hit, f"{scope}\x1f{ident}\x1f{window}", 2 * WINDOW_S)
            except Exception as exc:  # noqa: BLE001 - limits fail open: an outage of the shared state is no 500
                log.warning("shared state: rate-limit count failed, request admitted: %s", exc)
                return
            if n > limit:
                raise RateLimited(f"rate limit: more than {limit} requests per minute for this {label}; "
                                  f"retry in {retry:.0f} s", retry)
