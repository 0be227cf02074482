"""Inference engines as arms: `nextedit serve` in front of a scripted OpenAI-compatible server over real
HTTP: the options sent (max tokens from the editable region, stops, engine options), cancellation of the
upstream request (superseded, deadline) and upstream latency reported apart."""

from __future__ import annotations

import json
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from nextedit.formats import get_format
from nextedit.serve.config import parse_config
from nextedit.serve.testing import ServerThread

KEY = "engine-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = "def total(items, qty):\n    return sum(amount for amount in items) * amount\n\nprint(amount)\n"
SNAPSHOT = {
    "path": "shop/cart.py", "text": TEXT, "cursor": 10, "editable": [0, len(TEXT)],
    "history": [{"path": "shop/cart.py", "old_path": "shop/cart.py",
                 "diff": "@@ -1,2 +1,2 @@\n-def total(items, amount):\n+def total(items, qty):\n"
                         "     return sum(amount for amount in items) * amount\n"}],
}
START, END, CURSOR = "<|editable_region_start|>\n", "<|editable_region_end|>", "<|user_cursor_is_here|>"


def rewrite(body: dict[str, Any]) -> str:
    """A zeta1 answer to the prompt: its editable region with `amount` renamed (the stop string dropped)."""
    region = body["prompt"].rsplit(START, 1)[1].split(END, 1)[0].replace(CURSOR, "")
    return START + region.replace("amount", "qty")


class _Engine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        record = {"path": self.path, "body": body, "disconnected": False, "finished": False}
        self.server.received.append(record)
        delay = self.server.delay(body)
        end = time.monotonic() + delay
        while time.monotonic() < end:  # "generating": stop as soon as the client goes away
            readable, _, _ = select.select([self.connection], [], [], 0.005)
            if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                record["disconnected"] = True
                return
        reply = json.dumps({"choices": [{"index": 0, "text": rewrite(body), "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 120, "completion_tokens": 30}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        record["finished"] = True


@contextmanager
def engine(delay: Callable[[dict[str, Any]], float] = lambda body: 0.0) -> Iterator[ThreadingHTTPServer]:
    """A scripted OpenAI-compatible /v1/completions server; `.received` records every request."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Engine)
    httpd.daemon_threads = True
    httpd.received, httpd.delay = [], delay
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def serve(tmp_path, upstream: ThreadingHTTPServer, *, deadline_ms: float = 5000, **options: Any) -> ServerThread:
    url = f"http://127.0.0.1:{upstream.server_port}/v1#student"
    return ServerThread(parse_config({
        "store": str(tmp_path / "events.db"), "deadline_ms": deadline_ms, "auth": {"api_keys": [KEY]},
        "arms": [{"name": "engine", "backend": f"openai-compatible:{url}", "format": "zeta1",
                  "options": options}]}))


def predict(client: httpx.Client, client_id: str = "c1") -> dict[str, Any]:
    resp = client.post("/v1/predict", json={"snapshot": SNAPSHOT, "client_id": client_id, "user_id": "u1"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_llama_cpp_arm_sends_region_sized_max_tokens_stops_and_speculation_options(tmp_path):
    with engine() as upstream, serve(tmp_path, upstream, engine="llama.cpp", max_tokens=512, draft_max=16,
                                     draft_min=2, n_probs=3, stop=["\n\n\n"]) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        answer = predict(client)
    assert answer["reason"] is None and answer["prediction"] is not None
    (request,) = upstream.received
    body = request["body"]
    assert request["path"] == "/v1/completions" and body["model"] == "student"
    assert body["max_tokens"] == math.ceil(len(TEXT) / 3.0 * 1.5) + 64  # from the editable region, under 512
    assert body["stop"] == [*get_format("zeta1").stop, "\n\n\n"]
    assert body["cache_prompt"] is True and body["n_probs"] == 3
    assert body["speculative.n_max"] == 16 and body["speculative.n_min"] == 2


def test_vllm_arm_sends_no_llama_cpp_options_and_caps_max_tokens(tmp_path):
    with engine() as upstream, serve(tmp_path, upstream, engine="vllm", max_tokens=40,
                                     extra_body={"repetition_penalty": 1.0}) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        predict(client)
    body = upstream.received[0]["body"]
    assert body["max_tokens"] == 40 and body["repetition_penalty"] == 1.0
    assert not {"cache_prompt", "n_probs", "speculative.n_max"} & set(body)


def test_superseded_request_cancels_the_upstream_generation(tmp_path):
    slow = {"first": True}

    def delay(body: dict[str, Any]) -> float:
        first, slow["first"] = slow["first"], False
        return 30.0 if first else 0.0

    with engine(delay) as upstream, serve(tmp_path, upstream, deadline_ms=20000) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        answers: dict[str, Any] = {}
        old = threading.Thread(target=lambda: answers.setdefault("old", predict(client)))
        old.start()
        wait_for(lambda: len(upstream.received) == 1, "the first request never reached the engine")
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as other:
            new = predict(other)
        old.join(timeout=30)
        wait_for(lambda: upstream.received[0]["disconnected"], "the engine never saw the request go away")
    assert answers["old"]["reason"] == "cancelled" and new["reason"] is None
    assert not upstream.received[0]["finished"] and upstream.received[1]["finished"]


def test_deadline_cancels_the_upstream_generation(tmp_path):
    with engine(lambda body: 30.0) as upstream, serve(tmp_path, upstream, deadline_ms=300) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        answer = predict(client)
        wait_for(lambda: upstream.received and upstream.received[0]["disconnected"],
                 "the engine never saw the request go away")
    assert answer["reason"] == "timeout" and not upstream.received[0]["finished"]


def test_upstream_latency_is_reported_apart_in_answer_metrics_and_events(tmp_path):
    with engine(lambda body: 0.05) as upstream, serve(tmp_path, upstream) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        answer = predict(client)
        metrics = client.get("/metrics").text
        store = server.state.store
        wait_for(lambda: store.by_request(answer["request_id"], "telemetry", "predicted"), "no telemetry row")
        row = store.by_request(answer["request_id"], "telemetry", "predicted")[0].payload
    timing = answer["timing"]
    assert isinstance(timing["upstream_ms"], float) and 0 < timing["upstream_ms"] <= timing["backend_ms"]
    assert 'nextedit_upstream_latency_seconds_count{arm="engine"} 1.0' in metrics
    assert row["upstream_ms"] == timing["upstream_ms"]
    assert orjson.loads(orjson.dumps(row))["backend_ms"] == timing["backend_ms"]


def test_a_baseline_arm_reports_no_upstream_latency(tmp_path):
    config = parse_config({"store": str(tmp_path / "events.db"), "auth": {"api_keys": [KEY]},
                           "arms": [{"name": "prop", "backend": "propagate"}]})
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        answer = predict(client)
    assert answer["timing"]["upstream_ms"] is None


@pytest.mark.parametrize(("options", "message"), [({"engine": "tgi"}, "engine must be one of"),
                                                  ({"chars_per_token": 0}, "chars_per_token")])
def test_bad_engine_options_are_refused_with_the_field(tmp_path, options, message):
    from nextedit.predictors import PredictorError, get_predictor

    with pytest.raises(PredictorError, match=message):
        get_predictor("openai-compatible:http://127.0.0.1:9/v1", format="zeta1", **options)
