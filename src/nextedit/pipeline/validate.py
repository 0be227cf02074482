"""The built-in `validate` stage: parse, normalise and check each record (patches apply, history parses)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextedit.pipeline.stage import Stage, StageError
from nextedit.record import Example

__all__ = ["Validate"]


class ValidateConfig(BaseModel):
    """Options of the validate stage."""

    model_config = ConfigDict(extra="forbid")

    check_expected: bool = Field(True, description="each expected patch must apply to snapshot.text")
    check_history: bool = Field(True, description="each history diff must parse as a unified diff")
    check_predictions: bool = Field(False, description="each prediction patch must apply to snapshot.text")
    dedupe_expected: bool = Field(True, description="drop repeated expected alternatives")
    max_text_chars: int | None = Field(None, ge=1, description="reject snapshots with longer text")
    on_invalid: Literal["fail", "drop"] = Field(
        "fail", description="fail: quarantine in <out>.failed.jsonl with the reason; drop: skip silently")
    on_duplicate_id: Literal["fail", "drop", "keep"] = Field(
        "fail", description="a record whose id an earlier record had: fail: quarantine it with the first "
                            "line; drop: skip it; keep: write it (counted in stats duplicate_id)")


class Validate(Stage):
    """Check that a record is usable by later stages; write it back in normalised form.

    Parsing and normalising (defaults filled in, e.g. the editable region) is done by the record
    model; this stage adds the checks that need the patch engine.
    """

    name = "validate"
    version = "1"
    Config = ValidateConfig
    reads = ()
    kind = "cpu"
    cacheable = False  # re-checking is cheaper than a cache lookup

    def process(self, example: Example) -> Example | None:
        """Return the normalised example, or quarantine/drop it with the first problem found."""
        cfg: ValidateConfig = self.config  # type: ignore[assignment]
        try:
            self._check(example, cfg)
        except StageError:
            self.stats["invalid"] += 1
            if cfg.on_invalid == "drop":
                return None
            raise
        if cfg.dedupe_expected and len(set(example.expected)) < len(example.expected):
            self._dedupe(example)
        self.stats["valid"] += 1
        return example

    def duplicate_ids(self) -> Literal["fail", "drop", "keep"]:
        """Ids are checked across the whole file by the runner (it sees every output in order)."""
        return self.config.on_duplicate_id  # type: ignore[attr-defined,no-any-return]

    def _check(self, example: Example, cfg: ValidateConfig) -> None:
        from nextedit import patch  # imported here: the registry stays cheap to import

        snap = example.snapshot
        if cfg.max_text_chars is not None and len(snap.text) > cfg.max_text_chars:
            raise StageError(f"field snapshot.text: {len(snap.text)} characters, more than "
                             f"max_text_chars={cfg.max_text_chars}")
        if cfg.check_expected:
            for i, diff in enumerate(example.expected):
                try:
                    patch.apply(diff, snap.text, start_line=snap.start_line, path=snap.path)
                except patch.PatchError as exc:
                    raise StageError(f"field expected[{i}]: does not apply to snapshot.text: {exc}") from None
        if cfg.check_history:
            for i, event in enumerate(snap.history):
                try:
                    patch.parse(event.diff)
                except patch.PatchError as exc:
                    raise StageError(f"field snapshot.history[{i}].diff: {exc}") from None
        if cfg.check_predictions:
            for i, pred in enumerate(example.predictions):
                if pred.patch:
                    try:
                        patch.apply(pred.patch, snap.text, start_line=snap.start_line, path=snap.path)
                    except patch.PatchError as exc:
                        raise StageError(f"field predictions[{i}].patch: does not apply: {exc}") from None

    def _dedupe(self, example: Example) -> None:
        seen: set[str] = set()
        keep = []
        for i, diff in enumerate(example.expected):
            if diff not in seen:
                seen.add(diff)
                keep.append(i)
        self.stats["expected_deduped"] += len(example.expected) - len(keep)
        cursors = example.expected_cursors
        example.expected = [example.expected[i] for i in keep]
        if cursors:
            example.expected_cursors = [cursors[i] for i in keep]
