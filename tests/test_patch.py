"""Tests for nextedit.patch: make/apply/reverse round trips, leniency, errors, regions, Zed evals."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zed_samples import SAMPLES, needs_samples

from nextedit import patch as P
from nextedit.patch import PatchError

PROPS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FEW = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --------------------------------------------------------------------------- strategies

# A small alphabet of line contents so that texts share lines (realistic diffs with context).
_CONTENT = st.sampled_from(
    [
        "",
        "a",
        "b",
        "foo()",
        "    x = 1",
        "\t}",
        "é ü",
        "中文",
        "a\rb",
        " ",
        "\\",
        "-",
        "+",
    ]
)
_ENDING = st.sampled_from(["\n", "\n", "\n", "\r\n", "\r", ""])
line_texts = st.lists(st.tuples(_CONTENT, _ENDING), max_size=14).map(
    lambda ls: "".join(c + e for c, e in ls)
)
any_texts = st.text(max_size=60)
texts = st.one_of(line_texts, any_texts)


@st.composite
def text_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """An old text and a new text made from it by line edits (or an unrelated text)."""
    old = draw(texts)
    if draw(st.booleans()):
        return old, draw(texts)
    lines = P.split_lines(old)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(lines)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        new_line = draw(_CONTENT) + draw(_ENDING)
        if op == "insert":
            lines.insert(pos, new_line)
        elif lines and pos < len(lines):
            if op == "delete":
                del lines[pos]
            else:
                lines[pos] = new_line
    return old, "".join(lines)


@st.composite
def distinct_line_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Texts whose lines are all different, so every hunk's context is unique."""
    n = draw(st.integers(1, 30))
    old_lines = [f"line {i}\n" for i in range(n)]
    new_lines = list(old_lines)
    for k in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(new_lines)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert" or not new_lines or pos == len(new_lines):
            new_lines.insert(pos, f"new {k}\n")
        elif op == "delete":
            del new_lines[pos]
        else:
            new_lines[pos] = f"changed {k}\n"
    return "".join(old_lines), "".join(new_lines)


# --------------------------------------------------------------------------- make / apply


@PROPS
@given(text_pairs(), st.integers(0, 4), st.integers(0, 50))
def test_apply_make_round_trip(
    pair: tuple[str, str], context: int, start_line: int
) -> None:
    old, new = pair
    diff = P.make(old, new, context=context, start_line=start_line)
    assert (diff == "") == (old == new)
    assert P.apply(diff, old, start_line=start_line) == new


@PROPS
@given(any_texts, any_texts)
def test_apply_make_round_trip_arbitrary_text(old: str, new: str) -> None:
    assert P.apply(P.make(old, new), old) == new


@PROPS
@given(text_pairs(), st.integers(0, 4))
def test_reverse_undoes_the_patch(pair: tuple[str, str], context: int) -> None:
    old, new = pair
    diff = P.make(old, new, context=context, path="x/y.py")
    back = P.reverse(diff)
    assert P.apply(back, new) == old
    assert P.reverse(back) == diff
    assert sorted(P.changed_lines(back)) == sorted(
        ("+" if line[0] == "-" else "-") + line[1:] for line in P.changed_lines(diff)
    )


@PROPS
@given(text_pairs(), line_texts, line_texts, st.integers(0, 3))
def test_excerpt_patch_applies_to_excerpt_and_to_whole_file(
    pair: tuple[str, str], before: str, after: str, context: int
) -> None:
    old, new = pair
    before = before if before.endswith("\n") or not before else before + "\n"
    start_line = before.count("\n")
    diff = P.make(old, new, context=context, start_line=start_line)
    assert P.apply(diff, old, start_line=start_line) == new
    if old.endswith("\n") and new.endswith("\n"):
        # Same hunk numbers are file lines: they apply to the whole file as well.
        assert P.apply(diff, before + old + after) == before + new + after


