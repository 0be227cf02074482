"""`nextedit lsp` survives what clients and servers throw at it: malformed messages, changes to
unknown documents or past the end, a prediction server that is down, failing or slow; and it
reports rejections when the user types something else."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

from lsprotocol import types

from tests.lsp_support import StandInServer, apply_lsp_edit, change, start_lsp

TEXT = "def area(height):\n    return width * height * width\n\n# notes: \n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inline_params(uri: str, line: int, col: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, col))


def _open(client, uri: str, text: str = TEXT) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))


def _raw(client, payload: bytes) -> None:
    """Write bytes straight to the server's stdin, framed with a Content-Length header."""
    client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(payload) + payload)


async def _until(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        await asyncio.sleep(0.05)
    return predicate()


def _rename_width(client, uri: str) -> None:
    """Rename the first `width` on line 1 to `w` (the propagate baseline then offers the other one)."""
    col = len("    return ")
    client.text_document_did_change(change(uri, 2, (1, col), (1, col + len("width")), "w"))


def test_malformed_messages_are_logged_and_the_server_keeps_working(tmp_path: Path) -> None:
    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--debounce-ms", "10", root=tmp_path)
            uri = (tmp_path / "area.py").as_uri()
            _open(client, uri)
            _raw(client, b"{this is not json")
            client._server.stdin.write(b"X-Garbage-Header: 1\r\n")  # a header line without a length
            _raw(client, json.dumps({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                                     "params": {"textDocument": {"uri": 5}}}).encode())
            _raw(client, json.dumps({"jsonrpc": "2.0", "method": "nextedit/unknown", "params": {}}).encode())
            client.text_document_did_change(change((tmp_path / "missing.py").as_uri(), 2, (0, 0), (0, 0), "x"))
            client.text_document_did_change(change(uri, 2, (40, 0), (41, 0), "x"))  # past the end
            _raw(client, json.dumps({"jsonrpc": "2.0", "id": 999, "method": "textDocument/inlineCompletion",
                                     "params": {"textDocument": {"uri": uri}}}).encode())
            await client.workspace_execute_command_async(types.ExecuteCommandParams(
                command="nextedit.accept", arguments=[{"not": "an id"}]))
            # Still alive and still predicting.
            _rename_width(client, uri)
            result = await client.text_document_inline_completion_async(_inline_params(uri, 1, 12))
            assert result is not None and len(result.items) == 1
            assert result.items[0].insert_text.endswith("* height * w")
            messages = " | ".join(m.message for m in client.log_messages)
            assert "not open" in messages and "past the end" in messages
            assert "unknown or expired prediction" in messages
            assert client._server.returncode is None
            await client.shutdown_session()

    asyncio.run(scenario())


def test_a_server_that_is_down_gives_one_log_message_and_no_crash(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await start_lsp(f"http://127.0.0.1:{_free_port()}", "--debounce-ms", "0", "--timeout-s", "1",
                                 root=tmp_path)
        uri = (tmp_path / "area.py").as_uri()
        _open(client, uri)
        _rename_width(client, uri)
        for col in (12, 13):
            result = await client.text_document_inline_completion_async(_inline_params(uri, 1, col))
            assert result is not None and len(result.items) == 0
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(1, 0), types.Position(1, 0)),
            context=types.CodeActionContext(diagnostics=[])))
        assert not actions
        down = [m for m in client.log_messages if "predict failed" in m.message]
        assert len(down) == 1 and "ConnectError" in down[0].message
        assert client._server.returncode is None
        await client.shutdown_session()

    asyncio.run(scenario())


def test_failing_garbage_and_slow_answers_are_logged(tmp_path: Path) -> None:
    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--debounce-ms", "0", "--timeout-s", "0.5", root=tmp_path)
            uri = (tmp_path / "area.py").as_uri()
            _open(client, uri)
            col = len("# notes: ")
            for version, mode in enumerate(("error", "ok", "garbage", "ok", "slow"), start=2):
                server.state.mode = mode
                client.text_document_did_change(change(uri, version, (3, col), (3, col), "x"))
                col += 1
                result = await client.text_document_inline_completion_async(_inline_params(uri, 3, col))
                assert result is not None and len(result.items) == 0
            assert server.state.count == 5  # every keystroke asked once
            messages = " | ".join(m.message for m in client.log_messages)
            assert "HTTP 500" in messages and "not JSON" in messages and "no answer within 0.5 s" in messages
            assert "answers again" in messages
            assert client._server.returncode is None
            await client.shutdown_session()

    asyncio.run(scenario())


def test_typing_something_else_rejects_the_shown_prediction(tmp_path: Path) -> None:
    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--debounce-ms", "10", root=tmp_path)
            uri = (tmp_path / "area.py").as_uri()
            _open(client, uri)
            _rename_width(client, uri)
            result = await client.text_document_inline_completion_async(_inline_params(uri, 1, 12))
            assert len(result.items) == 1
            request_id = result.items[0].command.arguments[0]
            # The user types over the predicted region something the prediction did not say.
            line = "    return w * height * width"
            col = line.rindex("width")
            client.text_document_did_change(change(uri, 3, (1, col), (1, col + 5), "depth"))

            def rejected():
                return [e for e in server.state.events() if e["type"] == "rejected"]

            assert await _until(rejected)
            await client.shutdown_session()
            event = rejected()[0]
            assert event["request_id"] == request_id and event["reason"] == "typed"
            # Settled at shutdown: the editor flushes every pending region when it quits.
        kinds = [e["type"] for e in server.state.events() if e.get("request_id") == request_id]
        assert kinds == ["shown", "rejected", "settled"]

    asyncio.run(scenario())


