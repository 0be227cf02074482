"""Benchmark `nextedit serve`: overhead over the raw backend, prompt lookup on SmolLM2, load + kill -9.

    python bench/serve.py [--parts overhead,lookup,load,workers] [--load-seconds 60] [--editors 200]

(1) overhead: the same snapshot through the propagate predictor called directly (baseline) and
    through the server (subprocess on 127.0.0.1, 50 concurrent clients): p50/p99 of both.
(2) lookup: end-to-end /v1/predict latency with SmolLM2-135M on CPU, prompt lookup on vs off.
(3) load: N concurrent simulated editors (predict -> shown -> accepted/rejected -> settled) for S
    seconds: 5xx count; then kill -9 the server while they keep sending events and count
    acknowledged events missing from the store (target 0).
(4) workers: `nextedit serve --workers N` (propagate backend, closed-loop clients on keep-alive
    connections): one worker with `shared = "memory"` (baseline: no cross-process state), one and
    two workers with the SQLite shared state: throughput ratio against the baseline, p50/p99.
Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from _report import append_text, markdown_table, section

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
TEXT = ("def order_total(items, qty):\n    total = 0\n    for item in items:\n"
        "        total += item.price * amount\n    return total * amount\n\n\nprint(order_total([], amount))\n")
SNAP = {"path": "shop/cart.py", "text": TEXT, "cursor": 22,
        "history": [{"path": "shop/cart.py", "diff": "@@ -1,2 +1,2 @@\n-def order_total(items, amount):\n"
                                                      "+def order_total(items, qty):\n     total = 0\n"}]}


def write_config(path: Path, store: Path, arms: list[dict], deadline_ms: float = 300) -> None:
    import json

    lines = [f"deadline_ms = {deadline_ms}", f'store = "{store}"', "[auth]", f'api_keys = ["{KEY}"]',
             'admin_token = "bench-admin"']
    for arm in arms:
        lines.append("[[arms]]")
        for k, v in arm.items():
            if isinstance(v, dict):
                v = "{" + ", ".join(f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()) + "}"
                lines.append(f"{k} = {v}")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")


class Server:
    """`nextedit serve` in a subprocess on a free port."""

    def __init__(self, config: Path) -> None:
        from nextedit.serve.testing import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.log = config.with_suffix(".log")
        with open(self.log, "wb") as log:  # a file, not a pipe: a full pipe would stall the server
            self.proc = subprocess.Popen([str(ROOT / ".venv/bin/nextedit"), "serve", str(config), "--port",
                                          str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: far cheaper per request than httpx, so
    on a small machine the clients do not starve the server they measure."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict) -> tuple[int, dict]:
        """POST JSON; (status, parsed JSON body). Raises ConnectionError when the server is gone."""
        import orjson

        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = orjson.dumps(body)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        try:
            self.writer.write(head + data)
            await self.writer.drain()
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next(int(x.split(":", 1)[1]) for x in lines[1:] if x.lower().startswith("content-length:"))
            payload = await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise ConnectionError(str(exc)) from None
        return status, orjson.loads(payload) if payload else {}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# -- (1) overhead -------------------------------------------------------------------------------
def bench_overhead(tmp: Path, clients: int = 50, per_client: int = 40) -> list[tuple[str, str]]:
    from nextedit.predictors import get_predictor
    from nextedit.record import Example

    predictor = get_predictor("propagate")
    example = Example(id="x", snapshot=SNAP)
    raw = []
    for _ in range(clients * per_client // 4):
        t = time.perf_counter()
        predictor.predict(example)
        raw.append((time.perf_counter() - t) * 1000)
    cfg = tmp / "overhead.toml"
    write_config(cfg, tmp / "overhead.db", [{"name": "prop", "backend": "propagate", "share": 1.0}])
    server = Server(cfg)
    lat: list[float] = []
    server_total: list[float] = []
    handler_overhead: list[float] = []
    reasons: dict[str, int] = {}

    async def client(i: int) -> None:
        http = RawClient(server.url)
        for k in range(per_client):
            t = time.perf_counter()
            _, body = await http.post("/v1/predict", {"snapshot": SNAP, "client_id": f"c{i}-{k}", "user_id": f"u{i}"})
            lat.append((time.perf_counter() - t) * 1000)
            server_total.append(body["timing"]["total_ms"])
            handler_overhead.append(body["timing"]["total_ms"] - body["timing"]["backend_ms"])
            reasons[str(body["reason"])] = reasons.get(str(body["reason"]), 0) + 1

    async def main() -> None:
        await asyncio.gather(*(client(i) for i in range(clients)))

    async def single() -> list[float]:
        http, out = RawClient(server.url), []
        for k in range(400):
            t = time.perf_counter()
            await http.post("/v1/predict", {"snapshot": SNAP, "client_id": f"s{k}", "user_id": "s"})
            out.append((time.perf_counter() - t) * 1000)
        http.close()
        return out

    try:
        one = asyncio.run(single())
        cpu0, t0 = proc_cpu_s(server.proc.pid), time.perf_counter()
        asyncio.run(main())
        wall = time.perf_counter() - t0
        server_cpu_ms = (proc_cpu_s(server.proc.pid) - cpu0) * 1000 / len(lat)
    finally:
        server.stop()
    rows = [
        ("raw propagate call p50 / p99 (baseline)", f"{pct(raw, 50):.2f} / {pct(raw, 99):.2f} ms"),
        ("server, 1 client, client-observed p50 / p99", f"{pct(one, 50):.2f} / {pct(one, 99):.2f} ms"),
        ("overhead over the raw call, 1 client, p50 / p99",
         f"{pct(one, 50) - pct(raw, 50):.2f} / {pct(one, 99) - pct(raw, 99):.2f} ms"),
        (f"server, {clients} concurrent clients (closed loop, no think time), client-observed p50 / p99",
         f"{pct(lat, 50):.2f} / {pct(lat, 99):.2f} ms"),
        ("server-reported total_ms p50 / p99 (inside the handler)",
         f"{pct(server_total, 50):.2f} / {pct(server_total, 99):.2f} ms"),
        ("in-handler overhead (total_ms - backend_ms) p50 / p99",
         f"{pct(handler_overhead, 50):.2f} / {pct(handler_overhead, 99):.2f} ms"),
        (f"overhead over the raw call, {clients} clients, p50 / p99 (mostly queueing at saturation)",
         f"{pct(lat, 50) - pct(raw, 50):.2f} / {pct(lat, 99) - pct(raw, 99):.2f} ms"),
        ("client-observed / raw, p50", f"{pct(lat, 50) / pct(raw, 50):.1f}x"),
        ("server CPU per request (all of the server process)", f"{server_cpu_ms:.2f} ms"),
        ("throughput", f"{len(lat) / wall:.0f} requests/s ({len(lat)} requests; reasons {reasons})"),
    ]
    return rows


# -- (4) workers --------------------------------------------------------------------------------
def bench_workers(tmp: Path, clients: int = 32, per_client: int = 60) -> list[tuple[str, str]]:
    from nextedit.serve.testing import ServeProcess

    def run(name: str, workers: int, shared: str | None) -> tuple[float, float, float, int]:
        cfg = tmp / f"workers-{name}.toml"
        write_config(cfg, tmp / f"workers-{name}.db", [{"name": "prop", "backend": "propagate", "share": 1.0}])
        if shared:
            cfg.write_text(f'shared = "{shared}"\n' + cfg.read_text())
        lat: list[float] = []
        errors = 0

        async def client(i: int) -> None:
            nonlocal errors
            http = RawClient(server.url)
            for k in range(per_client):
                t = time.perf_counter()
                status, _ = await http.post("/v1/predict", {"snapshot": SNAP, "client_id": f"c{i}",
                                                            "user_id": f"u{i}-{k}"})
                lat.append((time.perf_counter() - t) * 1000)
                errors += status != 200
            http.close()

        async def main() -> None:
            await asyncio.gather(*(client(i) for i in range(clients)))

        with ServeProcess(cfg, workers=workers, env={"HF_HUB_OFFLINE": "1"}) as server:
            asyncio.run(main())  # warm-up: imports, connections, SQLite pages
            lat.clear()
            t0 = time.perf_counter()
            asyncio.run(main())
            wall = time.perf_counter() - t0
        return len(lat) / wall, pct(lat, 50), pct(lat, 99), errors

    runs = {"1 worker, shared = memory (baseline)": run("mem", 1, "memory"),
            "1 worker, SQLite shared state": run("one", 1, None),
            "2 workers, SQLite shared state": run("two", 2, None)}
    base = next(iter(runs.values()))[0]
    rows = [(name, f"{rps:.0f} req/s ({rps / base:.2f}x); p50 / p99 {p50:.2f} / {p99:.2f} ms; non-200: {err}")
            for name, (rps, p50, p99, err) in runs.items()]
    two, one = runs["2 workers, SQLite shared state"][0], runs["1 worker, SQLite shared state"][0]
    rows.append(("2 workers / 1 worker throughput (both with shared state)", f"{two / one:.2f}x"))
    rows.append(("clients", f"{clients} closed-loop clients x {per_client} predicts, in this process"))
    return rows


# -- (2) prompt lookup --------------------------------------------------------------------------
def bench_lookup(tmp: Path, requests: int = 8) -> list[tuple[str, str]]:
    arms = [{"name": "lookup", "backend": "local:smollm2-135m-instruct", "format": "zeta1", "share": 0.5,
             "options": {"prompt_lookup": True}},
            {"name": "plain", "backend": "local:smollm2-135m-instruct", "format": "zeta1", "share": 0.5,
             "options": {"prompt_lookup": False}}]
    cfg = tmp / "lookup.toml"
    write_config(cfg, tmp / "lookup.db", arms, deadline_ms=120_000)
    server = Server(cfg)
    times: dict[str, list[float]] = {"lookup": [], "plain": []}
    tokens: dict[str, list[int]] = {"lookup": [], "plain": []}
    reasons: dict[str, int] = {}
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as http:
            for arm in ("lookup", "plain"):  # warm both once
                http.post("/v1/predict", json={"snapshot": SNAP, "client_id": "w", "user_id": "w", "arm": arm})
            for k in range(requests):
                for arm in (("lookup", "plain") if k % 2 == 0 else ("plain", "lookup")):
                    t = time.perf_counter()
                    body = http.post("/v1/predict", json={"snapshot": SNAP, "client_id": f"c{k}", "user_id": "u",
                                                          "arm": arm}).json()
                    times[arm].append((time.perf_counter() - t) * 1000)
                    tokens[arm].append(body["tokens"]["output"])
                    reasons[str(body["reason"])] = reasons.get(str(body["reason"]), 0) + 1
    finally:
        server.stop()
    p50 = {a: pct(v, 50) for a, v in times.items()}
    return [
        ("SmolLM2-135M (CPU), prompt lookup off: e2e p50 (baseline)", (f"{p50['plain']:.0f} ms, "
         f"{np.mean(tokens['plain']):.0f} output tokens")),
        ("SmolLM2-135M (CPU), prompt lookup on: e2e p50", (f"{p50['lookup']:.0f} ms, "
         f"{np.mean(tokens['lookup']):.0f} output tokens")),
        ("lookup on / off (p50 latency ratio)", f"{p50['lookup'] / p50['plain']:.2f}"),
        ("answers (untrained model, zeta1 prompt: parse failures expected)", str(reasons)),
    ]


# -- (3) load and kill -9 -------------------------------------------------------------------------
class Editors:
    """Simulated editors: predict, then shown/accepted/rejected/settled events; acks are recorded."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        self.status: dict[int, int] = {}
        self.acked: list[int] = []
        self.errors = 0
        self.requests = 0
        self.latency: list[float] = []
        self.stop = False

    async def editor(self, i: int) -> None:
        rng = random.Random(i)
        http = RawClient(self.url)
        while not self.stop:
            try:
                t = time.perf_counter()
                status, body = await http.post("/v1/predict", {"snapshot": SNAP, "client_id": f"ed{i}",
                                                               "user_id": f"user{i}"})
                self.latency.append((time.perf_counter() - t) * 1000)
                self.requests += 1
                self.status[status] = self.status.get(status, 0) + 1
                if status != 200:
                    continue
                rid = body["request_id"]
                for kind in ("shown", rng.choice(["accepted", "rejected"])):
                    event = {"type": kind, "request_id": rid, "reason": "typed-over" if kind == "rejected" else None}
                    status, ack = await http.post("/v1/events", event)
                    self.status[status] = self.status.get(status, 0) + 1
                    if status == 200:
                        self.acked.append(ack["event_id"])
                await asyncio.sleep(rng.uniform(0.05, 0.3))  # typing between predictions
            except ConnectionError:
                self.errors += 1
                await asyncio.sleep(0.1)
        http.close()

    async def run(self, seconds: float, on_time: float | None = None, action=None) -> None:
        tasks = [asyncio.create_task(self.editor(i)) for i in range(self.n)]
        if on_time is not None and action is not None:
            await asyncio.sleep(on_time)
            action()
            await asyncio.sleep(max(0.0, seconds - on_time))
        else:
            await asyncio.sleep(seconds)
        self.stop = True
        await asyncio.gather(*tasks)