@PROPS
@given(distinct_line_pairs(), st.integers(1, 3), st.integers(-40, 40))
def test_drifted_line_numbers_still_apply(
    pair: tuple[str, str], context: int, drift: int
) -> None:
    old, new = pair
    diff = P.make(old, new, context=context, start_line=max(drift, 0))
    # The hint is off by `drift` lines (and the text gained unrelated lines on top).
    top = "".join(f"unrelated {i}\n" for i in range(7))
    assert P.apply(diff, old) == new
    assert P.apply(diff, top + old) == top + new
    assert P.apply(diff, top + old, start_line=3) == top + new


@PROPS
@given(text_pairs(), st.integers(0, 4), st.integers(0, 30), st.integers(0, 30))
def test_rebase_matches_making_at_the_other_start(
    pair: tuple[str, str], context: int, start: int, delta: int
) -> None:
    old, new = pair
    diff = P.make(old, new, context=context, start_line=start)
    assert P.rebase(diff, delta) == P.make(
        old, new, context=context, start_line=start + delta
    )
    assert P.rebase(P.rebase(diff, delta), -delta) == diff
    assert P.apply(P.rebase(diff, delta), old, start_line=start + delta) == new


def test_rebase_before_first_line_is_an_error() -> None:
    diff = P.make("a\nb\n", "a\nc\n", start_line=2)
    with pytest.raises(PatchError, match="before the first line"):
        P.rebase(diff, -10)


def test_make_exact_format_and_no_newline_marker() -> None:
    assert P.make("a\nb\n", "a\nb\n") == ""
    assert P.make("a\nb\nc\n", "a\nB\nc\n", path="src/m.py") == (
        "--- a/src/m.py\n+++ b/src/m.py\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
    )
    assert P.make("x", "y", path="f") == (
        "--- a/f\n+++ b/f\n@@ -1,1 +1,1 @@\n-x\n\\ No newline at end of file\n+y\n\\ No newline at end of file\n"
    )
    assert P.make("x\n", "x", path="f") == (
        "--- a/f\n+++ b/f\n@@ -1,1 +1,1 @@\n-x\n+x\n\\ No newline at end of file\n"
    )
    assert P.make(
        "old.txt\n", "old.txt\nmore\n", path="new.py", old_path="old.py"
    ).startswith("--- a/old.py\n+++ b/new.py\n@@ -1,1 +1,2 @@\n")


def test_creation_and_deletion_headers() -> None:
    assert P.make("", "x\ny\n") == "--- a/file\n+++ b/file\n@@ -0,0 +1,2 @@\n+x\n+y\n"
    assert P.make("x\ny\n", "") == "--- a/file\n+++ b/file\n@@ -1,2 +0,0 @@\n-x\n-y\n"
    assert (
        P.make("", "x", start_line=4)
        == "--- a/file\n+++ b/file\n@@ -4,0 +5,1 @@\n+x\n\\ No newline at end of file\n"
    )


def test_crlf_and_lone_cr_stay_in_their_lines() -> None:
    old = "a\r\nb\r\nc\r\n"
    new = "a\r\nB\r\nc\r\n"
    diff = P.make(old, new)
    assert "-b\r\n+B\r\n" in diff
    assert P.apply(diff, old) == new
    weird = "x\ry\nz"
    assert P.split_lines(weird) == ["x\ry\n", "z"]
    assert P.apply(P.make(weird, "x\ry\nZ"), weird) == "x\ry\nZ"
    with pytest.raises(PatchError):  # the \r is content: an LF text does not match
        P.apply(diff, "a\nb\nc\n")


