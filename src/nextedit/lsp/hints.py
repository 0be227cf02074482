"""The offer as hint diagnostics at its target lines: what a client without inline completions (Neovim
up to 0.11, Emacs/eglot, Helix, VS Code through a generic client) shows of a prediction, and how a
multi-line or distant edit is seen where inline completions exist."""

from __future__ import annotations

from lsprotocol import types

from nextedit.lsp.documents import Document
from nextedit.lsp.snapshot import Edit

SOURCE = "nextedit"
CODE = "predicted-edit"
MAX_PREVIEW = 60


def _short(text: str) -> str:
    one = " ".join(text.split()) if "\n" in text else text
    return one if len(one) <= MAX_PREVIEW else one[:MAX_PREVIEW - 1] + "…"


def preview(old: str, new: str) -> str:
    """One line saying what an edit does: `old` → `new`, insert or delete."""
    if not old:
        lines = new.count("\n")
        return f"insert `{_short(new)}`" + (f" ({lines + 1} lines)" if lines else "")
    if not new:
        return f"delete `{_short(old)}`"
    return f"`{_short(old)}` → `{_short(new)}`"


def hint_diagnostics(doc: Document, edits: list[Edit], request_id: str, action: str) -> list[types.Diagnostic]:
    """One Hint diagnostic per edit at the text it replaces (a zero-width range for an insertion)."""
    out = []
    for e in edits:
        sl, sc = doc.position_of(e.start)
        el, ec = doc.position_of(e.end)
        out.append(types.Diagnostic(
            range=types.Range(types.Position(sl, sc), types.Position(el, ec)),
            message=f"predicted edit: {preview(doc.text[e.start:e.end], e.text)} (code action: {action})",
            severity=types.DiagnosticSeverity.Hint, source=SOURCE, code=CODE,
            data={"requestId": request_id}))
    return out
