"""nextedit.llm client against the local wire-format server: faults, bounded retries, cache, costs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import Fault, LLMServer

from nextedit.llm import BudgetExceeded, ChatRequest, LLMError, get_client, load_prices
from nextedit.llm.ratelimit import _Bucket

SYSTEM = "You predict the next edit. Answer with a unified diff only, nothing else."


@pytest.fixture
def server() -> Iterator[LLMServer]:
    """A started local server."""
    with LLMServer() as s:
        yield s


def _client(server: LLMServer, provider: str, tmp_path: Path, **options):
    options = {"cache_path": str(tmp_path / "llm.sqlite"), "backoff_s": 0.01, "timeout_s": 1.0, **options}
    if provider == "anthropic":
        return get_client("anthropic:claude-sonnet-4-5", base_url=server.url, api_key="test", **options)
    if provider == "openai":
        return get_client("openai:gpt-4o", base_url=server.openai_url, api_key="test", **options)
    return get_client(f"openai-compatible:{server.openai_url}#local-model", **options)


def _req(i: int = 0, **kw) -> ChatRequest:
    return ChatRequest(system=SYSTEM, messages=[{"role": "user", "content": f"example {i}"}], max_tokens=64, **kw)


def _run(coro, timeout: float = 30.0):
    """Run with a generous bound: a hang (e.g. a Retry-After ignored for a huge backoff) fails the test."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


PROVIDERS = ["anthropic", "openai", "openai-compatible"]
PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions",
         "openai-compatible": "/v1/chat/completions"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_fault_is_retried_then_cached(server: LLMServer, provider: str, tmp_path: Path) -> None:
    client = _client(server, provider, tmp_path, timeout_s=0.3)
    server.script(Fault.rate_limit(0.01), Fault.server_error(), Fault.server_error(503), Fault.delay(1.5),
                  Fault.truncated(), Fault.garbage(), "--- a/x\n+++ b/x\n")
    completion = _run(client.complete(_req()))
    assert completion.texts == ["--- a/x\n+++ b/x\n"]
    assert not completion.from_cache
    assert server.count(PATHS[provider]) == 7
    assert client.stats.retries == 6 and client.stats.failed == 0
    # a second client on the same cache file, in a new event loop: zero HTTP requests
    again = _client(server, provider, tmp_path)
    server.reset()
    cached = _run(again.complete(_req()))
    assert cached.from_cache and cached.texts == completion.texts
    assert cached.usage == completion.usage
    assert server.count() == 0


def test_retry_after_is_honoured_over_a_long_backoff(server: LLMServer, tmp_path: Path) -> None:
    # backoff of 1000 s: only the server's Retry-After (0.01 s) lets this finish inside the bound
    client = _client(server, "openai-compatible", tmp_path, backoff_s=1000, max_backoff_s=1000)
    server.script(Fault.rate_limit(0.01), Fault.rate_limit(0.01))
    assert _run(client.complete(_req()), timeout=20).texts == ["echo: example 0"]
    assert server.count("/v1/chat/completions") == 3


def test_retry_after_longer_than_allowed_fails_at_once(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "anthropic", tmp_path, max_retry_after_s=5)
    server.script(Fault.rate_limit(3600))
    with pytest.raises(LLMError, match="retry after 3600"):
        _run(client.complete(_req()))
    assert server.count() == 1


def test_retries_are_bounded_and_failure_is_not_cached(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "openai", tmp_path, max_retries=2)
    server.script(*[Fault.server_error()] * 3)
    with pytest.raises(LLMError, match="after 3 attempts") as info:
        _run(client.complete(_req()))
    assert info.value.status == 500 and info.value.retryable
    assert server.count("/v1/chat/completions") == 3
    assert client.stats.failed == 1 and client.stats.errors == {"500": 1}
    # nothing was cached: the next call goes to the server and succeeds
    assert _run(client.complete(_req())).texts == ["echo: example 0"]
    assert server.count("/v1/chat/completions") == 4


def test_client_error_is_not_retried(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "anthropic", tmp_path)
    server.script(Fault.item_error("max_tokens: too large"))
    with pytest.raises(LLMError, match="too large") as info:
        _run(client.complete(_req()))
    assert info.value.status == 400 and not info.value.retryable
    assert server.count() == 1


def test_many_requests_then_rerun_makes_zero_requests(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "openai-compatible", tmp_path, concurrency=8)
    server.script(Fault.rate_limit(0.01), Fault.server_error(), Fault.garbage(), Fault.truncated())

    async def many(c):
        return await asyncio.gather(*(c.complete(_req(i)) for i in range(40)))

    first = _run(many(client))
    assert [c.texts[0] for c in first] == [f"echo: example {i}" for i in range(40)]
    assert server.count("/v1/chat/completions") == 44
    server.reset()
    second = _run(many(_client(server, "openai-compatible", tmp_path)))
    assert all(c.from_cache for c in second) and server.count() == 0


