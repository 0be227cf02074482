"""Unified diffs for nextedit: make, parse (lenient), apply (exact context), reverse, rebase, regions.

Conventions (see docs/patch.md):

- Texts are split into lines on "\\n" only; a "\\r" stays part of its line, so CRLF and lone
  "\\r" round-trip. A last line without a final newline is written with the
  "\\ No newline at end of file" marker.
- Hunk line numbers are 1-based file lines. A patch made for an excerpt that starts at 0-based
  file line ``start_line`` numbers its hunks ``start_line + index + 1``; pass the same
  ``start_line`` to :func:`apply` to apply it to the excerpt.
- :func:`parse` is lenient the way Zed's is: wrong hunk-header counts are ignored (a hunk body is
  read by content), blank body lines are empty context lines, file headers are optional. Text
  that is not a diff raises :class:`PatchError` naming the line.
- :func:`apply` needs every hunk's old side to occur exactly in the text; the header's line
  number is only a hint and the nearest exact match wins.

Offset helpers for other modules: :func:`split_lines`, :func:`line_offsets`,
:func:`offset_to_line_col`, :func:`line_col_to_offset`.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "NO_NEWLINE",
    "FilePatch",
    "Hunk",
    "PatchError",
    "apply",
    "changed_lines",
    "clip_to_window",
    "fit_to_excerpt",
    "format_patch",
    "from_region",
    "infer_start_line",
    "is_empty",
    "line_col_to_offset",
    "line_offsets",
    "make",
    "make_lines",
    "offset_to_line_col",
    "parse",
    "paths",
    "rebase",
    "reverse",
    "split_lines",
    "to_region",
]

NO_NEWLINE = "\\ No newline at end of file\n"
_NO_HEADER = "no @@ header"  # label of a hunk body found without its "@@" line

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(?: ?(.*))?$")
# Lines git and GNU diff write between file patches; they carry no hunk content.
_EXTENDED_HEADERS = (
    "diff ",
    "index ",
    "old mode ",
    "new mode ",
    "deleted file mode ",
    "new file mode ",
    "similarity index ",
    "dissimilarity index ",
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
    "Binary files ",
    "Only in ",
)


class PatchError(ValueError):
    """A patch that cannot be parsed or applied; the message is one line."""


# --------------------------------------------------------------------------- text helpers


def split_lines(text: str) -> list[str]:
    """Split ``text`` into lines on "\\n" only, keeping each line's "\\n" (the last may lack one)."""
    if not text:
        return []
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def line_offsets(text: str) -> list[int]:
    """Char offset where each editor line starts: ``[0]`` plus one entry after every "\\n".

    "a\\nb" gives ``[0, 2]``; "a\\n" gives ``[0, 2]`` too (the empty line after the newline).
    """
    offsets = [0]
    find = text.find
    i = find("\n")
    while i != -1:
        offsets.append(i + 1)
        i = find("\n", i + 1)
    return offsets


def offset_to_line_col(
    text: str, offset: int, offsets: Sequence[int] | None = None
) -> tuple[int, int]:
    """0-based (line, column) of char ``offset`` in ``text``; pass ``offsets`` to reuse line_offsets."""
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} is outside the text (length {len(text)})")
    offs = line_offsets(text) if offsets is None else offsets
    line = bisect.bisect_right(offs, offset) - 1
    return line, offset - offs[line]


def line_col_to_offset(
    text: str, line: int, col: int = 0, offsets: Sequence[int] | None = None
) -> int:
    """Char offset of 0-based (``line``, ``col``); the column must lie within that line."""
    offs = line_offsets(text) if offsets is None else offsets
    if not 0 <= line < len(offs):
        raise ValueError(f"line {line} is outside the text ({len(offs)} lines)")
    end = offs[line + 1] - 1 if line + 1 < len(offs) else len(text)
    if not 0 <= col <= end - offs[line]:
        raise ValueError(
            f"column {col} is outside line {line} (length {end - offs[line]})"
        )
    return offs[line] + col


# --------------------------------------------------------------------------- data model


@dataclass
class Hunk:
    """One hunk: header numbers (1-based file lines) and body lines in diff form.

    Each body line keeps its prefix (' ', '-', '+') and its "\\n"; a line whose text has no final
    newline is followed by the :data:`NO_NEWLINE` marker line. ``header`` is the optional section
    text after the closing "@@" (e.g. a function signature).
    """

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[str]
    header: str = ""
    raw_header: str = field(default="", compare=False, repr=False)

    @property
    def old_lines(self) -> list[str]:
        """The old side as text lines (newline kept; the last may lack it)."""
        return _side(self.lines, "-")

    @property
    def new_lines(self) -> list[str]:
        """The new side as text lines (newline kept; the last may lack it)."""
        return _side(self.lines, "+")

    @property
    def old_text(self) -> str:
        """The hunk's old side as text."""
        return "".join(self.old_lines)

    @property
    def new_text(self) -> str:
        """The hunk's new side as text."""
        return "".join(self.new_lines)

    @property
    def range_header(self) -> str:
        """The "@@ -a,b +c,d @@" line (without section text or newline)."""
        return (
            f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"
        )

    @property
    def has_changes(self) -> bool:
        """Whether the hunk adds or removes anything."""
        return any(line[:1] in ("+", "-") for line in self.lines)

    def render(self) -> str:
        """The hunk in unified-diff form, header included."""
        head = self.range_header + (f" {self.header}" if self.header else "")
        return head + "\n" + "".join(self.lines)

    def label(self) -> str:
        """The header as it appeared in the source patch (or as rendered), for error messages."""
        return self.raw_header or self.range_header


