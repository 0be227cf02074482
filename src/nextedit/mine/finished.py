"""No-edit examples from mined ones: the moment right after the commit's last edit group was typed, when the
right prediction is "no edit" (so students learn, and evals measure, when to stay quiet)."""

from __future__ import annotations

from nextedit import patch as P
from nextedit.record import Example, HistoryEvent

#: Tag of the no-edit examples made here.
TAG = "finished"


def completes_commit(example: Example) -> bool:
    """Whether the example's expected group holds the commit's last units (mined records say so in
    `source.split`): once it is typed, the commit has nothing left to do."""
    split = getattr(example.source, "split", None) if example.source else None
    if not isinstance(split, dict):
        return False
    try:
        return int(split["history"]) + int(split["expected"]) == int(split["units"])
    except (KeyError, TypeError, ValueError):
        return False


def _hunks_only(diff: str) -> str:
    """A unified diff without its `---`/`+++` file headers (the record's history-event form)."""
    lines = diff.splitlines(keepends=True)
    while lines and lines[0].startswith(("--- ", "+++ ")):
        lines.pop(0)
    return "".join(lines)


def finished_example(example: Example) -> Example | None:
    """The no-edit example after `example`'s expected edit has been typed: the edit joins the history, the
    cursor sits at its end, `expected` is `[]`. None when there is no single expected edit or it does not apply."""
    if len(example.expected) != 1:
        return None
    snap = example.snapshot
    try:
        after = P.apply(example.expected[0], snap.text, start_line=snap.start_line)
    except P.PatchError:
        return None
    if after == snap.text:
        return None
    prefix = 0
    limit = min(len(after), len(snap.text))
    while prefix < limit and after[prefix] == snap.text[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and after[-1 - suffix] == snap.text[-1 - suffix]:
        suffix += 1
    cursor = len(after) - suffix
    if cursor > 0 and after[cursor - 1] == "\n":
        cursor -= 1
    growth = len(after) - len(snap.text)
    start, end = snap.editable or (0, len(snap.text))
    editable = (min(start, cursor), max(end + growth, cursor))
    event = HistoryEvent(path=snap.path, old_path=snap.path, diff=_hunks_only(example.expected[0]))
    snapshot = snap.model_copy(update={"text": after, "cursor": cursor, "editable": editable,
                                       "history": [*snap.history, event], "diagnostics": [], "related": snap.related})
    source = example.source.model_copy(deep=True) if example.source else None
    if source is not None:
        source.tags = [*(source.tags or []), TAG]
    return example.model_copy(update={"id": f"{example.id}-{TAG}", "snapshot": snapshot, "expected": [],
                                      "expected_cursors": [], "locations": [], "source": source, "predictions": [], "checks": [],
                                      "scores": []})
