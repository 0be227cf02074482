"""`openai-compatible:URL`: a student served behind an OpenAI-compatible API (vLLM, llama.cpp, nextedit serve).

The example is rendered with the student format and sent to `URL/completions` (raw prompt, the default)
or `URL/chat/completions` (the format's chat messages, option endpoint="chat") with `n` samples, the
format's stop strings and the sampling options; each returned text is parsed back into a patch. A
model name may follow the URL after `#` (`openai-compatible:http://host:8000/v1#student`). 429 and 5xx
replies are retried (honouring Retry-After); a request that still fails records the error on every
sample instead of failing the example. Secrets are scrubbed from the example before it is rendered
(option `scrub`; by default on unless the URL's host is this machine) and put back in the answers.

For rewrites, the request carries what engines need to answer fast (docs/inference-engines.md): max_tokens sized
from the editable region, the format's stop strings, and per-engine options (`engine = "llama.cpp"`:
prompt caching and the per-request draft bounds of its speculative decoding; vLLM and SGLang configure
n-gram speculation at server start). Cancelling the call (a superseded request, a passed deadline)
closes its connection, which stops generation upstream; each prediction's `latency_ms` is the upstream
round trip alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
from typing import Any
from urllib.parse import urlsplit

from nextedit.predictors.base import Predictor, PredictorError
from nextedit.record import Example, Prediction, Usage

RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}
ENGINES = ("generic", "llama.cpp", "vllm", "sglang")


class OpenAICompatiblePredictor(Predictor):
    """Asks an OpenAI-compatible endpoint for `samples` completions of the rendered student prompt.

    Options: format (required), format_options, model (default: after "#" in the URL, else "default"),
    endpoint ("completions" | "chat"), max_tokens (1024), temperature (0), top_p (1), api_key (default
    $NEXTEDIT_API_KEY or $OPENAI_API_KEY), timeout_s (60), max_retries (2), label, scrub (replace
    secrets by placeholders before sending; default: on unless the URL's host is a loopback address).
    Engine options: engine ("generic", "llama.cpp", "vllm", "sglang"), auto_max_tokens (True: ask for
    about what rewriting the editable region takes, at most max_tokens), chars_per_token (3.0), stop
    (extra stop strings), draft_max / draft_min (llama.cpp: per-request speculative draft bounds),
    n_probs (llama.cpp: top-token probabilities in the reply), extra_body (merged into every request).
    """

    scheme = "openai-compatible"
    version = "2"
    #: Its latency is an upstream server's (reported apart from the server's own time).
    upstream = True

    def __init__(self, argument: str | None = None, *, format: str | None = None,
                 format_options: dict[str, Any] | None = None, model: str | None = None,
                 endpoint: str = "completions", max_tokens: int = 1024, temperature: float = 0.0,
                 top_p: float = 1.0, api_key: str | None = None, timeout_s: float = 60.0, max_retries: int = 2,
                 label: str | None = None, scrub: bool | None = None, engine: str = "generic",
                 auto_max_tokens: bool = True, chars_per_token: float = 3.0, stop: list[str] | None = None,
                 draft_max: int | None = None, draft_min: int | None = None, n_probs: int | None = None,
                 extra_body: dict[str, Any] | None = None) -> None:
        if not argument:
            raise PredictorError("provider openai-compatible needs a URL: openai-compatible:http://HOST:PORT/v1")
        self.argument = argument
        url, _, fragment = argument.partition("#")
        if not url.startswith(("http://", "https://")):
            raise PredictorError(f"openai-compatible:{argument}: the URL must start with http:// or https://")
        if not format:
            raise PredictorError(f"openai-compatible:{argument}: pass the student format, e.g. --option format=zeta1")
        if engine not in ENGINES:
            raise PredictorError(f"openai-compatible: engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        if chars_per_token <= 0:
            raise PredictorError(f"openai-compatible: chars_per_token must be positive (got {chars_per_token})")
        if endpoint not in ("completions", "chat"):
            raise PredictorError(f"openai-compatible: endpoint must be 'completions' or 'chat' (got {endpoint!r})")
        try:
            import httpx  # noqa: F401
        except ImportError:
            raise PredictorError("provider openai-compatible needs httpx: pip install httpx") from None
        from nextedit.formats import FormatOptions, get_format

        try:
            self.format = get_format(format)
            self.options = FormatOptions(**(format_options or {}))
        except ValueError as exc:
            raise PredictorError(f"openai-compatible:{argument}: {exc}") from None
        self.base_url = url.rstrip("/")
        self.model = model or fragment or "default"
        self.endpoint = endpoint
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.api_key = api_key or os.environ.get("NEXTEDIT_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.label = label
        self.scrub = _is_remote(self.base_url) if scrub is None else bool(scrub)
        self.engine = engine
        self.auto_max_tokens = bool(auto_max_tokens)
        self.chars_per_token = float(chars_per_token)
        self.extra_stop = [str(x) for x in (stop or [])]
        self.draft_max, self.draft_min, self.n_probs = draft_max, draft_min, n_probs
        self.extra_body = dict(extra_body or {})
        self._pooled: tuple[asyncio.AbstractEventLoop, Any] | None = None

    @property
    def name(self) -> str:
        """`label` when given, else `openai-compatible:URL`."""
        return self.label or f"openai-compatible:{self.argument}"

    def tokens_for(self, example: Example | None) -> int:
        """max_tokens for an example: about 1.5x the editable region's tokens plus 64 (a rewrite of the
        region, its markers and some growth), never more than the `max_tokens` option."""
        if example is None or not self.auto_max_tokens:
            return self.max_tokens
        snap = example.snapshot
        start, end = snap.editable or (0, len(snap.text))
        estimate = math.ceil((end - start) / self.chars_per_token * 1.5) + 64
        return max(1, min(self.max_tokens, estimate))

    def request_body(self, rendered: Any, samples: int, example: Example | None = None) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for one rendered example."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.tokens_for(example),
                                "temperature": self.temperature, "top_p": self.top_p, "n": samples}
        stops = list(dict.fromkeys([*self.format.stop, *self.extra_stop]))
        if stops:
            # The OpenAI API takes at most 4; llama.cpp, vLLM and SGLang take any number.
            body["stop"] = stops[:4] if self.engine == "generic" else stops
        if self.engine == "llama.cpp":
            body["cache_prompt"] = True  # reuse the KV cache of the previous request's common prefix
            if self.draft_max is not None:
                body["speculative.n_max"] = int(self.draft_max)
            if self.draft_min is not None:
                body["speculative.n_min"] = int(self.draft_min)
            if self.n_probs is not None:
                body["n_probs"] = int(self.n_probs)
        body.update(self.extra_body)
        if self.endpoint == "chat":
            messages = rendered.messages or [{"role": "user", "content": rendered.prompt}]
            return "/chat/completions", {**body, "messages": messages}
        return "/completions", {**body, "prompt": rendered.prompt}

    def _client(self) -> Any:
        """This event loop's pooled client (connections are kept alive between requests)."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._pooled is None or self._pooled[0] is not loop or self._pooled[1].is_closed:
            # A client belongs to one loop; a client of a loop that is gone is left to the collector.
            self._pooled = (loop, httpx.AsyncClient(timeout=self.timeout_s))
        return self._pooled[1]

    def close(self) -> None:
        """Close the pooled client (on its own loop; callable from any thread)."""
        pooled, self._pooled = self._pooled, None
        if pooled is not None and not pooled[0].is_closed():
            loop, client = pooled
            loop.call_soon_threadsafe(lambda: loop.create_task(client.aclose()))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        # Cancelling this coroutine (superseded request, deadline) closes the request's connection:
        # llama.cpp, vLLM and SGLang stop generating for a client that went away.
        client = self._client()
        for attempt in range(self.max_retries + 1):
            try:
                resp = await client.post(self.base_url + path, json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
                await asyncio.sleep(0.5 * 2 ** attempt)
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.max_retries:
                try:
                    wait = float(resp.headers.get("retry-after", ""))
                except ValueError:
                    wait = 0.5 * 2 ** attempt
                await asyncio.sleep(min(wait, 30.0))
                continue
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                return resp.json()
            except ValueError:
                raise RuntimeError(f"reply is not JSON: {resp.text[:100]!r}") from None
        raise RuntimeError("no reply")  # pragma: no cover - the loop always returns or raises

    def _texts(self, reply: dict[str, Any]) -> list[str]:
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        if self.endpoint == "chat":
            return [((c.get("message") or {}).get("content") or "") for c in choices]
        return [c.get("text") or "" for c in choices]

    async def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """One request for `samples` completions; each text parsed into a patch (or an error recorded)."""
        from nextedit.formats import FormatError
        from nextedit.privacy.records import scrub_example
        from nextedit.privacy.scrub import Scrubber

        shown = example.model_copy(update={"expected": [], "expected_cursors": [], "predictions": []})
        scrubber = Scrubber() if self.scrub else None
        if scrubber is not None:
            shown = scrub_example(shown, scrubber)
        try:
            rendered = self.format.render(shown, self.options)
        except FormatError as exc:
            return [Prediction(provider=self.name, sample=i, error=f"render: {exc}") for i in range(samples)]
        path, body = self.request_body(rendered, samples, example)
        t0 = time.perf_counter()
        try:
            reply = await self._post(path, body)
            texts = self._texts(reply)
        except (RuntimeError, AttributeError, TypeError) as exc:
            return [Prediction(provider=self.name, sample=i, error=f"request: {exc}") for i in range(samples)]
        ms = round((time.perf_counter() - t0) * 1000, 1)
        usage = reply.get("usage") or {}
        out = []
        for i in range(samples):
            # The request's token counts ride on sample 0, so sums over predictions stay right.
            u = Usage(input_tokens=int(usage.get("prompt_tokens") or 0),
                      output_tokens=int(usage.get("completion_tokens") or 0)) if i == 0 else Usage()
            if i >= len(texts):
                out.append(Prediction(provider=self.name, sample=i, error=f"reply has {len(texts)} choices",
                                      latency_ms=ms, usage=u))
                continue
            raw = scrubber.unscrub(texts[i]) if scrubber is not None else texts[i]
            try:
                parsed = self.format.parse(raw, example, self.options)
            except FormatError as exc:
                out.append(Prediction(provider=self.name, sample=i, raw=raw, error=f"parse: {exc}", latency_ms=ms,
                                      usage=u))
                continue
            out.append(Prediction(provider=self.name, sample=i, raw=raw, patch=parsed.patch, cursor=parsed.cursor,
                                  locations=list(parsed.locations), latency_ms=ms, usage=u))
        return out


def _is_remote(url: str) -> bool:
    """False when the URL's host is this machine (localhost or a loopback address)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
