"""A real HTTP server on 127.0.0.1 speaking the OpenAI and Anthropic wire formats, for tests.

Scripted replies, injected faults (429 + Retry-After, 500, delays past the client's timeout,
truncated JSON, garbage text), batch endpoints, and a log of every request it received.

    with LLMServer() as server:                 # or the `llm_server` pytest fixture
        server.script(Fault.rate_limit(0.05), Fault.server_error(), "the reply")
        client = get_client("openai-compatible:" + server.openai_url + "#m")
        ...
        assert server.count("/v1/chat/completions") == 3

Endpoints: `GET /_stats` (request count, not itself counted); OpenAI `POST /v1/chat/completions`, `POST /v1/files`, `GET /v1/files/ID/content`,
`POST /v1/batches`, `GET /v1/batches/ID`; Anthropic `POST /v1/messages`,
`POST /v1/messages/batches`, `GET /v1/messages/batches/ID`, `GET /v1/messages/batches/ID/results`.
Replies come from the script queue first (shared by both APIs, consumed in arrival order), then
from `responder(api, body) -> str` (default: "echo: " + the last user message).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["Fault", "LLMServer", "Received", "llm_server"]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour (or a scripted reply when kind == "reply")."""

    kind: str  # "reply" | "rate_limit" | "server_error" | "delay" | "truncated" | "garbage" | "item_error"
    text: str = ""
    retry_after: float | None = None
    seconds: float = 0.0
    status: int = 200

    @staticmethod
    def rate_limit(retry_after: float | None = 0.05) -> Fault:
        """429 with a Retry-After header (seconds; None leaves the header out)."""
        return Fault("rate_limit", retry_after=retry_after, status=429)

    @staticmethod
    def server_error(status: int = 500) -> Fault:
        """A 5xx with an error JSON body."""
        return Fault("server_error", status=status)

    @staticmethod
    def delay(seconds: float, text: str | None = None) -> Fault:
        """Wait `seconds` before replying normally (longer than the client timeout = a timeout)."""
        return Fault("delay", seconds=seconds, text=text or "")

    @staticmethod
    def truncated() -> Fault:
        """200 with a JSON body cut in half."""
        return Fault("truncated")

    @staticmethod
    def garbage() -> Fault:
        """200 with text/html that is not JSON at all."""
        return Fault("garbage")

    @staticmethod
    def item_error(message: str = "scripted item failure") -> Fault:
        """In a batch: this item fails (errored result). Outside a batch: a 400 invalid request."""
        return Fault("item_error", text=message, status=400)


