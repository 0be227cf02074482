"""Builders of small, real example files for the dataset command tests (show, stats, split, dedup)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from nextedit import patch
from nextedit.record import Example


def make_example(example_id: str, *, text: str | None = None, path: str = "pkg/mod.py",
                 repo: str | None = None, time: str | None = None, cursor: int | None = None,
                 editable: tuple[int, int] | None = None, new_text: str | None = None,
                 kind: str = "git", **extra: Any) -> Example:
    """A valid example; `new_text` (the text after the edit) becomes the expected patch."""
    text = text if text is not None else "def f(x):\n    return x + 1\n"
    expected = [patch.make(text, new_text, path=path)] if new_text is not None else []
    data: dict[str, Any] = {
        "id": example_id,
        "source": {"kind": kind, "repo": repo, "time": time},
        "snapshot": {"path": path, "text": text, "cursor": cursor if cursor is not None else len(text) // 2,
                     "editable": list(editable) if editable else None},
        "expected": expected,
        **extra,
    }
    return Example.model_validate(data)


def write_jsonl(path: Path, examples: list[Example | dict | str]) -> Path:
    """Write records (examples, dicts or raw lines) one per line."""
    import orjson

    with open(path, "wb") as fh:
        for ex in examples:
            if isinstance(ex, Example):
                fh.write(ex.to_json())
            elif isinstance(ex, dict):
                fh.write(orjson.dumps(ex))
            else:
                fh.write(ex.encode())
            fh.write(b"\n")
    return path


def random_code(seed: int, lines: int = 40) -> str:
    """Code-like text of random identifiers: two different seeds share almost no 5-gram shingles."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))

    out = []
    for _ in range(lines):
        out.append(f"    {word()} = {word()}({word()}, {word()}.{word()}) + {rng.randint(0, 999)}\n")
    return "".join(out)


def change_lines(text: str, rows: range, seed: int = 99) -> str:
    """`text` with the given rows replaced by different random code."""
    lines = text.splitlines(keepends=True)
    fresh = random_code(seed, len(rows)).splitlines(keepends=True)
    for row, new in zip(rows, fresh, strict=True):
        lines[row] = new
    return "".join(lines)
