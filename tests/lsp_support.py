"""Test support for `nextedit lsp`: a stand-in prediction server speaking the serve HTTP contract
(propagate baseline, events in SQLite) and helpers that drive the language server over stdio."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

from nextedit import patch as patchlib
from nextedit.predictors.baselines import PropagatePredictor
from nextedit.record import Example, Snapshot

TOKEN = "test-token"


def _single_edit(old: str, new: str) -> list[dict[str, Any]]:
    """The one edit between the common prefix and suffix (the stand-in's own way to make edits)."""
    if old == new:
        return []
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    s = 0
    while s < min(len(old), len(new)) - p and old[-1 - s] == new[-1 - s]:
        s += 1
    return [{"start": p, "end": len(old) - s, "text": new[p:len(new) - s]}]


@dataclass
class StandIn:
    """State of the stand-in server: what it received and how it misbehaves."""

    db: Path
    mode: str = "ok"  # ok | error | garbage | slow
    predict_bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    count: int = 0

    def events(self) -> list[dict[str, Any]]:
        """Every stored event body, in arrival order."""
        with sqlite3.connect(self.db) as conn:
            return [json.loads(row[0]) for row in conn.execute("SELECT body FROM events ORDER BY id")]


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    predictor = PropagatePredictor()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, data: Any) -> None:
            raw = data if isinstance(data, bytes) else json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"error": "bad token"})
                return
            if self.path == "/v1/events":
                with state.lock, sqlite3.connect(state.db) as conn:
                    cur = conn.execute("INSERT INTO events(body) VALUES (?)", (json.dumps(body),))
                    event_id = cur.lastrowid
                self._reply(200, {"ok": True, "event_id": event_id})
                return
            if self.path != "/v1/predict":
                self._reply(404, {"error": "not found"})
                return
            with state.lock:
                state.predict_bodies.append(body)
                state.count += 1
                request_id = f"req-{state.count}"
            if state.mode == "error":
                self._reply(500, {"error": "boom"})
                return
            if state.mode == "garbage":
                self._reply(200, b"<html>not json")
                return
            if state.mode == "slow":
                threading.Event().wait(3.0)
            snap = Snapshot.model_validate(body["snapshot"])
            patch = predictor.propose(Example(id=request_id, snapshot=snap))
            prediction = None
            if patch:
                new = patchlib.apply(patch, snap.text, start_line=snap.start_line)
                prediction = {"patch": patch, "edits": _single_edit(snap.text, new), "cursor": None}
            self._reply(200, {"request_id": request_id, "model_version": "propagate-v2", "arm": "control",
                              "prediction": prediction, "reason": None if prediction else "empty",
                              "timing": {"total_ms": 1.0}})

    return Handler


class StandInServer:
    """The stand-in on 127.0.0.1 (a real HTTP server in a thread); use as a context manager."""

    def __init__(self, db: Path) -> None:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body TEXT)")
        self.state = StandIn(db)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def capabilities(*, inline: bool = True, encodings: list[str] | None = None,
                 show_document: bool = False) -> types.ClientCapabilities:
    """Client capabilities: inline completions (LSP 3.18) on or off, offered position encodings, and
    window/showDocument support."""
    td = types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
        code_action=types.CodeActionClientCapabilities())
    general = types.GeneralClientCapabilities(position_encodings=encodings) if encodings else None
    window = types.WindowClientCapabilities(
        work_done_progress=True, show_message=types.ShowMessageRequestClientCapabilities(),
        show_document=types.ShowDocumentClientCapabilities(support=True) if show_document else None)
    return types.ClientCapabilities(text_document=td, general=general, window=window)


async def start_lsp(server_url: str, *args: str, inline: bool = True, root: Path | None = None,
                    options: dict[str, Any] | None = None, encodings: list[str] | None = None,
                    show_document: bool = False) -> LanguageClient:
    """`nextedit lsp` as a subprocess, initialized by a pytest-lsp client."""
    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-m", "nextedit", "lsp", "--server", server_url, "--token", TOKEN,
                          *args)
    result = await client.initialize_session(types.InitializeParams(
        capabilities=capabilities(inline=inline, encodings=encodings, show_document=show_document),
        root_uri=root.as_uri() if root else None,
        initialization_options=options))
    client.server_capabilities = result.capabilities  # type: ignore[attr-defined]
    return client


def change(uri: str, version: int, start: tuple[int, int], end: tuple[int, int],
           text: str) -> types.DidChangeTextDocumentParams:
    """A one-change incremental didChange."""
    rng = types.Range(types.Position(*start), types.Position(*end))
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=rng, text=text)])


