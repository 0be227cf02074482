"""Marker strings in user text: escaping is reversible, prompts keep exactly the format's own markers and
answers that write such text parse back to it, for every registered format."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextedit.formats import FORMATS, FormatOptions, get_format
from nextedit.formats.escape import (
    SENTINEL,
    escape,
    escape_diff,
    unescape,
    unescape_diff,
)
from nextedit.patch import apply, make
from nextedit.record import parse_example

os.environ.setdefault("HF_HUB_OFFLINE", "1")
NAMES = list(FORMATS)
MARKERS = sorted({m for name in NAMES for m in get_format(name).markers()} | {"<|marker_999|>", "======="})
WIDE = FormatOptions(editable_tokens=4000, context_tokens=4000, related_tokens=4000)
PATH = "app/main.py"
LINES = [f"def fn_{i}(value):\n    return value + {i}\n\n" for i in range(6)]

# Pieces of user text: whole markers, their halves, the sentinel, and plain characters (no newline).
_pieces = st.one_of(st.sampled_from(MARKERS), st.sampled_from(MARKERS).map(lambda m: m[: len(m) // 2]),
                    st.sampled_from(MARKERS).map(lambda m: m[len(m) // 2:]), st.just(SENTINEL),
                    st.text(alphabet="ab <|>_=", max_size=4))
planted = st.lists(_pieces, min_size=1, max_size=6).map("".join).filter(lambda s: s.strip() != "")


def _defang(s: str) -> str:
    """A same-length stand-in for planted text with no marker and no sentinel in it."""
    return "x" * len(s)


def _example(file_plant: str, new_plant: str, related_plant: str):
    lines = list(LINES)
    lines[2] = f"s = '{file_plant}'\n" + lines[2]
    text = "".join(lines)
    cursor = text.index("def fn_3") + 4
    new = text.replace("    return value + 3\n", f"    return '{new_plant}'\n", 1)
    data = {"id": "t", "snapshot": {"path": PATH, "text": text, "cursor": cursor,
                                    "related": [{"path": "lib/x.py", "text": f"x = '{related_plant}'\n"}]},
            "expected": [make(text, new, path=PATH)], "expected_cursors": [new.index("'\n", cursor) + 1]}
    return parse_example(data), text, new


@given(st.lists(st.sampled_from([*MARKERS, SENTINEL, "<", "|", ">", "=", "a", "\n"]), max_size=12).map("".join))
def test_escape_is_reversible_and_leaves_no_marker(pieces: str) -> None:
    markers = tuple(MARKERS)
    escaped = escape(pieces, markers)
    assert unescape(escaped) == pieces
    assert not any(m in escaped for m in markers)
    diff = make(pieces + "\n", pieces + "x\n", path="f")
    assert unescape_diff(escape_diff(diff, markers)) == diff


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), file_plant=planted, new_plant=planted, related_plant=planted)
def test_planted_markers_stay_text_and_round_trip(name: str, file_plant: str, new_plant: str,
                                                  related_plant: str) -> None:
    fmt = get_format(name)
    example, text, new = _example(file_plant, new_plant, related_plant)
    clean, _, _ = _example(_defang(file_plant), _defang(new_plant), _defang(related_plant))
    rendered = fmt.render(example, WIDE)
    baseline = fmt.render(clean, WIDE)
    for marker in fmt.markers():
        assert rendered.prompt.count(marker) == baseline.prompt.count(marker), marker
        assert rendered.target.count(marker) == baseline.target.count(marker), marker
    assert rendered.editable == baseline.editable and rendered.context == baseline.context
    parsed = fmt.parse(rendered.target, example, WIDE)
    assert apply(parsed.patch, text) == new
    if fmt.cursor_token and fmt.cursor_token in rendered.target:
        assert parsed.cursor == example.expected_cursors[0]


@settings(max_examples=15, deadline=None)
@given(plant=planted)
def test_jump_answers_with_planted_markers_round_trip(plant: str) -> None:
    fmt = get_format("zeta1-jump")
    example, _, _ = _example("a", "b", "c")
    hunk = f"@@ -40,1 +40,1 @@\n-old = 1\n+new = '{plant}'\n"
    location = {"path": f"pkg/{plant.strip()}.py", "start_line": 39, "end_line": 40, "patch": hunk}
    jump = example.model_copy(update={"expected": [], "expected_cursors": [],
                                      "locations": [parse_example({"id": "l", "snapshot": {
                                          "path": PATH, "text": "", "cursor": 0}, "locations": [location]})
                                          .locations[0]]})
    rendered = fmt.render(jump, WIDE)
    assert rendered.target.count("<|next_edit_at|>") == 1 and rendered.target.count("<|next_edit_end|>") == 1
    [got] = fmt.parse(rendered.target, jump, WIDE).locations
    assert (got.path, got.patch, got.start_line, got.end_line) == (location["path"], hunk, 39, 40)
