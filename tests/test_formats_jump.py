"""The zeta1-jump format: a jump example's target names the location and its edit, and parses back to it."""

from __future__ import annotations

import pytest

from nextedit.formats import FormatError, get_format
from nextedit.formats.jump import JUMP_END, JUMP_START, parse_jump
from nextedit.record import Example, Location

HUNK = "@@ -40,1 +40,1 @@\n-    total = old_name(x)\n+    total = new_name(x)\n"


def _jump_example() -> Example:
    text = "def new_name(x):\n    return x + 1\n"
    return Example.model_validate({
        "id": "jump-1",
        "source": {"kind": "git", "tags": ["jump"]},
        "snapshot": {"path": "pkg/a.py", "text": text, "cursor": 4, "editable": [0, len(text)]},
        "expected": [],
        "locations": [{"path": "pkg/b.py", "start_line": 39, "end_line": 40, "patch": HUNK}],
    })


def test_jump_target_round_trips_to_the_location() -> None:
    fmt = get_format("zeta1-jump")
    example = _jump_example()
    rendered = fmt.render(example)
    assert rendered.target == f"{JUMP_START}pkg/b.py:40-40\n{HUNK}{JUMP_END}"
    assert JUMP_START in rendered.prompt and "<|user_cursor_is_here|>" in rendered.prompt
    location = parse_jump(rendered.target)
    assert (location.path, location.start_line, location.end_line, location.patch) == ("pkg/b.py", 39, 40, HUNK)
    # a jump leaves the excerpt unchanged; a stop-stripping server's answer parses the same way
    assert fmt.parse(rendered.target, example).patch == ""
    assert parse_jump(rendered.target.removesuffix(JUMP_END)) == location


def test_region_answers_are_not_jumps_and_bad_locations_are_refused() -> None:
    assert parse_jump("<|editable_region_start|>\nx = 1\n<|editable_region_end|>") is None
    with pytest.raises(FormatError, match="path:first-last"):
        parse_jump(f"{JUMP_START}pkg/b.py\n{JUMP_END}")
    with pytest.raises(FormatError, match="reversed"):
        parse_jump(f"{JUMP_START}pkg/b.py:9-3\n{JUMP_END}")
    assert Location(path="a", start_line=0, end_line=0).patch is None
