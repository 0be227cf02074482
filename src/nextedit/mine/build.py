"""One sample of one commit: given the units in typing order and a split point, build the snapshot (history,
cursor, excerpt, editable region) and the expected patch, optionally with the next line half-typed."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nextedit.metrics.text import common_prefix, common_suffix
from nextedit.mine.config import MineConfig
from nextedit.mine.edits import Edit, apply_edits, current_start
from nextedit.mine.excerpt import (
    Excerpt,
    ExcerptError,
    choose_ranges,
    make_excerpt,
    parse_tree,
)
from nextedit.mine.split import (
    PartialLine,
    expected_group,
    line_gap,
    sample_partial,
)
from nextedit.mine.verify import changed_span
from nextedit.patch import make, make_lines


class SampleError(ValueError):
    """A sample that cannot be built (the reason goes to the failed file)."""


@dataclass
class Sample:
    """A built sample: everything the record needs, plus the base texts to verify its history against."""

    path: str
    excerpt: Excerpt
    expected: str
    expected_cursor: int
    history: list[tuple[str, str]]  # (path, hunk-only diff), oldest first
    base: dict[str, str]
    group_size: int
    partial: PartialLine | None = None
    tags: list[str] = field(default_factory=list)


def _common_rows(a: Sequence[str], b: Sequence[str]) -> tuple[int, int]:
    """Common leading and trailing line counts of two line lists (not overlapping)."""
    a = a if isinstance(a, list) else list(a)
    b = b if isinstance(b, list) else list(b)
    p = common_prefix(a, b)  # binary search on list-slice equality (compared in C, line by line)
    return p, common_suffix(a, b, min(len(a), len(b)) - p)


def window_diff(before: Sequence[str], after: Sequence[str], path: str, *, context: int = 3) -> str:
    """A hunk-only unified diff (no file headers) of two versions of a file (lists of lines as `split_lines`
    gives), numbered as file lines; only the changed window plus `context` lines is diffed."""
    p, s = _common_rows(before, after)
    w0 = max(0, p - context)
    b1 = min(len(before), len(before) - s + context)
    a1 = min(len(after), len(after) - s + context)
    if "\n" in path:  # the file headers would hold more lines than the two the old form cut off
        diff = make("".join(before[w0:b1]), "".join(after[w0:a1]), path=path, start_line=w0, context=context)
        return diff.split("\n", 2)[2] if diff.startswith("--- ") else diff
    return make_lines(list(before[w0:b1]), list(after[w0:a1]), start_line=w0, context=context)


def _line_content(line: str) -> tuple[str, str]:
    content = line.rstrip("\r\n")
    return content, line[len(content):]


def _half_type(target: Edit, state: list[str], t_row: int, rng: random.Random, chance: float
               ) -> tuple[PartialLine | None, list[str]]:
    """With probability `chance`, the file with the target's first new line half-typed at row `t_row`."""
    if not target.new or rng.random() >= chance:
        return None, state
    new_content, ending = _line_content(target.new[0])
    old_content = _line_content(target.old[0])[0] if target.old else ""
    partial = sample_partial(old_content, new_content, rng)
    if partial is None:
        return None, state
    rest = state[t_row + 1:] if target.old else state[t_row:]
    return partial, [*state[:t_row], partial.text + ending, *rest]


class Versions:
    """A commit's files with subsets of its units applied, and hunk-only diffs between two such versions, each
    computed once: the samples (and remaining-edit locations) of a commit share most of them. A version is
    named by its file and the set of that file's units applied (their order does not matter)."""

    def __init__(self, old_files: Mapping[str, list[str]]):
        self.old_files = old_files
        self._lines: dict[tuple[str, frozenset[tuple[int, int]]], list[str]] = {}
        self._texts: dict[tuple[str, frozenset[tuple[int, int]]], str] = {}
        self._diffs: dict[tuple[str, frozenset[tuple[int, int]], frozenset[tuple[int, int]]], str] = {}
        self._joins: tuple[list[int], list[bool]] = ([], [])  # ids of a unit sequence, and its join flags

    def history_events(self, steps: Sequence[Edit], group_lines: int) -> list[list[Edit]]:
        """`history_events(steps)`. Whether a unit joins the event before it depends only on the units before
        it, and the samples of a commit take prefixes of one typing order: the flags of the longest sequence
        asked for are kept and reused for its prefixes."""
        ids, flags = self._joins
        n = len(steps)
        m = 0
        while m < min(n, len(ids)) and ids[m] == id(steps[m]):
            m += 1
        own = flags[:m]
        for i in range(m, n):
            own.append(i > 0 and steps[i - 1].path == steps[i].path
                       and line_gap(steps[i - 1], steps[i], steps[:i]) <= group_lines)
        if m == len(ids) and n > m:
            self._joins = ([id(u) for u in steps], own)
        events: list[list[Edit]] = []
        for unit, join in zip(steps, own, strict=True):
            if join:
                events[-1].append(unit)
            else:
                events.append([unit])
        return events

    def lines(self, path: str, units: Iterable[Edit]) -> list[str]:
        """The lines of `path` once `units` (all of that file) are applied; shared: do not modify."""
        units = units if isinstance(units, list | tuple) else list(units)
        key = (path, frozenset(u.key for u in units))
        got = self._lines.get(key)
        if got is None:
            got = self._lines[key] = apply_edits(self.old_files[path], units)
        return got

    def text(self, path: str, units: Iterable[Edit]) -> str:
        """`lines` joined."""
        units = units if isinstance(units, list | tuple) else list(units)
        key = (path, frozenset(u.key for u in units))
        got = self._texts.get(key)
        if got is None:
            got = self._texts[key] = "".join(self.lines(path, units))
        return got

    def diff(self, path: str, before: Sequence[Edit], after: Sequence[Edit]) -> str:
        """`window_diff` from the version with `before` applied to the one with `after` applied."""
        key = (path, frozenset(u.key for u in before), frozenset(u.key for u in after))
        got = self._diffs.get(key)
        if got is None:
            got = self._diffs[key] = window_diff(self.lines(path, before), self.lines(path, after), path)
        return got


