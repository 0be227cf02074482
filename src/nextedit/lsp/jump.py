"""The prediction's jump ("go to next predicted edit"): the first predicted location outside the offered edit,
the workspace file it leads to, and the edit there as document edits (or why it can no longer be taken)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nextedit import patch as patchlib
from nextedit.locations import same_path
from nextedit.lsp.snapshot import Edit, diff_edits, span
from nextedit.record import Location

GOTO_COMMAND = "nextedit.goToNextEdit"
GOTO_TITLE = "Go to next predicted edit"


class JumpError(ValueError):
    """A jump that cannot be taken; `reason` is a short code (`target_changed`, `outside_root`, `missing`, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Jump:
    """Where the latest prediction for a document (`uri`) says the next edit is, outside the offered edit."""

    request_id: str
    model_version: str | None
    arm: str | None
    uri: str
    location: Location
    #: How it was first shown ("code_action", "command"), and the events reported about it (once each).
    shown: str | None = None
    reported: set[str] = field(default_factory=set)
    #: Events about it are marked as jump events (the production report counts them apart).
    jump: bool = True

    @property
    def path(self) -> str:
        """The target file, relative to the workspace root."""
        return self.location.path

    @property
    def label(self) -> str:
        """`path:line` (1-based), as the user reads it."""
        return f"{self.location.path}:{self.location.start_line + 1}"


@dataclass(frozen=True)
class Target:
    """A jump resolved against the target file's current text: its edits (char offsets, sorted) and the
    range to select there."""

    text: str
    edits: list[Edit]
    selection: tuple[int, int]


def line_range(text: str, region: tuple[int, int]) -> tuple[int, int]:
    """The 0-based lines [first, last) a char range of `text` touches."""
    first = text.count("\n", 0, region[0])
    last = first + text.count("\n", region[0], region[1])
    if region[1] > region[0] and text[region[1] - 1] != "\n":
        last += 1
    return first, max(last, first + 1)


def outside(location: Location, path: str, lines: tuple[int, int]) -> bool:
    """Whether a location lies outside the offer: another file, or lines outside `lines` of `path`."""
    if not same_path(location.path, path):
        return True
    return location.start_line < lines[0] or max(location.end_line, location.start_line + 1) > lines[1]


def pick(locations: Any, path: str, lines: tuple[int, int]) -> Location | None:
    """The best-ranked location of a /v1/predict answer that lies outside the offer (None: none does);
    entries that are not locations are skipped."""
    if not isinstance(locations, list):
        return None
    for raw in locations:
        try:
            location = Location.model_validate(raw)
        except ValidationError:
            continue
        if outside(location, path, lines):
            return location
    return None


def workspace_file(root: str | None, rel: str) -> Path:
    """The file a workspace-relative path names; JumpError when there is no root or it leads outside it."""
    if not root:
        raise JumpError("outside_root", f"{rel}: no workspace folder to find it in")
    base = Path(root)
    candidate = base / rel.strip().removeprefix("./")
    try:
        candidate.resolve().relative_to(base.resolve())
    except (ValueError, OSError):
        raise JumpError("outside_root", f"{rel}: outside the workspace folder") from None
    return candidate


def read_file(path: Path, rel: str) -> str:
    """A target file's text from disk, line endings kept as they are; JumpError when it cannot be read."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise JumpError("missing", f"{rel}: no such file in the workspace") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JumpError("missing", f"{rel}: cannot be read ({exc})") from None


def resolve(location: Location, text: str) -> Target:
    """The location's edit against the target's current text. A hunk that no longer applies (the file changed)
    or changes nothing is a JumpError `target_changed`: the jump is dropped, never applied in part."""
    if not location.patch:
        starts = patchlib.line_offsets(text)
        at = starts[min(location.start_line, len(starts) - 1)] if starts else 0
        end = starts[min(location.end_line, len(starts) - 1)] if location.end_line > location.start_line else at
        return Target(text, [], (at, max(at, end)))
    try:
        new = patchlib.apply(location.patch, text, path=location.path)
    except patchlib.PatchError as exc:
        raise JumpError("target_changed", f"the predicted edit at {location.path}:{location.start_line + 1} "
                                          f"no longer fits the file ({exc})") from None
    edits = _changed(text, new)
    if not edits:
        raise JumpError("target_changed", f"the predicted edit at {location.path}:{location.start_line + 1} "
                                          "is already there")
    whole = span(edits, text)
    return Target(text, edits, (whole.start, whole.end))


def _changed(old: str, new: str) -> list[Edit]:
    """The edits turning `old` into `new`, diffed only over the lines between their common prefix and suffix
    (a hunk changes a few lines of a file that may be long)."""
    n = min(len(old), len(new))
    p = 0
    while p < n and old[p] == new[p]:
        p += 1
    s = 0
    while s < n - p and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
        s += 1
    lo = old.rfind("\n", 0, p) + 1
    tail = old.find("\n", len(old) - s)
    tail = len(old) - (tail + 1) if tail != -1 else 0  # whole lines after the change, kept out of the diff
    edits = diff_edits(old[lo:len(old) - tail], new[lo:len(new) - tail])
    return [Edit(e.start + lo, e.end + lo, e.text) for e in edits if old[lo + e.start:lo + e.end] != e.text]


__all__ = ["GOTO_COMMAND", "GOTO_TITLE", "Jump", "JumpError", "Target", "line_range", "outside", "pick",
           "read_file", "resolve", "workspace_file"]
