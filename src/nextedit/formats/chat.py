"""The chat student format: system and user messages for instruction-tuned models; the assistant answers
with the rewritten editable region between region markers (as Continue's Instinct does, landscape.md 1.3)."""

from __future__ import annotations

from typing import Any, ClassVar

from nextedit.formats.base import Frame, StudentFormat
from nextedit.formats.history import gather, render_event_fenced
from nextedit.formats.zeta1 import (
    CURSOR,
    EDITABLE_END,
    EDITABLE_START,
    START_OF_FILE,
    parse_region,
    region_target,
    related_header,
    sections_text,
)

__all__ = ["SYSTEM", "Chat", "messages_to_prompt"]

SYSTEM = (
    "You predict the next edit in a code editor. The user shows their recent edits and an excerpt of the "
    f"file they are editing, with the cursor at {CURSOR} and the editable region between "
    f"{EDITABLE_START} and {EDITABLE_END}. Reply with only the editable region between the same two "
    "markers, rewritten with the edit they will most likely make next (unchanged if there is none), "
    "and the cursor marker where the cursor should end up."
)


def messages_to_prompt(messages: list[dict[str, str]], tokenizer: Any = None) -> str:
    """The prompt text for `messages`: the tokenizer's chat template (with the generation prompt) when it has
    one, else plain "### Role:" sections ending with "### Assistant:"."""
    template = getattr(tokenizer, "apply_chat_template", None)
    if callable(template) and getattr(tokenizer, "chat_template", None):
        return str(template(messages, tokenize=False, add_generation_prompt=True))
    parts = [f"### {m['role'].capitalize()}:\n{m['content'].rstrip(chr(10))}\n" for m in messages]
    return "\n".join(parts) + "\n### Assistant:\n"


class Chat(StudentFormat):
    """Chat messages (system + user); the target is the assistant message."""

    name: ClassVar[str] = "chat"
    version: ClassVar[str] = "1"
    special_tokens: ClassVar[tuple[str, ...]] = (EDITABLE_START, EDITABLE_END, CURSOR, START_OF_FILE)
    stop: ClassVar[list[str]] = [EDITABLE_END]
    end_token: ClassVar[str] = EDITABLE_END
    cursor_token: ClassVar[str] = CURSOR
    answer_prefix: ClassVar[str] = EDITABLE_START

    def build_prompt(self, frame: Frame) -> tuple[str, list[dict[str, str]]]:
        sections = gather(frame, render_event=render_event_fenced, related_header=related_header)
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": sections_text(frame, sections)}]
        return messages_to_prompt(messages, frame.tokenizer), messages

    def encode_target(self, frame: Frame, new_region: str, cursor: int | None) -> str:
        return region_target(new_region, cursor)

    def decode_output(self, output: str, frame: Frame) -> tuple[str, int | None]:
        return parse_region(output)
