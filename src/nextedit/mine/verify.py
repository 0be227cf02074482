"""Checks every mined example before it is written: history replays onto the files, snapshot.text is the
cursor file at that state, each expected patch applies and changes only the editable region."""

from __future__ import annotations

from collections.abc import Mapping

from nextedit.patch import PatchError, apply, split_lines
from nextedit.record import Example
from nextedit.settle.fastapply import apply_at_hints, split_keep


def _apply(patch: str, text: str, start_line: int = 0) -> str:
    """`patch.apply`, through the fast path when every hunk sits at its header line (the same result)."""
    lines = apply_at_hints(patch, split_keep(text), start_line)
    return apply(patch, text, start_line=start_line) if lines is None else "".join(lines)


def _common_prefix(a: str, b: str, limit: int) -> int:
    """Length of the common prefix of a and b (at most `limit`), by binary search on slice equality."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def changed_span(old: str, new: str) -> tuple[int, int]:
    """Char range of `old` that differs from `new` (common prefix and suffix removed)."""
    p = _common_prefix(old, new, min(len(old), len(new)))
    s = _common_suffix(old, new, min(len(old), len(new)) - p)
    return p, len(old) - s


def verify_example(example: Example, base: Mapping[str, str]) -> str | None:
    """The reason the example is inconsistent, or None when it is sound. `base` holds the text of each
    file before the example's first history event touching it (and the cursor file's text otherwise)."""
    # Each file as text, or as its lines (split after each newline) once a history event has been applied:
    # the fast path's result is the next event's input, without joining and splitting the file again.
    texts: dict[str, str | list[str]] = dict(base)
    snap = example.snapshot
    for i, event in enumerate(snap.history):
        if event.path not in texts:
            return f"history[{i}] edits {event.path}, a file with no known text"
        current = texts[event.path]
        lines = current if isinstance(current, list) else split_keep(current)
        try:
            got = apply_at_hints(event.diff, lines, 0)
            texts[event.path] = apply(event.diff, "".join(lines)) if got is None else got
        except PatchError as exc:
            return f"history[{i}] ({event.path}) does not apply: {exc}"
    if snap.path not in texts:
        return f"no text known for the cursor file {snap.path}"
    current = texts[snap.path]
    lines = current if isinstance(current, list) else split_lines(current)
    n = len(split_lines(snap.text))
    if "".join(lines[snap.start_line:snap.start_line + n]) != snap.text:
        return f"snapshot.text is not lines {snap.start_line + 1}-{snap.start_line + n} of {snap.path} after the history"
    ed0, ed1 = snap.editable or (0, len(snap.text))
    if not ed0 <= snap.cursor <= ed1:
        return f"cursor {snap.cursor} outside editable {ed0}-{ed1}"
    for j, patch in enumerate(example.expected):
        try:
            new = _apply(patch, snap.text, snap.start_line)
        except PatchError as exc:
            return f"expected[{j}] does not apply to snapshot.text: {exc}"
        if new == snap.text:
            return f"expected[{j}] changes nothing"
        a, b = changed_span(snap.text, new)
        if a < ed0 or b > ed1:
            return f"expected[{j}] edits chars {a}-{b}, outside editable {ed0}-{ed1}"
    return None
