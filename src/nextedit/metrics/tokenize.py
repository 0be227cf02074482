"""Code tokenizer shared by the token-level metrics (zed-ep.md section 3.4): words, case parts, operators."""

from __future__ import annotations

import re

__all__ = ["OPERATORS", "tokenize", "units"]

#: Multi-character operators matched greedily (longest first) before single punctuation chars.
OPERATORS: tuple[str, ...] = (
    ">>>=", "<<=", ">>=", "...", "..=", "??=", "**=", ">>>", "::", "->", "=>", "==", "!=", "<=",
    ">=", "&&", "||", "<<", ">>", "..", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "++", "--",
    "**", "??", "?.", ":=", "<-", "//", "/*", "*/",
)

_OPS = "|".join(re.escape(op) for op in sorted(OPERATORS, key=len, reverse=True))
# Newline runs, other whitespace runs, alphanumeric runs, underscore runs, operators, any char.
_TOKEN = re.compile(rf"[\r\n]+|[^\S\r\n]+|[^\W_]+|_+|{_OPS}|.", re.DOTALL)
# Comparison units for kept rate: whole identifiers (alphanumerics and underscores) stay one unit.
_UNIT = re.compile(rf"[\r\n]+|[^\S\r\n]+|\w+|{_OPS}|.", re.DOTALL)


def _split_case(word: str) -> list[str]:
    """Split an alphanumeric run at case boundaries: `fooBar` -> foo, Bar; `XMLHttp` -> XML, Http."""
    out: list[str] = []
    start = 0
    n = len(word)
    for i in range(1, n):
        cur = word[i]
        if not cur.isupper():
            continue
        prev = word[i - 1]
        if prev.islower() or prev.isdigit() or (
            prev.isupper() and i + 1 < n and word[i + 1].islower()
        ):
            out.append(word[start:i])
            start = i
    out.append(word[start:])
    return out


def tokenize(text: str) -> list[str]:
    """Split code into tokens; joining the tokens gives back `text` exactly.

    Classes: newline runs (`\\n`, `\\r`), other whitespace runs, identifier parts and punctuation.
    Identifier runs (letters, digits, `_`) are split at underscore runs (each its own token) and
    at case boundaries (lower or digit followed by upper; `XMLHttp` -> `XML`, `Http`).
    Punctuation matches the multi-character `OPERATORS` greedily, else one character.
    """
    out: list[str] = []
    append = out.append
    for tok in _TOKEN.findall(text):
        # Only alphanumeric runs with an upper-case letter after the first char can split further.
        if len(tok) > 1 and tok[0].isalnum() and tok[1:] != tok[1:].lower():
            out.extend(_split_case(tok))
        else:
            append(tok)
    return out


def units(text: str) -> list[str]:
    """Comparison units of kept rate: `tokenize` with every identifier run merged back into one unit."""
    return _UNIT.findall(text)
