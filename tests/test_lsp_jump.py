""""Go to next predicted edit" end to end: a real `nextedit serve` whose openai-compatible arm (zeta1-jump) asks a
scripted completions server, which answers with a jump into another file; `nextedit lsp` driven over stdio as an
editor would: the code action and command, window/showDocument, the edit offered and applied at the target, the
jump events in the store, and a jump dropped because its target changed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from nextedit.formats.jump import JUMP_END, JUMP_START
from nextedit.formats.zeta1 import CURSOR, EDITABLE_END, EDITABLE_START
from nextedit.lsp.jump import GOTO_COMMAND
from tests.completions_server import completion_reply, completions_server
from tests.lsp_support import (
    apply_lsp_edit,
    change,
    start_lsp,
    start_serve,
    stop_serve,
    wait_for,
    watch_status,
)

pytest.importorskip("uvicorn", reason="nextedit serve needs the serve extra")

APP = "from util import sum_of\n\n\ndef report(items):\n    return sum_of(items)\n"
UTIL = "def sum_of(items):\n    return sum(items)\n\n\ndef mean(items):\n    return sum_of(items) / len(items)\n"
#: The student's answer while the user renames in app.py: the next edit is the definition in util.py.
JUMP = f"{JUMP_START}util.py:1-1\n@@ -1,1 +1,1 @@\n-def sum_of(items):\n+def total_of(items):\n{JUMP_END}"
OPTIONS = {"context": False, "diagnostics": False}


def _answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A jump for prompts of app.py; elsewhere the editable region unchanged (no edit)."""
    prompt = body["prompt"]
    if "def report(items)" in prompt:
        return 200, completion_reply(JUMP)
    region = prompt.rsplit(EDITABLE_START, 1)[1].split(EDITABLE_END, 1)[0].replace(CURSOR, "")
    return 200, completion_reply(EDITABLE_START + region)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory):
    """A real `nextedit serve` with one openai-compatible zeta1-jump arm behind a scripted upstream."""
    with completions_server(_answer) as upstream:
        url = f"http://127.0.0.1:{upstream.server_port}/v1#student"
        arm = (f'[[arms]]\nname = "jumper"\nbackend = "openai-compatible:{url}"\nformat = "zeta1-jump"\n'
               'share = 1.0\n')
        proc, handle = start_serve(tmp_path_factory.mktemp("serve"), arms=arm)
        try:
            yield handle
        finally:
            stop_serve(proc)


def _workspace(tmp_path: Path) -> tuple[Path, str, str]:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "util.py").write_text(UTIL)
    return tmp_path, (tmp_path / "app.py").as_uri(), (tmp_path / "util.py").as_uri()


def _open(client, uri: str, text: str) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))


def _code_action(client, uri: str, line: int, col: int = 0):
    return client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(types.Position(line, col), types.Position(line, col)),
        context=types.CodeActionContext(diagnostics=[])))


async def _action_titled(client, uri: str, line: int, prefix: str, timeout_s: float = 20.0):
    """Ask for code actions until one whose title starts with `prefix` is there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for action in await _code_action(client, uri, line) or []:
            if action.title.startswith(prefix):
                return action
        await asyncio.sleep(0.05)
    return None


def _rename_in_app(client, uri: str) -> str:
    """The user renames `sum_of` to `total_of` in app.py's import (the upstream then answers the jump)."""
    client.text_document_did_change(change(uri, 2, (0, 17), (0, 23), "total_of"))
    return APP.replace("import sum_of", "import total_of")


def _jump_events(serve, request_id: str) -> list[tuple[str, str | None]]:
    return [(e["type"], e.get("reason")) for e in serve.rows() if e["request_id"] == request_id and e.get("jump")]


