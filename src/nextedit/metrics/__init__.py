"""nextedit.metrics: versioned next-edit metrics (delta-chrF, exact lines, reversal, kept rate, ...).

Every result carries a `signature` string (`name:version|key=value|...`) saying exactly how it was
computed; `SIGNATURES` lists the current ones and `parse_signature` reads them back. The public
names below are a stable API (docs/metrics.md).
"""

from __future__ import annotations

from nextedit.metrics.chrf import (
    VARIANTS,
    ChrFVariant,
    DeltaChrF,
    delta_chrf,
    normalize_whitespace,
)
from nextedit.metrics.edits import Edit, granular_edits
from nextedit.metrics.kept import KeptRate, kept_rate
from nextedit.metrics.lines import ExactLines, changed_line_bag, exact_lines
from nextedit.metrics.location import (
    LOCATION_SIGNATURE,
    LocationMatch,
    location_match,
    predicted_locations,
)
from nextedit.metrics.noedit import NoEdit, no_edit_summary
from nextedit.metrics.reversal import (
    Reversal,
    reversal_from_history,
    reversal_overlap,
    reversal_ratio,
    undo_history,
)
from nextedit.metrics.score import (
    SCORE_VERSION,
    ScoreError,
    score_prediction,
    signatures,
)
from nextedit.metrics.signature import Signature, SignatureError, parse_signature
from nextedit.metrics.similarity import levenshtein_similarity, region_after
from nextedit.metrics.structure import (
    CursorMatch,
    TokenChanges,
    braces_disbalance,
    braces_disbalance_delta,
    cursor_distance,
    isolated_whitespace_changes,
    token_changes,
    wrong_editable_region,
)
from nextedit.metrics.syntax import syntax_errors
from nextedit.metrics.tokenize import tokenize, units

#: Current signature of every metric family reported by `score_prediction` (default variant v3).
SIGNATURES: dict[str, str] = signatures("v3")

__all__ = [
    "LOCATION_SIGNATURE",
    "SCORE_VERSION",
    "SIGNATURES",
    "VARIANTS",
    "ChrFVariant",
    "CursorMatch",
    "DeltaChrF",
    "Edit",
    "ExactLines",
    "KeptRate",
    "LocationMatch",
    "NoEdit",
    "Reversal",
    "ScoreError",
    "Signature",
    "SignatureError",
    "TokenChanges",
    "braces_disbalance",
    "braces_disbalance_delta",
    "changed_line_bag",
    "cursor_distance",
    "delta_chrf",
    "exact_lines",
    "granular_edits",
    "isolated_whitespace_changes",
    "kept_rate",
    "levenshtein_similarity",
    "location_match",
    "no_edit_summary",
    "normalize_whitespace",
    "parse_signature",
    "predicted_locations",
    "region_after",
    "reversal_from_history",
    "reversal_overlap",
    "reversal_ratio",
    "score_prediction",
    "signatures",
    "syntax_errors",
    "token_changes",
    "tokenize",
    "undo_history",
    "units",
    "wrong_editable_region",
]
