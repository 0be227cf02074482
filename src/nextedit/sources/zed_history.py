"""Zed's `edit_history` text: concatenated file diffs, oldest first, `// User accepted prediction:` markers."""

from __future__ import annotations

from dataclasses import dataclass

from nextedit.patch import split_lines
from nextedit.sources.zed_cursor import ACCEPTED_MARKER


@dataclass
class RawEvent:
    """One diff of the history: header lines as written, paths without a/ b/, hunk text, accepted flag."""

    old_header: str | None
    new_header: str | None
    old_path: str | None
    path: str | None
    diff: str
    predicted: bool = False


def clean_path(header_value: str, prefix: str) -> str | None:
    """The path in a `--- ` / `+++ ` header value: tab-separated timestamps and a/ b/ removed, /dev/null -> None."""
    value = header_value.rstrip("\r\n").split("\t", 1)[0].strip()
    if value == "/dev/null" or not value:
        return None
    return value.removeprefix(prefix)


def canonical_headers(old_path: str | None, path: str | None) -> tuple[str, str]:
    """The `--- a/OLD` / `+++ b/NEW` header lines (without newline) nextedit writes."""
    old = f"--- a/{old_path}" if old_path is not None else "--- /dev/null"
    new = f"+++ b/{path}" if path is not None else "+++ /dev/null"
    return old, new


def parse_edit_history(text: str) -> list[RawEvent]:
    """Split an edit history into one event per file diff (hunks before any header form one event)."""
    events: list[RawEvent] = []
    lines = split_lines(text)
    current: RawEvent | None = None
    predicted = False
    body: list[str] = []

    def close() -> None:
        nonlocal current, body
        if current is not None:
            current.diff = "".join(body)
            events.append(current)
        current, body = None, []

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip("\r\n").strip() == ACCEPTED_MARKER:
            close()
            predicted = True
            i += 1
            continue
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            close()
            old_h, new_h = line.rstrip("\r\n"), lines[i + 1].rstrip("\r\n")
            current = RawEvent(old_h, new_h, clean_path(old_h[4:], "a/"), clean_path(new_h[4:], "b/"), "",
                               predicted)
            predicted = False
            i += 2
            continue
        if current is None:
            if not line.strip():
                i += 1
                continue
            current = RawEvent(None, None, None, None, "", predicted)
            predicted = False
        body.append(line)
        i += 1
    close()
    return events


def render_event(event: RawEvent) -> str:
    """One event back in edit-history form (marker line included when it was an accepted prediction)."""
    out = ACCEPTED_MARKER + "\n" if event.predicted else ""
    if event.old_header is not None or event.new_header is not None:
        old, new = canonical_headers(event.old_path, event.path)
        out += f"{event.old_header or old}\n{event.new_header or new}\n"
    return out + event.diff


def render_edit_history(events: list[RawEvent]) -> str:
    """The concatenated edit history (a newline is added between events whose diff lacks one)."""
    parts: list[str] = []
    for event in events:
        if parts and not parts[-1].endswith("\n"):
            parts[-1] += "\n"
        parts.append(render_event(event))
    return "".join(parts)
