"""The Zeta 1 student format: an instruction prompt with the excerpt marked up, answered with the rewritten
editable region between region markers (reference/zed-ep.md section 6.1, landscape.md section 1.1)."""

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
from nextedit.formats.history import Sections, gather, render_event_fenced

__all__ = ["CURSOR", "EDITABLE_END", "EDITABLE_START", "START_OF_FILE", "Zeta1", "excerpt_block", "sections_text"]

EDITABLE_START = "<|editable_region_start|>"
EDITABLE_END = "<|editable_region_end|>"
CURSOR = "<|user_cursor_is_here|>"
START_OF_FILE = "<|start_of_file|>"

INSTRUCTION = (
    "Rewrite the editable region of the excerpt below to make the edit the user is most likely to make "
    "next, judging by their recent edits and where their cursor is. Answer with the whole editable "
    "region between its markers, changed where needed and unchanged elsewhere."
)


def _nl(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def related_header(path: str) -> str:
    """Header line of a related file in the instruction formats."""
    return f"File {path}:\n"


def excerpt_block(frame: Frame) -> str:
    """The fenced excerpt: start-of-file marker, context, marked editable region with the cursor, context."""
    start = f"{START_OF_FILE}\n" if frame.at_file_start else ""
    region = insert_at(frame.region, frame.cursor, CURSOR)
    return (f"```{frame.path}\n{start}{frame.prefix}{EDITABLE_START}\n{region}{EDITABLE_END}\n"
            f"{_nl(frame.suffix)}```\n")


def sections_text(frame: Frame, sections: Sections) -> str:
    """User edits, related code, diagnostics, the heuristic's candidate (option `candidate`) and the excerpt as
    "### ..." sections."""
    parts = ["### User Edits:\n\n" + ("\n".join(sections.events) if sections.events else "(none)\n")]
    if sections.related:
        parts.append("### Related Code:\n\n" + sections.related)
    if sections.diagnostics:
        parts.append("### Diagnostics:\n\n" + sections.diagnostics)
    if sections.candidate is not None:
        parts.append("### Heuristic Suggestion:\n\n" + sections.candidate)
    parts.append("### User Excerpt:\n\n" + excerpt_block(frame))
    return "\n".join(parts)


def region_target(new_region: str, cursor: int | None) -> str:
    """The answer: the new editable region (cursor marked) between the region markers."""
    return f"{EDITABLE_START}\n{insert_at(new_region, cursor, CURSOR)}{EDITABLE_END}"


def parse_region(output: str) -> tuple[str, int | None]:
    """The new region and cursor from an answer; the end marker may be missing (a server that strips
    stop sequences), text before the start marker is ignored."""
    text, _ = cut_at(output, [EDITABLE_END])
    n = text.count(EDITABLE_START)
    if n != 1:
        raise FormatError(f"output has {n} {EDITABLE_START} markers, expected exactly one")
    region = text.split(EDITABLE_START, 1)[1]
    region = region.removeprefix("\n")
    region, cursor = take_cursor(region, CURSOR)
    if START_OF_FILE in region:
        raise FormatError(f"output region contains {START_OF_FILE}")
    return region, cursor


class Zeta1(StudentFormat):
    """Zeta 1: "### Instruction / User Edits / User Excerpt / Response" with region and cursor markers."""

    name: ClassVar[str] = "zeta1"
    version: ClassVar[str] = "1"
    special_tokens: ClassVar[tuple[str, ...]] = (EDITABLE_START, EDITABLE_END, CURSOR, START_OF_FILE)
    stop: ClassVar[list[str]] = [EDITABLE_END]
    end_token: ClassVar[str] = EDITABLE_END
    cursor_token: ClassVar[str] = CURSOR
    answer_prefix: ClassVar[str] = EDITABLE_START

    def build_prompt(self, frame: Frame) -> tuple[str, None]:
        sections = gather(frame, render_event=render_event_fenced, related_header=related_header)
        prompt = f"### Instruction:\n{INSTRUCTION}\n\n{sections_text(frame, sections)}\n### Response:\n"
        return prompt, None

    def encode_target(self, frame: Frame, new_region: str, cursor: int | None) -> str:
        return region_target(new_region, cursor)

    def decode_output(self, output: str, frame: Frame) -> tuple[str, int | None]:
        return parse_region(output)
