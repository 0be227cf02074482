"""Tests for the predictor registry and the noop / propagate baselines."""

from __future__ import annotations

import asyncio

import pytest

from nextedit import patch as patchlib
from nextedit.predictors import (
    PREDICTORS,
    Predictor,
    PredictorError,
    get_predictor,
    parse_provider,
)
from nextedit.predictors.baselines import (
    Replacement,
    changed_subword,
    edit_scope,
    propagate_text,
    replacements_in_edit,
)
from nextedit.record import Example, HistoryEvent, Prediction, Snapshot

RENAME = "@@ -1,3 +1,3 @@\n-def restock(item, amount):\n+def restock(item, qty):\n     item.count += amount\n     log(item)\n"
RESTOCK = "def restock(item, qty):\n    item.count += amount\n    log(item, amount)\n"


def example(text: str, diff: str | None, *, cursor: int = 0, editable: tuple[int, int] | None = None,
            path: str = "stock.py", start_line: int = 0) -> Example:
    history = [HistoryEvent(path=path, diff=diff)] if diff else []
    return Example(id="t", snapshot=Snapshot(path=path, text=text, cursor=cursor, editable=editable,
                                             history=history, start_line=start_line))


def apply_prediction(ex: Example, pred: Prediction) -> str:
    return patchlib.apply(pred.patch or "", ex.snapshot.text, start_line=ex.snapshot.start_line)


def test_provider_strings_split_on_the_first_colon() -> None:
    assert parse_provider("noop") == ("noop", None)
    assert parse_provider("openai-compatible:http://h:8000/v1") == ("openai-compatible", "http://h:8000/v1")
    assert get_predictor("propagate").name == "propagate"
    assert {"noop", "propagate"} <= set(PREDICTORS)


def test_unknown_provider_and_stray_argument_are_one_line_errors() -> None:
    with pytest.raises(PredictorError, match="unknown provider 'nope'; known: .*noop"):
        get_predictor("nope:x")
    with pytest.raises(PredictorError, match="takes no argument"):
        get_predictor("noop:whatever")


def test_noop_predicts_no_edit_for_each_sample() -> None:
    preds = get_predictor("noop").predict(example(RESTOCK, RENAME), samples=3)
    assert [p.sample for p in preds] == [0, 1, 2]
    assert all(p.patch == "" and p.provider == "noop" for p in preds)


def test_replacements_come_from_a_token_level_diff() -> None:
    assert replacements_in_edit(RENAME) == [Replacement("amount", "qty")]
    two = "@@ -1 +1 @@\n-f(amount, price)\n+f(qty, cost)\n"
    assert replacements_in_edit(two) == [Replacement("amount", "qty"), Replacement("price", "cost")]
    # insertions, keyword swaps, numbers and ambiguous renames propagate nothing
    assert replacements_in_edit("@@ -1 +1 @@\n-f(a)\n+f(a, b)\n") == []
    assert replacements_in_edit("@@ -1 +1 @@\n-if x:\n+while x:\n") == []
    assert replacements_in_edit("@@ -1 +1 @@\n-x = 1\n+x = 2\n") == []
    assert replacements_in_edit("@@ -1,2 +1,2 @@\n-a = n\n-b = n\n+a = m\n+b = k\n") == []


def test_a_name_still_written_as_often_as_before_is_not_a_rename() -> None:
    # a new name introduced beside the old one: `held` is rebound, not renamed to `stage`
    split = "@@ -1 +1,2 @@\n-held = build(cfg).run(x)\n+stage = build(cfg)\n+held = stage.run(x)\n"
    assert replacements_in_edit(split) == []
    text = "stage = build(cfg)\nheld = stage.run(x)\nassert held.ok\n"
    assert get_predictor("propagate").predict(example(text, split))[0].patch == ""
    # a rename in progress on a line that still holds the old name once more is still a rename
    assert replacements_in_edit("@@ -1 +1 @@\n-f(bar, bar)\n+f(baz, bar)\n") == [Replacement("bar", "baz")]


