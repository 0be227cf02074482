"""Open documents of the language server: their text, LSP position <-> char offset conversion
(UTF-16 by default, UTF-8 and UTF-32 when negotiated) and incremental changes as char-offset edits."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

from nextedit.patch import line_offsets

Encoding = Literal["utf-8", "utf-16", "utf-32"]


@dataclass(frozen=True)
class Change:
    """One applied text change in char offsets of the text *before* it: [start, end) became `text`."""

    start: int
    end: int
    text: str
    #: The text that was replaced (the old [start, end) slice).
    removed: str = ""

    @property
    def delta(self) -> int:
        """How much the document length changed."""
        return len(self.text) - (self.end - self.start)


class PositionError(ValueError):
    """A position that does not lie inside the document (the change is clamped and logged)."""


def _units(ch: str, encoding: Encoding) -> int:
    """Code units one character takes in the position encoding."""
    if encoding == "utf-16":
        return 2 if ord(ch) > 0xFFFF else 1
    if encoding == "utf-8":
        return len(ch.encode("utf-8", "surrogatepass"))
    return 1


def column_to_chars(line: str, column: int, encoding: Encoding = "utf-16") -> int:
    """Char index in `line` (no newline) of a column counted in `encoding` code units.

    A column inside a multi-unit character rounds down to that character's start; a column past
    the end of the line clamps to the line's length (as the LSP spec says a client may expect)."""
    if column <= 0:
        return 0
    if encoding == "utf-32":
        return min(column, len(line))
    if encoding == "utf-16" and line.isascii():
        return min(column, len(line))
    units = 0
    for i, ch in enumerate(line):
        units += _units(ch, encoding)
        if units > column:
            return i
        if units == column:
            return i + 1
    return len(line)


def chars_to_column(line: str, chars: int, encoding: Encoding = "utf-16") -> int:
    """Column in `encoding` code units of char index `chars` in `line`."""
    head = line[:chars]
    if encoding == "utf-32" or head.isascii():
        return len(head)
    if encoding == "utf-16":
        return len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)
    return len(head.encode("utf-8", "surrogatepass"))


def _shift_starts(starts: list[int], start: int, end: int, text: str) -> list[int]:
    """Line starts after [start, end) became `text`: unchanged before, new ones inside, shifted after."""
    lo = bisect.bisect_right(starts, start)
    hi = bisect.bisect_right(starts, end)
    delta = len(text) - (end - start)
    inside = []
    i = text.find("\n")
    while i != -1:
        inside.append(start + i + 1)
        i = text.find("\n", i + 1)
    tail = starts[hi:]
    return starts[:lo] + inside + ([x + delta for x in tail] if delta else tail)


@dataclass
class Document:
    """The text of one open document as the client last described it.

    Lines end at "\n" (a "\r" before it belongs to the line ending, as in "\r\n"); a lone "\r" is
    treated as text, not as a line break."""

    uri: str
    path: str
    text: str
    version: int = 0
    language_id: str = ""
    encoding: Encoding = "utf-16"
    _starts: list[int] | None = field(default=None, repr=False)

    def line_starts(self) -> list[int]:
        """Char offset where each line starts (cached until the next change)."""
        if self._starts is None:
            self._starts = line_offsets(self.text)
        return self._starts

    def _line(self, row: int) -> tuple[int, str]:
        starts = self.line_starts()
        start = starts[row]
        end = starts[row + 1] - 1 if row + 1 < len(starts) else len(self.text)
        line = self.text[start:end]
        crlf = row + 1 < len(starts) and line.endswith("\r")
        return start, line[:-1] if crlf else line

    def offset_at(self, line: int, character: int) -> int:
        """Char offset of an LSP position; raises PositionError for a line past the end of the text."""
        starts = self.line_starts()
        if line < 0 or character < 0:
            raise PositionError(f"position ({line}, {character}) is negative")
        if line >= len(starts):
            raise PositionError(f"line {line} is past the end of the document ({len(starts)} lines)")
        start, text = self._line(line)
        return start + column_to_chars(text, character, self.encoding)

    def clamped_offset_at(self, line: int, character: int) -> int:
        """Like offset_at, but a position past the end clamps to the end of the text."""
        try:
            return self.offset_at(max(line, 0), max(character, 0))
        except PositionError:
            return len(self.text)

    def position_of(self, offset: int) -> tuple[int, int]:
        """LSP (line, character) of a char offset (clamped to the text)."""
        offset = min(max(offset, 0), len(self.text))
        starts = self.line_starts()
        row = bisect.bisect_right(starts, offset) - 1
        start, line = self._line(row)
        return row, chars_to_column(line, offset - start, self.encoding)

    def replace(self, start: int, end: int, text: str) -> Change:
        """Replace chars [start, end) with `text`, bump nothing else, and return the Change."""
        if not 0 <= start <= end <= len(self.text):
            raise PositionError(f"range [{start}, {end}) is outside the document (length {len(self.text)})")
        removed = self.text[start:end]
        self.text = self.text[:start] + text + self.text[end:]
        if self._starts is not None:
            self._starts = _shift_starts(self._starts, start, end, text)
        return Change(start, end, text, removed)

    def replace_all(self, text: str) -> Change | None:
        """A full-text update as the smallest equivalent change (None when nothing changed)."""
        old = self.text
        if old == text:
            return None
        n = min(len(old), len(text))
        p = 0
        while p < n and old[p] == text[p]:
            p += 1
        s = 0
        while s < n - p and old[len(old) - 1 - s] == text[len(text) - 1 - s]:
            s += 1
        return self.replace(p, len(old) - s, text[p:len(text) - s])
