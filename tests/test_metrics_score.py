"""score_prediction: every metric against the best of several expected patches."""

from __future__ import annotations

from typing import Any

import pytest

from nextedit import patch as P
from nextedit.metrics import SIGNATURES, ScoreError, parse_signature, score_prediction
from nextedit.record import Example, parse_example

PATH = "inventory/stock.py"
TEXT = "def restock(item, qty):\n    item.count += amount\n    log(item)\n"
BEFORE = "def restock(item, amount):\n    item.count += amount\n    log(item)\n"


def patch(new: str, old: str = TEXT, start_line: int = 0) -> str:
    return P.make(old, new, path=PATH, start_line=start_line)


def example(expected: list[str], predictions: list[dict[str, Any]], **extra: Any) -> Example:
    snap = {"path": PATH, "text": TEXT, "cursor": 42,
            "history": [{"path": PATH, "diff": patch(TEXT, BEFORE)}]}
    snap.update(extra.pop("snapshot", {}))
    return parse_example({"id": "ex-1", "snapshot": snap, "expected": expected,
                          "predictions": [{"provider": "test", **p} for p in predictions], **extra})


FIX = TEXT.replace("+= amount", "+= qty")


def test_perfect_prediction() -> None:
    ex = example([patch(FIX)], [{"patch": patch(FIX), "cursor": 46}], expected_cursors=[46])
    s = score_prediction(ex, 0)
    v = s.values
    assert s.prediction == 0 and s.reference == 0
    assert v["patch_applies"] is True and v["delta_chrf"] == 100.0
    assert (v["exact_lines_tp"], v["exact_lines_fp"], v["exact_lines_fn"], v["exact_lines_f1"]) == (2, 0, 0, 1.0)
    assert v["kept_rate"] == v["recall_rate"] == 1.0
    assert v["reversal_ratio"] == 0.0 and v["braces_disbalance"] == 0
    assert v["wrong_editable_region"] is False and v["isolated_whitespace"] is False
    assert (v["inserted_tokens"], v["deleted_tokens"]) == (1, 1)
    assert (v["cursor_distance"], v["cursor_exact_match"]) == (0, True)
    assert (v["no_edit_expected"], v["no_edit_predicted"]) == (False, False)
    assert v["syntax_errors_before"] == v["syntax_errors_after"] == 0
    assert v["levenshtein_similarity"] == 1.0 and v["reference_disagreement"] is None
    assert set(s.signatures) == set(SIGNATURES)
    assert all(parse_signature(sig).name for sig in s.signatures.values())
    assert all(isinstance(x, (int, float, bool)) or x is None for x in v.values())


def test_best_reference_wins_and_disagreement_is_reported() -> None:
    other = TEXT.replace("+= amount", "+= qty  # fixed")
    ex = example([patch(other), patch(FIX)], [{"patch": patch(FIX)}])
    s = score_prediction(ex, 0)
    assert s.reference == 1 and s.values["delta_chrf"] == 100.0
    assert s.values["references"] == 2
    assert 0 < s.values["delta_chrf_worst_reference"] < 100
    assert 0 < s.values["reference_disagreement"] < 100


def test_ties_on_delta_chrf_are_broken_by_exact_lines_f1() -> None:
    spaced = TEXT.replace("+= amount", "+=  qty")  # same after whitespace collapse
    ex = example([patch(spaced), patch(FIX)], [{"patch": patch(FIX)}])
    s = score_prediction(ex, 0)
    assert s.reference == 1 and s.values["exact_lines_f1"] == 1.0
    assert s.values["reference_disagreement"] == 0.0


def test_no_expected_patch_means_no_edit_is_right() -> None:
    ex = example([], [{"patch": ""}, {"patch": patch(FIX)}])
    silent, spoke = score_prediction(ex, 0).values, score_prediction(ex, 1).values
    assert silent["no_edit_expected"] and silent["no_edit_predicted"] and silent["delta_chrf"] == 100.0
    assert silent["kept_rate"] == 1.0 and score_prediction(ex, 0).reference is None
    assert not spoke["no_edit_predicted"] and spoke["delta_chrf"] == 0.0


