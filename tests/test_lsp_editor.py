"""Editor behaviour of `nextedit lsp` against a real `nextedit serve` (subprocess, uvicorn, propagate backend,
SQLite store), driven by a pytest-lsp client over stdio: excluded files, a reason for every attempt
without a prediction (and a refused API key shown once), back-off, coalescing and the minimum pause,
partial accept, hints for clients without inline completions, offers that survive a buffer switch,
the server's own edits, and settling that waits for the user's decision."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.lsp_support import (
    apply_lsp_edit,
    change,
    handle_apply_edit,
    start_lsp,
    start_serve,
    stop_serve,
    wait_for,
    watch_status,
)

pytest.importorskip("uvicorn", reason="nextedit serve needs the serve extra")

AREA = "def area(height):\n    return width * height * width\n\n# notes: \n"
TOTAL = "def total(values):\n    count = 0\n    for v in values:\n        count += v\n    return count\n"
SECRET = "sk-live-51Hc0ffee0ddba11deadbeef"


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory):
    """One real `nextedit serve` for the module; the store keeps code unscrubbed so tests can read it."""
    proc, handle = start_serve(tmp_path_factory.mktemp("serve"), "[privacy]\nscrub = false\n")
    try:
        yield handle
    finally:
        stop_serve(proc)


def _open(client, uri: str, text: str) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))


def _code_action(client, uri: str, line: int, col: int):
    return client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(types.Position(line, col), types.Position(line, col)),
        context=types.CodeActionContext(diagnostics=[])))


def _inline(client, uri: str, line: int, col: int, invoked: bool = False):
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return client.text_document_inline_completion_async(types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=kind),
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, col)))


async def _offered_action(client, uri: str, line: int, col: int, timeout_s: float = 15.0):
    """Ask for code actions until the prediction is there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        actions = await _code_action(client, uri, line, col)
        if actions:
            return actions[0]
        await asyncio.sleep(0.05)
    return None


def _mine(serve, user: str, table: str = "events") -> list[dict[str, Any]]:
    return [r for r in serve.rows(table) if r.get("user_id") == user]


def _rename_width(client, uri: str, version: int = 2) -> None:
    col = len("    return ")
    client.text_document_did_change(change(uri, version, (1, col), (1, col + len("width")), "w"))


# --------------------------------------------------------------------------- excluded files

def test_excluded_files_never_leave_the_editor(serve, tmp_path: Path) -> None:
    user = "u-excluded"
    (tmp_path / ".env").write_text(f"API_TOKEN={SECRET}\nwidth = 3\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "secrets.yml").write_text(f"width: {SECRET}\nheight: {SECRET}\n")
    (tmp_path / "dump.sql").write_text("select width, height from area;\n")
    (tmp_path / "shapes.py").write_text("def width(shape):\n    return shape.width\n")

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--collect", "--user-id", user, root=tmp_path,
                                 options={"excludeExtra": ["*.sql"]})
        status = watch_status(client)
        env, sql, area = ((tmp_path / n).as_uri() for n in (".env", "dump.sql", "area.py"))
        _open(client, env, f"API_TOKEN={SECRET}\nwidth = 3\n")
        client.text_document_did_change(change(env, 2, (1, 0), (1, 5), "w"))
        _open(client, sql, "select width, height from area;\n")
        client.text_document_did_change(change(sql, 2, (0, 7), (0, 12), "w"))
        assert await wait_for(lambda: {s["uri"] for s in status if s["reason"] == "excluded"} == {env, sql})
        # An allowed file in the same workspace still gets predictions...
        _open(client, area, AREA)
        _rename_width(client, area)
        assert await _offered_action(client, area, 1, 12)
        await client.shutdown_session()
        excluded = [s for s in status if s["reason"] == "excluded"]
        assert "'.env*'" in excluded[0]["message"] or "'*.env'" in excluded[0]["message"]
        logs = " | ".join(m.message for m in client.log_messages)
        assert "matches the exclude pattern '*.sql'" in logs

    asyncio.run(scenario())
    # ...and nothing of the excluded files reached the server: not as the file, not in the history of
    # another file's request, not as related code (the workspace index skips them too).
    stored = _mine(serve, user, "telemetry")
    snapshots = [r["snapshot"] for r in stored if r["type"] == "predicted"]
    assert snapshots and all(s["path"] == "area.py" for s in snapshots)
    for snap in snapshots:
        assert all(ev["path"] == "area.py" for ev in snap["history"])
        assert all(r["path"] not in (".env", "config/secrets.yml", "dump.sql") for r in snap["related"])
    assert SECRET not in str(serve.rows("telemetry")) + str(serve.rows("requests")) + str(serve.rows("events"))
    # The attempts are counted for the dashboard as `skipped` events (sent at shutdown at the latest).
    skipped = [r for r in stored if r["type"] == "skipped"]
    assert sum(r["counts"].get("excluded", 0) for r in skipped) >= 2
    assert 'data-skipped="excluded"' in serve.dashboard()


