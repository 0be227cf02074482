"""Licence allow-lists that understand SPDX expressions: `MIT OR Apache-2.0` passes a list holding `MIT`.

OR needs one allowed side, AND needs both, `X WITH exception` needs X (an exception only adds
permissions) or the whole `X WITH exception` in the list; parentheses group. Ids compare without
case, and `-only`, `-or-later` and a trailing `+` are read as the bare version (`GPL-2.0-only` and
`GPL-2.0+` match an entry `GPL-2.0`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["LicenseExpressionError", "license_allowed", "normalize_id"]

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:\-]+)")


class LicenseExpressionError(ValueError):
    """A licence string that is not an SPDX expression."""


def normalize_id(spdx_id: str) -> str:
    """An SPDX id compared without case and without its -only / -or-later / + suffix."""
    out = spdx_id.strip().lower()
    for suffix in ("-or-later", "-only", "+"):
        if out.endswith(suffix):
            return out[: -len(suffix)]
    return out


def _tokens(expression: str) -> list[str]:
    out, pos = [], 0
    text = expression.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise LicenseExpressionError(f"not an SPDX expression: {expression!r} (at {text[pos:pos + 10]!r})")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, expression: str, allowed: set[str]) -> None:
        self.expression, self.allowed = expression, allowed
        self.tokens, self.pos = _tokens(expression), 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise LicenseExpressionError(f"not an SPDX expression: {self.expression!r} (ends too early)")
        self.pos += 1
        return tok

    def run(self) -> bool:
        if not self.tokens:
            raise LicenseExpressionError("empty licence expression")
        value = self.or_expr()
        if self.peek() is not None:
            raise LicenseExpressionError(f"not an SPDX expression: {self.expression!r} (unexpected {self.peek()!r})")
        return value

    def or_expr(self) -> bool:
        value = self.and_expr()
        while (self.peek() or "").upper() == "OR":
            self.take()
            value = self.and_expr() or value
        return value

    def and_expr(self) -> bool:
        value = self.with_expr()
        while (self.peek() or "").upper() == "AND":
            self.take()
            value = self.with_expr() and value
        return value

    def with_expr(self) -> bool:
        if self.peek() == "(":
            self.take()
            value = self.or_expr()
            if self.take() != ")":
                raise LicenseExpressionError(f"not an SPDX expression: {self.expression!r} (unbalanced parentheses)")
            return value
        ident = self.take()
        if ident in ("(", ")") or ident.upper() in ("AND", "OR", "WITH"):
            raise LicenseExpressionError(f"not an SPDX expression: {self.expression!r} (unexpected {ident!r})")
        base = normalize_id(ident)
        if (self.peek() or "").upper() == "WITH":
            self.take()
            exception = normalize_id(self.take())
            return base in self.allowed or f"{base} with {exception}" in self.allowed
        return base in self.allowed


def license_allowed(expression: str | None, allow_list: Iterable[str]) -> bool:
    """True when the SPDX `expression` is satisfied by the allow-listed licences (None/empty: False).
    Raises LicenseExpressionError when `expression` cannot be parsed."""
    if not expression or not expression.strip():
        return False
    entries = [e for e in allow_list if e and e.strip()]
    allowed = {" ".join(normalize_id(t) if t.upper() not in ("WITH",) else "with" for t in e.split()) for e in entries}
    whole = " ".join(t.lower() for t in expression.split())
    if whole in {" ".join(t.lower() for t in e.split()) for e in entries}:
        return True
    return _Parser(expression, allowed).run()
