"""Every deterministic check of teacher predictions, failing and passing, and the checks stage."""

from __future__ import annotations

import pytest

from nextedit import patch as P
from nextedit.metrics import reversal_ratio
from nextedit.record import Check, Example, HistoryEvent, Prediction, Snapshot
from nextedit.teacher.checks import CODES, ChecksConfig, check_prediction
from nextedit.teacher.prompt import MARK_END, MARK_START
from nextedit.teacher.stages import ChecksStage

PATH = "app/calc.py"


def example(text: str, new_text: str | None, *, history: list[str] = (), editable=None, cursor: int = 0,
            raw: str | None = None, error: str | None = None) -> Example:
    """One example with one teacher prediction turning `text` into `new_text`."""
    snap = Snapshot(path=PATH, text=text, cursor=cursor, editable=editable,
                    history=[HistoryEvent(path=PATH, diff=d) for d in history])
    patch = None if new_text is None else P.make(text, new_text, path=PATH)
    if raw is None and new_text is not None:
        start, end = snap.editable
        raw = f"`````\n{MARK_START}\n{new_text[start:len(new_text) - (len(text) - end)]}{MARK_END}\n`````"
    pred = Prediction(provider="teacher:test:m", raw=raw, patch=patch, error=error)
    return Example(id="e", snapshot=snap, predictions=[pred])


def results(ex: Example, **cfg) -> dict[str, Check]:
    return {c.code: c for c in check_prediction(ex, 0, ChecksConfig(**cfg))}


def failures(ex: Example, **cfg) -> set[str]:
    return {code for code, c in results(ex, **cfg).items() if not c.passed}


GOOD_TEXT = "def area(w, h):\n    return w * h\n\n\ndef volume(w, h, d):\n    return area(w, h)\n"


def test_a_good_prediction_passes_every_check() -> None:
    ex = example(GOOD_TEXT, GOOD_TEXT.replace("area(w, h)\n", "area(w, h) * d\n"))
    got = results(ex)
    assert not [c for c in got.values() if not c.passed]
    assert {"region_malformed", "outside_region", "wrong_region", "sentinel_leak", "whitespace_only",
            "isolated_whitespace", "too_large", "too_small", "reversal", "brace_imbalance",
            "syntax_errors"} == set(got)
    assert set(got) <= set(CODES)


# ----------------------------------------------------------------- reversal (zed-ep.md 3.3 worked cases)

def test_reversal_deleting_the_line_the_user_just_inserted() -> None:
    text = "line a\nnew line\nline b\n"
    hist = "@@ -1,2 +1,3 @@\n line a\n+new line\n line b\n"
    ex = example(text, "line a\nline b\n", history=[hist])
    assert reversal_ratio(text, "line a\nline b\n", ex.snapshot.history, path=PATH) == pytest.approx(1.0)
    check = results(ex)["reversal"]
    assert not check.passed and "reversal ratio 1.00" in check.message


def test_reversal_overwriting_the_word_the_user_just_wrote() -> None:
    text = "the slow brown fox\n"
    hist = "@@ -1,1 +1,1 @@\n-the quick brown fox\n+the slow brown fox\n"
    ex = example(text, "the fast brown fox\n", history=[hist])
    assert reversal_ratio(text, "the fast brown fox\n", ex.snapshot.history, path=PATH) == pytest.approx(0.5)
    assert "reversal" in failures(ex)  # 0.5 is at the default limit
    assert "reversal" not in failures(ex, max_reversal_ratio=0.6)


def test_completing_what_the_user_typed_is_no_reversal() -> None:
    text = "fn main() {\n    epr\n}\n"
    hist = "@@ -1,3 +1,3 @@\n fn main() {\n-    \n+    epr\n }\n"
    new = "fn main() {\n    eprintln!()\n}\n"
    ex = example(text, new, history=[hist])
    assert reversal_ratio(text, new, ex.snapshot.history, path=PATH) == 0.0
    check = results(ex)["reversal"]
    assert check.passed and "reversal ratio 0.00" in check.message


