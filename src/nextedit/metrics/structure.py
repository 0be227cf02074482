"""Structural heuristics on a prediction: brace balance, wrong region, stray whitespace, edit size."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import LCSseq

from nextedit import patch as P
from nextedit.metrics.tokenize import tokenize

__all__ = [
    "BRACES_SIGNATURE", "CURSOR_SIGNATURE", "ISOLATED_WHITESPACE_SIGNATURE", "TOKEN_CHANGES_SIGNATURE",
    "WRONG_REGION_MIN_DELETIONS", "WRONG_REGION_SIGNATURE", "CursorMatch", "TokenChanges",
    "braces_disbalance", "braces_disbalance_delta", "cursor_distance", "isolated_whitespace_changes",
    "token_changes", "wrong_editable_region",
]

WRONG_REGION_MIN_DELETIONS = 3
BRACES_SIGNATURE = "braces:v1|pairs=(){}[]|scope=text|strings=counted"
WRONG_REGION_SIGNATURE = f"wrong_editable_region:v1|min_leading_deletions={WRONG_REGION_MIN_DELETIONS}"
ISOLATED_WHITESPACE_SIGNATURE = "isolated_whitespace:v1|cursor_row_exempt=added"
TOKEN_CHANGES_SIGNATURE = "token_changes:v1|tokenizer=code_v1|diff=lcs"
CURSOR_SIGNATURE = "cursor:v1|unit=chars"


PatchLike = str | list[P.FilePatch]


def _files(patch: PatchLike) -> list[P.FilePatch]:
    """Parsed file patches (pass a list from `patch.parse` to avoid parsing again)."""
    return P.parse(patch) if isinstance(patch, str) else patch


def _is_blank(patch: PatchLike | None) -> bool:
    return not patch or (isinstance(patch, str) and not patch.strip())


def braces_disbalance(text: str) -> int:
    """|#{ - #}| + |#( - #)| + |#[ - #]| over the whole text (strings and comments included)."""
    return (abs(text.count("{") - text.count("}")) + abs(text.count("(") - text.count(")"))
            + abs(text.count("[") - text.count("]")))


def braces_disbalance_delta(original: str, actual: str) -> int:
    """Imbalance the prediction adds: max(0, disbalance(actual) - disbalance(original))."""
    return max(0, braces_disbalance(actual) - braces_disbalance(original))


def wrong_editable_region(patch: PatchLike | None) -> bool | None:
    """True when the first hunk begins with >= 3 consecutive deleted lines (a model rewriting or
    truncating the wrong region); None when there is no patch; False for an empty patch."""
    if patch is None:
        return None
    if _is_blank(patch):
        return False
    hunk = next((h for fp in _files(patch) for h in fp.hunks), None)
    if hunk is None:
        return False
    run = 0
    for line in hunk.lines:
        if line[:1] != "-":
            break
        run += 1
    return run >= WRONG_REGION_MIN_DELETIONS


def isolated_whitespace_changes(patch: PatchLike | None, cursor_row: int | None = None) -> bool:
    """True when a run of consecutive +/- lines changes only blank (whitespace-only) lines.

    A blank added line at new-file row `cursor_row` (0-based file row, i.e. hunk line number
    `cursor_row + 1`) is exempt: that is the predicted cursor landing on a fresh line.
    """
    if patch is None or _is_blank(patch):
        return False
    for fp in _files(patch):
        for hunk in fp.hunks:
            new_no = hunk.new_start if hunk.new_len else hunk.new_start + 1  # 1-based next new line
            blank = solid = False
            for line in [*hunk.lines, " "]:
                tag = line[:1]
                if tag == "\\":
                    continue
                if tag not in "+-" or not tag:  # context line or end: close the run
                    if blank and not solid:
                        return True
                    blank = solid = False
                    new_no += 1
                    continue
                if line[1:].strip():
                    solid = True
                elif not (tag == "+" and cursor_row is not None and new_no == cursor_row + 1):
                    blank = True
                if tag == "+":
                    new_no += 1
    return False


@dataclass(frozen=True)
class TokenChanges:
    """Tokens a patch inserts and deletes (token-level diff of each block of changed lines)."""

    inserted: int
    deleted: int
    signature: str = TOKEN_CHANGES_SIGNATURE

    @property
    def total(self) -> int:
        return self.inserted + self.deleted


def token_changes(patch: PatchLike | None) -> TokenChanges:
    """Per block of consecutive +/- lines: tokenize the old and new sides (lines joined by `\\n`),
    diff the token lists, count tokens deleted and inserted."""
    inserted = deleted = 0
    if patch is None or _is_blank(patch):
        return TokenChanges(0, 0)
    for fp in _files(patch):
        for hunk in fp.hunks:
            old: list[str] = []
            new: list[str] = []
            for line in [*hunk.lines, " "]:
                tag = line[:1]
                if tag == "-":
                    old.append(line[1:].rstrip("\n"))
                elif tag == "+":
                    new.append(line[1:].rstrip("\n"))
                elif tag != "\\" and (old or new):
                    a, b = tokenize("\n".join(old)), tokenize("\n".join(new))
                    kept = int(LCSseq.similarity(a, b))  # an LCS alignment deletes and inserts the rest
                    deleted, inserted = deleted + len(a) - kept, inserted + len(b) - kept
                    old, new = [], []
    return TokenChanges(inserted, deleted)


@dataclass(frozen=True)
class CursorMatch:
    """Distance in characters between the expected and predicted cursor offsets."""

    distance: int | None
    exact_match: bool | None
    signature: str = CURSOR_SIGNATURE


def cursor_distance(expected: int | None, actual: int | None) -> CursorMatch:
    """|expected - actual| and whether they are equal; one missing -> (None, False); both -> None."""
    if expected is None and actual is None:
        return CursorMatch(None, None)
    if expected is None or actual is None:
        return CursorMatch(None, False)
    return CursorMatch(abs(expected - actual), expected == actual)
