"""What every provider adapter implements: one call, and the three steps of a Batch API job."""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass, field
from typing import Any

from nextedit.llm.types import ChatRequest, LLMError

__all__ = ["BatchState", "Provider", "ProviderResult", "parse_retry_after"]


@dataclass
class ProviderResult:
    """The texts and token counts one provider call returned."""

    texts: list[str]
    finish_reasons: list[str | None]
    input_tokens: int  # every prompt token, cached ones included
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    model: str = ""


@dataclass
class BatchState:
    """A provider batch's status: "in_progress", "ended", "failed", "expired" or "canceled"."""

    status: str
    counts: dict[str, int] = field(default_factory=dict)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: fall back to the client's own backoff
    return max(parsed.timestamp() - time.time(), 0.0)


def status_error(status: int, message: str, headers: Any = None) -> LLMError:
    """An LLMError for an HTTP status: 408, 409, 429 and 5xx are retryable."""
    retryable = status in (408, 409, 429) or status >= 500
    return LLMError(f"HTTP {status}: {message}", status=status, retryable=retryable,
                    retry_after=parse_retry_after(headers))


class Provider:
    """One provider endpoint. `cache_name` identifies it in cache keys; SDK clients are made per
    event loop (an async HTTP pool belongs to one loop)."""

    name = "provider"
    supports_n = False

    def __init__(self, *, api_key: str | None, base_url: str | None, timeout_s: float,
                 prompt_cache: bool = True):
        self.api_key = api_key
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.prompt_cache = prompt_cache
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._retired: list[Any] = []  # clients of closed loops: kept so their __del__ never runs on a dead loop

    @property
    def cache_name(self) -> str:
        """The provider part of a cache key."""
        return self.name

    def sdk(self) -> Any:
        """The SDK client for the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [lp for lp in self._clients if lp.is_closed()]:
                self._retired.append(self._clients.pop(old))
            client = self._clients[loop] = self._make_sdk()
        return client

    async def aclose(self) -> None:
        """Close the running loop's SDK client (its connection pool)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _make_sdk(self) -> Any:
        raise NotImplementedError

    async def call(self, req: ChatRequest, model: str) -> ProviderResult:
        """One request; raises LLMError (retryable or not) on any failure."""
        raise NotImplementedError

    async def submit_batch(self, items: list[tuple[str, ChatRequest]], model: str) -> str:
        """Submit (custom_id, request) pairs as one provider batch; returns the provider's batch id."""
        raise NotImplementedError

    async def batch_state(self, batch_id: str) -> BatchState:
        """Where the provider's batch stands."""
        raise NotImplementedError

    async def batch_results(self, batch_id: str) -> list[tuple[str, ProviderResult | LLMError]]:
        """Each finished item: (custom_id, result or the error it ended with)."""
        raise NotImplementedError
