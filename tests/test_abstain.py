"""Abstention: the reversal guard, confidence thresholds in the local predictor, calibration on validation data,
the `abstain` stage and the quality table's no-edit precision/recall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eval_fixtures import dataset, no_edit_example, predict_and_score, rename_example

from nextedit import patch as patchlib
from nextedit.evaluate.quality import (
    REVERSAL_LIMITS,
    Abstention,
    choose_rules,
    compare_to_baselines,
    quality,
    replay_margins,
    verdict,
)
from nextedit.evaluate.stages import AbstainStage, ScoreStage
from nextedit.predictors.abstain import (
    CLEAN_CODE,
    REPEATED_LINE,
    WHITESPACE_ONLY,
    CalibrationError,
    Outcome,
    changes_only_whitespace,
    choose_threshold,
    clean_near_cursor,
    evaluate_threshold,
    guard,
    outcomes_of,
    prediction_reversal,
    repeated_neighbours,
    repeats_a_line,
    restore,
    withhold,
)
from nextedit.predictors.base import PredictorError
from nextedit.record import Diagnostic, Example, HistoryEvent, Prediction, Snapshot


def _undo_example() -> tuple[Example, str]:
    """The user just added a line; a prediction that deletes it again reverts the user."""
    before = "a = 1\nb = 2\n"
    text = "a = 1\nadded = 3\nb = 2\n"
    ex = Example(id="undo", snapshot=Snapshot(path="m.py", text=text, cursor=len("a = 1\nadded = 3")),
                 expected=[patchlib.make(text, text + "c = 4\n", path="m.py")])
    ex.snapshot.history = [HistoryEvent(path="m.py", diff=patchlib.make(before, text, path="m.py"))]
    return ex, patchlib.make(text, before, path="m.py")


def test_a_prediction_that_undoes_the_last_edit_is_withheld_by_max_reversal():
    ex, revert = _undo_example()
    assert prediction_reversal(ex, revert) == pytest.approx(1.0)
    pred = Prediction(provider="m", patch=revert, confidence=5.0)
    kept = guard(ex, pred, max_reversal=None)
    assert kept.patch == revert and kept.abstained is None
    withheld = guard(ex, pred, max_reversal=0.5)
    assert withheld.patch == "" and withheld.withheld == revert
    assert withheld.abstained.startswith("reverts the user's last edit")
    forward = patchlib.make(ex.snapshot.text, ex.snapshot.text + "c = 4\n", path="m.py")
    assert guard(ex, Prediction(provider="m", patch=forward), max_reversal=0.5).patch == forward
    # a heuristic's candidate edit is judged as its baseline is: the guard leaves it, a threshold does not
    heuristic = Prediction(provider="m", patch=revert, confidence=-1.0, candidate="propagate")
    assert guard(ex, heuristic, max_reversal=0.0).patch == revert
    assert guard(ex, heuristic, max_reversal=0.0, abstain_below=0.0).patch == ""


def _assert_withheld_unless_allowed(ex: Example, patch: str, reason: str, allow: str) -> None:
    """The model's own `patch` is withheld for `reason`, offered with the option `allow` on, and offered as a
    heuristic's candidate (as its baseline offers it)."""
    withheld = guard(ex, Prediction(provider="m", patch=patch))
    assert withheld.patch == "" and withheld.withheld == patch and withheld.abstained == reason
    assert guard(ex, Prediction(provider="m", patch=patch), **{allow: True}).patch == patch
    assert guard(ex, Prediction(provider="m", patch=patch, candidate="propagate")).patch == patch


def test_an_own_edit_that_changes_only_whitespace_is_withheld_unless_allowed():
    text = "def f(a):\n    return a.total  # the sum\n"
    ex = Example(id="ws", snapshot=Snapshot(path="m.py", text=text, cursor=0),
                 expected=[patchlib.make(text, text.replace("total", "amount"), path="m.py")])
    stray_blank = patchlib.make(text, text + "\n", path="m.py")
    line_break = patchlib.make(text, text.replace("  # the sum", "\n# the sum"), path="m.py")
    real = ex.expected[0]
    assert changes_only_whitespace(ex, stray_blank) and changes_only_whitespace(ex, line_break)
    assert not changes_only_whitespace(ex, real) and not changes_only_whitespace(ex, "")
    for patch in (stray_blank, line_break):
        _assert_withheld_unless_allowed(ex, patch, WHITESPACE_ONLY, "allow_whitespace_only")
    assert guard(ex, Prediction(provider="m", patch=real)).patch == real


