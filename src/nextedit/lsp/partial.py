"""Partial accept: the document text after accepting only the next word or the next line of a
prediction, on a shortest edit path from the old text to the predicted one (so the rest stays offered)."""

from __future__ import annotations

import re
from typing import Literal

from rapidfuzz.distance import Indel

from nextedit.lsp.snapshot import Edit

Part = Literal["word", "line"]
#: A word: optional blanks, then a run of word characters or of punctuation; or a line break and the
#: indentation after it.
_WORD = re.compile(r"[ \t]*(?:\w+|[^\w\s]+)|\r?\n[ \t]*")


def partial_text(old: str, new: str, part: Part) -> str:
    """`old` with the changes of `new` applied up to the end of the next word / line of `new` after the
    first difference (deletions up to there included). Equals `new` when that is all there is."""
    ops = Indel.opcodes(old, new)
    first = next((op for op in ops if op.tag != "equal"), None)
    if first is None:
        return new
    p = first.dest_start
    if part == "line":
        nl = new.find("\n", p)
        k = len(new) if nl == -1 else nl + 1
    else:
        m = _WORD.match(new, p)
        k = m.end() if m is not None and m.end() > p else min(p + 1, len(new))
    out: list[str] = []
    for op in ops:
        if op.tag == "equal":
            out.append(old[op.src_start:op.src_end])
            continue
        if op.tag in ("delete", "replace") and op.dest_start > k:
            out.append(old[op.src_start:op.src_end])  # a deletion past the accepted part stays
        if op.tag in ("insert", "replace") and op.dest_start < k:
            out.append(new[op.dest_start:min(op.dest_end, k)])
    return "".join(out)


def partial_edit(text: str, edit: Edit, part: Part) -> Edit:
    """The smallest edit of `text` that accepts the next word / line of `edit` (one span edit)."""
    old = text[edit.start:edit.end]
    mid = partial_text(old, edit.text, part)
    p = 0
    while p < min(len(old), len(mid)) and old[p] == mid[p]:
        p += 1
    s = 0
    while s < min(len(old), len(mid)) - p and old[-1 - s] == mid[-1 - s]:
        s += 1
    return Edit(edit.start + p, edit.end - s, mid[p:len(mid) - s])
