"""A plausible typing order for a commit's units (seeded heuristic): files whose new definitions others use
come first, tests after code; within a file, definitions used elsewhere first, then the unit nearest the
previous edit."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from itertools import accumulate

from nextedit.mine.edits import Edit

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINITION = re.compile(
    r"\b(?:def|class|function|fn|struct|enum|trait|interface|type|impl|module|macro_rules!|const|let|var|val)"
    r"\s+\*?([A-Za-z_]\w*)"
    r"|\bfunc\s*(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"
    r"|^(?:export\s+|pub\s+|static\s+)*([A-Za-z_]\w*)\s*(?::[^=\n]*)?=[^=]",
    re.MULTILINE,
)
# Words too common to link a definition to a use.
_STOP = frozenset({
    "self", "this", "none", "true", "false", "null", "nil", "return", "if", "else", "for", "while", "def",
    "class", "function", "fn", "let", "const", "var", "int", "str", "string", "bool", "i", "j", "k", "x",
    "y", "n", "s", "e", "err", "ok", "new", "import", "from", "pub", "mut", "use", "package", "void",
})

# Bonus (in lines) for a unit that defines a name other pending units use: definitions are typed first.
DEFINITION_BONUS = 10_000
# How likely the first unit of a file is its topmost one when no definition decides (else a random one).
TOPMOST_START = 0.75
# Units above the previous edit count this much farther than units below (people type downwards).
UPWARD_PENALTY = 1.5


def defined_names(edit: Edit) -> set[str]:
    """Names a unit defines in its added lines (functions, classes, types, assigned variables)."""
    text = "".join(edit.new)
    names = {name for m in _DEFINITION.finditer(text) for name in m.groups() if name}
    return {n for n in names if n.lower() not in _STOP and len(n) > 1}


def used_names(edit: Edit) -> set[str]:
    """Identifiers that occur in a unit's added lines."""
    return {n for n in _IDENT.findall("".join(edit.new)) if n.lower() not in _STOP and len(n) > 1}


_TEST_PATH = re.compile(r"(^|/)(tests?|spec|__tests__)/|(^|/)test_[^/]*$|_test\.[^/]+$|\.(test|spec)\.[^/]+$")


def is_test_path(path: str) -> bool:
    """True for test files (tests/ folders, test_x.py, x_test.go, x.test.ts, x.spec.js)."""
    return _TEST_PATH.search(path) is not None


def typing_order(edits: Sequence[Edit], rng: random.Random) -> list[Edit]:
    """Order a commit's units as a person might have typed them (see docs/mining.md for the rules)."""
    if not edits:
        return []
    defs = {e: defined_names(e) for e in edits}
    uses = {e: used_names(e) for e in edits}
    by_file: dict[str, list[Edit]] = {}
    for e in edits:
        by_file.setdefault(e.path, []).append(e)
    for units in by_file.values():
        units.sort(key=lambda e: e.key)

    def file_defs(path: str) -> set[str]:
        return set().union(*(defs[e] for e in by_file[path]))

    def file_uses(path: str) -> set[str]:
        return set().union(*(uses[e] for e in by_file[path]))

    paths = list(by_file)
    fdefs = {p: file_defs(p) for p in paths}
    fuses = {p: file_uses(p) for p in paths}
    ties = {p: rng.random() for p in paths}
    tests = {p: is_test_path(p) for p in paths}
    file_order: list[str] = []
    remaining = set(paths)
    while remaining:
        def file_key(p: str) -> tuple[int, int, bool, float]:
            incoming = sum(1 for q in remaining if q != p and fdefs[q] & fuses[p])
            outgoing = sum(1 for q in remaining if q != p and fdefs[p] & fuses[q])
            return (incoming, -outgoing, tests[p], ties[p])

        best = min(remaining, key=file_key)
        file_order.append(best)
        remaining.discard(best)

    users = {e: [o for o in edits if o is not e and defs[e] & uses[o]] if defs[e] else [] for e in edits}
    order: list[Edit] = []
    pending = set(edits)
    for path in file_order:
        order.extend(_order_file(by_file[path], users, pending, rng))
    return order


def _order_file(units: list[Edit], users: dict[Edit, list[Edit]], pending: set[Edit],
                rng: random.Random) -> list[Edit]:
    index = {e: i for i, e in enumerate(units)}
    applied_delta = [0] * len(units)
    done: set[Edit] = set()
    done_keys: set[tuple[int, int]] = set()
    jitter = {e: rng.random() for e in units}

    def used_elsewhere(e: Edit) -> bool:
        return any(o in pending for o in users[e])

    def ready(e: Edit) -> bool:
        return e.piece == 0 or (e.hunk, e.piece - 1) in done_keys

    out: list[Edit] = []
    prev: tuple[int, int] | None = None  # (start, end) of the previous edit in current lines
    while len(out) < len(units):
        starts = [0, *accumulate(applied_delta)]
        candidates = [e for e in units if e not in done and ready(e)]

        def current(e: Edit, starts: list[int] = starts) -> int:
            return e.old_start + starts[index[e]]

        if prev is None:
            definers = [e for e in candidates if used_elsewhere(e)]
            if definers:
                pick = definers[0]
            elif rng.random() < TOPMOST_START:
                pick = candidates[0]
            else:
                pick = rng.choice(candidates)
        else:
            def score(e: Edit, p_start: int = prev[0], p_end: int = prev[1]) -> tuple[float, float]:
                start = current(e)
                if start >= p_end:
                    dist: float = start - p_end
                else:
                    dist = max(0, p_start - (start + len(e.old))) * UPWARD_PENALTY
                if used_elsewhere(e):
                    dist -= DEFINITION_BONUS
                return (dist, jitter[e])

            pick = min(candidates, key=score)
        start = current(pick)
        prev = (start, start + len(pick.new))
        applied_delta[index[pick]] = pick.delta
        done.add(pick)
        done_keys.add(pick.key)
        pending.discard(pick)
        out.append(pick)
    return out