# ------------------------------------------------------------------------------------------ region

def test_unparseable_prediction_is_a_parse_error() -> None:
    ex = example(GOOD_TEXT, None, raw="I think the user wants...", error="unparseable answer: no markers")
    got = check_prediction(ex, 0)
    assert [(c.code, c.passed) for c in got] == [("parse_error", False)]
    assert "no markers" in got[0].message


def test_missing_end_marker_is_a_malformed_region() -> None:
    new = GOOD_TEXT.replace("area(w, h)\n", "area(w, h) * d\n")
    ex = example(GOOD_TEXT, new, raw=f"`````\n{MARK_START}\n{new}")
    check = results(ex)["region_malformed"]
    assert not check.passed and "no end marker" in check.message


def test_edit_outside_the_editable_region() -> None:
    region = (GOOD_TEXT.index("def volume"), len(GOOD_TEXT))
    ex = example(GOOD_TEXT, GOOD_TEXT.replace("return w * h", "return h * w"), editable=region, cursor=region[0],
                 raw="whatever")
    ex.predictions[0].raw = None  # the patch came from elsewhere; only the region matters here
    assert "outside_region" in failures(ex)
    inside = example(GOOD_TEXT, GOOD_TEXT.replace("area(w, h)\n", "area(w, h) * d\n"), editable=region,
                     cursor=region[0])
    assert "outside_region" not in failures(inside)


def test_patch_that_does_not_apply_is_outside_the_region() -> None:
    ex = example(GOOD_TEXT, GOOD_TEXT.replace("area(w, h)\n", "area(w, h) * d\n"))
    ex.predictions[0].patch = "@@ -1,1 +1,1 @@\n-no such line\n+x\n"
    check = results(ex)["outside_region"]
    assert not check.passed and "context not found" in check.message


def test_deleting_the_first_lines_of_the_region_is_a_wrong_region() -> None:
    text = "a = 1\nb = 2\nc = 3\nd = 4\n"
    assert "wrong_region" in failures(example(text, "d = 4\n"))
    assert "wrong_region" not in failures(example(text, "a = 1\nb = 2\nc = 3\nd = 5\n"))


# ------------------------------------------------------------------------------------ size and shape

def test_too_large_by_token_count_and_by_share_of_the_region() -> None:
    text = "x = 1\n"
    big = text + "".join(f"value_{i} = compute({i}, {i + 1})\n" for i in range(20))
    check = results(example(text, big))["too_large"]
    assert not check.passed and "tokens inserted" in check.message
    # Rewriting most of a 40+ token region fails on the share even below the token limit.
    region = "".join(f"a{i} = {i}\n" for i in range(12))
    rewritten = "".join(f"b{i} = {i + 1}\n" for i in range(12))
    share = results(example(region, rewritten), max_changed_tokens=1000, max_region_share=0.4)["too_large"]
    assert not share.passed and "47% of the region's 72 tokens" in share.message
    assert results(example(region, rewritten), max_changed_tokens=1000)["too_large"].passed  # default 80%
    assert "too_large" not in failures(example(region, region.replace("a3 = 3", "a3 = 4")))


def test_too_small_with_a_minimum() -> None:
    ex = example(GOOD_TEXT, GOOD_TEXT.replace("area(w, h)\n", "area(w, h) * d\n"))
    assert "too_small" not in failures(ex)
    check = results(ex, min_changed_tokens=3)["too_small"]
    assert not check.passed and "2 non-whitespace tokens changed" in check.message


def test_rewriting_the_region_unchanged_is_a_no_op_but_no_edits_passes() -> None:
    raw = f"`````\n{MARK_START}\n{GOOD_TEXT}{MARK_END}\n`````"
    no_op = example(GOOD_TEXT, GOOD_TEXT, raw=raw)
    no_op.predictions[0].patch = ""
    assert [(c.code, c.passed) for c in check_prediction(no_op, 0)][-1] == ("no_op", False)
    no_edits = example(GOOD_TEXT, GOOD_TEXT, raw="Nothing to change.\n```\nNO_EDITS\n```")
    no_edits.predictions[0].patch = ""
    assert results(no_edits)["no_edits"].passed
    assert not results(no_edits, allow_no_edits=False)["no_edits"].passed