@dataclass
class FilePatch:
    """The hunks for one file; paths without "a/" / "b/" prefixes, None for /dev/null or absent."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk]

    @property
    def path(self) -> str | None:
        """The file's path after the patch (the old path for deletions)."""
        return self.new_path if self.new_path is not None else self.old_path

    def render(self) -> str:
        """The file patch in unified-diff form (no file headers when both paths are None)."""
        out = []
        if self.old_path is not None or self.new_path is not None:
            out.append(f"--- {_render_path(self.old_path, 'a/')}\n")
            out.append(f"+++ {_render_path(self.new_path, 'b/')}\n")
        out.extend(h.render() for h in self.hunks)
        return "".join(out)


def _render_path(path: str | None, prefix: str) -> str:
    return "/dev/null" if path is None else prefix + path


def _side(lines: list[str], sign: str) -> list[str]:
    """Text lines of one side of a hunk body (sign '-' for old, '+' for new)."""
    out: list[str] = []
    last_kind = ""
    for line in lines:
        kind = line[:1]
        if kind == "\\":
            if last_kind in (" ", sign) and out:
                out[-1] = out[-1][:-1]
            continue
        last_kind = kind
        if kind == " " or kind == sign:
            out.append(line[1:])
    return out


def format_patch(file_patches: Iterable[FilePatch]) -> str:
    """Render parsed file patches back to unified-diff text."""
    return "".join(fp.render() for fp in file_patches)


# --------------------------------------------------------------------------- make


_Block = tuple[int, int, int]  # (start in a, start in b, length) of equal lines


def _patience_anchors(
    a: list[str], alo: int, ahi: int, b: list[str], blo: int, bhi: int
) -> list[tuple[int, int]]:
    """Pairs of lines unique on both sides, longest increasing run of them (patience diff)."""
    seen_a: dict[str, int] = {}
    for i in range(alo, ahi):
        seen_a[a[i]] = -1 if a[i] in seen_a else i
    seen_b: dict[str, int] = {}
    for j in range(blo, bhi):
        if seen_a.get(b[j], -1) >= 0:
            seen_b[b[j]] = -1 if b[j] in seen_b else j
    pairs = sorted((seen_a[line], j) for line, j in seen_b.items() if j >= 0)
    # Longest increasing subsequence of the b positions (patience sorting with back links).
    tails: list[int] = []  # index into pairs of the smallest tail of each pile
    tail_js: list[int] = []
    back: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pile = bisect.bisect_left(tail_js, j)
        back[k] = tails[pile - 1] if pile else -1
        if pile == len(tails):
            tails.append(k)
            tail_js.append(j)
        else:
            tails[pile] = k
            tail_js[pile] = j
    out: list[tuple[int, int]] = []
    k = tails[-1] if tails else -1
    while k >= 0:
        out.append(pairs[k])
        k = back[k]
    out.reverse()
    return out


def _matching_blocks(a: list[str], b: list[str]) -> list[_Block]:
    """Equal-line blocks: common prefix/suffix, patience anchors, difflib inside the gaps."""
    blocks: list[_Block] = []
    stack = [(0, len(a), 0, len(b))]
    while stack:
        alo, ahi, blo, bhi = stack.pop()
        pre = 0
        while alo + pre < ahi and blo + pre < bhi and a[alo + pre] == b[blo + pre]:
            pre += 1
        if pre:
            blocks.append((alo, blo, pre))
            alo, blo = alo + pre, blo + pre
        suf = 0
        while (
            ahi - suf > alo and bhi - suf > blo and a[ahi - 1 - suf] == b[bhi - 1 - suf]
        ):
            suf += 1
        if suf:
            blocks.append((ahi - suf, bhi - suf, suf))
            ahi, bhi = ahi - suf, bhi - suf
        if alo == ahi or blo == bhi:
            continue
        anchors = _patience_anchors(a, alo, ahi, b, blo, bhi)
        if anchors:
            i0, j0 = alo, blo
            for i, j in anchors:
                stack.append((i0, i, j0, j))
                blocks.append((i, j, 1))
                i0, j0 = i + 1, j + 1
            stack.append((i0, ahi, j0, bhi))
            continue
        # No unique lines to anchor on: difflib; its junk heuristic only for big gaps (speed). Sides
        # with no line in common (most replaced lines) have no matching block: skip building a matcher.
        if set(a[alo:ahi]).isdisjoint(b[blo:bhi]):
            continue
        big = (ahi - alo) + (bhi - blo) > 2000
        matcher = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=big)
        blocks.extend(
            (alo + i, blo + j, n) for i, j, n in matcher.get_matching_blocks() if n
        )
    blocks.sort()
    merged: list[_Block] = []
    for i, j, n in blocks:
        if (
            merged
            and merged[-1][0] + merged[-1][2] == i
            and merged[-1][1] + merged[-1][2] == j
        ):
            pi, pj, pn = merged[-1]
            merged[-1] = (pi, pj, pn + n)
        else:
            merged.append((i, j, n))
    return merged