# --------------------------------------------------------------------------- reasons, 401

def test_every_attempt_without_a_prediction_says_why(serve, tmp_path: Path) -> None:
    user = "u-reasons"
    text = "def f(x):\n    return x\n"

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--user-id", user, root=tmp_path)
        status = watch_status(client)
        uri = (tmp_path / "f.py").as_uri()
        _open(client, uri, text)
        # An edit the baseline has nothing to propagate from: the server answers "empty".
        client.text_document_did_change(change(uri, 2, (1, 12), (1, 12), " + 1"))
        assert await wait_for(lambda: [s for s in status if s["reason"] == "empty"])
        client.text_document_did_change(change(uri, 3, (1, 16), (1, 16), " + 2"))
        assert await wait_for(lambda: len([s for s in status if s["reason"] == "empty"]) >= 2)
        await client.shutdown_session()
        empty = [s for s in status if s["reason"] == "empty"]
        assert all(s["uri"] == uri and s["state"] == "none" and s["requestId"] for s in empty)
        assert empty[0]["message"] == "no prediction: the model proposes no edit here"
        # The status also ends the $/progress the client shows, and one log line per change of reason.
        ends = [v for reports in client.progress_reports.values() for v in reports
                if isinstance(v, types.WorkDoneProgressEnd)]
        assert any(v.message == empty[0]["message"] for v in ends)
        lines = [m.message for m in client.log_messages if "no prediction" in m.message]
        assert lines == ["nextedit: no prediction: the model proposes no edit here"]

    asyncio.run(scenario())


def test_a_refused_api_key_is_shown_once(serve, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", root=tmp_path, options={"token": "wrong-key"})
        status = watch_status(client)
        uri = (tmp_path / "area.py").as_uri()
        _open(client, uri, AREA)
        for version in range(2, 5):
            client.text_document_did_change(change(uri, version, (3, 9), (3, 9), "x"))
            assert await wait_for(lambda v=version: len([s for s in status if s["reason"] == "unauthorized"]) >= v - 1)
        await client.shutdown_session()
        shown = [m for m in client.messages if m.type == types.MessageType.Error]
        assert len(shown) == 1 and "refused the API key" in shown[0].message and "HTTP 401" in shown[0].message
        assert "invalid API key" in shown[0].message

    asyncio.run(scenario())


# --------------------------------------------------------------------------- pacing

def test_back_off_after_rejections_and_explicit_requests_still_work(serve, tmp_path: Path) -> None:
    user = "u-backoff"
    text = "a = width + width\nb = height + height\nc = depth + depth\n"

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--user-id", user, root=tmp_path,
                                 options={"backoffAfter": 2, "backoffS": 60})
        status = watch_status(client)
        uri = (tmp_path / "r.py").as_uri()
        _open(client, uri, text)
        version = 1
        for line, word in ((0, "width"), (1, "height")):
            version += 1  # rename the first occurrence; the baseline offers the second one inline
            client.text_document_did_change(change(uri, version, (line, 4), (line, 4 + len(word)), "v"))
            items = (await _inline(client, uri, line, 5)).items
            assert len(items) == 1 and items[0].insert_text == " + v"
            version += 1  # ...and the user types something else there: rejected
            end = 8 + len(word)
            client.text_document_did_change(change(uri, version, (line, 8), (line, end), "zz"))
        assert await wait_for(lambda: [s for s in status if s["reason"] == "backoff"])
        await asyncio.sleep(0.5)  # let the server store the requests made before the back-off
        requests_before = len([r for r in _mine(serve, user, "telemetry") if r["type"] == "predicted"])
        version += 1
        client.text_document_did_change(change(uri, version, (2, 4), (2, 9), "v"))  # would be predictable
        assert await wait_for(lambda: len([s for s in status if s["reason"] == "backoff"]) >= 2)
        assert len([r for r in _mine(serve, user, "telemetry") if r["type"] == "predicted"]) == requests_before
        # Asking explicitly (an Invoked inline request) still predicts during the back-off.
        items = (await _inline(client, uri, 2, 5, invoked=True)).items
        assert len(items) == 1 and items[0].insert_text == " + v"
        await client.shutdown_session()
        backoff = next(s for s in status if s["reason"] == "backoff")
        assert backoff["message"] == "no prediction: suggestions paused after 2 rejected predictions in a row"

    asyncio.run(scenario())
    rejected = [r for r in _mine(serve, user) if r["type"] == "rejected"]
    assert [r["reason"] for r in rejected][:2] == ["typed", "typed"]


