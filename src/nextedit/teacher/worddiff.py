"""Word diffs of unified patches ([-deleted-]{+inserted+}), the form judge and repair prompts show edits in."""

from __future__ import annotations

import difflib
import re

from nextedit import patch as P

__all__ = ["word_diff", "word_diff_text"]

_TOKEN = re.compile(r"\w+|[ \t]+|\n|.", re.DOTALL)


def word_diff_text(old: str, new: str) -> str:
    """`old` -> `new` as one text with deletions in [-...-] and insertions in {+...+} (token level:
    identifier runs, whitespace runs, single punctuation characters)."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append("".join(a[i1:i2]))
            continue
        if i2 > i1:
            out.append("[-" + "".join(a[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + "".join(b[j1:j2]) + "+}")
    return "".join(out)


def word_diff(patch: str) -> str:
    """A unified patch rendered as a word diff: file and hunk headers kept, context lines without
    their prefix, each run of -/+ lines as one word-diffed block."""
    if not patch or not patch.strip():
        return ""
    out: list[str] = []
    for fp in P.parse(patch):
        out.append(f"--- a/{fp.old_path or fp.path}\n+++ b/{fp.new_path or fp.path}")
        for hunk in fp.hunks:
            out.append(f"@@ -{hunk.old_start},{hunk.old_len} +{hunk.new_start},{hunk.new_len} @@")
            old: list[str] = []
            new: list[str] = []
            for line in [*hunk.lines, None]:  # None flushes the last block
                tag, body = (line[:1], line[1:]) if line is not None else ("", "")
                if tag in ("-", "+"):
                    (old if tag == "-" else new).append(body if body.endswith("\n") else body + "\n")
                    continue
                if tag == "\\":
                    continue
                if old or new:
                    out.append(word_diff_text("".join(old), "".join(new)).rstrip("\n"))
                    old, new = [], []
                if line is not None:
                    out.append(body.rstrip("\n"))
    return "\n".join(out)
