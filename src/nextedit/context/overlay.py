"""The user's recent edits laid over a revision's files: current lines, definitions and a line map per edited file."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from nextedit import patch as patchlib
from nextedit.context.definitions import Definition, extract_definitions, supported
from nextedit.context.index import RevisionIndex
from nextedit.context.repo_files import split_lines
from nextedit.record import Snapshot


@dataclass
class Overlay:
    """Files the snapshot's history edited, as they are now (only those whose edits applied)."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    definitions: dict[str, list[Definition]] = field(default_factory=dict)
    line_maps: dict[str, list[int]] = field(default_factory=dict)

    def file_lines(self, index: RevisionIndex, path: str) -> list[str]:
        """Current lines of a file: edited ones from the overlay, the rest from the index."""
        found = self.lines.get(path)
        return found if found is not None else index.lines.get(path, [])

    def lookup(self, index: RevisionIndex, name: str) -> list[Definition]:
        """Definitions of `name`, with edited files' definitions taken from their current text."""
        base = [d for d in index.definitions.get(name, ()) if d.path not in self.lines]
        return base + self.definitions.get(name, [])

    def map_line(self, path: str, line: int) -> int:
        """Where a line of the revision's file is now (unchanged for files not edited)."""
        mapping = self.line_maps.get(path)
        if mapping is None:
            return line
        return mapping[min(max(line, 0), len(mapping) - 1)]


def line_map(old: list[str], new: list[str]) -> list[int]:
    """For each old line index (and one past the end), the new line index it corresponds to."""
    mapping = [0] * (len(old) + 1)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        for k in range(i1, i2):
            mapping[k] = j1 + (k - i1) if tag == "equal" else min(j1 + (k - i1), max(j1, j2 - 1))
    mapping[len(old)] = len(new)
    return mapping


def build_overlay(index: RevisionIndex, snapshot: Snapshot) -> Overlay:
    """Replay the snapshot's history on the indexed files; a file whose edits do not apply is left out."""
    overlay = Overlay()
    texts: dict[str, str] = {}
    failed: set[str] = set()
    for event in snapshot.history:
        path = event.path
        if path in failed or (event.old_path not in (None, path)):
            failed.add(path)
            continue
        if path not in texts:
            texts[path] = "".join(index.lines.get(path, ()))  # "" for a file the user created
        try:
            texts[path] = patchlib.apply(event.diff, texts[path], path=path)
        except patchlib.PatchError:
            failed.add(path)
    for path, text in texts.items():
        if path in failed:
            continue
        new = split_lines(text)
        overlay.lines[path] = new
        overlay.line_maps[path] = line_map(index.lines.get(path, []), new)
        if supported(path):
            for d in extract_definitions(path, text):
                overlay.definitions.setdefault(d.name, []).append(d)
    return overlay
