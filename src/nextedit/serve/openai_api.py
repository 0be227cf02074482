"""OpenAI-compatible /v1/completions, /v1/chat/completions and /v1/models for the served student.

Editors with an OpenAI-compatible edit-prediction provider format the prompt themselves (e.g. in
the student's format) and parse the output; this is the raw-completion path. `model` names an
arm (or its model_version); otherwise the user (the `user` field) is assigned an arm like predict.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from nextedit.predictors import parse_provider
from nextedit.serve.arms import assign_arm
from nextedit.serve.backends import Backend, CompletionResult, CompletionUnsupported
from nextedit.serve.config import ArmConfig

if TYPE_CHECKING:
    from nextedit.serve.app import ServerState


class CompletionRequest(BaseModel):
    """The OpenAI /v1/completions body (the fields nextedit uses; others are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    user: str | None = None
    stream: bool = False


class ChatRequest(BaseModel):
    """The OpenAI /v1/chat/completions body (the fields nextedit uses; others are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    user: str | None = None
    stream: bool = False


def _stops(stop: str | list[str] | None) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def _pick_arm(state: ServerState, model: str | None, user: str | None) -> ArmConfig:
    from nextedit.serve.app import HTTPProblem

    config = state.config
    if model:
        for arm in config.arms:
            if model in (arm.name, state.backends.by_arm[arm.name].model_version) and not arm.shadow:
                return arm
        if model not in ("default", "nextedit"):
            live = ", ".join(a.name for a in config.arms if not a.shadow)
            raise HTTPProblem(404, f"model {model!r} is not served here; use one of: {live} (or omit model)")
    return assign_arm(config, user or "anonymous")


async def _upstream(backend: Backend, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Forward a request to the arm's OpenAI-compatible upstream (vLLM, llama.cpp server, SGLang)."""
    _, argument = parse_provider(backend.spec[0])
    base, _, model = (argument or "").partition("#")
    model = model or backend.predictor.__dict__.get("model") or body.get("model") or "default"
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        resp = await client.post(base.rstrip("/") + path, json={**body, "model": model, "stream": False})
        resp.raise_for_status()
        return resp.json()


async def _complete(state: ServerState, arm: ArmConfig, prompt: str | list[dict[str, Any]], *, max_tokens: int,
                    stop: list[str] | None, temperature: float, path: str, raw_body: dict[str, Any]) -> CompletionResult:
    from nextedit.serve.app import HTTPProblem

    backend = state.backends.by_arm[arm.name]
    cancel = threading.Event()
    try:
        return await backend.complete(prompt, max_tokens=max_tokens, stop=stop, temperature=temperature, cancel=cancel)
    except CompletionUnsupported as exc:
        if backend.spec[0].startswith("openai-compatible:"):
            try:
                data = await _upstream(backend, path, raw_body, timeout_s=max(30.0, state.config.deadline_ms / 100))
            except httpx.HTTPError as err:
                raise HTTPProblem(502, f"upstream of arm {arm.name!r} failed: {err}") from None
            choice = (data.get("choices") or [{}])[0]
            text = choice.get("text")
            if text is None:
                text = (choice.get("message") or {}).get("content") or ""
            usage = data.get("usage") or {}
            return CompletionResult(text=text, finish_reason=choice.get("finish_reason") or "stop",
                                    input_tokens=int(usage.get("prompt_tokens") or 0),
                                    output_tokens=int(usage.get("completion_tokens") or 0))
        raise HTTPProblem(400, f"{exc}; point the editor at an arm with a model backend (local: or openai-compatible:)") from None
    finally:
        cancel.set()


def _headers(state: ServerState, arm: ArmConfig, request_id: str) -> dict[str, str]:
    return {"x-request-id": request_id, "x-nextedit-arm": arm.name,
            "x-nextedit-model-version": state.backends.by_arm[arm.name].model_version}


def add_openai_routes(app: FastAPI, state: ServerState) -> None:
    """Register the OpenAI-compatible routes on the app."""
    from nextedit.serve.app import (
        HTTPProblem,
        _json,
        admit,
        parse_body,
        require_api_key,
    )

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        require_api_key(state, request)
        await admit(state, request)
        data = [{"id": a.name, "object": "model", "owned_by": "nextedit",
                 "model_version": state.backends.by_arm[a.name].model_version}
                for a in state.config.arms if not a.shadow]
        return _json({"object": "list", "data": data})

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        require_api_key(state, request)
        req = parse_body(CompletionRequest, await request.body())
        await admit(state, request, req.user)
        if req.stream:
            raise HTTPProblem(400, "field stream: streaming is not supported; send stream=false")
        arm = _pick_arm(state, req.model, req.user)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        t0 = time.perf_counter()
        results = []
        for prompt in prompts:
            raw = {"prompt": prompt, "max_tokens": req.max_tokens, "temperature": req.temperature,
                   "stop": _stops(req.stop)}
            results.append(await _complete(state, arm, prompt, max_tokens=req.max_tokens, stop=_stops(req.stop),
                                           temperature=req.temperature, path="/completions", raw_body=raw))
        request_id = state.ids.issue(arm.name, prefix="cmpl-")  # signed: events may name it
        _count(state, arm, results, t0)
        body = {
            "id": request_id, "object": "text_completion", "created": int(time.time()),
            "model": state.backends.by_arm[arm.name].model_version,
            "choices": [{"index": i, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None}
                        for i, r in enumerate(results)],
            "usage": _usage(results),
        }
        resp = _json(body)
        resp.headers.update(_headers(state, arm, request_id))
        return resp

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        require_api_key(state, request)
        req = parse_body(ChatRequest, await request.body())
        await admit(state, request, req.user)
        if req.stream:
            raise HTTPProblem(400, "field stream: streaming is not supported; send stream=false")
        arm = _pick_arm(state, req.model, req.user)
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        t0 = time.perf_counter()
        raw = {"messages": req.messages, "max_tokens": max_tokens, "temperature": req.temperature,
               "stop": _stops(req.stop)}
        result = await _complete(state, arm, req.messages, max_tokens=max_tokens, stop=_stops(req.stop),
                                 temperature=req.temperature, path="/chat/completions", raw_body=raw)
        request_id = state.ids.issue(arm.name, prefix="chatcmpl-")
        _count(state, arm, [result], t0)
        body = {
            "id": request_id, "object": "chat.completion", "created": int(time.time()),
            "model": state.backends.by_arm[arm.name].model_version,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": result.finish_reason}],
            "usage": _usage([result]),
        }
        resp = _json(body)
        resp.headers.update(_headers(state, arm, request_id))
        return resp


def _usage(results: list[CompletionResult]) -> dict[str, int]:
    p = sum(r.input_tokens for r in results)
    c = sum(r.output_tokens for r in results)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _count(state: ServerState, arm: ArmConfig, results: list[CompletionResult], t0: float) -> None:
    m = state.metrics
    m.tokens.labels(arm.name, "input").inc(sum(r.input_tokens for r in results))
    m.tokens.labels(arm.name, "output").inc(sum(r.output_tokens for r in results))
    m.requests.labels(arm.name, "completion").inc()