def _opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    """Line opcodes (difflib style) covering both sequences."""
    codes: list[tuple[str, int, int, int, int]] = []
    i = j = 0
    for ai, bj, n in [*_matching_blocks(a, b), (len(a), len(b), 0)]:
        if i < ai and j < bj:
            codes.append(("replace", i, ai, j, bj))
        elif i < ai:
            codes.append(("delete", i, ai, j, bj))
        elif j < bj:
            codes.append(("insert", i, ai, j, bj))
        if n:
            codes.append(("equal", ai, ai + n, bj, bj + n))
        i, j = ai + n, bj + n
    return codes


def _group(
    codes: list[tuple[str, int, int, int, int]], n: int
) -> list[list[tuple[str, int, int, int, int]]]:
    """Group opcodes into hunks with ``n`` lines of context (like difflib's get_grouped_opcodes)."""
    codes = list(codes)
    if codes and codes[0][0] == "equal":
        _, i1, i2, j1, j2 = codes[0]
        codes[0] = ("equal", max(i1, i2 - n), i2, max(j1, j2 - n), j2)
    if codes and codes[-1][0] == "equal":
        _, i1, i2, j1, j2 = codes[-1]
        codes[-1] = ("equal", i1, min(i2, i1 + n), j1, min(j2, j1 + n))
    groups: list[list[tuple[str, int, int, int, int]]] = []
    group: list[tuple[str, int, int, int, int]] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * n and group:
            group.append(("equal", i1, i1 + n, j1, j1 + n))
            groups.append(group)
            group = []
            i1, j1 = i2 - n, j2 - n
        group.append((tag, i1, i2, j1, j2))
    if any(code[0] != "equal" for code in group):
        groups.append(group)
    return groups


def _body_line(sign: str, line: str) -> list[str]:
    if line.endswith("\n"):
        return [sign + line]
    return [sign + line + "\n", NO_NEWLINE]


def _start(index: int, length: int, start_line: int) -> int:
    """Header start number for a 0-based line index: 1-based, or the line before for empty sides."""
    return start_line + index + (1 if length else 0)


def _common_lines(a: list[str], b: list[str]) -> tuple[int, int]:
    """Common leading lines of a and b, then common trailing lines of the rest (not overlapping), compared
    as list slices (in C) by binary search."""
    n = min(len(a), len(b))
    lo, hi = 0, n
    if a[:hi] == b[:hi]:
        lo = hi
    while lo < hi:  # a[:lo] == b[:lo] and the answer is <= hi
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    pre = lo
    la, lb = len(a), len(b)
    lo, hi = 0, n - pre
    if a[la - hi:] == b[lb - hi:]:
        lo = hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid:la - lo] == b[lb - mid:lb - lo]:
            lo = mid
        else:
            hi = mid - 1
    return pre, lo


def _one_block_hunk(a: list[str], b: list[str], context: int, start_line: int) -> str | None:
    """The hunk :func:`make_lines` writes when `a` and `b` differ in one run of lines whose two sides share no
    line (most edits): then the matching blocks are just the common leading and trailing lines, and so is
    the one hunk. None otherwise (the general path decides)."""
    la, lb = len(a), len(b)
    pre, suf = _common_lines(a, b)
    mid_a, mid_b = a[pre:la - suf], b[pre:lb - suf]
    if mid_a and mid_b and not set(mid_a).isdisjoint(mid_b):
        return None
    i1 = j1 = max(0, pre - context)
    tail = min(suf, context)
    i2, j2 = la - suf + tail, lb - suf + tail
    lines: list[str] = []
    for sign, part in ((" ", a[i1:pre]), ("-", mid_a), ("+", mid_b), (" ", a[la - suf:la - suf + tail])):
        for line in part:
            if line.endswith("\n"):
                lines.append(sign + line)
            else:
                lines += (sign + line + "\n", NO_NEWLINE)
    return (f"@@ -{_start(i1, i2 - i1, start_line)},{i2 - i1} +{_start(j1, j2 - j1, start_line)},{j2 - j1} @@\n"
            + "".join(lines))


def make_lines(a: list[str], b: list[str], *, context: int = 3, start_line: int = 0) -> str:
    """The hunks (no file headers) of :func:`make` for two texts given as their :func:`split_lines` lists."""
    if context < 0 or start_line < 0:
        raise ValueError(f"context and start_line must be >= 0, got {context} and {start_line}")
    if a == b:
        return ""
    simple = _one_block_hunk(a, b, context, start_line)
    if simple is not None:
        return simple
    return "".join(hunk.render() for hunk in _hunks(a, b, context, start_line))


