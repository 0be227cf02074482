"""Prompt/completion training rows of one student format: the format step (run by the executor, which
quarantines the examples the format refuses) and the row builder it uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nextedit.formats.base import FormatError, FormatOptions, StudentFormat
from nextedit.patch import PatchError, apply
from nextedit.pipeline.stage import Stage, StageError
from nextedit.record import Example

__all__ = ["FormatConfig", "FormatStage", "FormatSummary", "check_round_trip", "format_file", "load_tokenizer",
           "to_row"]


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


class FormatConfig(BaseModel):
    """Options of the format step."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field("zeta1", description="student format name (see `nextedit formats`)")
    options: FormatOptions = Field(default_factory=FormatOptions)
    tokenizer: str | None = Field(None, description="tokenizer.json or model folder; default bytes/3")
    empty_as_no_edit: bool = False
    check: bool = True
    scrub: bool = Field(False, description="scrub secrets from every text of the row (nextedit.privacy)")


class FormatStage(Stage):
    """Render each example as a training row of one student format; refused examples are quarantined."""

    name = "format"
    version = "1"
    Config = FormatConfig
    emits = "row"
    cacheable = False

    def __init__(self, config: Any = None, *, tokenizer: Any = None):
        super().__init__(config)
        from nextedit.formats.base import get_format

        self.fmt = get_format(self.config.format)
        self.name = f"format:{self.fmt.name}"  # type: ignore[misc]  # quarantine rows name the format
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loaded once per process from the config, unless one was given)."""
        if self._tokenizer is None and self.config.tokenizer:
            self._tokenizer = load_tokenizer(self.config.tokenizer)
        return self._tokenizer

    def process(self, example: Example) -> dict[str, Any]:
        cfg: FormatConfig = self.config
        try:
            return to_row(self.fmt, example, cfg.options, self.tokenizer, empty_as_no_edit=cfg.empty_as_no_edit,
                          check=cfg.check, scrub=cfg.scrub)
        except FormatError as exc:
            raise StageError(str(exc)) from None


def format_file(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], fmt: StudentFormat,
                options: FormatOptions | None = None, tokenizer: Any = None, *, empty_as_no_edit: bool = False,
                check: bool = True, scrub: bool = False, progress: bool | None = False) -> FormatSummary:
    """Write one row per example of `input_path` to `output_path` with the executor; malformed lines and
    refused examples go to the failed file `<output>.failed.jsonl` with the reason."""
    from nextedit.pipeline.engine import RunError, run_stage, sidecar_paths

    stage = FormatStage({"format": fmt.name, "options": options or FormatOptions(),
                         "empty_as_no_edit": empty_as_no_edit, "check": check, "scrub": scrub},
                        tokenizer=tokenizer)
    stage.fmt = fmt
    try:
        run = run_stage(stage, input_path, output_path, concurrency=1, cache=False, progress=progress,
                        restart=True)
    except RunError as exc:
        raise FormatError(str(exc)) from None
    except BaseException:  # Ctrl-C, SIGTERM: a format run always restarts, so its partial files are litter
        paths = sidecar_paths(output_path)
        for key in ("partial", "failed_partial", "checkpoint"):
            paths[key].unlink(missing_ok=True)
        raise
    failed = Path(run.failed_output) if run.failed_output else None
    return FormatSummary(run.written, run.failed, Path(output_path), failed)


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
