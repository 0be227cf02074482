"""nextedit serve scaled out: two real server processes behind a round-robin proxy, sharing state through
a real PostgreSQL (LISTEN/NOTIFY + tables) or a SQLite side file (`--workers 2` on one host)."""

from __future__ import annotations

import http.client
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
from postgres_support import postgres_cluster

from nextedit.metrics.kept import kept_rate
from nextedit.serve.testing import ServeProcess

KEY, ADMIN = "scale-key", "scale-admin"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = "def total(items, qty):\n    return sum(amount for amount in items) * amount\n\nprint(amount)\n"
SNAPSHOT = {
    "path": "shop/cart.py", "text": TEXT, "cursor": 10, "editable": [0, len(TEXT)],
    "history": [{"path": "shop/cart.py", "old_path": "shop/cart.py",
                 "diff": "@@ -1,2 +1,2 @@\n-def total(items, amount):\n+def total(items, qty):\n"
                         "     return sum(amount for amount in items) * amount\n"}],
}


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        server = self.server
        for _ in range(len(server.ports)):  # a replica that refuses connections (dead) is skipped
            with server.lock:
                port = server.ports[next(server.turn) % len(server.ports)]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
            except ConnectionRefusedError:
                conn.close()
                continue
            try:
                resp = conn.getresponse()
                status, data, retry_after = resp.status, resp.read(), resp.getheader("retry-after")
            except (OSError, http.client.HTTPException) as exc:  # died while answering: not acknowledged
                status, retry_after = 502, None
                data = f'{{"error": "upstream {type(exc).__name__}"}}'.encode()
            finally:
                conn.close()
            with server.lock:
                server.routes.append((self.path, port))
            break
        else:
            status, data, retry_after = 503, b'{"error": "no replica"}', None
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


class _ProxyServer(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 resets connections when the tests' 24 concurrent clients arrive at
    # once on a loaded machine; a load balancer accepts a burst.
    request_queue_size = 128


@contextmanager
def round_robin(ports: list[int]) -> Iterator[ThreadingHTTPServer]:
    """A round-robin HTTP proxy over the replicas; `.routes` lists (path, replica port) per request."""
    httpd = _ProxyServer(("127.0.0.1", 0), _Proxy)
    httpd.daemon_threads = True
    httpd.ports, httpd.turn, httpd.lock, httpd.routes = ports, itertools.count(), threading.Lock(), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_config(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(f"""
store = "{store}"
deadline_ms = 20000
[auth]
api_keys = ["{KEY}"]
admin_token = "{ADMIN}"
[limits]
predict_per_user_per_minute = 20
[[arms]]
name = "fast"
backend = "propagate"
share = 0.5
[[arms]]
name = "slow"
backend = "propagate"
share = 0.5
delay_ms = 4000
""")
    return path


@pytest.fixture(params=["postgres", "sqlite"])
def cluster(request, tmp_path):
    """(proxy URL, replicas, store reader): two replicas over PostgreSQL (1 worker each) or over one
    SQLite store and side file (2 workers each)."""
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_cluster())
            config, workers = write_config(tmp_path, url), 1

            def stored(sql: str, *params: object) -> list[tuple]:
                import psycopg

                with psycopg.connect(url) as conn:
                    return list(conn.execute(sql.replace("?", "%s"), params).fetchall())
        else:
            db = tmp_path / "events.db"
            config, workers = write_config(tmp_path, str(db)), 2

            def stored(sql: str, *params: object) -> list[tuple]:
                conn = sqlite3.connect(db)
                try:
                    return conn.execute(sql, params).fetchall()
                finally:
                    conn.close()
        a = stack.enter_context(ServeProcess(config, workers=workers))
        b = stack.enter_context(ServeProcess(config, workers=workers))
        proxy = stack.enter_context(round_robin([a.port, b.port]))
        yield f"http://127.0.0.1:{proxy.server_address[1]}", proxy, (a, b), stored, config


def predict(client: httpx.Client, arm: str, *, client_id: str = "editor-1", user: str = "u1") -> httpx.Response:
    return client.post("/v1/predict", json={"snapshot": SNAPSHOT, "client_id": client_id, "user_id": user,
                                            "arm": arm})


def inflight(server: ServeProcess) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("nextedit_inflight_requests "))
    return float(line.split()[1])


def test_superseded_request_on_one_replica_is_cancelled_by_a_newer_one_on_the_other(cluster):
    url, proxy, (a, b), _, _ = cluster
    answers: dict[str, httpx.Response] = {}

    def slow() -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as own:
            answers["old"] = predict(own, "slow")

    old = threading.Thread(target=slow)
    old.start()  # round robin: the first request goes to replica A
    deadline, running = time.monotonic() + 20, 0.0
    while running < 1 and time.monotonic() < deadline:  # (each poll reaches one of A's workers)
        running = inflight(a)
        time.sleep(0.02)
    assert running >= 1, "the slow request never started on replica A"
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        new = predict(client, "fast")  # same client and file, on replica B
    old.join(timeout=30)
    # The slow request was in flight on A, so the newer one was answered by B.
    assert sorted(port for _, port in proxy.routes) == sorted([a.port, b.port])
    assert new.status_code == 200 and new.json()["reason"] is None
    first = answers["old"].json()
    assert first["reason"] == "cancelled"
    assert new.json()["request_id"] in first["detail"]


