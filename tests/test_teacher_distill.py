"""Distill: target choice (repaired, else passing teacher sample, else drop), alternatives, cleared fields."""

from __future__ import annotations

from nextedit import patch as P
from nextedit.record import Check, Example, HistoryEvent, Prediction, Snapshot
from nextedit.teacher.distill import choose_target
from nextedit.teacher.stages import DistillStage

PATH = "shop/cart.py"
TEXT = "def total(items):\n    return sum(i.price for i in items)\n"
EDIT_A = P.make(TEXT, TEXT.replace("sum(", "round(sum(").replace("items)\n", "items), 2)\n"), path=PATH)
EDIT_B = P.make(TEXT, TEXT.replace("i.price", "i.price * i.qty"), path=PATH)
EDIT_C = P.make(TEXT, TEXT.replace("items", "cart_items"), path=PATH)


def pred(provider: str, patch: str | None, *, sample: int = 0, error: str | None = None, **extra) -> Prediction:
    return Prediction(provider=provider, sample=sample, patch=patch, error=error, raw="r", cursor=3, **extra)


def example(preds: list[Prediction], failing: dict[int, str] | None = None) -> Example:
    checks = []
    for i in range(len(preds)):
        code = (failing or {}).get(i)
        checks.append(Check(prediction=i, code=code or "reversal", passed=code is None, message=""))
    return Example(id="x", snapshot=Snapshot(path=PATH, text=TEXT, cursor=0), predictions=preds, checks=checks,
                   expected=["old reference"])


def test_repaired_prediction_wins_over_passing_teacher_samples() -> None:
    ex = example([pred("teacher:m", EDIT_A), pred("teacher:m", EDIT_B, sample=1),
                  pred("repair:m", EDIT_C, repairs=0, round=1)], failing={0: "reversal"})
    d = choose_target(ex)
    assert (d.kind, d.target, d.alternatives) == ("repair", 2, [1])


def test_last_passing_round_is_chosen() -> None:
    ex = example([pred("teacher:m", EDIT_A), pred("repair:m", EDIT_B, repairs=0, round=1),
                  pred("repair:m", EDIT_C, repairs=0, round=2)], failing={0: "too_large", 1: "reversal"})
    assert choose_target(ex).target == 2


def test_first_passing_teacher_sample_without_repair() -> None:
    ex = example([pred("teacher:m", EDIT_A), pred("teacher:m", EDIT_B, sample=1),
                  pred("teacher:m", EDIT_B, sample=2), pred("teacher:m", EDIT_C, sample=3)], failing={0: "reversal"})
    d = choose_target(ex)
    assert (d.kind, d.target, d.alternatives) == ("teacher", 1, [3])  # sample 2 repeats sample 1's patch


def test_errors_and_other_providers_never_become_targets() -> None:
    ex = example([pred("teacher:m", None, error="unparseable"), pred("propagate", EDIT_A)])
    ex.checks = []
    d = choose_target(ex)
    assert d.kind == "dropped"


def test_no_edit_samples_are_not_alternatives_of_an_edit() -> None:
    ex = example([pred("teacher:m", EDIT_A), pred("teacher:m", "", sample=1)])
    assert choose_target(ex).alternatives == []


def test_stage_writes_expected_and_clears_working_fields() -> None:
    ex = example([pred("teacher:m", EDIT_A), pred("teacher:m", EDIT_B, sample=1),
                  pred("repair:m", EDIT_C, repairs=0, round=1)], failing={0: "reversal"})
    stage = DistillStage()
    out = stage.process(ex)
    assert out.expected == [EDIT_C, EDIT_B]
    assert out.expected_cursors == [3, 3]
    assert out.predictions == [] and out.checks == [] and out.scores == []
    assert out.distill == {"target": "repair", "provider": "repair:m", "sample": 0, "round": 1,
                           "alternatives": 1, "replaced_expected": ["old reference"]}
    assert stage.stats == {"kept": 1, "kept_repair": 1}
    kept = DistillStage({"keep_working": True}).process(example([pred("teacher:m", EDIT_A)]))
    assert len(kept.predictions) == 1 and kept.expected == [EDIT_A]


def test_no_edits_target_gives_empty_expected() -> None:
    stage = DistillStage()
    out = stage.process(example([pred("teacher:m", "")]))
    assert out.expected == [] and out.expected_cursors == []
    assert stage.stats["kept_no_edits"] == 1


def test_dropped_examples_are_counted_by_reason() -> None:
    stage = DistillStage()
    assert stage.process(example([pred("teacher:m", EDIT_A), pred("teacher:m", EDIT_B, sample=1)],
                                 failing={0: "reversal", 1: "too_large"})) is None
    assert stage.process(example([])) is None
    assert stage.stats == {"dropped": 2, "dropped:reversal": 1, "dropped:too_large": 1,
                           "dropped:no_teacher_prediction": 1}


def test_unchecked_predictions_are_checked_before_choosing() -> None:
    # The user just inserted "items" as the argument; this prediction deletes it again.
    text = "print(items)\n"
    snap = Snapshot(path=PATH, text=text, cursor=6,
                    history=[HistoryEvent(path=PATH, diff="@@ -1,1 +1,1 @@\n-print()\n+print(items)\n")])
    undo = P.make(text, "print()\n", path=PATH)
    ex = Example(id="u", snapshot=snap, predictions=[Prediction(provider="teacher:m", patch=undo)])
    stage = DistillStage()
    assert stage.process(ex) is None
    assert stage.stats["dropped:reversal"] == 1
