"""Tests for the reference settle tracker with simulated edit streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit.settle.tracker import SettleTracker

DOC = "line one\nline two\nline three\nline four\nline five\n"


class Buffer:
    """A document plus a tracker, fed the same edits (what an editor plugin does)."""

    def __init__(self, text: str = DOC, **kw: float) -> None:
        self.text = text
        self.tracker = SettleTracker(**kw)

    def track(self, rid: str, start: int, end: int, now: float) -> None:
        self.tracker.track(rid, "a.py", start, end, self.text[start:end], now)

    def edit(self, start: int, end: int, new: str, now: float) -> None:
        self.tracker.edit("a.py", start, end, new, now)
        self.text = self.text[:start] + new + self.text[end:]


def region_of(doc: str, line: str) -> tuple[int, int]:
    i = doc.index(line)
    return i, i + len(line)


def test_quiet_region_settles_after_quiet_period_with_edits_inside():
    b = Buffer()
    s, e = region_of(DOC, "line two\nline three\n")
    b.track("r1", s, e, now=0.0)
    b.edit(s + 5, s + 8, "2", now=3.0)  # "line two" -> "line 2"
    assert b.tracker.poll(12.9) == []  # quiet only 9.9 s since the edit
    settled = b.tracker.poll(13.0)
    assert [(r.request_id, r.text, r.edits) for r in settled] == [("r1", "line 2\nline three\n", 1)]
    assert settled[0].quiet_s == pytest.approx(10.0)
    assert b.tracker.poll(100.0) == [] and len(b.tracker) == 0  # settled once only


def test_edits_outside_the_region_do_not_reset_the_quiet_clock():
    b = Buffer()
    s, e = region_of(DOC, "line three\n")
    b.track("r", s, e, now=0.0)
    b.edit(len(b.text), len(b.text), "tail\n", now=5.0)  # below
    b.edit(0, 4, "LINE", now=8.0)  # above, same length
    [r] = b.tracker.poll(10.0)
    assert r.text == "line three\n" and r.edits == 0


def test_region_moves_with_edits_above_it():
    b = Buffer()
    s, e = region_of(DOC, "line four\n")
    b.track("r", s, e, now=0.0)
    b.edit(0, 0, "# header\n# more\n", now=1.0)  # grows the document above
    b.edit(len("# header\n# more\n"), len("# header\n# more\nline one\n"), "", now=2.0)  # deletes above
    region = b.tracker.region("r")
    assert region is not None
    assert b.text[region.start:region.end] == "line four\n"
    # An edit inside the moved region lands in it.
    b.edit(region.start + 5, region.start + 9, "4", now=3.0)
    [r] = b.tracker.poll(13.0)
    assert r.text == "line 4\n" and b.text[r.start:r.end] == "line 4\n"


def test_burst_of_typing_keeps_the_region_pending_until_it_stops():
    b = Buffer()
    s, e = region_of(DOC, "line two\n")
    b.track("r", s, e, now=0.0)
    pos = s + len("line two")
    for i, ch in enumerate("abcdefghij"):  # one keystroke every 2 s for 20 s
        b.edit(pos + i, pos + i, ch, now=2.0 * i)
        assert b.tracker.poll(2.0 * i + 1.0) == []
    assert b.tracker.next_poll(19.0) == pytest.approx(28.0)
    assert b.tracker.poll(27.9) == []
    [r] = b.tracker.poll(28.0)
    assert r.text == "line twoabcdefghij\n" and r.edits == 10


def test_ttl_expiry_drops_a_region_that_never_goes_quiet():
    b = Buffer(quiet_s=10.0, ttl_s=60.0)
    s, e = region_of(DOC, "line two\n")
    b.track("r", s, e, now=0.0)
    for t in range(0, 60, 5):  # an edit every 5 s inside the region for a minute
        b.edit(s, s, "x", now=float(t))
    result = b.tracker.poll_all(60.0)
    assert result.settled == [] and [(d.request_id, d.reason) for d in result.dropped] == [("r", "ttl")]
    assert "r" not in b.tracker


def test_quiet_reached_before_ttl_settles_even_when_polled_late():
    b = Buffer(quiet_s=10.0, ttl_s=60.0)
    s, e = region_of(DOC, "line two\n")
    b.track("r", s, e, now=0.0)
    b.edit(s, s, "x", now=45.0)  # quiet from 45 s: settled at 55 s, before the TTL
    [r] = b.tracker.poll(500.0)  # the plugin was asleep; the region still settled in time
    assert r.text == "xline two\n"
    b.track("q", s, e + 1, now=500.0)
    b.edit(s, s, "y", now=555.0)  # would settle at 565 s, after the TTL at 560 s
    assert b.tracker.poll_all(600.0).dropped[0].reason == "ttl"


def test_overlapping_edit_grows_and_shrinks_the_region():
    b = Buffer()
    s, e = region_of(DOC, "line two\nline three\n")
    b.track("r", s, e, now=0.0)
    # Replace from the middle of "line one" to the middle of "line two": the region grows upwards.
    b.edit(s - 4, s + 4, "ONE\nLINE", now=1.0)
    region = b.tracker.region("r")
    assert region is not None and region.text == "ONE\nLINE two\nline three\n"
    assert b.text[region.start:region.end] == region.text
    # Delete across its end: it shrinks.
    b.edit(region.end - 6, region.end + 5, "", now=2.0)
    region = b.tracker.region("r")
    assert region is not None and b.text[region.start:region.end] == region.text == "ONE\nLINE two\nline "


def test_edge_insertions_count_as_inside_and_other_paths_are_ignored():
    b = Buffer()
    s, e = region_of(DOC, "line two\n")
    b.track("r", s, e, now=0.0)
    b.edit(e, e, "new line\n", now=4.0)  # typed right after the region
    b.tracker.edit("other.py", s, e, "zzz", now=9.0)  # another file: ignored
    assert b.tracker.poll(13.9) == []
    [r] = b.tracker.poll(14.0)
    assert r.text == "line two\nnew line\n"


def test_forget_max_chars_and_bad_input():
    b = Buffer(quiet_s=1.0)
    b.tracker.max_chars = 12
    b.track("a", 0, 9, now=0.0)
    b.track("b", 9, 18, now=0.0)
    b.tracker.forget("a")
    b.edit(9, 9, "a very long insertion\n", now=0.5)
    result = b.tracker.poll_all(2.0)
    assert result.settled == [] and [(d.request_id, d.reason) for d in result.dropped] == [("b", "too_large")]
    with pytest.raises(ValueError, match="does not match"):
        b.tracker.track("c", "a.py", 0, 5, "abc", now=0.0)
    b.track("d", 0, 3, now=0.0)
    b.tracker.forget_path("a.py")
    assert len(b.tracker) == 0 and b.tracker.next_poll(0.0) is None


edits = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30), st.text("ab\n", max_size=8),
                           st.floats(0, 4)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(edits=edits, lo=st.integers(0, 40), span=st.integers(0, 20))
def test_region_text_always_equals_the_document_slice(edits, lo, span):
    b = Buffer(DOC * 3, quiet_s=5.0, ttl_s=1e9)
    lo = min(lo, len(b.text))
    hi = min(lo + span, len(b.text))
    b.track("r", lo, hi, now=0.0)
    now = 0.0
    last_touch = 0.0
    for pos, length, new, dt in edits:
        now += dt
        start = min(pos, len(b.text))
        end = min(start + length, len(b.text))
        region = b.tracker.region("r")
        if region is None:
            break
        if region.overlaps(start, end):
            last_touch = now
        b.edit(start, end, new, now)
        region = b.tracker.region("r")
        assert region is not None and b.text[region.start:region.end] == region.text
        settled = b.tracker.poll(now)
        if settled:
            assert now - last_touch >= 5.0 and settled[0].text == region.text
            break


def test_a_held_region_waits_for_the_decision_and_flush_settles_everything() -> None:
    tracker = SettleTracker(quiet_s=10, ttl_s=300)
    tracker.track("held", "a.py", 0, 5, "hello", now=0)
    tracker.track("free", "a.py", 10, 15, "world", now=0)
    tracker.hold("held")
    assert [r.request_id for r in tracker.poll(now=11)] == ["free"]
    assert tracker.poll(now=400) == [] and "held" in tracker  # neither settles nor expires while held
    assert tracker.next_poll(now=400) is None
    tracker.release("held", now=500)
    assert tracker.poll(now=505) == []
    tracker.edit("a.py", 0, 5, "HELLO", now=506)
    settled = tracker.poll(now=517)
    assert [(r.request_id, r.text) for r in settled] == [("held", "HELLO")]
    tracker.track("a", "a.py", 0, 1, "x", now=600)
    tracker.track("b", "b.py", 0, 1, "y", now=600)
    tracker.hold("b")
    flushed = tracker.flush(now=601)
    assert sorted((r.request_id, r.quiet_s) for r in flushed.settled) == [("a", 1.0), ("b", 1.0)] and not len(tracker)
