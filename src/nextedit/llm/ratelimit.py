"""Per-provider request and token rate limits (token buckets) and a shared Retry-After pause."""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter"]


class _Bucket:
    """A token bucket holding up to `per_minute` units, refilled continuously."""

    def __init__(self, per_minute: float):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` (clamped to the capacity) is available; 0 means take it now."""
        self._refill(now)
        amount = min(amount, self.capacity)
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        """Remove amount (the level may go negative when actual usage exceeded the estimate)."""
        self.level -= amount


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits plus a pause every caller honours after
    a 429 with Retry-After. Not tied to one event loop (it only uses asyncio.sleep)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = _Bucket(rpm) if rpm else None
        self.tokens = _Bucket(tpm) if tpm else None
        self.paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Nobody starts a request for `seconds` from now (a provider's Retry-After)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def try_acquire(self, tokens: float = 0.0) -> float:
        """Account for one request of about `tokens` tokens and return 0 when it may start now; else the
        seconds to wait before asking again (nothing is taken)."""
        now = time.monotonic()
        wait = max(self.paused_until - now, 0.0)
        if self.requests is not None:
            wait = max(wait, self.requests.wait_for(1, now))
        if self.tokens is not None and tokens:
            wait = max(wait, self.tokens.wait_for(tokens, now))
        if wait <= 0:
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None and tokens:
                self.tokens.take(tokens)
        return wait

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait until one request of about `tokens` tokens may start, then account for it."""
        while (wait := self.try_acquire(tokens)) > 0:
            await asyncio.sleep(min(wait, 5.0))

    def settle(self, estimated: float, actual: float) -> None:
        """Correct the token bucket once the real usage is known."""
        if self.tokens is not None:
            self.tokens.take(actual - estimated)
