"""Teacher prompt rendering and output parsing: fences, markers, cursor, NO_EDITS / KEEP_PREVIOUS."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit import patch as P
from nextedit.record import Diagnostic, Example, HistoryEvent, RelatedExcerpt, Snapshot
from nextedit.teacher.parse import ParseError, fenced_blocks, parse_output, region_patch
from nextedit.teacher.prompt import (
    MARK_CURSOR,
    MARK_END,
    MARK_START,
    build_prompt,
    prompt_version,
    render_current_file,
    render_history,
)

S, E, C = MARK_START, MARK_END, MARK_CURSOR

TEXT = "import os\n\ndef total(items, tax_rate):\n    net = sum(items)\n    return net * rate\n\nprint(total([1], 2))\n"
REGION = (11, TEXT.index("\nprint") + 1)  # the function, whole lines (ends with "\n\n")


def snap(**kw) -> Snapshot:
    base = {"path": "billing/invoice.py", "text": TEXT, "start_line": 10, "cursor": 36, "editable": REGION}
    base.update(kw)
    return Snapshot(**base)


def answer(region: str, fence: str = "`````", tag: str = "") -> str:
    return f"The user renamed the parameter.\n\n{fence}{tag}\n{S}\n{region}{E}\n{fence}\n"


# ------------------------------------------------------------------------------------------ prompt


def test_current_file_has_markers_around_the_region_and_cursor_inside() -> None:
    shown = render_current_file(snap())
    assert shown.startswith("import os\n\n" + S + "\ndef total(items, tax_r")
    assert C in shown and shown.count(C) == 1
    region = shown[shown.index(S) + len(S) + 1: shown.index(E)]
    assert region.replace(C, "") == TEXT[REGION[0]:REGION[1]]
    assert shown.endswith(E + "\nprint(total([1], 2))")


def test_prompt_holds_history_related_diagnostics_and_is_versioned() -> None:
    ex = Example(id="x", snapshot=snap(
        history=[HistoryEvent(path="billing/invoice.py", diff="@@ -13,1 +13,1 @@\n-def total(items, rate):\n"
                                                              "+def total(items, tax_rate):\n")],
        related=[RelatedExcerpt(path="billing/tax.py", start_line=3, text="RATE = 0.2\n", rank=0)],
        diagnostics=[Diagnostic(message="name 'rate' is not defined", start_line=14, end_line=14)]))
    prompt = build_prompt(ex)
    assert "Never undo the user's latest edits" in prompt.system
    assert "NO_EDITS" in prompt.system and "text at or just before the cursor is being typed" in prompt.system.lower()
    assert "--- a/billing/invoice.py\n+++ b/billing/invoice.py\n@@ -13,1 +13,1 @@" in prompt.user
    assert "`````billing/tax.py\n…\nRATE = 0.2\n`````" in prompt.user  # lines 1-3 skipped
    assert "# 4. Diagnostics" in prompt.user and "line 15: name 'rate' is not defined" in prompt.user
    assert "    return net * rate" in prompt.user  # the diagnostic's line is quoted
    assert prompt.version == prompt_version() and prompt.version.startswith("p1-")
    no_diag = build_prompt(Example(id="y", snapshot=snap()))
    assert "# 4. Diagnostics" not in no_diag.user and "(No edit history)" in no_diag.user


def test_history_keeps_only_the_last_lines() -> None:
    events = [HistoryEvent(path="a.py", diff=f"@@ -{i},1 +{i},1 @@\n-x{i}\n+y{i}\n") for i in range(1, 60)]
    shown = render_history(events, max_lines=20)
    lines = shown.splitlines()
    assert lines[0] == "[...truncated...]" and len(lines) == 21
    assert lines[-1] == "+y59"


# ------------------------------------------------------------------------------------------ fences


def test_fences_match_by_length() -> None:
    text = "x\n`````md\nbefore\n```py\ninner\n```\nafter\n`````\ntail\n```\nlast\n```\n"
    blocks = fenced_blocks(text)
    assert [b.body for b in blocks] == ["before\n```py\ninner\n```\nafter", "last"]
    assert blocks[0].info == "md" and all(b.closed for b in blocks)
    unclosed = fenced_blocks("````\nabc\n```\n")
    assert unclosed[0].body == "abc\n```\n" and not unclosed[0].closed


@pytest.mark.parametrize("fence", ["```", "````", "`````", "``````````"])
def test_region_is_read_from_fences_of_any_length(fence: str) -> None:
    new = "def total(items, tax_rate):\n    net = sum(items)\n    return net * tax_rate" + C + "\n\n"
    parsed = parse_output(answer(new, fence, "python"))
    assert parsed.kind == "edit" and parsed.notes == ()
    assert parsed.region == new.replace(C, "")[:-1]  # the newline before the end marker is the marker's
    patch, cursor = region_patch(snap(), parsed)
    after = P.apply(patch, TEXT, start_line=10)
    assert after == TEXT.replace("net * rate", "net * tax_rate")
    assert after[:cursor].endswith("net * tax_rate")
    assert "@@ -12,6 +12,6 @@" in patch  # file lines: start_line 10 + row 1 (context) + 1


def test_the_last_block_with_markers_wins_over_earlier_drafts() -> None:
    draft = answer("def total(items, tax_rate):\n    DRAFT\n\n")
    final = answer("def total(items, tax_rate):\n    net = sum(items)\n    return net * tax_rate\n\n")
    parsed = parse_output(draft + "\nActually:\n" + final + "\nDone, that's my answer.\n```\nnot code\n```\n")
    assert "DRAFT" not in parsed.region and "tax_rate\n" in parsed.region + "\n"


def test_markers_without_a_fence_are_still_read() -> None:
    raw = f"Here:\n{S}\ndef total(items, tax_rate):\n    net = sum(items)\n    return net * tax_rate\n\n{E}\n"
    parsed = parse_output(raw)
    assert parsed.notes == ("no_fence",)
    assert region_patch(snap(), parsed)[0]


def test_missing_end_marker_reads_to_the_end_and_is_noted() -> None:
    raw = f"`````\n{S}\ndef total(items, tax_rate):\n    net = sum(items)\n    return net"
    parsed = parse_output(raw)
    assert "missing_end_marker" in parsed.notes and "unclosed_fence" in parsed.notes
    assert parsed.region.endswith("    return net")


def test_missing_start_marker_reads_from_the_block_start() -> None:
    parsed = parse_output(f"`````\ndef total(items, tax_rate):\n    pass\n{E}\n`````")
    assert parsed.notes == ("missing_start_marker",)
    assert parsed.region == "def total(items, tax_rate):\n    pass"


@pytest.mark.parametrize("raw", [
    "Nothing to do.\n\n```\nNO_EDITS\n```",
    "Nothing to do.\n\n`````\n  NO_EDITS  \n`````\n",
    "The code is complete. NO_EDITS",
    "NO_EDITS\n```",
    "I'd leave it.\n\n`NO_EDITS`\n",
])
def test_no_edits_variants(raw: str) -> None:
    parsed = parse_output(raw)
    assert parsed.kind == "no_edits"
    assert region_patch(snap(), parsed) == ("", None)


def test_no_edits_only_in_the_last_block_counts() -> None:
    raw = "```\nNO_EDITS\n```\nOn second thought:\n" + answer("def total(items, tax_rate):\n    pass\n\n")
    assert parse_output(raw).kind == "edit"


def test_keep_previous_only_in_repair_mode() -> None:
    raw = "My prediction was right.\n\n```\nKEEP_PREVIOUS\n```"
    assert parse_output(raw, allow_keep_previous=True).kind == "keep_previous"
    with pytest.raises(ParseError, match="no <|editable_region_start|>"):
        parse_output(raw)


@pytest.mark.parametrize("raw", ["", "   \n", "I am not sure what to do here.", "```python\nprint(1)\n```"])
def test_unparseable_answers_raise(raw: str) -> None:
    with pytest.raises(ParseError):
        parse_output(raw)


def test_cursor_marker_gives_the_offset_in_the_edited_text() -> None:
    new = "def total(items, tax_rate):\n    net = sum(items)\n    return net * tax_rate\n\n"
    parsed = parse_output(answer(new[:20] + C + new[20:]))
    _, cursor = region_patch(snap(), parsed)
    assert cursor == REGION[0] + 20
    assert parse_output(answer(new)).cursor is None


def test_several_cursor_markers_keep_the_first_and_are_noted() -> None:
    new = "def total(items, tax_rate):\n" + C + "    net = sum(items)\n" + C + "    return net * rate\n\n"
    parsed = parse_output(answer(new))
    assert "several_cursors" in parsed.notes and C not in parsed.region
    assert parsed.cursor == len("def total(items, tax_rate):\n")


def test_echoing_the_region_gives_an_empty_patch() -> None:
    shown = render_current_file(snap())
    region = shown[shown.index(S):shown.index(E) + len(E)]
    parsed = parse_output(f"No change needed.\n`````\n{region}\n`````")
    assert region_patch(snap(), parsed)[0] == ""


def test_region_without_final_newline_and_dropped_leading_blank_line() -> None:
    text = "a = 1\n\nb = 2"
    s = Snapshot(path="m.py", text=text, cursor=7, editable=(6, len(text)))
    assert text[6:] == "\nb = 2"
    shown = render_current_file(s)
    assert shown == "a = 1\n" + S + "\n\n" + C + "b = 2\n" + E
    parsed = parse_output(answer("b = 3\n"))  # the model dropped the region's first (blank) line
    patch, _ = region_patch(s, parsed)
    assert P.apply(patch, text) == "a = 1\n\nb = 3"


def test_adding_a_blank_line_at_the_end_of_the_region_survives() -> None:
    new = "def total(items, tax_rate):\n    net = sum(items)\n    return net * rate\n\n\n"
    patch, _ = region_patch(snap(), parse_output(answer(new)))
    assert P.apply(patch, TEXT, start_line=10) == TEXT.replace("rate\n\n", "rate\n\n\n")


# ------------------------------------------------------------------------------------------ round trip

_line = st.text(alphabet=st.sampled_from(list("ab (){}=_ \t\r")), max_size=12)


@st.composite
def _case(draw):
    lines = draw(st.lists(_line, min_size=1, max_size=8))
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n"]))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, len(text)))
    cursor = draw(st.integers(start, end))
    new = "\n".join(draw(st.lists(_line, min_size=1, max_size=5)))
    old = text[start:end]
    # The markers own the newline next to them, so a region keeps the original's final-newline state.
    new = new + "\n" if old.endswith("\n") else new.rstrip("\n")
    if old.startswith("\n"):
        new = "\n" + new
    return Snapshot(path="p.py", text=text, cursor=cursor, editable=(start, end), start_line=3), new


@settings(max_examples=300, deadline=None)
@given(_case())
def test_copying_the_rendered_region_round_trips(case) -> None:
    snap_, new = case
    shown = render_current_file(snap_)
    echoed = shown[shown.index(S):shown.index(E) + len(E)]
    patch, cursor = region_patch(snap_, parse_output(f"`````\n{echoed}\n`````"))
    assert patch == "" and cursor == snap_.cursor
    # a model that writes a new region the same way the prompt shows one
    body = new if new.endswith("\n") else new + "\n"
    patch, _ = region_patch(snap_, parse_output(f"ok\n`````\n{S}\n{body}{E}\n`````"))
    start, end = snap_.editable
    expected = snap_.text[:start] + new + snap_.text[end:]
    assert P.apply(patch, snap_.text, start_line=3) == expected if patch else expected == snap_.text
