"""The Zeta 2.1 student format (Zed's V0318SeedMultiRegions scheme): Seed-Coder suffix-prefix-middle prompt,
`<filename>` sections, the editable region cut into numbered `<|marker_N|>` blocks of 6-16 lines; the answer
rewrites one marker-bounded span, and a repeated marker means no edit (reference/zed-ep.md sections 6.1-6.5)."""

from __future__ import annotations

import itertools
import re
from typing import ClassVar

from nextedit.formats.base import (
    FormatError,
    Frame,
    StudentFormat,
    cut_at,
    insert_at,
    take_cursor,
)
from nextedit.formats.history import gather, render_event_unified
from nextedit.patch import split_lines

__all__ = ["CURSOR", "END", "MAX_MARKERS", "SeedMultiRegion", "block_bounds", "marker"]

FIM_SUFFIX = "<[fim-suffix]>"
FIM_PREFIX = "<[fim-prefix]>"
FIM_MIDDLE = "<[fim-middle]>"
FILENAME = "<filename>"
CURSOR = "<|user_cursor|>"
END = "<[end▁of▁sentence]>"
NO_EDITS = "NO_EDITS"
MIN_BLOCK_LINES = 6
MAX_BLOCK_LINES = 16
MAX_NUDGE = 5
#: Marker tokens `<|marker_1|>` .. `<|marker_64|>` are the format's special tokens; more blocks are refused.
MAX_MARKERS = 64

_MARKER_RE = re.compile(r"<\|marker_(\d+)\|>")
_TAIL_WORDS = ("break", "continue", "return", "throw", "end")


def marker(n: int) -> str:
    """The marker token before block n (1-based); marker K+1 closes the last of K blocks."""
    return f"<|marker_{n}|>"


def _is_tail(line: str) -> bool:
    """A line that closes a structure (starts with a closing bracket, or is break/continue/return/...)."""
    s = line.strip()
    if s[:1] in ("}", "]", ")"):
        return True
    word = re.match(r"[A-Za-z_]+", s)
    return bool(word) and word.group(0) in _TAIL_WORDS


def block_bounds(region: str, min_lines: int = MIN_BLOCK_LINES, max_lines: int = MAX_BLOCK_LINES) -> list[int]:
    """Char offsets of the block boundaries of `region`, first 0, last len(region).

    A block ends at a line start after a blank line once it has `min_lines` lines, or is forced to end at
    `max_lines`; a split is moved forward (at most 5 lines) past lines that close a structure, so those
    stay with the block they close."""
    lines = split_lines(region)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    bounds = [0]
    first, i = 0, 1
    while i < len(lines):
        size = i - first
        if size >= max_lines or (size >= min_lines and not lines[i - 1].strip()):
            j = i
            while j < len(lines) and j - i < MAX_NUDGE and _is_tail(lines[j]):
                j += 1
            if j >= len(lines):
                break
            bounds.append(starts[j])
            first, i = j, j + 1
            continue
        i += 1
    bounds.append(len(region))
    return bounds


def _map_bounds(old_span: str, new_span: str, inner: list[int]) -> list[int]:
    """Positions in `new_span` for the block boundaries `inner` of `old_span` (offsets into it): unchanged
    text keeps its boundaries, boundaries inside the change move proportionally to a line start."""
    p = 0
    while p < min(len(old_span), len(new_span)) and old_span[p] == new_span[p]:
        p += 1
    s = 0
    while s < min(len(old_span), len(new_span)) - p and old_span[-1 - s] == new_span[-1 - s]:
        s += 1
    old_end, new_end = len(old_span) - s, len(new_span) - s
    out: list[int] = []
    prev = 0
    for b in inner:
        if b <= p:
            pos = b
        elif b >= old_end:
            pos = b - old_end + new_end
        else:
            pos = p + round((b - p) * (new_end - p) / max(old_end - p, 1))
            nl = new_span.rfind("\n", 0, pos)
            pos = nl + 1 if nl >= p else pos
        pos = min(max(pos, prev), len(new_span))
        out.append(pos)
        prev = pos
    return out


