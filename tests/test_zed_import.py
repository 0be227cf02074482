"""Zed import/export: every sample eval imports, round trips (md and JSONL), cursors, errors, CLI."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner
from zed_samples import EVALS, SAMPLES, needs_samples

from nextedit.cli import app
from nextedit.patch import PatchError, apply
from nextedit.record import RecordError, parse_example
from nextedit.sources.zed import read_zed, read_zed_file, to_markdown, write_zed
from nextedit.sources.zed_cursor import (
    CursorError,
    cursor_annotation,
    cursor_from_annotation,
    decode_excerpt,
    encode_excerpt,
    split_annotations,
)
from nextedit.sources.zed_markdown import parse_markdown
from nextedit.sources.zed_spec import example_to_spec, spec_to_example

# These two have an extra blank line between blocks, which the writer does not keep.
NOT_BYTE_EXACT = {"flask--add-test-function", "tree-sitter--if-let-to-match"}

pytestmark = needs_samples


def test_all_twenty_zed_samples_are_found():
    assert len(SAMPLES) == 20, f"expected Zed's 20 eval cases in {EVALS}"


def _one(path: Path):
    examples = list(read_zed_file(path))
    assert len(examples) == 1
    return examples[0]


def test_there_are_twenty_samples() -> None:
    assert len(SAMPLES) == 20


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_imports(path: Path) -> None:
    ex = _one(path)
    assert ex.id == path.stem
    assert ex.source.kind == "zed" and ex.source.repo and ex.source.revision
    assert "[CURSOR_POSITION]" not in ex.snapshot.text
    assert ex.snapshot.text.endswith("\n")
    assert ex.expected, "every sample has at least one expected patch"
    for patch in ex.expected:
        assert not any(line.startswith("#") for line in patch.splitlines())
    outside = ex.zed.get("expected_outside_excerpt", []) if ex.zed else []
    for i, patch in enumerate(ex.expected):
        if i in outside:
            with pytest.raises(PatchError):
                apply(patch, ex.snapshot.text, start_line=ex.snapshot.start_line, path=ex.snapshot.path)
            continue
        after = apply(patch, ex.snapshot.text, start_line=ex.snapshot.start_line, path=ex.snapshot.path)
        cursor = ex.expected_cursors[i] if ex.expected_cursors else None
        assert cursor is None or 0 <= cursor <= len(after)


def test_expected_patches_are_fitted_to_the_excerpt() -> None:
    # These five carry context from outside the cursor excerpt; trimming it makes all but two apply.
    outside = {p.stem: ex.zed.get("expected_outside_excerpt") for p in SAMPLES if (ex := _one(p)).zed}
    assert {k: v for k, v in outside.items() if v} == {"codex-acp--add-derive": [1],
                                                       "vscode--add-async-and-await": [0]}
    ex = _one(EVALS / "tree-sitter--tuple-to-struct-for-loop.md")
    written = ex.zed["expected_as_written"]
    assert len(written) == 2 and all(w.startswith("--- a/tree-sitter/") for w in written)
    # The two leading context lines above the excerpt are gone, the hunk header moved by two.
    assert ex.expected[0].splitlines()[2:4] == ["@@ -1544,8 +1544,7 @@", "                     let mut language_id = None;"]
    assert split_annotations(written[0])[0].replace("@@ -1542,", "@@ -1544,").count("\n") == \
        ex.expected[0].count("\n") + 2
    # The first alternative of codex-acp--add-derive is trimmed; the second adds an import above the
    # excerpt, so it stays as written.
    ex = _one(EVALS / "codex-acp--add-derive.md")
    assert ex.zed["expected_as_written"][1] is None
    assert "+use serde::Serialize;\n" in ex.expected[1]
    apply(ex.expected[0], ex.snapshot.text, start_line=ex.snapshot.start_line, path=ex.snapshot.path)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("fmt", ["md", "jsonl"])
def test_round_trip(path: Path, fmt: str, tmp_path: Path) -> None:
    first = _one(path)
    out = tmp_path / ("out" if fmt == "md" else "out.jsonl")
    assert write_zed([first], out, fmt=fmt) == 1  # type: ignore[arg-type]
    again = list(read_zed([out]))
    assert [e.to_dict() for e in again] == [first.to_dict()]


@pytest.mark.parametrize("path", [p for p in SAMPLES if p.stem not in NOT_BYTE_EXACT], ids=lambda p: p.stem)
def test_markdown_export_restores_the_file(path: Path) -> None:
    assert to_markdown(_one(path)) == path.read_text()


def test_md_then_jsonl_then_md_keeps_layout(tmp_path: Path) -> None:
    path = EVALS / "vscode--log-object-property.md"
    write_zed([_one(path)], tmp_path / "x.jsonl", fmt="jsonl")
    (again,) = read_zed([tmp_path / "x.jsonl"])
    assert to_markdown(again) == path.read_text()


def _cursor_context(ex, width: int = 12) -> tuple[str, str]:
    t, c = ex.snapshot.text, ex.snapshot.cursor
    return t[max(0, c - width):c], t[c:c + width]


def test_caret_marker_and_expected_cursors() -> None:
    ex = _one(EVALS / "flask--add-import-statement.md")
    assert _cursor_context(ex) == ("ing as t\n\nim", "from werkzeu")
    assert ex.snapshot.start_line == 0 and ex.zed["start_line_from"] == "history"
    (event,) = ex.snapshot.history
    assert (event.path, event.old_path, event.predicted) == ("src/flask/logging.py", "src/flask/logging.py", False)
    assert event.diff.startswith("@@ -4,7 +4,7 @@\n import sys\n")
    results = [apply(p, ex.snapshot.text, path=ex.snapshot.path) for p in ex.expected]
    # The file puts the caret one column past "import"; it is clamped to the end of that line.
    assert results[0][: ex.expected_cursors[0]].endswith("\nimport")
    assert results[1][: ex.expected_cursors[1]].endswith("\nimport werkzeug")


def test_less_than_marker_points_at_first_non_blank_column() -> None:
    ex = _one(EVALS / "vscode--add-interface-method.md")
    before, after = _cursor_context(ex)
    assert before.endswith("None;\n\t\t\t") and after.startswith("onDidSignal")
    ex = _one(EVALS / "vscode--add-class-decorator.md")
    assert _cursor_context(ex, 21)[1] == "export class TextEdit"
    # "   // <" is indented past the end of "\t/": the cursor is clamped to the end of that line.
    ex = _one(EVALS / "terraform--add-comment.md")
    before, after = _cursor_context(ex)
    assert before.endswith("Unlock()\n\n\t/") and after.startswith("\n\tresult")


def test_accepted_prediction_marker_and_history_paths() -> None:
    ex = _one(EVALS / "flask--rename-accepted-prediction.md")
    assert [h.predicted for h in ex.snapshot.history] == [False, True, False]
    assert all(h.path == "tests/test_basic.py" for h in ex.snapshot.history)
    spec = example_to_spec(ex)
    assert spec["edit_history"].count("// User accepted prediction:\n--- a/tests/test_basic.py") == 1
    ex = _one(EVALS / "vscode--add-interface-method.md")
    assert [h.path for h in ex.snapshot.history][:2] == ["src/vs/platform/window/electron-main/window.ts",
                                                          "src/vs/platform/windows/electron-main/window.ts"]


def test_start_line_inference() -> None:
    # History's new side wins over the hand-written (inaccurate) expected-patch line numbers.
    assert _one(EVALS / "flask--add-test-function.md").snapshot.start_line == 1375
    assert _one(EVALS / "tree-sitter--if-let-to-match.md").snapshot.start_line == 735
    ex = _one(EVALS / "tree-sitter--tuple-to-struct-destructuring.md")
    assert (ex.snapshot.start_line, ex.zed["start_line_from"]) == (927, "expected")


def test_other_annotations_are_kept_verbatim() -> None:
    path = EVALS / "flask--add-for-loop.md"
    ex = _one(path)
    assert ex.id == "flask--add-for-loop" and ex.zed["markdown"]["heading"] is True
    notes = ex.zed["expected_annotations"]
    assert notes[0] == [] and [n[1] for n in notes[1]] == [
        "#            ----^[SELECTION]", "#                    --------^[SELECTION]", "#            ^[CURSOR]"]
    assert ex.expected_cursors == []
    for note in (n[1] for n in notes[1]):
        assert note + "\n" in to_markdown(ex)


def test_patches_that_do_not_apply_keep_their_cursor_line() -> None:
    md = (EVALS / "zed--add-eprintln.md").read_text().replace("-        epr\n", "-        zzz\n")
    parsed = parse_markdown(md, file="x.md")
    ex = spec_to_example(parsed.spec, file="x.md", default_id="x", lines=parsed.lines)
    assert ex.expected_cursors == [] and ex.zed["expected_outside_excerpt"] == [0]
    assert ex.zed["expected_annotations"][0][0][1].endswith("^[CURSOR_POSITION]")
    assert "#                   ^[CURSOR_POSITION]\n" in to_markdown(ex)


# --------------------------------------------------------------------------- cursor encodings


def test_encode_matches_zed_conventions() -> None:
    text = "fn main() {\n    let x = 42;\n    println!(x);\n}"
    assert encode_excerpt(text, text.index("42"), "//").split("\n")[2] == "    //      ^[CURSOR_POSITION]"
    assert encode_excerpt(text, text.index("et x"), "//").split("\n")[2] == "//   ^[CURSOR_POSITION]"
    assert encode_excerpt(text, text.index("    let"), "//").split("\n")[2] == "// <[CURSOR_POSITION]"
    assert encode_excerpt(text, text.index("    let") + 1, "//").split("\n")[2] == " // <[CURSOR_POSITION]"
    assert encode_excerpt(text, len(text), "//") == text + "\n // <[CURSOR_POSITION]"


def test_columns_are_utf8_bytes() -> None:
    text = "é = 'ü'\nnext\n"
    cursor = text.index("ü")
    marked = encode_excerpt(text, cursor, "#")
    assert marked.split("\n")[1] == "#     ^[CURSOR_POSITION]"  # 'é' is two bytes
    decoded = decode_excerpt(marked)
    assert (decoded.text, decoded.cursor) == (text, cursor)


def test_inline_markers() -> None:
    d = decode_excerpt("a = <|user_cursor|>1\n")
    assert (d.text, d.cursor, d.style) == ("a = 1\n", 4, "inline")
    d = decode_excerpt("a = [CURSOR_POSITION]1\n")
    assert (d.text, d.cursor, d.style) == ("a = 1\n", 4, "inline_raw")
    assert encode_excerpt("a = 1\n", 4, "#", "inline") == "a = <|user_cursor|>1\n"


@pytest.mark.parametrize("bad, message", [
    ("a\nb\n", "no cursor marker"),
    ("# ^[CURSOR_POSITION]\na\n", "no line above"),
    ("a\n# ^[CURSOR_POSITION]\nb\n# ^[CURSOR_POSITION]\n", "2 cursor marker lines"),
    ("a<|user_cursor|>b<|user_cursor|>", "2 <|user_cursor|> markers"),
])
def test_bad_cursor_markers(bad: str, message: str) -> None:
    with pytest.raises(CursorError, match=message.replace("|", r"\|").replace("[", r"\[")):
        decode_excerpt(bad)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(alphabet=" \tabé{}();ü", max_size=12), min_size=1, max_size=6),
       final_newline=st.booleans(), pick=st.integers(min_value=0), prefix=st.sampled_from(["//", "#", "--"]))
def test_encode_decode_round_trip(lines: list[str], final_newline: bool, pick: int, prefix: str) -> None:
    text = "\n".join(lines) + ("\n" if final_newline else "")
    cursor = pick % (len(text) + 1)
    decoded = decode_excerpt(encode_excerpt(text, cursor, prefix), comment=prefix)
    assert (decoded.text, decoded.cursor) == (text, cursor)


@settings(max_examples=100, deadline=None)
@given(new_lines=st.lists(st.text(alphabet="abé x", max_size=8), min_size=1, max_size=4), pick=st.integers(0))
def test_patch_cursor_annotation_round_trip(new_lines: list[str], pick: int) -> None:
    text = "keep 1\nold line\nkeep 2\n"
    patch = "@@ -1,3 +1,3 @@\n keep 1\n-old line\n" + "".join(f"+{s}\n" for s in new_lines) + " keep 2\n"
    after = apply(patch, text)
    cursor = pick % (len(after) + 1)
    note = cursor_annotation(patch, cursor, text)
    if cursor == len(after):  # past the last line: no patch line to hang the annotation on
        assert note is None
        return
    assert note is not None
    assert cursor_from_annotation(patch, note[0], note[1], text) == cursor


def test_split_annotations_keeps_positions() -> None:
    patch = "@@ -1 +1 @@\n-a\n+b\n#  ^[CURSOR_POSITION]\n"
    clean, notes = split_annotations(patch)
    assert clean == "@@ -1 +1 @@\n-a\n+b\n" and notes == [(3, "#  ^[CURSOR_POSITION]")]
    assert cursor_from_annotation(clean, 3, notes[0][1], "a\n") == 1


# --------------------------------------------------------------------------- JSONL specs


def _spec_row(**over: object) -> dict:
    row = {
        "name": "", "repository_url": "https://github.com/acme/inventory", "revision": "3f2a9c1e",
        "tags": ["synthetic"], "uncommitted_diff": "", "cursor_path": "inventory/stock.py",
        "cursor_position": "def restock(item, qty):\n    item.count += amount\n    #             ^[CURSOR_POSITION]\n"
                           "    log(item)\n",
        "edit_history": "--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -1,3 +1,3 @@\n"
                        "-def restock(item, amount):\n+def restock(item, qty):\n     item.count += amount\n"
                        "     log(item)\n",
        "expected_patches": ["--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -1,3 +1,3 @@\n"
                             " def restock(item, qty):\n-    item.count += amount\n+    item.count += qty\n"
                             "#" + " " * 21 + "^[CURSOR_POSITION]\n     log(item)\n"],
        "telemetry": {"request_id": "r1", "device_id": "d", "time": "t", "rejection_reason": "x",
                      "was_shown": True},
        "rating": "Negative",
        "predictions": [{"actual_output": "raw text", "actual_patch": "@@ -2 +2 @@\n-a\n+b\n",
                         "actual_cursor": None, "provider": "teacher:sonnet45", "avg_logprob": -0.5}],
        "some_future_field": [1, 2],
    }
    row.update(over)
    return row


def test_jsonl_spec_fields_map_and_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "specs.jsonl"
    src.write_bytes(orjson.dumps(_spec_row()) + b"\n\n" + orjson.dumps(_spec_row(name="named")) + b"\n")
    first = list(read_zed([src]))
    assert [e.id for e in first] == ["specs-0", "named"]
    ex = first[0]
    assert ex.source.tags == ["synthetic"] and ex.source.repo == "https://github.com/acme/inventory"
    assert ex.snapshot.text[ex.snapshot.cursor:].startswith("amount\n")
    after = apply(ex.expected[0], ex.snapshot.text, path=ex.snapshot.path)
    assert after[: ex.expected_cursors[0]].endswith("item.count += qty")
    assert ex.predictions[0].raw == "raw text" and ex.predictions[0].provider == "teacher:sonnet45"
    assert ex.zed["spec"]["telemetry"]["request_id"] == "r1"
    assert ex.zed["spec"]["some_future_field"] == [1, 2]
    write_zed(first, tmp_path / "back.jsonl", fmt="jsonl")
    rows = [orjson.loads(line) for line in (tmp_path / "back.jsonl").read_bytes().splitlines()]
    assert rows[0]["telemetry"] == _spec_row()["telemetry"] and rows[0]["rating"] == "Negative"
    assert rows[0]["expected_patches"] == _spec_row()["expected_patches"]
    assert rows[0]["predictions"] == _spec_row()["predictions"]
    assert [e.to_dict() for e in read_zed([tmp_path / "back.jsonl"])] == [e.to_dict() for e in first]


# An excerpt starting at file line 10 (0-based) and a patch with context above and below it.
_FIT_HISTORY = ("--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -11,3 +11,3 @@\n"
                "-def restock(item, amount):\n+def restock(item, qty):\n     item.count += amount\n     log(item)\n")
_SELECTION = "#    ----^[SELECTION]"
_FIT_PATCH = ("--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -9,6 +9,6 @@\n"
              " from log import log\n \n def restock(item, qty):\n-    item.count += amount\n"
              "+    item.count += qty\n#" + " " * 21 + "^[CURSOR_POSITION]\n" + _SELECTION + "\n"
              "     log(item)\n     return item\n")
_OUTSIDE_PATCH = ("--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -12,3 +12,3 @@\n"
                  "     item.count += amount\n     log(item)\n-    return item\n+    return None\n"
                  "#" + " " * 15 + "^[CURSOR_POSITION]\n")


def _fit_row(**over: object) -> dict:
    row = _spec_row(name="fit", edit_history=_FIT_HISTORY, **over)
    for key in ("uncommitted_diff", "telemetry", "rating", "predictions", "some_future_field"):
        del row[key]  # Zed-only fields Markdown has no place for
    return row


def test_expected_patch_with_context_outside_the_excerpt(tmp_path: Path) -> None:
    row = _fit_row(expected_patches=[_FIT_PATCH, _OUTSIDE_PATCH], rejected_patch=_FIT_PATCH)
    ex = spec_to_example(row, file="f.jsonl", lines=1)
    snap = ex.snapshot
    assert snap.start_line == 10 and ex.zed["start_line_from"] == "history"
    # Trimmed to the excerpt: it applies, the cursor comes from the trimmed patch.
    after = apply(ex.expected[0], snap.text, start_line=10, path=snap.path)
    assert after == snap.text.replace("+= amount", "+= qty")
    assert ex.expected[0].startswith("--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -11,3 +11,3 @@\n")
    assert after[: ex.expected_cursors[0]].endswith("item.count += qty")
    # The other annotation moved up by the two context lines trimmed before it (after the "+" line).
    assert ex.zed["expected_annotations"][0] == [[6, _SELECTION]]
    assert ex.expected[0].splitlines()[5] == "+    item.count += qty"
    # Changes below the excerpt: kept as written, cursor unknown, annotation kept.
    assert ex.expected[1] == split_annotations(_OUTSIDE_PATCH)[0] and ex.expected_cursors[1] is None
    assert ex.zed["expected_outside_excerpt"] == [1]
    assert ex.zed["expected_annotations"][1][0][1].endswith("^[CURSOR_POSITION]")
    assert ex.zed["expected_as_written"] == [_FIT_PATCH, None]
    # The rejected patch is trimmed the same way; its annotations are all kept.
    assert ex.rejected == ex.expected[0] and ex.zed["rejected_as_written"] == _FIT_PATCH
    assert [n[0] for n in ex.zed["rejected_annotations"]] == [6, 6]
    # Export writes the patches as Zed wrote them; JSONL and Markdown round trips hold.
    spec = example_to_spec(ex)
    assert spec["expected_patches"] == [_FIT_PATCH, _OUTSIDE_PATCH] and spec["rejected_patch"] == _FIT_PATCH
    for fmt, name in (("jsonl", "x.jsonl"), ("md", "md")):
        write_zed([ex], tmp_path / name, fmt=fmt)
        assert [e.to_dict() for e in read_zed([tmp_path / name])] == [ex.to_dict()]


def test_edited_fitted_patch_exports_trimmed_with_its_annotations() -> None:
    ex = spec_to_example(_fit_row(expected_patches=[_FIT_PATCH], rejected_patch=_FIT_PATCH), lines=1)
    # Once the record no longer matches the patch as written, the trimmed patch is exported.
    edited = ex.model_copy(update={"zed": {k: v for k, v in ex.zed.items() if not k.endswith("as_written")}})
    spec = example_to_spec(edited)
    lines = spec["expected_patches"][0].splitlines()
    assert lines[2:] == ["@@ -11,3 +11,3 @@", " def restock(item, qty):", "-    item.count += amount",
                         "+    item.count += qty", "#" + " " * 21 + "^[CURSOR_POSITION]", _SELECTION, "     log(item)"]
    assert spec["rejected_patch"].splitlines()[5:8] == ["+    item.count += qty", "#" + " " * 21 + "^[CURSOR_POSITION]", _SELECTION]
    again = spec_to_example(spec, lines=1)
    assert again.to_dict() == edited.to_dict()
    # A changed expected cursor also drops the patch as written.
    moved = ex.model_copy(update={"expected_cursors": [ex.expected_cursors[0] - 3]})
    assert example_to_spec(moved)["expected_patches"][0] != _FIT_PATCH


def test_prompt_inputs_only_rows(tmp_path: Path) -> None:
    excerpt = "x = 'é'\ny = 2\n"
    row = _spec_row(cursor_position="", edit_history="", name="pi", prompt_inputs={
        "cursor_path": "inventory/stock.py", "cursor_excerpt": excerpt,
        "cursor_offset_in_excerpt": len("x = 'é'\ny".encode()), "excerpt_start_row": 40,
        "events": [{"event": "BufferChange", "path": "inventory/stock.py", "old_path": "inventory/stock.py",
                    "diff": "@@ -42 +42 @@\n-y = 1\n+y = 2\n", "predicted": True}],
        "related_files": [{"path": "m.py", "max_row": 9, "excerpts": [
            {"row_range": {"start": 3, "end": 5}, "text": "class M: ...\n", "order": 1,
             "context_source": "lsp"}]}],
    }, expected_patches=[])
    ex = spec_to_example(row, file="p.jsonl", lines=1)
    assert ex.snapshot.text == excerpt and ex.snapshot.text[ex.snapshot.cursor:] == " = 2\n"
    assert ex.snapshot.start_line == 40 and ex.zed["start_line_from"] == "prompt_inputs"
    assert ex.snapshot.history[0].predicted and ex.snapshot.history[0].diff.startswith("@@ -42")
    assert ex.snapshot.related[0].model_dump() == {"path": "m.py", "start_line": 3, "text": "class M: ...\n",
                                                   "source": "lsp", "rank": 1}
    spec = example_to_spec(ex)
    assert spec["edit_history"] == "" and spec["prompt_inputs"] == row["prompt_inputs"]
    assert spec_to_example(spec, file="p.jsonl", lines=1).to_dict() == ex.to_dict()


def test_inline_cursor_style_survives_export() -> None:
    ex = spec_to_example(_spec_row(cursor_position="a = <|user_cursor|>1\n", edit_history="",
                                   expected_patches=[], cursor_path="a.py"), lines=1)
    assert example_to_spec(ex)["cursor_position"] == "a = <|user_cursor|>1\n"


# --------------------------------------------------------------------------- errors and CLI


@pytest.mark.parametrize("text, where", [
    ("+++\nrepository_url = 1\n+++\n", "x.md:2: field front matter.repository_url"),
    ("+++\nrepository_url = \n+++\n", "x.md:2: field front matter: bad TOML"),
    ("+++\nrevision = 'a'\n", "x.md:1: field front matter: no closing +++"),
    ("## Edit History\n\n```diff\n```\n", "x.md:1: field Cursor Position: missing"),
    ("## Cursor Position\n\n```\na\n# ^[CURSOR_POSITION]\n```\n", "x.md:3: field Cursor Position"),
    ("## Cursor Position\n\n    indented\n", "x.md:3: field Cursor Position: indented code block"),
    ("##### Deep\n", "x.md:1: field heading: unexpected heading level 5"),
    ("## Edit History\n\n// User accepted prediction:\n\n## Cursor Position\n", "x.md:5: field Edit History"),
    ("## Cursor Position\n\n```a.py\nx = 1\ny = 2\n```\n", "x.md:4: field cursor_position: no cursor marker"),
    ("## Cursor Position\n\n```a.py\nx = 1\n#^[CURSOR_POSITION]\n# ^[CURSOR_POSITION]\n```\n",
     "x.md:6: field cursor_position: 2 cursor marker lines"),
])
def test_markdown_errors_name_file_line_and_section(text: str, where: str) -> None:
    with pytest.raises(RecordError) as err:
        parsed = parse_markdown(text, file="x.md")
        spec_to_example(parsed.spec, file="x.md", lines=parsed.lines)
    assert str(err.value).startswith(where), str(err.value)
    assert "\n" not in str(err.value)


def test_cli_import_keeps_good_records_and_quarantines_bad(tmp_path: Path) -> None:
    bad_md = tmp_path / "bad.md"
    bad_md.write_text("## Cursor Position\n\n```a.py\nno marker\n```\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(orjson.dumps(_spec_row(name="ok")) + b"\n{not json\n"
                     + orjson.dumps(_spec_row(name="bad", expected_patches="x")) + b"\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["import", "zed", str(EVALS / "zed--add-eprintln.md"), str(bad_md),
                                      str(rows), "-o", str(out)])
    assert result.exit_code == 1
    assert [orjson.loads(x)["id"] for x in out.read_bytes().splitlines()] == ["zed--add-eprintln", "ok"]
    failed = [orjson.loads(x) for x in (tmp_path / "out.failed.jsonl").read_bytes().splitlines()]
    assert [(Path(f["file"]).name, f["line"]) for f in failed] == [("bad.md", 4), ("rows.jsonl", 2),
                                                                   ("rows.jsonl", 3)]
    assert "field expected_patches" in failed[2]["reason"]


def test_cli_export_md_and_jsonl_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    records = tmp_path / "all.jsonl"
    assert runner.invoke(app, ["import", "zed", str(EVALS), "-o", str(records)]).exit_code == 0
    assert len(records.read_bytes().splitlines()) == 20
    assert runner.invoke(app, ["export", "zed", str(records), "-o", str(tmp_path / "md")]).exit_code == 0
    assert runner.invoke(app, ["export", "zed", str(records), "-o", str(tmp_path / "specs.jsonl")]).exit_code == 0
    assert len(list((tmp_path / "md").glob("*.md"))) == 20
    original = [orjson.loads(x) for x in records.read_bytes().splitlines()]
    for source in (tmp_path / "md", tmp_path / "specs.jsonl"):
        again = tmp_path / f"again-{source.name}.jsonl"
        assert runner.invoke(app, ["import", "zed", str(source), "-o", str(again)]).exit_code == 0
        by_id = {r["id"]: r for r in (orjson.loads(x) for x in again.read_bytes().splitlines())}
        assert by_id == {r["id"]: r for r in original}


def test_export_md_gives_unique_names_and_keeps_ids(tmp_path: Path) -> None:
    ex = _one(EVALS / "zed--add-eprintln.md")
    a = ex.model_copy(update={"id": "same name"})
    b = ex.model_copy(update={"id": "same/name"})
    write_zed([a, b], tmp_path / "md")
    assert sorted(p.name for p in (tmp_path / "md").iterdir()) == ["same-name-2.md", "same-name.md"]
    assert sorted(e.id for e in read_zed([tmp_path / "md"])) == ["same name", "same/name"]


def test_markdown_sections_for_every_spec_field(tmp_path: Path) -> None:
    row = _spec_row(
        name="full", reasoning="Because the user renamed it.\n\nSecond paragraph.",
        uncommitted_diff="--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n",
        uncommitted_diff_contains_edit_history=True,
        recently_opened_files=[{"path": "a.py", "cursor_position": 12}, {"path": "b.py"}],
        recently_viewed_files=[{"path": "c.py", "cursor_position": 0}],
        rejected_patch="@@ -2 +2 @@\n-    item.count += amount\n+    item.count -= amount\n#  ^[CURSOR_POSITION]\n",
    )
    ex = spec_to_example(row, file="r.jsonl", lines=1)
    assert ex.rejected == "@@ -2 +2 @@\n-    item.count += amount\n+    item.count -= amount\n"
    assert ex.zed["rejected_annotations"] == [[3, "#  ^[CURSOR_POSITION]"]]
    write_zed([ex], tmp_path / "md")
    md = (tmp_path / "md" / "full.md").read_text()
    assert "uncommitted_diff_requires_edit_history_rollback = true" in md
    assert "## Rejected Patch" in md and "a.py\t12\nb.py\n" in md
    (again,) = read_zed([tmp_path / "md"])
    for key in ("reasoning", "uncommitted_diff", "uncommitted_diff_contains_edit_history",
                "recently_opened_files", "recently_viewed_files"):
        assert again.zed["spec"][key] == row[key], key
    assert again.rejected == ex.rejected and again.zed["rejected_annotations"] == ex.zed["rejected_annotations"]
    assert (again.snapshot.text, again.snapshot.cursor, again.expected, again.expected_cursors) == (
        ex.snapshot.text, ex.snapshot.cursor, ex.expected, ex.expected_cursors)
    assert "telemetry" not in again.zed["spec"]  # Markdown has no place for it (documented)


def test_records_from_other_sources_export(tmp_path: Path) -> None:
    text = "def restock(item, qty):\n    item.count += amount\n    log(item)\n"
    patch = ("--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -11,3 +11,3 @@\n def restock(item, qty):\n"
             "-    item.count += amount\n+    item.count += qty\n     log(item)\n")
    ex = parse_example({"id": "git-1", "source": {"kind": "git", "repo": "r", "revision": "abc"},
                        "snapshot": {"path": "inventory/stock.py", "text": text, "start_line": 10,
                                     "cursor": 42, "history": []},
                        "expected": [patch], "expected_cursors": [text.index("log")]})
    write_zed([ex], tmp_path / "md")
    (again,) = read_zed([tmp_path / "md"])
    assert (again.snapshot.text, again.snapshot.cursor, again.snapshot.start_line) == (text, 42, 10)
    assert again.expected == [patch] and again.expected_cursors == [text.index("log")]
    assert again.source.kind == "zed" and again.source.repo == "r"


def test_crlf_files_keep_their_line_endings(tmp_path: Path) -> None:
    src = EVALS / "hello-world--rename-accepted-group-by.md"
    crlf = tmp_path / src.name
    crlf.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    ex, lf = _one(crlf), _one(src)
    assert ex.snapshot.text == lf.snapshot.text.replace("\n", "\r\n")
    assert ex.snapshot.text[: ex.snapshot.cursor].endswith("function groupByCat")
    assert ex.snapshot.start_line == lf.snapshot.start_line
    after = apply(ex.expected[0], ex.snapshot.text, start_line=ex.snapshot.start_line)
    assert after[: ex.expected_cursors[0]].endswith("function groupByCategory")
    write_zed([ex], tmp_path / "out")
    assert [e.to_dict() for e in read_zed([tmp_path / "out"])] == [ex.to_dict()]


_SNIPPETS = ["```", "```diff", "## Cursor Position", "# ^[CURSOR_POSITION]", "<|user_cursor|>", "+++",
             "// User accepted prediction:", "    indented", "##### x", "# name", "@@ -1 +1 @@", "--- a/x",
             "+++ b/x", "#  ^[CURSOR_POSITION]", "~~~", "", "-", "[CURSOR_POSITION]", "tags = 3", "é"]


@settings(max_examples=150, deadline=None)
@given(sample=st.sampled_from(SAMPLES or [Path("none")]), edits=st.lists(
    st.tuples(st.sampled_from(["delete", "insert", "cut"]), st.integers(0), st.sampled_from(_SNIPPETS)),
    min_size=1, max_size=4))
def test_damaged_markdown_gives_a_record_or_a_one_line_error(sample: Path, edits: list) -> None:
    lines = sample.read_text().split("\n")
    for op, at, snippet in edits:
        i = at % len(lines)
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "insert":
            lines.insert(i, snippet)
        else:
            lines[i] = lines[i][: at % (len(lines[i]) + 1)]
    try:
        parsed = parse_markdown("\n".join(lines), file="f.md")
        ex = spec_to_example(parsed.spec, file="f.md", lines=parsed.lines)
    except RecordError as err:
        assert str(err).startswith("f.md:") and "\n" not in str(err)
    else:
        again = spec_to_example(example_to_spec(ex), file="f.md", lines=1)
        assert again.to_dict() == ex.to_dict()


_VALUES = [None, 1, -3, "", "x", [], [1], ["a"], {}, {"a": 1}, True, 2**70, "é"]


@settings(max_examples=150, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(sorted(_spec_row()) + ["prompt_inputs"]),
                                  st.sampled_from(_VALUES)), min_size=1, max_size=3))
def test_wrong_jsonl_field_types_give_a_record_or_a_one_line_error(changes: list) -> None:
    row = _spec_row()
    for key, value in changes:
        row[key] = value
    try:
        ex = spec_to_example(row, file="f.jsonl", lines=7)
    except RecordError as err:
        assert str(err).startswith("f.jsonl:7: field ") and "\n" not in str(err)
    else:
        assert spec_to_example(example_to_spec(ex), file="f.jsonl", lines=7).to_dict() == ex.to_dict()


def test_captured_prompt_input_gives_start_line_and_fallback_snapshot() -> None:
    head = "".join(f"# line {i}\n" for i in range(30))
    excerpt = "def restock(item, qty):\n    item.count += amount\n    log(item)\n"
    captured = {"cursor_file_content": head + excerpt, "cursor_offset": len((head + "def ").encode()),
                "cursor_row": 30, "cursor_column": 4, "related_files": [],
                "events": [{"path": "inventory/stock.py", "old_path": "inventory/stock.py",
                            "diff": "@@ -31 +31 @@\n-x\n+y\n", "predicted": False, "in_open_source_repo": True}]}
    ex = spec_to_example(_spec_row(captured_prompt_input=captured, edit_history="", expected_patches=[]), lines=1)
    assert (ex.snapshot.start_line, ex.zed["start_line_from"]) == (30, "captured_prompt_input")
    assert ex.zed["history_from"] == "captured_prompt_input" and ex.snapshot.history[0].diff.startswith("@@ -31")
    ex = spec_to_example(_spec_row(captured_prompt_input=captured, cursor_position="", edit_history="",
                                   expected_patches=[]), lines=1)
    assert ex.snapshot.text == head + excerpt and ex.snapshot.text[ex.snapshot.cursor:].startswith("restock(")
    assert ex.snapshot.start_line == 0
    assert spec_to_example(example_to_spec(ex), lines=1).to_dict() == ex.to_dict()


def test_fences_in_content_and_odd_paths_survive_markdown(tmp_path: Path) -> None:
    text = 'doc = """\n```\nnot a fence end\n```\n"""\n'
    row = _spec_row(name="fences", cursor_path="we`ird/pa th.py", cursor_position=encode_excerpt(text, 3, "#"),
                    edit_history="", expected_patches=["@@ -2,1 +2,1 @@\n-```\n+````\n"])
    ex = spec_to_example(row, lines=1)
    write_zed([ex], tmp_path / "md")
    (again,) = read_zed([tmp_path / "md"])
    assert (again.snapshot.path, again.snapshot.text, again.snapshot.cursor) == ("we`ird/pa th.py", text, 3)
    assert again.expected == ex.expected
