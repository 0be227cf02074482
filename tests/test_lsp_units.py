"""Pure parts of `nextedit lsp`: position encodings, document changes, history grouping, snapshots,
mapping predictions back, and the fate of an offered prediction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit import patch as patchlib
from nextedit.lsp.documents import (
    Change,
    Document,
    PositionError,
    chars_to_column,
    column_to_chars,
)
from nextedit.lsp.history import EditHistory, render_diff
from nextedit.lsp.offer import Offer
from nextedit.lsp.settings import Settings
from nextedit.lsp.snapshot import (
    Edit,
    PredictionShapeError,
    build_snapshot,
    diff_edits,
    prediction_edits,
    span,
    to_document,
)

# --------------------------------------------------------------------------- positions

def test_utf16_columns_count_non_bmp_characters_twice() -> None:
    line = 'a😀b𝄞c'
    assert [chars_to_column(line, i) for i in range(len(line) + 1)] == [0, 1, 3, 4, 6, 7]
    assert [column_to_chars(line, c) for c in [0, 1, 3, 4, 6, 7]] == [0, 1, 2, 3, 4, 5]
    assert column_to_chars(line, 2) == 1  # inside the surrogate pair: rounds down to the emoji
    assert column_to_chars(line, 99) == len(line)


def test_utf8_and_utf32_columns() -> None:
    line = 'é😀x'
    assert chars_to_column(line, 3, "utf-8") == 2 + 4 + 1
    assert column_to_chars(line, 6, "utf-8") == 2
    assert chars_to_column(line, 3, "utf-32") == 3
    assert column_to_chars(line, 2, "utf-32") == 2


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
       st.sampled_from(["utf-8", "utf-16", "utf-32"]))
@settings(max_examples=200, deadline=None)
def test_offsets_round_trip_through_positions(text: str, encoding: str) -> None:
    doc = Document("file:///t", "t", text, encoding=encoding)  # type: ignore[arg-type]
    for offset in range(len(text) + 1):
        line, col = doc.position_of(offset)
        back = doc.offset_at(line, col)
        if text[offset - 1:offset + 1] == "\r\n" if offset else False:
            continue  # between \r and \n is not a position an editor can name
        assert back == offset


def test_document_replace_with_utf16_range_and_out_of_range() -> None:
    doc = Document("file:///t", "t", 'x = "😀"\ny = 1\n')
    start = doc.offset_at(0, 7)  # after the emoji (2 UTF-16 units)
    change = doc.replace(start, start, "!")
    assert doc.text == 'x = "😀!"\ny = 1\n'
    assert change == Change(start, start, "!", "")
    with pytest.raises(PositionError):
        doc.offset_at(5, 0)
    assert doc.clamped_offset_at(5, 0) == len(doc.text)
    assert doc.offset_at(1, 99) == doc.text.index("y = 1") + 5  # past the line end clamps to it


def test_full_text_change_becomes_the_smallest_change() -> None:
    doc = Document("file:///t", "t", "alpha beta gamma\n")
    change = doc.replace_all("alpha BETA gamma\n")
    assert change == Change(6, 10, "BETA", "beta")
    assert doc.replace_all(doc.text) is None


# --------------------------------------------------------------------------- history

FILE = "".join(f"line {i}\n" for i in range(40))


def _edit(text: str, old: str, new: str) -> tuple[str, Change]:
    i = text.index(old)
    return text[:i] + new + text[i + len(old):], Change(i, i + len(old), new, old)


def test_render_diff_numbers_hunks_from_the_top_of_the_file() -> None:
    after = FILE.replace("line 30\n", "line thirty\n")
    diff = render_diff(FILE, after, "f.txt")
    assert "@@ -28,7 +28,7 @@" in diff
    assert patchlib.apply(diff, FILE) == after


@given(st.lists(st.sampled_from(["a\n", "b\n", "c", "\n", "d\r\n"]), max_size=12),
       st.lists(st.sampled_from(["a\n", "b\n", "c", "\n", "x\n"]), max_size=12))
@settings(max_examples=200, deadline=None)
def test_render_diff_always_applies(a: list[str], b: list[str]) -> None:
    before, after = "".join(a), "".join(b)
    diff = render_diff(before, after, "f")
    assert patchlib.apply(diff, before) == after if diff else before == after


def test_nearby_edits_within_a_second_make_one_event() -> None:
    history = EditHistory()
    text = FILE
    t = 100.0
    for step in ["line 1X", "line 1XY"]:
        new, change = _edit(text, text.split("\n")[1], step)
        history.record("f.txt", text, change, new, t)
        text, t = new, t + 0.3
    new, change = _edit(text, "line 5\n", "line five\n")  # 4 lines away, still within 1 s
    history.record("f.txt", text, change, new, t)
    events = history.events()
    assert len(events) == 1
    assert patchlib.apply(events[0].diff, FILE) == new
    assert events[0].path == "f.txt" and not events[0].predicted


def test_edits_far_apart_or_after_a_pause_or_in_another_file_split() -> None:
    history = EditHistory()
    text = FILE
    new, c = _edit(text, "line 1\n", "line one\n")
    history.record("f.txt", text, c, new, 0.0)
    text = new
    new, c = _edit(text, "line 30\n", "line thirty\n")  # far away
    history.record("f.txt", text, c, new, 0.1)
    text = new
    new, c = _edit(text, "line 31\n", "line 31!\n")  # near, but after a pause
    history.record("f.txt", text, c, new, 5.0)
    history.record("g.txt", "a\n", Change(0, 1, "b", "a"), "b\n", 5.1)
    events = history.events()
    assert [e.path for e in events] == ["f.txt", "f.txt", "f.txt", "g.txt"]
    assert "+line one" in events[0].diff and "+line thirty" in events[1].diff and "+line 31!" in events[2].diff


def test_history_keeps_the_last_n_events_and_flags_predicted_edits() -> None:
    history = EditHistory(max_events=3)
    text = FILE
    for i in range(6):
        new, c = _edit(text, f"line {i * 6}\n", f"edited {i}\n")
        history.record("f.txt", text, c, new, float(i * 10), predicted=(i == 5))
        text = new
    events = history.events()
    assert len(events) == 3
    assert "+edited 3" in events[0].diff and events[-1].predicted and "+edited 5" in events[-1].diff


def test_typing_and_deleting_back_leaves_no_event() -> None:
    history = EditHistory()
    new, c = _edit(FILE, "line 3\n", "line 3x\n")
    history.record("f.txt", FILE, c, new, 0.0)
    back, c2 = _edit(new, "line 3x\n", "line 3\n")
    history.record("f.txt", new, c2, back, 0.2)
    assert history.events() == []


# --------------------------------------------------------------------------- snapshot

def test_snapshot_is_an_excerpt_with_editable_region_and_file_start_line() -> None:
    text = "".join(f"value_{i} = {i}\n" for i in range(2000))
    cursor = text.index("value_1000 =") + 3
    built = build_snapshot(text, cursor, "big.py", [], editable_tokens=60, context_tokens=120)
    snap = built.snapshot
    assert 0 < snap.start_line <= 1000 and len(snap.text) < len(text)
    assert text[built.offset:built.offset + len(snap.text)] == snap.text
    assert built.offset + snap.cursor == cursor
    lo, hi = built.editable
    assert lo <= cursor <= hi and text[lo:hi] == snap.editable_text


def test_prediction_edits_from_edits_or_from_the_patch() -> None:
    text = "a = 1\nb = a\nc = a\n"
    built = build_snapshot(text, 2, "m.py", [])
    snap = built.snapshot
    new = "x = 1\nb = x\nc = x\n"
    from_patch = prediction_edits({"patch": patchlib.make(text, new, path="m.py")}, snap)
    assert [(e.start, e.end, e.text) for e in from_patch] == [(0, 1, "x"), (10, 11, "x"), (16, 17, "x")]
    from_edits = prediction_edits({"edits": [{"start": 10, "end": 11, "text": "x"},
                                             {"start": 0, "end": 1, "text": "x"},
                                             {"start": 4, "end": 5, "text": "1"}]}, snap)
    assert [e.start for e in from_edits] == [0, 10]  # sorted; the no-op edit dropped
    whole = span(to_document(from_edits, built.offset), text)
    assert whole == Edit(0, 11, "x = 1\nb = x")
    assert prediction_edits({"patch": ""}, snap) == []


@pytest.mark.parametrize("prediction, message", [
    ({"edits": [{"start": 0, "end": 99, "text": ""}]}, "outside the excerpt"),
    ({"edits": [{"start": 0, "end": 3, "text": ""}, {"start": 2, "end": 4, "text": ""}]}, "overlap"),
    ({"edits": [{"start": "0", "end": 1, "text": ""}]}, "integer start/end"),
    ({"edits": "nope"}, "not a list"),
    ({"patch": "@@ -1,1 +1,1 @@\n-zzz\n+yyy\n"}, "does not apply"),
    ({}, "neither edits nor a patch"),
])
def test_bad_predictions_are_refused_with_a_reason(prediction: dict, message: str) -> None:
    snap = build_snapshot("a = 1\nb = 2\n", 0, "m.py", []).snapshot
    with pytest.raises(PredictionShapeError, match=message):
        prediction_edits(prediction, snap)


def test_diff_edits_reproduce_the_new_text() -> None:
    old, new = "def f(a, b):\n    return a + b\n", "def f(x, b):\n    return x + b  # sum\n"
    out = old
    for e in reversed(diff_edits(old, new)):
        out = out[:e.start] + e.text + out[e.end:]
    assert out == new


# --------------------------------------------------------------------------- offer

def _offer(text: str, start: int, end: int, new: str) -> Offer:
    return Offer(request_id="r", model_version="m", arm=None, uri="u", path="p", version=1, cursor=start,
                 edits=[Edit(start, end, new)], start=start, end=end, old=text[start:end], new=new)


def _apply(offer: Offer, text: str, start: int, end: int, new: str) -> str:
    offer.follow(Change(start, end, new, text[start:end]))
    return text[:start] + new + text[end:]


def test_offer_accepted_when_the_document_gets_the_predicted_text() -> None:
    text = "total = count + count\n"
    i = text.rindex("count")
    offer = _offer(text, i, i + 5, "total")
    text = _apply(offer, text, 0, 0, "# x\n")  # an edit above only shifts it
    assert offer.fate(text) == "untouched" and text[offer.start:offer.end] == "count"
    cursor = text.index(" = ")
    text = _apply(offer, text, cursor, offer.end, " = count + total")  # an inline item from the cursor
    assert offer.fate(text) == "accepted"


def test_offer_followed_while_typed_by_hand_then_accepted_or_diverged() -> None:
    text = "x = old\n"
    offer = _offer(text, 4, 7, "new")
    text = _apply(offer, text, 4, 7, "")
    assert offer.fate(text) == "following"
    text = _apply(offer, text, 4, 4, "ne")
    assert offer.fate(text) == "following"
    typed_w = _apply(offer, text, 6, 6, "w")
    assert offer.fate(typed_w) == "accepted"
    other = _offer("x = old\n", 4, 7, "new")
    diverged = _apply(other, "x = old\n", 4, 7, "zzz")
    assert other.fate(diverged) == "diverged"


def test_offer_result_applies_what_is_left() -> None:
    text = "a b a\n"
    offer = Offer(request_id="r", model_version=None, arm=None, uri="u", path="p", version=1, cursor=0,
                  edits=[Edit(0, 1, "z"), Edit(4, 5, "z")], start=0, end=5, old="a b a", new="z b z")
    assert offer.result(text) == "z b z\n"


# --------------------------------------------------------------------------- settings

def test_initialization_options_override_cli_settings_and_bad_keys_are_reported() -> None:
    base = Settings(server="http://127.0.0.1:1", collectable=False)
    merged, problems = base.merged({"collectable": True, "settleQuietS": 0.5, "debounce_ms": -3, "bogus": 1})
    assert merged.collectable is True and merged.settle_quiet_s == 0.5
    assert merged.debounce_ms == base.debounce_ms and merged.server == base.server
    assert any("debounce_ms" in p for p in problems) and any("bogus" in p for p in problems)
    assert base.merged("nonsense")[1] and base.merged(None) == (base, [])
    nested, _ = base.merged({"nextedit": {"collectable": True}})
    assert nested.collectable is True
    assert Settings().collectable is False  # consent is off by default


# --------------------------------------------------------------------------- workspace

def test_workspace_source_reads_origin_head_and_license(tmp_path) -> None:
    import subprocess

    from nextedit.lsp.workspace import workspace_source

    assert workspace_source(str(tmp_path)) is None
    assert workspace_source(None) is None
    (tmp_path / "LICENSE").write_text("MIT License\n\nPermission is hereby granted, free of charge, to any person "
                                      "obtaining a copy of this software\n")
    assert workspace_source(str(tmp_path)) == {"license": "MIT"}
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["remote", "add", "origin", "https://example.org/acme/tool.git"],
                 ["add", "LICENSE"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env)
    source = workspace_source(str(tmp_path))
    assert source["repo"] == "https://example.org/acme/tool.git" and source["license"] == "MIT"
    assert len(source["revision"]) == 40


def test_document_paths_are_relative_to_the_root_or_just_the_name(tmp_path) -> None:
    from nextedit.lsp.server import document_path

    inside = (tmp_path / "pkg" / "m.py").as_uri()
    assert document_path(inside, str(tmp_path)) == "pkg/m.py"
    assert document_path("file:///home/someone/secret/x.py", str(tmp_path)) == "x.py"
    assert document_path("file:///home/someone/x.py", None) == "x.py"
    assert document_path("untitled:Untitled-1", None) == "Untitled-1"


@given(st.lists(st.sampled_from(["a\n", "b\n", "c", "\n", "d\r\n", "ab\n"]), max_size=16),
       st.lists(st.sampled_from(["a\n", "b\n", "c", "\n", "x\n", "ab\n"]), max_size=16))
@settings(max_examples=300, deadline=None)
def test_render_diff_equals_a_whole_file_diff(a: list[str], b: list[str]) -> None:
    before, after = "".join(a), "".join(b)
    assert render_diff(before, after, "f") == patchlib.make(before, after, path="f")


def test_render_diff_on_a_long_file_matches_the_whole_file_diff() -> None:
    before = "".join(f"row {i} " + "x" * (i % 50) + "\n" for i in range(20000))
    for old, new in [("row 17000 ", "row 17000 y"), ("row 3 x", "row 3\nnew\nx"), ("row 19999 ", "")]:
        after = before.replace(old, new, 1)
        assert render_diff(before, after, "f") == patchlib.make(before, after, path="f")


@given(st.text(alphabet="ab\n", max_size=20), st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.text(alphabet="xy\n", max_size=4)), max_size=8))
@settings(max_examples=300, deadline=None)
def test_line_starts_follow_changes(text: str, edits: list[tuple[int, int, str]]) -> None:
    from nextedit.patch import line_offsets

    doc = Document("file:///t", "t", text)
    doc.line_starts()
    for a, b, new in edits:
        a, b = sorted((min(a, len(doc.text)), min(b, len(doc.text))))
        doc.replace(a, b, new)
        assert doc.line_starts() == line_offsets(doc.text)


def test_snapshot_of_a_long_file_is_the_same_as_from_the_whole_file() -> None:
    from nextedit.mine.excerpt import excerpt_around

    text = "".join(f"def f{i}(a):\n    return a + {i}\n\n" for i in range(3000))
    for cursor in (0, len(text) // 2, text.index("def f2999"), len(text)):
        built = build_snapshot(text, cursor, "long.py", [])
        whole = excerpt_around(text, cursor, "long.py")
        assert (built.snapshot.text, built.snapshot.start_line, built.snapshot.cursor,
                built.snapshot.editable) == (whole.text, whole.start_line, whole.cursor, whole.editable)
        assert text[built.offset:built.offset + len(whole.text)] == whole.text


# --------------------------------------------------------------------------- inline items

@pytest.mark.parametrize("text, cursor, edit, expected", [
    # after the cursor on its line: the item starts at the cursor
    ("total = count + count\n", 5, (16, 21, "total"), ((0, 5), (0, 21), " = count + total")),
    # the word being typed, completed: the typed prefix is kept at the start of the item
    ("x = ite\n", 7, (4, 7, "item"), ((0, 4), (0, 7), "item")),
    # before the cursor and not a continuation of what is typed: no inline item
    ("x = abc\n", 7, (4, 7, "xyz"), None),
    # on another line: no inline item
    ("a = 1\nb = a\n", 1, (10, 11, "z"), None),
    # an emoji before the edit: UTF-16 columns
    ('s = "😀"; y = old\n', 9, (13, 16, "new"), ((0, 10), (0, 17), "y = new")),
])
def test_inline_item_rules(text: str, cursor: int, edit: tuple[int, int, str], expected) -> None:
    from nextedit.lsp.server import NexteditLanguageServer

    server = NexteditLanguageServer(Settings(server="http://127.0.0.1:1"))
    doc = Document("file:///t.py", "t.py", text)
    offer = _offer(text, edit[0], edit[1], edit[2])
    item = server.inline_item(offer, doc, cursor)
    if expected is None:
        assert item is None
        return
    (sl, sc), (el, ec), insert = expected
    assert (item.range.start.line, item.range.start.character, item.range.end.line, item.range.end.character) \
        == (sl, sc, el, ec)
    assert item.insert_text == insert and item.command.arguments == ["r"]


# --------------------------------------------------------------------------- jumps

def test_a_jump_is_the_first_location_outside_the_editable_lines() -> None:
    from nextedit.lsp.jump import line_range, pick

    text = "a\nb\nc\nd\ne\n"
    lines = line_range(text, (2, 6))  # "b\nc\n"
    assert lines == (1, 3)
    here = {"path": "x.py", "start_line": 1, "end_line": 2}
    below = {"path": "x.py", "start_line": 4, "end_line": 5, "reason": "r"}
    elsewhere = {"path": "y.py", "start_line": 0, "end_line": 1}
    assert pick([here, "junk", {"path": "x.py", "start_line": 3, "end_line": 1}, below, elsewhere],
                "x.py", lines).start_line == 4
    assert pick([here, elsewhere], "./x.py", lines).path == "y.py"
    assert pick([here], "x.py", lines) is None and pick(None, "x.py", lines) is None
    assert pick([{"path": "x.py", "start_line": 3, "end_line": 3}], "x.py", lines) is not None  # insertion below


def test_a_jump_target_outside_the_workspace_is_refused(tmp_path) -> None:
    from nextedit.lsp.jump import JumpError, workspace_file

    assert workspace_file(str(tmp_path), "./pkg/a.py") == tmp_path / "pkg" / "a.py"
    for bad in ("../secret.py", "/etc/passwd"):
        with pytest.raises(JumpError) as err:
            workspace_file(str(tmp_path), bad)
        assert err.value.reason == "outside_root"
    with pytest.raises(JumpError):
        workspace_file(None, "a.py")


def test_a_jump_hunk_that_no_longer_applies_is_target_changed_and_one_already_applied_too() -> None:
    from nextedit.lsp.jump import JumpError, resolve
    from nextedit.record import Location

    text = "x = 1\n\ndef old(a):\n    return a\n"
    loc = Location(path="m.py", start_line=2, end_line=3, patch="@@ -3,1 +3,1 @@\n-def old(a):\n+def new(a):\n")
    target = resolve(loc, text)
    assert [(e.start, e.end, e.text) for e in target.edits] == [(11, 14, "new")]
    assert target.selection == (11, 14)
    for changed in (text.replace("def old(a)", "def old(a, b)"), text.replace("old", "new")):
        with pytest.raises(JumpError) as err:
            resolve(loc, changed)
        assert err.value.reason == "target_changed"
    # Moved down by two lines: the hunk still fits where its text now is.
    moved = resolve(loc, "# one\n# two\n" + text)
    assert moved.edits[0].start == 11 + len("# one\n# two\n")
    # A location without an edit selects its lines.
    assert resolve(Location(path="m.py", start_line=2, end_line=3), text).selection == (7, 19)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a\n", "b\n", "ab\n", "\n", "c"]), max_size=12),
       st.lists(st.sampled_from(["a\n", "b\n", "ab\n", "\n", "c"]), max_size=12))
def test_jump_edits_turn_the_file_into_the_patched_one(old_lines: list[str], new_lines: list[str]) -> None:
    from nextedit.lsp.jump import _changed

    old, new = "".join(old_lines), "".join(new_lines)
    out = old
    for e in reversed(_changed(old, new)):
        out = out[:e.start] + e.text + out[e.end:]
    assert out == new
