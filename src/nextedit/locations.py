"""Edit locations (`record.Location`): from a patch's hunks, back to a patch with file headers, and the line
distance between two locations; one home for what mining, the Zed source, metrics and predictors share."""

from __future__ import annotations

from nextedit import patch as P
from nextedit.record import Location


def same_path(a: str | None, b: str | None) -> bool:
    """Whether two workspace-relative paths name the same file ("./x" and "x" do; a leading worktree folder,
    as Zed writes it, is tolerated when the rest matches)."""
    if a is None or b is None:
        return False
    na, nb = (p.strip().removeprefix("./").replace("\\", "/") for p in (a, b))
    if na == nb:
        return True
    return na.partition("/")[2] == nb or nb.partition("/")[2] == na


def hunk_rows(hunk: P.Hunk) -> tuple[int, int]:
    """The old-side 0-based line range [start, end) a hunk changes, context left out (an insertion gives an
    empty range at the line it goes before)."""
    row = max(hunk.old_start - 1, 0) if hunk.old_len else hunk.old_start  # "-N,0": insert after line N
    first: int | None = None
    last = row
    for line in hunk.lines:
        kind = line[:1]
        if kind == "\\":
            continue
        if kind in "-+" and first is None:
            first = row
        if kind == "-":
            row += 1
            last = row
        elif kind == " ":
            row += 1
        elif kind == "+":
            last = max(last, row)
    if first is None:
        return row, row
    return first, max(last, first)


def patch_locations(patch: str | None, default_path: str, *, only_other_files: bool = False) -> list[Location]:
    """One location per changed hunk of a patch numbered as file lines (hunks without a file header belong to
    `default_path`), each with its hunk as the edit; [] for an empty or unreadable patch."""
    if not patch:
        return []
    try:
        file_patches = P.parse(patch)
    except P.PatchError:
        return []
    out: list[Location] = []
    for fp in file_patches:
        path = fp.path or default_path
        if only_other_files and same_path(path, default_path):
            continue
        for hunk in fp.hunks:
            if hunk.has_changes:
                start, end = hunk_rows(hunk)
                out.append(Location(path=path, start_line=start, end_line=end, patch=hunk.render()))
    return out


def with_headers(location: Location) -> str:
    """The location's edit as a file patch with `--- a/PATH` / `+++ b/PATH` headers ("" without an edit)."""
    if not location.patch:
        return ""
    body = location.patch if location.patch.endswith("\n") else location.patch + "\n"
    return f"--- a/{location.path}\n+++ b/{location.path}\n{body}"


def line_distance(a: Location, b: Location) -> int | None:
    """How many lines apart two locations of one file are (0 when they share a line, 1 for neighbouring
    lines; an empty range counts as the line it goes before), None for different files."""
    if not same_path(a.path, b.path):
        return None
    a0, a1 = a.start_line, max(a.end_line, a.start_line + 1)
    b0, b1 = b.start_line, max(b.end_line, b.start_line + 1)
    return max(0, b0 - a1 + 1, a0 - b1 + 1)
