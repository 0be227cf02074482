"""LLMClient: one async `complete(req)` over every provider — request cache, in-flight
de-duplication, concurrency and rate limits, bounded retries honouring Retry-After, cost accounting
with a hard budget, and batch-mode queueing."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextedit.llm import governor as _governor
from nextedit.llm.cache import RequestCache, cache_key, default_cache_path
from nextedit.llm.prices import PriceTable, load_prices
from nextedit.llm.provider_base import Provider, ProviderResult
from nextedit.llm.ratelimit import RateLimiter
from nextedit.llm.types import (
    BatchQueued,
    BudgetExceeded,
    ChatRequest,
    Completion,
    LLMError,
    Usage,
)

__all__ = ["KEY_ENV", "ClientOptions", "LLMClient", "get_client", "parse_spec", "preflight", "total_spent_usd"]

log = logging.getLogger("nextedit.llm")

_TOTAL_LOCK = threading.Lock()
_TOTAL_SPENT = [0.0]


def total_spent_usd() -> float:
    """Dollars spent on new (uncached) requests by every client in this process (for progress bars)."""
    with _TOTAL_LOCK:
        return _TOTAL_SPENT[0]


class ClientOptions(BaseModel):
    """Per-provider settings (all optional; embed in a stage Config to expose them)."""

    model_config = ConfigDict(extra="forbid")

    api_key: str | None = Field(None, repr=False)
    base_url: str | None = None
    concurrency: int = Field(16, ge=1)
    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: float | None = Field(None, gt=0, description="tokens per minute (input estimate + max_tokens)")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry waits about this long, doubling each time")
    max_backoff_s: float = Field(60.0, ge=0)
    max_retry_after_s: float = Field(600.0, ge=0, description="a longer Retry-After fails the request")
    prices: str | None = Field(None, description="TOML price table overriding the packaged defaults")
    cache: bool = True
    cache_path: str | None = None
    max_cost_usd: float | None = Field(None, ge=0)
    prompt_cache: bool = True
    batch_dir: str | None = Field(None, description="batch mode: queue misses, submit them as batch jobs here")


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """'anthropic:MODEL' | 'openai:MODEL' | 'openai-compatible:BASE_URL#MODEL' -> (provider, model, base_url)."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(f"model spec {spec!r}: expected anthropic:MODEL, openai:MODEL or "
                         "openai-compatible:BASE_URL#MODEL")
    if kind in ("anthropic", "openai"):
        return kind, rest, None
    if kind == "openai-compatible":
        url, hash_, model = rest.rpartition("#")
        if not hash_ or not url or not model:
            raise ValueError(f"model spec {spec!r}: expected openai-compatible:BASE_URL#MODEL")
        return kind, model, url
    raise ValueError(f"model spec {spec!r}: unknown provider {kind!r} (anthropic, openai, openai-compatible)")


def _need(sdk: str) -> None:
    """A one-line error naming the pip install when a provider SDK is missing."""
    import importlib.util

    if importlib.util.find_spec(sdk) is None:
        raise ValueError(f"the {sdk} provider needs the `{sdk}` package: pip install {sdk}")


def _make_provider(kind: str, base_url: str | None, opts: ClientOptions) -> Provider:
    _need("anthropic" if kind == "anthropic" else "openai")
    if kind == "anthropic":
        from nextedit.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider(api_key=opts.api_key or os.environ.get("ANTHROPIC_API_KEY"),
                                 base_url=opts.base_url or base_url, timeout_s=opts.timeout_s,
                                 prompt_cache=opts.prompt_cache)
    from nextedit.llm.openai_provider import OpenAICompatibleProvider, OpenAIProvider

    if kind == "openai":
        return OpenAIProvider(api_key=opts.api_key or os.environ.get("OPENAI_API_KEY"),
                              base_url=opts.base_url, timeout_s=opts.timeout_s, prompt_cache=opts.prompt_cache)
    return OpenAICompatibleProvider(api_key=opts.api_key or os.environ.get("NEXTEDIT_LLM_API_KEY"),
                                    base_url=opts.base_url or base_url, timeout_s=opts.timeout_s,
                                    prompt_cache=opts.prompt_cache)


