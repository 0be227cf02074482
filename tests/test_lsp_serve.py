"""Acceptance: `nextedit lsp` (subprocess, driven by a pytest-lsp client over stdio) against a real
`nextedit serve` (subprocess on 127.0.0.1, propagate backend, SQLite store). A rename typed in steps
gets an inline completion that finishes it; accepting it leaves shown, accepted and settled events."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from lsprotocol import types

from tests.lsp_support import (
    LINE,
    TEXT,
    TOKEN,
    apply_lsp_edit,
    change,
    start_lsp,
    type_rename,
    wait_for,
)

pytest.importorskip("uvicorn", reason="nextedit serve needs the serve extra")
pytest.importorskip("fastapi", reason="nextedit serve needs the serve extra")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path: Path):
    """`nextedit serve` with one propagate arm, its URL and its SQLite store."""
    db = tmp_path / "events.db"
    config = tmp_path / "serve.toml"
    config.write_text(f'store = "{db}"\ndeadline_ms = 5000\n\n[auth]\napi_keys = ["{TOKEN}"]\n\n'
                      '[[arms]]\nname = "prop"\nbackend = "propagate"\nshare = 1.0\n')
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nextedit", "serve", str(config), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"nextedit serve did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    try:
        yield url, db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _events(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT type, request_id, payload FROM events ORDER BY id").fetchall()
    finally:
        conn.close()
    return [{**json.loads(payload), "type": kind, "request_id": rid} for kind, rid, payload in rows]


def test_rename_completed_accepted_and_settled_in_the_serve_store(serve, tmp_path: Path) -> None:
    url, db = serve

    async def scenario() -> None:
        client = await start_lsp(url, "--debounce-ms", "20", "--settle-quiet-s", "0.6", "--collect",
                                 "--user-id", "tester", root=tmp_path)
        uri = (tmp_path / "scale.py").as_uri()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=TEXT)))
        text, version, col = type_rename(client, uri)
        result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(LINE, col)))
        assert result is not None and len(result.items) == 1
        item = result.items[0]
        accepted = apply_lsp_edit(text, item.range, item.insert_text)
        assert accepted == TEXT.replace("[x * factor for x in", "[item * factor for item in")
        request_id = item.command.arguments[0]
        client.text_document_did_change(change(uri, version, (item.range.start.line, item.range.start.character),
                                               (item.range.end.line, item.range.end.character), item.insert_text))
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=item.command.command, arguments=item.command.arguments))

        def settled() -> list[dict]:
            return [e for e in _events(db) if e["type"] == "settled" and e["request_id"] == request_id]

        assert await wait_for(settled, 30)
        await client.shutdown_session()

        mine = [e for e in _events(db) if e["request_id"] == request_id]
        kinds = [e["type"] for e in mine]
        assert kinds.count("shown") == 1 and kinds.count("accepted") == 1 and kinds.count("settled") == 1
        assert "rejected" not in kinds
        assert kinds.index("shown") < kinds.index("accepted") < kinds.index("settled")
        event = settled()[0]
        assert event["arm"] == "prop" and event["model_version"].startswith("propagate")
        assert event["user_id"] == "tester" and event["collectable"] is True
        assert "[item * factor for item in items]" in event["settled_text"]
        assert event["kept"]["kept_rate"] == 1.0  # the settled region kept all of the prediction

    asyncio.run(scenario())


def test_code_action_with_several_edits_applied_in_one_change_is_accepted(serve, tmp_path: Path) -> None:
    url, db = serve
    text = "def total(values):\n    count = 0\n    for v in values:\n        count += v\n    return count\n"

    async def scenario() -> None:
        client = await start_lsp(url, "--debounce-ms", "20", "--collect", root=tmp_path)
        uri = (tmp_path / "total.py").as_uri()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        client.text_document_did_change(change(uri, 2, (1, 4), (1, 9), "acc"))
        current = text.replace("    count = 0", "    acc = 0")
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(1, 7), types.Position(1, 7)),
            context=types.CodeActionContext(diagnostics=[])))
        assert actions and actions[0].title == "Apply predicted edit"
        edits = sorted(actions[0].edit.changes[uri], key=lambda e: (e.range.start.line, e.range.start.character),
                       reverse=True)
        assert len(edits) >= 2  # the server's edits are token-level: one per remaining occurrence
        # Apply them as an editor does: one didChange, the last edit first (ranges stay valid).
        changes = [types.TextDocumentContentChangePartial(range=e.range, text=e.new_text) for e in edits]
        for e in edits:
            current = apply_lsp_edit(current, e.range, e.new_text)
        assert current == text.replace("count", "acc")
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3), content_changes=changes))

        def accepted() -> list[dict]:
            return [e for e in _events(db) if e["type"] == "accepted"]

        assert await wait_for(accepted, 30)
        await client.shutdown_session()
        assert accepted()[0]["reason"] == "document"
        kinds = [e["type"] for e in _events(db) if e["request_id"] == accepted()[0]["request_id"]]
        assert kinds == ["shown", "accepted", "settled"]  # settled when the editor quits (flushed)

    asyncio.run(scenario())
