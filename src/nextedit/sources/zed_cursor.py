"""Zed's cursor markers: the marker line in a cursor excerpt (`^[CURSOR_POSITION]`, `<[CURSOR_POSITION]`,
inline `<|user_cursor|>`) and the `#   ^[CURSOR_POSITION]` annotation lines inside expected patches.

Columns written by Zed are UTF-8 byte columns; nextedit works in characters, so both directions
convert here (a byte column inside a multi-byte character rounds down to that character).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from nextedit.patch import PatchError, apply, split_lines

CURSOR_MARKER = "[CURSOR_POSITION]"
INLINE_MARKER = "<|user_cursor|>"
ACCEPTED_MARKER = "// User accepted prediction:"

CursorStyle = Literal["comment", "inline", "inline_raw"]

# The marker line: optional indentation and comment prefix, then ^ or <, then [CURSOR_POSITION].
_MARKER_LINE = re.compile(r"(?P<before>.*?)(?P<arrow>[\^<])\[CURSOR_POSITION\](?P<after>.*)")
_COMMENT_CLOSERS = ("", "-->", "*/", "*)")
# Annotation lines inside patches: "#", spaces/dashes, "^" or "<", then a [TAG].
_ANNOTATION = re.compile(r"#[ \t\-]*[\^<]\[[A-Z_]+\]\s*")
_PATCH_CURSOR = re.compile(r"#[ \t]*\^\[CURSOR_POSITION\]\s*")
_SENTINEL = "\ue000"
_TAG = re.compile("\ue001(\\d+)\ue002")


class CursorError(ValueError):
    """A cursor marker that cannot be read; `line` is the 1-based line inside the marked text."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class DecodedCursor:
    """An excerpt with its marker removed, the cursor as a char offset, and how it was marked."""

    text: str
    cursor: int
    style: CursorStyle
    marker: str | None = None  # the marker line as written (comment style), without its newline


def char_col(content: str, byte_col: int) -> int:
    """The char column of UTF-8 byte column `byte_col` in one line (clamped to the line's end)."""
    total = 0
    for i, ch in enumerate(content):
        total += len(ch.encode("utf-8"))
        if total > byte_col:
            return i
    return len(content)


def byte_col(content: str, col: int) -> int:
    """The UTF-8 byte column of char column `col` in one line."""
    return len(content[:col].encode("utf-8"))


def _split_terminator(line: str) -> tuple[str, str]:
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith("\n"):
        return line[:-1], "\n"
    return line, ""


def marker_column(line: str, comment: str | None = None) -> int | None:
    """The byte column a cursor marker line points at, or None when `line` is not a marker line.

    `^` gives its own column; `<` gives the column of the line's first non-blank character.
    """
    content, _ = _split_terminator(line)
    m = _MARKER_LINE.fullmatch(content)
    if m is None or m["after"].strip() not in _COMMENT_CLOSERS:
        return None
    prefix = m["before"].strip()
    if prefix != (comment or "") and any(ch.isalnum() for ch in prefix):
        return None
    if m["arrow"] == "^":
        return byte_col(content, len(m["before"]))
    first = len(content) - len(content.lstrip())
    return byte_col(content, first)


def decode_excerpt(marked: str, *, comment: str | None = None) -> DecodedCursor:
    """Remove the cursor marker from a Zed `cursor_position` excerpt; raise CursorError if unreadable."""
    inline = marked.count(INLINE_MARKER)
    if inline > 1:
        raise CursorError(f"{inline} {INLINE_MARKER} markers (expected one)")
    if inline == 1:
        at = marked.index(INLINE_MARKER)
        return DecodedCursor(marked[:at] + marked[at + len(INLINE_MARKER):], at, "inline")
    lines = split_lines(marked)
    found = [k for k, line in enumerate(lines) if CURSOR_MARKER in line and marker_column(line, comment) is not None]
    if len(found) > 1:
        raise CursorError(f"{len(found)} cursor marker lines (lines {', '.join(str(k + 1) for k in found)})",
                          line=found[1] + 1)
    if found:
        k = found[0]
        if k == 0:
            raise CursorError("the cursor marker line has no line above it to point at", line=1)
        column = marker_column(lines[k], comment)
        assert column is not None
        cursor_content, _ = _split_terminator(lines[k - 1])
        start = sum(len(line) for line in lines[: k - 1])
        body = lines[:k] + lines[k + 1:]
        if k == len(lines) - 1 and not lines[k].endswith("\n"):
            # The marker closed a text that had no final newline: drop the newline added for it.
            body[-1] = _split_terminator(body[-1])[0]
        return DecodedCursor("".join(body), start + char_col(cursor_content, column), "comment",
                             _split_terminator(lines[k])[0])
    raw = marked.count(CURSOR_MARKER)
    if raw == 1:
        at = marked.index(CURSOR_MARKER)
        return DecodedCursor(marked[:at] + marked[at + len(CURSOR_MARKER):], at, "inline_raw")
    if raw > 1:
        raise CursorError(f"{raw} {CURSOR_MARKER} markers and none on a marker line of its own")
    raise CursorError(f"no cursor marker (a comment line with ^{CURSOR_MARKER} or <{CURSOR_MARKER}, "
                      f"or {INLINE_MARKER})")


