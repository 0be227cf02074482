"""A real OpenAI `/v1/completions` server on 127.0.0.1 for tests: each reply comes from a function of the request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], tuple[int, dict[str, Any] | bytes]]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((self.path, body, self.headers.get("Authorization")))
        status, reply = self.server.respond(body)
        payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 429:
            self.send_header("Retry-After", "0.01")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def completion_reply(*texts: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> dict[str, Any]:
    """An OpenAI completions response body with one choice per text."""
    return {"choices": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


@contextmanager
def completions_server(respond: Responder) -> Iterator[ThreadingHTTPServer]:
    """Serve on a free port; `.received` lists (path, body, Authorization) of every request."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.respond, httpd.received = respond, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