def test_an_own_edit_that_repeats_a_line_is_withheld_unless_allowed():
    text = "from m import (\n    alpha,\n    beta,\n)\n\n\nx = alpha + beta\n}\n"
    ex = Example(id="rep", snapshot=Snapshot(path="m.py", text=text, cursor=0),
                 expected=[patchlib.make(text, text.replace("    beta,\n", "    beta,\n    gamma,\n"), path="m.py")])
    looped = patchlib.make(text, text.replace("    beta,\n", "    gamma,\n" * 4), path="m.py")
    typed_twice = patchlib.make(text, text.replace("x = alpha + beta\n", "x = alpha + beta\nx = alpha + beta\n"),
                                path="m.py")
    # lines without substance next to a copy, and a copy that is not a neighbour, are edits people make
    braces = patchlib.make(text, text + "}\n", path="m.py")
    apart = patchlib.make(text, text + "    alpha,\n", path="m.py")
    real = ex.expected[0]
    assert repeats_a_line(ex, looped) and repeats_a_line(ex, typed_twice)
    for patch in (braces, apart, real, ""):
        assert not repeats_a_line(ex, patch)
    for patch in (looped, typed_twice):
        _assert_withheld_unless_allowed(ex, patch, REPEATED_LINE, "allow_repeated_lines")
    assert guard(ex, Prediction(provider="m", patch=real)).patch == real


def test_a_file_that_already_repeats_a_line_may_keep_it():
    text = "a = compute()\na = compute()\nb = 1\n"
    ex = Example(id="had", snapshot=Snapshot(path="m.py", text=text, cursor=0), expected=[])
    edit = patchlib.make(text, text.replace("b = 1", "b = 2"), path="m.py")
    assert repeated_neighbours(text) == 1 and not repeats_a_line(ex, edit)
    assert guard(ex, Prediction(provider="m", patch=edit)).patch == edit


def _linted(path: str, diagnostics: list[Diagnostic]) -> tuple[Example, str]:
    """An example in `path` with the given diagnostics near the cursor, and an own edit of it."""
    text = "def total(items):\n    return sum(items)\n"
    ex = Example(id="lint", snapshot=Snapshot(path=path, text=text, cursor=len(text) - 1, diagnostics=diagnostics),
                 expected=[])
    return ex, patchlib.make(text, text + "\n\ndef mean(items):\n    return total(items) / len(items)\n", path=path)


def test_quiet_when_clean_withholds_own_edits_only_where_a_linted_file_has_no_diagnostics():
    undefined = Diagnostic(severity="error", message="undefined name 'itms'", code="F821", start_line=1, end_line=1)
    clean, edit = _linted("m.py", [])
    assert clean_near_cursor(clean)
    assert guard(clean, Prediction(provider="m", patch=edit)).patch == edit  # the rule is off by default
    quiet = guard(clean, Prediction(provider="m", patch=edit), quiet_when_clean=True)
    assert quiet.patch == "" and quiet.abstained == CLEAN_CODE and quiet.withheld == edit
    # a heuristic's candidate is offered as its baseline offers it
    assert guard(clean, Prediction(provider="m", patch=edit, candidate="propagate"), quiet_when_clean=True).patch
    # the linter shows the code mid-change: the own edit is offered
    mid, edit = _linted("m.py", [undefined])
    assert not clean_near_cursor(mid)
    assert guard(mid, Prediction(provider="m", patch=edit), quiet_when_clean=True).patch == edit
    # a language nextedit does not lint has no diagnostics to go by: never "clean"
    rust, edit = _linted("lib.rs", [])
    assert not clean_near_cursor(rust)
    assert guard(rust, Prediction(provider="m", patch=edit), quiet_when_clean=True).patch == edit