def _hunks(a: list[str], b: list[str], context: int, start_line: int) -> list[Hunk]:
    hunks: list[Hunk] = []
    for group in _group(_opcodes(a, b), context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        lines: list[str] = []
        for tag, ai1, ai2, bj1, bj2 in group:
            if tag == "equal":
                for line in a[ai1:ai2]:
                    lines.extend(_body_line(" ", line))
                continue
            for line in a[ai1:ai2]:
                lines.extend(_body_line("-", line))
            for line in b[bj1:bj2]:
                lines.extend(_body_line("+", line))
        hunks.append(
            Hunk(
                _start(i1, i2 - i1, start_line),
                i2 - i1,
                _start(j1, j2 - j1, start_line),
                j2 - j1,
                lines,
            )
        )
    return hunks


def make(
    old: str,
    new: str,
    *,
    path: str = "file",
    old_path: str | None = None,
    context: int = 3,
    start_line: int = 0,
) -> str:
    """Unified diff turning ``old`` into ``new`` ("" when equal), hunks numbered from ``start_line``.

    Headers are ``--- a/OLD_PATH`` / ``+++ b/PATH`` (``old_path`` defaults to ``path``).
    """
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    if start_line < 0:
        raise ValueError(f"start_line must be >= 0, got {start_line}")
    if old == new:
        return ""
    body = make_lines(split_lines(old), split_lines(new), context=context, start_line=start_line)
    return f"--- a/{old_path if old_path is not None else path}\n+++ b/{path}\n{body}"


# --------------------------------------------------------------------------- parse


def _clean_path(raw: str, prefix: str) -> str | None:
    """Path from a ---/+++ line: timestamp dropped, quotes undone, a/ or b/ prefix stripped."""
    value = raw.rstrip("\r")
    if "\t" in value:
        value = value.split("\t", 1)[0]
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = _unquote(value[1:-1])
    value = value.strip()
    if value in ("/dev/null", ""):
        return None
    return value.removeprefix(prefix)


_C_ESCAPES = {
    "a": 7,
    "b": 8,
    "t": 9,
    "n": 10,
    "v": 11,
    "f": 12,
    "r": 13,
    '"': 34,
    "\\": 92,
}


def _unquote(quoted: str) -> str:
    """Undo git's C-style path quoting (octal escapes are UTF-8 bytes)."""
    out = bytearray()
    i = 0
    while i < len(quoted):
        char = quoted[i]
        if char == "\\" and i + 1 < len(quoted):
            octal = re.match(r"[0-7]{1,3}", quoted[i + 1 : i + 4])
            if octal:
                out.append(int(octal.group(), 8) & 0xFF)
                i += 1 + len(octal.group())
                continue
            if quoted[i + 1] in _C_ESCAPES:
                out.append(_C_ESCAPES[quoted[i + 1]])
                i += 2
                continue
        out += char.encode()
        i += 1
    return out.decode("utf-8", "replace")


def _normalize_path(path: str) -> str:
    for prefix in ("a/", "b/", "./"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _short(line: str) -> str:
    text = line.rstrip("\n")
    return repr(text if len(text) <= 60 else text[:57] + "...")


class _HunkBuilder:
    """Collects one hunk's body while parsing."""

    def __init__(self, match: re.Match[str] | None, raw: str, line_no: int) -> None:
        # match None: a body with no "@@" line (seen in Zed evals); it is located by content only.
        self.implicit = match is None
        self.h_old_start = 1 if match is None else int(match.group(1))
        self.h_old_len = (
            0 if match is None else 1 if match.group(2) is None else int(match.group(2))
        )
        self.h_new_start = 1 if match is None else int(match.group(3))
        self.h_new_len = (
            0 if match is None else 1 if match.group(4) is None else int(match.group(4))
        )
        self.section = "" if match is None else (match.group(5) or "").rstrip("\r")
        self.raw = raw
        self.line_no = line_no
        self.lines: list[str] = []
        self.blank: list[bool] = []  # body line came from a bare blank line
        self.closed = {"-": False, "+": False}  # side ended by a no-newline marker

    def expects_more(self) -> bool:
        """Whether the header's counts say more old or new lines are still to come."""
        n_old = sum(1 for line in self.lines if line[0] in " -")
        n_new = sum(1 for line in self.lines if line[0] in " +")
        return not self.implicit and (n_old < self.h_old_len or n_new < self.h_new_len)

    def add(self, kind: str, text: str, line_no: int, blank: bool = False) -> None:
        sides = ("-", "+") if kind == " " else (kind,)
        for side in sides:
            if self.closed[side]:
                raise PatchError(
                    f"line {line_no}: line after a '\\ No newline at end of file' marker "
                    f"in hunk {self.raw!r}"
                )
        self.lines.append(kind + text + "\n")
        self.blank.append(blank)

    def marker(self, line_no: int) -> None:
        if not self.lines or self.lines[-1] == NO_NEWLINE:
            raise PatchError(
                f"line {line_no}: '\\ No newline at end of file' marker without a line before it"
            )
        kind = self.lines[-1][0]
        for side in ("-", "+") if kind == " " else (kind,):
            self.closed[side] = True
        self.lines.append(NO_NEWLINE)
        self.blank.append(False)

    def build(self) -> Hunk:
        # Bare blank lines at the end are separators unless the header counts need them.
        while self.lines and self.blank[-1]:
            n_old = sum(1 for line in self.lines if line[0] in " -")
            n_new = sum(1 for line in self.lines if line[0] in " +")
            if (
                not self.implicit
                and n_old <= self.h_old_len
                and n_new <= self.h_new_len
            ):
                break
            self.lines.pop()
            self.blank.pop()
        old_len = sum(1 for line in self.lines if line[0] in " -")
        new_len = sum(1 for line in self.lines if line[0] in " +")
        if self.implicit:
            return Hunk(
                1 if old_len else 0,
                old_len,
                1 if new_len else 0,
                new_len,
                self.lines,
                "",
                self.raw,
            )
        return Hunk(
            _fix_start(self.h_old_start, self.h_old_len, old_len),
            old_len,
            _fix_start(self.h_new_start, self.h_new_len, new_len),
            new_len,
            self.lines,
            self.section,
            self.raw,
        )


def _fix_start(start: int, header_len: int, real_len: int) -> int:
    """Re-express a header start for the real side length (empty sides name the line before)."""
    if header_len == 0 and real_len > 0:
        return start + 1
    if header_len > 0 and real_len == 0:
        return max(start - 1, 0)
    return start


def parse(text: str) -> list[FilePatch]:
    """Parse unified-diff text into file patches (lenient about counts, strict about garbage).

    A patch with hunks but no file headers gives one ``FilePatch(None, None, hunks)``. Raises
    :class:`PatchError` ("line N: ...") on text that is not a diff.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    hunk: _HunkBuilder | None = None
    i = 0

    def close_hunk() -> None:
        nonlocal hunk
        if hunk is not None:
            assert current is not None
            current.hunks.append(hunk.build())
            hunk = None

    while i < len(lines):
        line = lines[i]
        no = i + 1
        if (
            line.startswith("--- ")
            and i + 1 < len(lines)
            and lines[i + 1].startswith("+++ ")
        ):
            close_hunk()
            current = FilePatch(
                _clean_path(line[4:], "a/"), _clean_path(lines[i + 1][4:], "b/"), []
            )
            patches.append(current)
            i += 2
            continue
        if line.startswith("@@"):
            close_hunk()
            match = _HUNK_RE.match(line.rstrip("\r"))
            if match is None:
                raise PatchError(f"line {no}: malformed hunk header {_short(line)}")
            if current is None:
                current = FilePatch(None, None, [])
                patches.append(current)
            hunk = _HunkBuilder(match, line.rstrip("\r"), no)
            i += 1
            continue
        if hunk is not None:
            kind = line[:1]
            if kind in (" ", "-", "+"):
                hunk.add(kind, line[1:], no)
                i += 1
                continue
            if kind == "\\":
                hunk.marker(no)
                i += 1
                continue
            if line in ("", "\r"):
                hunk.add(" ", line, no, blank=True)
                i += 1
                continue
            if not line.startswith("diff ") and hunk.expects_more():
                # A context line that lost its leading space (seen in Zed evals).
                hunk.add(" ", line, no)
                i += 1
                continue
            close_hunk()
        if line.strip() == "":
            i += 1
            continue
        if current is not None and not current.hunks and line[:1] in (" ", "-", "+"):
            hunk = _HunkBuilder(None, _NO_HEADER, no)
            continue
        if line.startswith(_EXTENDED_HEADERS):
            if line.startswith("diff "):
                close_hunk()
                current = None
            i += 1
            continue
        raise PatchError(f"line {no}: not part of a unified diff: {_short(line)}")
    close_hunk()
    return patches


# --------------------------------------------------------------------------- apply


class _LineIndex:
    """Positions of every distinct line in a list of lines (built on first need: a hunk found at
    its hinted line, the common case, needs none)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self._positions: dict[str, list[int]] | None = None

    @property
    def positions(self) -> dict[str, list[int]]:
        if self._positions is None:
            self._positions = {}
            for pos, line in enumerate(self.lines):
                self._positions.setdefault(line, []).append(pos)
        return self._positions

    def find(self, old: list[str], lo: int, hint: int) -> int | None:
        """Start of the exact occurrence of ``old`` at or after ``lo`` nearest to ``hint``."""
        k = len(old)
        hi = len(self.lines) - k
        if hi < lo:
            return None
        if lo <= hint <= hi and self.lines[hint:hint + k] == old:
            return hint  # distance 0: the nearest occurrence
        counts = [len(self.positions.get(line, ())) for line in old]
        anchor = min(range(k), key=counts.__getitem__)
        if counts[anchor] == 0:
            return None
        candidates = [
            p - anchor for p in self.positions[old[anchor]] if lo <= p - anchor <= hi
        ]
        candidates.sort(key=lambda p: (abs(p - hint), p))
        lines = self.lines
        for p in candidates:
            if lines[p : p + k] == old:
                return p
        return None


def _hunk_error(index: int, hunk: Hunk, fp: FilePatch, reason: str) -> PatchError:
    where = f" in {fp.path}" if fp.path else ""
    return PatchError(f"hunk {index} ({hunk.label()}){where}: {reason}")


def _find_hunk(
    n: int, hunk: Hunk, fp: FilePatch, index: _LineIndex, pos: int, hint: int
) -> int:
    """Where hunk ``n``'s old side starts in the text (at or after ``pos``), or PatchError."""
    src = index.lines
    old = hunk.old_lines
    if not old:
        if not 0 <= hint <= len(src):
            raise _hunk_error(
                n,
                hunk,
                fp,
                f"context not found (insertion point {hint} is outside the text,"
                f" {len(src)} lines)",
            )
        return max(hint, pos)
    found = index.find(old, pos, hint)
    if found is not None:
        return found
    missing = next(
        (j for j, line in enumerate(old) if line not in index.positions), None
    )
    if missing is not None:
        detail = f"its old line {missing + 1} {_short(old[missing])} does not occur in the text"
    elif pos == 0:
        detail = "its old lines never occur together in the text"
    else:
        detail = "its old lines do not occur together after the previous hunk"
    raise _hunk_error(n, hunk, fp, f"context not found ({detail})")


def _hint_base(hunk: Hunk, start_line: int) -> int:
    """0-based index in the excerpt where the header says the hunk's old side starts."""
    return (hunk.old_start - 1 if hunk.old_len else hunk.old_start) - start_line


def _splice(
    n: int,
    hunk: Hunk,
    fp: FilePatch,
    src: list[str],
    out: list[str],
    pos: int,
    found: int,
) -> int:
    """Copy text up to ``found`` and the hunk's new side into ``out``; return the new position."""
    new = hunk.new_lines
    if new and not hunk.old_lines and found > 0 and not src[found - 1].endswith("\n"):
        raise _hunk_error(
            n, hunk, fp, "cannot insert after a last line that has no newline"
        )
    out.extend(src[pos:found])
    out.extend(new)
    pos = found + len(hunk.old_lines)
    if new and not new[-1].endswith("\n") and pos < len(src):
        raise _hunk_error(
            n, hunk, fp, "new side ends without newline but text continues after it"
        )
    return pos


def _apply_file_patch(
    fp: FilePatch, text: str, start_line: int, first_index: int
) -> str:
    src = split_lines(text)
    index = _LineIndex(src)
    out: list[str] = []
    pos = 0
    drift = 0
    for n, hunk in enumerate(fp.hunks, start=first_index):
        base = _hint_base(hunk, start_line)
        found = _find_hunk(n, hunk, fp, index, pos, base + drift)
        pos = _splice(n, hunk, fp, src, out, pos, found)
        drift = found - base
    out.extend(src[pos:])
    return "".join(out)


def _trimmed(hunk: Hunk, lead: int, trail: int) -> Hunk:
    """The hunk without its first ``lead`` and last ``trail`` context lines."""
    lines = hunk.lines[lead : len(hunk.lines) - trail]
    old_len = sum(1 for line in lines if line[:1] in (" ", "-"))
    new_len = sum(1 for line in lines if line[:1] in (" ", "+"))
    old_start = hunk.old_start + lead - (1 if hunk.old_len and not old_len else 0)
    new_start = hunk.new_start + lead - (1 if hunk.new_len and not new_len else 0)
    return Hunk(old_start, old_len, new_start, new_len, lines, hunk.header)


def _edge_context(lines: list[str]) -> tuple[int, int]:
    """Numbers of leading and trailing context lines (a context line with a marker stays)."""
    lead = 0
    while lead < len(lines) and lines[lead][:1] == " ":
        lead += 1
    trail = 0
    while trail < len(lines) - lead and lines[len(lines) - 1 - trail][:1] == " ":
        trail += 1
    return lead, trail


def fit_to_excerpt(patch: str, text: str, *, start_line: int = 0) -> str:
    """Drop hunk context lines that reach past the start or end of the excerpt ``text``.

    Zed's expected patches often carry context from outside the cursor excerpt. A hunk that does
    not apply as is gets its leading context trimmed only if the rest then matches at the very
    start of ``text``, and its trailing context only if the rest then ends at the very end, so
    the result is still an exact-context patch. Changed lines are never dropped: a hunk whose
    changes lie outside the excerpt raises :class:`PatchError` naming it. Line numbers keep
    counting file lines.
    """
    file_patches = parse(patch)
    _check_single_path(file_patches)
    hunk_no = 1
    for fp in file_patches:
        src = split_lines(text)
        index = _LineIndex(src)
        out: list[str] = []
        pos = drift = 0
        fitted: list[Hunk] = []
        for n, hunk in enumerate(fp.hunks, start=hunk_no):
            base = _hint_base(hunk, start_line)
            try:
                found = _find_hunk(n, hunk, fp, index, pos, base + drift)
            except PatchError as err:
                hunk, found = _fit_hunk(hunk, src, pos, err)
                base = _hint_base(hunk, start_line)
            fitted.append(hunk)
            pos = _splice(n, hunk, fp, src, out, pos, found)
            drift = found - base
        out.extend(src[pos:])
        text = "".join(out)
        fp.hunks = fitted
        hunk_no += len(fitted)
    return format_patch(file_patches)


def _fit_hunk(
    hunk: Hunk, src: list[str], pos: int, err: PatchError
) -> tuple[Hunk, int]:
    lead_max, trail_max = _edge_context(hunk.lines)
    if hunk.lines and hunk.lines[-1] == NO_NEWLINE:
        trail_max = 0
    options = sorted(
        ((a, b) for a in range(lead_max + 1) for b in range(trail_max + 1) if a or b),
        key=lambda ab: (ab[0] + ab[1], ab),
    )
    for lead, trail in options:
        cut = _trimmed(hunk, lead, trail)
        old = cut.old_lines
        if not old and hunk.old_lines:
            continue  # keep something to anchor the hunk
        k = len(old)
        at = 0 if lead else len(src) - k
        if at < pos or (lead and trail and k != len(src)):
            continue
        if src[at : at + k] == old:
            return cut, at
    raise err


def infer_start_line(patch: str, text: str) -> int | None:
    """The 0-based file line where excerpt ``text`` starts, judging by the patch's hunk numbers.

    Uses the first hunk (with a real "@@" line) whose old side occurs exactly once in ``text``;
    None when no hunk does.
    Run :func:`fit_to_excerpt` first when hunks may carry context from outside the excerpt.
    """
    src = split_lines(text)
    index = _LineIndex(src)
    for fp in parse(patch):
        for hunk in fp.hunks:
            old = hunk.old_lines
            if not old or hunk.raw_header == _NO_HEADER:
                continue
            found = [
                p
                for p in index.positions.get(old[0], ())
                if src[p : p + len(old)] == old
            ]
            if len(found) == 1:
                return max(hunk.old_start - 1 - found[0], 0)
    return None


def _check_single_path(file_patches: list[FilePatch]) -> None:
    named = _paths(file_patches)
    if len(named) > 1:
        raise PatchError(
            f"patch touches several files ({', '.join(named)}); pass path= to pick one"
        )


def _matches_path(fp: FilePatch, path: str) -> bool:
    if fp.old_path is None and fp.new_path is None:
        return True
    want = _normalize_path(path)
    return any(
        p is not None and _normalize_path(p) == want for p in (fp.old_path, fp.new_path)
    )


def apply(
    patch: str, text: str, *, start_line: int = 0, path: str | None = None
) -> str:
    """Apply ``patch`` to ``text`` (an excerpt starting at 0-based file line ``start_line``).

    Every hunk's old side must occur exactly; the header line number is a hint and the nearest
    exact match after the previous hunk wins (a drift found for one hunk carries to the next).
    File patches apply in order, each to the result of the one before. With ``path``, only file
    patches for that path (or without paths) apply. Raises :class:`PatchError` naming the hunk.
    """
    return apply_parsed(parse(patch), text, start_line=start_line, path=path)


def apply_parsed(
    file_patches: list[FilePatch], text: str, *, start_line: int = 0, path: str | None = None
) -> str:
    """:func:`apply` of a patch already parsed with :func:`parse` (the file patches are not changed)."""
    if path is None:
        _check_single_path(file_patches)
    hunk_no = 1
    for fp in file_patches:
        if path is not None and not _matches_path(fp, path):
            hunk_no += len(fp.hunks)
            continue
        text = _apply_file_patch(fp, text, start_line, hunk_no)
        hunk_no += len(fp.hunks)
    return text


# --------------------------------------------------------------------------- transforms


def _renumber(hunks: list[Hunk]) -> None:
    """Recompute each hunk's new_start from its old_start and the size changes before it."""
    delta = 0
    for h in hunks:
        before = (
            h.old_start if h.old_len == 0 else h.old_start - 1
        )  # old lines before the hunk
        h.new_start = before + delta + (1 if h.new_len else 0)
        delta += h.new_len - h.old_len


def _reverse_lines(lines: list[str]) -> list[str]:
    """Swap '-' and '+' in a hunk body, keeping removals before additions in every change run."""
    out: list[str] = []
    minus: list[str] = []
    plus: list[str] = []
    last: list[str] | None = None
    for line in lines:
        kind = line[:1]
        if kind == "\\":
            if last is not None:
                last.append(line)
            continue
        if kind == " ":
            out.extend(minus)
            out.extend(plus)
            minus, plus = [], []
            out.append(line)
            last = out
        elif kind == "-":
            plus.append("+" + line[1:])
            last = plus
        else:
            minus.append("-" + line[1:])
            last = minus
    out.extend(minus)
    out.extend(plus)
    return out


def reverse(patch: str) -> str:
    """The patch that undoes ``patch`` (file patches in reverse order, sides and paths swapped)."""
    out: list[FilePatch] = []
    for fp in reversed(parse(patch)):
        hunks = [
            Hunk(
                h.new_start,
                h.new_len,
                h.old_start,
                h.old_len,
                _reverse_lines(h.lines),
                h.header,
            )
            for h in fp.hunks
        ]
        out.append(FilePatch(fp.new_path, fp.old_path, hunks))
    return format_patch(out)


def rebase(patch: str, line_delta: int) -> str:
    """Shift every hunk's line numbers by ``line_delta`` (e.g. excerpt-relative to file lines)."""
    fps = parse(patch)
    for fp in fps:
        for h in fp.hunks:
            if h.old_start + line_delta < 0 or h.new_start + line_delta < 0:
                raise PatchError(
                    f"rebase by {line_delta} moves hunk {h.range_header} before the first line"
                )
            h.old_start += line_delta
            h.new_start += line_delta
            h.raw_header = ""
    return format_patch(fps)


def clip_to_window(
    patch: str, start_line: int, n_lines: int, *, side: str = "old"
) -> str:
    """Keep only the parts of the hunks that touch file lines [start_line, start_line + n_lines).

    Line numbers are 0-based file lines of the ``side`` ("old": before the patch, "new": after
    it); hunk headers are 1-based. Lines of that side outside the window are dropped; lines of
    the other side are kept when the run of changes they belong to starts inside the window (or
    on its end boundary), so a replacement that straddles a window edge is cut; context is
    trimmed. Hunks left without changes disappear; line numbers are recomputed.
    """
    if side == "new":
        return reverse(clip_to_window(reverse(patch), start_line, n_lines, side="old"))
    if side != "old":
        raise ValueError(f"side must be 'old' or 'new', got {side!r}")
    end = start_line + n_lines
    out: list[FilePatch] = []
    for fp in parse(patch):
        hunks: list[Hunk] = []
        for h in fp.hunks:
            row = (
                h.old_start - 1 if h.old_len else h.old_start
            )  # 0-based old row of the next old line
            kept: list[str] = []
            first_row: int | None = None
            keep_prev = False
            run_start = row  # old row where the current run of changes begins
            prev_kind = " "
            for line in h.lines:
                kind = line[:1]
                if kind == "\\":
                    if keep_prev:
                        kept.append(line)
                    continue
                if kind != " " and prev_kind == " ":
                    run_start = row
                prev_kind = kind
                if kind in " -":
                    keep_prev = start_line <= row < end
                    line_row = row
                    row += 1
                else:
                    keep_prev = start_line <= run_start <= end
                    line_row = run_start
                if keep_prev:
                    if first_row is None:
                        first_row = line_row
                    kept.append(line)
            if not any(line[:1] in "+-" for line in kept):
                continue
            old_len = sum(1 for line in kept if line[:1] in " -")
            new_len = sum(1 for line in kept if line[:1] in " +")
            assert first_row is not None
            hunks.append(
                Hunk(
                    first_row + (1 if old_len else 0),
                    old_len,
                    0,
                    new_len,
                    kept,
                    h.header,
                )
            )
        _renumber(hunks)
        if hunks:
            out.append(FilePatch(fp.old_path, fp.new_path, hunks))
    return format_patch(out)


def to_region(
    patch: str, text: str, editable: tuple[int, int], *, start_line: int = 0
) -> tuple[str, str]:
    """Old and new text of the editable region ``text[start:end]`` once ``patch`` is applied.

    Raises :class:`PatchError` when the patch changes text outside the region.
    """
    start, end = editable
    if not 0 <= start <= end <= len(text):
        raise PatchError(
            f"editable {[start, end]} is not a range inside text (length {len(text)})"
        )
    new_text = apply(patch, text, start_line=start_line)
    prefix, suffix = text[:start], text[end:]
    if (
        len(new_text) < len(prefix) + len(suffix)
        or not new_text.startswith(prefix)
        or not new_text.endswith(suffix)
    ):
        raise PatchError(
            f"patch changes text outside the editable region {[start, end]}"
        )
    return text[start:end], new_text[start : len(new_text) - len(suffix)]


def from_region(
    text: str,
    editable: tuple[int, int],
    new_region: str,
    *,
    path: str,
    start_line: int = 0,
    context: int = 3,
) -> str:
    """The patch against ``text`` that replaces the editable region ``text[start:end]`` with ``new_region``."""
    start, end = editable
    if not 0 <= start <= end <= len(text):
        raise PatchError(
            f"editable {[start, end]} is not a range inside text (length {len(text)})"
        )
    new_text = text[:start] + new_region + text[end:]
    return make(text, new_text, path=path, start_line=start_line, context=context)


# --------------------------------------------------------------------------- inspection


def changed_lines(patch: str) -> list[str]:
    """The patch's '-' and '+' lines with their sign, without "\\n" and without file headers."""
    return [
        line[:-1]
        for fp in parse(patch)
        for h in fp.hunks
        for line in h.lines
        if line[:1] in ("-", "+")
    ]


def is_empty(patch: str) -> bool:
    """Whether the patch changes nothing (no text, no hunks, or only context lines)."""
    if not patch.strip():
        return True
    return not any(h.has_changes for fp in parse(patch) for h in fp.hunks)


def paths(patch: str) -> list[str]:
    """Distinct file paths the patch touches, in order (new path, or old path for deletions)."""
    return _paths(parse(patch))


def _paths(file_patches: list[FilePatch]) -> list[str]:
    seen: list[str] = []
    for fp in file_patches:
        if fp.path is not None and fp.path not in seen:
            seen.append(fp.path)
    return seen
