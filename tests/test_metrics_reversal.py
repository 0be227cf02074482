"""Reversal ratio (zed-ep.md 3.3): the worked cases, history filtering and windowed undo."""

from __future__ import annotations

import pytest

from nextedit import patch as P
from nextedit.metrics import (
    granular_edits,
    reversal_from_history,
    reversal_overlap,
    reversal_ratio,
    undo_history,
)
from nextedit.record import HistoryEvent


def test_prediction_deleting_the_inserted_line_is_a_full_reversal() -> None:
    r = reversal_overlap("a\nb\n", "a\nnew line\nb\n", "a\nb\n")
    assert (r.reversed_additions, r.restored_deletions, r.total, r.ratio) == (9, 0, 9, 1.0)


def test_overwriting_the_users_word_is_half_a_reversal() -> None:
    r = reversal_overlap("the quick brown fox", "the slow brown fox", "the fast brown fox")
    assert (r.reversed_additions, r.total, r.ratio) == (4, 8, 0.5)


def test_completing_what_the_user_typed_is_no_reversal() -> None:
    r = reversal_overlap("fn main() {\n    \n}\n", "fn main() {\n    epr\n}\n", "fn main() {\n    eprintln!()\n}\n")
    assert (r.reversed_additions, r.restored_deletions, r.total, r.ratio) == (0, 0, 8, 0.0)


def test_restoring_deleted_text_counts() -> None:
    r = reversal_overlap("x = compute(a, b)\n", "x = compute(a)\n", "x = compute(a, b)\n")
    assert r.restored_deletions == 3 and r.ratio == 1.0


def test_no_prediction_edit_gives_zero() -> None:
    assert reversal_overlap("a", "b", "b").ratio == 0.0


def test_granular_edits_split_pure_extensions_into_insertions() -> None:
    edits = granular_edits("    epr\n", "    eprintln!()\n")
    assert [(e.old_text, e.new_text) for e in edits] == [("", "intln!()")]
    assert [(e.old_text, e.new_text) for e in granular_edits("a quick b", "a slow b")] == [("quick", "slow")]


def _event(old: str, new: str, path: str = "src/a.py", **kw: object) -> HistoryEvent:
    return HistoryEvent(path=path, diff=P.make(old, new, path=path, start_line=kw.pop("start_line", 0)), **kw)  # type: ignore[arg-type]


def test_history_last_event_for_the_path() -> None:
    before, current = "a\nb\n", "a\nnew line\nb\n"
    hist = [_event(before, current)]
    assert reversal_ratio(current, before, hist, path="src/a.py") == 1.0
    # An accepted prediction as the last event, or an event on another file, is not reversed.
    assert reversal_ratio(current, before, [_event(before, current, predicted=True)], path="src/a.py") == 0.0
    assert reversal_ratio(current, before, [_event(before, current, path="src/b.py")], path="src/a.py") == 0.0
    # The event path may carry a worktree root as first component.
    assert reversal_ratio(current, before, [_event(before, current, path="proj/src/a.py")], path="src/a.py") == 1.0
    # Dicts work as well as HistoryEvent objects.
    assert reversal_ratio(current, before, [hist[0].model_dump()], path="src/a.py") == 1.0


def test_only_the_last_event_counts_unless_asked_for_more() -> None:
    v0, v1, v2 = "a\nb\n", "a\nX\nb\n", "a\nX\nb\nY\n"
    hist = [_event(v0, v1), _event(v1, v2)]
    # The prediction undoes the older event (removes X): invisible with events=1.
    pred = "a\nb\nY\n"
    assert reversal_ratio(v2, pred, hist, path="src/a.py") == 0.0
    full = reversal_from_history(v2, pred, hist, path="src/a.py", events=None)
    assert full.ratio == 1.0 and full.signature.startswith("reversal:v1|events=all")


def test_windowed_undo_keeps_only_hunks_inside_the_excerpt() -> None:
    full = "".join(f"line {i}\n" for i in range(40))
    after = full.replace("line 5\n", "line 5 changed\n").replace("line 30\n", "line 30 changed\n")
    diff = P.make(full, after, path="f.py")
    excerpt = "".join(after.splitlines(True)[20:35])  # rows 20..34 of the file
    restored = undo_history(excerpt, diff, start_line=20)
    assert restored == "".join(full.splitlines(True)[20:35])
    r = reversal_from_history(excerpt, restored, [HistoryEvent(path="f.py", diff=diff)], path="f.py", start_line=20)
    assert r.ratio == pytest.approx(1.0)


def test_undo_skips_hunks_that_do_not_apply() -> None:
    diff = "@@ -1,1 +1,1 @@\n-zzz\n+qqq\n"
    assert undo_history("abc\n", diff) == "abc\n"
    assert undo_history("abc\n", "not a diff at all\n") == "abc\n"