def test_threshold_withholds_only_less_confident_edits_and_restore_undoes_it():
    ex = rename_example(0)
    patch = ex.expected[0]
    sure = Prediction(provider="m", patch=patch, confidence=3.0)
    unsure = Prediction(provider="m", patch=patch, confidence=-1.0)
    assert guard(ex, sure, abstain_below=0.0).patch == patch
    low = guard(ex, unsure, abstain_below=0.0)
    assert low.patch == "" and "low confidence" in low.abstained
    assert restore(low).patch == patch and restore(low).abstained is None
    assert withhold(low, "again") is low  # already withheld: unchanged


def test_choose_threshold_prefers_no_edit_where_unsure_edits_are_wrong():
    # Confident edits are good (80), unsure ones are wrong (0) on examples where no edit was right (100).
    outcomes = ([Outcome(5.0, 80.0, 0.0, False)] * 4 + [Outcome(-2.0, 0.0, 100.0, True)] * 3
                + [Outcome(0.0, 100.0, 100.0, True)])
    best, tried = choose_threshold(outcomes)
    assert -2.0 < best.threshold <= 5.0
    assert best.mean == pytest.approx((4 * 80 + 3 * 100 + 100) / 8)
    never = evaluate_threshold(outcomes, float("-inf"))
    assert never.mean == pytest.approx((4 * 80 + 100) / 8) and never.withheld == 0
    assert best.no_edit_precision == 1.0 and best.no_edit_recall == 1.0
    assert any(c.threshold == float("-inf") for c in tried)


def test_choose_threshold_never_abstains_when_every_edit_helps():
    outcomes = [Outcome(c, 50.0, 0.0, False) for c in (-3.0, 0.5, 2.0)]
    best, _ = choose_threshold(outcomes)
    assert best.threshold == float("-inf") and best.withheld == 0


def _scored_with_confidence() -> list[Example]:
    out = []
    for ex in predict_and_score(dataset(3, 0, 3), providers=("propagate",)):
        ex.predictions = [p.model_copy(update={"confidence": 1.0 if p.patch else 0.0}) for p in ex.predictions]
        out.append(ex)
    return out


def test_outcomes_of_needs_confidence_and_unwithheld_predictions():
    examples = _scored_with_confidence()
    outs = outcomes_of(examples, "propagate")
    assert len(outs) == 6
    assert sum(o.no_edit_expected for o in outs) == 3
    bad = [ex.model_copy(deep=True) for ex in examples]
    for ex in bad:
        ex.predictions = [p.model_copy(update={"confidence": None}) for p in ex.predictions]
    if any(p.patch for ex in bad for p in ex.predictions):
        with pytest.raises(CalibrationError, match="confidence"):
            outcomes_of(bad, "propagate")
    with pytest.raises(CalibrationError, match="no scored predictions"):
        outcomes_of(examples, "nobody")


def test_abstain_stage_applies_and_undoes_a_threshold():
    examples = _scored_with_confidence()
    edited = [ex for ex in examples if any(p.patch for p in ex.predictions)]
    assert edited, "propagate should edit the rename examples"
    withholding = AbstainStage(AbstainStage.Config(provider="propagate", abstain_below=2.0))
    offering = AbstainStage(AbstainStage.Config(provider="propagate", abstain_below=None))
    for ex in edited:
        held = withholding.process(ex.model_copy(deep=True))
        assert all(p.patch == "" and p.abstained for p in held.predictions)
        assert held.scores == []
        rescored = ScoreStage().process(held.model_copy(deep=True))
        assert all(s.values["no_edit_predicted"] for s in rescored.scores)
        again = offering.process(held)
        assert [p.patch for p in again.predictions] == [p.patch for p in ex.predictions]