def test_whitespace_only_change() -> None:
    text = "if x:\n    y = 1\n"
    assert "whitespace_only" in failures(example(text, "if x:\n        y = 1\n"))
    assert "whitespace_only" not in failures(example(text, "if x:\n    y = 2\n"))


def test_isolated_blank_line_change() -> None:
    text = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
    new = "a = 10\nb = 2\nc = 3\nd = 4\n\ne = 5\n"  # a real change, and a stray blank line further down
    assert "isolated_whitespace" in failures(example(text, new))
    assert "isolated_whitespace" not in failures(example(text, "a = 10\nb = 2\nc = 3\nd = 4\ne = 5\n"))


def test_brace_imbalance_increase() -> None:
    text = "total = compute(a, b)\n"
    check = results(example(text, "total = compute(a, b\n"))["brace_imbalance"]
    assert not check.passed and "grows by 1" in check.message
    assert "brace_imbalance" not in failures(example(text, "total = compute(a, b, c)\n"))


def test_syntax_errors_introduced() -> None:
    text = "def f(a):\n    return a\n"
    check = results(example(text, "def f(a:\n    return a\n"))["syntax_errors"]
    assert not check.passed and "syntax errors 0 -> " in check.message
    assert results(example(text, "def f(a, b):\n    return a + b\n"))["syntax_errors"].passed


def test_no_grammar_skips_the_syntax_check() -> None:
    ex = example("x\n", "y\n")
    ex.snapshot.path = "notes.unknownext"
    assert "syntax_errors" not in results(ex)


def test_sentinel_leak_unless_the_original_had_it() -> None:
    text = "status = 'ok'\n"
    check = results(example(text, "status = 'ok'\nNO_EDITS\n"))["sentinel_leak"]
    assert not check.passed and "NO_EDITS" in check.message
    assert "sentinel_leak" in failures(example(text, "status = '<SECRET_AWS_KEY_1>'\n"))
    assert "sentinel_leak" in failures(example(text, f"status = 'ok'  # {MARK_END}\n"))
    had = "SENTINEL = 'NO_EDITS'\n"
    assert "sentinel_leak" not in failures(example(had, "SENTINEL = 'NO_EDITS'\nOTHER = 1\n"))


# ------------------------------------------------------------------------------------------ stage

def test_checks_stage_replaces_its_own_checks_and_keeps_judge_checks() -> None:
    ex = example(GOOD_TEXT, GOOD_TEXT.replace("area(w, h)\n", "area(w, h) * d\n"))
    ex.predictions.append(Prediction(provider="noop", patch=""))
    ex.checks = [Check(prediction=0, code="too_large", passed=False, message="stale"),
                 Check(prediction=0, code="judge_reverts", passed=False, message="judge")]
    stage = ChecksStage({"min_changed_tokens": 1})
    out = stage.process(ex)
    codes = [(c.code, c.passed) for c in out.checks if c.prediction == 0]
    assert ("judge_reverts", False) in codes and ("too_large", False) not in codes
    assert not any(c.prediction == 1 for c in out.checks)  # other providers are not checked
    assert stage.stats["passed"] == 1


def test_other_models_are_checked_on_their_patch_not_their_raw_text() -> None:
    student = "<|file_sep|>updated/geometry.py\ndef area(w, h):\n    return w * h * 2\n"  # a sweep-style answer
    ex = example(GOOD_TEXT, GOOD_TEXT.replace("return w * h\n", "return w * h * 2\n"), raw=student)
    ex.predictions[0].provider = "local:student"
    assert "parse_error" not in failures(ex) and "outside_region" in results(ex)
    ex.predictions[0].provider = "teacher:test:m"  # the same text read as a teacher answer does not parse
    assert "parse_error" in failures(ex)
