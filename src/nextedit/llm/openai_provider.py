"""OpenAI Chat Completions through the official `openai` SDK (its own retries off): api.openai.com or
any OpenAI-compatible server by base URL (vLLM, llama.cpp, Ollama, nextedit serve), plus OpenAI Batch."""

from __future__ import annotations

import io
import json
from typing import Any

import openai
import orjson

from nextedit.llm.provider_base import (
    BatchState,
    Provider,
    ProviderResult,
    status_error,
)
from nextedit.llm.types import ChatRequest, LLMError

__all__ = ["OpenAICompatibleProvider", "OpenAIProvider"]


def _map_error(err: Exception) -> LLMError:
    """An SDK / transport / parse exception as an LLMError."""
    if isinstance(err, LLMError):
        return err
    if isinstance(err, openai.APIStatusError):
        return status_error(err.status_code, err.message, err.response.headers)
    if isinstance(err, openai.APITimeoutError):
        return LLMError("request timed out", retryable=True)
    if isinstance(err, openai.APIConnectionError):
        return LLMError(f"connection failed: {err}", retryable=True)
    if isinstance(err, (openai.APIResponseValidationError, json.JSONDecodeError)):
        return LLMError(f"malformed response: {str(err)[:200]}", retryable=True)
    return LLMError(f"{type(err).__name__}: {str(err)[:200]}", retryable=False)


def _result(completion: Any) -> ProviderResult:
    """A ChatCompletion (object or plain dict from a batch file) as a ProviderResult."""
    if isinstance(completion, dict):
        try:
            completion = openai.types.chat.ChatCompletion.model_validate(completion)
        except Exception as err:
            raise LLMError(f"malformed response: {str(err)[:200]}", retryable=True) from err
    if not isinstance(completion, openai.types.chat.ChatCompletion) or not completion.choices:
        raise LLMError(f"malformed response: not a chat completion: {str(completion)[:120]!r}", retryable=True)
    choices = sorted(completion.choices, key=lambda c: c.index)
    usage = completion.usage
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return ProviderResult(
        texts=[c.message.content or "" for c in choices], finish_reasons=[c.finish_reason for c in choices],
        input_tokens=usage.prompt_tokens if usage else 0, output_tokens=usage.completion_tokens if usage else 0,
        cached_input_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
        model=completion.model or "")


class OpenAIProvider(Provider):
    """`openai:MODEL`: n samples in one request; OpenAI caches long prompt prefixes by itself."""

    name = "openai"
    supports_n = True
    token_field = "max_completion_tokens"
    env_key = "OPENAI_API_KEY"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._batch_files: dict[str, tuple[str | None, str | None]] = {}  # batch id -> (output, error) file

    def _make_sdk(self) -> openai.AsyncOpenAI:
        if not self.api_key:
            raise LLMError(f"{self.name}: no API key (set {self.env_key} or pass api_key)")
        return openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0,
                                  timeout=self.timeout_s)

    def params(self, req: ChatRequest, model: str) -> dict[str, Any]:
        """The chat.completions body (system prefix first so automatic prefix caching applies)."""
        messages = ([{"role": "system", "content": req.system}] if req.system else []) + req.messages
        body: dict[str, Any] = {"model": model, "messages": messages, self.token_field: req.max_tokens,
                                "temperature": req.temperature}
        if req.n > 1:
            body["n"] = req.n
        if req.seed is not None:
            body["seed"] = req.seed
        if req.stop:
            body["stop"] = req.stop
        return body

    async def call(self, req: ChatRequest, model: str) -> ProviderResult:
        """All n samples in one request."""
        client = self.sdk()
        try:
            completion = await client.chat.completions.create(**self.params(req, model))
        except LLMError:
            raise
        except Exception as err:
            raise _map_error(err) from err
        return _result(completion)

    async def submit_batch(self, items: list[tuple[str, ChatRequest]], model: str) -> str:
        """Upload a JSONL input file, then create the batch (24 h window)."""
        client = self.sdk()
        lines = b"".join(orjson.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                                       "body": self.params(req, req.model or model)}) + b"\n" for cid, req in items)
        try:
            uploaded = await client.files.create(file=("batch.jsonl", io.BytesIO(lines)), purpose="batch")
            batch = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                                completion_window="24h")
        except Exception as err:
            raise _map_error(err) from err
        return batch.id

    async def batch_state(self, batch_id: str) -> BatchState:
        """validating / in_progress / finalizing / cancelling -> "in_progress"; completed -> "ended"."""
        try:
            batch = await self.sdk().batches.retrieve(batch_id)
        except Exception as err:
            raise _map_error(err) from err
        status = {"completed": "ended", "failed": "failed", "expired": "expired",
                  "cancelled": "canceled"}.get(batch.status, "in_progress")
        counts = batch.request_counts.model_dump() if batch.request_counts else {}
        self._batch_files[batch_id] = (batch.output_file_id, batch.error_file_id)
        return BatchState(status, counts)

    async def batch_results(self, batch_id: str) -> list[tuple[str, ProviderResult | LLMError]]:
        """Rows of the output file (and the error file) as results or errors."""
        await self.batch_state(batch_id)
        output_id, error_id = self._batch_files[batch_id]
        out: list[tuple[str, ProviderResult | LLMError]] = []
        for file_id in (output_id, error_id):
            if not file_id:
                continue
            try:
                data = (await self.sdk().files.content(file_id)).content
            except Exception as err:
                raise _map_error(err) from err
            for line in data.splitlines():
                if not line.strip():
                    continue
                row = orjson.loads(line)
                response = row.get("response") or {}
                if row.get("error") or response.get("status_code") != 200:
                    detail = row.get("error") or (response.get("body") or {}).get("error") or {}
                    message = detail.get("message") if isinstance(detail, dict) else str(detail)
                    out.append((row["custom_id"], LLMError(f"batch item errored: {message}",
                                                           status=response.get("status_code"))))
                else:
                    try:
                        out.append((row["custom_id"], _result(response["body"])))
                    except LLMError as err:
                        out.append((row["custom_id"], err))
        return out


class OpenAICompatibleProvider(OpenAIProvider):
    """`openai-compatible:BASE_URL#MODEL`: vLLM, llama.cpp server, Ollama, nextedit serve."""

    name = "openai-compatible"
    token_field = "max_tokens"
    env_key = "NEXTEDIT_LLM_API_KEY"

    def _make_sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=self.api_key or "none", base_url=self.base_url, max_retries=0,
                                  timeout=self.timeout_s)

    @property
    def cache_name(self) -> str:
        """Different servers give different answers: the URL is part of the key."""
        return f"{self.name}:{(self.base_url or '').rstrip('/')}"