def test_abstain_stage_applies_the_clean_code_rule_to_recorded_own_edits():
    clean, edit = _linted("m.py", [])
    clean.predictions = [Prediction(provider="student", patch=edit), Prediction(provider="propagate", patch=edit)]
    stage = AbstainStage(AbstainStage.Config(provider="student", quiet_when_clean=True))
    held = stage.process(clean.model_copy(deep=True))
    assert [p.abstained for p in held.predictions] == [CLEAN_CODE, None]  # only the configured provider's
    offered = AbstainStage(AbstainStage.Config(provider="student")).process(held)
    assert [p.patch for p in offered.predictions] == [edit, edit]


def test_report_tables_count_withheld_edits_by_reason():
    from nextedit.evaluate.summary import summarize_examples
    from nextedit.recipe.report import provider_table, withheld_lines

    examples = _scored_with_confidence()
    edited = sum(1 for ex in examples for p in ex.predictions if p.patch)
    stage = AbstainStage(AbstainStage.Config(provider="propagate", abstain_below=2.0))
    held = [ScoreStage().process(stage.process(ex.model_copy(deep=True))) for ex in examples]
    rows = {r["provider"]: r for r in provider_table(summarize_examples(held, resamples=50), held)}
    assert rows["propagate"]["withheld"] == {"low confidence": edited}
    assert withheld_lines(list(rows.values())) == [
        f"propagate withheld {edited} of its edits as no edit: low confidence {edited}"]
    rows = provider_table(summarize_examples(examples, resamples=50), examples)  # nothing withheld: no line
    assert rows[0]["withheld"] == {} and withheld_lines(rows) == []


def test_quality_table_counts_no_edit_precision_recall_and_paired_difference():
    examples = predict_and_score(dataset(4, 2, 2), providers=("noop", "propagate"))
    table = quality(examples, resamples=50)
    noop, prop = table["noop"], table["propagate"]
    assert noop.examples == prop.examples == 8
    assert noop.no_edit_rate == 1.0 and noop.no_edit_recall == 1.0 and noop.no_edit_precision == 2 / 8
    assert prop.delta_chrf > noop.delta_chrf
    diffs = compare_to_baselines(table, "propagate", ["noop"], resamples=50)
    assert diffs["noop"]["difference"] == pytest.approx(prop.delta_chrf - noop.delta_chrf)
    assert table["propagate"].vs_best_baseline["baseline"] == "noop"
    assert verdict("propagate", diffs).startswith("propagate: ")


def test_quality_counts_parse_errors_as_zero_score():
    ex = no_edit_example(0)
    ex.predictions = [Prediction(provider="bad", raw="garbage", error="parse: nope")]
    table = quality([ex], resamples=10)
    assert table["bad"].parse_errors == 1 and table["bad"].delta_chrf == 0.0


