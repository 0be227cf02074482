"""Deterministic checks of teacher predictions: each failure has a code, a human message and a repair hint."""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, ConfigDict, Field

from nextedit import patch as P
from nextedit.languages import language_name
from nextedit.metrics import (
    braces_disbalance_delta,
    isolated_whitespace_changes,
    reversal_from_history,
    token_changes,
    tokenize,
    wrong_editable_region,
)
from nextedit.metrics.syntax import syntax_errors_around
from nextedit.record import Check, Example
from nextedit.teacher.parse import ParseError, parse_output
from nextedit.teacher.prompt import SENTINELS

__all__ = ["CODES", "ChecksConfig", "check_prediction", "failed", "is_checked_provider"]

#: Every code the checks (and the judge) can report, with the explanation the repair prompt gives.
CODES: dict[str, str] = {
    "parse_error": "your answer could not be read: give one code block with the editable region "
                   "between the region markers, or a code block with only NO_EDITS",
    "region_malformed": "the editable region markers were missing or repeated: the block must start with "
                        "<|editable_region_start|>, end with <|editable_region_end|> and hold at most one "
                        "<|user_cursor|>",
    "outside_region": "the prediction changes code outside the editable region, which is read-only",
    "wrong_region": "the edit begins by deleting several lines at the top of the region, which usually means "
                    "the region was not reproduced from its first line; reproduce it faithfully",
    "reversal": "the prediction undoes the user's most recent edit (it removes what they just typed or "
                "restores what they just deleted); keep it only if it really completes their edit, "
                "otherwise continue their intent or answer NO_EDITS",
    "too_large": "the edit is too large; predict only the part you are confident about instead of "
                 "rewriting large sections",
    "too_small": "the edit is trivially small; either make the meaningful next edit or answer NO_EDITS",
    "no_op": "the region was repeated without any change; answer NO_EDITS when nothing should change",
    "whitespace_only": "the edit changes only whitespace; do not reformat code the user is not working on",
    "isolated_whitespace": "the edit adds or removes blank or whitespace-only lines unrelated to any code change",
    "brace_imbalance": "the edit leaves brackets, braces or parentheses unbalanced",
    "syntax_errors": "the edit introduces syntax errors",
    "sentinel_leak": "the code contains special markers (NO_EDITS, KEEP_PREVIOUS, region or cursor markers, "
                     "secret placeholders) that must not appear inside code",
    "no_edits": "NO_EDITS is not accepted for this example",
    "judge_reverts": "a reviewer judged that the prediction reverts the user's edits",
    "judge_low_confidence": "a reviewer judged that the user would probably not accept the prediction",
}

#: Codes written by `check_prediction` (the checks stage replaces only these; judge codes stay).
DETERMINISTIC = frozenset(CODES) - {"judge_reverts", "judge_low_confidence"}

_PLACEHOLDER = re.compile(r"<SECRET_[A-Z0-9_]+>")
_MALFORMED_NOTES = {"missing_start_marker": "no start marker", "missing_end_marker": "no end marker (truncated?)",
                    "several_cursors": "several cursor markers"}


class ChecksConfig(BaseModel):
    """Thresholds of the checks stage."""

    model_config = ConfigDict(extra="forbid")

    max_reversal_ratio: float = Field(0.5, ge=0, le=1, description="fail when reversal ratio >= this")
    max_changed_tokens: int = Field(100, ge=1, description="fail when inserted or deleted tokens exceed this")
    max_region_share: float = Field(0.8, gt=0, description="fail when changed tokens / region tokens exceed this")
    region_share_min_tokens: int = Field(40, ge=0, description="apply the share limit only to regions this big")
    min_changed_tokens: int = Field(1, ge=0, description="fail when fewer non-whitespace tokens change")
    max_brace_increase: int = Field(0, ge=0, description="fail when bracket imbalance grows by more")
    syntax: bool = Field(True, description="compare tree-sitter syntax errors before and after")
    allow_no_edits: bool = Field(True, description="NO_EDITS is a valid answer")
    providers: list[str] = Field(default_factory=lambda: ["teacher:", "repair:"],
                                 description="check predictions whose provider starts with one of these "
                                             "(empty: all)")


def is_checked_provider(provider: str, config: ChecksConfig) -> bool:
    """Whether predictions of this provider are checked under `config`."""
    return not config.providers or any(provider.startswith(p) for p in config.providers)


def failed(checks: list[Check], index: int) -> list[Check]:
    """The failed checks of prediction `index`."""
    return [c for c in checks if c.prediction == index and not c.passed]


def _changed_solid_tokens(old: str, new: str) -> int:
    a, b = tokenize(old), tokenize(new)
    n = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            n += sum(1 for t in a[i1:i2] if t.strip()) + sum(1 for t in b[j1:j2] if t.strip())
    return n


