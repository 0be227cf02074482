"""Rebuilding the cursor file as the user had it: the file at the revision with the snapshot excerpt spliced in."""

from __future__ import annotations

from nextedit import patch as patchlib
from nextedit.context.repo_files import split_lines
from nextedit.record import Snapshot

_ALIGN_SEARCH = 30


def _find_end(file_lines: list[str], exc_lines: list[str], start: int) -> int:
    """Where the excerpt's region ends in the revision's file (exclusive), aligning its last line."""
    n = len(exc_lines)
    default = min(start + n, len(file_lines))
    last = next((j for j in range(n - 1, -1, -1) if exc_lines[j].strip()), None)
    if last is None:
        return default
    want = exc_lines[last].rstrip()
    guess = start + last
    lo, hi = max(start, guess - _ALIGN_SEARCH), min(len(file_lines), guess + _ALIGN_SEARCH + 1)
    for k in sorted(range(lo, hi), key=lambda k: abs(k - guess)):
        if file_lines[k].rstrip() == want:
            return min(k + 1 + (n - 1 - last), len(file_lines))
    return default


def splice_excerpt(file_text: str | None, snapshot: Snapshot) -> tuple[str, int]:
    """(whole-file text, 0-based line of the excerpt's first line in it).

    With no file (repository unavailable) or a file too short for `start_line`, the text is the
    excerpt alone and its first line is line 0.
    """
    if file_text is None:
        return snapshot.text, 0
    file_lines = split_lines(file_text)
    start = snapshot.start_line
    if start > len(file_lines):
        return snapshot.text, 0
    exc_lines = split_lines(snapshot.text)
    end = _find_end(file_lines, exc_lines, start)
    middle = snapshot.text
    if middle and not middle.endswith("\n") and end < len(file_lines):
        middle += "\n"
    return "".join(file_lines[:start]) + middle + "".join(file_lines[end:]), start


def replay_history(file_text: str, snapshot: Snapshot) -> str:
    """The file with the snapshot's history edits to it applied in order (the user's current file).

    When an edit does not apply (its context is not in the file: the revision is not the one the
    history started from), the file is returned as it was, unedited.
    """
    text = file_text
    for event in snapshot.history:
        if event.path != snapshot.path:
            continue
        try:
            text = patchlib.apply(event.diff, text, path=snapshot.path)
        except patchlib.PatchError:
            return file_text
    return text


def current_file(file_text: str | None, snapshot: Snapshot) -> tuple[str, int]:
    """(the cursor file as the user has it, 0-based line of the excerpt in it): history replayed
    on the revision's file, then the excerpt spliced in; the excerpt alone without a file."""
    if file_text is None:
        return snapshot.text, 0
    return splice_excerpt(replay_history(file_text, snapshot), snapshot)