#: The environment variable holding each provider's API key (openai-compatible servers may need none).
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
           "openai-compatible": "NEXTEDIT_LLM_API_KEY"}


def preflight(spec: str, **options: Any) -> None:
    """Raise ValueError (one line) when `spec` and its options cannot work: unknown provider, bad
    option, missing SDK, or no API key for a provider that needs one. Makes no request."""
    try:
        opts = ClientOptions(**options)
    except ValidationError as err:
        first = err.errors()[0]
        raise ValueError(f"llm option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    kind, _, _ = parse_spec(spec)
    _need("anthropic" if kind == "anthropic" else "openai")
    if kind != "openai-compatible" and not (opts.api_key or os.environ.get(KEY_ENV[kind])):
        raise ValueError(f"{spec}: no API key: set {KEY_ENV[kind]} (or client.api_key in the config)")


def get_client(spec: str, **options: Any) -> LLMClient:
    """A client for `spec` with ClientOptions given as keyword arguments (bad ones raise ValueError)."""
    try:
        opts = ClientOptions(**options)
    except ValidationError as err:
        first = err.errors()[0]
        raise ValueError(f"llm option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    kind, model, base_url = parse_spec(spec)
    return LLMClient(_make_provider(kind, base_url, opts), model, opts, spec=spec)


@dataclass
class ClientStats:
    """What a client did: calls made, retries, cache hits, failures, batch-queued requests."""

    http_calls: int = 0
    retries: int = 0
    cache_hits: int = 0
    completed: int = 0
    failed: int = 0
    queued: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class _LoopState:
    """asyncio objects bound to one event loop."""

    def __init__(self, concurrency: int):
        self.semaphore = asyncio.Semaphore(concurrency)
        self.inflight: dict[str, asyncio.Future[Completion]] = {}


def _current_task_cancelling() -> bool:
    """Whether the running task itself has been asked to cancel."""
    task = asyncio.current_task()
    return bool(task is not None and task.cancelling())


def _run_blocking(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _estimate_tokens(req: ChatRequest) -> int:
    chars = len(req.system or "") + sum(len(m["content"]) for m in req.messages)
    return chars // 4 + 1


class LLMClient:
    """See the module docstring. Make one with `get_client`."""

    def __init__(self, provider: Provider, model: str, options: ClientOptions, *, spec: str = ""):
        self.provider = provider
        self.model = model
        self.options = options
        self.spec = spec
        self.prices: PriceTable = load_prices(options.prices)
        self.cache: RequestCache | None = None
        if options.cache:
            self.cache = RequestCache(options.cache_path or default_cache_path())
        self.limiter = RateLimiter(options.rpm, options.tpm)
        self.stats = ClientStats()
        self.spent_usd = 0.0
        self._reserved = 0.0
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._warned_price = False
        self.queued: dict[str, ChatRequest] = {}

    # ---- public -------------------------------------------------------------------------
    def key(self, req: ChatRequest) -> str:
        """The request's cache key."""
        return cache_key(self.provider.cache_name, req.model or self.model, req)

    def cached(self, req: ChatRequest) -> Completion | None:
        """The cached completion, without any network call."""
        return self.cache.get(self.key(req)) if self.cache is not None else None

    async def complete(self, req: ChatRequest) -> Completion:
        """The completion for req: from the cache, else from the provider (and then cached).
        Raises LLMError (after bounded retries), BudgetExceeded, or BatchQueued in batch mode."""
        key = self.key(req)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cache_hits += 1
                return hit
        if self.options.batch_dir is not None:
            self.queued.setdefault(key, req)
            self.stats.queued = len(self.queued)
            raise BatchQueued(f"queued for batch submission (key {key[:12]})")
        state = self._state()
        pending = state.inflight.get(key)
        if pending is not None:
            try:
                completion = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled() and not _current_task_cancelling():
                    return await self.complete(req)  # the caller that owned the request was cancelled
                raise
            return completion.model_copy(update={"from_cache": True})
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        state.inflight[key] = future
        try:
            completion = await self._complete_uncached(req, key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as err:
            self.stats.failed += 1
            if isinstance(err, LLMError):
                label = "budget" if isinstance(err, BudgetExceeded) else str(err.status or "other")
                self.stats.errors[label] = self.stats.errors.get(label, 0) + 1
            future.set_exception(err)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            state.inflight.pop(key, None)
        future.set_result(completion)
        return completion

    def complete_sync(self, req: ChatRequest) -> Completion:
        """`complete` for code without an event loop."""

        async def once() -> Completion:
            try:
                return await self.complete(req)
            finally:
                await self.aclose()

        return asyncio.run(once())

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections (call before the loop ends; the cache stays open)."""
        await self.provider.aclose()

    async def submit_queued(self) -> list[Path]:
        """Batch mode: submit every queued request as batch jobs; returns the job files."""
        from nextedit.llm.batch import submit_requests

        if not self.queued or self.options.batch_dir is None:
            return []
        requests = list(self.queued.values())
        paths = await submit_requests(self, requests, Path(self.options.batch_dir))
        self.queued.clear()
        return paths

    def close(self) -> None:
        """Batch mode: submit what is still queued (job files in batch_dir). Then close the cache."""
        if self.queued and self.options.batch_dir is not None:
            count = len(self.queued)

            async def submit() -> list[Path]:
                try:
                    return await self.submit_queued()
                finally:
                    await self.aclose()

            paths = _run_blocking(submit())
            log.warning("submitted %d request(s) as %d batch job(s) in %s: run `nextedit batch collect %s` "
                        "when they are done, then run again", count, len(paths), self.options.batch_dir,
                        self.options.batch_dir)
        if self.cache is not None:
            self.cache.close()

    # ---- accounting ---------------------------------------------------------------------
    def cost(self, model: str, result: ProviderResult, *, batch: bool = False) -> float:
        """Dollars for one provider result (0 when the model has no price; warns once for paid APIs)."""
        usd = self.prices.cost(model, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                               cached_input_tokens=result.cached_input_tokens,
                               cache_write_tokens=result.cache_write_tokens, batch=batch)
        if usd is None:
            if self.provider.name in ("anthropic", "openai") and not self._warned_price:
                self._warned_price = True
                log.warning("no price for model %r: costs count as 0 (add it with --prices)", model)
            return 0.0
        return usd

    def add_spent(self, usd: float) -> None:
        """Count dollars spent (also in the process-wide total)."""
        with self._lock:
            self.spent_usd += usd
        with _TOTAL_LOCK:
            _TOTAL_SPENT[0] += usd
        gov = _governor.current()
        if gov is not None and usd:
            gov.spend(usd)

    def upper_bound_usd(self, req: ChatRequest, model: str, *, batch: bool = False) -> float:
        """The most one sample of req can cost (estimated input, max_tokens output)."""
        usd = self.prices.cost(model, input_tokens=_estimate_tokens(req), output_tokens=req.max_tokens,
                               batch=batch)
        return usd or 0.0

    def _reserve(self, usd: float) -> None:
        limit = self.options.max_cost_usd
        with self._lock:
            if limit is not None and self.spent_usd + self._reserved + usd > limit:
                raise BudgetExceeded(f"--max-cost-usd {limit:g} reached (spent ${self.spent_usd:.4f}, "
                                     f"${self._reserved:.4f} in flight, next request up to ${usd:.4f})")
            self._reserved += usd
        gov = _governor.current()
        if gov is not None:
            refused = gov.reserve(usd)
            if refused is not None:
                with self._lock:
                    self._reserved -= usd
                raise BudgetExceeded(refused)

    def _release(self, usd: float) -> None:
        with self._lock:
            self._reserved -= usd
        gov = _governor.current()
        if gov is not None:
            gov.release(usd)

    # ---- calls ----------------------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            for old in [lp for lp in self._loops if lp.is_closed()]:
                del self._loops[old]
            state = self._loops[loop] = _LoopState(self.options.concurrency)
        return state

    async def _complete_uncached(self, req: ChatRequest, key: str) -> Completion:
        model = req.model or self.model
        t0 = time.monotonic()
        if req.n == 1 or self.provider.supports_n:
            results = [await self._call_with_retries(req, model)]
            missing = req.n - len(results[0].texts)
            if missing > 0:  # a server that ignores `n`: ask for the rest one by one, in parallel
                one = req.model_copy(update={"n": 1})
                results += await asyncio.gather(*(self._call_with_retries(one, model) for _ in range(missing)))
        else:
            one = req.model_copy(update={"n": 1})
            results = list(await asyncio.gather(*(self._call_with_retries(one, model) for _ in range(req.n))))
        completion = self.combine(model, results, time.monotonic() - t0, batch=False)
        if self.cache is not None:
            self.cache.put(key, self.provider.cache_name, model, req, completion)
        self.stats.completed += 1
        return completion

    def combine(self, model: str, results: list[ProviderResult], seconds: float, *, batch: bool) -> Completion:
        """One Completion from the provider results of a request's samples, priced (batch or not)."""
        costs = [self.cost(model, r, batch=batch) for r in results]
        return Completion(
            texts=[t for r in results for t in r.texts],
            usage=Usage(input_tokens=sum(r.input_tokens for r in results),
                        output_tokens=sum(r.output_tokens for r in results), cost_usd=round(sum(costs), 8)),
            cached_input_tokens=sum(r.cached_input_tokens for r in results),
            cache_write_tokens=sum(r.cache_write_tokens for r in results),
            latency_ms=round(seconds * 1000, 1), model=results[0].model or model,
            finish_reasons=[f for r in results for f in r.finish_reasons], via="batch" if batch else "sync")

    def _backoff(self, attempt: int) -> float:
        base = min(self.options.backoff_s * (2 ** attempt), self.options.max_backoff_s)
        return base * (0.5 + random.random() / 2)  # jitter: half to full of the exponential step

    async def _call_with_retries(self, req: ChatRequest, model: str) -> ProviderResult:
        opts = self.options
        est_tokens = _estimate_tokens(req) + req.max_tokens * req.n
        bound = self.upper_bound_usd(req, model) * req.n
        state = self._state()
        attempt = 0
        while True:
            self._reserve(bound)
            try:
                async with state.semaphore:
                    await self.limiter.acquire(est_tokens)
                    gov = _governor.current()
                    if gov is not None:
                        await _governor.wait_turn(gov, est_tokens)
                    self.stats.http_calls += 1
                    try:
                        result = await self.provider.call(req, model)
                    except LLMError as err:
                        error = err
                    else:
                        self.limiter.settle(est_tokens, result.input_tokens + result.output_tokens)
                        self.add_spent(self.cost(model, result))
                        return result
            finally:
                self._release(bound)
            if not error.retryable or attempt >= opts.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise LLMError(f"{self.spec}: {error.message}{tries}", status=error.status,
                               retryable=error.retryable, retry_after=error.retry_after)
            if error.retry_after is not None:
                if error.retry_after > opts.max_retry_after_s:
                    raise LLMError(f"{self.spec}: server asks to retry after {error.retry_after:g} s "
                                   f"(more than max_retry_after_s {opts.max_retry_after_s:g})",
                                   status=error.status, retryable=True, retry_after=error.retry_after)
                wait = error.retry_after
                if error.status == 429:
                    self.limiter.pause(wait)
                    gov = _governor.current()
                    if gov is not None:
                        gov.pause(wait)
            else:
                wait = self._backoff(attempt)
            attempt += 1
            self.stats.retries += 1
            log.debug("retry %d of %s in %.2fs: %s", attempt, self.spec, wait, error.message)
            await asyncio.sleep(wait)