# Providers whose `raw` is a teacher answer (read with the teacher's parser); others are checked on `patch`.
TEACHER_OUTPUT = ("teacher:", "repair:")


def check_prediction(example: Example, index: int, config: ChecksConfig | None = None) -> list[Check]:
    """Run every deterministic check on prediction `index`; one Check per check that applies."""
    cfg = config or ChecksConfig()
    pred = example.predictions[index]
    snap = example.snapshot
    out: list[Check] = []

    def add(code: str, ok: bool, message: str = "") -> None:
        out.append(Check(prediction=index, code=code, passed=ok, message=message))

    if pred.error or pred.patch is None:
        add("parse_error", False, pred.error or "prediction has no patch")
        return out
    kind = None
    if pred.raw is not None and pred.provider.startswith(TEACHER_OUTPUT):  # other models' raw is theirs
        try:
            parsed = parse_output(pred.raw, allow_keep_previous=True)
            kind = parsed.kind
            bad = [_MALFORMED_NOTES[n] for n in parsed.notes if n in _MALFORMED_NOTES]
            add("region_malformed", not bad, ", ".join(bad))
        except ParseError as exc:
            add("parse_error", False, str(exc))
            return out

    text, line0 = snap.text, snap.start_line
    editable = snap.editable or (0, len(text))
    if P.is_empty(pred.patch):
        if kind == "edit":
            add("no_op", False, "the region was rewritten without any change instead of NO_EDITS")
        else:
            add("no_edits", cfg.allow_no_edits, "" if cfg.allow_no_edits else "NO_EDITS is disabled")
        return out

    try:
        old, new = P.to_region(pred.patch, text, editable, start_line=line0)
    except P.PatchError as exc:
        add("outside_region", False, str(exc))
        return out
    add("outside_region", True)
    start, end = editable
    after = text[:start] + new + text[end:]

    wrong = wrong_editable_region(pred.patch)
    add("wrong_region", not wrong, "first hunk starts with 3 or more deleted lines" if wrong else "")

    leaks = [s for s in SENTINELS if new.count(s) > old.count(s)]
    leaks += sorted({m for m in _PLACEHOLDER.findall(new) if m not in old})
    add("sentinel_leak", not leaks, ", ".join(leaks))

    ws_only = re.sub(r"\s+", "", old) == re.sub(r"\s+", "", new)
    add("whitespace_only", not ws_only, "only whitespace changes" if ws_only else "")
    cursor_row = None
    if pred.cursor is not None and pred.cursor <= len(after):
        cursor_row = line0 + after.count("\n", 0, pred.cursor)
    iso = isolated_whitespace_changes(pred.patch, cursor_row)
    add("isolated_whitespace", not iso, "a run of changed lines is blank only" if iso else "")

    tc = token_changes(pred.patch)
    region_tokens = len(tokenize(old))
    share = tc.total / region_tokens if region_tokens else 1.0
    reasons = []
    if tc.inserted > cfg.max_changed_tokens or tc.deleted > cfg.max_changed_tokens:
        reasons.append(f"{tc.inserted} tokens inserted, {tc.deleted} deleted (limit {cfg.max_changed_tokens})")
    if region_tokens >= cfg.region_share_min_tokens and share > cfg.max_region_share:
        reasons.append(f"changes {share:.0%} of the region's {region_tokens} tokens "
                       f"(limit {cfg.max_region_share:.0%})")
    add("too_large", not reasons, "; ".join(reasons) or f"{tc.inserted} inserted, {tc.deleted} deleted")
    if not ws_only:
        solid = _changed_solid_tokens(old, new)
        add("too_small", solid >= cfg.min_changed_tokens,
            f"{solid} non-whitespace tokens changed (minimum {cfg.min_changed_tokens})")

    rev = reversal_from_history(text, after, snap.history, path=snap.path, start_line=line0)
    add("reversal", rev.ratio < cfg.max_reversal_ratio,
        f"reversal ratio {rev.ratio:.2f} (limit {cfg.max_reversal_ratio:.2f}): {rev.reversed_additions} chars "
        f"of the user's insertions overwritten, {rev.restored_deletions} of their deletions restored")

    braces = braces_disbalance_delta(text, after)
    add("brace_imbalance", braces <= cfg.max_brace_increase,
        f"bracket imbalance grows by {braces}" if braces else "")

    if cfg.syntax:
        before_n, (after_n,) = syntax_errors_around(text, [after], language_name(snap.path))
        if before_n is not None and after_n is not None:
            add("syntax_errors", after_n <= before_n, f"syntax errors {before_n} -> {after_n}")
    return out