class SeedMultiRegion(StudentFormat):
    """`<[fim-suffix]>` code after the region, `<[fim-prefix]>` diagnostics / related files / edit history /
    the file with its marked region, `<[fim-middle]>`; answer `<|marker_i|>`new text ... `<|marker_j|>` +
    `<[end▁of▁sentence]>`."""

    name: ClassVar[str] = "seed-multi-region"
    version: ClassVar[str] = "1"
    special_tokens: ClassVar[tuple[str, ...]] = (FIM_SUFFIX, FIM_PREFIX, FIM_MIDDLE, FILENAME, CURSOR, END,
                                                 *(marker(n) for n in range(1, MAX_MARKERS + 1)))
    reserved: ClassVar[tuple[str, ...]] = ("<|marker_",)
    stop: ClassVar[list[str]] = [END]
    end_token: ClassVar[str] = END
    cursor_token: ClassVar[str] = CURSOR

    def bounds(self, frame: Frame) -> list[int]:
        """Block boundaries of the frame's editable region; refuses regions needing too many markers."""
        bounds = block_bounds(frame.region)
        if len(bounds) > MAX_MARKERS:
            raise FormatError(f"the editable region needs {len(bounds)} markers, more than {MAX_MARKERS}; "
                              "lower editable_tokens")
        return bounds

    def build_prompt(self, frame: Frame) -> tuple[str, None]:
        sections = gather(frame, render_event=render_event_unified, related_header=lambda p: f"{FILENAME}{p}\n")
        parts = [FIM_SUFFIX, frame.suffix, FIM_PREFIX]
        if sections.diagnostics:
            parts.append(f"{FILENAME}diagnostics\n{sections.diagnostics}")
        parts.append(sections.related)
        if sections.events:
            parts.append(f"{FILENAME}edit_history\n" + "".join(sections.events))
        if sections.candidate is not None:
            parts.append(f"{FILENAME}heuristic_suggestion\n{sections.candidate}")
        parts.append(f"{FILENAME}{frame.path}\n{frame.prefix}")
        bounds = self.bounds(frame)
        region, cursor = frame.region, frame.cursor
        pieces: list[str] = []
        for n, b in enumerate(bounds):
            pieces.append(marker(n + 1))
            if n + 1 < len(bounds):
                block = region[b:bounds[n + 1]]
                at = cursor - b if b <= cursor < bounds[n + 1] or (n + 2 == len(bounds) and cursor == b + len(block)) \
                    else None
                pieces.append(insert_at(block, at, CURSOR))
        parts.append("".join(pieces))
        parts.append(FIM_MIDDLE)
        return "".join(parts), None

    def encode_target(self, frame: Frame, new_region: str, cursor: int | None) -> str:
        old = frame.region
        bounds = self.bounds(frame)
        if new_region == old:
            near = min(range(len(bounds)), key=lambda k: (abs(bounds[k] - frame.cursor), k))
            return marker(near + 1) * 2 + END
        p = 0
        while p < min(len(old), len(new_region)) and old[p] == new_region[p]:
            p += 1
        s = 0
        while s < min(len(old), len(new_region)) - p and old[-1 - s] == new_region[-1 - s]:
            s += 1
        lo, hi = p, len(old) - s
        delta = len(new_region) - len(old)
        if cursor is not None:  # widen so the expected cursor falls inside the rewritten span
            if cursor <= p:
                lo = min(lo, cursor)
            elif cursor >= len(new_region) - s:
                hi = max(hi, cursor - delta)
        i = max(k for k in range(len(bounds)) if bounds[k] <= lo)
        j = min((k for k in range(len(bounds)) if bounds[k] >= hi), default=len(bounds) - 1)
        if j <= i:  # an insertion at a boundary: rewrite the block after it (or the last block)
            i, j = (i, i + 1) if i + 1 < len(bounds) else (len(bounds) - 2, len(bounds) - 1)
        start, end = bounds[i], bounds[j]
        old_span = old[start:end]
        new_span = new_region[start:end + delta]
        inner = _map_bounds(old_span, new_span, [b - start for b in bounds[i + 1:j]])
        cut = [0, *inner, len(new_span)]
        at = None if cursor is None else cursor - start
        out = [marker(i + 1)]
        for k in range(len(cut) - 1):
            seg = new_span[cut[k]:cut[k + 1]]
            inside = at is not None and (cut[k] <= at < cut[k + 1] or (k == len(cut) - 2 and at == cut[k + 1]))
            out.append(insert_at(seg, at - cut[k] if inside and at is not None else None, CURSOR))
            if inside:
                at = None
            out.append(marker(i + k + 2))
        return "".join(out) + END

    def decode_output(self, output: str, frame: Frame) -> tuple[str, int | None]:
        text, _ = cut_at(output, self.stop)
        tags = list(_MARKER_RE.finditer(text))
        old = frame.region
        if not tags:
            if text.strip() == NO_EDITS or text.strip().startswith(NO_EDITS + "\n"):
                return old, None
            raise FormatError("output has no <|marker_N|> tags")
        numbers = [int(m.group(1)) for m in tags]
        if numbers[0] == numbers[-1]:
            return old, None
        bounds = self.bounds(frame)
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise FormatError(f"output markers are not in increasing order: {numbers}")
        if numbers[0] < 1 or numbers[-1] > len(bounds):
            raise FormatError(f"output marker {numbers[-1] if numbers[-1] > len(bounds) else numbers[0]} "
                              f"is not in the prompt (markers 1-{len(bounds)})")
        replacement = "".join(text[a.end():b.start()] for a, b in itertools.pairwise(tags))
        replacement, cursor = take_cursor(replacement, CURSOR)
        start, end = bounds[numbers[0] - 1], bounds[numbers[-1] - 1]
        return old[:start] + replacement + old[end:], None if cursor is None else start + cursor