def test_go_to_next_predicted_edit_shows_the_target_and_applies_the_edit_there(serve, tmp_path: Path) -> None:
    root, app, util = _workspace(tmp_path)

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--user-id", "jumper-1", root=root,
                                 inline=False, show_document=True, options=OPTIONS)
        assert GOTO_COMMAND in client.server_capabilities.execute_command_provider.commands
        _open(client, app, APP)
        _rename_in_app(client, app)
        goto = await _action_titled(client, app, 0, "Go to next predicted edit")
        assert goto is not None and goto.title == "Go to next predicted edit: util.py:1"
        assert goto.command == GOTO_COMMAND and list(goto.arguments) == [app]
        assert not await wait_for(lambda: client.shown_documents, 0.2)  # nothing moves before the user asks

        assert await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=goto.command, arguments=goto.arguments)) is True
        (shown,) = client.shown_documents
        assert shown.uri == util and shown.take_focus is True
        # The selection is what the edit replaces: `sum` of `def sum_of(items):`.
        assert (shown.selection.start.line, shown.selection.start.character) == (0, 4)
        assert (shown.selection.end.line, shown.selection.end.character) == (0, 7)

        _open(client, util, UTIL)  # the editor opens the file it was asked to show
        hints = await wait_for(lambda: client.diagnostics.get(util), 15)  # clients without inline items see it
        assert hints and hints[0].severity == types.DiagnosticSeverity.Hint and hints[0].range.start.line == 0
        assert "`sum` → `total`" in hints[0].message and "Apply predicted edit" in hints[0].message
        apply = await _action_titled(client, util, 0, "Apply predicted edit")
        assert apply is not None and set(apply.edit.changes) == {util}
        text = UTIL
        for e in sorted(apply.edit.changes[util], key=lambda e: (e.range.start.line, e.range.start.character),
                        reverse=True):
            text = apply_lsp_edit(text, e.range, e.new_text)
        assert text == UTIL.replace("def sum_of", "def total_of")  # the predicted hunk, nothing else
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=util, version=2),
            content_changes=[types.TextDocumentContentChangePartial(range=e.range, text=e.new_text)
                             for e in apply.edit.changes[util]]))
        # Once applied it is no longer offered.
        assert not [a for a in await _code_action(client, util, 0) or [] if a.title == "Apply predicted edit"]

        predicted = [r for r in serve.rows("telemetry") if r["type"] == "predicted" and r.get("locations")
                     and r.get("user_id") == "jumper-1"]
        request_id = predicted[0]["request_id"]
        want = [("shown", "code_action"), ("accepted", "goto"), ("accepted", "document")]
        assert await wait_for(lambda: _jump_events(serve, request_id) == want, 15), _jump_events(serve, request_id)
        events = [e for e in serve.rows() if e["request_id"] == request_id]
        assert all(e["arm"] == "jumper" and e["user_id"] == "jumper-1" for e in events)
        # The request itself offered no edit in app.py: no shown/accepted event outside the jump's.
        assert [e for e in events if not e.get("jump")] == []
        await client.shutdown_session()

    asyncio.run(scenario())


def test_a_jump_whose_target_changed_on_disk_is_dropped_not_applied(serve, tmp_path: Path) -> None:
    root, app, util = _workspace(tmp_path)

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--user-id", "jumper-2", root=root,
                                 inline=False, show_document=True, options=OPTIONS)
        status = watch_status(client)
        _open(client, app, APP)
        _rename_in_app(client, app)
        goto = await _action_titled(client, app, 0, "Go to next predicted edit")
        assert goto is not None
        changed = UTIL.replace("def sum_of(items):", "def sum_of(items, start=0):")
        (root / "util.py").write_text(changed)  # someone else edited the target meanwhile

        assert await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=goto.command, arguments=goto.arguments)) is False
        assert client.shown_documents == []
        assert any("no longer fits" in m.message for m in client.messages)
        dropped = await wait_for(lambda: [s for s in status if s.get("reason") == "target_changed"], 5)
        assert dropped and dropped[0]["uri"] == app and dropped[0]["state"] == "none"
        assert (root / "util.py").read_text() == changed  # nothing applied, not even in part
        assert [a for a in await _code_action(client, app, 0) or [] if a.command == GOTO_COMMAND] == []
        _open(client, util, changed)
        assert not await _code_action(client, util, 0)

        request_id = dropped[0]["requestId"]
        want = [("shown", "code_action"), ("rejected", "target_changed")]
        assert await wait_for(lambda: _jump_events(serve, request_id) == want, 15), _jump_events(serve, request_id)
        await client.shutdown_session()

    asyncio.run(scenario())


def test_a_jump_into_an_open_document_edited_since_is_not_offered(serve, tmp_path: Path) -> None:
    root, app, util = _workspace(tmp_path)

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--user-id", "jumper-3", root=root,
                                 inline=False, show_document=True, options=OPTIONS)
        status = watch_status(client)
        _open(client, util, UTIL)
        _open(client, app, APP)
        _rename_in_app(client, app)
        goto = await _action_titled(client, app, 0, "Go to next predicted edit")
        assert goto is not None
        # The user renames the definition by hand in the open util.py: the predicted hunk no longer applies
        # to the editor's text (the disk still has the old one).
        client.text_document_did_change(change(util, 2, (0, 4), (0, 10), "total_of"))
        assert [a for a in await _code_action(client, app, 0) or [] if a.command == GOTO_COMMAND] == []
        assert [s for s in status if s.get("reason") == "target_changed" and s["uri"] == app]
        assert client.shown_documents == []
        await client.shutdown_session()

    asyncio.run(scenario())


def test_without_show_document_the_jump_is_named_and_offered_once_the_file_is_opened(serve, tmp_path: Path) -> None:
    root, app, util = _workspace(tmp_path)

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--user-id", "jumper-4", root=root,
                                 inline=False, show_document=False, options=OPTIONS)
        _open(client, app, APP)
        _rename_in_app(client, app)
        goto = await _action_titled(client, app, 0, "Go to next predicted edit")
        assert goto is not None
        assert await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=goto.command, arguments=goto.arguments)) is True
        assert client.shown_documents == []
        assert any(m.message == "nextedit: next predicted edit at util.py:1" for m in client.messages)
        _open(client, util, UTIL)  # the user opens it
        apply = await _action_titled(client, util, 0, "Apply predicted edit")
        assert apply is not None and [e.new_text for e in apply.edit.changes[util]] == ["total"]
        await client.shutdown_session()

    asyncio.run(scenario())
