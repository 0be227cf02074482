"""Batch API jobs against the local server: queue, submit, status, collect into the cache, rerun."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from llm_server import Fault, LLMServer
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.llm import BatchQueued, ChatRequest, get_client, load_prices
from nextedit.llm.batch import collect_job, load_job, refresh_job

SYSTEM = "Rewrite the code as the user would next. Reply with a diff."


def _req(i: int, **kw) -> ChatRequest:
    return ChatRequest(system=SYSTEM, messages=[{"role": "user", "content": f"item {i}"}], max_tokens=32, **kw)


def _queue_all(client, reqs: list[ChatRequest]) -> int:
    async def go() -> int:
        queued = 0
        for r in reqs:
            try:
                await client.complete(r)
            except BatchQueued:
                queued += 1
        return queued

    return asyncio.run(go())


@pytest.mark.parametrize("provider", ["anthropic", "openai-compatible"])
def test_batch_flow_fills_the_cache(provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")  # collect rebuilds the client from the job file + env
    cache = str(tmp_path / "llm.sqlite")
    jobs = tmp_path / "jobs"
    with LLMServer(batch_polls_until_done=2) as server:
        if provider == "anthropic":
            spec, opts = "anthropic:claude-sonnet-4-5", {"base_url": server.url, "api_key": "k"}
        else:
            spec, opts = f"openai-compatible:{server.openai_url}#m", {}
        reqs = [_req(0), _req(1, n=2, temperature=1.0), _req(2), _req(0)]  # the duplicate is queued once
        batch_client = get_client(spec, cache_path=cache, batch_dir=str(jobs), **opts)
        assert _queue_all(batch_client, reqs) == 4 and len(batch_client.queued) == 3
        paths = asyncio.run(batch_client.submit_queued())
        assert len(paths) == 1 and server.count("/v1/messages") + server.count("/v1/chat/completions") == 0
        job = load_job(paths[0])
        assert job.status == "submitted" and job.provider_batch_id and job.submitted_at
        assert set(job.requests) == {batch_client.key(r) for r in reqs}
        # samples: anthropic sends one item per sample, OpenAI-compatible one item with n=2
        assert len(job.items) == (4 if provider == "anthropic" else 3)

        first = asyncio.run(collect_job(paths[0]))  # first poll: still running, nothing changes
        assert first.status == "submitted" and first.stored == 0
        result = asyncio.run(collect_job(paths[0]))
        assert (result.status, result.stored, result.errored) == ("collected", 3, 0)
        job = load_job(paths[0])
        assert job.collected_at and job.ended_at and job.stored == 3

        # the normal (non-batch) run now finds everything in the cache: zero completion requests
        server.reset()
        normal = get_client(spec, cache_path=cache, **opts)
        outs = [asyncio.run(normal.complete(r)) for r in reqs]
        assert server.count() == 0
        assert all(o.from_cache and o.via == "batch" for o in outs)
        assert outs[1].texts == ["echo: item 1", "echo: item 1"]
        if provider == "anthropic":
            sync_price = load_prices().cost("claude-sonnet-4-5", input_tokens=outs[0].usage.input_tokens,
                                            output_tokens=outs[0].usage.output_tokens,
                                            cached_input_tokens=outs[0].cached_input_tokens,
                                            cache_write_tokens=outs[0].cache_write_tokens)
            assert outs[0].usage.cost_usd == pytest.approx(sync_price / 2)
        # submitting again: everything is cached, no new job
        assert asyncio.run(get_client(spec, cache_path=cache, batch_dir=str(jobs), **opts)
                           .submit_queued()) == []


def test_errored_items_are_recorded_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    cache = str(tmp_path / "llm.sqlite")
    with LLMServer() as server:
        client = get_client("anthropic:claude-haiku-4-5", base_url=server.url, api_key="k", cache_path=cache,
                            batch_dir=str(tmp_path))
        _queue_all(client, [_req(0), _req(1)])
        server.script(Fault.item_error("prompt is too long"))
        (path,) = asyncio.run(client.submit_queued())
        result = asyncio.run(collect_job(path))
        assert (result.stored, result.errored) == (1, 1)
        job = load_job(path)
        assert list(job.errors.values()) == ["batch item errored: prompt is too long"]
        bad_key = next(iter(job.errors))
        normal = get_client("anthropic:claude-haiku-4-5", base_url=server.url, api_key="k", cache_path=cache)
        assert normal.cache is not None and not normal.cache.has(bad_key)
        assert normal.cache.has(next(k for k in job.requests if k != bad_key))


def test_refresh_leaves_unsubmitted_jobs_alone(tmp_path: Path) -> None:
    with LLMServer(batch_polls_until_done=100) as server:
        client = get_client(f"openai-compatible:{server.openai_url}#m", cache_path=str(tmp_path / "c.sqlite"),
                            batch_dir=str(tmp_path / "jobs"))
        _queue_all(client, [_req(0)])
        (path,) = asyncio.run(client.submit_queued())
        job = asyncio.run(refresh_job(path))
        assert job.status == "submitted" and job.last_checked_at
        assert server.count("/v1/batches/*", method="GET") == 1


def test_cli_submit_status_collect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    cache = tmp_path / "llm.sqlite"
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(_req(i).model_dump(exclude={"metadata"})) + "\n" for i in range(3)))
    runner = CliRunner()
    with LLMServer(batch_polls_until_done=2) as server:
        jobs = tmp_path / "jobs"
        out = runner.invoke(app, ["batch", "submit", str(requests), "--model", "anthropic:claude-sonnet-4-5",
                                  "--base-url", server.url, "--cache", str(cache), "--dir", str(jobs)])
        assert out.exit_code == 0, out.output
        assert "1 job(s) submitted" in out.output
        out = runner.invoke(app, ["batch", "status", str(jobs), "--json"])
        assert out.exit_code == 0, out.output
        row = json.loads(out.output.strip().splitlines()[0])
        assert (row["status"], row["requests"]) == ("submitted", 3)
        out = runner.invoke(app, ["batch", "collect", str(jobs), "--wait", "--poll-s", "0"])
        assert out.exit_code == 0, out.output
        assert "collected, 3 stored, 0 errored" in out.output
        out = runner.invoke(app, ["batch", "status", str(jobs), "--no-refresh"], env={"COLUMNS": "200"})
        assert out.exit_code == 0 and "collected" in out.output and "msgbatch_" in out.output
        # everything cached now: a second submit makes no job and no request
        server.reset()
        out = runner.invoke(app, ["batch", "submit", str(requests), "--model", "anthropic:claude-sonnet-4-5",
                                  "--base-url", server.url, "--cache", str(cache), "--dir", str(jobs)])
        assert "all requests already cached" in out.output and server.count() == 0


def test_cli_errors_name_the_file(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "x.batch.json"
    bad.write_text('{"job_id": "j", "spec": "openai:gpt-4o", "model": "gpt-4o", "status": "lost"}')
    out = runner.invoke(app, ["batch", "status", str(bad), "--no-refresh"])
    assert out.exit_code == 1 and f"{bad}: field status" in out.output
    requests = tmp_path / "r.jsonl"
    requests.write_text('{"messages": [{"role": "user", "content": "x"}]}\n{"messages": []}\n')
    out = runner.invoke(app, ["batch", "submit", str(requests), "--model", "openai:gpt-4o"])
    assert out.exit_code == 1 and f"{requests}:2: field messages" in out.output


def test_close_submits_what_batch_mode_queued(tmp_path: Path) -> None:
    with LLMServer() as server:
        client = get_client(f"openai-compatible:{server.openai_url}#m", cache_path=str(tmp_path / "c.sqlite"),
                            batch_dir=str(tmp_path / "jobs"))
        assert _queue_all(client, [_req(0), _req(1)]) == 2
        client.close()  # a stage's close(): the queue becomes a job file instead of being lost
        (path,) = (tmp_path / "jobs").glob("*.batch.json")
        job = load_job(path)
        assert job.status == "submitted" and len(job.requests) == 2
        assert server.count("/v1/batches") == 1 and server.count("/v1/chat/completions") == 0


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_expired_batch_gives_what_finished(provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with LLMServer(expire_after=2) as server:
        if provider == "anthropic":
            spec, opts = "anthropic:claude-sonnet-4-5", {"base_url": server.url}
        else:
            spec, opts = "openai:gpt-4o-mini", {"base_url": server.openai_url}
        client = get_client(spec, cache_path=str(tmp_path / "c.sqlite"), batch_dir=str(tmp_path), **opts)
        _queue_all(client, [_req(i) for i in range(5)])
        (path,) = asyncio.run(client.submit_queued())
        result = asyncio.run(collect_job(path))
        assert (result.status, result.stored, result.errored) == ("collected", 2, 3)
        job = load_job(path)
        assert all("expired" in message for message in job.errors.values())
        normal = get_client(spec, cache_path=str(tmp_path / "c.sqlite"), **opts)
        server.reset()
        outs = [asyncio.run(normal.complete(_req(i))) for i in range(5)]
        assert sum(o.from_cache for o in outs) == 2 and server.count() == 3  # only the expired ones are asked
