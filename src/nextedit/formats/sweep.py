"""The Sweep Next-Edit student format: `<|file_sep|>` sections for related files and edits, then the window
as original / current / updated blocks; the model completes the updated block (landscape.md section 1.4)."""

from __future__ import annotations

from typing import ClassVar

from nextedit.formats.base import (
    FormatError,
    Frame,
    StudentFormat,
    cut_at,
    insert_at,
    take_cursor,
)
from nextedit.formats.history import event_hunks, gather, render_event_unified
from nextedit.patch import PatchError, reverse, to_region

__all__ = ["CURSOR", "END", "FILE_SEP", "Sweep"]

FILE_SEP = "<|file_sep|>"
END = "<|endoftext|>"
CURSOR = "<|cursor|>"
REPO_NAME = "<|repo_name|>"


def _nl(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _header(path: str) -> str:
    return f"{FILE_SEP}{path}\n"


def _original_region(frame: Frame) -> str:
    """The editable window before the latest edit of this file (the current window when that edit does
    not lie inside it)."""
    snap = frame.snapshot
    for event in reversed(snap.history):
        if event.path != snap.path:
            continue
        try:
            _, before = to_region(reverse(event.diff), frame.text, frame.window.editable,
                                  start_line=snap.start_line)
        except (PatchError, ValueError):
            break
        return before
    return frame.region


def _history_block(path: str, old: str, new: str) -> str:
    return f"{FILE_SEP}{path}.diff\noriginal:\n{_nl(old)}updated:\n{_nl(new)}"


class Sweep(StudentFormat):
    """Related files, diagnostics, edit history as original/updated pairs, the file context, then the
    editable window as `original/`, `current/` (with the cursor) and `updated/` blocks."""

    name: ClassVar[str] = "sweep"
    version: ClassVar[str] = "1"
    special_tokens: ClassVar[tuple[str, ...]] = (FILE_SEP, END, CURSOR, REPO_NAME)
    stop: ClassVar[list[str]] = [FILE_SEP, END]
    end_token: ClassVar[str] = END
    cursor_token: ClassVar[str] = CURSOR

    def build_prompt(self, frame: Frame) -> tuple[str, None]:
        snap = frame.snapshot
        # Events are selected (count, budget) in Zed's unified form, then shown as Sweep's pairs.
        sections = gather(frame, render_event=render_event_unified, related_header=_header)
        kept = snap.history[len(snap.history) - len(sections.events):] if sections.events else []
        parts = [sections.related]
        if sections.diagnostics:
            parts.append(f"{FILE_SEP}diagnostics\n{sections.diagnostics}")
        for event in kept:
            parts.extend(_history_block(event.path, old, new) for old, new in event_hunks(event))
        if sections.candidate is not None:
            parts.append(f"{FILE_SEP}heuristic_suggestion\n{sections.candidate}")
        a, b = frame.file_lines(frame.window.editable_rows)
        where = f"{snap.path}:{a}:{b}"
        if frame.prefix or frame.suffix:
            parts.append(f"{FILE_SEP}{snap.path}\n{frame.prefix}{_nl(frame.region)}{_nl(frame.suffix)}")
        parts.append(f"{FILE_SEP}original/{where}\n{_nl(_original_region(frame))}")
        parts.append(f"{FILE_SEP}current/{where}\n{_nl(insert_at(frame.region, frame.cursor, CURSOR))}")
        parts.append(f"{FILE_SEP}updated/{where}\n")
        return "".join(parts), None

    def encode_target(self, frame: Frame, new_region: str, cursor: int | None) -> str:
        return insert_at(new_region, cursor, CURSOR) + END

    def decode_output(self, output: str, frame: Frame) -> tuple[str, int | None]:
        text, _ = cut_at(output, self.stop)
        region, cursor = take_cursor(text, CURSOR)
        if REPO_NAME in region:
            raise FormatError(f"output contains {REPO_NAME}")
        return region, cursor
