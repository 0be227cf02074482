"""Benchmark the LLM client: throughput against a local server with injected latency, and the rerun
served from the request cache.

Usage: .venv/bin/python bench/teacher.py [--requests 2000] [--concurrency 64] [--latency-s 0.2] [--no-append]

Starts tests/llm_server.py in a separate process (200 ms latency on every completion), then:
  sdk-baseline  the bare `openai` SDK (max_retries=0) under an asyncio.Semaphore(concurrency): what a
                hand-written loop without nextedit's layer achieves on this machine
  client-cold   nextedit's client (openai-compatible provider), empty cache: every request goes out,
                through rate limiting, retries, cost accounting and the SQLite cache writes
  client-warm   the same requests again through a fresh client: must be 100 % cache hits, zero HTTP
The ideal rate is concurrency / latency. Overhead per request = wall time x concurrency / requests
- latency. Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _report import append_text, markdown_table, section

ROOT = Path(__file__).resolve().parents[1]


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/_stats", timeout=10) as resp:
        return json.loads(resp.read())


def _requests(n: int):
    from nextedit.llm import ChatRequest

    system = "You are a careful code editor. Reply with the next edit as a unified diff."
    return [ChatRequest(system=system, messages=[{"role": "user", "content": f"edit request {i}"}],
                        max_tokens=64) for i in range(n)]


async def _sdk_baseline(url: str, reqs, concurrency: int) -> None:
    import openai

    client = openai.AsyncOpenAI(api_key="none", base_url=url + "/v1", max_retries=0, timeout=60)
    sem = asyncio.Semaphore(concurrency)

    async def one(r) -> None:
        async with sem:
            await client.chat.completions.create(
                model="bench", max_tokens=r.max_tokens, temperature=0.0,
                messages=[{"role": "system", "content": r.system}, *r.messages])

    await asyncio.gather(*(one(r) for r in reqs))
    await client.close()


async def _client_run(url: str, reqs, concurrency: int, cache: Path) -> tuple[int, int]:
    from nextedit.llm import get_client

    client = get_client(f"openai-compatible:{url}/v1#bench", cache_path=str(cache), concurrency=concurrency,
                        timeout_s=60)
    out = await asyncio.gather(*(client.complete(r) for r in reqs))
    await client.aclose()
    client.close()
    return sum(c.from_cache for c in out), len(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency-s", type=float, default=0.2)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    n, conc, lat = args.requests, args.concurrency, args.latency_s
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "llm_server.py"), str(lat)],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        import openai  # noqa: F401 - imports are not part of any timing

        import nextedit.llm.openai_provider  # noqa: F401

        reqs = _requests(n)
        ideal = conc / lat
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "llm.sqlite"
            for mode in ("sdk-baseline", "client-cold", "client-warm"):
                before = _stats(url)["requests"]
                t0 = time.perf_counter()
                hits = 0
                if mode == "sdk-baseline":
                    asyncio.run(_sdk_baseline(url, reqs, conc))
                else:
                    hits, _ = asyncio.run(_client_run(url, reqs, conc, cache))
                secs = time.perf_counter() - t0
                http = _stats(url)["requests"] - before
                rate = n / secs
                rows.append({"mode": mode, "seconds": secs, "rate": rate, "share": rate / ideal, "http": http,
                             "hits": hits, "overhead_ms": (secs * conc / n - lat) * 1000})
                print(f"{mode:13s} {secs:6.2f} s  {rate:7.1f} req/s  {100 * rate / ideal:5.1f} % of ideal  "
                      f"http {http}  cache hits {hits}", flush=True)
    finally:
        server.terminate()
        server.wait()
    base = rows[0]["rate"]
    warm = rows[2]
    table = markdown_table(
        [(r["mode"], f"{r['seconds']:.2f}", f"{r['rate']:,.0f}",
          f"{100 * r['share']:.1f} %" if r["mode"] != "client-warm" else "-", f"{r['rate'] / base:.2f}",
          f"{r['overhead_ms']:.1f} ms" if r["mode"] != "client-warm" else "-", f"{r['http']:,}", f"{r['hits']:,}")
         for r in rows],
        headers=("mode", "seconds", "requests/s", "share of ideal", "vs sdk-baseline", "overhead / request",
                 "HTTP requests", "cache hits"),
        align="lrrrrrrr")
    text = section(
        "teacher LLM client",
        [*table, "", (f"Rerun: {warm['hits']:,} of {n:,} served from the cache ({100 * warm['hits'] / n:.0f} %), "
                      f"{warm['http']} HTTP requests, {warm['rate']:,.0f} requests/s. Overhead per request = wall "
                      "time x concurrency / requests - latency: the time a request slot spends outside the "
                      "server's sleep (client, SDK, HTTP, SQLite, and the stdlib test server's own per-request "
                      "work on the same 2 cores).")],
        command=f"python bench/teacher.py --requests {n} --concurrency {conc} --latency-s {lat}",
        note=(f" (server: tests/llm_server.py in its own process, {lat * 1000:.0f} ms injected latency per "
              f"completion; ideal = concurrency / latency = {ideal:.0f} req/s)"))
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
