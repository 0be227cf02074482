"""Score one prediction of an example with every metric, against its best expected patch."""

from __future__ import annotations

import functools
from typing import Any

from nextedit import patch as P
from nextedit.languages import language_name
from nextedit.metrics.chrf import VARIANTS, delta_chrf
from nextedit.metrics.kept import KEPT_RATE_SIGNATURE, kept_rate
from nextedit.metrics.lines import EXACT_LINES_SIGNATURE, exact_lines
from nextedit.metrics.location import LOCATION_SIGNATURE, location_values
from nextedit.metrics.noedit import NO_EDIT_SIGNATURE
from nextedit.metrics.reversal import reversal_from_history, reversal_signature
from nextedit.metrics.similarity import (
    LEVENSHTEIN_SIGNATURE,
    levenshtein_similarity,
    region_after,
)
from nextedit.metrics.structure import (
    BRACES_SIGNATURE,
    CURSOR_SIGNATURE,
    ISOLATED_WHITESPACE_SIGNATURE,
    TOKEN_CHANGES_SIGNATURE,
    WRONG_REGION_SIGNATURE,
    braces_disbalance_delta,
    cursor_distance,
    isolated_whitespace_changes,
    token_changes,
    wrong_editable_region,
)
from nextedit.metrics.syntax import SYNTAX_SIGNATURE, syntax_errors_around
from nextedit.record import Example, Score

__all__ = ["SCORE_VERSION", "ScoreError", "reference_signature", "score_prediction", "signatures"]

SCORE_VERSION = "1"


class ScoreError(ValueError):
    """An example that cannot be scored (an expected patch that does not apply, a bad index)."""


def reference_signature(variant: str = "v3") -> str:
    """How the best reference is chosen and how reference disagreement is measured."""
    return f"reference:v1|best=delta_chrf:{variant},exact_lines_f1|disagreement=100-mean_pairwise_delta_chrf"


def signatures(variant: str = "v3") -> dict[str, str]:
    """Signature of every metric family `score_prediction` reports, keyed by family name."""
    return {
        "delta_chrf": VARIANTS[variant].signature,
        "exact_lines": EXACT_LINES_SIGNATURE,
        "reversal": reversal_signature(1),
        "reversal_all": reversal_signature(None),
        "kept_rate": KEPT_RATE_SIGNATURE,
        "braces": BRACES_SIGNATURE,
        "wrong_editable_region": WRONG_REGION_SIGNATURE,
        "isolated_whitespace": ISOLATED_WHITESPACE_SIGNATURE,
        "token_changes": TOKEN_CHANGES_SIGNATURE,
        "cursor": CURSOR_SIGNATURE,
        "syntax_errors": SYNTAX_SIGNATURE,
        "levenshtein": LEVENSHTEIN_SIGNATURE,
        "no_edit": NO_EDIT_SIGNATURE,
        "location": LOCATION_SIGNATURE,
        "reference": reference_signature(variant),
        "score": f"score:v{SCORE_VERSION}|texts=snapshot.text|failed_patch=original",
    }


_language = functools.lru_cache(maxsize=256)(language_name)


@functools.lru_cache(maxsize=2048)
def _parse(patch: str) -> list[P.FilePatch]:
    """`patch.parse`, kept for the next use (applying, then the structure metrics); read-only."""
    return P.parse(patch)


@functools.lru_cache(maxsize=2048)
def _apply(patch: str, text: str, start_line: int) -> str:
    return P.apply_parsed(_parse(patch), text, start_line=start_line)


@functools.lru_cache(maxsize=256)
def _disagreement(original: str, texts: tuple[str, ...], variant: str) -> float | None:
    """100 - mean delta-chrF over ordered pairs of distinct references; None below 2 references."""
    if len(texts) < 2:
        return None
    scores = [delta_chrf(original, a, b, variant=variant).score
              for i, a in enumerate(texts) for j, b in enumerate(texts) if i != j]
    return 100.0 - sum(scores) / len(scores)