def _tool_applies(
    tool: list[str], tmp_path: Path, old: str, new: str, diff: str
) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(old.encode())
    (tmp_path / "p.diff").write_bytes(diff.encode())
    run = subprocess.run(
        [*tool, "p.diff"], check=False, cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr + diff
    assert target.read_bytes().decode() == new


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
@FEW
@given(st.lists(text_pairs(), min_size=3, max_size=3), st.integers(0, 3))
def test_git_apply_accepts_made_patches(
    tmp_path_factory: pytest.TempPathFactory, pairs, context: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("git")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for old, new in pairs:
        diff = P.make(old, new, path="f.txt", context=context)
        if diff:
            _tool_applies(["git", "apply", "--unidiff-zero"], tmp_path, old, new, diff)


@pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch not installed")
def test_gnu_patch_accepts_made_patches(tmp_path: Path) -> None:
    old = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n"
    new = "zero\none\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\nnine"
    _tool_applies(
        ["patch", "-p1", "-s", "--no-backup-if-mismatch", "-i"],
        tmp_path,
        old,
        new,
        P.make(old, new, path="f.txt"),
    )


# --------------------------------------------------------------------------- apply errors


def test_failing_hunk_is_named_in_the_error() -> None:
    old = "".join(f"line {i}\n" for i in range(40))
    new = old.replace("line 3\n", "LINE 3\n").replace("line 30\n", "LINE 30\n")
    diff = P.make(old, new, path="m.py")
    assert P.apply(diff, old) == new
    broken = old.replace("line 29\n", "line twenty-nine\n")
    with pytest.raises(PatchError) as err:
        P.apply(diff, broken)
    msg = str(err.value)
    assert msg.startswith("hunk 2 (@@ -28,7 +28,7 @@) in m.py: context not found")
    assert "'line 29'" in msg and "\n" not in msg


def test_error_uses_the_header_as_written() -> None:
    diff = "@@ -5,99 +5,99 @@ def f():\n-gone\n+here\n"
    with pytest.raises(
        PatchError,
        match=r"^hunk 1 \(@@ -5,99 \+5,99 @@ def f\(\):\): context not found",
    ):
        P.apply(diff, "a\nb\n")


def test_hunks_must_apply_in_order_without_overlap() -> None:
    diff = "@@ -2,1 +2,1 @@\n-b\n+B\n@@ -1,1 +1,1 @@\n-a\n+A\n"
    with pytest.raises(PatchError, match="hunk 2 .*after the previous hunk"):
        P.apply(diff, "a\nb\n")


def test_nearest_exact_match_wins() -> None:
    text = "x\ny\n" * 5
    diff = "@@ -7,1 +7,1 @@\n-x\n+X\n"
    assert P.apply(diff, text) == "x\ny\n" * 3 + "X\ny\n" + "x\ny\n"
    assert P.apply(diff, text, start_line=4) == "x\ny\n" + "X\ny\n" + "x\ny\n" * 3


def test_path_filter_and_sequential_file_patches() -> None:
    two = P.make("a\n", "b\n", path="one.py") + P.make("a\n", "c\n", path="two.py")
    assert P.apply(two, "a\n", path="one.py") == "b\n"
    assert P.apply(two, "a\n", path="b/two.py") == "c\n"
    assert P.apply(two, "a\n", path="three.py") == "a\n"
    with pytest.raises(PatchError, match="several files"):
        P.apply(two, "a\n")
    # Several file patches for one file apply one after the other (Zed edit history).
    history = P.make("a\n", "ab\n", path="f") + P.make("ab\n", "abc\n", path="f")
    assert P.apply(history, "a\n") == "abc\n"
    assert P.apply(P.reverse(history), "abc\n") == "a\n"


def test_insertion_without_context() -> None:
    diff = P.make("a\nb\nc\n", "a\nb\nnew\nc\n", context=0, start_line=10)
    assert diff.endswith("@@ -12,0 +13,1 @@\n+new\n")
    assert P.apply(diff, "a\nb\nc\n", start_line=10) == "a\nb\nnew\nc\n"
    with pytest.raises(PatchError, match="hunk 1 .*outside the text"):
        P.apply(diff, "a\nb\nc\n")


# --------------------------------------------------------------------------- parse


def test_parse_structure() -> None:
    text = (
        "diff --git a/src/x.py b/src/x.py\nindex 1234567..89abcde 100644\n"
        "--- a/src/x.py\t2024-01-01 10:00:00\n+++ b/src/x.py\n"
        "@@ -1,2 +1,2 @@ class A:\n a\n-b\n+c\n"
        "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+hi\n\\ No newline at end of file\n"
    )
    fps = P.parse(text)
    assert [(fp.old_path, fp.new_path, fp.path) for fp in fps] == [
        ("src/x.py", "src/x.py", "src/x.py"),
        (None, "new.py", "new.py"),
    ]
    h = fps[0].hunks[0]
    assert (h.old_start, h.old_len, h.new_start, h.new_len, h.header) == (
        1,
        2,
        1,
        2,
        "class A:",
    )
    assert h.lines == [" a\n", "-b\n", "+c\n"]
    assert (h.old_text, h.new_text) == ("a\nb\n", "a\nc\n")
    h2 = fps[1].hunks[0]
    assert (
        h2.lines == ["+hi\n", P.NO_NEWLINE]
        and h2.new_text == "hi"
        and h2.old_text == ""
    )
    assert P.paths(text) == ["src/x.py", "new.py"]
    assert P.format_patch(fps).startswith(
        "--- a/src/x.py\n+++ b/src/x.py\n@@ -1,2 +1,2 @@ class A:\n"
    )


def test_parse_only_hunks_gives_one_pathless_file_patch() -> None:
    fps = P.parse("@@ -3 +3 @@\n-x\n+y\n")
    assert len(fps) == 1 and fps[0].path is None
    assert (fps[0].hunks[0].old_start, fps[0].hunks[0].old_len) == (3, 1)


def test_parse_is_lenient_about_counts_and_blank_lines() -> None:
    # Header counts too big (Zed style), blank lines standing for empty context lines.
    diff = "--- a/f.py\n+++ b/f.py\n@@ -1,21 +1,21 @@\n import os\n\n-x = 1\n+x = 2\n\n y = 3\n"
    h = P.parse(diff)[0].hunks[0]
    assert (h.old_len, h.new_len) == (5, 5)
    assert h.lines == [" import os\n", " \n", "-x = 1\n", "+x = 2\n", " \n", " y = 3\n"]
    assert (
        P.apply(diff, "import os\n\nx = 1\n\ny = 3\n")
        == "import os\n\nx = 2\n\ny = 3\n"
    )
    # Header counts too small: the body is read by content.
    small = "@@ -1,1 +1,1 @@\n a\n-b\n+c\n d\n"
    assert P.apply(small, "a\nb\nd\n") == "a\nc\nd\n"


def test_trailing_blank_lines_are_separators_unless_counts_need_them() -> None:
    fps = P.parse("@@ -1,2 +1,2 @@\n-a\n+b\n x\n\n\n@@ -9,1 +9,1 @@\n-c\n+d\n")
    assert [h.lines for h in fps[0].hunks] == [
        ["-a\n", "+b\n", " x\n"],
        ["-c\n", "+d\n"],
    ]
    fps = P.parse("@@ -1,3 +1,3 @@\n-a\n+b\n x\n\n\n")
    assert fps[0].hunks[0].lines == ["-a\n", "+b\n", " x\n", " \n"]


def test_parse_accepts_zed_quirks() -> None:
    # No @@ line after the file headers; a context line that lost its leading space.
    headerless = "--- a/g.go\n+++ b/g.go\n func f() {\n-\t/\n+\t// doc\n \tx()\n"
    assert (
        P.apply(headerless, "package g\n\nfunc f() {\n\t/\n\tx()\n}\n")
        == "package g\n\nfunc f() {\n\t// doc\n\tx()\n}\n"
    )
    unspaced = "@@ -1,4 +1,4 @@\n-de\n+def f():\n\ndef g():\n"
    assert P.apply(unspaced, "de\n\ndef g():\n") == "def f():\n\ndef g():\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("hello world\n", 1),
        ("Here is the patch:\n@@ -1 +1 @@\n-a\n+b\n", 1),
        ("@@ -1 +1 @@\n-a\n+b\nand that is all\n", 4),
        ("--- a/x\n+++ b/x\n@@ -1,x +1 @@\n-a\n", 3),
        ("@@ -1 +1 @@\n\\ No newline at end of file\n", 2),
        ("@@ -1,2 +1,2 @@\n a\n\\ No newline at end of file\n-b\n", 4),
        ("- item\n- item\n", 1),
    ],
)
def test_parse_rejects_garbage_naming_the_line(text: str, line: int) -> None:
    with pytest.raises(PatchError) as err:
        P.parse(text)
    msg = str(err.value)
    assert msg.startswith(f"line {line}: ") and "\n" not in msg


