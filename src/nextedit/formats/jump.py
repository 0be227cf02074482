"""The zeta1-jump student format: the Zeta 1 prompt, answered either with the rewritten editable region or,
when the next edit lies outside it, with a jump: the location (file, lines) and the edit there."""

from __future__ import annotations

from typing import Any, ClassVar

from nextedit.formats.base import (
    FormatError,
    FormatOptions,
    Frame,
    Parsed,
    Rendered,
    cut_at,
)
from nextedit.formats.history import gather, render_event_fenced
from nextedit.formats.zeta1 import (
    CURSOR,
    EDITABLE_END,
    EDITABLE_START,
    START_OF_FILE,
    Zeta1,
    related_header,
    sections_text,
)
from nextedit.record import Example, Location

__all__ = ["JUMP_END", "JUMP_START", "Zeta1Jump", "jump_target", "parse_jump"]

JUMP_START = "<|next_edit_at|>"
JUMP_END = "<|next_edit_end|>"

INSTRUCTION = (
    "Rewrite the editable region of the excerpt below to make the edit the user is most likely to make "
    "next, judging by their recent edits and where their cursor is. Answer with the whole editable "
    "region between its markers, changed where needed and unchanged elsewhere. If the next edit is "
    f"outside the editable region, answer instead with {JUMP_START}, then `path:first-last` (1-based file "
    f"lines), a newline, the edit there as a unified diff hunk, and {JUMP_END}."
)


def jump_target(location: Location) -> str:
    """The answer for a jump: the location (1-based inclusive lines) and its edit hunk, between jump markers."""
    last = max(location.start_line + 1, location.end_line)
    body = location.patch or ""
    if body and not body.endswith("\n"):
        body += "\n"
    return f"{JUMP_START}{location.path}:{location.start_line + 1}-{last}\n{body}{JUMP_END}"


def parse_jump(output: str) -> Location | None:
    """The location (with its edit) an answer jumps to; None when the answer is a region rewrite."""
    text, _ = cut_at(output, [JUMP_END])
    if JUMP_START not in text:
        return None
    head, _, body = text.split(JUMP_START, 1)[1].partition("\n")
    path, sep, lines = head.strip().rpartition(":")
    first, _, last = lines.partition("-")
    if not sep or not path or not first.strip().isdigit() or not (last.strip() or first).isdigit():
        raise FormatError(f"jump location {head.strip()!r} is not `path:first-last`")
    a, b = int(first), int(last.strip() or first)
    if a < 1 or b < a:
        raise FormatError(f"jump location {head.strip()!r} has an empty or reversed line range")
    return Location(path=path, start_line=a - 1, end_line=b, patch=body or None, reason="zeta1-jump")


class Zeta1Jump(Zeta1):
    """Zeta 1 with jumps: examples whose next edit is elsewhere (`Example.locations`, no edit in the excerpt)
    train the model to answer with the location and the edit there."""

    name: ClassVar[str] = "zeta1-jump"
    version: ClassVar[str] = "1"
    special_tokens: ClassVar[tuple[str, ...]] = (EDITABLE_START, EDITABLE_END, CURSOR, START_OF_FILE, JUMP_START,
                                                 JUMP_END)
    stop: ClassVar[list[str]] = [EDITABLE_END, JUMP_END]
    answer_prefix: ClassVar[str] = ""

    def render_escaped(self, example: Example, options: FormatOptions | None, tokenizer: Any) -> Rendered:
        """As Zeta 1; an example with no expected edit but with locations gets the first location as target."""
        if example.expected or not example.locations:
            return super().render_escaped(example, options, tokenizer)
        frame = self.frame(example, options, tokenizer)
        prompt, messages = self.build_prompt(frame)
        return Rendered(prompt, messages, jump_target(example.locations[0]), frame.window.editable,
                        frame.window.context)

    def parse_escaped(self, output: str, example: Example, options: FormatOptions | None,
                      tokenizer: Any) -> Parsed:
        """As Zeta 1; a jump answer leaves the excerpt unchanged and carries its location in `Parsed.locations`."""
        parsed = super().parse_escaped(output, example, options, tokenizer)
        location = parse_jump(output)
        return parsed if location is None else Parsed(parsed.patch, None, (location,))

    def build_prompt(self, frame: Frame) -> tuple[str, None]:
        sections = gather(frame, render_event=render_event_fenced, related_header=related_header)
        return f"### Instruction:\n{INSTRUCTION}\n\n{sections_text(frame, sections)}\n### Response:\n", None

    def decode_output(self, output: str, frame: Frame) -> tuple[str, int | None]:
        """A region rewrite as in Zeta 1; a jump leaves the region unchanged (the location: `parse_jump`)."""
        if JUMP_START in output:
            parse_jump(output)
            return frame.region, None
        return super().decode_output(output, frame)