def encode_excerpt(text: str, cursor: int, comment: str, style: CursorStyle = "comment",
                   marker: str | None = None) -> str:
    """Mark `cursor` in `text` the way Zed writes it (canonical: a comment line below the cursor line).

    A `marker` line kept from the source file is used instead of the canonical one when it still
    points at `cursor`, so unchanged excerpts are written back byte for byte.
    """
    if not 0 <= cursor <= len(text):
        raise ValueError(f"cursor {cursor} is outside the text (length {len(text)})")
    if style == "inline":
        return text[:cursor] + INLINE_MARKER + text[cursor:]
    if style == "inline_raw":
        return text[:cursor] + CURSOR_MARKER + text[cursor:]
    start = text.rfind("\n", 0, cursor) + 1
    newline = text.find("\n", cursor)
    end = len(text) if newline == -1 else newline + 1
    content, terminator = _split_terminator(text[start:end])
    col = byte_col(content, cursor - start)
    indent = content[: len(content) - len(content.lstrip())]
    width = len(comment.encode("utf-8"))
    if marker is not None:
        kept = _insert_marker(text, end, terminator, marker)
        try:
            found = decode_excerpt(kept, comment=comment)
        except CursorError:
            found = None
        if found is not None and (found.text, found.cursor) == (text, cursor):
            return kept
    if col < width:
        marker = " " * col + comment + " <" + CURSOR_MARKER
    else:
        marker = (indent if col >= len(indent.encode("utf-8")) + width else "") + comment
        marker += " " * (col - len(marker.encode("utf-8"))) + "^" + CURSOR_MARKER
    return _insert_marker(text, end, terminator, marker)


def _insert_marker(text: str, end: int, terminator: str, marker: str) -> str:
    if terminator:
        return text[:end] + marker + terminator + text[end:]
    return text[:end] + "\n" + marker


# --------------------------------------------------------------------------- patch annotations

Annotation = tuple[int, str]  # (number of clean patch lines before it, the annotation line)


def split_annotations(patch: str) -> tuple[str, list[Annotation]]:
    """Take the `#   ^[TAG]` annotation lines out of a patch: (clean patch, annotations)."""
    clean: list[str] = []
    notes: list[Annotation] = []
    for line in split_lines(patch):
        content, _ = _split_terminator(line)
        if _ANNOTATION.fullmatch(content):
            notes.append((len(clean), content))
        else:
            clean.append(line)
    return "".join(clean), notes


def is_cursor_annotation(line: str) -> bool:
    """Whether an annotation line is an expected-cursor line (`#   ^[CURSOR_POSITION]`)."""
    return _PATCH_CURSOR.fullmatch(line) is not None


def join_annotations(patch: str, notes: list[Annotation]) -> str:
    """Put annotation lines back into a clean patch (inverse of split_annotations)."""
    if not notes:
        return patch
    lines = split_lines(patch)
    by_pos: dict[int, list[str]] = {}
    for pos, note in notes:
        by_pos.setdefault(min(pos, len(lines)), []).append(note)
    out: list[str] = []
    for i in range(len(lines) + 1):
        for note in by_pos.get(i, ()):
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
            out.append(note + "\n")
        if i < len(lines):
            out.append(lines[i])
    return "".join(out)