def test_empty_prediction_scores_zero_when_the_reference_edits() -> None:
    s = score_prediction(example([patch(FIX)], [{"patch": ""}]), 0).values
    assert s["delta_chrf"] == 0.0 and s["no_edit_predicted"] is True and s["kept_rate"] == 0.0


def test_patch_that_does_not_apply_scores_as_no_edit() -> None:
    bad = "@@ -1,1 +1,1 @@\n-not in the text\n+x\n"
    ex = example([patch(FIX)], [{"patch": bad}, {"patch": None, "error": "timeout"}])
    v = score_prediction(ex, 0).values
    assert v["patch_applies"] is False and v["delta_chrf"] == 0.0
    assert v["no_edit_predicted"] is False and v["wrong_editable_region"] is None
    e = score_prediction(ex, 1).values
    assert e["patch_applies"] is None and e["no_edit_predicted"] is None


def test_reverting_the_users_edit_is_a_reversal() -> None:
    ex = example([patch(FIX)], [{"patch": patch(BEFORE)}])
    v = score_prediction(ex, 0).values
    assert v["reversal_ratio"] == 1.0 and v["reversal_ratio_all_events"] == 1.0


def test_excerpt_with_start_line() -> None:
    ex = example([patch(FIX, start_line=30)], [{"patch": patch(FIX, start_line=30)}],
                 snapshot={"start_line": 30, "history": [{"path": PATH, "diff": patch(TEXT, BEFORE, 30)}]})
    assert score_prediction(ex, 0).values["delta_chrf"] == 100.0
    rev = example([], [{"patch": patch(BEFORE, start_line=30)}],
                  snapshot={"start_line": 30, "history": [{"path": PATH, "diff": patch(TEXT, BEFORE, 30)}]})
    assert score_prediction(rev, 0).values["reversal_ratio"] == 1.0


def test_syntax_errors_introduced_by_the_prediction() -> None:
    broken = TEXT.replace("log(item)", "log(item")
    v = score_prediction(example([patch(FIX)], [{"patch": patch(broken)}]), 0).values
    assert v["syntax_errors_before"] == 0 and v["syntax_errors_after"] >= 1
    assert v["syntax_errors_delta"] == v["syntax_errors_after"] and v["braces_disbalance"] == 1


def test_variant_is_recorded() -> None:
    s = score_prediction(example([patch(FIX)], [{"patch": patch(FIX)}]), 0, variant="v1")
    assert s.signatures["delta_chrf"] == "delta_chrf:v1|n=6|beta=2|ws=remove"
    assert s.values["delta_chrf_beta"] == 2.0


def test_expected_patches_that_do_not_apply_are_left_out() -> None:
    # A Zed alternative whose changes lie outside the excerpt: scored against the one that applies.
    outside = "@@ -9,1 +9,1 @@\n-    return item\n+    return None\n"
    other = TEXT.replace("+= amount", "+= qty  # fixed")
    ex = example([outside, patch(other), patch(FIX)], [{"patch": patch(FIX), "cursor": 46}],
                 expected_cursors=[None, 10, 46])
    s = score_prediction(ex, 0)
    assert s.reference == 2 and s.values["reference_index"] == 2 and s.values["references"] == 3
    assert s.values["delta_chrf"] == 100.0 and s.values["cursor_exact_match"] is True
    assert 0 < s.values["delta_chrf_worst_reference"] < 100
    only = score_prediction(example([patch(FIX), outside], [{"patch": ""}]), 0)
    assert only.reference == 0 and only.values["delta_chrf"] == 0.0
    with pytest.raises(ScoreError, match=r"ex-1: field expected\[0\]: hunk 1"):
        score_prediction(example([outside, outside], [{"patch": ""}]), 0)


def test_errors_name_the_field() -> None:
    ex = example(["@@ -1,1 +1,1 @@\n-nope\n+x\n"], [{"patch": ""}])
    with pytest.raises(ScoreError, match=r"ex-1: field expected\[0\]: hunk 1"):
        score_prediction(ex, 0)
    with pytest.raises(ScoreError, match=r"predictions\[3\]: no such prediction"):
        score_prediction(ex, 3)