def _typing_requests(serve, tmp_path: Path, user: str, coalesce: bool) -> int:
    """Type 8 characters 0.25 s apart (an editor that sends its changes in batches); count predict requests."""
    async def scenario() -> int:
        client = await start_lsp(serve.url, "--debounce-ms", "30", "--user-id", user, root=tmp_path,
                                 options={"coalesce": coalesce})
        uri = (tmp_path / f"typing_{coalesce}.py").as_uri()
        _open(client, uri, "x = 1\n")
        for i in range(8):
            client.text_document_did_change(change(uri, i + 2, (0, 5 + i), (0, 5 + i), str(i)))
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)
        await client.shutdown_session()
        return len([r for r in _mine(serve, user, "telemetry") if r["type"] == "predicted"])

    return asyncio.run(scenario())


def test_predict_requests_are_coalesced_when_changes_come_in_batches(serve, tmp_path: Path) -> None:
    plain = _typing_requests(serve, tmp_path, "u-plain", coalesce=False)
    coalesced = _typing_requests(serve, tmp_path, "u-coalesced", coalesce=True)
    assert plain >= 6  # a 30 ms debounce asks after every batch
    assert coalesced < plain and coalesced <= 3  # one request for the pause at the end (plus the first gap)


def test_minimum_pause_holds_the_offer_back_while_the_user_types(serve, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", root=tmp_path, inline=False,
                                 options={"minPauseMs": 3000})
        uri = (tmp_path / "area.py").as_uri()
        _open(client, uri, AREA)
        _rename_width(client, uri)
        pending = asyncio.ensure_future(_code_action(client, uri, 1, 12))
        await asyncio.sleep(0.5)
        assert not pending.done() and not client.diagnostics.get(uri)  # nothing shown during the pause
        client.text_document_did_change(change(uri, 3, (3, 9), (3, 9), "n"))  # the user types on
        assert await pending is None  # the held answer is for a text that is gone
        assert await wait_for(lambda: client.diagnostics.get(uri), 20)  # shown once the user paused
        await client.shutdown_session()

    asyncio.run(scenario())


# --------------------------------------------------------------------------- partial accept

