"""Turning an example file into prompt/completion training rows of one student format (streaming, with a
failed file for the examples the format refuses)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nextedit.formats.base import FormatError, FormatOptions, StudentFormat
from nextedit.jsonl import FailedWriter, JsonlWriter, iter_lines
from nextedit.patch import PatchError, apply
from nextedit.record import Example, RecordError, parse_example

__all__ = ["FormatSummary", "check_round_trip", "format_file", "load_tokenizer", "to_row"]


@dataclass(frozen=True)
class FormatSummary:
    """What a format run did: rows written, examples refused (in the failed file), where they went."""

    written: int
    refused: int
    output: Path
    failed: Path | None


def check_round_trip(fmt: StudentFormat, example: Example, target: str, options: FormatOptions,
                     tokenizer: Any = None) -> None:
    """Raise FormatError unless parsing `target` gives a patch that turns snapshot.text into the same text as
    expected[0] does (and the expected cursor, when the target carries one)."""
    snap = example.snapshot
    parsed = fmt.parse(target, example, options, tokenizer)
    try:
        want = apply(example.expected[0], snap.text, start_line=snap.start_line)
        got = apply(parsed.patch, snap.text, start_line=snap.start_line)
    except PatchError as exc:
        raise FormatError(f"round trip failed: {exc}") from None
    if want != got:
        raise FormatError("round trip failed: the parsed target does not reproduce expected[0]")
    expected_cursor = example.expected_cursors[0] if example.expected_cursors else None
    if parsed.cursor is not None and parsed.cursor != expected_cursor:
        raise FormatError(f"round trip failed: cursor {parsed.cursor}, expected {expected_cursor}")


def to_row(fmt: StudentFormat, example: Example, options: FormatOptions, tokenizer: Any = None, *,
           empty_as_no_edit: bool = False, check: bool = True, scrub: bool = False) -> dict[str, Any]:
    """One training row {id, format, format_version, prompt, completion[, messages]} or FormatError.
    `scrub`: secrets in every text of the example become placeholders first (nextedit.privacy)."""
    if scrub:
        from nextedit.privacy.records import scrub_example

        example = scrub_example(example)
    if not example.expected:
        if not empty_as_no_edit:
            raise FormatError("no expected patch (pass --empty-as-no-edit to train 'no edit' on it)")
        example = example.model_copy(update={"expected": [""], "expected_cursors": []})
    rendered = fmt.render(example, options, tokenizer)
    assert rendered.target is not None
    if check:
        check_round_trip(fmt, example, rendered.target, options, tokenizer)
    row: dict[str, Any] = {"id": example.id, "format": fmt.name, "format_version": fmt.version,
                           "prompt": rendered.prompt, "completion": rendered.target}
    if rendered.messages is not None:
        row["messages"] = [*rendered.messages, {"role": "assistant", "content": rendered.target}]
    return row


def format_file(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], fmt: StudentFormat,
                options: FormatOptions | None = None, tokenizer: Any = None, *, empty_as_no_edit: bool = False,
                check: bool = True, scrub: bool = False) -> FormatSummary:
    """Write one row per example of `input_path` to `output_path` (atomically); malformed lines and refused
    examples go to the failed file `<output>.failed.jsonl` with the reason."""
    options = options or FormatOptions()
    name = str(input_path)
    stage = f"format:{fmt.name}"
    with JsonlWriter(output_path) as out, FailedWriter(output_path, stage=stage) as failed:
        for line, raw in iter_lines(input_path):
            try:
                example = parse_example(raw, file=name, line=line)
            except RecordError as exc:
                failed.write(file=name, line=line, reason=str(exc), raw=raw)
                continue
            try:
                out.write(to_row(fmt, example, options, tokenizer, empty_as_no_edit=empty_as_no_edit,
                                 check=check, scrub=scrub))
            except FormatError as exc:
                failed.write(file=name, line=line, reason=str(exc), raw=raw)
    return FormatSummary(out.count, failed.count, Path(output_path), failed.path if failed.count else None)


def load_tokenizer(spec: str) -> Any:
    """A tokenizer from a `tokenizer.json` file (the `tokenizers` library) or a Hugging Face model folder
    (transformers, imported only here)."""
    path = Path(spec)
    if path.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path))
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise FormatError("loading a model tokenizer needs transformers: pip install transformers") from None
    return AutoTokenizer.from_pretrained(spec)
