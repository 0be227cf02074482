"""Anthropic Messages API through the official `anthropic` SDK (its own retries off), with prompt
caching of the system prefix and Message Batches."""

from __future__ import annotations

import json
from typing import Any

import anthropic

from nextedit.llm.provider_base import (
    BatchState,
    Provider,
    ProviderResult,
    status_error,
)
from nextedit.llm.types import ChatRequest, LLMError

__all__ = ["AnthropicProvider"]


def _map_error(err: Exception) -> LLMError:
    """An SDK / transport / parse exception as an LLMError."""
    if isinstance(err, LLMError):
        return err
    if isinstance(err, anthropic.APIStatusError):
        return status_error(err.status_code, err.message, err.response.headers)
    if isinstance(err, anthropic.APITimeoutError):
        return LLMError("request timed out", retryable=True)
    if isinstance(err, anthropic.APIConnectionError):
        return LLMError(f"connection failed: {err}", retryable=True)
    if isinstance(err, (anthropic.APIResponseValidationError, json.JSONDecodeError)):
        return LLMError(f"malformed response: {str(err)[:200]}", retryable=True)
    return LLMError(f"{type(err).__name__}: {str(err)[:200]}", retryable=False)


class AnthropicProvider(Provider):
    """`anthropic:MODEL`: one sample per request (n samples = n parallel requests)."""

    name = "anthropic"
    supports_n = False

    def _make_sdk(self) -> anthropic.AsyncAnthropic:
        if not self.api_key:
            raise LLMError("anthropic: no API key (set ANTHROPIC_API_KEY or pass api_key)")
        return anthropic.AsyncAnthropic(api_key=self.api_key, base_url=self.base_url, max_retries=0,
                                        timeout=self.timeout_s)

    def params(self, req: ChatRequest, model: str) -> dict[str, Any]:
        """The Messages API body for one sample. No temperature and no seed: the current SDK and API
        take neither, so samples use the model's own sampling (both still key the cache)."""
        body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens, "messages": req.messages}
        if req.system:
            block: dict[str, Any] = {"type": "text", "text": req.system}
            if self.prompt_cache:
                block["cache_control"] = {"type": "ephemeral"}
            body["system"] = [block]
        if req.stop:
            body["stop_sequences"] = req.stop
        return body

    @staticmethod
    def _result(message: Any) -> ProviderResult:
        if not isinstance(message, anthropic.types.Message):
            raise LLMError(f"malformed response: not a message: {str(message)[:120]!r}", retryable=True)
        text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
        usage = message.usage
        read = usage.cache_read_input_tokens or 0
        write = usage.cache_creation_input_tokens or 0
        return ProviderResult(texts=[text], finish_reasons=[message.stop_reason],
                              input_tokens=usage.input_tokens + read + write, output_tokens=usage.output_tokens,
                              cached_input_tokens=read, cache_write_tokens=write, model=message.model)

    async def call(self, req: ChatRequest, model: str) -> ProviderResult:
        """One sample."""
        client = self.sdk()
        try:
            message = await client.messages.create(**self.params(req, model))
        except LLMError:
            raise
        except Exception as err:
            raise _map_error(err) from err
        return self._result(message)

    async def submit_batch(self, items: list[tuple[str, ChatRequest]], model: str) -> str:
        """One Message Batch with one item per (custom_id, request)."""
        client = self.sdk()
        requests = [{"custom_id": cid, "params": self.params(req, req.model or model)} for cid, req in items]
        try:
            batch = await client.messages.batches.create(requests=requests)
        except Exception as err:
            raise _map_error(err) from err
        return batch.id

    async def batch_state(self, batch_id: str) -> BatchState:
        """in_progress / canceling -> "in_progress"; ended -> "ended"."""
        try:
            batch = await self.sdk().messages.batches.retrieve(batch_id)
        except Exception as err:
            raise _map_error(err) from err
        status = "ended" if batch.processing_status == "ended" else "in_progress"
        return BatchState(status, dict(batch.request_counts.model_dump()))

    async def batch_results(self, batch_id: str) -> list[tuple[str, ProviderResult | LLMError]]:
        """Succeeded items as results; errored, canceled and expired ones as errors."""
        out: list[tuple[str, ProviderResult | LLMError]] = []
        try:
            stream = await self.sdk().messages.batches.results(batch_id)
            async for row in stream:
                result = row.result
                if result.type == "succeeded":
                    out.append((row.custom_id, self._result(result.message)))
                elif result.type == "errored":
                    detail = getattr(result.error, "error", None)
                    message = getattr(detail, "message", None) or str(result.error)
                    out.append((row.custom_id, LLMError(f"batch item errored: {message}")))
                else:
                    out.append((row.custom_id, LLMError(f"batch item {result.type}", retryable=True)))
        except LLMError:
            raise
        except Exception as err:
            raise _map_error(err) from err
        return out