def test_settled_events_join_predictions_made_on_the_other_replica(cluster):
    url, proxy, (a, b), stored, _ = cluster
    settled = TEXT.replace("amount", "qty").replace("print(qty)", "print(qty, items)")
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        for n in range(3):
            made = predict(client, "fast", client_id=f"join-{n}").json()
            assert made["prediction"] is not None
            ack = client.post("/v1/events", json={"type": "settled", "request_id": made["request_id"],
                                                  "settled_text": settled, "quiet_s": 5.0})
            shown = client.post("/v1/events", json={"type": "shown", "request_id": made["request_id"]})
            assert shown.status_code == 200 and ack.status_code == 200, ack.text
            assert ack.json()["arm"] == "fast" and shown.json()["arm"] == "fast"
            # Not collectable, so no region reached the store: only the shared state could join it.
            want = kept_rate(TEXT, TEXT.replace("amount", "qty"), settled)
            assert ack.json()["kept"]["kept_rate"] == pytest.approx(want.kept_rate, abs=1e-6)
            assert stored("SELECT request_id FROM telemetry WHERE id = ?", ack.json()["event_id"]) == [
                (made["request_id"],)]
    ports = [port for _, port in proxy.routes]
    for n in range(3):  # each settled event went to the other replica than its prediction
        assert ports[3 * n] != ports[3 * n + 1]
    assert {a.port, b.port} == set(ports)