def test_calibrate_command_writes_the_threshold_into_the_model_folder(tmp_path):
    from nextedit.jsonl import write_examples

    scored = tmp_path / "scored.jsonl"
    write_examples(scored, _scored_with_confidence())
    model = tmp_path / "model"
    model.mkdir()
    (model / "nextedit.json").write_text(json.dumps({"format": "zeta1"}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    run = subprocess.run([sys.executable, "-m", "nextedit", "calibrate", str(scored), "-p", "propagate", 
                          "--write", str(model)], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["predictions"] == 6
    meta = json.loads((model / "nextedit.json").read_text())
    assert "abstain_below" in meta and meta["abstain_below"] == result["abstain_below"]
    missing = subprocess.run([sys.executable, "-m", "nextedit", "calibrate", str(scored), "-p", "nobody"],
                             capture_output=True, text=True, env=env, check=False)
    assert missing.returncode == 2 and "no scored predictions" in missing.stderr


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("abstain") / "tiny")


def test_local_predictor_prefills_records_confidence_and_abstains_by_threshold(tiny):
    from nextedit.predictors import get_predictor

    ex = rename_example(0)
    base = {"format": "zeta1", "max_new_tokens": 24, "candidates": "none"}
    plain = get_predictor(f"local:{tiny}", **base).predict_sync(ex)[0]
    assert plain.raw.startswith("<|editable_region_start|>") and plain.confidence is None
    scored = get_predictor(f"local:{tiny}", confidence=True, **base).predict_sync(ex)[0]
    assert scored.raw == plain.raw and scored.patch == plain.patch
    assert scored.confidence is not None or not scored.patch
    never = get_predictor(f"local:{tiny}", abstain_below=float("-inf"), **base).predict_sync(ex)[0]
    assert never.patch == plain.patch and never.abstained is None
    if plain.patch:  # an untrained model may or may not edit; when it does, a high threshold withholds it
        always = get_predictor(f"local:{tiny}", abstain_below=1e9, **base).predict_sync(ex)[0]
        assert always.patch == "" and always.withheld == plain.patch and "low confidence" in always.abstained
    no_prefill = get_predictor(f"local:{tiny}", prefill=False, **base).predict_sync(ex)[0]
    assert no_prefill.usage.output_tokens > 0


def test_local_predictor_reads_calibrated_threshold_from_the_model_folder(tiny, tmp_path):
    import shutil

    from nextedit.predictors import get_predictor

    model = tmp_path / "model"
    shutil.copytree(tiny, model)
    (model / "nextedit.json").write_text(json.dumps({"format": "zeta1", "abstain_below": 1e9, "max_reversal": 0.5,
                                                     "quiet_when_clean": True}))
    p = get_predictor(f"local:{model}", max_new_tokens=8)
    assert p.abstain_below == 1e9 and p.max_reversal == 0.5 and p.confidence and p.quiet_when_clean
    off = get_predictor(f"local:{model}", max_new_tokens=8, abstain_below="none", max_reversal="off",
                        quiet_when_clean=False)
    assert off.abstain_below is None and off.max_reversal is None and not off.confidence and not off.quiet_when_clean
    with pytest.raises(PredictorError, match="quiet_when_clean must be true or false"):
        get_predictor(f"local:{model}", max_new_tokens=8, quiet_when_clean="yes")


def test_merge_predictions_adds_a_subset_providers_predictions_with_their_scores():
    from nextedit.evaluate.quality import merge_predictions

    main = predict_and_score(dataset(2, 0, 1), providers=("noop",))
    extra = predict_and_score(dataset(2, 0, 0)[:1], providers=("propagate",))
    merge_predictions(main, extra)
    first = main[0]
    assert [p.provider for p in first.predictions] == ["noop", "propagate"]
    assert sorted(s.prediction for s in first.scores) == [0, 1]
    assert all(len(ex.predictions) == 1 for ex in main[1:])
    table = quality(main, resamples=10)
    assert table["propagate"].examples == 1 and table["noop"].examples == 3


def test_local_predictor_offers_the_heuristic_candidate_the_model_scores_higher(tiny):
    from nextedit.predictors import get_predictor
    from nextedit.predictors.baselines import PropagatePredictor

    ex = rename_example(0)
    heuristic = PropagatePredictor().propose(ex)
    assert heuristic
    # One token without the prefilled start marker is no answer: unparseable, the candidate is all there is.
    clipped = {"format": "zeta1", "max_new_tokens": 1, "prefill": False}
    alone = get_predictor(f"local:{tiny}", abstain_below=float("-inf"), **clipped).predict_sync(ex)[0]
    assert alone.error is None and alone.candidate == "propagate" and alone.patch == heuristic
    assert alone.confidence is not None
    withheld = get_predictor(f"local:{tiny}", abstain_below=1e9, **clipped).predict_sync(ex)[0]
    assert withheld.patch == "" and withheld.withheld == heuristic and withheld.candidate == "propagate"
    off = get_predictor(f"local:{tiny}", candidates="none", **clipped).predict_sync(ex)[0]
    assert off.error and off.error.startswith("parse:") and off.patch is None and off.candidate is None

    # With a full answer (default candidate_margin 0), the offered one is the likelier of the model's own and
    # the candidate; with candidate_margin=inf the candidate goes first.
    full = {"format": "zeta1", "max_new_tokens": 24}
    own = get_predictor(f"local:{tiny}", candidates="none", confidence=True, **full).predict_sync(ex)[0]
    likelier = get_predictor(f"local:{tiny}", **full).predict_sync(ex)[0]
    assert likelier.raw == own.raw
    if likelier.candidate:
        assert likelier.patch == heuristic and (own.confidence is None or likelier.confidence >= own.confidence)
    else:
        assert likelier.patch == own.patch
    first = get_predictor(f"local:{tiny}", confidence=True, candidate_margin="inf", **full).predict_sync(ex)[0]
    assert first.raw == own.raw
    assert (first.candidate, first.patch) == (("propagate", heuristic) if own.patch != heuristic else (None, heuristic))
    assert first.confidence is not None
    # candidates first with no confidence to record: the model does not answer where the heuristic proposes an edit
    direct = get_predictor(f"local:{tiny}", candidate_margin="inf", **full).predict_sync(ex, samples=2)
    assert [(p.candidate, p.patch, p.raw, p.sample) for p in direct] == [("propagate", heuristic, None, 0),
                                                                        ("propagate", heuristic, None, 1)]
    assert direct[0].usage.output_tokens == 0 and direct[0].usage.input_tokens > 0
    quiet = no_edit_example(0)
    assert not PropagatePredictor().propose(quiet)
    answered = get_predictor(f"local:{tiny}", candidate_margin="inf", **full).predict_sync(quiet)[0]
    assert answered.raw is not None and answered.candidate is None and answered.usage.output_tokens > 0
    with pytest.raises(Exception, match="unknown candidate 'nope'"):
        get_predictor(f"local:{tiny}", candidates="nope", **full)
    with pytest.raises(Exception, match="candidate_margin must be a number >= 0"):
        get_predictor(f"local:{tiny}", candidate_margin=-1, **full)


def _long_rename(body: list[str]) -> Example:
    """The user renamed `amount` to `qty` in the signature of a long function (`body`: its lines)."""
    text = "def restock(item, qty):\n" + "".join(f"    {line}\n" for line in body)
    diff = (f"@@ -1,2 +1,2 @@\n-def restock(item, amount):\n+def restock(item, qty):\n     {body[0]}\n")
    return Example(id="long", snapshot=Snapshot(path="stock.py", text=text, cursor=20,
                                                history=[HistoryEvent(path="stock.py", diff=diff)]), expected=[])


def test_the_heuristic_candidate_is_offered_whole_beyond_the_models_window(tiny):
    from nextedit import patch as P
    from nextedit.predictors import get_predictor
    from nextedit.predictors.baselines import PropagatePredictor

    opts = {"format": "zeta1", "format_options": {"editable_tokens": 24, "context_tokens": 16}, "max_new_tokens": 8,
            "candidate_margin": "inf", "abstain_below": "none", "max_reversal": "none"}
    p = get_predictor(f"local:{tiny}", **opts)
    # 40 lines use `amount`; the model's window holds the first few, the heuristic's edit renames all of them
    inside = _long_rename([f"total{i} = amount + {i}" for i in range(40)])
    window = p.format.frame(inside, p.options, p.load()[1]).window.editable
    assert inside.snapshot.text.count("amount", window[1]) > 30
    pred = p.predict_sync(inside)[0]
    assert pred.candidate == "propagate" and pred.patch == PropagatePredictor().propose(inside)
    text = inside.snapshot.text
    assert P.apply(pred.patch, text) == text.replace("amount", "qty")
    # every use of `amount` lies below the window: the model weighs its unchanged window, the offer is the whole edit
    below = _long_rename([f"step{i} = {i}" for i in range(30)] + ["total = amount"])
    text = below.snapshot.text
    assert "amount" not in text[:p.format.frame(below, p.options, p.load()[1]).window.editable[1]]
    pred = p.predict_sync(below)[0]
    assert pred.candidate == "propagate" and P.apply(pred.patch, text) == text.replace("amount", "qty")
    off = get_predictor(f"local:{tiny}", **{**opts, "candidates": "none"}).predict_sync(below)[0]
    assert off.candidate is None and "total = amount" not in (off.patch or "")


def test_scored_answers_offer_a_candidate_within_the_margin():
    from nextedit.predictors.local import ScoredAnswers

    both = ScoredAnswers({"": ("own", None), "propagate": ("heuristic", None)}, {"": -3.0, "propagate": -7.0}, -5.0)
    assert both.choose() == "" and both.choose(4.0) == ""  # the own answer is 4 nats likelier: not within 4
    assert both.choose(4.5) == "propagate" and both.choose(float("inf")) == "propagate"
    assert both.confidence("") == 2.0 and both.confidence("propagate") == -2.0
    alone = ScoredAnswers({"propagate": ("heuristic", None)}, {"propagate": -7.0}, -5.0)
    assert alone.choose() == "propagate"  # no parseable own answer: the candidate is all there is


def test_score_answers_replays_a_recorded_prediction(tiny):
    from nextedit.predictors import get_predictor

    ex = rename_example(0)
    p = get_predictor(f"local:{tiny}", format="zeta1", max_new_tokens=24, confidence=True)
    pred = p.predict_sync(ex)[0]
    scored = p.score_answers(ex, pred.raw)
    assert scored is not None
    name = scored.choose(p.candidate_margin)
    assert (pred.candidate or "") == name and scored.answers[name][0] == (pred.patch or "")
    if pred.patch:
        assert pred.confidence == round(scored.confidence(name), 4)
    unparseable = p.score_answers(ex, "no markers at all")
    assert unparseable is None or "" not in unparseable.logprobs


def _scored_under_each_limit(ex: Example | list[tuple[Example, Prediction]], pred: Prediction | None = None,
                             margin: float = 0.0) -> dict[tuple[float, float | None], list[Example]]:
    pairs = ex if isinstance(ex, list) else [(ex, pred)]
    out: dict[tuple[float, float | None], list[Example]] = {}
    for limit in REVERSAL_LIMITS:
        stage = AbstainStage(AbstainStage.Config(provider="m", abstain_below=None, max_reversal=limit))
        out[(margin, limit)] = [ScoreStage().process(stage.process(e.model_copy(update={"predictions": [p]},
                                                                                 deep=True)))
                                for e, p in pairs]
    return out


def test_choose_rules_takes_the_strictest_reversal_guard_unless_a_looser_one_gains_significantly():
    ex, revert = _undo_example()
    # the expected edit goes forward: withholding the revert costs nothing, so the strictest guard wins the tie
    wrong = Prediction(provider="m", patch=revert, confidence=5.0)
    rules = choose_rules(_scored_under_each_limit(ex, wrong), student="m")
    assert rules == Abstention(threshold=None, max_reversal=0.0)
    # here undoing the last edit is what the user did next: only "no guard" keeps that edit, and it is chosen
    wanted = ex.model_copy(update={"expected": [revert]})
    rules = choose_rules(_scored_under_each_limit(wanted, wrong), student="m")
    assert rules.max_reversal is None
    # ... but one such example among eight that every limit scores alike is no evidence: the guard stays strict
    forward = Prediction(provider="m", patch=ex.expected[0], confidence=5.0)
    mixed = [(wanted, wrong)] + [(ex.model_copy(update={"id": f"fwd{i}"}), forward) for i in range(7)]
    assert choose_rules(_scored_under_each_limit(mixed), student="m").max_reversal == 0.0


def test_choose_rules_never_abstains_unless_a_threshold_gains_significantly_on_validation():
    ex, _ = _undo_example()
    forward = ex.expected[0]
    quiet = ex.model_copy(update={"id": "quiet", "expected": []})

    def pairs(n_sure: int, n_unsure_right: int, n_unsure_wrong: int) -> list[tuple[Example, Prediction]]:
        sure = [(ex.model_copy(update={"id": f"sure{i}"}), Prediction(provider="m", patch=forward, confidence=4.0))
                for i in range(n_sure)]
        right = [(ex.model_copy(update={"id": f"right{i}"}), Prediction(provider="m", patch=forward, confidence=-3.0))
                 for i in range(n_unsure_right)]
        wrong = [(quiet.model_copy(update={"id": f"wrong{i}"}), Prediction(provider="m", patch=forward,
                                                                          confidence=-3.0))
                 for i in range(n_unsure_wrong)]
        return sure + right + wrong

    def threshold(p: list[tuple[Example, Prediction]]) -> float | None:
        return choose_rules({(0.0, 0.0): _scored_under_each_limit(p)[(0.0, 0.0)]}, student="m").threshold

    # the edits the model is unsure of were wrong on 4 of 8 examples: withholding them gains, surely
    chosen = threshold(pairs(4, 0, 4))
    assert chosen is not None and -3.0 < chosen <= 4.0
    # one such example is no evidence: the student's answers stay as it gives them
    assert threshold(pairs(4, 0, 1)) is None
    # unsure edits that were right: never abstain
    assert threshold(pairs(2, 6, 0)) is None


def test_choose_rules_takes_the_candidate_margin_whose_answers_score_better_and_ties_to_candidates_first():
    ex, revert = _undo_example()
    forward = ex.expected[0]
    own_wrong = Prediction(provider="m", patch=revert, confidence=5.0)
    own_right = Prediction(provider="m", patch=forward, confidence=5.0)
    heuristic_right = Prediction(provider="m", patch=forward, confidence=5.0, candidate="propagate")
    heuristic_wrong = Prediction(provider="m", patch=revert, confidence=5.0, candidate="propagate")
    # margin 0 offered the model's wrong answer, margin inf the heuristic's right one: inf is chosen
    scored = {**_scored_under_each_limit(ex, own_wrong), **_scored_under_each_limit(ex, heuristic_right, float("inf"))}
    assert choose_rules(scored, student="m") == Abstention(threshold=None, max_reversal=0.0,
                                                          candidate_margin=float("inf"))
    # the heuristic was wrong and the model right: margin 0 gains on validation and replaces the prior
    scored = {**_scored_under_each_limit(ex, own_right), **_scored_under_each_limit(ex, heuristic_wrong, float("inf"))}
    assert choose_rules(scored, student="m").candidate_margin == 0.0
    # both margins offered the same answer: the prior (the heuristic's edit first) is kept
    tie = {**_scored_under_each_limit(ex, own_right), **_scored_under_each_limit(ex, own_right, float("inf"))}
    assert choose_rules(tie, student="m").candidate_margin == float("inf")


def test_replay_margins_redecides_recorded_answers_and_a_calibrated_margin_is_the_models_default(tiny, tmp_path):
    import json
    import shutil

    from nextedit.jsonl import read_examples, write_examples
    from nextedit.predictors import get_predictor
    from nextedit.predictors.baselines import PropagatePredictor
    from nextedit.train.export import METADATA_FILE

    ex = rename_example(0)
    opts = {"format": "zeta1", "max_new_tokens": 24, "confidence": True}
    own = get_predictor(f"local:{tiny}", label="student", candidate_margin=0, **opts).predict_sync(ex)[0]
    write_examples(tmp_path / "preds.jsonl", [ex.model_copy(update={"predictions": [own]})])
    replay_margins(tiny, tmp_path / "preds.jsonl", {0.0: tmp_path / "0.jsonl", float("inf"): tmp_path / "inf.jsonl"},
                   options=opts)
    [same] = list(read_examples(tmp_path / "0.jsonl"))
    assert same.predictions[0].patch == own.patch and same.predictions[0].confidence == own.confidence
    [replayed] = list(read_examples(tmp_path / "inf.jsonl"))
    heuristic = PropagatePredictor().propose(ex)
    assert replayed.predictions[0].patch == heuristic and replayed.predictions[0].raw == own.raw
    assert replayed.predictions[0].confidence is not None
    # what a margin of inf replays is what the model decides live with that margin in its nextedit.json
    calibrated = tmp_path / "calibrated"
    shutil.copytree(tiny, calibrated)
    meta_path = calibrated / METADATA_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta_path.write_text(json.dumps({**meta, "candidate_margin": "inf"}))
    live = get_predictor(f"local:{calibrated}", label="student", **opts)
    assert live.candidate_margin == float("inf")
    assert live.predict_sync(ex)[0].patch == heuristic
