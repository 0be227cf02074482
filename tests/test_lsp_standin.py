"""`nextedit lsp` as a subprocess driven by a real LSP client (pytest-lsp) against the stand-in server:
a rename typed in steps, the inline completion that finishes it, accept, shown/accepted/settled events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from tests.lsp_support import (
    LINE,
    TEXT,
    StandInServer,
    apply_lsp_edit,
    change,
    start_lsp,
    type_rename,
    wait_for,
)


def test_rename_inline_completion_accept_and_settle(tmp_path: Path) -> None:
    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--settle-quiet-s", "0.6", "--debounce-ms", "20", "--collect",
                                     root=tmp_path)
            caps = client.server_capabilities
            assert caps.inline_completion_provider and caps.code_action_provider
            assert "nextedit.accept" in caps.execute_command_provider.commands
            assert caps.position_encoding == "utf-16"
            assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
            uri = (tmp_path / "scale.py").as_uri()
            client.text_document_did_open(types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=TEXT)))
            text, version, cursor_col = type_rename(client, uri)
            assert "[item * factor for x in items]" in text

            result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(LINE, cursor_col)))
            assert result is not None and len(result.items) == 1
            item = result.items[0]
            assert item.range.start == types.Position(LINE, cursor_col)
            assert item.range.start.line == item.range.end.line == LINE
            accepted_text = apply_lsp_edit(text, item.range, item.insert_text)
            assert accepted_text == TEXT.replace("[x * factor for x in", "[item * factor for item in")
            request_id = item.command.arguments[0]

            # Accept: the client applies the item as one change, then runs the item's command.
            client.text_document_did_change(change(uri, version, (item.range.start.line, item.range.start.character),
                                                   (item.range.end.line, item.range.end.character),
                                                   item.insert_text))
            await client.workspace_execute_command_async(types.ExecuteCommandParams(
                command=item.command.command, arguments=item.command.arguments))

            def settled():
                return [e for e in server.state.events() if e["type"] == "settled" and e["request_id"] == request_id]

            assert await wait_for(settled)
            await client.shutdown_session()

            mine = [e for e in server.state.events() if e["request_id"] == request_id]
            kinds = [e["type"] for e in mine]
            assert kinds.count("shown") == 1 and kinds.count("accepted") == 1 and kinds.count("settled") == 1
            assert kinds.index("shown") < kinds.index("accepted") < kinds.index("settled")
            assert "rejected" not in kinds
            settled_event = settled()[0]
            assert settled_event["collectable"] is True
            assert "[item * factor for item in items]" in settled_event["settled_text"]
            assert settled_event["quiet_s"] >= 0.6
            assert all(e["model_version"] == "propagate-v2" and e["arm"] == "control" for e in mine)

            # The request that produced it carried the rename as one grouped history event with file lines.
            body = next(b for b in server.state.predict_bodies
                        if "[item * factor for x in" in b["snapshot"]["text"])
            history = body["snapshot"]["history"]
            assert history[-1]["path"] == "scale.py"
            assert "@@ -1,2 +1,2 @@" in history[-1]["diff"]
            assert '-    tag = "😀"; return [x * factor for x in items]' in history[-1]["diff"]
            assert '+    tag = "😀"; return [item * factor for x in items]' in history[-1]["diff"]
            assert body["collectable"] is True and body["client_id"] and body["user_id"]

    asyncio.run(scenario())


def test_code_action_for_edits_away_from_the_cursor(tmp_path: Path) -> None:
    text = "def total(values):\n    count = 0\n    for v in values:\n        count += v\n    return count\n"

    async def scenario() -> None:
        with StandInServer(tmp_path / "events.sqlite") as server:
            client = await start_lsp(server.url, "--debounce-ms", "10", root=tmp_path)
            uri = (tmp_path / "total.py").as_uri()
            client.text_document_did_open(types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
            client.text_document_did_change(change(uri, 2, (1, 4), (1, 9), "acc"))
            new_text = text.replace("    count = 0", "    acc = 0")
            inline = await client.text_document_inline_completion_async(types.InlineCompletionParams(
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(1, 7)))
            assert inline is not None and len(inline.items) == 0  # the edits are on other lines
            actions = await client.text_document_code_action_async(types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(types.Position(1, 7), types.Position(1, 7)),
                context=types.CodeActionContext(diagnostics=[])))
            assert actions and actions[0].title == "Apply predicted edit"
            edits = sorted(actions[0].edit.changes[uri], key=lambda e: (e.range.start.line, e.range.start.character),
                           reverse=True)
            result = new_text
            for e in edits:
                result = apply_lsp_edit(result, e.range, e.new_text)
            assert result == text.replace("count", "acc")
            await client.shutdown_session()
            kinds = [(e["type"], e["reason"]) for e in server.state.events()]
            assert ("shown", "hint") in kinds  # not inline-able: shown as hints at its lines first
            assert all(e["collectable"] is False for e in server.state.events())  # no consent given

    asyncio.run(scenario())
