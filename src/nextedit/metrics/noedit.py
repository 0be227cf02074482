"""No-edit precision/recall: is a model silent when no edit is right, and speaking when one is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_EDIT_SIGNATURE", "NoEdit", "no_edit_summary"]

NO_EDIT_SIGNATURE = "no_edit:v1|silent=actual_equals_original|expected=best_reference"


@dataclass(frozen=True)
class NoEdit:
    """Counts over predictions and the rates derived from them (None when undefined).

    silent_precision: of the predictions that made no edit, the share where no edit was right;
    silent_recall: of the examples where no edit was right, the share the model left alone;
    speaking_precision / speaking_recall: the same for "some edit".
    """

    silent_right: int
    silent_wrong: int
    speaking_right: int
    speaking_wrong: int
    silent_precision: float | None
    silent_recall: float | None
    speaking_precision: float | None
    speaking_recall: float | None
    signature: str = NO_EDIT_SIGNATURE


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def no_edit_summary(values: Iterable[Mapping[str, Any]]) -> NoEdit:
    """Aggregate `Score.values` dicts (keys `no_edit_expected`, `no_edit_predicted`)."""
    sr = sw = pr = pw = 0
    for v in values:
        exp, pred = v.get("no_edit_expected"), v.get("no_edit_predicted")
        if exp is None or pred is None:
            continue
        if pred:
            sr, sw = (sr + 1, sw) if exp else (sr, sw + 1)
        else:
            pr, pw = (pr, pw + 1) if exp else (pr + 1, pw)
    return NoEdit(sr, sw, pr, pw, _ratio(sr, sr + sw), _ratio(sr, sr + pw),
                  _ratio(pr, pr + pw), _ratio(pr, pr + sw))
