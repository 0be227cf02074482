"""Student formats: parse(render(example).target) reproduces expected[0] for every format, on the Zed eval
cases and on generated examples (hypothesis); refusals happen only for the documented reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers
from zed_samples import EVALS, SAMPLES, needs_samples

from nextedit.formats import FORMATS, FormatError, FormatOptions, get_format
from nextedit.patch import PatchError, apply, make, split_lines, to_region
from nextedit.record import Example, parse_example
from nextedit.sources.zed import read_zed_file

NAMES = list(FORMATS)


def _after(example: Example, patch: str) -> str:
    snap = example.snapshot
    return apply(patch, snap.text, start_line=snap.start_line)


def _assert_round_trip(name: str, example: Example, options: FormatOptions | None = None,
                       tokenizer: object = None) -> None:
    fmt = get_format(name)
    rendered = fmt.render(example, options, tokenizer)
    assert rendered.target is not None and rendered.target.endswith(fmt.end_token)
    shown = rendered.messages[-1]["content"] if rendered.messages else rendered.prompt
    assert shown.count(fmt.cursor_token) == 1
    parsed = fmt.parse(rendered.target, example, options, tokenizer)
    assert _after(example, parsed.patch) == _after(example, example.expected[0])
    cursor = example.expected_cursors[0] if example.expected_cursors else None
    ed0, ed1 = rendered.editable
    grown = len(_after(example, example.expected[0])) - len(example.snapshot.text)
    if cursor is not None and not ed0 <= cursor <= ed1 + grown:
        cursor = None  # a cursor outside the editable window is not shown in the target
    if name == "seed-multi-region" and _after(example, example.expected[0]) == example.snapshot.text:
        assert parsed.cursor is None  # a no-edit answer carries no cursor
    else:
        assert parsed.cursor == cursor
    # A stop-stripping server leaves the end token out: the answer still parses the same way.
    stripped = fmt.parse(rendered.target.removesuffix(fmt.end_token), example, options, tokenizer)
    assert stripped == parsed


def _zed_cases() -> list[tuple[str, int]]:
    cases = []
    for path in SAMPLES:
        ex = next(read_zed_file(path))
        outside = ex.zed.get("expected_outside_excerpt", []) if ex.zed else []
        cases += [(path.stem, i) for i in range(len(ex.expected)) if i not in outside]
    return cases


@needs_samples
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_on_every_zed_eval_alternative(name: str) -> None:
    cases = _zed_cases()
    assert len(cases) >= 40  # 20 evals, most with several alternatives
    for stem, i in cases:
        ex = next(read_zed_file(EVALS / f"{stem}.md"))
        cursors = [ex.expected_cursors[i]] if ex.expected_cursors else []
        one = ex.model_copy(update={"expected": [ex.expected[i]], "expected_cursors": cursors})
        _assert_round_trip(name, one)


@needs_samples
def test_zed_expected_outside_the_excerpt_is_refused_with_the_reason() -> None:
    ex = next(read_zed_file(EVALS / "vscode--add-async-and-await.md"))
    for name in NAMES:
        with pytest.raises(FormatError, match="expected\\[0\\] does not apply"):
            get_format(name).render(ex)


def _word_tokenizer(words: list[str]) -> Tokenizer:
    """A real (word-level) tokenizer: budgets then count words and punctuation instead of bytes / 3."""
    vocab = {"[UNK]": 0}
    for word in " ".join(words).split():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


LINES = ["def f(x):", "    return x", "", "}", "    if a:", "        b = 1", "x = [1, 2]", "    é = '中文'",
         "class A:", "    pass", "  // note", "end"]
WORDS = _word_tokenizer(LINES)


@st.composite
def examples(draw: st.DrawFn) -> tuple[Example, FormatOptions, Tokenizer | None]:
    line = st.one_of(st.sampled_from(LINES), st.text(alphabet="ab (){}=+.é\t", max_size=25))
    lines = draw(st.lists(line, min_size=1, max_size=45))
    final_newline = draw(st.booleans())
    text = "\n".join(lines) + ("\n" if final_newline else "") or "x\n"
    rows = split_lines(text)
    starts = [0]
    for r in rows:
        starts.append(starts[-1] + len(r))
    # The snapshot's editable region: whole lines around the cursor.
    e0 = draw(st.integers(0, len(rows) - 1))
    e1 = draw(st.integers(e0 + 1, len(rows)))
    cursor_row = draw(st.integers(e0, e1 - 1))
    cursor = starts[cursor_row] + draw(st.integers(0, len(rows[cursor_row].rstrip("\n"))))
    # The expected edit: replace a few lines near the cursor (may reach outside any window).
    i = draw(st.integers(max(cursor_row - 4, 0), min(cursor_row + 4, len(rows))))
    j = draw(st.integers(i, min(i + 3, len(rows))))
    new_lines = draw(st.lists(line, max_size=3))
    new_text = "".join(rows[:i]) + "".join(x + "\n" for x in new_lines) + "".join(rows[j:])
    start_line = draw(st.integers(0, 3000))
    path = "pkg/mod.py"
    expected = make(text, new_text, path=path, start_line=start_line)
    cursors: list[int | None] = []
    if draw(st.booleans()):
        changed_end = len(new_text) - (len(text) - starts[j])
        cursors = [draw(st.integers(starts[i], max(starts[i], changed_end)))]
    history_old = text.replace("x", "y", 1)
    data = {
        "id": "gen",
        "snapshot": {
            "path": path, "text": text, "start_line": start_line, "cursor": cursor,
            "editable": [starts[e0], starts[e1]],
            "history": [{"path": path, "diff": make(history_old, text, path=path, start_line=start_line)}]
            if history_old != text else [],
            "related": [{"path": "pkg/other.py", "start_line": 3, "text": "def helper():\n    pass\n"}],
            "diagnostics": [{"severity": "error", "message": "bad", "start_line": start_line,
                             "end_line": start_line}],
        },
        "expected": [expected],
        "expected_cursors": cursors,
    }
    options = FormatOptions(editable_tokens=draw(st.sampled_from([350, 12, 40])),
                            context_tokens=draw(st.sampled_from([0, 30, 1024])),
                            history_events=draw(st.integers(0, 2)),
                            diagnostics=draw(st.booleans()))
    return parse_example(data), options, draw(st.sampled_from([None, WORDS]))


def _changes_outside(example: Example, editable: tuple[int, int]) -> bool:
    snap = example.snapshot
    try:
        to_region(example.expected[0], snap.text, editable, start_line=snap.start_line)
    except PatchError:
        return True
    return False


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=examples())
def test_round_trip_on_generated_examples(name: str, case: tuple[Example, FormatOptions, Tokenizer | None]) -> None:
    example, options, tokenizer = case
    fmt = get_format(name)
    try:
        fmt.render(example, options, tokenizer)
    except FormatError as exc:
        reason = str(exc)
        if "outside the editable window" in reason:
            window = fmt.frame(example, options, tokenizer).window
            assert _changes_outside(example, window.editable)
            return
        assert "cursor line does not fit" in reason, reason
        return
    _assert_round_trip(name, example, options, tokenizer)


def test_round_trip_on_examples_mined_from_git(tmp_path: Path) -> None:
    """Examples mined from a small scripted repository (history, cursor, editable region chosen by the miner)."""
    from _mine_fixtures import scripted_repo

    from nextedit.jsonl import read_examples
    from nextedit.mine.config import MineConfig
    from nextedit.mine.miner import mine

    repo, _ = scripted_repo(tmp_path / "shop")
    mine(repo.path, tmp_path / "mined.jsonl", MineConfig(samples_per_commit=4, seed=3), progress=False)
    mined = [ex for ex in read_examples(tmp_path / "mined.jsonl") if ex.expected]
    assert len(mined) >= 10
    for ex in mined:
        for name in NAMES:
            _assert_round_trip(name, ex)