def score_prediction(example: Example, index: int, *, variant: str = "v3") -> Score:
    """Every metric for `example.predictions[index]`, against the best expected patch.

    Texts (zed-ep.md 3.0): original = snapshot.text; expected_i = expected[i] applied (no
    expected patch: expected = original); actual = the prediction's patch applied, or original
    when it has none or it fails to apply (`patch_applies` false). The best reference has the
    highest delta-chrF, ties broken by exact-lines F1, then by lower index. Expected patches that
    do not apply to the snapshot are left out of the choice (Zed alternatives whose changes lie
    outside the excerpt); `reference_index` is still an index into `expected`.
    Raises ScoreError when `index` is out of range or no expected patch applies.
    """
    if not 0 <= index < len(example.predictions):
        raise ScoreError(f"example {example.id}: field predictions[{index}]: no such prediction "
                         f"({len(example.predictions)} present)")
    if variant not in VARIANTS:
        raise ScoreError(f"unknown delta_chrf variant {variant!r} (known: {', '.join(VARIANTS)})")
    snap = example.snapshot
    original, line0 = snap.text, snap.start_line
    pred = example.predictions[index]

    refs: list[tuple[str, str]] = []
    ref_index: list[int] = []  # index in example.expected of each reference
    failure: str | None = None
    for i, patch in enumerate(example.expected):
        try:
            refs.append((patch, _apply(patch, original, line0)))
            ref_index.append(i)
        except P.PatchError as exc:
            failure = failure or f"example {example.id}: field expected[{i}]: {exc}"
    if failure is not None and not refs:
        raise ScoreError(failure)
    if not refs:
        refs, ref_index = [("", original)], [0]

    patch_applies: bool | None = None
    actual = original
    if pred.patch is not None:
        try:
            actual = _apply(pred.patch, original, line0)
            patch_applies = True
        except P.PatchError:
            patch_applies = False
    actual_patch = pred.patch if patch_applies else None
    parsed = _parse(actual_patch) if actual_patch else None

    chrfs = [delta_chrf(original, text, actual, variant=variant) for _, text in refs]
    lines = [exact_lines(patch, actual_patch) for patch, _ in refs]
    pick = max(range(len(refs)), key=lambda i: (chrfs[i].score, lines[i].f1, -i))
    _exp_patch, expected = refs[pick]
    dc, el = chrfs[pick], lines[pick]
    best = ref_index[pick]

    rev = reversal_from_history(original, actual, snap.history, path=snap.path, start_line=line0)
    rev_all = reversal_from_history(original, actual, snap.history, path=snap.path,
                                    start_line=line0, events=None)
    kr = kept_rate(original, actual, expected)
    structure = parsed if parsed is not None else actual_patch
    tc = token_changes(structure) if actual_patch is not None else None
    cursor_row = None
    if pred.cursor is not None and pred.cursor <= len(actual):
        cursor_row = line0 + actual.count("\n", 0, pred.cursor)
    exp_cursor = example.expected_cursors[best] if example.expected and example.expected_cursors else None
    cur = cursor_distance(exp_cursor, pred.cursor)
    syn_before, (syn_after, syn_expected) = syntax_errors_around(
        original, [actual, expected], _language(snap.path))
    editable = snap.editable or (0, len(original))

    values: dict[str, Any] = {
        "patch_applies": patch_applies,
        "references": len(example.expected),
        "reference_index": best if example.expected else None,
        "reference_disagreement": _disagreement(original, tuple(t for _, t in refs), variant),
        "delta_chrf": dc.score,
        "delta_chrf_precision": dc.precision,
        "delta_chrf_recall": dc.recall,
        "delta_chrf_tp": dc.tp,
        "delta_chrf_fp": dc.fp,
        "delta_chrf_fn": dc.fn,
        "delta_chrf_beta": dc.beta,
        "delta_chrf_worst_reference": min(c.score for c in chrfs),
        "exact_lines_tp": el.tp,
        "exact_lines_fp": el.fp,
        "exact_lines_fn": el.fn,
        "exact_lines_precision": el.precision,
        "exact_lines_recall": el.recall,
        "exact_lines_f1": el.f1,
        "exact_lines_f1_best_reference": max(x.f1 for x in lines),
        "reversal_ratio": rev.ratio,
        "reversed_additions": rev.reversed_additions,
        "restored_deletions": rev.restored_deletions,
        "reversal_total": rev.total,
        "reversal_ratio_all_events": rev_all.ratio,
        "kept_rate": kr.kept_rate,
        "recall_rate": kr.recall_rate,
        "kept_chars": kr.kept_chars,
        "correctly_deleted_chars": kr.correctly_deleted_chars,
        "discarded_chars": kr.discarded_chars,
        "candidate_new_chars": kr.candidate_new_chars,
        "candidate_deleted_chars": kr.candidate_deleted_chars,
        "braces_disbalance": braces_disbalance_delta(original, actual),
        "wrong_editable_region": wrong_editable_region(structure),
        "isolated_whitespace": (isolated_whitespace_changes(structure, cursor_row)
                                if actual_patch is not None else None),
        "inserted_tokens": tc.inserted if tc else None,
        "deleted_tokens": tc.deleted if tc else None,
        "cursor_distance": cur.distance,
        "cursor_exact_match": cur.exact_match,
        "no_edit_expected": expected == original,
        "no_edit_predicted": (None if pred.patch is None and pred.error
                              else actual == original and patch_applies is not False),
        "syntax_errors_before": syn_before,
        "syntax_errors_after": syn_after,
        "syntax_errors_expected": syn_expected,
        "levenshtein_similarity": levenshtein_similarity(
            region_after(original, editable, expected), region_after(original, editable, actual)),
    }
    if example.locations:  # where the next edit is: only examples that know it (mined, or Zed multi-file)
        values.update(location_values(example.locations, pred, snap))
    before, after = values["syntax_errors_before"], values["syntax_errors_after"]
    values["syntax_errors_delta"] = after - before if before is not None and after is not None else None
    return Score(prediction=index, reference=values["reference_index"], values=values,
                 signatures=signatures(variant))
