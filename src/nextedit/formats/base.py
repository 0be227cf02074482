"""The student-format interface: options, rendered prompt/target, parsed output, errors and the registry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from nextedit.formats.budget import TokenCounter, Window, choose_window, token_counter
from nextedit.formats.escape import (
    escape,
    escape_diff,
    unescape,
    unescape_diff,
    unescaped_offset,
)
from nextedit.patch import PatchError, apply, from_region, to_region
from nextedit.record import Example, Location, Snapshot

__all__ = [
    "FORMATS",
    "FormatError",
    "FormatOptions",
    "Frame",
    "Parsed",
    "Rendered",
    "StudentFormat",
    "format_names",
    "get_format",
]

# Format name -> "module:Class", imported when used. To add a format, add one line here.
FORMATS: dict[str, str] = {
    "zeta1": "nextedit.formats.zeta1:Zeta1",
    "seed-multi-region": "nextedit.formats.multi_region:SeedMultiRegion",
    "sweep": "nextedit.formats.sweep:Sweep",
    "chat": "nextedit.formats.chat:Chat",
    "zeta1-jump": "nextedit.formats.jump:Zeta1Jump",
}
# Other names accepted by get_format (lower case).
ALIASES: dict[str, str] = {
    "zeta2.1": "seed-multi-region",
    "multi-region": "seed-multi-region",
    "v0318seedmultiregions": "seed-multi-region",
    "sweep-next-edit": "sweep",
}

# End-of-sequence strings some servers leave at the end of a completion; parse drops them.
TRAILING_EOS = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<[end▁of▁sentence]>")


class FormatError(ValueError):
    """An example a format cannot render (with the reason) or a model output it cannot parse."""


class FormatOptions(BaseModel):
    """Knobs shared by every format: what goes into the prompt and the token budgets of its parts."""

    model_config = ConfigDict(extra="forbid")

    diagnostics: bool = Field(True, description="Show the snapshot's diagnostics.")
    history_events: int = Field(6, ge=0, description="At most this many recent edits (newest kept).")
    editable_tokens: int = Field(350, ge=1, description="Budget of the editable region.")
    context_tokens: int = Field(1024, ge=0, description="Budget of the code shown around the editable region.")
    related_tokens: int = Field(1024, ge=0, description="Budget of related code (and diagnostics).")
    history_tokens: int = Field(1024, ge=0, description="Budget of the edit history.")
    candidate: bool = Field(False, description="Show the propagate heuristic's edit of the editable region "
                                               "(or that it has none): a hint the model may copy or ignore.")


@dataclass(frozen=True)
class Rendered:
    """A rendered example: the prompt text, chat messages (chat formats), and the training target.

    `target` is expected[0] in the format's output syntax, ending with the format's end token; None
    when the example has no expected patch. `editable` / `context` are the char ranges of
    snapshot.text the prompt shows as editable and as a whole.
    """

    prompt: str
    messages: list[dict[str, str]] | None
    target: str | None
    editable: tuple[int, int] = (0, 0)
    context: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Parsed:
    """A model output turned back into a unified diff against snapshot.text ("" = no edit) and the
    predicted cursor (char offset in the text after applying the patch), when the output has one; `locations`:
    where the output says the next edit is (formats that can answer with a jump)."""

    patch: str
    cursor: int | None
    locations: tuple[Location, ...] = ()


@dataclass(frozen=True)
class Frame:
    """One example as a format sees it: options, token counter and the window of the snapshot shown."""

    example: Example
    options: FormatOptions
    count: TokenCounter
    window: Window
    tokenizer: Any = None

    @property
    def snapshot(self) -> Snapshot:
        return self.example.snapshot

    @property
    def text(self) -> str:
        return self.example.snapshot.text

    @property
    def path(self) -> str:
        return self.example.snapshot.path

    @property
    def prefix(self) -> str:
        """Context shown before the editable region."""
        return self.text[self.window.context[0]:self.window.editable[0]]

    @property
    def region(self) -> str:
        """The editable region."""
        return self.text[self.window.editable[0]:self.window.editable[1]]

    @property
    def suffix(self) -> str:
        """Context shown after the editable region."""
        return self.text[self.window.editable[1]:self.window.context[1]]

    @property
    def cursor(self) -> int:
        """The cursor as an offset into the editable region."""
        return self.snapshot.cursor - self.window.editable[0]

    @property
    def at_file_start(self) -> bool:
        """Whether the context shown starts at the first line of the file."""
        return self.snapshot.start_line == 0 and self.window.context[0] == 0

    def file_lines(self, rows: tuple[int, int]) -> tuple[int, int]:
        """1-based first and last file line of excerpt rows [a, b)."""
        first = self.snapshot.start_line + rows[0] + 1
        return first, max(first, self.snapshot.start_line + rows[1])


def insert_at(text: str, offset: int | None, token: str) -> str:
    """`text` with `token` inserted at `offset` (unchanged when offset is None)."""
    if offset is None:
        return text
    return text[:offset] + token + text[offset:]


def take_cursor(text: str, token: str) -> tuple[str, int | None]:
    """Remove the cursor token from `text`; return the text and where the token was (None if absent). Several
    tokens (a small model's slip: 4 of 60 quickstart answers had two) are all removed and place no cursor: the
    code is the answer, the cursor only a hint."""
    n = text.count(token)
    if n != 1:
        return text.replace(token, ""), None
    at = text.index(token)
    return text[:at] + text[at + len(token):], at


def cut_at(output: str, stops: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """`output` up to the first stop string (and whether one was found); trailing EOS strings dropped."""
    first = min((i for i in (output.find(s) for s in stops if s) if i >= 0), default=-1)
    if first >= 0:
        return output[:first], True
    changed = True
    while changed:
        changed = False
        for eos in TRAILING_EOS:
            if output.endswith(eos):
                output, changed = output[: -len(eos)], True
    return output, False


class StudentFormat:
    """A versioned student prompt format. Subclasses fill the class attributes and three hooks:
    `build_prompt(frame)`, `encode_target(frame, new_region, cursor)` and `decode_output(output, frame)`.

    `render` and `parse` must be called with the same options and tokenizer: both recompute the same
    window of the snapshot from them."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: Strings that have a meaning in the format; escaped wherever they occur in inputs (`formats.escape`).
    special_tokens: ClassVar[tuple[str, ...]] = ()
    #: Substrings escaped in inputs beyond the special tokens (e.g. the start of numbered markers).
    reserved: ClassVar[tuple[str, ...]] = ()
    #: Stop sequences for generation.
    stop: ClassVar[list[str]] = []
    #: What every target ends with.
    end_token: ClassVar[str] = ""
    cursor_token: ClassVar[str] = ""
    #: What every answer starts with, whatever the edit: a predictor may feed it to the model as the start
    #: of the answer (constrained decoding) instead of hoping the model writes it.
    answer_prefix: ClassVar[str] = ""

    # ------------------------------------------------------------------ public API

    def render(self, example: Example, options: FormatOptions | None = None, tokenizer: Any = None) -> Rendered:
        """Prompt (and messages) for the example and, when it has one, the target for expected[0].

        Marker strings of the format inside the example's text, paths, history, related code and diagnostics
        are escaped (`formats.escape`), so they never end or corrupt the prompt; `parse` undoes it.
        Raises FormatError when the cursor line does not fit the editable budget, or when expected[0] does
        not apply or changes text outside the editable window chosen for the budget (the window is never
        grown for the target, so training prompts look exactly like inference prompts)."""
        escaped = self.escape_example(example)
        rendered = self.render_escaped(escaped, options, tokenizer)
        if escaped is example:
            return rendered
        text = escaped.snapshot.text
        back = (lambda r: (unescaped_offset(text, r[0]), unescaped_offset(text, r[1])))
        return Rendered(rendered.prompt, rendered.messages, rendered.target, back(rendered.editable),
                        back(rendered.context))

    def parse(self, output: str, example: Example, options: FormatOptions | None = None,
              tokenizer: Any = None) -> Parsed:
        """Turn a model output back into a patch against snapshot.text and a cursor; FormatError if unparseable.
        Escaped marker strings in the output are unescaped."""
        escaped = self.escape_example(example)
        parsed = self.parse_escaped(output, escaped, options, tokenizer)
        if escaped is example and unescape(output) == output:
            return parsed
        patch = unescape_diff(parsed.patch)
        cursor = parsed.cursor
        if cursor is not None:
            try:
                after = apply(parsed.patch, escaped.snapshot.text, start_line=escaped.snapshot.start_line)
            except PatchError:
                after = escaped.snapshot.text
            cursor = unescaped_offset(after, cursor)
        locations = tuple(loc.model_copy(update={"path": unescape(loc.path), "patch": loc.patch and
                                                 unescape_diff(loc.patch)}) for loc in parsed.locations)
        return Parsed(patch, cursor, locations)

    def render_escaped(self, example: Example, options: FormatOptions | None, tokenizer: Any) -> Rendered:
        """`render` on an example whose marker strings are already escaped."""
        frame = self.frame(example, options, tokenizer)
        target = None
        if example.expected:
            new_region, cursor = self.expected_region(frame)
            target = self.encode_target(frame, new_region, cursor)
        prompt, messages = self.build_prompt(frame)
        return Rendered(prompt, messages, target, frame.window.editable, frame.window.context)

    def parse_escaped(self, output: str, example: Example, options: FormatOptions | None,
                      tokenizer: Any) -> Parsed:
        """`parse` against an escaped example: the patch and cursor refer to the escaped text."""
        frame = self.frame(example, options, tokenizer)
        new_region, cursor = self.decode_output(output, frame)
        return self.to_parsed(frame, new_region, cursor)

    def spec(self, options: FormatOptions | None = None) -> dict[str, Any]:
        """What a trainer or server needs to know about the format (saved next to a trained model)."""
        return {"format": self.name, "format_version": self.version, "stop": list(self.stop),
                "end_token": self.end_token, "special_tokens": list(self.special_tokens),
                "options": (options or FormatOptions()).model_dump()}

    def no_edit_target(self, frame: Frame) -> str:
        """The answer that leaves the editable region unchanged (what abstention is measured against)."""
        return self.encode_target(frame, frame.region, None)

    # ------------------------------------------------------------------ shared steps

    def frame(self, example: Example, options: FormatOptions | None, tokenizer: Any) -> Frame:
        """The example with its window chosen for the budgets."""
        options = options or FormatOptions()
        count = token_counter(tokenizer)
        try:
            window = choose_window(example.snapshot, options.editable_tokens, options.context_tokens, count)
        except ValueError as exc:
            raise FormatError(str(exc)) from None
        return Frame(example, options, count, window, tokenizer)

    def markers(self) -> tuple[str, ...]:
        """The strings escaped in inputs: special tokens, reserved prefixes, stop and end strings."""
        return tuple(m for m in dict.fromkeys((*self.special_tokens, *self.reserved, *self.stop, self.end_token,
                                               self.cursor_token)) if m)

    def escape_example(self, example: Example) -> Example:
        """The example with the format's marker strings escaped in every text it shows (the same object when
        nothing needs escaping); offsets (cursor, editable, expected cursors) follow the escaped text."""
        markers = self.markers()
        snap = example.snapshot
        texts = [snap.path, snap.text, *(e.diff for e in snap.history), *(e.path for e in snap.history),
                 *(r.text for r in snap.related), *(r.path for r in snap.related),
                 *(d.message for d in snap.diagnostics), *example.expected,
                 *(loc.path for loc in example.locations), *(loc.patch or "" for loc in example.locations)]
        if not any(escape(t, markers) != t for t in texts):
            return example
        text = escape(snap.text, markers)

        def at(offset: int) -> int:
            return len(escape(snap.text[:offset], markers))

        def esc_path(path: str | None) -> str | None:
            return None if path is None else escape(path, markers)

        new_snap = snap.model_copy(update={
            "path": escape(snap.path, markers), "text": text, "cursor": at(snap.cursor),
            "editable": None if snap.editable is None else (at(snap.editable[0]), at(snap.editable[1])),
            "history": [e.model_copy(update={"path": escape(e.path, markers), "old_path": esc_path(e.old_path),
                                             "diff": escape_diff(e.diff, markers)}) for e in snap.history],
            "related": [r.model_copy(update={"path": escape(r.path, markers), "text": escape(r.text, markers)})
                        for r in snap.related],
            "diagnostics": [d.model_copy(update={"message": escape(d.message, markers)}) for d in snap.diagnostics],
        })
        update: dict[str, Any] = {
            "snapshot": new_snap, "expected": [escape_diff(p, markers) for p in example.expected],
            "locations": [loc.model_copy(update={"path": escape(loc.path, markers),
                                                 "patch": loc.patch and escape_diff(loc.patch, markers)})
                          for loc in example.locations],
        }
        if example.expected_cursors:
            update["expected_cursors"] = [self._escaped_cursor(example, i, c, markers)
                                          for i, c in enumerate(example.expected_cursors)]
        return example.model_copy(update=update)

    @staticmethod
    def _escaped_cursor(example: Example, i: int, cursor: int | None, markers: tuple[str, ...]) -> int | None:
        """Expected cursor i (an offset in the text after expected[i]) as an offset in the escaped after-text."""
        if cursor is None or i >= len(example.expected):
            return cursor
        try:
            after = apply(example.expected[i], example.snapshot.text, start_line=example.snapshot.start_line)
        except PatchError:
            return cursor
        return len(escape(after[:cursor], markers))

    def expected_region(self, frame: Frame) -> tuple[str, int | None]:
        """The editable region after expected[0] and the expected cursor as an offset into it (or None)."""
        ex = frame.example
        start_line = frame.snapshot.start_line
        try:
            apply(ex.expected[0], frame.text, start_line=start_line)
        except PatchError as exc:
            raise FormatError(f"expected[0] does not apply to snapshot.text: {exc}") from None
        try:
            _, new_region = to_region(ex.expected[0], frame.text, frame.window.editable, start_line=start_line)
        except PatchError:
            a, b = frame.file_lines(frame.window.editable_rows)
            raise FormatError(f"expected[0] changes text outside the editable window (file lines {a}-{b}) "
                              f"chosen for editable_tokens={frame.options.editable_tokens}") from None
        cursor = ex.expected_cursors[0] if ex.expected_cursors else None
        if cursor is not None:
            cursor -= frame.window.editable[0]
            if not 0 <= cursor <= len(new_region):
                cursor = None
        return new_region, cursor

    def to_parsed(self, frame: Frame, new_region: str, cursor: int | None) -> Parsed:
        """The patch replacing the editable region with `new_region`; cursor made a text offset."""
        patch = from_region(frame.text, frame.window.editable, new_region, path=frame.path,
                            start_line=frame.snapshot.start_line)
        return Parsed(patch, None if cursor is None else frame.window.editable[0] + cursor)

    # ------------------------------------------------------------------ hooks

    def build_prompt(self, frame: Frame) -> tuple[str, list[dict[str, str]] | None]:
        raise NotImplementedError

    def encode_target(self, frame: Frame, new_region: str, cursor: int | None) -> str:
        raise NotImplementedError

    def decode_output(self, output: str, frame: Frame) -> tuple[str, int | None]:
        raise NotImplementedError


def format_names() -> list[str]:
    """Registered format names."""
    return list(FORMATS)


def get_format(name: str) -> StudentFormat:
    """The format registered under `name` (case-insensitive; aliases such as "zeta2.1" work)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    ref = FORMATS.get(key)
    if ref is None:
        raise FormatError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    module_name, _, attr = ref.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls()
