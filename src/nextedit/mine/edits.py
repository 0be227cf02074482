"""A commit as typing units: each git hunk (large ones cut into paragraphs) is one `Edit` that can be applied
to its file's parent text in any subset, with line positions tracked as earlier units shift the file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from nextedit.mine.gitlog import RawHunk


@dataclass(frozen=True, eq=False)
class Edit:
    """One typing unit: replace `old` lines at `old_start` (0-based, parent file) with `new` lines.

    `hunk` and `piece` order the units of one file; pieces of one hunk are typed in order, the first
    replacing the hunk's old lines, the later ones inserting the rest of its new lines. Units compare by
    identity."""

    path: str
    hunk: int
    piece: int
    old_start: int
    old: tuple[str, ...]
    new: tuple[str, ...]

    # Cached: both are read for every pair of units while a commit's samples are built.
    @cached_property
    def key(self) -> tuple[int, int]:
        """Position of the unit among the units of its file."""
        return (self.hunk, self.piece)

    @cached_property
    def delta(self) -> int:
        """How many lines the unit adds to its file (negative when it removes lines)."""
        return len(self.new) - len(self.old)

    @property
    def size(self) -> int:
        """Changed lines: removed plus added."""
        return len(self.old) + len(self.new)


def _chunks(lines: Sequence[str], max_lines: int) -> list[tuple[str, ...]]:
    """Cut added lines into paragraphs (after blank lines) of at most `max_lines` lines."""
    chunks: list[tuple[str, ...]] = []
    cur: list[str] = []
    for line in lines:
        cur.append(line)
        if len(cur) >= max_lines or (not line.strip() and len(cur) >= 2):
            chunks.append(tuple(cur))
            cur = []
    if cur:
        chunks.append(tuple(cur))
    return chunks


def file_edits(path: str, old_lines: Sequence[str], new_lines: Sequence[str], hunks: Iterable[RawHunk],
               *, max_lines: int = 8) -> list[Edit]:
    """Typing units of one file from its zero-context hunks; hunks adding more than `max_lines` lines
    are cut into pieces (the user types a long block paragraph by paragraph)."""
    edits: list[Edit] = []
    for h_index, h in enumerate(hunks):
        old = tuple(old_lines[h.old_index:h.old_index + h.old_len])
        new = list(new_lines[h.new_index:h.new_index + h.new_len])
        pieces = _chunks(new, max_lines) if len(new) > max_lines else [tuple(new)]
        for p_index, piece in enumerate(pieces):
            if p_index == 0:
                edits.append(Edit(path, h_index, 0, h.old_index, old, piece))
            else:
                edits.append(Edit(path, h_index, p_index, h.old_index + len(old), (), piece))
    return edits


def apply_edits(old_lines: Sequence[str], edits: Iterable[Edit]) -> list[str]:
    """The file after applying a subset of one file's units to its parent lines."""
    out: list[str] = []
    pos = 0
    for e in sorted(edits, key=lambda e: e.key):
        out.extend(old_lines[pos:e.old_start])
        out.extend(e.new)
        pos = max(pos, e.old_start + len(e.old))
    out.extend(old_lines[pos:])
    return out


def current_start(edit: Edit, applied: Iterable[Edit]) -> int:
    """Where `edit` starts (0-based line) in its file once the `applied` units of that file are in."""
    path, key = edit.path, edit.key
    return edit.old_start + sum(e.delta for e in applied if e.path == path and e.key < key)
