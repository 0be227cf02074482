"""Requests, completions and errors shared by every LLM provider."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nextedit.record import Usage

__all__ = ["BatchQueued", "BudgetExceeded", "ChatRequest", "Completion", "LLMError", "Usage"]


class ChatRequest(BaseModel):
    """One chat request. `system` is the static instruction prefix (prompt-cached where supported);
    `metadata` travels with the request but is never sent nor part of the cache key."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    system: str | None = None
    messages: list[dict[str, str]]
    max_tokens: int = Field(4096, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    n: int = Field(1, ge=1, le=128)
    seed: int | None = None
    stop: list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _check_messages(cls, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        if not messages:
            raise ValueError("at least one message is needed")
        for i, m in enumerate(messages):
            if set(m) != {"role", "content"}:
                raise ValueError(f"messages[{i}]: needs exactly the keys role and content")
            if m["role"] not in ("user", "assistant"):
                raise ValueError(f"messages[{i}].role: {m['role']!r} is not 'user' or 'assistant' "
                                 "(put instructions in `system`)")
        return messages


class Completion(BaseModel):
    """The n sample texts of one request with what they cost."""

    texts: list[str]
    usage: Usage = Field(default_factory=Usage)
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    latency_ms: float = 0.0
    model: str = ""
    finish_reasons: list[str | None] = Field(default_factory=list)
    from_cache: bool = False
    via: Literal["sync", "batch"] = "sync"


class LLMError(Exception):
    """A request that failed: `status` is the HTTP status when there was one; `retryable` says
    whether trying again may help; `retry_after` is the server's Retry-After in seconds."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class BudgetExceeded(LLMError):
    """--max-cost-usd reached: no further paid request is made."""


class BatchQueued(LLMError):
    """Batch mode: the request is not cached yet; it was queued for the next batch submission."""