def test_accept_next_word_then_next_line_is_reported_and_counted(serve, tmp_path: Path) -> None:
    user = "u-partial"

    async def scenario() -> str:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--settle-quiet-s", "0.5", "--collect",
                                 "--user-id", user, root=tmp_path)
        uri = (tmp_path / "total.py").as_uri()
        docs = {uri: [TOTAL, 1]}
        handle_apply_edit(client, docs)
        _open(client, uri, TOTAL)
        docs[uri] = [TOTAL.replace("    count = 0", "    acc = 0"), 2]
        client.text_document_did_change(change(uri, 2, (1, 4), (1, 9), "acc"))
        action = await _offered_action(client, uri, 1, 7)
        assert action is not None
        # The code action menu also offers the partial accepts (any client can run them from there).
        menu = await _code_action(client, uri, 1, 7)
        commands = {a.title: a for a in menu[1:]}
        assert set(commands) == {"Accept next word of predicted edit", "Accept next line of predicted edit"}
        word = commands["Accept next word of predicted edit"]
        assert await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=word.command, arguments=word.arguments))
        assert docs[uri][0] == TOTAL.replace("    count = 0", "    acc = 0").replace("count += v", "acc += v")
        assert await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="nextedit.acceptLine", arguments=[{"uri": uri}]))
        assert docs[uri][0] == TOTAL.replace("count", "acc")
        accepted = await wait_for(lambda: [r for r in _mine(serve, user) if r["type"] == "accepted"])
        request_id = accepted[0]["request_id"]
        settled = await wait_for(lambda: [r for r in _mine(serve, user) if r["type"] == "settled"
                                          and r["request_id"] == request_id])
        await client.shutdown_session()
        assert settled[0]["kept"]["kept_rate"] == 1.0  # partly by word, then by line: all of it kept
        return request_id

    request_id = asyncio.run(scenario())
    events = [r for r in _mine(serve, user) if r["request_id"] == request_id]
    kinds = [(e["type"], e.get("reason"), e.get("partial")) for e in events if e["type"] != "settled"]
    assert kinds[0][0] == "shown" and kinds[1:] == [("accepted", "partial_word", "word")]
    # No prediction was asked for the half-accepted text: the server's own edits trigger none.
    triggers = [r["trigger"] for r in _mine(serve, user, "telemetry") if r["type"] == "predicted"]
    assert triggers.count("buffer_edit") == 1 and triggers[-1] == "prediction_accepted"
    assert 'data-partial="prop:word"' in serve.dashboard()


# --------------------------------------------------------------------------- visible in every client

def test_hints_show_the_offer_without_inline_completions_and_follow_it(serve, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", inline=False, root=tmp_path)
        uri = (tmp_path / "total.py").as_uri()
        _open(client, uri, TOTAL)
        client.text_document_did_change(change(uri, 2, (1, 4), (1, 9), "acc"))
        hints = await wait_for(lambda: client.diagnostics.get(uri))
        assert sorted(h.range.start.line for h in hints) == [3, 4]  # the lines the rename reaches
        assert all(h.severity == types.DiagnosticSeverity.Hint and h.source == "nextedit" for h in hints)
        assert "`count` → `acc`" in hints[0].message and "Apply predicted edit" in hints[0].message
        # The user inserts a line above: the hints move with the offer.
        client.text_document_did_change(change(uri, 3, (1, 0), (1, 0), "    # running total\n"))
        assert await wait_for(lambda: sorted(h.range.start.line for h in client.diagnostics.get(uri, [])) == [4, 5])
        action = await _offered_action(client, uri, 2, 7)
        text = TOTAL.replace("    count = 0", "    # running total\n    acc = 0")
        for e in sorted(action.edit.changes[uri], key=lambda e: (e.range.start.line, e.range.start.character),
                        reverse=True):
            text = apply_lsp_edit(text, e.range, e.new_text)
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=4),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
        assert await wait_for(lambda: list(client.diagnostics.get(uri, [None])) == [])  # accepted: hints go
        await client.shutdown_session()

    asyncio.run(scenario())


