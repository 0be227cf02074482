"""Location accuracy: does a prediction point at where the next edit is (same file, within k lines, top-1 and
top-3 of a ranked list), and do its jumps out of the editable region lead to a correct edit (docs/jumps.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nextedit.locations import line_distance, patch_locations, same_path
from nextedit.metrics.lines import exact_lines
from nextedit.record import Location, Prediction, Snapshot

__all__ = ["LOCATION_K", "LOCATION_SIGNATURE", "LocationMatch", "editable_rows", "is_jump", "location_match",
           "predicted_locations"]

#: Line tolerances reported (`location_within_K`); `TOP_K_LINES` is the one top-1/top-3 use.
LOCATION_K = (0, 3, 10)
TOP_K_LINES = 3
LOCATION_SIGNATURE = ("location:v1|gold=any_remaining|distance=lines_apart|k=0,3,10|top=1,3@3"
                      "|predicted=locations_else_patch_hunks|jump=outside_editable|correct=within_3+exact_lines_p1")


@dataclass(frozen=True)
class LocationMatch:
    """How one ranked list of predicted locations compares with the example's expected ones.

    distance: lines between the top-1 location and the nearest expected location in its file (None: no
    prediction, or no expected location in that file); within: k -> distance <= k; top3: one of the first
    three is within `TOP_K_LINES` lines; jump: the top-1 lies outside the editable region (None without a
    prediction); jump_correct: for a jump, it is within `TOP_K_LINES` lines of an expected location and the edit
    it proposes there changes only lines that expected edit changes (exact-lines precision 1)."""

    predicted: bool
    same_file: bool
    distance: int | None
    within: dict[int, bool] = field(default_factory=dict)
    top3: bool = False
    jump: bool | None = None
    jump_correct: bool | None = None
    jump_expected: bool = False


def editable_rows(snapshot: Snapshot) -> tuple[int, int]:
    """The file lines [start, end) the snapshot's editable region covers."""
    e0, e1 = snapshot.editable or (0, len(snapshot.text))
    first = snapshot.start_line + snapshot.text.count("\n", 0, e0)
    last = snapshot.start_line + snapshot.text.count("\n", 0, max(e0, e1 - 1))
    return first, last + 1


def is_jump(location: Location, snapshot: Snapshot) -> bool:
    """Whether a location lies outside the snapshot's editable region (another file, or other lines)."""
    if not same_path(location.path, snapshot.path):
        return True
    r0, r1 = editable_rows(snapshot)
    return max(location.end_line, location.start_line + 1) <= r0 or location.start_line >= r1


def predicted_locations(prediction: Prediction, snapshot: Snapshot) -> list[Location]:
    """The prediction's ranked locations, or else the hunks of its patch (in the cursor file)."""
    if prediction.locations:
        return list(prediction.locations)
    return patch_locations(prediction.patch, snapshot.path)


def _nearest(loc: Location, expected: Sequence[Location]) -> tuple[int | None, Location | None]:
    best: tuple[int | None, Location | None] = (None, None)
    for exp in expected:
        d = line_distance(loc, exp)
        if d is not None and (best[0] is None or d < best[0]):
            best = (d, exp)
    return best


def _correct_edit(predicted: Location, expected: Location | None) -> bool:
    if expected is None or not predicted.patch or not expected.patch:
        return False
    match = exact_lines(expected.patch, predicted.patch)
    return match.tp > 0 and match.fp == 0


def location_match(expected: Sequence[Location], predicted: Sequence[Location], snapshot: Snapshot
                   ) -> LocationMatch:
    """Compare ranked predicted locations with the expected ones (any of them counts as the next edit: a
    commit's typing order is a guess)."""
    jump_expected = bool(expected) and is_jump(expected[0], snapshot)
    if not predicted:
        return LocationMatch(False, False, None, {k: False for k in LOCATION_K}, False, None, None, jump_expected)
    top = predicted[0]
    distance, hit = _nearest(top, expected)
    within = {k: distance is not None and distance <= k for k in LOCATION_K}
    top3 = any((d := _nearest(p, expected)[0]) is not None and d <= TOP_K_LINES for p in predicted[:3])
    jump = is_jump(top, snapshot)
    jump_correct = (within[TOP_K_LINES] and _correct_edit(top, hit)) if jump else None
    return LocationMatch(True, distance is not None, distance, within, top3, jump, jump_correct, jump_expected)


def location_values(expected: Sequence[Location], prediction: Prediction, snapshot: Snapshot) -> dict[str, object]:
    """The `Score.values` entries of the location metric."""
    m = location_match(expected, predicted_locations(prediction, snapshot), snapshot)
    return {
        "location_predicted": m.predicted,
        "location_same_file": m.same_file,
        "location_distance": m.distance,
        **{f"location_within_{k}": v for k, v in m.within.items()},
        "location_top1": m.within[TOP_K_LINES],
        "location_top3": m.top3,
        "jump_expected": m.jump_expected,
        "jump_predicted": m.jump,
        "jump_correct": m.jump_correct,
    }