def test_kill_9_one_replica_under_load_loses_no_acknowledged_event(cluster):
    url, _, (a, _b), stored, _ = cluster
    acked: list[tuple[int, str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        ids = [predict(client, "fast", client_id=f"load-{n}").json()["request_id"] for n in range(4)]

        def load(worker: int) -> None:
            with httpx.Client(base_url=url, headers=AUTH, timeout=60) as own:
                for n in itertools.count():
                    if stop.is_set():
                        return
                    rid = ids[(worker + n) % len(ids)]
                    try:
                        resp = own.post("/v1/events", json={"type": "shown", "request_id": rid,
                                                            "reason": f"w{worker}-{n}"})
                    except httpx.HTTPError:
                        continue
                    if resp.status_code == 200:
                        with lock:
                            acked.append((resp.json()["event_id"], rid, f"w{worker}-{n}"))

        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        a.kill()  # kill -9, mid-load
        at_kill = len(acked)
        while len(acked) < at_kill + 40 and time.monotonic() < deadline + 30:
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert at_kill >= 40 and len(acked) >= at_kill + 40
    rows = {row[0]: (row[1], row[2]) for row in stored("SELECT id, request_id, payload FROM events")}
    missing = [e for e in acked if e[0] not in rows]
    assert not missing, f"{len(missing)} acknowledged events are not in the store"
    for event_id, rid, reason in acked:
        assert rows[event_id][0] == rid and orjson.loads(rows[event_id][1])["reason"] == reason


def test_rate_limits_count_across_replicas_and_a_reload_reaches_every_worker(cluster):
    url, proxy, (a, b), _, config = cluster
    if time.time() % 60 > 45:  # limits count in one-minute windows: start well inside one
        time.sleep(61 - time.time() % 60)
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        answers = [predict(client, "fast", client_id=f"rl-{n}", user="limited") for n in range(21)]
        assert [r.status_code for r in answers[:20]] == [200] * 20
        assert answers[20].status_code == 429  # the 21st in the minute, whichever replica took it
        assert "20 requests per minute" in answers[20].json()["error"]
        assert int(answers[20].headers["retry-after"]) >= 1
        assert {port for _, port in proxy.routes} == {a.port, b.port}

        # Sticky arms: a user gets the same arm from either replica (and worker); all at once, as the
        # slow arm takes seconds.
        def arm_of(job: tuple[int, int]) -> tuple[int, str]:
            user, k = job
            body = {"snapshot": SNAPSHOT, "client_id": f"sticky-{user}-{k}", "user_id": f"sticky-user-{user}"}
            with httpx.Client(base_url=url, headers=AUTH, timeout=60) as own:
                return user, own.post("/v1/predict", json=body).json()["arm"]

        with ThreadPoolExecutor(24) as pool:
            served = list(pool.map(arm_of, [(user, k) for user in range(8) for k in range(3)]))
        arms = {user: {arm for u, arm in served if u == user} for user in range(8)}
        assert all(len(a) == 1 for a in arms.values()) and len(set().union(*arms.values())) == 2

        config.write_text(config.read_text().replace('name = "fast"', 'name = "fast"\nmodel_version = "fast-v2"'))
        reload = httpx.post(a.url + "/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        assert reload.status_code == 200, reload.text
        deadline, streak, n = time.monotonic() + 30, 0, 0
        while streak < 8 and time.monotonic() < deadline:  # every worker of both replicas answers v2
            with httpx.Client(base_url=url, headers=AUTH, timeout=60) as fresh:  # new connections
                n += 1
                version = predict(fresh, "fast", client_id=f"rv-{n}", user=f"u-{n}").json()["model_version"]
            streak = streak + 1 if version == "fast-v2" else 0
        assert streak >= 8


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_shared_state_between_two_handles(kind, tmp_path):
    """Two handles on one shared component (as two processes hold them): ordered messages, remembered
    predictions and counters are seen by both."""
    from nextedit.serve.shared import open_shared

    with ExitStack() as stack:
        url = stack.enter_context(postgres_cluster()) if kind == "postgres" else str(tmp_path / "shared.db")
        one, two = open_shared(url), open_shared(url)
        seen: list[tuple[str, str, int, str]] = []
        got = threading.Event()

        def listener(*msg: object) -> None:
            seen.append(msg)
            got.set()

        two.start(listener)
        stack.callback(two.close)
        stack.callback(one.close)
        two.busy.set()
        first, second = one.announce("c\x1fa.py", "r1"), one.announce("c\x1fa.py", "r2")
        assert second > first
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            got.wait(0.1)
        assert seen == [("cancel", "c\x1fa.py", first, "r1"), ("cancel", "c\x1fa.py", second, "r2")]
        one.remember("r2", {"arm": "a", "before": "x", "after": "y"}, ttl_s=60)
        assert two.recall("r2") == {"arm": "a", "before": "x", "after": "y"}
        one.remember("gone", {"arm": "a"}, ttl_s=0)
        assert two.recall("gone") is None and two.recall("never") is None
        assert [one.hit("b", 60), two.hit("b", 60), one.hit("b", 60)] == [1, 2, 3]


def test_a_request_numbered_after_a_newer_announcement_is_cancelled_at_once():
    """Messages can arrive before a request learns its own number: the later number still wins."""
    import asyncio

    from nextedit.serve.cancel import InflightRegistry, inflight_key

    async def scenario() -> tuple[bool, bool, str]:
        registry = InflightRegistry()
        older = registry.start("c", "a.py", "r-old")
        registry.announced(inflight_key("c", "a.py"), 7, "r-new")  # from another process, numbered 7
        registry.numbered("c", "a.py", older, 5)  # ours came back numbered 5: superseded
        newer = registry.start("c", "b.py", "r-b")
        registry.announced(inflight_key("c", "b.py"), 3, "r-stale")  # an older one elsewhere
        registry.numbered("c", "b.py", newer, 9)
        return older.cancel.is_set(), newer.cancel.is_set(), await older.superseded

    assert asyncio.run(scenario()) == (True, False, "r-new")


def test_workers_refuse_a_memory_only_shared_state_and_bad_urls_are_named(tmp_path):
    from typer.testing import CliRunner

    from nextedit.cli import app
    from nextedit.serve.shared import SharedStateError, open_shared, shared_url

    config = write_config(tmp_path, str(tmp_path / "events.db"))
    config.write_text('shared = "memory"\n' + config.read_text())
    result = CliRunner().invoke(app, ["serve", str(config), "--workers", "2"])
    assert result.exit_code == 2
    assert "field shared: 'memory' is one process only" in " ".join(result.output.split())
    assert shared_url(None, "sqlite:////var/ev.db") == "/var/ev.db-shared.db"
    assert shared_url(None, "postgresql://db/x") == "postgresql://db/x"
    assert shared_url(None, ":memory:") == "memory"  # no side file left in the working directory
    assert shared_url("memory", "postgresql://db/x") == "memory"
    with pytest.raises(SharedStateError, match="unknown shared-state URL"):
        open_shared("redis://localhost")


def test_workers_check_the_shared_state_before_starting(tmp_path):
    from typer.testing import CliRunner

    from nextedit.cli import app

    config = write_config(tmp_path, str(tmp_path / "events.db"))
    config.write_text('shared = "redis://cache:6379"\n' + config.read_text())
    result = CliRunner().invoke(app, ["serve", str(config), "--workers", "2"])
    assert result.exit_code == 2 and "unknown shared-state URL" in result.output


def test_per_key_limit_covers_every_v1_route(tmp_path):
    from nextedit.serve.config import parse_config
    from nextedit.serve.testing import ServerThread

    config = parse_config({"store": str(tmp_path / "events.db"), "auth": {"api_keys": [KEY, "other-key"]},
                           "limits": {"requests_per_key_per_minute": 3},
                           "arms": [{"name": "prop", "backend": "propagate"}]})
    if time.time() % 60 > 50:  # one-minute windows: start well inside one
        time.sleep(61 - time.time() % 60)
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        statuses = [client.get("/v1/models").status_code,
                    predict(client, "prop").status_code,
                    client.post("/v1/completions", json={"prompt": "x", "max_tokens": 4}).status_code,
                    client.get("/v1/models").status_code]
        other = client.get("/v1/models", headers={"Authorization": "Bearer other-key"}).status_code
    assert statuses == [200, 200, 400, 429] and other == 200  # propagate cannot complete: 400, still counted