def test_an_edit_that_cannot_be_inline_is_hinted_in_an_inline_client(serve, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", root=tmp_path)  # inline completions on
        uri = (tmp_path / "total.py").as_uri()
        _open(client, uri, TOTAL)
        client.text_document_did_change(change(uri, 2, (1, 4), (1, 9), "acc"))
        # The rename reaches two later lines: no ghost text can show it at the cursor, so hints do.
        hints = await wait_for(lambda: client.diagnostics.get(uri))
        assert sorted(h.range.start.line for h in hints) == [3, 4]
        assert not (await _inline(client, uri, 1, 7)).items
        assert await _offered_action(client, uri, 1, 7)  # and the code action still applies it
        await client.shutdown_session()

    asyncio.run(scenario())


def test_an_offer_survives_a_buffer_switch(serve, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", inline=False, root=tmp_path)
        area, other = (tmp_path / "area.py").as_uri(), (tmp_path / "other.py").as_uri()
        _open(client, area, AREA)
        _rename_width(client, area)
        first = await _offered_action(client, area, 1, 12)
        assert first is not None
        # The user goes to another file, edits there (getting its own prediction), and comes back.
        _open(client, other, TOTAL)
        client.text_document_did_change(change(other, 2, (1, 4), (1, 9), "acc"))
        assert await _offered_action(client, other, 1, 7)
        back = await _code_action(client, area, 0, 0)
        assert back and back[0].edit.changes[area] == first.edit.changes[area]
        await client.shutdown_session()

    asyncio.run(scenario())


def test_a_code_action_applied_edit_by_edit_triggers_nothing_and_settling_waits(serve, tmp_path: Path) -> None:
    user = "u-own-edits"

    async def scenario() -> str:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--settle-quiet-s", "0.5", "--collect",
                                 "--user-id", user, inline=False, root=tmp_path)
        uri = (tmp_path / "total.py").as_uri()
        _open(client, uri, TOTAL)
        client.text_document_did_change(change(uri, 2, (1, 4), (1, 9), "acc"))
        action = await _offered_action(client, uri, 1, 7)
        assert action is not None and len(action.edit.changes[uri]) == 2
        # The user takes their time: the region must not settle before they decide.
        await asyncio.sleep(2.0)
        assert not [r for r in _mine(serve, user) if r["type"] == "settled"]
        # Apply it as Emacs does: one didChange per edit, with a pause between them.
        text, version = TOTAL.replace("    count = 0", "    acc = 0"), 2
        for e in sorted(action.edit.changes[uri], key=lambda e: (e.range.start.line, e.range.start.character),
                        reverse=True):
            text, version = apply_lsp_edit(text, e.range, e.new_text), version + 1
            client.text_document_did_change(change(uri, version, (e.range.start.line, e.range.start.character),
                                                   (e.range.end.line, e.range.end.character), e.new_text))
            await asyncio.sleep(0.5)
        assert text == TOTAL.replace("count", "acc")
        accepted = await wait_for(lambda: [r for r in _mine(serve, user) if r["type"] == "accepted"])
        request_id = accepted[0]["request_id"]
        settled = await wait_for(lambda: [r for r in _mine(serve, user) if r["type"] == "settled"
                                          and r["request_id"] == request_id])
        await client.shutdown_session()
        assert settled[0]["kept"]["kept_rate"] == 1.0
        return request_id

    request_id = asyncio.run(scenario())
    predicted = [r for r in _mine(serve, user, "telemetry") if r["type"] == "predicted"]
    assert [r["trigger"] for r in predicted].count("buffer_edit") == 1  # none for the half-applied text
    settled = [r for r in _mine(serve, user) if r["type"] == "settled"]
    assert [r["request_id"] for r in settled].count(request_id) == 1


def test_an_accepted_prediction_settles_when_the_editor_quits(serve, tmp_path: Path) -> None:
    user = "u-quit"

    async def scenario() -> None:
        client = await start_lsp(serve.url, "--debounce-ms", "20", "--settle-quiet-s", "60", "--collect",
                                 "--user-id", user, root=tmp_path)
        uri = (tmp_path / "area.py").as_uri()
        _open(client, uri, AREA)
        _rename_width(client, uri)
        items = (await _inline(client, uri, 1, 12)).items
        assert len(items) == 1
        item = items[0]
        client.text_document_did_change(change(uri, 3, (item.range.start.line, item.range.start.character),
                                               (item.range.end.line, item.range.end.character), item.insert_text))
        await wait_for(lambda: [r for r in _mine(serve, user) if r["type"] == "accepted"])
        await client.shutdown_session()  # well within the 60 s quiet period

    asyncio.run(scenario())
    accepted = [r for r in _mine(serve, user) if r["type"] == "accepted"]
    settled = [r for r in _mine(serve, user) if r["type"] == "settled" and r["request_id"] == accepted[0]["request_id"]]
    assert len(settled) == 1 and settled[0]["kept"]["kept_rate"] == 1.0 and settled[0]["quiet_s"] < 60