def _body_kinds(lines: list[str]) -> list[str]:
    """Classify patch lines: 'h' header, '+', '-', ' ' context, '\\' marker, 'o' other (a blank or
    unprefixed line the lenient parser may or may not count as context: never rewritten)."""
    kinds: list[str] = []
    in_body = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            kinds += ["h", "h"]
            in_body = True
            i += 2
            continue
        if line.startswith("@@"):
            kinds.append("h")
            in_body = True
        elif not in_body:
            kinds.append("h")
        elif line[:1] in ("+", "-", " ", "\\"):
            kinds.append(line[:1])
        else:
            kinds.append("o")
        i += 1
    # Context of a hunk that changes nothing may be skipped when applying: never rewrite it.
    start = 0
    for end in range(len(kinds) + 1):
        if end == len(kinds) or kinds[end] == "h":
            if not any(kind in ("+", "-") for kind in kinds[start:end]):
                kinds[start:end] = ["o" if kind == " " else kind for kind in kinds[start:end]]
            start = end + 1
    return kinds


def _as_added(line: str, insert: str, col: int | None = None) -> list[str]:
    """A new-side line rewritten as '+' with `insert` at char column `col` (or at the start)."""
    content, terminator = _split_terminator(line[1:])
    at = 0 if col is None else col
    return ["+" + content[:at] + insert + content[at:] + terminator]


def _marked_patch(lines: list[str], kinds: list[str], edits: dict[int, tuple[str, int | None]]) -> str:
    """Rewrite new-side lines `k` in `edits` to carry text; context lines become '-' + '+' pairs."""
    out: list[str] = []
    for k, line in enumerate(lines):
        if k not in edits:
            out.append(line)
            continue
        insert, col = edits[k]
        nonl = k + 1 < len(lines) and kinds[k + 1] == "\\"
        if kinds[k] == " ":
            out.append("-" + line[1:])
            if nonl:
                out.append(lines[k + 1] if lines[k + 1].endswith("\n") else lines[k + 1] + "\n")
        out += _as_added(line, insert, col)
    return "".join(out)


def cursor_from_annotation(clean: str, pos: int, note: str, text: str, *, start_line: int = 0,
                           path: str | None = None) -> int | None:
    """The char offset, in the text after applying `clean` to `text`, that a cursor annotation placed
    after clean line `pos` points at; None when it cannot be placed (not under a new-side line, or
    the patch does not apply to `text`)."""
    lines = split_lines(clean)
    kinds = _body_kinds(lines)
    k = pos - 1
    if not 0 <= k < len(lines) or kinds[k] not in ("+", " ") or _SENTINEL in text or _SENTINEL in clean:
        return None
    content, _ = _split_terminator(lines[k][1:])
    column = char_col(content, note.index("^") - 1)
    try:
        result = apply(_marked_patch(lines, kinds, {k: (_SENTINEL, column)}), text,
                       start_line=start_line, path=path)
        plain = apply(clean, text, start_line=start_line, path=path)
    except PatchError:
        return None
    if result.count(_SENTINEL) != 1 or result.replace(_SENTINEL, "") != plain:
        return None
    return result.index(_SENTINEL)


def cursor_annotation(clean: str, cursor: int, text: str, *, start_line: int = 0,
                      path: str | None = None) -> Annotation | None:
    """The `#   ^[CURSOR_POSITION]` annotation (position, line) that encodes `cursor` (a char offset
    in the text after applying `clean` to `text`); None when the cursor is on no new-side line."""
    lines = split_lines(clean)
    kinds = _body_kinds(lines)
    if "\ue001" in text or "\ue001" in clean:
        return None
    edits: dict[int, tuple[str, int | None]] = {
        k: (f"\ue001{k}\ue002", None) for k, kind in enumerate(kinds) if kind in ("+", " ")
    }
    try:
        tagged = apply(_marked_patch(lines, kinds, edits), text, start_line=start_line, path=path)
        result = apply(clean, text, start_line=start_line, path=path)
    except PatchError:
        return None
    if _TAG.sub("", tagged) != result or not 0 <= cursor <= len(result):
        return None
    line_no = result.count("\n", 0, cursor)
    line_start = result.rfind("\n", 0, cursor) + 1
    m = _TAG.match(tagged.split("\n")[line_no])
    if m is None:
        return None
    k = int(m.group(1))
    content, _ = _split_terminator(lines[k][1:])
    col = byte_col(content, cursor - line_start)
    return k + 1, "#" + " " * col + "^" + CURSOR_MARKER
