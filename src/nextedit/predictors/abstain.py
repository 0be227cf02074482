"""Abstention: withhold an edit the model is unsure of, one that undoes the user's last edit, one that changes
only whitespace or repeats a line, or (opt-in) its own edit where the linter finds the code near the cursor
clean, and choose the confidence threshold on validation data (a wrong edit costs the user more than no edit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from nextedit import patch as P
from nextedit.context.diagnose import LINTED_LANGUAGES
from nextedit.languages import language_name
from nextedit.metrics.reversal import reversal_ratio
from nextedit.mine.quality import whitespace_only
from nextedit.record import Example, Prediction

#: The reason prefix of an edit withheld by the confidence threshold (calibration needs those undone).
LOW_CONFIDENCE = "low confidence"
#: The reason of an edit withheld because it changes only whitespace.
WHITESPACE_ONLY = "changes only whitespace"
#: The reason of an edit withheld because it puts a line next to a copy of itself.
REPEATED_LINE = "repeats a line"
#: The reason of an own edit withheld because the linter reports nothing near the cursor (`quiet_when_clean`).
CLEAN_CODE = "code near the cursor is clean"


def reason_kind(reason: str) -> str:
    """A withholding reason without its figures ("low confidence (0.12 < 1.5)" -> "low confidence")."""
    return reason.split(" (", 1)[0]


def withhold(pred: Prediction, reason: str) -> Prediction:
    """The prediction turned into "no edit": empty patch, the reason, and the edit it would have offered."""
    if pred.abstained or not pred.patch:
        return pred
    return pred.model_copy(update={"patch": "", "cursor": None, "abstained": reason, "withheld": pred.patch})


def restore(pred: Prediction) -> Prediction:
    """The prediction as the model made it, before any abstention (`withhold` undone)."""
    if not pred.abstained:
        return pred
    return pred.model_copy(update={"patch": pred.withheld or "", "abstained": None, "withheld": None})


def prediction_reversal(example: Example, patch: str) -> float:
    """How much of `patch` undoes the user's most recent edit to the file (reversal ratio, 0..1); needs no
    reference, so a predictor can check it before offering the edit."""
    after = _applied(example, patch)
    return 0.0 if after is None else _reversal(example, after)


def _applied(example: Example, patch: str) -> str | None:
    """The example's file text after `patch` (None when there is no patch or it does not apply)."""
    if not patch:
        return None
    snap = example.snapshot
    try:
        return P.apply(patch, snap.text, start_line=snap.start_line)
    except P.PatchError:
        return None


def _reversal(example: Example, after: str) -> float:
    """How much going from the example's file text to `after` undoes the user's most recent edit."""
    snap = example.snapshot
    return reversal_ratio(snap.text, after, snap.history, path=snap.path, start_line=snap.start_line)


def changes_only_whitespace(example: Example, patch: str) -> bool:
    """Whether `patch` changes only whitespace in the example's file (indentation, blank lines, line breaks)."""
    after = _applied(example, patch)
    return after is not None and whitespace_only(example.snapshot.text.splitlines(), after.splitlines())


def repeated_neighbours(text: str) -> int:
    """How many lines of `text` equal the line before them, indentation aside; only lines of substance count (at
    least 4 characters besides whitespace, a letter or digit among them), so `}` under `}` or two blank lines do
    not."""
    lines = [line.strip() for line in text.splitlines()]
    return sum(1 for a, b in pairwise(lines)
               if a == b and len(a) >= 4 and any(c.isalnum() for c in a))


def repeats_a_line(example: Example, patch: str) -> bool:
    """Whether `patch` leaves more lines next to an identical copy than the file had: the loop a small model falls
    into (a line typed twice, an import list of one name over and over), and almost never an edit people make."""
    after = _applied(example, patch)
    return after is not None and repeated_neighbours(after) > repeated_neighbours(example.snapshot.text)


def clean_near_cursor(example: Example) -> bool:
    """Whether the example's file is in a language nextedit lints and the linter reported nothing near the cursor
    (`snapshot.diagnostics` empty: the diagnostics stage, or an editor that lints, found the code there finished).
    Files in other languages are never "clean": nothing says so."""
    snap = example.snapshot
    return language_name(snap.path) in LINTED_LANGUAGES and not snap.diagnostics