def apply_lsp_edit(text: str, rng: types.Range, new_text: str) -> str:
    """Apply an edit with a UTF-16 LSP range to a Python string (the client's side of the job)."""
    lines = text.split("\n")

    def offset(pos: types.Position) -> int:
        line = lines[pos.line]
        units = 0
        chars = 0
        while units < pos.character and chars < len(line):
            units += 2 if ord(line[chars]) > 0xFFFF else 1
            chars += 1
        return sum(len(x) + 1 for x in lines[:pos.line]) + chars

    return text[:offset(rng.start)] + new_text + text[offset(rng.end):]


# The emoji before the edit makes UTF-16 columns differ from Python char offsets on that line.
TEXT = 'def scale(items, factor):\n    tag = "😀"; return [x * factor for x in items]\n'
LINE = 1


async def wait_for(predicate: Any, timeout_s: float = 15.0) -> Any:
    """Poll `predicate` until it returns something truthy (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    return predicate()


def type_rename(client: LanguageClient, uri: str) -> tuple[str, int, int]:
    """Rename the first `x` to `item` keystroke by keystroke; return the text, the next version and the
    cursor's UTF-16 column."""
    line = TEXT.split("\n")[LINE]
    col = len(line.split("[", 1)[0]) + 1 + 1  # utf-16 column of `x` (the emoji is 2 units)
    text = TEXT
    version = 2
    client.text_document_did_change(change(uri, version, (LINE, col), (LINE, col + 1), ""))
    text = text.replace("[x *", "[ *")
    typed = ""
    for ch in "item":
        version += 1
        client.text_document_did_change(change(uri, version, (LINE, col + len(typed)), (LINE, col + len(typed)), ch))
        typed += ch
        text = text.replace(f"[{typed[:-1]} *", f"[{typed} *")
    return text, version + 1, col + len(typed)


# --------------------------------------------------------------------------- a real `nextedit serve`

ADMIN = "admin-token"


@dataclass
class Serve:
    """A running `nextedit serve` subprocess: its URL and its SQLite store."""

    url: str
    db: Path

    def rows(self, table: str = "events") -> list[dict[str, Any]]:
        """Every stored row of `table` (payload with type and request_id), in id order."""
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            rows = conn.execute(f"SELECT type, request_id, payload FROM {table} ORDER BY id").fetchall()
        finally:
            conn.close()
        return [{**json.loads(payload), "type": kind, "request_id": rid} for kind, rid, payload in rows]

    def dashboard(self) -> str:
        """The /dashboard page (admin token)."""
        import httpx

        return httpx.get(self.url + "/dashboard", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).text


PROPAGATE_ARM = '[[arms]]\nname = "prop"\nbackend = "propagate"\nshare = 1.0\n'


def start_serve(tmp_path: Path, extra: str = "", arms: str = PROPAGATE_ARM) -> tuple[Any, Serve]:
    """`nextedit serve` on a free port (SQLite store, API key TOKEN, admin ADMIN) with `arms` (TOML, by
    default one propagate arm); `extra` is more TOML for the top of the config. Returns the process and its
    handle."""
    import socket
    import subprocess

    import httpx

    db = tmp_path / "events.db"
    config = tmp_path / "serve.toml"
    config.write_text(f'store = "{db}"\ndeadline_ms = 5000\n{extra}\n[auth]\napi_keys = ["{TOKEN}"]\n'
                      f'admin_token = "{ADMIN}"\n\n{arms}')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "nextedit", "serve", str(config), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, Serve(url, db)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"nextedit serve did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)


def stop_serve(proc: Any) -> None:
    """Terminate a serve process started by start_serve."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def watch_status(client: LanguageClient) -> list[dict[str, Any]]:
    """Collect the server's `$/nextedit/status` notifications (a list that fills as they arrive)."""
    seen: list[dict[str, Any]] = []

    @client.feature("$/nextedit/status")
    def _status(params: Any) -> None:
        seen.append(params if isinstance(params, dict) else params._asdict())  # pygls gives a namedtuple

    return seen


def handle_apply_edit(client: LanguageClient, docs: dict[str, list[Any]]) -> None:
    """Answer workspace/applyEdit as an editor does: apply the edits to the text kept in `docs`
    (uri -> [text, version]) and send the didChange."""

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def _apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        for uri, edits in (params.edit.changes or {}).items():
            state = docs[uri]
            for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
                state[0] = apply_lsp_edit(state[0], e.range, e.new_text)
                state[1] += 1
                client.text_document_did_change(change(uri, state[1], (e.range.start.line, e.range.start.character),
                                                       (e.range.end.line, e.range.end.character), e.new_text))
        return types.ApplyWorkspaceEditResult(applied=True)