def _history(applied: list[Edit], versions: Versions, target: Edit, snap_lines: list[str], half_typed: bool,
             cfg: MineConfig) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """History events (coalesced units, then the half-typed line, joined to the last event when close),
    the newest `max_history_events` of them as (path, diff), and each file's text before its first one."""
    events = versions.history_events(applied, cfg.group_lines)
    done: dict[str, tuple[Edit, ...]] = {}
    # (path, units applied before, units applied after; None: after is the snapshot `snap_lines`)
    rendered: list[tuple[str, tuple[Edit, ...], tuple[Edit, ...] | None]] = []
    for event in events:
        p = event[0].path
        before = done.get(p, ())
        done[p] = (*before, *event)
        rendered.append((p, before, done[p]))
    if half_typed:
        if (events and events[-1][-1].path == target.path
                and line_gap(events[-1][-1], target, applied) <= cfg.group_lines):
            rendered[-1] = (rendered[-1][0], rendered[-1][1], None)
        else:
            rendered.append((target.path, done.get(target.path, ()), None))
    rendered = rendered[len(rendered) - min(len(rendered), cfg.max_history_events):]
    base: dict[str, str] = {}
    for p, before, _ in rendered:
        if p not in base:
            base[p] = versions.text(p, before)
    base.setdefault(target.path, "".join(snap_lines))
    return [(p, versions.diff(p, before, after) if after is not None
             else window_diff(versions.lines(p, before), snap_lines, p)) for p, before, after in rendered], base


def _cursors(applied: list[Edit], target: Edit, t_row: int, snap_lines: list[str], partial: PartialLine | None
             ) -> list[tuple[tuple[int, int], bool]]:
    """Cursor (row, column) candidates, best first, each flagged when it sits at the target: after the
    typed prefix; else at the end of the last edit when it is in this file; else at the target's start."""
    if partial is not None:
        return [((t_row, len(partial.typed)), False)]
    out: list[tuple[tuple[int, int], bool]] = []
    if applied and applied[-1].path == target.path:
        last = applied[-1]
        start = current_start(last, applied)
        if last.new:
            row = start + len(last.new) - 1
            out.append(((row, len(_line_content(snap_lines[row])[0])), False))
        elif snap_lines:
            row = min(start, len(snap_lines) - 1)
            out.append(((row, 0 if row == start else len(_line_content(snap_lines[row])[0])), False))
    if target.old and t_row < len(snap_lines):
        line = snap_lines[t_row]
        out.append(((t_row, len(line) - len(line.lstrip(" \t"))), True))
    elif t_row > 0:
        out.append(((t_row - 1, len(_line_content(snap_lines[t_row - 1])[0])), True))
    else:
        out.append(((0, 0), True))
    return out


def build_sample(order: Sequence[Edit], k: int, old_files: Mapping[str, list[str]], cfg: MineConfig,
                 rng: random.Random, versions: Versions | None = None) -> Sample:
    """The sample whose history is the first `k` units of `order` and whose expected edit is the next group
    (shortened, or the cursor moved to the target, until it fits the editable budget). `versions`: the
    commit's file versions shared between its samples."""
    versions = Versions(old_files) if versions is None else versions
    applied = list(order[:k])
    group = expected_group(order, k, group_lines=cfg.group_lines, max_units=cfg.max_group_units)
    target = group[0]
    path = target.path
    in_file = [u for u in applied if u.path == path]
    state = versions.lines(path, in_file)
    t_row = current_start(target, applied)
    partial, snap_lines = _half_type(target, state, t_row, rng, cfg.half_typing)
    history, base = _history(applied, versions, target, snap_lines, partial is not None, cfg)

    tree = parse_tree("".join(snap_lines), path)
    last_error = ""
    for cursor, at_target in _cursors(applied, target, t_row, snap_lines, partial):
        for size in range(len(group), 0, -1):
            after = versions.lines(path, in_file + group[:size])
            p, s = _common_rows(snap_lines, after)
            lo, hi = p, len(snap_lines) - s
            if hi <= lo:  # a pure insertion: keep the lines around it editable
                lo, hi = max(0, lo - 1), min(len(snap_lines), lo + 1)
            try:
                ranges = choose_ranges(snap_lines, cursor[0], include=(lo, hi), tree=tree,
                                       editable_tokens=cfg.editable_tokens, context_tokens=cfg.context_tokens)
            except ExcerptError as exc:
                last_error = str(exc)
                continue
            excerpt = make_excerpt(snap_lines, ranges, cursor)
            c0, c1 = ranges.context
            after_text = "".join(after[c0:c1 + len(after) - len(snap_lines)])
            expected = make(excerpt.text, after_text, path=path, start_line=c0)
            if not expected:
                raise SampleError("the expected edit changes nothing")
            a, b = changed_span(excerpt.text, after_text)
            end = len(after_text) - (len(excerpt.text) - b)
            if end > a and after_text[end - 1] == "\n":
                end -= 1
            tags = ["git", *(["half-typed"] if partial else []), *(["cursor-at-target"] if at_target else [])]
            return Sample(path, excerpt, expected, max(end, a), history, base, size, partial, tags)
    raise SampleError(f"expected edit does not fit the editable region: {last_error}")
