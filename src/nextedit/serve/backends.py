"""Backends: one per arm, wrapping any nextedit predictor (baseline, in-process model, HTTP upstream)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nextedit.predictors import Predictor, get_predictor
from nextedit.record import Example, Location
from nextedit.serve.config import ArmConfig

#: Predictors cheap enough to call on the event loop (no thread hop).
INLINE_SCHEMES = frozenset({"noop", "propagate"})


class BackendCancelled(Exception):
    """The request was superseded or ran out of time before (or while) the backend ran."""


class CompletionUnsupported(Exception):
    """The arm's backend cannot complete a raw prompt (e.g. the propagate baseline)."""


@dataclass
class BackendResult:
    """What one backend call produced: the patch (or the error), cursor, tokens and time spent."""

    patch: str | None
    cursor: int | None = None
    raw: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    queue_ms: float = 0.0
    backend_ms: float = 0.0
    #: The upstream server's round trip (HTTP backends; None for in-process ones), part of backend_ms.
    upstream_ms: float | None = None
    #: Where the predictor expects the next edit, best first (a jump answer, the jump heuristics).
    locations: list[Location] = field(default_factory=list)


@dataclass
class CompletionResult:
    """A raw-prompt completion (for the OpenAI-compatible endpoints)."""

    text: str
    finish_reason: str = "stop"
    input_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Backend:
    """Runs one arm's predictor for a request, honouring cancellation.

    Sync predictors run on the arm's own thread pool (`workers` threads); a request cancelled
    while it waits for a thread never runs, and a predictor whose `predict` takes a `cancel`
    keyword (a `threading.Event`) is told to stop generating. Async predictors are awaited and
    cancelled as tasks (an HTTP upstream sees the connection close, which stops its generation).
    """

    def __init__(self, arm: ArmConfig, *, workers: int = 4) -> None:
        options = dict(arm.options)
        if arm.format:
            options.setdefault("format", arm.format)
        self.arm_name = arm.name
        self.spec = (arm.backend, arm.format, repr(sorted(options.items())))
        self.predictor: Predictor = get_predictor(arm.backend, **options)
        self.model_version = arm.model_version or f"{arm.backend}@v{self.predictor.version}"
        self.delay_s = arm.delay_ms / 1000.0
        # In-process models (local:PATH) run on the arm's threads with cancellable generation.
        self._local = self.predictor.scheme == "local" and callable(getattr(self.predictor, "predict_sync", None))
        if self._local:
            from nextedit.serve.local_model import make_cancellable, warm_up

            make_cancellable(self.predictor)  # loads the model now, not on the first request
            warm_up(self.predictor)
        self._async = inspect.iscoroutinefunction(self.predictor.predict) and not self._local
        #: Sub-millisecond baselines run on the event loop: a thread hop would cost more than the call.
        self.inline = self.predictor.scheme in INLINE_SCHEMES and not self.delay_s
        self._takes_cancel = _accepts(self.predictor.predict, "cancel")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"arm-{arm.name}")

    def close(self) -> None:
        """Stop the arm's threads (running calls finish in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        closer = getattr(self.predictor, "close", None)
        if callable(closer):
            try:
                result = closer()
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception as exc:  # noqa: BLE001 - closing must never fail a reload
                logging.getLogger("nextedit.serve").warning("closing arm %s failed: %s", self.arm_name, exc)

    def _call_sync(self, example: Example, cancel: threading.Event, queued_at: float) -> tuple[Any, float]:
        started = time.perf_counter()
        if cancel.is_set():
            raise BackendCancelled("cancelled before the backend started")
        if self._local:
            from nextedit.serve.local_model import cancel_scope

            with cancel_scope(cancel):
                return self.predictor.predict_sync(example, samples=1), started - queued_at
        kwargs: dict[str, Any] = {"samples": 1}
        if self._takes_cancel:
            kwargs["cancel"] = cancel
        return self.predictor.predict(example, **kwargs), started - queued_at

    async def predict(self, example: Example, cancel: threading.Event) -> BackendResult:
        """One prediction for the example; raises BackendCancelled when `cancel` is set first."""
        queued = time.perf_counter()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if cancel.is_set():
            raise BackendCancelled("cancelled before the backend started")
        if self.inline:
            started = time.perf_counter()
            predictions, queue_s = self.predictor.predict(example, samples=1), started - queued
        elif self._async:
            kwargs: dict[str, Any] = {"samples": 1}
            if self._takes_cancel:
                kwargs["cancel"] = cancel
            started = time.perf_counter()
            predictions = await self.predictor.predict(example, **kwargs)
            queue_s = started - queued
        else:
            loop = asyncio.get_running_loop()
            predictions, queue_s = await loop.run_in_executor(self._pool, self._call_sync, example, cancel, queued)
        done = time.perf_counter()
        if cancel.is_set():
            raise BackendCancelled("cancelled while the backend ran")
        predictions = list(predictions)
        if not predictions:
            return BackendResult(patch="", queue_ms=queue_s * 1000, backend_ms=(done - queued - queue_s) * 1000)
        first = predictions[0]
        usage = first.usage
        return BackendResult(
            patch=first.patch,
            cursor=first.cursor,
            raw=first.raw,
            error=first.error,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            queue_ms=queue_s * 1000,
            backend_ms=(done - queued - queue_s) * 1000,
            upstream_ms=first.latency_ms if getattr(self.predictor, "upstream", False) else None,
            locations=list(first.locations),
        )

    async def complete(self, prompt: str | list[dict[str, Any]], *, max_tokens: int, stop: list[str] | None,
                       temperature: float, cancel: threading.Event) -> CompletionResult:
        """Complete a raw prompt (str) or chat messages with the arm's model.

        Uses the predictor's `complete(prompt, max_tokens=, stop=, temperature=)` (in-process
        models and HTTP upstreams provide one); baselines have none and raise CompletionUnsupported.
        """
        if self._local:
            from nextedit.serve.local_model import local_complete

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, lambda: local_complete(
                self.predictor, prompt, max_tokens=max_tokens, stop=stop, temperature=temperature, cancel=cancel))
        fn = getattr(self.predictor, "complete", None)
        if not callable(fn):
            raise CompletionUnsupported(f"arm {self.arm_name!r} (backend {self.spec[0]!r}) cannot complete raw prompts")
        kwargs: dict[str, Any] = {"max_tokens": max_tokens, "stop": stop, "temperature": temperature}
        if _accepts(fn, "cancel"):
            kwargs["cancel"] = cancel
        if inspect.iscoroutinefunction(fn):
            out = await fn(prompt, **kwargs)
        else:
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(self._pool, lambda: fn(prompt, **kwargs))
        if isinstance(out, CompletionResult):
            return out
        if isinstance(out, str):
            return CompletionResult(text=out)
        if isinstance(out, dict):
            return CompletionResult(text=str(out.get("text", "")), finish_reason=str(out.get("finish_reason", "stop")),
                                    input_tokens=int(out.get("input_tokens", 0) or 0),
                                    output_tokens=int(out.get("output_tokens", 0) or 0))
        text = getattr(out, "text", None)
        if text is None and hasattr(out, "texts"):
            text = out.texts[0]
        usage = getattr(out, "usage", None)
        return CompletionResult(text=str(text or ""),
                                input_tokens=getattr(usage, "input_tokens", 0) or 0,
                                output_tokens=getattr(usage, "output_tokens", 0) or 0)


class BackendPool:
    """The live backends by arm name; a reload keeps backends whose spec did not change."""

    def __init__(self) -> None:
        self.by_arm: dict[str, Backend] = {}

    def update(self, arms: list[ArmConfig], *, workers: int = 4) -> None:
        """Build backends for new or changed arms, reuse unchanged ones, close removed ones.

        Builds everything first, so a reload that fails (bad backend) leaves the old pool intact.
        """
        fresh: dict[str, Backend] = {}
        for arm in arms:
            old = self.by_arm.get(arm.name)
            options = dict(arm.options)
            if arm.format:
                options.setdefault("format", arm.format)
            spec = (arm.backend, arm.format, repr(sorted(options.items())))
            if old is not None and old.spec == spec:
                old.model_version = arm.model_version or f"{arm.backend}@v{old.predictor.version}"
                old.delay_s = arm.delay_ms / 1000.0
                old.inline = old.predictor.scheme in INLINE_SCHEMES and not old.delay_s
                fresh[arm.name] = old
            else:
                fresh[arm.name] = Backend(arm, workers=workers)
        for name, backend in self.by_arm.items():
            if fresh.get(name) is not backend:
                backend.close()
        self.by_arm = fresh

    def close(self) -> None:
        """Close every backend."""
        for backend in self.by_arm.values():
            backend.close()
        self.by_arm = {}