def bench_load(tmp: Path, editors: int, seconds: float) -> list[tuple[str, str]]:
    db = tmp / "load.db"
    cfg = tmp / "load.toml"
    write_config(cfg, db, [{"name": "control", "backend": "noop", "share": 0.5, "control": True},
                           {"name": "prop", "backend": "propagate", "share": 0.5}])
    server = Server(cfg)
    load = Editors(server.url, editors)
    try:
        asyncio.run(load.run(seconds))
    finally:
        server.stop()
    fives = sum(v for k, v in load.status.items() if k >= 500)
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT COUNT(*) FROM events WHERE type IN ('shown','accepted','rejected')").fetchone()[0]
    conn.close()

    server2 = Server(cfg)
    crash = Editors(server2.url, editors)
    asyncio.run(crash.run(6.0, on_time=3.0, action=server2.kill9))
    conn = sqlite3.connect(db)
    ids = {r[0] for r in conn.execute("SELECT id FROM events")}
    conn.close()
    lost = [i for i in crash.acked if i not in ids]
    return [
        (f"{editors} editors x {seconds:.0f} s: predict requests", f"{load.requests} ({load.requests / seconds:.0f}/s)"),
        ("predict latency under load, client-observed p50 / p99",
         f"{pct(load.latency, 50):.1f} / {pct(load.latency, 99):.1f} ms"),
        ("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(load.status.items()))),
        ("5xx responses (target 0)", str(fives)),
        ("client errors (connection)", str(load.errors)),
        ("acknowledged events / stored", f"{len(load.acked)} / {stored}"),
        ("kill -9 mid-run: events acknowledged before the kill", str(len(crash.acked))),
        ("acknowledged events lost after kill -9 (target 0)", str(len(lost))),
        ("requests refused after the kill (connection errors)", str(crash.errors)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="overhead,lookup,load")
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--editors", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()
    parts = args.parts.split(",")
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "overhead" in parts:
            sections.append(("server overhead (propagate backend)", bench_overhead(tmp)))
            print(sections[-1])
        if "lookup" in parts:
            sections.append(("prompt lookup (SmolLM2-135M, CPU)", bench_lookup(tmp)))
            print(sections[-1])
        if "workers" in parts:
            sections.append(("workers (nextedit serve --workers N, propagate backend)", bench_workers(tmp)))
            print(sections[-1])
        if "load" in parts:
            sections.append((f"load ({args.editors} simulated editors) and kill -9",
                             bench_load(tmp, args.editors, args.load_seconds)))
            print(sections[-1])
    lines: list[str] = []
    for title, rows in sections:
        lines += [f"{title}:", "", *markdown_table(rows), ""]
    text = section("serve", lines[:-1], extra="shared with other work",
                   command=(f"python bench/serve.py --parts {args.parts} --editors {args.editors} "
                            f"--load-seconds {args.load_seconds:g}"),
                   note=(". Server in a subprocess (`nextedit serve`, one uvicorn worker, SQLite WAL store), "
                         "clients in this process"))
    print(text)
    if not args.no_write:
        append_text(text)


if __name__ == "__main__":
    sys.exit(main())