def guard(example: Example, pred: Prediction, *, abstain_below: float | None = None,
          max_reversal: float | None = None, allow_whitespace_only: bool = False,
          allow_repeated_lines: bool = False, quiet_when_clean: bool = False) -> Prediction:
    """Apply the abstention rules to one prediction (see `LocalPredictor` options of the same names). The reversal,
    whitespace, repeated-line and clean-code rules judge the model's own edits: a heuristic candidate's edit
    (`pred.candidate`) is the heuristic's, as its baseline offers it, so the student never undoes more of the user's
    work than that baseline does."""
    if pred.error or not pred.patch:
        return pred
    after = None if pred.candidate else _applied(example, pred.patch)  # the file after the model's own edit, once
    if after is not None:
        before = example.snapshot.text
        if not allow_whitespace_only and whitespace_only(before.splitlines(), after.splitlines()):
            return withhold(pred, WHITESPACE_ONLY)
        if not allow_repeated_lines and repeated_neighbours(after) > repeated_neighbours(before):
            return withhold(pred, REPEATED_LINE)
        if max_reversal is not None and (ratio := _reversal(example, after)) > max_reversal:
            return withhold(pred, f"reverts the user's last edit (reversal {ratio:.2f} > {max_reversal:g})")
        if quiet_when_clean and clean_near_cursor(example):
            return withhold(pred, CLEAN_CODE)
    if abstain_below is not None and pred.confidence is not None and pred.confidence < abstain_below:
        return withhold(pred, f"{LOW_CONFIDENCE} ({pred.confidence:.2f} < {abstain_below:g})")
    return pred


@dataclass(frozen=True)
class Outcome:
    """One validation prediction: its confidence, its score if offered, its score as "no edit", and whether
    no edit was the right answer."""

    confidence: float
    kept: float
    abstained: float
    no_edit_expected: bool

    def says_no_edit(self, threshold: float) -> bool:
        """Whether the answer is "no edit" under `threshold`: withheld for low confidence, or already no edit
        (confidence 0, kept == abstained)."""
        return self.confidence < threshold or self.kept == self.abstained and self.confidence == 0

    def score(self, threshold: float) -> float:
        """The prediction's score under `threshold`."""
        return self.abstained if self.says_no_edit(threshold) else self.kept


@dataclass(frozen=True)
class Candidate:
    """What a threshold does on the validation set."""

    threshold: float
    mean: float
    offered: int
    withheld: int
    no_edit_precision: float | None
    no_edit_recall: float | None


def evaluate_threshold(outcomes: list[Outcome], threshold: float) -> Candidate:
    """Mean score and no-edit precision/recall when predictions with confidence < threshold are withheld.

    A prediction that is already "no edit" (confidence 0, kept == abstained) counts as a no-edit answer."""
    total = 0.0
    offered = withheld = 0
    said_no = said_no_right = expected_no = 0
    for o in outcomes:
        abstain = o.says_no_edit(threshold)
        total += o.score(threshold)
        withheld += abstain and o.confidence < threshold
        offered += not abstain
        said_no += abstain
        said_no_right += abstain and o.no_edit_expected
        expected_no += o.no_edit_expected
    n = len(outcomes) or 1
    return Candidate(threshold, total / n, offered, withheld,
                     said_no_right / said_no if said_no else None,
                     said_no_right / expected_no if expected_no else None)


def choose_threshold(outcomes: Iterable[Outcome], *, min_gain: float = 0.0) -> tuple[Candidate, list[Candidate]]:
    """The threshold with the best mean validation score, and every candidate tried (one per distinct
    confidence, plus "never abstain"). Ties go to the lower threshold (fewer withheld edits); a threshold is
    only preferred over "never abstain" when it gains more than `min_gain` points."""
    items = list(outcomes)
    never = evaluate_threshold(items, float("-inf"))
    tried = [never]
    for t in sorted({o.confidence for o in items}):
        tried.append(evaluate_threshold(items, t))
        tried.append(evaluate_threshold(items, t + 1e-9))
    best = never
    for c in tried[1:]:
        if c.mean > best.mean + (min_gain if best is never else 0.0):
            best = c
    return best, tried


class CalibrationError(ValueError):
    """Validation predictions that cannot calibrate a threshold (none scored, no confidence recorded)."""


def outcomes_of(examples: Iterable[Example], provider: str) -> list[Outcome]:
    """One Outcome per scored prediction of `provider` (predictions made with `confidence` on).

    Edits withheld by another rule (the reversal guard) count as "no edit" answers. Raises CalibrationError
    when a prediction with an edit has no confidence, or was withheld by a confidence threshold (calibrate on
    predictions made without one)."""
    out: list[Outcome] = []
    for ex in examples:
        by_index = {s.prediction: s for s in ex.scores}
        for i, pred in enumerate(ex.predictions):
            if pred.provider != provider or pred.error or i not in by_index:
                continue
            if pred.abstained and pred.abstained.startswith(LOW_CONFIDENCE):
                raise CalibrationError(f"example {ex.id}: field predictions[{i}].abstained: this prediction was "
                                       "already withheld; calibrate on predictions made without abstain_below")
            values = by_index[i].values
            kept = float(values.get("delta_chrf") or 0.0)
            no_edit_expected = bool(values.get("no_edit_expected"))
            if not pred.patch:
                out.append(Outcome(0.0, kept, kept, no_edit_expected))
                continue
            if pred.confidence is None:
                raise CalibrationError(f"example {ex.id}: field predictions[{i}].confidence: missing; predict "
                                       "with --option confidence=true")
            out.append(Outcome(pred.confidence, kept, 100.0 if no_edit_expected else 0.0, no_edit_expected))
    if not out:
        raise CalibrationError(f"no scored predictions of provider {provider!r}")
    return out