@PROPS
@given(text_pairs(), st.integers(0, 3))
def test_parse_format_round_trip(pair: tuple[str, str], context: int) -> None:
    diff = P.make(*pair, context=context)
    assert P.format_patch(P.parse(diff)) == diff
    # Headers with wrong (non-zero) counts parse to the same hunks; a zero count says where a
    # pure insertion goes, so it is kept.
    sloppy = re.sub(r"^(@@ -\d+),[1-9]\d* ", r"\1,99 ", diff, flags=re.MULTILINE)
    sloppy = re.sub(
        r"^(@@ -\d+,\d+ \+\d+),[1-9]\d* @@", r"\1,99 @@", sloppy, flags=re.MULTILINE
    )
    assert P.apply(sloppy, pair[0]) == pair[1]


# --------------------------------------------------------------------------- regions & helpers


@PROPS
@given(texts, st.data())
def test_region_round_trip(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    new_region = data.draw(texts)
    start_line = data.draw(st.integers(0, 20))
    diff = P.from_region(
        text, (start, end), new_region, path="r.py", start_line=start_line
    )
    assert P.to_region(diff, text, (start, end), start_line=start_line) == (
        text[start:end],
        new_region,
    )


def test_to_region_rejects_edits_outside_the_region() -> None:
    text = "a\nb\nc\nd\n"
    diff = P.make(text, "A\nb\nc\nd\n")
    with pytest.raises(PatchError, match="outside the editable region"):
        P.to_region(diff, text, (4, 8))
    assert P.to_region(diff, text, (0, 4)) == ("a\nb\n", "A\nb\n")


def test_changed_lines_and_is_empty() -> None:
    # A "--- "/"+++ " pair always starts a new file patch (documented limitation), even in a hunk.
    tricky = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n--- b\n+++ c\n d\n"
    assert P.paths(tricky) == ["x", "c"] and P.changed_lines(tricky) == []
    assert P.changed_lines(
        "@@ -1,2 +1,2 @@\n--- sql comment\n+-- SQL comment\n x\n"
    ) == [
        "--- sql comment",
        "+-- SQL comment",
    ]
    diff = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n"
    assert P.changed_lines(diff) == ["-b", "+c"]
    assert P.is_empty("") and P.is_empty("\n") and P.is_empty("@@ -1 +1 @@\n a\n")
    assert P.is_empty("--- a/x\n+++ b/x\n")
    assert not P.is_empty(diff)


def test_clip_to_window() -> None:
    old = "".join(f"l{i}\n" for i in range(20))
    new = (
        old.replace("l2\n", "L2\n").replace("l10\n", "L10\n").replace("l11\n", "L11\n")
    )
    diff = P.make(old, new)
    # Old rows 9 and 10: the run -l10 -l11 +L10 +L11 is cut at the window's end.
    clipped = P.clip_to_window(diff, 9, 2)
    assert P.changed_lines(clipped) == ["-l10", "+L10", "+L11"]
    assert P.apply(clipped, old) == old.replace("l10\n", "L10\nL11\n")
    assert P.clip_to_window(diff, 0, 20) == diff
    inside = P.clip_to_window(diff, 1, 3)  # rows 1..3
    assert inside.startswith(
        "--- a/file\n+++ b/file\n@@ -2,3 +2,3 @@\n l1\n-l2\n+L2\n l3\n"
    )
    assert P.is_empty(P.clip_to_window(diff, 14, 5))
    by_new = P.clip_to_window(diff, 2, 1, side="new")
    assert P.changed_lines(by_new) == ["-l2", "+L2"]


@PROPS
@given(texts, st.data())
def test_offset_helpers(text: str, data: st.DataObject) -> None:
    offsets = P.line_offsets(text)
    assert len(offsets) == text.count("\n") + 1
    offset = data.draw(st.integers(0, len(text)))
    line, col = P.offset_to_line_col(text, offset)
    assert text[:offset].count("\n") == line
    assert P.line_col_to_offset(text, line, col) == offset
    assert "".join(P.split_lines(text)) == text


def test_fit_to_excerpt_trims_context_only_at_the_excerpt_edges() -> None:
    file = "".join(f"line {i}\n" for i in range(30))
    diff = P.make(
        file, file.replace("line 11\n", "LINE 11\n").replace("line 26\n", "LINE 26\n")
    )
    excerpt = "".join(f"line {i}\n" for i in range(10, 28))  # file lines 10..27
    with pytest.raises(PatchError, match="hunk 1"):
        P.apply(diff, excerpt, start_line=10)
    fitted = P.fit_to_excerpt(diff, excerpt, start_line=10)
    assert "@@ -11,5 +11,5 @@\n line 10\n-line 11\n+LINE 11\n line 12\n" in fitted
    assert (
        "@@ -24,5 +24,5 @@\n line 23\n line 24\n line 25\n-line 26\n+LINE 26\n line 27\n"
        in fitted
    )
    expected = excerpt.replace("line 11\n", "LINE 11\n").replace(
        "line 26\n", "LINE 26\n"
    )
    assert P.apply(fitted, excerpt, start_line=10) == expected
    assert P.infer_start_line(fitted, excerpt) == 10
    # Context that is wrong inside the excerpt is not trimmed away.
    wrong = excerpt.replace("line 12\n", "line twelve\n")
    with pytest.raises(PatchError, match="hunk 1"):
        P.fit_to_excerpt(diff, wrong, start_line=10)
    # A change outside the excerpt cannot be fitted.
    with pytest.raises(PatchError, match="hunk 2"):
        P.fit_to_excerpt(diff, excerpt[: excerpt.index("line 26")], start_line=10)


def test_infer_start_line() -> None:
    diff = "@@ -41,3 +41,3 @@\n a\n-b\n+B\n c\n"
    assert P.infer_start_line(diff, "x\na\nb\nc\n") == 39
    assert P.infer_start_line(diff, "a\nb\nc\na\nb\nc\n") is None  # ambiguous
    assert P.infer_start_line(diff, "nothing\n") is None


# --------------------------------------------------------------------------- Zed evals


def _sections(md: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = None
    for line in md.split("\n"):
        if line.startswith("## "):
            current = line[3:].strip()
            out.setdefault(current, [])
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _blocks(section: str) -> list[str]:
    blocks, buf, inside = [], [], False
    for line in section.split("\n"):
        if line.startswith("```"):
            if inside:
                blocks.append("\n".join(buf) + "\n")
            inside, buf = not inside, []
        elif inside:
            buf.append(line)
    return blocks


def _zed_cases() -> list[Path]:
    return SAMPLES


def _drop_cursor_annotations(diff: str) -> str:
    return "".join(line for line in P.split_lines(diff) if not line.startswith("#"))


def _excerpt(cursor_block: str) -> str:
    lines = [
        line for line in P.split_lines(cursor_block) if "[CURSOR_POSITION]" not in line
    ]
    return "".join(lines).replace("<|user_cursor|>", "")


@needs_samples
def test_zed_eval_diffs_parse_and_expected_patches_apply_to_the_excerpt() -> None:
    applied: list[str] = []
    fitted_ok: list[str] = []
    unfit: list[str] = []
    for case in _zed_cases():
        sections = _sections(case.read_text())
        excerpt = _excerpt(_blocks(sections["Cursor Position"])[0])
        excerpt_lines = P.split_lines(excerpt)
        for name in ("Edit History", "Uncommitted Diff", "Rejected Patch"):
            for block in _blocks(sections.get(name, "")):
                assert P.parse(_drop_cursor_annotations(block)), f"{case.name} {name}"
        for block in _blocks(sections["Expected Patch"]):
            diff = _drop_cursor_annotations(block)
            hunks = [h for fp in P.parse(diff) for h in fp.hunks]
            assert hunks, case.name
            fits = all(
                any(
                    excerpt_lines[i : i + len(h.old_lines)] == h.old_lines
                    for i in range(len(excerpt_lines))
                )
                for h in hunks
            )
            if fits:
                # The line hint is far off (the excerpt is applied as if it started at line 1).
                result = P.apply(diff, excerpt)
                assert P.apply(P.reverse(diff), result) == excerpt, case.name
                assert result != excerpt or P.is_empty(diff), case.name
                assert P.fit_to_excerpt(diff, excerpt) == P.format_patch(P.parse(diff))
                applied.append(case.stem)
            else:  # the patch's context reaches past the excerpt
                with pytest.raises(
                    PatchError, match=r"^hunk \d+ \(.*context not found"
                ):
                    P.apply(diff, excerpt)
                try:
                    fitted = P.fit_to_excerpt(diff, excerpt)
                except PatchError as err:  # changed lines outside the excerpt
                    assert str(err).startswith("hunk 1 (@@ -"), str(err)
                    unfit.append(case.stem)
                    continue
                assert P.changed_lines(fitted) == P.changed_lines(diff), case.name
                result = P.apply(fitted, excerpt)
                assert P.apply(P.reverse(fitted), result) == excerpt, case.name
                start = P.infer_start_line(fitted, excerpt)
                assert (
                    start is not None
                    and P.apply(fitted, excerpt, start_line=start) == result
                )
                fitted_ok.append(case.stem)
    assert {
        "flask--add-import-statement",
        "flask--add-test-function",
        "terraform--add-comment",
        "zed--change-match-arm",
        "tree-sitter--if-let-to-match",
    } <= set(applied)
    assert {
        "tree-sitter--tuple-to-struct-destructuring",
        "codex-acp--add-derive",
    } <= set(fitted_ok)
    assert "vscode--add-async-and-await" in unfit
    assert len(applied) > 3 * (len(fitted_ok) + len(unfit))


@PROPS
@given(distinct_line_pairs(), st.integers(0, 3), st.integers(0, 30), st.integers(0, 30))
def test_clipped_patch_applies_and_stays_in_the_window(
    pair: tuple[str, str], context: int, start: int, n_lines: int
) -> None:
    old, new = pair
    diff = P.make(old, new, context=context)
    clipped = P.clip_to_window(diff, start, n_lines)
    result = P.apply(clipped, old)
    old_lines = P.split_lines(old)
    deleted = [line[1:] + "\n" for line in P.changed_lines(clipped) if line[0] == "-"]
    rows = [old_lines.index(line) for line in deleted]
    assert all(start <= row < start + n_lines for row in rows)
    assert set(P.changed_lines(clipped)) <= set(P.changed_lines(diff))
    if start == 0 and n_lines >= len(old_lines):
        assert clipped == diff and result == new


def test_quoted_git_paths_and_rendering() -> None:
    text = '--- "a/caf\\303\\251 \\"x\\".py"\n+++ "b/caf\\303\\251 \\"x\\".py"\n@@ -1 +1 @@ f\n-a\n+b\n'
    fp = P.parse(text)[0]
    assert fp.old_path == fp.new_path == 'café "x".py'
    hunk = fp.hunks[0]
    assert hunk.label() == "@@ -1 +1 @@ f" and hunk.range_header == "@@ -1,1 +1,1 @@"
    assert hunk.render() == "@@ -1,1 +1,1 @@ f\n-a\n+b\n"
    assert P.apply(text, "a\n", path='café "x".py') == "b\n"
