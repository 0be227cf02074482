"""Parses a teacher (or repair) answer: last fenced block, region markers, cursor, NO_EDITS / KEEP_PREVIOUS."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from nextedit import patch as P
from nextedit.record import Snapshot
from nextedit.teacher.prompt import (
    KEEP_PREVIOUS,
    MARK_CURSOR,
    MARK_END,
    MARK_START,
    NO_EDITS,
)

__all__ = ["Fence", "ParseError", "ParsedOutput", "fenced_blocks", "parse_output", "region_patch"]

_OPEN = re.compile(r"^[ \t]*(`{3,})([^`\n]*)$")


class ParseError(ValueError):
    """The answer holds neither an editable region nor NO_EDITS (or KEEP_PREVIOUS in a repair)."""


@dataclass(frozen=True)
class Fence:
    """A fenced code block: its body (without the fence lines) and whether its closing fence was found."""

    body: str
    info: str
    closed: bool


@dataclass(frozen=True)
class ParsedOutput:
    """What an answer says: an edited region (with cursor offset into it), NO_EDITS or KEEP_PREVIOUS.

    `notes` lists leniencies applied (e.g. "missing_end_marker"); the checks stage reports them.
    """

    kind: Literal["edit", "no_edits", "keep_previous"]
    region: str | None = None
    cursor: int | None = None
    notes: tuple[str, ...] = field(default=())
    #: Whether a newline right before the end marker was taken off the region (it was the marker's).
    newline_taken: bool = False


def fenced_blocks(text: str) -> list[Fence]:
    """Every fenced code block, in order. A block opened with N backticks is closed only by a line of
    exactly N backticks (so ```` inside a ````` block is content); an unclosed block runs to the end."""
    lines = text.split("\n")
    blocks: list[Fence] = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        ticks, info = m.group(1), m.group(2).strip()
        j = i + 1
        while j < len(lines) and lines[j].strip() != ticks:
            j += 1
        closed = j < len(lines)
        blocks.append(Fence("\n".join(lines[i + 1:j]), info, closed))
        i = j + 1
    return blocks


def _is_sentinel(text: str, word: str) -> bool:
    return text.strip().strip("`").strip() == word


def _ends_with(raw: str, word: str) -> bool:
    return raw.rstrip(" \t\r\n`").endswith(word)


def parse_output(raw: str, *, allow_keep_previous: bool = False) -> ParsedOutput:
    """Read an answer. NO_EDITS (KEEP_PREVIOUS) when the last fenced block is exactly that word or the
    answer ends with it; else the text between the last start marker and the last end marker, taken
    from the last fenced block that holds a marker (else from the whole answer). A missing start
    marker means "from the block's start", a missing end marker "to its end"; one newline after the
    start marker and one before the end marker belong to the markers. The first cursor marker is
    removed and its offset kept; further cursor markers are removed too (noted)."""
    if not raw or not raw.strip():
        raise ParseError("empty answer")
    blocks = fenced_blocks(raw)
    last = blocks[-1].body if blocks else None
    sentinels = [(NO_EDITS, "no_edits")] + ([(KEEP_PREVIOUS, "keep_previous")] if allow_keep_previous else [])
    for word, kind in sentinels:
        if (last is not None and _is_sentinel(last, word)) or _ends_with(raw, word):
            return ParsedOutput(kind)  # type: ignore[arg-type]

    source = next((b for b in reversed(blocks) if MARK_START in b.body or MARK_END in b.body), None)
    notes: list[str] = []
    if source is not None:
        text = source.body
        if not source.closed:
            notes.append("unclosed_fence")
    elif MARK_START in raw or MARK_END in raw:
        text = raw
        notes.append("no_fence")
    else:
        expected = "an editable region, NO_EDITS" + (" or KEEP_PREVIOUS" if allow_keep_previous else "")
        raise ParseError(f"no {MARK_START} / {MARK_END} markers found: expected {expected}")

    s = text.rfind(MARK_START)
    if s < 0:
        notes.append("missing_start_marker")
        begin = 0
    else:
        begin = s + len(MARK_START)
        if text.startswith("\n", begin):
            begin += 1
    e = text.rfind(MARK_END)
    taken = False
    if e < begin:
        notes.append("missing_end_marker")
        end = len(text)
    else:
        end = e
        if end > begin and text[end - 1] == "\n":
            end -= 1
            taken = True
    region = text[begin:end]

    cursor: int | None = None
    if MARK_CURSOR in region:
        cursor = region.index(MARK_CURSOR)
        if region.count(MARK_CURSOR) > 1:
            notes.append("several_cursors")
        region = region.replace(MARK_CURSOR, "")
    return ParsedOutput("edit", region, cursor, tuple(notes), taken)


def region_patch(snapshot: Snapshot, parsed: ParsedOutput) -> tuple[str, int | None]:
    """The unified diff (against snapshot.text) and the cursor (offset in the edited text) of a parse.

    NO_EDITS gives ("", None). When the original region ends with a newline the parsed region gets
    it back (see `prompt.render_current_file`); a leading newline the model dropped is put back.
    """
    if parsed.kind != "edit" or parsed.region is None:
        return "", None
    text = snapshot.text
    start, end = snapshot.editable or (0, len(text))
    old = text[start:end]
    new = parsed.region
    cursor = parsed.cursor
    # A region ending in a newline is rendered with the end marker at a line start: a newline the
    # parser took off before the marker is the region's own last newline, so it comes back; a model
    # that wrote the marker right after its last line dropped that newline.
    if old.endswith("\n") and (parsed.newline_taken or not new.endswith("\n")):
        new += "\n"
    if old.startswith("\n") and not new.startswith("\n"):
        new = "\n" + new
        cursor = None if cursor is None else cursor + 1
    if cursor is not None:
        cursor = start + min(cursor, len(new))
    if new == old:
        return "", cursor
    patch = P.from_region(text, (start, end), new, path=snapshot.path, start_line=snapshot.start_line)
    return patch, cursor