def test_identical_concurrent_requests_make_one_call(server: LLMServer, tmp_path: Path) -> None:
    slow = LLMServer(latency_s=0.2).start()
    try:
        client = get_client(f"openai-compatible:{slow.openai_url}#m", cache_path=str(tmp_path / "c.sqlite"))

        async def same():
            return await asyncio.gather(*(client.complete(_req()) for _ in range(10)))

        results = _run(same())
        assert slow.count("/v1/chat/completions") == 1
        assert sum(not r.from_cache for r in results) == 1
    finally:
        slow.stop()


def test_concurrency_limit_holds_at_the_server(tmp_path: Path) -> None:
    with LLMServer(latency_s=0.05) as slow:
        client = get_client(f"openai-compatible:{slow.openai_url}#m", cache_path=str(tmp_path / "c.sqlite"),
                            concurrency=3)

        async def many():
            return await asyncio.gather(*(client.complete(_req(i)) for i in range(12)))

        _run(many())
        assert slow.count("/v1/chat/completions") == 12
        assert slow.max_active <= 3


def test_requests_per_minute_limit_holds_back_the_third(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "openai-compatible", tmp_path, rpm=2)  # 2 at once, then one every 30 s

    async def three() -> int:
        tasks = [asyncio.create_task(client.complete(_req(i))) for i in range(3)]
        done, pending = await asyncio.wait(tasks, timeout=1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(done)

    assert _run(three()) == 2
    assert server.count("/v1/chat/completions") == 2


def test_n_samples_native_and_parallel(server: LLMServer, tmp_path: Path) -> None:
    openai_client = _client(server, "openai", tmp_path)
    completion = _run(openai_client.complete(_req(n=3, temperature=0.8, seed=7)))
    assert len(completion.texts) == 3 and server.count("/v1/chat/completions") == 1
    body = server.requests("/v1/chat/completions")[0].body
    assert (body["n"], body["seed"], body["temperature"], body["max_completion_tokens"]) == (3, 7, 0.8, 64)
    anthropic_client = _client(server, "anthropic", tmp_path)
    completion = _run(anthropic_client.complete(_req(n=3)))
    assert len(completion.texts) == 3 and server.count("/v1/messages") == 3
    assert completion.finish_reasons == ["end_turn"] * 3


def test_server_ignoring_n_still_gives_n_samples(tmp_path: Path) -> None:
    with LLMServer(ignore_n=True) as server:
        client = get_client(f"openai-compatible:{server.openai_url}#m", cache_path=str(tmp_path / "c.sqlite"))
        completion = _run(client.complete(_req(n=3, temperature=1.0)))
        assert len(completion.texts) == 3
        assert [r.body.get("n") for r in server.requests("/v1/chat/completions")] == [3, None, None]


def test_parameters_and_provider_key_the_cache(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "openai-compatible", tmp_path)
    _run(client.complete(_req()))
    _run(client.complete(_req(temperature=0.5)))
    _run(client.complete(_req(seed=1)))
    _run(client.complete(_req(metadata={"example_id": "x"})))  # metadata is not part of the key
    other_model = get_client(f"openai-compatible:{server.openai_url}#other", cache_path=str(tmp_path / "llm.sqlite"))
    _run(other_model.complete(_req()))
    assert server.count("/v1/chat/completions") == 4


def test_anthropic_prompt_caching_and_cost(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "anthropic", tmp_path)
    first = _run(client.complete(_req(1)))
    second = _run(client.complete(_req(2)))
    system = server.requests("/v1/messages")[0].body["system"]
    assert system == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    assert first.cache_write_tokens > 0 and first.cached_input_tokens == 0
    assert second.cached_input_tokens == first.cache_write_tokens
    prices = load_prices()
    expected = prices.cost("claude-sonnet-4-5", input_tokens=second.usage.input_tokens,
                           output_tokens=second.usage.output_tokens,
                           cached_input_tokens=second.cached_input_tokens)
    assert second.usage.cost_usd == pytest.approx(expected)
    assert second.usage.cost_usd < first.usage.cost_usd  # cache reads are cheaper than cache writes
    assert client.spent_usd == pytest.approx(first.usage.cost_usd + second.usage.cost_usd)


def test_openai_cached_tokens_are_recorded(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "openai", tmp_path)
    _run(client.complete(_req(1)))
    second = _run(client.complete(_req(2)))
    body = server.requests("/v1/chat/completions")[0].body
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert second.cached_input_tokens == len(SYSTEM.split())


def test_budget_stops_cleanly(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "anthropic", tmp_path, max_cost_usd=0.005, concurrency=4)
    bound = client.upper_bound_usd(_req(), "claude-sonnet-4-5")

    async def many():
        return await asyncio.gather(*(client.complete(_req(i)) for i in range(20)), return_exceptions=True)

    results = _run(many())
    done = [r for r in results if not isinstance(r, Exception)]
    stopped = [r for r in results if isinstance(r, BudgetExceeded)]
    assert done and stopped and len(done) + len(stopped) == 20
    assert client.spent_usd <= 0.005
    assert server.count("/v1/messages") == len(done)
    assert bound > 0 and "--max-cost-usd 0.005 reached" in str(stopped[0])


def test_missing_api_key_fails_but_cache_needs_none(server: LLMServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    _run(_client(server, "anthropic", tmp_path).complete(_req()))
    keyless = get_client("anthropic:claude-sonnet-4-5", base_url=server.url,
                         cache_path=str(tmp_path / "llm.sqlite"))
    assert _run(keyless.complete(_req())).from_cache
    with pytest.raises(LLMError, match="ANTHROPIC_API_KEY"):
        _run(keyless.complete(_req(5)))


def test_specs_and_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown provider 'gemini'"):
        get_client("gemini:pro")
    with pytest.raises(ValueError, match="BASE_URL#MODEL"):
        get_client("openai-compatible:http://localhost:8000/v1")
    with pytest.raises(ValueError, match="llm option concurrency"):
        get_client("openai:gpt-4o", concurrency=0)
    with pytest.raises(ValueError, match="llm option colour"):
        get_client("openai:gpt-4o", colour="red")
    with pytest.raises(ValueError, match="messages\\[0\\].role"):
        ChatRequest(messages=[{"role": "system", "content": "x"}])


def test_price_table_lookup_and_override(tmp_path: Path) -> None:
    prices = load_prices()
    dated = prices.cost("claude-sonnet-4-5-20250929", input_tokens=1_000_000, output_tokens=1_000_000)
    assert dated == pytest.approx(18.0)
    assert prices.cost("claude-sonnet-4-5", input_tokens=1_000_000, output_tokens=0, batch=True) == pytest.approx(1.5)
    assert prices.cost("my-local-model", input_tokens=10, output_tokens=10) is None
    override = tmp_path / "prices.toml"
    override.write_text('[models."my-local-model"]\ninput = 1.0\noutput = 2.0\n')
    table = load_prices(override)
    assert table.cost("my-local-model", input_tokens=1_000_000, output_tokens=1_000_000) == pytest.approx(3.0)
    assert table.find("gpt-4o") is not None  # defaults kept
    override.write_text('[models."bad"]\ninput = "cheap"\n')
    with pytest.raises(ValueError, match="prices.toml: field models.bad.input"):
        load_prices(override)
    override.write_text('[models\n')
    with pytest.raises(ValueError, match="line 1"):
        load_prices(override)


def test_token_bucket_refills_per_minute() -> None:
    bucket = _Bucket(120)  # 2 per second
    for _ in range(120):
        assert bucket.wait_for(1, now=bucket.stamp) == 0
        bucket.take(1)
    assert bucket.wait_for(1, now=bucket.stamp) == pytest.approx(0.5)
    assert bucket.wait_for(1, now=bucket.stamp + 0.5) == 0
    assert bucket.wait_for(10_000, now=bucket.stamp + 60) == 0  # clamped to the capacity when full


def test_progress_lines_show_dollars_spent_during_the_run(server: LLMServer, tmp_path: Path) -> None:
    import io

    from nextedit.pipeline.progress import PlainProgress

    prices = tmp_path / "prices.toml"
    prices.write_text('[models."pricey"]\ninput = 100000.0\noutput = 200000.0\n')
    client = get_client(f"openai-compatible:{server.openai_url}#pricey", prices=str(prices),
                        cache_path=str(tmp_path / "c.sqlite"))
    stream = io.StringIO()
    progress = PlainProgress(every=0.0, stream=stream)
    progress.start("teacher", 2)
    progress.update(0, cached=0, failed=0, dropped=0)
    completion = _run(client.complete(_req()))
    progress.update(1, cached=0, failed=0, dropped=0)
    first, second = stream.getvalue().splitlines()
    assert first.endswith("dropped 0")  # nothing spent yet in this run
    assert completion.usage.cost_usd > 0.01
    assert second.endswith(f"dropped 0, ${completion.usage.cost_usd:.2f}")


def test_timeouts_are_retried_a_bounded_number_of_times(server: LLMServer, tmp_path: Path) -> None:
    client = _client(server, "anthropic", tmp_path, timeout_s=0.2, max_retries=1)
    server.script(Fault.delay(1.0), Fault.delay(1.0))
    with pytest.raises(LLMError, match="request timed out after 2 attempts") as info:
        _run(client.complete(_req()))
    assert info.value.retryable and info.value.status is None
    assert server.count("/v1/messages") == 2 and client.stats.errors == {"other": 1}


def test_retry_after_header_forms() -> None:
    import email.utils
    import time

    from nextedit.llm.provider_base import parse_retry_after

    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 20 < parse_retry_after({"retry-after": later}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None


def test_cancelled_owner_does_not_cancel_a_waiting_duplicate(tmp_path: Path) -> None:
    with LLMServer(latency_s=0.3) as slow:
        client = get_client(f"openai-compatible:{slow.openai_url}#m", cache_path=str(tmp_path / "c.sqlite"))

        async def go():
            owner = asyncio.create_task(client.complete(_req()))
            await asyncio.sleep(0.05)
            waiter = asyncio.create_task(client.complete(_req()))
            await asyncio.sleep(0.05)
            owner.cancel()
            completion = await waiter
            return owner.cancelled(), completion

        cancelled, completion = _run(go())
        assert cancelled and completion.texts == ["echo: example 0"]
        assert slow.count("/v1/chat/completions") == 2  # the waiter asked again itself
