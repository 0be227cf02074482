"""Read and write Zed data files: Markdown evals (.md), ExampleSpec JSONL (.jsonl, .jsonl.gz) and single
ExampleSpec JSON (.json); bad inputs are reported one by one and never stop the good ones."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from nextedit.jsonl import JsonlWriter, read_dicts
from nextedit.record import Example, RecordError
from nextedit.sources.zed_markdown import parse_markdown, write_markdown
from nextedit.sources.zed_spec import example_to_spec, spec_to_example

ExportFormat = Literal["md", "jsonl"]
_SUFFIXES = (".jsonl.gz", ".jsonl", ".json", ".md")
_UNSAFE = set(" :~^?*[\\@{/<>|\"")


@dataclass
class Failure:
    """One input that could not be imported: where, why, and the raw input when there is one."""

    file: str
    line: int | None
    reason: str
    raw: bytes | dict[str, Any] | None = None


OnFailure = Callable[[Failure], None]


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in _SUFFIXES if name.endswith(s)), None)


def file_stem(path: Path) -> str:
    """The file name without its Zed suffix (`a.jsonl.gz` -> `a`)."""
    suffix = _suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def is_readme(path: Path) -> bool:
    """A folder's README.md: documentation, never an eval (skipped even when named, e.g. by a glob)."""
    return path.name.lower() == "readme.md"


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files to import: given files as they are; folders searched (recursively, sorted) for .md, .json,
    .jsonl and .jsonl.gz files; README.md files are skipped either way."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and _suffix(p) and not is_readme(p))
        elif not is_readme(path):
            out.append(path)
    return out


def _report(on_failure: OnFailure | None, failure: Failure) -> None:
    if on_failure is None:
        raise RecordError(failure.reason)
    on_failure(failure)


def read_zed_file(path: str | os.PathLike[str], *, on_failure: OnFailure | None = None) -> Iterator[Example]:
    """Yield the records in one Zed file; each bad record goes to `on_failure` (default: raise)."""
    p = Path(path)
    name = str(p)
    suffix = _suffix(p)
    try:
        if suffix == ".md":
            text = p.read_bytes().decode("utf-8")
            try:
                parsed = parse_markdown(text, file=name)
                example = spec_to_example(parsed.spec, file=name, default_id=file_stem(p), lines=parsed.lines)
            except RecordError as exc:
                _report(on_failure, Failure(name, exc.line, str(exc), text.encode()))
            else:
                yield example
        elif suffix in (".jsonl", ".jsonl.gz"):
            stem = file_stem(p)

            def bad_line(line: int, raw: bytes, reason: str) -> None:
                _report(on_failure, Failure(name, line, reason, raw))

            for line, row in read_dicts(p, errors="skip", on_error=bad_line):
                try:
                    example = spec_to_example(row, file=name, default_id=f"{stem}-{line - 1}", lines=line)
                except RecordError as exc:
                    _report(on_failure, Failure(name, line, str(exc), row))
                else:
                    yield example
        elif suffix == ".json":
            raw = p.read_bytes()
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                _report(on_failure, Failure(name, 1, f"{name}:1: malformed JSON ({exc})", raw))
                return
            if not isinstance(row, dict):
                _report(on_failure, Failure(name, 1, f"{name}:1: expected a JSON object", raw))
                return
            try:
                example = spec_to_example(row, file=name, default_id=file_stem(p), lines=1)
            except RecordError as exc:
                _report(on_failure, Failure(name, 1, str(exc), row))
            else:
                yield example
        else:
            _report(on_failure, Failure(name, None, f"{name}: not a Zed file (expected .md, .json, .jsonl, "
                                                     ".jsonl.gz)"))
    except (OSError, UnicodeDecodeError) as exc:
        _report(on_failure, Failure(name, None, f"{name}: cannot read ({exc})"))


def read_zed(paths: Iterable[str | os.PathLike[str]], *, on_failure: OnFailure | None = None) -> Iterator[Example]:
    """Yield the records in all given Zed files and folders, in order."""
    for path in expand_inputs(paths):
        yield from read_zed_file(path, on_failure=on_failure)


def safe_name(name: str) -> str:
    """A file name for an example, the way Zed sanitises names (` : ~ ^ ? * [ \\ @ { / < > | "` -> `-`)."""
    return "".join("-" if c in _UNSAFE else c for c in name) or "example"


def to_markdown(example: Example, *, file_stem: str | None = None,
                warn: Callable[[str], None] | None = None) -> str:
    """The Markdown eval for one record; the `# name` heading is written when the file stem alone
    would not give the id back (or when the source file had one)."""
    spec = example_to_spec(example, warn=warn)
    layout = (spec.get("nextedit") or {}).get("markdown") or {}
    stem = file_stem if file_stem is not None else safe_name(example.id)
    return write_markdown(spec, heading=bool(layout.get("heading")) or stem != example.id)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


def write_zed(examples: Iterable[Example], output: str | os.PathLike[str], *, fmt: ExportFormat = "md",
              warn: Callable[[str], None] | None = None) -> int:
    """Write records as Zed data: one `.md` per record into folder `output`, or one ExampleSpec JSONL
    file. Returns how many were written."""
    out = Path(output)
    if fmt == "jsonl":
        with JsonlWriter(out) as writer:
            for example in examples:
                writer.write(example_to_spec(example, warn=warn))
        return writer.count
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    count = 0
    for example in examples:
        stem = safe_name(example.id)
        k = 2
        while stem.lower() in used:
            stem = f"{safe_name(example.id)}-{k}"
            k += 1
        used.add(stem.lower())
        _write_atomic(out / f"{stem}.md", to_markdown(example, file_stem=stem, warn=warn))
        count += 1
    return count
