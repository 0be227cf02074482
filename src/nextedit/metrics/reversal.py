"""Reversal ratio: how much of a prediction undoes the user's recent edits (zed-ep.md 3.3)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import LCSseq

from nextedit import patch as P
from nextedit.metrics.edits import (
    REFINE_MAX_BYTES,
    REFINE_MAX_LINES,
    Edit,
    granular_edits,
    split_lines,
)

__all__ = ["Reversal", "reversal_from_history", "reversal_overlap", "reversal_ratio",
           "reversal_signature", "undo_history"]


def reversal_signature(events: int | None = 1) -> str:
    """Signature of reversal_ratio; `events` = how many recent events of the file (None: all)."""
    ev = "all" if events is None else ("last" if events == 1 else str(events))
    return (f"reversal:v1|events={ev}|diff=lcs_lines+tokens|refine={REFINE_MAX_BYTES}b/"
            f"{REFINE_MAX_LINES}l|extensions=chars")


@dataclass(frozen=True)
class Reversal:
    """Characters of the prediction that undo history: overwritten insertions + restored deletions."""

    reversed_additions: int
    restored_deletions: int
    total: int
    ratio: float
    signature: str = reversal_signature(1)


@functools.lru_cache(maxsize=256)
def _edits(old: str, new: str) -> tuple[Edit, ...]:
    """`granular_edits`, kept for the next call (last-event and all-events reversal share them)."""
    return tuple(granular_edits(old, new))


def reversal_overlap(original: str, current: str, predicted: str, *,
                     signature: str | None = None) -> Reversal:
    """Compare the user's edits `original -> current` with the prediction's `current -> predicted`.

    reversed_additions: chars of the prediction's old ranges overlapping text the user inserted;
    restored_deletions: LCS chars between text the user deleted and prediction text inserted at
    that place; total: chars of old plus new text over all prediction edits; ratio = (reversed
    + restored) / total, 0 when total is 0.
    """
    sig = signature or reversal_signature(1)
    pred = _edits(current, predicted)
    total = sum(len(e.old_text) + len(e.new_text) for e in pred)
    if not total or original == current:
        return Reversal(0, 0, total, 0.0, sig)
    hist = _edits(original, current)
    inserted = [(h.new_start, h.new_end) for h in hist if h.new_end > h.new_start]
    deleted = [(h.new_start, h.old_text) for h in hist if h.old_text]
    reversed_additions = restored = 0
    for e in pred:
        for s, t in inserted:
            overlap = min(e.old_end, t) - max(e.old_start, s)
            if overlap > 0:
                reversed_additions += overlap
        if e.new_text:
            for pos, text in deleted:
                if e.old_start <= pos < e.old_end or pos == e.old_start:
                    restored += int(LCSseq.similarity(text, e.new_text))
    return Reversal(reversed_additions, restored, total, (reversed_additions + restored) / total, sig)


def _field(event: Any, name: str, default: Any = None) -> Any:
    return event.get(name, default) if isinstance(event, dict) else getattr(event, name, default)


def _same_path(event_path: str | None, path: str) -> bool:
    if not event_path:
        return False
    return event_path == path or event_path.partition("/")[2] == path


def _n_rows(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


def _undo_in_place(current: str, diff: str, line0: int) -> str | None:
    """Fast path of `undo_history`: every hunk's new side sits exactly at its line number (or wholly
    outside the window); splice the old sides in. None when any hunk needs the general path."""
    try:
        hunks = [h for fp in P.parse(diff) for h in fp.hunks]
    except P.PatchError:
        return None
    lines = split_lines(current)
    n = len(lines)
    out = list(lines)
    last = None
    for h in reversed(hunks):
        new = h.new_lines
        row = (h.new_start - 1 if new else h.new_start) - line0
        end = row + len(new)
        if last is not None and end > last:
            return None  # hunks out of order or overlapping
        last = row
        if new and (end <= 0 or row >= n):
            continue  # wholly outside the excerpt
        if not new and not 0 <= row <= n:
            continue
        if row < 0 or end > n or lines[row:end] != new:
            return None
        out[row:end] = h.old_lines
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def undo_history(current: str, diff: str, *, start_line: int | None = None) -> str:
    """The text before a history diff, reconstructed from `current` (the text after it).

    With `start_line` (0-based file row of `current[0]`), only the parts of hunks inside the
    window of `current` are undone; without it the whole diff is. When the reversed diff does not
    apply as a whole, it is applied hunk by hunk, skipping hunks whose context is not found.
    """
    fast = _undo_in_place(current, diff, start_line or 0)
    if fast is not None:
        return fast
    try:
        undo = P.reverse(diff)
        if start_line is not None:
            undo = P.clip_to_window(undo, start_line, _n_rows(current))
        files = P.parse(undo)
    except P.PatchError:
        return current
    line0 = start_line or 0
    try:
        return P.apply(undo, current, start_line=line0)
    except P.PatchError:
        pass
    text = current
    for fp in files:
        for hunk in fp.hunks:
            try:
                text = P.apply(P.FilePatch(None, None, [hunk]).render(), text, start_line=line0)
            except P.PatchError:
                continue
    return text


def reversal_ratio(current: str, predicted: str, history: Sequence[Any], *, path: str,
                   start_line: int | None = None, events: int | None = 1) -> float:
    """The ratio of `reversal_from_history` (0..1)."""
    return reversal_from_history(current, predicted, history, path=path, start_line=start_line,
                                 events=events).ratio


def reversal_from_history(current: str, predicted: str, history: Sequence[Any], *, path: str,
                          start_line: int | None = None, events: int | None = 1) -> Reversal:
    """Reversal of the user's most recent edit(s) to `path` by the prediction `current -> predicted`.

    `history` is the record's `snapshot.history` (HistoryEvent objects or dicts, oldest first);
    events for other files are ignored (a path also matches after dropping its first component).
    `events=1` (Zed) undoes only the last event, and scores 0 when it was an accepted prediction
    or empty; `events=N` / `None` undoes the last N / all events of the file (newest first).
    """
    sig = reversal_signature(events)
    if current == predicted:  # no prediction edit: nothing can be reversed
        return Reversal(0, 0, 0, 0.0, sig)
    mine = [ev for ev in history if _same_path(_field(ev, "path"), path)]
    if events is not None:
        mine = mine[-events:]
    if not mine or (events == 1 and (_field(mine[-1], "predicted", False) or not _field(mine[-1], "diff"))):
        return reversal_overlap(current, current, predicted, signature=sig)
    original = current
    for ev in reversed(mine):
        if _field(ev, "predicted", False) or not _field(ev, "diff"):
            continue
        original = undo_history(original, _field(ev, "diff"), start_line=start_line)
    return reversal_overlap(original, current, predicted, signature=sig)
