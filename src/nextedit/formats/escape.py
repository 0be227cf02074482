"""Reversible escaping of a format's marker strings inside user text (file, history, related code, answers)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["SENTINEL", "escape", "escape_diff", "unescape", "unescape_diff", "unescaped_offset"]

#: U+2060 WORD JOINER: inserted after the first character of every marker found in user text; a sentinel
#: already in the text is doubled, so the mapping is bijective.
SENTINEL = "\u2060"
_UNESCAPE = re.compile(SENTINEL + "(" + SENTINEL + ")?")


@lru_cache(maxsize=64)
def _pattern(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for the markers, less those containing another (breaking the inner one breaks them too)."""
    kept = {m for m in markers if m and not any(o and o != m and o in m for o in markers)}
    if not kept:
        return None
    return re.compile("|".join(re.escape(m) for m in sorted(kept, key=len, reverse=True)))


def escape(text: str, markers: Iterable[str]) -> str:
    """`text` with every sentinel doubled and every marker occurrence broken by a sentinel (no marker remains)."""
    if SENTINEL in text:
        text = text.replace(SENTINEL, SENTINEL * 2)
    pattern = _pattern(tuple(markers))
    if pattern is None:
        return text
    while pattern.search(text):  # overlapping occurrences (e.g. "<|a<|a|>") need another pass
        text = pattern.sub(lambda m: m.group(0)[0] + SENTINEL + m.group(0)[1:], text)
    return text


def unescape(text: str) -> str:
    """Inverse of `escape`: a doubled sentinel becomes one, a lone sentinel is dropped."""
    if SENTINEL not in text:
        return text
    return _UNESCAPE.sub(lambda m: SENTINEL if m.group(1) else "", text)


def unescaped_offset(escaped: str, offset: int) -> int:
    """The offset in unescape(escaped) that `offset` in `escaped` corresponds to."""
    return len(unescape(escaped[:offset]))


def escape_diff(diff: str, markers: Iterable[str]) -> str:
    """A unified diff with the body of each line (after its first character) escaped, so it still applies
    to the escaped text; hunk headers are left alone."""
    markers = tuple(markers)
    return "".join(line if line.startswith("@@") or len(line) < 2 else line[0] + escape(line[1:], markers)
                   for line in diff.splitlines(keepends=True))


def unescape_diff(diff: str) -> str:
    """Inverse of `escape_diff` (also turns a diff against escaped text into one against the original)."""
    return "".join(line if line.startswith("@@") else line[:1] + unescape(line[1:])
                   for line in diff.splitlines(keepends=True))
