"""A fast path for the common candidate patch: plain hunks whose context sits exactly where the header says.

`apply_at_hints(patch, lines, first_row)` applies a single-file unified diff to `lines` (a text split
after each "\\n", whose first line is 0-based file row `first_row`) when every hunk's old side
matches at its header position, and returns None for anything else (several files, a "\\ No newline"
marker, a blank body line, a hunk that is not at its hinted line, a malformed header). Callers then
use `nextedit.patch`, whose rules give the same result whenever this path succeeds: a hunk found at
its hint is the nearest exact match. It exists because the settle stage applies ~50 candidate
patches per example, where the general parser dominates the run time.
"""

from __future__ import annotations

import re

__all__ = ["apply_at_hints", "split_keep"]

_HEADER = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def split_keep(text: str) -> list[str]:
    """`text` split after each "\\n" (a final line without newline is kept; "" gives [])."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def apply_at_hints(patch: str, lines: list[str], first_row: int) -> list[str] | None:
    """The patched lines, or None when the patch is not the simple case (see the module docstring)."""
    if not patch.endswith("\n"):
        return None  # the last line has no newline: every side line must have one here
    hunks: list[tuple[int, list[str], list[str]]] = []
    old: list[str] | None = None  # the current hunk's old side (None before the first hunk)
    new: list[str] = []
    headers = 0
    for line in patch.split("\n")[:-1]:
        head = line[:1]
        if head == " " and old is not None:
            old.append(line[1:] + "\n")
            new.append(line[1:] + "\n")
        elif head == "-" and old is not None and not line.startswith("--- "):
            old.append(line[1:] + "\n")
        elif head == "+" and old is not None and not line.startswith("+++ "):
            new.append(line[1:] + "\n")
        elif head == "@" and line.startswith("@@"):
            m = _HEADER.match(line)
            if m is None:
                return None
            row = int(m.group(1)) - (0 if m.group(2) == "0" else 1)
            old, new = [], []
            hunks.append((row - first_row, old, new))
        elif line.startswith(("--- ", "+++ ")):
            # A file header; inside a hunk it could also be a changed line: leave that to patchlib.
            headers += 1
            if old is not None or headers > 2:
                return None
        elif old is not None or not line.startswith(("diff ", "index ")):
            return None
    if not hunks:
        return None
    out: list[str] = []
    pos = 0
    for at, old_side, new_side in hunks:
        if not pos <= at <= len(lines) or lines[at:at + len(old_side)] != old_side:
            return None
        if at == len(lines) and lines and not lines[-1].endswith("\n"):
            return None  # inserting after a last line without newline: patchlib decides
        out.extend(lines[pos:at])
        out.extend(new_side)
        pos = at + len(old_side)
    out.extend(lines[pos:])
    return out