def test_without_inline_support_the_prediction_comes_as_a_code_action_and_accepting_it_is_seen(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--debounce-ms", "10", inline=False, root=tmp_path,
                                     options={"settleQuietS": 30})
            init_caps = client.capabilities
            assert init_caps.text_document.inline_completion is None
            uri = (tmp_path / "area.py").as_uri()
            _open(client, uri)
            _rename_width(client, uri)
            actions = None
            for _ in range(50):
                actions = await client.text_document_code_action_async(types.CodeActionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    range=types.Range(types.Position(1, 12), types.Position(1, 12)),
                    context=types.CodeActionContext(diagnostics=[])))
                if actions:
                    break
                await asyncio.sleep(0.05)
            assert actions and actions[0].title == "Apply predicted edit"
            (edit,) = actions[0].edit.changes[uri]
            client.text_document_did_change(change(uri, 3, (edit.range.start.line, edit.range.start.character),
                                                   (edit.range.end.line, edit.range.end.character), edit.new_text))

            def accepted():
                return [e for e in server.state.events() if e["type"] == "accepted"]

            assert await _until(accepted)
            await client.shutdown_session()
            assert accepted()[0]["reason"] == "document"
            # The quiet period is 30 s: the region settles only because the editor quits (flushed at shutdown).
            kinds = [e["type"] for e in server.state.events() if e.get("request_id") == accepted()[0]["request_id"]]
            assert kinds == ["shown", "accepted", "settled"]

    asyncio.run(scenario())


def test_utf8_positions_when_the_client_prefers_them_and_cursor_moved_rejection(tmp_path: Path) -> None:
    text = 'v = 1\nw = "é😀"; total = amount + amount\n'

    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--debounce-ms", "10", root=tmp_path, encodings=["utf-8", "utf-16"])
            assert client.server_capabilities.position_encoding == "utf-8"
            uri = (tmp_path / "u.py").as_uri()
            _open(client, uri, text)
            col = len('w = "é😀"; total = '.encode())  # UTF-8 bytes: 22 (the line has 18 chars there)
            client.text_document_did_change(change(uri, 2, (1, col), (1, col + 6), "qty"))
            result = await client.text_document_inline_completion_async(_inline_params(uri, 1, col + 3))
            assert len(result.items) == 1
            item = result.items[0]
            assert item.insert_text == " + qty"
            assert (item.range.start.character, item.range.end.character) == (col + 3, col + 12)
            request_id = item.command.arguments[0]
            # The user goes elsewhere and the editor asks again there: the shown prediction is dropped.
            again = await client.text_document_inline_completion_async(_inline_params(uri, 0, 0))
            assert len(again.items) == 0

            def rejected():
                return [e for e in server.state.events() if e["type"] == "rejected"]

            assert await _until(rejected)
            await client.shutdown_session()
            assert rejected()[0]["request_id"] == request_id and rejected()[0]["reason"] == "cursor_moved"

    asyncio.run(scenario())


def test_a_different_newer_prediction_replaces_the_shown_one(tmp_path: Path) -> None:
    text = "a = width + width\nb = height + height\n"

    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--debounce-ms", "10", root=tmp_path)
            uri = (tmp_path / "r.py").as_uri()
            _open(client, uri, text)
            client.text_document_did_change(change(uri, 2, (0, 4), (0, 9), "w"))
            first = await client.text_document_inline_completion_async(_inline_params(uri, 0, 5))
            assert len(first.items) == 1 and first.items[0].insert_text == " + w"
            first_id = first.items[0].command.arguments[0]
            # Another rename below: the shown prediction is still valid, but the new one also renames height.
            client.text_document_did_change(change(uri, 3, (1, 4), (1, 10), "h"))
            actions = await client.text_document_code_action_async(types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(types.Position(1, 5), types.Position(1, 5)),
                context=types.CodeActionContext(diagnostics=[])))
            current = "a = w + width\nb = h + height\n"
            for e in sorted(actions[0].edit.changes[uri], key=lambda e: (e.range.start.line, e.range.start.character),
                            reverse=True):
                current = apply_lsp_edit(current, e.range, e.new_text)
            assert current == "a = w + w\nb = h + h\n"  # both renames finished, on two lines

            def rejected():
                return [e for e in server.state.events() if e["type"] == "rejected"]

            assert await _until(rejected)
            await client.shutdown_session()
            reasons = [(e["request_id"], e["reason"]) for e in rejected()]
            assert reasons[0] == (first_id, "replaced")
            assert [r for _, r in reasons[1:]] in ([], ["shutdown"])  # the newer one was still offered at exit

    asyncio.run(scenario())
