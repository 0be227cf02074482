"""The recent edit history of the open documents as record HistoryEvents, grouped as Zed groups it:
consecutive edits of one file within ~1 s and 8 lines of each other make one event; at most N kept."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from nextedit import patch as patchlib
from nextedit.lsp.documents import Change
from nextedit.record import HistoryEvent

GROUPING_S = 1.0
GROUPING_LINES = 8
MAX_EVENTS = 10
MAX_DIFF_CHARS = 2048 * 3


_CHUNK = 4096


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings (compared a chunk at a time, at C speed)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i:i + _CHUNK] == b[i:i + _CHUNK]:
        i += _CHUNK
    if i >= n:
        return n
    j = i
    end = min(i + _CHUNK, n)
    while j < end and a[j] == b[j]:
        j += 1
    return j


def common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the common suffix of two strings, at most `limit`."""
    la, lb = len(a), len(b)
    k = 0
    while k < limit:
        step = min(_CHUNK, limit - k)
        if a[la - k - step:la - k] != b[lb - k - step:lb - k]:
            break
        k += step
    if k >= limit:
        return limit
    while k < limit and a[la - k - 1] == b[lb - k - 1]:
        k += 1
    return k


def render_diff(before: str, after: str, path: str, *, context: int = 3) -> str:
    """Unified diff of a whole-file change with file line numbers, diffing only the changed lines.

    The unchanged lines at both ends are cut off (keeping `context` lines) before diffing, so a
    keystroke in a long file costs a diff of a few lines; hunk numbers still count from the top of
    the file. The result is what `patch.make(before, after, path=path)` gives."""
    if before == after:
        return ""
    p = common_prefix(before, after)
    s = common_suffix(before, after, min(len(before), len(after)) - p)
    # Whole lines inside the common prefix, then back up `context` more lines.
    start = before.rfind("\n", 0, p) + 1
    for _ in range(context):
        if start == 0:
            break
        start = before.rfind("\n", 0, start - 1) + 1
    first_line = before.count("\n", 0, start)
    # Whole lines inside the common suffix (line starts strictly inside it agree in both texts);
    # keep `context` of them.
    q = len(before) - s
    cut = len(before)
    i = q
    for _ in range(context + 1):
        j = before.find("\n", i, len(before) - 1)
        if j == -1:
            break
        i = j + 1
    else:
        cut = i
    old = before[start:cut]
    new = after[start:cut - len(before) + len(after)]
    return patchlib.make(old, new, path=path, context=context, start_line=first_line)


@dataclass
class _OpenGroup:
    """The event still being grown: the file before its first edit and after its latest one."""

    path: str
    before: str
    after: str
    rows: tuple[int, int]
    last_at: float
    predicted: bool

    def event(self) -> HistoryEvent | None:
        diff = render_diff(self.before, self.after, self.path)
        if not diff or len(diff) > MAX_DIFF_CHARS:
            return None
        return HistoryEvent(path=self.path, old_path=self.path, diff=diff, predicted=self.predicted)


def _rows(text: str, change: Change) -> tuple[int, int, int]:
    """First row of a change, last row it replaced, and last row of the new text (rows of `text`, before it)."""
    first = text.count("\n", 0, change.start)
    old_last = first + change.removed.count("\n")
    return first, old_last, first + change.text.count("\n")


class EditHistory:
    """Recent edits across documents, oldest first, as HistoryEvents in the record's format."""

    def __init__(self, *, max_events: int = MAX_EVENTS, grouping_s: float = GROUPING_S,
                 grouping_lines: int = GROUPING_LINES) -> None:
        self.max_events = max_events
        self.grouping_s = grouping_s
        self.grouping_lines = grouping_lines
        #: Closed events with the file's text before each (what context retrieval replays them on).
        self._closed: deque[tuple[HistoryEvent, str]] = deque(maxlen=max(max_events, 1))
        self._open: _OpenGroup | None = None

    def record(self, path: str, before: str, change: Change, after: str, now: float, *,
               predicted: bool = False) -> None:
        """Add one change of document `path` (text `before` it and `after` it) made at time `now`."""
        first, old_last, new_last = _rows(before, change)
        group = self._open
        if group is not None and not predicted and not group.predicted and group.path == path \
                and now - group.last_at <= self.grouping_s and group.after == before \
                and first <= group.rows[1] + self.grouping_lines \
                and old_last >= group.rows[0] - self.grouping_lines:
            shift = change.text.count("\n") - change.removed.count("\n")
            lo = group.rows[0] if group.rows[0] <= first else group.rows[0] + shift
            hi = group.rows[1] + shift if group.rows[1] > old_last else group.rows[1]
            group.rows = (min(lo, first), max(hi, new_last))
            group.after = after
            group.last_at = now
            return
        self._close()
        self._open = _OpenGroup(path, before, after, (first, new_last), now, predicted)
        if predicted:
            self._close()

    def _close(self) -> None:
        if self._open is not None:
            event = self._open.event()
            if event is not None:
                self._closed.append((event, self._open.before))
            self._open = None

    def window(self) -> list[tuple[HistoryEvent, str]]:
        """The last `max_events` events, oldest first (the open group last), each with its file's text before it."""
        out = list(self._closed)
        if self._open is not None:
            event = self._open.event()
            if event is not None:
                out.append((event, self._open.before))
        return out[-self.max_events:] if self.max_events > 0 else []

    def events(self) -> list[HistoryEvent]:
        """The last `max_events` events, oldest first (the open group last)."""
        return [event for event, _ in self.window()]

    def bases(self) -> dict[str, str]:
        """For each file the recent events edit, its text before the oldest of them: the text those
        events replay on, as a training example's history replays on the revision's file."""
        out: dict[str, str] = {}
        for event, before in self.window():
            out.setdefault(event.path, before)
        return out
