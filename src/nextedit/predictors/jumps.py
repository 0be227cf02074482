"""Jump baselines: where the next edit is, across the workspace, from what the user just changed.

`jump` (the heuristic): the remaining whole-word occurrences of identifiers the recent edits renamed (each with
the rename applied there as its edit), plus the call sites of a function whose signature the latest edit
changed; ranked cursor file first (below the cursor, then above), then other files by how many candidates they
hold. `jump:nearest`: only the latest edit's renamed identifiers, ranked by line distance from the cursor, other
files after the cursor file. Both predict locations only (`Prediction.locations`; no edit in the excerpt).
The workspace is the example's repository at its files' revision with the history replayed, or else the excerpt.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from nextedit import patch as patchlib
from nextedit.context.repo_files import (
    LRUCache,
    RepoError,
    read_text_files,
    split_lines,
)
from nextedit.predictors.base import Predictor, PredictorError
from nextedit.predictors.baselines import _WORD_BOUNDARY, replacements_in_edit
from nextedit.record import Example, HistoryEvent, Location, Prediction, Snapshot

__all__ = ["JumpPredictor", "jump_candidates", "workspace_files"]

MODES = ("heuristic", "nearest")
#: Locations a prediction keeps (ranked).
MAX_LOCATIONS = 10
#: Recent history events whose renames the heuristic follows.
RENAME_EVENTS = 3
MIN_NAME_LEN = 2
_DEFINITION = re.compile(r"\b(?:def|fn|func|function|sub|proc)\s+([A-Za-z_]\w*)\s*[(<\[]")
_FILES: LRUCache[dict[str, str]] = LRUCache(maxsize=2)


def workspace_files(example: Example) -> dict[str, list[str]]:
    """Lines of every text file of the example's workspace as the snapshot saw it: the repository at the
    files' revision (cached per revision) with the history replayed; just the excerpt (at its line) when the
    repository cannot be read."""
    from nextedit.context.locate import locate

    snap = example.snapshot
    try:
        repo, revision = locate(example)
        base = _FILES.get_or_build((str(repo), revision), lambda: read_text_files(Path(repo), revision))
    except (RepoError, ValueError, OSError):
        base = {}
    texts: dict[str, str] = {}
    for event in snap.history:
        if event.path not in texts:
            texts[event.path] = base.get(event.path, "")
        try:
            texts[event.path] = patchlib.apply(event.diff, texts[event.path], path=event.path)
        except patchlib.PatchError:
            pass
    files = {path: split_lines(text) for path, text in base.items() if path not in texts}
    files.update({path: split_lines(text) for path, text in texts.items()})
    lines = files.get(snap.path)
    excerpt = split_lines(snap.text)
    if lines is None or lines[snap.start_line:snap.start_line + len(excerpt)] != excerpt:
        files[snap.path] = [""] * snap.start_line + excerpt  # only the excerpt is known, at its lines
    return files


def _one_line_hunk(row: int, old: str, new: str) -> str:
    ending = "" if old.endswith("\n") else "\n\\ No newline at end of file\n"
    new_end = "" if new.endswith("\n") else "\n\\ No newline at end of file\n"
    return f"@@ -{row + 1},1 +{row + 1},1 @@\n-{old}{ending}+{new}{new_end}"


def _changed_signatures(event: HistoryEvent) -> list[str]:
    """Functions whose definition line the event changed while keeping their name."""
    removed: dict[str, str] = {}
    added: dict[str, str] = {}
    for line in event.diff.splitlines():
        if line[:1] in "-+" and not line.startswith(("---", "+++")):
            m = _DEFINITION.search(line)
            if m:
                (removed if line[0] == "-" else added)[m.group(1)] = line[1:].strip()
    return [name for name in added if name in removed and removed[name] != added[name]]


def _occurrences(files: Mapping[str, Sequence[str]], pattern: re.Pattern[str]) -> list[tuple[str, int]]:
    return [(path, row) for path, lines in files.items() for row, line in enumerate(lines) if pattern.search(line)]


def jump_candidates(files: Mapping[str, Sequence[str]], snapshot: Snapshot, *, mode: str = "heuristic",
                    limit: int = MAX_LOCATIONS) -> list[Location]:
    """Ranked locations where the next edit may be, from the snapshot's history (see the module docstring)."""
    if mode not in MODES:
        raise PredictorError(f"unknown jump mode {mode!r} (known: {', '.join(MODES)})")
    history = snapshot.history
    if not history:
        return []
    cursor_row = snapshot.start_line + snapshot.text.count("\n", 0, snapshot.cursor)
    events = history[-1:] if mode == "nearest" else history[-RENAME_EVENTS:]
    found: dict[tuple[str, int], Location] = {}
    for event in reversed(events):
        try:
            renames = replacements_in_edit(event.diff)
        except patchlib.PatchError:
            continue
        for rep in renames:
            if len(rep.old) < MIN_NAME_LEN:
                continue
            word = re.compile(_WORD_BOUNDARY.format(re.escape(rep.old)))
            for path, row in _occurrences(files, word):
                old = files[path][row]
                new = word.sub(lambda _m, y=rep.new: y, old)
                found.setdefault((path, row), Location(path=path, start_line=row, end_line=row + 1,
                                                       patch=_one_line_hunk(row, old, new),
                                                       reason=f"rename {rep.old} -> {rep.new}"))
    if mode == "heuristic":
        for name in _changed_signatures(history[-1]):
            call = re.compile(_WORD_BOUNDARY.format(re.escape(name)) + r"\s*\(")
            for path, row in _occurrences(files, call):
                if not _DEFINITION.search(files[path][row]):
                    found.setdefault((path, row), Location(path=path, start_line=row, end_line=row + 1,
                                                           reason=f"call of {name}, whose signature changed"))
    per_file = Counter(path for path, _ in found)

    def rank(key: tuple[str, int]) -> tuple:
        path, row = key
        here = path == snapshot.path
        if mode == "nearest":
            return (not here, abs(row - cursor_row) if here else 0, path, row)
        return (not here, (row < cursor_row, abs(row - cursor_row)) if here else (0, 0), -per_file[path], path, row)

    ranked = sorted(found, key=rank)[:limit]
    return [found[key].model_copy(update={"score": float(-i)}) for i, key in enumerate(ranked)]


class JumpPredictor(Predictor):
    """Predicts where the next edit is (`jump`, `jump:nearest`); see the module docstring."""

    scheme = "jump"
    version = "1"

    def __init__(self, argument: str | None = None, **options: object) -> None:
        if options:
            raise PredictorError(f"provider 'jump' takes no options (got {sorted(options)})")
        self.argument = argument
        self.mode = argument or "heuristic"
        if self.mode not in MODES:
            raise PredictorError(f"provider 'jump:{argument}': unknown mode (known: {', '.join(MODES)})")

    def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """`samples` copies of the (deterministic) ranked locations."""
        locations = jump_candidates(workspace_files(example), example.snapshot, mode=self.mode)
        raw = orjson.dumps([loc.model_dump(exclude_none=True) for loc in locations]).decode()
        return [Prediction(provider=self.name, sample=i, raw=raw, patch="", locations=locations)
                for i in range(samples)]
