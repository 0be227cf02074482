"""Split points of a commit's typed units (history vs expected), the expected group of adjacent units, and
human-typing imitation: a half-typed line at a weighted split point (reference/zed-ep.md section 7.1 step 4)."""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import LCSseq

from nextedit.mine.edits import Edit, current_start

_TOKEN = re.compile(r"\w+|\s|[^\w\s]")
# Character similarity above which the rest of the old line is kept after the typed prefix.
KEEP_REST_SIMILARITY = 0.35


def split_points(n_units: int, samples: int, rng: random.Random) -> list[int]:
    """Distinct history lengths k for up to `samples` samples: k in 1..n-1 (0 for a one-unit commit)."""
    choices = list(range(1, n_units)) if n_units > 1 else [0]
    rng.shuffle(choices)
    return choices[:max(samples, 0)]


def line_gap(first: Edit, second: Edit, applied: Sequence[Edit]) -> int:
    """Lines between two units of a file once `applied` (which includes `first`) is in."""
    a_start = current_start(first, applied)
    a_end = a_start + len(first.new)
    b_start = current_start(second, applied)
    if b_start >= a_end:
        return b_start - a_end
    return max(0, a_start - (b_start + len(second.old)))


def expected_group(order: Sequence[Edit], k: int, *, group_lines: int = 8, max_units: int = 3) -> list[Edit]:
    """The next unit after the first k, with the following units of the same file that each lie within
    `group_lines` lines of the previous one (at most `max_units`): the next logical step."""
    group = [order[k]]
    applied = list(order[:k])
    for unit in order[k + 1:]:
        if len(group) >= max_units or unit.path != group[0].path:
            break
        if line_gap(group[-1], unit, applied + group) > group_lines:
            break
        group.append(unit)
    return group


def history_events(steps: Sequence[Edit], *, group_lines: int = 8) -> list[list[Edit]]:
    """Coalesce consecutive units of one file within `group_lines` lines of each other into one event,
    as an editor's edit history does (Zed: 8 lines)."""
    events: list[list[Edit]] = []
    applied: list[Edit] = []
    for unit in steps:
        if events and events[-1][-1].path == unit.path and line_gap(events[-1][-1], unit, applied) <= group_lines:
            events[-1].append(unit)
        else:
            events.append([unit])
        applied.append(unit)
    return events


@dataclass(frozen=True)
class PartialLine:
    """A half-typed line: `typed` is a prefix of the new line, `rest` the kept remainder of the old line;
    the cursor sits after `typed`."""

    typed: str
    rest: str

    @property
    def text(self) -> str:
        """The line's content as it stands (no newline)."""
        return self.typed + self.rest


def _weight(ch: str, nxt: str | None) -> float:
    """How likely a person pauses right after typing `ch` (Zed's weights)."""
    if ch in ",;:([{":
        return 10
    if ch in ")]}":
        return 8
    word = ch.isalnum() or ch == "_"
    if word:
        return 1 if nxt is not None and (nxt.isalnum() or nxt == "_") else 8
    if ch.isspace():
        return 6
    if ch in ".+-*/=<>&|!":
        return 5
    return 3


def _similar(a: str, b: str) -> bool:
    """difflib's ratio of two strings above KEEP_REST_SIMILARITY. Its matching blocks are a common subsequence,
    so the ratio of the longest one (rapidfuzz, native) is an upper bound: at or below the threshold, difflib
    is not asked."""
    if 2.0 * LCSseq.similarity(a, b) / (len(a) + len(b)) <= KEEP_REST_SIMILARITY:
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() > KEEP_REST_SIMILARITY


def partial_candidates(old: str, new: str) -> list[tuple[PartialLine, float]]:
    """Every plausible half-typed state of turning line `old` into line `new` (contents without newline),
    with its weight: walk the token diff, one candidate per typed character and per deleted run."""
    old_t, new_t = _TOKEN.findall(old), _TOKEN.findall(new)
    indent = new[:len(new) - len(new.lstrip())]
    candidates: list[tuple[str, int, float]] = []
    typed, old_pos = "", 0
    matcher = difflib.SequenceMatcher(None, old_t, new_t, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            typed += "".join(new_t[j1:j2])
            old_pos += len("".join(old_t[i1:i2]))
            continue
        if tag in ("delete", "replace"):
            old_pos += len("".join(old_t[i1:i2]))
            candidates.append((typed, old_pos, 2))
        if tag in ("insert", "replace"):
            for ch in "".join(new_t[j1:j2]):
                typed += ch
                nxt = new[len(typed)] if len(typed) < len(new) else None
                candidates.append((typed, old_pos, _weight(ch, nxt)))
    out: list[tuple[PartialLine, float]] = []
    seen: set[str] = set()
    for typed, pos, weight in candidates:
        if len(typed) >= len(new):
            continue
        if not typed.strip():
            # The editor indents a new line by itself: no pauses inside the indentation.
            if old or typed != indent:
                continue
            weight = 6
        old_rest, new_rest = old[pos:], new[len(typed):]
        keep = old_rest and _similar(old_rest, new_rest)
        partial = PartialLine(typed, old_rest if keep else "")
        if partial.text in (old, new) or partial.text in seen:
            continue
        seen.add(partial.text)
        out.append((partial, weight))
    return out


def sample_partial(old: str, new: str, rng: random.Random) -> PartialLine | None:
    """A weighted random half-typed state of `old` -> `new`, or None when there is none."""
    candidates = partial_candidates(old, new)
    if not candidates:
        return None
    return rng.choices([c for c, _ in candidates], weights=[w for _, w in candidates])[0]
