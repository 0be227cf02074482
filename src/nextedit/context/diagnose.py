"""Linter diagnostics near the cursor of a snapshot, as record Diagnostics on 0-based file lines."""

from __future__ import annotations

from nextedit.context.file_state import current_file
from nextedit.context.lint import lint_python
from nextedit.languages import language_name
from nextedit.record import Diagnostic, Snapshot

LINTED_LANGUAGES = ("python",)


def diagnose(snapshot: Snapshot, file_text: str | None = None, *, window: int = 20,
             linter: str = "auto", select: tuple[str, ...] = ("E9", "F"),
             max_diagnostics: int = 20) -> list[Diagnostic] | None:
    """Diagnostics within `window` lines of the cursor, or None for languages nextedit does not lint.

    `file_text` is the cursor file at the snapshot's revision: the history edits to it are
    replayed and the excerpt spliced in, so imports and definitions elsewhere in the file are
    seen; without it the excerpt is linted alone.
    """
    if language_name(snapshot.path) not in LINTED_LANGUAGES:
        return None
    text, offset = current_file(file_text, snapshot)
    n_lines = snapshot.text.count("\n") + 1
    cursor_line = snapshot.text.count("\n", 0, snapshot.cursor)
    out: list[Diagnostic] = []
    for msg in sorted(lint_python(text, snapshot.path, linter=linter, select=select),
                      key=lambda m: (abs(m.start_line - offset - cursor_line), m.start_line)):
        local = msg.start_line - offset
        if not 0 <= local < n_lines or abs(local - cursor_line) > window:
            continue
        local_end = min(max(local, msg.end_line - offset), n_lines - 1)
        out.append(Diagnostic(severity=msg.severity, message=msg.message, code=msg.code,  # type: ignore[arg-type]
                              start_line=snapshot.start_line + local,
                              end_line=snapshot.start_line + local_end))
        if len(out) >= max_diagnostics:
            break
    out.sort(key=lambda d: (d.start_line, d.code or ""))
    return out
