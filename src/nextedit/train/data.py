"""Training rows from example records: render with a student format, tokenize prompt and completion, mask the prompt.

Rows are pre-tokenized here (`input_ids` + `completion_mask`) so that the prompt a model is trained
on is token for token the prompt `local:PATH` feeds it at prediction time (`encode_prompt`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nextedit.record import Example


@dataclass
class RowStats:
    """What happened to each example while building rows."""

    rows: int = 0
    tokens: int = 0
    completion_tokens: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def line(self, name: str) -> str:
        """One human line, e.g. `train: 120 rows (48,210 tokens); skipped: 3 too long`."""
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return f"{name}: {self.rows} rows ({self.tokens:,} tokens)" + (f"; skipped: {skipped}" if skipped else "")


def prompt_text(rendered: Any, tokenizer: Any) -> str:
    """The text fed to the model: the chat template applied to `messages` (chat formats), else `prompt`."""
    if rendered.messages is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(rendered.messages, tokenize=False, add_generation_prompt=True)
    return rendered.prompt


def encode_prompt(rendered: Any, tokenizer: Any) -> list[int]:
    """Token ids of the prompt (with the tokenizer's BOS, if it adds one): shared by training and prediction."""
    text = prompt_text(rendered, tokenizer)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and getattr(tokenizer, "add_bos_token", False) and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def encode_completion(target: str, tokenizer: Any) -> list[int]:
    """Token ids of a training target, ending with the end-of-sequence token."""
    ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = [*ids, tokenizer.eos_token_id]
    return ids


def _examples(path: Path, limit: int | None, stats: RowStats):
    from nextedit.jsonl import read_examples

    def bad(line_no: int, raw: bytes, reason: str) -> None:
        stats.skipped["unreadable"] += 1

    for n, example in enumerate(read_examples(path, errors="skip", on_error=bad)):
        if limit is not None and n >= limit:
            break
        yield example


def sft_rows(path: Path, fmt: Any, options: Any, tokenizer: Any, *, max_length: int,
             limit: int | None = None) -> tuple[list[dict[str, list[int]]], RowStats]:
    """Pre-tokenized SFT rows (`input_ids`, `completion_mask`) for every usable example in `path`.

    An example with no expected edit trains the format's answer for it (a jump for `zeta1-jump` when it has
    `locations`), else the unchanged region. Examples the format refuses, or longer than `max_length` tokens,
    are skipped and counted in the returned stats.
    """
    from nextedit.formats import FormatError

    stats = RowStats()
    rows = []
    for example in _examples(path, limit, stats):
        try:
            rendered = fmt.render(example, options, tokenizer)
            if rendered.target is None and not example.expected:
                # "no edit is right" (a format with jumps answered it above): train on the unchanged region
                example = example.model_copy(update={"expected": [""], "expected_cursors": []})
                rendered = fmt.render(example, options, tokenizer)
        except FormatError:
            stats.skipped["refused by format"] += 1
            continue
        if rendered.target is None:
            stats.skipped["no expected patch"] += 1
            continue
        prompt = encode_prompt(rendered, tokenizer)
        completion = encode_completion(rendered.target, tokenizer)
        if len(prompt) + len(completion) > max_length:
            stats.skipped["too long"] += 1
            continue
        rows.append({"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + [1] * len(completion)})
        stats.rows += 1
        stats.tokens += len(prompt) + len(completion)
        stats.completion_tokens += len(completion)
    return rows, stats


def rejected_example(example: Example) -> Example | None:
    """A copy of the example whose expected patch is its rejected one (to render the rejected target)."""
    if not example.rejected:
        return None
    return example.model_copy(update={"expected": [example.rejected], "expected_cursors": []})


def dpo_rows(path: Path, fmt: Any, options: Any, tokenizer: Any, *, max_length: int,
             limit: int | None = None) -> tuple[list[dict[str, str]], RowStats]:
    """Preference rows (`prompt`, `chosen`, `rejected` texts) from examples that have a rejected patch."""
    from nextedit.formats import FormatError

    stats = RowStats()
    rows = []
    for example in _examples(path, limit, stats):
        bad = rejected_example(example)
        if bad is None:
            stats.skipped["no rejected patch"] += 1
            continue
        try:
            good_r = fmt.render(example, options, tokenizer)
            bad_r = fmt.render(bad, options, tokenizer)
        except FormatError:
            stats.skipped["refused by format"] += 1
            continue
        if good_r.target is None or bad_r.target is None or good_r.target == bad_r.target:
            stats.skipped["no distinct chosen/rejected"] += 1
            continue
        prompt = prompt_text(good_r, tokenizer)
        n = len(encode_prompt(good_r, tokenizer)) + max(len(encode_completion(good_r.target, tokenizer)),
                                                        len(encode_completion(bad_r.target, tokenizer)))
        if n > max_length:
            stats.skipped["too long"] += 1
            continue
        rows.append({"prompt": prompt, "chosen": good_r.target, "rejected": bad_r.target})
        stats.rows += 1
        stats.tokens += n
    return rows, stats
