"""Where a commit's remaining edits are at a split point (file, line range, the edit there), and jump samples: the
cursor stays at the user's last edit while the next edit group lies outside the editable region or in another file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nextedit.mine.build import Sample, Versions, _history, _line_content
from nextedit.mine.config import MineConfig
from nextedit.mine.edits import Edit, current_start
from nextedit.mine.excerpt import ExcerptError, choose_ranges, make_excerpt, parse_tree
from nextedit.mine.split import expected_group, history_events

#: Tag of the jump samples made here.
TAG = "jump"


def _rows(units: Sequence[Edit], applied: Sequence[Edit]) -> tuple[int, int]:
    """Line range [start, end) the units replace, in the file as it stands once `applied` is in."""
    starts = [current_start(u, applied) for u in units]
    return min(starts), max(s + len(u.old) for s, u in zip(starts, units, strict=True))


def location(units: Sequence[Edit], applied: Sequence[Edit], old_files: Mapping[str, list[str]],
             versions: Versions | None = None) -> dict[str, Any]:
    """The record location of units of one file: its path, line range and hunk-only diff at the snapshot."""
    path = units[0].path
    in_file = [u for u in applied if u.path == path]
    versions = Versions(old_files) if versions is None else versions
    start, end = _rows(units, applied)
    return {"path": path, "start_line": start, "end_line": end, "patch": versions.diff(path, in_file, [*in_file, *units])}


def remaining_locations(order: Sequence[Edit], k: int, size: int, old_files: Mapping[str, list[str]],
                        cfg: MineConfig, versions: Versions | None = None) -> list[dict[str, Any]]:
    """Locations of the units after the first `k`: the next group (`size` units) first, then the rest of the
    commit (neighbouring units of a file coalesced, in the order they are typed), all in line numbers of
    the snapshot."""
    applied = list(order[:k])
    versions = Versions(old_files) if versions is None else versions
    rank = {id(u): i for i, u in enumerate(order)}
    rest = sorted(order[k + size:], key=lambda u: (u.path, u.key))  # neighbours in the file, not in time
    events = sorted(history_events(rest, group_lines=cfg.group_lines), key=lambda e: min(rank[id(u)] for u in e))
    return [location(order[k:k + size], applied, old_files, versions),
            *(location(e, applied, old_files, versions) for e in events)]


def jump_sample(order: Sequence[Edit], k: int, old_files: Mapping[str, list[str]], cfg: MineConfig,
                versions: Versions | None = None) -> Sample | None:
    """A jump sample after the first `k` units (k >= 1): the cursor at the end of the last unit typed, no edit
    expected in its editable region, the next group elsewhere. None when the next group (or any remaining
    unit) lies inside that region, so that "no edit here" would be untrue."""
    if k < 1 or k >= len(order):
        return None
    applied = list(order[:k])
    last = applied[-1]
    path = last.path
    versions = Versions(old_files) if versions is None else versions
    state = versions.lines(path, [u for u in applied if u.path == path])
    if not state:
        return None
    start = current_start(last, applied)
    if last.new:
        row = start + len(last.new) - 1
        cursor = (row, len(_line_content(state[row])[0]))
        include = (start, row + 1)
    else:
        row = min(start, len(state) - 1)
        cursor = (row, 0 if row == start else len(_line_content(state[row])[0]))
        include = (max(0, row - 1), min(len(state), row + 1))
    try:
        ranges = choose_ranges(state, cursor[0], include=include, tree=parse_tree("".join(state), path),
                               editable_tokens=cfg.editable_tokens, context_tokens=cfg.context_tokens)
    except ExcerptError:
        return None
    e0, e1 = ranges.editable
    for unit in order[k:]:
        if unit.path == path:
            s, e = _rows([unit], applied)
            if (s < e1 and max(e, s + 1) > e0) or (s == e1 and not unit.old):
                return None
    group = expected_group(order, k, group_lines=cfg.group_lines, max_units=cfg.max_group_units)
    history, base = _history(applied, versions, last, state, False, cfg)
    excerpt = make_excerpt(state, ranges, cursor)
    tags = ["git", TAG, *(["other-file"] if group[0].path != path else [])]
    return Sample(path, excerpt, "", 0, history, base, len(group), None, tags)
