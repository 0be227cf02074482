"""The pure parts of the editor behaviour: partial accept (next word / line on a shortest edit path),
the pacer (coalescing debounce, minimum pause, back-off) and the status texts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Indel

from nextedit.lsp.pacing import Pacer
from nextedit.lsp.partial import partial_edit, partial_text
from nextedit.lsp.settings import Settings
from nextedit.lsp.snapshot import Edit
from nextedit.lsp.status import describe

TEXT = st.text(alphabet="ab c_(\n", max_size=30)


@settings(max_examples=300, deadline=None)
@given(old=TEXT, new=TEXT, parts=st.lists(st.sampled_from(["word", "line"]), min_size=1, max_size=40))
def test_partial_accepts_stay_on_a_shortest_path_and_reach_the_prediction(old: str, new: str, parts: list[str]) -> None:
    current = old
    total = Indel.distance(old, new)
    for part in parts:
        nxt = partial_text(current, new, part)  # type: ignore[arg-type]
        assert Indel.distance(old, nxt) + Indel.distance(nxt, new) == total  # the rest stays offered
        assert nxt == new or Indel.distance(nxt, new) < Indel.distance(current, new)  # always progress
        current = nxt
    if len(parts) > len(new) + len(old):
        assert current == new


def test_next_word_and_next_line() -> None:
    assert partial_text("", "hello world", "word") == "hello"
    assert partial_text("hello", "hello world", "word") == "hello world"
    assert partial_text("a\n", "a\n    b = compute(x)\n    c = 2\n", "word") == "a\n    b"
    assert partial_text("a\n", "a\n    b = compute(x)\n    c = 2\n", "line") == "a\n    b = compute(x)\n"
    assert partial_text("width * height * width", "w * height * w", "word") == "w * height * width"
    text = "x = count + count\n"
    edit = partial_edit(text, Edit(4, 17, "acc + acc"), "word")
    assert text[:edit.start] + edit.text + text[edit.end:] == "x = acc + count\n" and edit.start >= 4


def test_pacer_coalesces_pauses_and_backs_off() -> None:
    pacer = Pacer(Settings(debounce_ms=30, max_debounce_ms=600, min_pause_ms=500, backoff_after=2, backoff_s=5,
                           backoff_max_s=12))
    for i in range(5):  # an editor sending its changes every 200 ms
        pacer.changed("a", 10.0 + 0.2 * i)
    assert abs(pacer.delay_s("a") - 0.25) < 1e-9 and pacer.delay_s("b") == 0.03
    assert abs(pacer.hold_s("a", 10.9) - 0.4) < 1e-9 and pacer.hold_s("a", 12.0) == 0.0
    pacer.changed("a", 20.0)  # a pause is not a typing gap
    assert abs(pacer.delay_s("a") - 0.25) < 1e-9
    pacer.rejected("replaced", 1.0)  # not the user's verdict
    pacer.rejected("typed", 1.0)
    assert not pacer.paused(1.0)
    pacer.rejected("cursor_moved", 2.0)
    assert pacer.paused(6.9) and not pacer.paused(7.0)
    pacer.rejected("dismissed", 8.0)  # doubles: 10 s
    assert pacer.paused(17.9) and not pacer.paused(18.0)
    pacer.rejected("typed", 20.0)  # would be 20 s, capped at 12
    assert pacer.paused(31.9) and not pacer.paused(32.0)
    pacer.accepted()
    assert not pacer.paused(21.0) and pacer.rejections == 0
    assert Pacer(Settings(coalesce=False, debounce_ms=30)).delay_s("a") == 0.03


def test_every_reason_reads_as_a_sentence() -> None:
    assert describe("excluded", "*.pem") == "no prediction: file excluded by pattern '*.pem': nothing is sent"
    assert describe("backoff", "3") == "no prediction: suggestions paused after 3 rejected predictions in a row"
    assert describe("some_new_code", "x") == "no prediction: some new code (x)"