def test_propagate_finishes_a_rename_inside_the_editable_region() -> None:
    ex = example(RESTOCK, RENAME, cursor=20)
    (pred,) = get_predictor("propagate").predict(ex)
    assert apply_prediction(ex, pred) == "def restock(item, qty):\n    item.count += qty\n    log(item, qty)\n"


def test_propagate_leaves_text_outside_the_editable_region_and_partial_words_alone() -> None:
    text = "def restock(item, qty):\n    item.count += amount\n    amounts = amount\n"
    region_end = text.index("    amounts")
    ex = example(text, RENAME, cursor=20, editable=(0, region_end))
    (pred,) = get_predictor("propagate").predict(ex)
    after = apply_prediction(ex, pred)
    assert after == "def restock(item, qty):\n    item.count += qty\n    amounts = amount\n"


def test_propagate_without_history_or_rename_predicts_no_edit() -> None:
    assert get_predictor("propagate").predict(example(RESTOCK, None))[0].patch == ""
    assert get_predictor("propagate").predict(example(RESTOCK, "@@ -1 +1,2 @@\n x\n+y\n"))[0].patch == ""


def test_partial_rename_propagates_the_changed_subword_keeping_case() -> None:
    diff = ("@@ -358,2 +358,2 @@\n-def test_session_cookie_httponly(app, client):\n"
            "+def test_session_cookie_secur(app, client):\n     app.config[\"SESSION_COOKIE_HTTPONLY\"] = True\n")
    text = ('def test_session_cookie_secur(app, client):\n    app.config["SESSION_COOKIE_HTTPONLY"] = True\n'
            '    assert "httponly" in cookie\n')
    ex = example(text, diff, cursor=29, start_line=357, path="tests/test_basic.py")
    (pred,) = get_predictor("propagate").predict(ex)
    assert pred.patch.startswith("--- a/tests/test_basic.py")
    assert apply_prediction(ex, pred) == ('def test_session_cookie_secur(app, client):\n'
                                          '    app.config["SESSION_COOKIE_SECUR"] = True\n'
                                          '    assert "secur" in cookie\n')


def test_camel_case_subword_rename_stays_in_the_edited_block() -> None:
    rep = Replacement("fetchUserName", "fetchUserTitle", line="function fetchUserTitle(u) {", file_line=5)
    assert changed_subword(rep) == Replacement("Name", "Title")
    text = ("function showName(u) {\n  return u.name;\n}\n\n"
            "function fetchUserTitle(u) {\n  const userName = u.NAME + name;\n  return userName;\n}\n"
            "log(name);\n")
    assert propagate_text(text, [rep]) == text.replace(
        "  const userName = u.NAME + name;\n  return userName;", "  const userTitle = u.TITLE + title;\n  return userTitle;")
    # the edited line not found in the text: the speculative sub-word step does nothing
    assert propagate_text(text, [Replacement("fetchUserName", "fetchUserTitle")]) == text
    # whole-identifier occurrences win over sub-word propagation, and are replaced everywhere
    assert propagate_text("fetchUserName(); userName", [rep]) == "fetchUserTitle(); userName"
    # short or keyword sub-words are never propagated on their own
    assert changed_subword(Replacement("user_id", "user_key")) is None


def test_edit_scope_by_indentation() -> None:
    lines = ["def a():", "    x = 1", "", "    return x", "", "def b():", "    pass"]
    assert edit_scope(lines, 0) == (0, 3)  # the block the edited line opens
    assert edit_scope(lines, 1) == (0, 3)  # the enclosing block of an edited body line
    assert edit_scope(["x = 1", "y = 2"], 1) == (0, 1)  # top level: everything
    assert edit_scope(["fn f() {", "  g();", "}", "h();"], 0) == (0, 2)  # closing bracket included


def test_predict_async_accepts_sync_and_async_predictors() -> None:
    class Slow(Predictor):
        scheme = "slow"

        async def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
            await asyncio.sleep(0)
            return [Prediction(provider=self.name, sample=i, patch="") for i in range(samples)]

    ex = example(RESTOCK, RENAME)
    assert len(asyncio.run(Slow().predict_async(ex, samples=2))) == 2
    assert len(asyncio.run(get_predictor("noop").predict_async(ex))) == 1