@dataclass
class Received:
    """One request the server saw."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, raw bytes for uploads, None for GET


@dataclass
class _Batch:
    id: str
    api: str  # "openai" | "anthropic"
    items: list[tuple[str, dict]]  # (custom_id, request body)
    created: float
    polls: int = 0
    results: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # OpenAI error-file rows (expired items)
    done: bool = False
    expired: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None


def _tokens(text: str) -> int:
    """A crude token count (whitespace words, at least 1 for non-empty text)."""
    return max(len(text.split()), 1 if text else 0)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def default_responder(api: str, body: dict) -> str:
    """'echo: ' + the text of the last message."""
    messages = body.get("messages") or [{}]
    return "echo: " + _content_text(messages[-1].get("content"))


class LLMServer:
    """Threaded stdlib HTTP server; start with `with LLMServer() as s:` or `.start()`/`.stop()`."""

    def __init__(self, responder: Callable[[str, dict], str | Fault] | None = None, *,
                 latency_s: float = 0.0, batch_polls_until_done: int = 1, log_bodies: bool = True,
                 ignore_n: bool = False, expire_after: int | None = None):
        self.responder = responder or default_responder
        self.latency_s = latency_s
        self.batch_polls_until_done = batch_polls_until_done
        self.log_bodies = log_bodies
        self.ignore_n = ignore_n  # answer one choice whatever `n` asks (like servers without `n`)
        self.expire_after = expire_after  # batches: only this many items finish, the rest expire
        self.received: list[Received] = []
        self.active = 0  # completion requests being handled right now
        self.max_active = 0  # the most handled at once
        self._queue: list[str | Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, _Batch] = {}
        self._seen_prefixes: set[str] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> LLMServer:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        server = self

        class Handler(_Handler):
            owner = server

        httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LLMServer:  # noqa: PYI034 - returns this exact class
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT (the Anthropic SDK's base_url)."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_url(self) -> str:
        """http://127.0.0.1:PORT/v1 (the OpenAI SDK's base_url)."""
        return self.url + "/v1"

    # ---- scripting and inspection -------------------------------------------------------
    def script(self, *items: str | Fault) -> None:
        """Queue replies (str) and faults, consumed one per completion request in arrival order."""
        with self._lock:
            self._queue.extend(items)

    def pending(self) -> int:
        """How many scripted items are still queued."""
        with self._lock:
            return len(self._queue)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests received (optionally only those to `path`, which may be a prefix ending in '*')."""
        with self._lock:
            rows = list(self.received)
        return sum(1 for r in rows if _path_matches(r.path, path) and (method is None or r.method == method))

    def requests(self, path: str | None = None) -> list[Received]:
        """Received requests (optionally only those to `path`)."""
        with self._lock:
            return [r for r in self.received if _path_matches(r.path, path)]

    def reset(self) -> None:
        """Forget received requests and the script (batches and files are kept)."""
        with self._lock:
            self.received.clear()
            self._queue.clear()
            self.max_active = 0

    # ---- internals used by the handler --------------------------------------------------
    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _next_action(self, api: str, body: dict) -> str | Fault:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        return self.responder(api, body)

    def _cached_prefix_tokens(self, api: str, body: dict) -> int:
        """Tokens of the system prefix when the same prefix was seen before (simulated prompt cache)."""
        if api == "anthropic":
            system = body.get("system")
            if not isinstance(system, list) or not any("cache_control" in b for b in system
                                                        if isinstance(b, dict)):
                return 0
            prefix = _content_text(system)
        else:
            msgs = body.get("messages") or []
            prefix = _content_text(msgs[0].get("content")) if msgs and msgs[0].get("role") in (
                "system", "developer") else ""
            if _tokens(prefix) < 3:
                return 0
        key = api + "\0" + prefix
        with self._lock:
            hit = key in self._seen_prefixes
            self._seen_prefixes.add(key)
        return _tokens(prefix) if hit else 0

    def openai_completion(self, body: dict, texts: list[str]) -> dict:
        """A chat.completion object for these sample texts."""
        prompt = sum(_tokens(_content_text(m.get("content"))) for m in body.get("messages", []))
        cached = self._cached_prefix_tokens("openai", body)
        out = sum(_tokens(t) for t in texts)
        return {
            "id": self._next_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [{"index": i, "message": {"role": "assistant", "content": t},
                         "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
                      "prompt_tokens_details": {"cached_tokens": cached}},
        }

    def anthropic_message(self, body: dict, text: str) -> dict:
        """A Messages API message object for this text."""
        system_tokens = _tokens(_content_text(body.get("system")))
        cached = self._cached_prefix_tokens("anthropic", body)
        created = system_tokens if (not cached and isinstance(body.get("system"), list)
                                    and any("cache_control" in b for b in body["system"])) else 0
        msgs = sum(_tokens(_content_text(m.get("content"))) for m in body.get("messages", []))
        return {
            "id": self._next_id("msg_"), "type": "message", "role": "assistant",
            "model": body.get("model", "unknown"), "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": msgs + system_tokens - cached - created, "output_tokens": _tokens(text),
                      "cache_creation_input_tokens": created, "cache_read_input_tokens": cached},
        }


class _Server(ThreadingHTTPServer):
    """A thread per connection; a listen backlog big enough for 64+ clients connecting at once."""

    daemon_threads = True
    request_queue_size = 512


def _path_matches(path: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; `owner` is the LLMServer."""

    owner: LLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    # ---- plumbing -----------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, status: int, message: str, api: str, headers: dict[str, str] | None = None) -> None:
        if api == "anthropic":
            kind = {429: "rate_limit_error", 400: "invalid_request_error", 404: "not_found_error"}.get(
                status, "api_error")
            self._json(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)
        else:
            self._json(status, {"error": {"message": message, "type": "server_error", "code": None}}, headers)

    def _record(self, body: Any) -> None:
        owner = self.owner
        with owner._lock:
            owner.received.append(Received(self.command, self.path.split("?")[0], dict(self.headers),
                                           body if owner.log_bodies else None))

    # ---- routes -------------------------------------------------------------------------
    def do_GET(self) -> None:
        """Batch status, batch results, file content."""
        path = self.path.split("?")[0]
        if path == "/_stats":  # for benchmarks running the server in another process; not recorded
            return self._json(200, {"requests": self.owner.count(), "max_active": self.owner.max_active})
        self._record(None)
        if m := re.fullmatch(r"/v1/batches/([\w-]+)", path):
            return self._openai_batch_status(m.group(1))
        if m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
            data = self.owner._files.get(m.group(1))
            if data is None:
                return self._error(404, "no such file", "openai")
            return self._send(200, data, "application/octet-stream")
        if m := re.fullmatch(r"/v1/messages/batches/([\w-]+)", path):
            return self._anthropic_batch_status(m.group(1))
        if m := re.fullmatch(r"/v1/messages/batches/([\w-]+)/results", path):
            return self._anthropic_batch_results(m.group(1))
        self._error(404, f"no route GET {path}", "openai")

    def do_POST(self) -> None:
        """Completions, messages, uploads, batch creation."""
        path = self.path.split("?")[0]
        raw = self._read_body()
        if path == "/v1/files":
            self._record(raw)
            return self._openai_upload(raw)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._record(raw)
            return self._error(400, "body is not JSON", "openai")
        self._record(body)
        if path == "/v1/chat/completions":
            return self._completion("openai", body)
        if path == "/v1/messages":
            return self._completion("anthropic", body)
        if path == "/v1/batches":
            return self._openai_batch_create(body)
        if path == "/v1/messages/batches":
            return self._anthropic_batch_create(body)
        self._error(404, f"no route POST {path}", "openai")

    # ---- synchronous completions --------------------------------------------------------
    def _completion(self, api: str, body: dict) -> None:
        owner = self.owner
        with owner._lock:
            owner.active += 1
            owner.max_active = max(owner.max_active, owner.active)
        try:
            self._completion_inner(api, body)
        finally:
            with owner._lock:
                owner.active -= 1

    def _completion_inner(self, api: str, body: dict) -> None:
        owner = self.owner
        action = owner._next_action(api, body)
        if owner.latency_s:
            time.sleep(owner.latency_s)
        if isinstance(action, Fault):
            if action.kind == "rate_limit":
                headers = {} if action.retry_after is None else {"Retry-After": f"{action.retry_after:g}"}
                return self._error(429, "rate limited (scripted)", api, headers)
            if action.kind == "server_error":
                return self._error(action.status, "internal error (scripted)", api)
            if action.kind == "item_error":
                return self._error(400, action.text, api)
            if action.kind == "garbage":
                return self._send(200, b"<html><body>502 Bad Gateway, try later</body></html>", "text/html")
            if action.kind == "truncated":
                full = json.dumps(self._reply_object(api, body, "truncated reply")).encode()
                return self._send(200, full[: len(full) // 2])
            if action.kind == "delay":
                time.sleep(action.seconds)
                action = action.text or owner.responder(api, body)
                if isinstance(action, Fault):
                    action = "delayed"
            else:
                raise AssertionError(f"unknown fault {action.kind}")
        self._json(200, self._reply_object(api, body, action))

    def _reply_object(self, api: str, body: dict, text: str) -> dict:
        owner = self.owner
        if api == "anthropic":
            return owner.anthropic_message(body, text)
        n = 1 if owner.ignore_n else int(body.get("n") or 1)
        texts = [text] + [owner.responder(api, body) for _ in range(n - 1)]
        return owner.openai_completion(body, [t if isinstance(t, str) else "" for t in texts])

    # ---- batches --------------------------------------------------------------------------
    def _batch_results(self, batch: _Batch) -> None:
        """Compute every item's result once, when the batch finishes."""
        owner = self.owner
        for index, (custom_id, params) in enumerate(batch.items):
            if owner.expire_after is not None and index >= owner.expire_after:
                batch.expired = True
                if batch.api == "anthropic":
                    batch.results.append({"custom_id": custom_id, "result": {"type": "expired"}})
                else:
                    batch.errors.append({"id": owner._next_id("batch_req_"), "custom_id": custom_id,
                                         "response": None, "error": {"code": "batch_expired",
                                                                     "message": "batch expired"}})
                continue
            action = owner._next_action(batch.api, params)
            if isinstance(action, Fault) and action.kind == "delay":
                action = action.text or "delayed"
            failed = isinstance(action, Fault)
            message = action.text if isinstance(action, Fault) and action.text else "scripted failure"
            if batch.api == "anthropic":
                result = ({"type": "errored", "error": {"type": "error", "error": {
                    "type": "invalid_request_error", "message": message}}} if failed else
                    {"type": "succeeded", "message": owner.anthropic_message(params, action)})
                batch.results.append({"custom_id": custom_id, "result": result})
            else:
                if failed:
                    row = {"id": owner._next_id("batch_req_"), "custom_id": custom_id, "response": {
                        "status_code": 400, "request_id": owner._next_id("req_"),
                        "body": {"error": {"message": message, "type": "invalid_request_error"}}},
                        "error": None}
                else:
                    completion = owner.openai_completion(params, [action] + [
                        str(owner.responder("openai", params)) for _ in range(int(params.get("n") or 1) - 1)])
                    row = {"id": owner._next_id("batch_req_"), "custom_id": custom_id, "response": {
                        "status_code": 200, "request_id": owner._next_id("req_"), "body": completion},
                        "error": None}
                batch.results.append(row)
        batch.done = True

    def _poll(self, batch_id: str) -> _Batch | None:
        owner = self.owner
        with owner._lock:
            batch = owner._batches.get(batch_id)
            if batch is None:
                return None
            batch.polls += 1
            finish = not batch.done and batch.polls >= owner.batch_polls_until_done
        if finish:
            self._batch_results(batch)
            if batch.api == "openai":
                fid = owner._next_id("file-")
                owner._files[fid] = b"".join(json.dumps(r).encode() + b"\n" for r in batch.results)
                batch.output_file_id = fid
                if batch.errors:
                    eid = owner._next_id("file-")
                    owner._files[eid] = b"".join(json.dumps(r).encode() + b"\n" for r in batch.errors)
                    batch.error_file_id = eid
        return batch

    def _openai_upload(self, raw: bytes) -> None:
        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
        content, filename, purpose = b"", "upload.jsonl", "batch"
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                content = part.get_payload(decode=True) or b""
                filename = part.get_filename() or filename
            elif name == "purpose":
                purpose = (part.get_payload(decode=True) or b"").decode()
        fid = self.owner._next_id("file-")
        self.owner._files[fid] = content
        self._json(200, {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                         "filename": filename, "purpose": purpose, "status": "processed"})

    def _openai_batch_object(self, batch: _Batch) -> dict:
        ok = sum(1 for r in batch.results if r["response"]["status_code"] == 200)
        return {"id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                "input_file_id": "file-input", "completion_window": "24h",
                "status": ("expired" if batch.expired else "completed") if batch.done else "in_progress",
                "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
                "created_at": int(batch.created), "completed_at": int(time.time()) if batch.done else None,
                "request_counts": {"total": len(batch.items), "completed": ok if batch.done else 0,
                                   "failed": len(batch.results) - ok if batch.done else 0}, "metadata": None}

    def _openai_batch_create(self, body: dict) -> None:
        data = self.owner._files.get(body.get("input_file_id", ""))
        if data is None:
            return self._error(400, "input_file_id not found", "openai")
        items = []
        for line in data.splitlines():
            if line.strip():
                row = json.loads(line)
                items.append((row["custom_id"], row["body"]))
        batch = _Batch(self.owner._next_id("batch_"), "openai", items, time.time())
        with self.owner._lock:
            self.owner._batches[batch.id] = batch
        self._json(200, self._openai_batch_object(batch))

    def _openai_batch_status(self, batch_id: str) -> None:
        batch = self._poll(batch_id)
        if batch is None:
            return self._error(404, "no such batch", "openai")
        self._json(200, self._openai_batch_object(batch))

    def _anthropic_batch_object(self, batch: _Batch) -> dict:
        ok = sum(1 for r in batch.results if r["result"]["type"] == "succeeded")
        expired = sum(1 for r in batch.results if r["result"]["type"] == "expired")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created))
        return {"id": batch.id, "type": "message_batch",
                "processing_status": "ended" if batch.done else "in_progress",
                "request_counts": {"processing": 0 if batch.done else len(batch.items),
                                   "succeeded": ok, "errored": len(batch.results) - ok - expired,
                                   "canceled": 0, "expired": expired},
                "created_at": created, "expires_at": created, "archived_at": None,
                "cancel_initiated_at": None, "ended_at": created if batch.done else None,
                "results_url": f"{self.owner.url}/v1/messages/batches/{batch.id}/results" if batch.done else None}

    def _anthropic_batch_create(self, body: dict) -> None:
        items = [(r["custom_id"], r["params"]) for r in body.get("requests", [])]
        if not items:
            return self._error(400, "requests: empty", "anthropic")
        batch = _Batch(self.owner._next_id("msgbatch_"), "anthropic", items, time.time())
        with self.owner._lock:
            self.owner._batches[batch.id] = batch
        self._json(200, self._anthropic_batch_object(batch))

    def _anthropic_batch_status(self, batch_id: str) -> None:
        batch = self._poll(batch_id)
        if batch is None:
            return self._error(404, "no such batch", "anthropic")
        self._json(200, self._anthropic_batch_object(batch))

    def _anthropic_batch_results(self, batch_id: str) -> None:
        batch = self.owner._batches.get(batch_id)
        if batch is None or not batch.done:
            return self._error(404, "results not ready", "anthropic")
        self._send(200, b"".join(json.dumps(r).encode() + b"\n" for r in batch.results),
                   "application/binary")


def main() -> None:
    """`python tests/llm_server.py [LATENCY_S]`: serve until killed; prints the base URL first."""
    import sys

    server = LLMServer(latency_s=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0, log_bodies=False).start()
    print(server.url, flush=True)
    threading.Event().wait()


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A started LLMServer, stopped after the test (import it into a test module to use it)."""
    with LLMServer() as server:
        yield server


if __name__ == "__main__":
    main()
