"""Render one example for a human: excerpt with cursor and editable region, history, patches, predictions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nextedit.languages import language_name
from nextedit.record import Example, Snapshot

CURSOR_MARKER = "<|user_cursor|>"
EDITABLE_START_MARKER = "<|editable_region_start|>"
EDITABLE_END_MARKER = "<|editable_region_end|>"


@dataclass
class Block:
    """A piece of a section: plain text, or code to highlight (`lexer`), optionally with line numbers.

    `marks` are (start, end, kind) character ranges inside `text` with kind "cursor", "marker"
    or "editable"; the rich renderer styles them, the plain renderer ignores them (the markers
    are in the text itself).
    """

    text: str
    lexer: str | None = None
    line_numbers: bool = False
    start_line: int = 1
    style: str = ""
    marks: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class Section:
    """A titled part of the view (header, excerpt, history, expected, predictions, ...)."""

    title: str
    blocks: list[Block] = field(default_factory=list)


class NotFound(LookupError):
    """No example matched the requested --id / --index."""


def select_example(examples: Iterable[Example], *, example_id: str | None = None,
                   index: int | None = None, file: str = "input") -> Example:
    """The example with `example_id`, or at 0-based `index`, or the first; reads only as far as needed."""
    seen = 0
    for i, ex in enumerate(examples):
        seen = i + 1
        if example_id is not None:
            if ex.id == example_id:
                return ex
        elif index is None or i == index:
            return ex
    if example_id is not None:
        raise NotFound(f"{file}: no example with id {example_id!r} (read {seen} examples)")
    if index is not None:
        raise NotFound(f"{file}: no example at index {index} (the file has {seen} examples)")
    raise NotFound(f"{file}: the file has no examples")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """0-based line and column of a character offset."""
    line = text.count("\n", 0, offset)
    col = offset - (text.rfind("\n", 0, offset) + 1)
    return line, col


def crop_lines(snapshot: Snapshot, around: int | None) -> tuple[str, int, int, tuple[int, int], int, int]:
    """Cut the excerpt to `around` lines either side of the editable region (None: keep all).

    Returns (text, start_line, cursor, editable, lines_hidden_above, lines_hidden_below), with
    offsets relative to the returned text.
    """
    text = snapshot.text
    e0, e1 = snapshot.editable or (0, len(text))
    if around is None:
        return text, snapshot.start_line, snapshot.cursor, (e0, e1), 0, 0
    lines = text.splitlines(keepends=True)
    first = max(0, _line_col(text, e0)[0] - around)
    last = min(len(lines), _line_col(text, e1)[0] + around + 1)
    offset = sum(len(line) for line in lines[:first])
    cropped = "".join(lines[first:last])
    return (cropped, snapshot.start_line + first, snapshot.cursor - offset,
            (e0 - offset, e1 - offset), first, max(0, len(lines) - last))


def mark_excerpt(text: str, cursor: int, editable: tuple[int, int], *,
                 whole_region: bool) -> tuple[str, list[tuple[int, int, str]]]:
    """Insert the cursor marker (and the editable-region markers unless the region is the whole text).

    Returns the marked text and the ranges of the markers and of the editable region in it.
    """
    inserts: list[tuple[int, int, str]] = [(cursor, 1, CURSOR_MARKER)]
    if not whole_region:
        inserts += [(editable[0], 0, EDITABLE_START_MARKER), (editable[1], 2, EDITABLE_END_MARKER)]
    inserts.sort()
    out: list[str] = []
    marks: list[tuple[int, int, str]] = []
    pos = 0
    length = 0
    region_start = region_end = None
    for offset, _, marker in inserts:
        out.append(text[pos:offset])
        length += offset - pos
        pos = offset
        if marker == EDITABLE_END_MARKER:
            region_end = length
        kind = "cursor" if marker == CURSOR_MARKER else "marker"
        marks.append((length, length + len(marker), kind))
        out.append(marker)
        length += len(marker)
        if marker == EDITABLE_START_MARKER:
            region_start = length
    out.append(text[pos:])
    if region_start is not None and region_end is not None:
        marks.insert(0, (region_start, region_end, "editable"))
    return "".join(out), marks


def _source_line(ex: Example) -> str:
    src = ex.source
    parts = [src.kind]
    if src.repo:
        parts.append(src.repo + (f" @ {src.revision}" if src.revision else ""))
    elif src.revision:
        parts.append(f"@ {src.revision}")
    if src.license:
        parts.append(f"license {src.license}")
    if src.time:
        parts.append(f"time {src.time}")
    if src.tags:
        parts.append("tags " + ", ".join(src.tags))
    return "source: " + "  ".join(parts)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _patch_block(patch: str) -> Block:
    if not patch.strip():
        return Block("(empty patch: no edit)", style="dim")
    return Block(patch.rstrip("\n"), lexer="diff")


def _after(patch_text: str, snap: Snapshot) -> str:
    from nextedit import patch

    return patch.apply(patch_text, snap.text, start_line=snap.start_line, path=snap.path) if patch_text else snap.text


def side_by_side(left: str, right: str, *, context: int = 3, names: tuple[str, str] = ("expected", "predicted"),
                 width: int = 60) -> str:
    """Two texts in columns like `diff -y` (`|` changed, `<` only left, `>` only right), cut to the
    rows within `context` lines of a difference; "" when they are equal."""
    import difflib
    from itertools import zip_longest

    a, b = left.splitlines(), right.splitlines()
    rows: list[tuple[str, str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        mark = {"equal": " ", "replace": "|", "delete": "<", "insert": ">"}[tag]
        for x, y in zip_longest(a[i1:i2], b[j1:j2]):
            rows.append((x or "", mark if (x is not None and y is not None) or mark != "|" else
                         ("<" if y is None else ">"), y or ""))
    changed = [i for i, r in enumerate(rows) if r[1] != " "]
    if not changed:
        return ""
    keep = sorted({k for i in changed for k in range(max(0, i - context), min(len(rows), i + context + 1))})
    w = min(width, max([len(names[0]), *(len(rows[k][0]) for k in keep)]))
    out = [f"{names[0]:<{w}}   {names[1]}", f"{'-' * w}   {'-' * len(names[1])}"]
    prev = None
    for k in keep:
        if prev is not None and k != prev + 1:
            out.append(f"{'...':<{w}}   ...")
        x, mark, y = rows[k]
        out.append(f"{x:<{w}} {mark} {y}".rstrip())
        prev = k
    return "\n".join(out)


def prediction_diff(ex: Example, index: int, style: str = "unified") -> Block:
    """Prediction `index` against the expected edit it was scored with (expected[0] by default):
    the two texts after their edits, as a unified or side-by-side diff."""
    import difflib

    from nextedit import patch

    snap, pred = ex.snapshot, ex.predictions[index]
    ref = next((s.reference for s in ex.scores if s.prediction == index and s.reference is not None), 0)
    if pred.patch is None:
        return Block("(no patch parsed: nothing to compare)", style="dim")
    try:
        expected = _after(ex.expected[ref], snap) if ex.expected else snap.text
        predicted = _after(pred.patch, snap)
    except patch.PatchError as exc:
        return Block(f"cannot compare: {exc}", style="red")
    names = (f"expected[{ref}]" if ex.expected else "expected (no edit)", f"predicted ({pred.provider})")
    if style == "side-by-side":
        text = side_by_side(expected, predicted, names=names)
        return Block(text) if text else Block("(the prediction gives exactly the expected text)", style="green")
    lines = list(difflib.unified_diff(expected.splitlines(keepends=True), predicted.splitlines(keepends=True),
                                      fromfile=names[0], tofile=names[1]))
    if not lines:
        return Block("(the prediction gives exactly the expected text)", style="green")
    return Block("".join(x if x.endswith("\n") else x + "\n" for x in lines).rstrip("\n"), lexer="diff")


def build_view(ex: Example, *, around: int | None = None, raw: bool = False,
               diff: str | None = None) -> list[Section]:
    """The sections shown for one example, renderer-independent; `diff` ("unified" or
    "side-by-side") adds each prediction against the expected edit."""
    snap = ex.snapshot
    lang = language_name(snap.path)
    e0, e1 = snap.editable or (0, len(snap.text))
    whole = (e0, e1) == (0, len(snap.text))
    cur_line, cur_col = _line_col(snap.text, snap.cursor)
    first_line = snap.start_line + 1
    last_line = snap.start_line + max(1, snap.text.count("\n") + (0 if snap.text.endswith("\n") else 1))
    if whole:
        region = "editable: whole excerpt"
    else:
        last = e1 - 1 if e1 > e0 and snap.text[e1 - 1] == "\n" else e1
        region = (f"editable: lines {snap.start_line + _line_col(snap.text, e0)[0] + 1}-"
                  f"{snap.start_line + _line_col(snap.text, last)[0] + 1} (chars {e0}-{e1})")
    header = [
        f"id: {ex.id}",
        _source_line(ex),
        f"file: {snap.path} ({lang})  excerpt lines {first_line}-{last_line}",
        f"cursor: line {snap.start_line + cur_line + 1}, column {cur_col + 1} (char {snap.cursor})  {region}",
    ]
    extras = sorted((ex.model_extra or {}).keys())
    if extras:
        header.append("extra fields: " + ", ".join(extras))
    sections = [Section("example", [Block("\n".join(header))])]

    text, start_line, cursor, editable, above, below = crop_lines(snap, around)
    marked, marks = mark_excerpt(text, cursor, editable, whole_region=whole)
    excerpt_blocks = []
    if above:
        excerpt_blocks.append(Block(f"... {above} lines above", style="dim"))
    excerpt_blocks.append(Block(marked.rstrip("\n"), lexer=lang, line_numbers=True,
                                start_line=start_line + 1, marks=marks))
    if below:
        excerpt_blocks.append(Block(f"... {below} lines below", style="dim"))
    excerpt_title = f"excerpt {snap.path}  (cursor {CURSOR_MARKER}"
    excerpt_title += ")" if whole else f", editable region {EDITABLE_START_MARKER} ... {EDITABLE_END_MARKER})"
    sections.append(Section(excerpt_title, excerpt_blocks))

    if snap.history:
        blocks = []
        for i, ev in enumerate(snap.history):
            moved = f"{ev.old_path} -> " if ev.old_path and ev.old_path != ev.path else ""
            flag = "  (predicted edit, accepted)" if ev.predicted else ""
            blocks += [Block(f"history[{i}] {moved}{ev.path}{flag}", style="bold"), _patch_block(ev.diff)]
        sections.append(Section(f"history ({_count(len(snap.history), 'event')}, oldest first)", blocks))

    if snap.related:
        blocks = []
        for i, rel in enumerate(snap.related):
            blocks.append(Block(f"related[{i}] {rel.path}:{rel.start_line + 1}  source {rel.source}, rank {rel.rank}",
                                style="bold"))
            blocks.append(Block(rel.text.rstrip("\n"), lexer=language_name(rel.path), line_numbers=True,
                                start_line=rel.start_line + 1))
        sections.append(Section(f"related context ({_count(len(snap.related), 'excerpt')})", blocks))

    if snap.diagnostics:
        lines = [f"{d.severity} lines {d.start_line + 1}-{d.end_line + 1}"
                 f"{f' [{d.code}]' if d.code else ''}: {d.message}" for d in snap.diagnostics]
        sections.append(Section(f"diagnostics ({len(snap.diagnostics)})", [Block("\n".join(lines))]))

    if ex.expected:
        blocks = []
        for i, patch in enumerate(ex.expected):
            cur = ex.expected_cursors[i] if i < len(ex.expected_cursors) else None
            note = f"  (cursor after edit: char {cur})" if cur is not None else ""
            blocks += [Block(f"expected[{i}]{note}", style="bold green"), _patch_block(patch)]
        sections.append(Section(f"expected ({_count(len(ex.expected), 'alternative')})", blocks))
    else:
        sections.append(Section("expected", [Block("no expected patch: no edit is the right answer "
                                                   "(or the example is unlabelled)", style="dim")]))

    if ex.settled is not None:
        sections.append(Section(f"settled (editable region after {_num(ex.settled.quiet_s)} s quiet)",
                                [Block(ex.settled.text.rstrip("\n"), lexer=lang)]))
    if ex.rejected:
        sections.append(Section("rejected (a prediction the user rejected)", [_patch_block(ex.rejected)]))

    if ex.predictions:
        blocks = []
        for i, pred in enumerate(ex.predictions):
            info = [f"predictions[{i}] {pred.provider} sample {pred.sample}"]
            if pred.latency_ms is not None:
                info.append(f"{_num(pred.latency_ms)} ms")
            if pred.usage is not None:
                info.append(f"{pred.usage.input_tokens} in / {pred.usage.output_tokens} out tokens"
                            f", ${pred.usage.cost_usd:.4f}")
            if pred.cursor is not None:
                info.append(f"cursor char {pred.cursor}")
            blocks.append(Block("  ".join(info), style="bold cyan"))
            if pred.error:
                blocks.append(Block(f"error: {pred.error}", style="bold red"))
            if pred.patch is not None:
                blocks.append(_patch_block(pred.patch))
            elif not pred.error:
                blocks.append(Block("(no patch parsed)", style="dim"))
            if raw and pred.raw:
                blocks += [Block("raw output:", style="dim"), Block(pred.raw.rstrip("\n"))]
            if diff:
                blocks += [Block(f"expected vs predicted ({diff}):", style="dim"), prediction_diff(ex, i, diff)]
        sections.append(Section(f"predictions ({len(ex.predictions)})", blocks))

    if ex.checks:
        lines = []
        for c in ex.checks:
            target = f"prediction {c.prediction}" if c.prediction is not None else "example"
            lines.append(f"{'PASS' if c.passed else 'FAIL'} {target} {c.code}" + (f": {c.message}" if c.message else ""))
        sections.append(Section(f"checks ({len(ex.checks)})", [Block("\n".join(lines))]))

    if ex.scores:
        blocks = []
        for s in ex.scores:
            ref = f" vs expected[{s.reference}]" if s.reference is not None else ""
            values = "  ".join(f"{k}={_num(v)}" for k, v in s.values.items())
            text = f"prediction {s.prediction}{ref}: {values}"
            if s.signatures:
                text += "\n" + "\n".join(f"  {k}: {v}" for k, v in s.signatures.items())
            blocks.append(Block(text))
        sections.append(Section(f"scores ({len(ex.scores)})", blocks))

    if ex.lineage:
        lines = [f"{e.stage} v{e.version}  {e.config}  {e.at}".rstrip() for e in ex.lineage]
        sections.append(Section("lineage", [Block("\n".join(lines))]))
    return sections


def render_plain(sections: list[Section]) -> str:
    """The view as plain text (no colour codes), for pipes, files and tests."""
    out: list[str] = []
    for section in sections:
        out.append(f"== {section.title} ==")
        for block in section.blocks:
            if block.line_numbers:
                lines = block.text.split("\n")
                width = len(str(block.start_line + len(lines) - 1))
                out += [f"{block.start_line + i:>{width}} | {line}" for i, line in enumerate(lines)]
            else:
                out.append(block.text)
        out.append("")
    return "\n".join(out)


_MARK_STYLES = {"cursor": "bold reverse magenta", "marker": "bold yellow", "editable": "on grey11"}


def render_rich(sections: list[Section], console: Any) -> None:
    """Print the view to a rich Console with syntax highlighting and styled markers."""
    from rich.rule import Rule
    from rich.syntax import Syntax
    from rich.text import Text

    for section in sections:
        console.print(Rule(section.title, align="left", style="blue"))
        for block in section.blocks:
            if block.lexer is None:
                console.print(Text(block.text, style=block.style))
                continue
            lexer = "text" if block.lexer == "other" else block.lexer  # unknown names render plain
            syntax = Syntax(block.text, lexer, theme="ansi_dark", line_numbers=block.line_numbers,
                            start_line=block.start_line, word_wrap=True)
            for start, end, kind in block.marks:
                (l0, c0), (l1, c1) = _line_col(block.text, start), _line_col(block.text, end)
                syntax.stylize_range(_MARK_STYLES[kind], (l0 + 1, c0), (l1 + 1, c1))
            console.print(syntax)
        console.print()


def show_file(path: Path, *, example_id: str | None = None, index: int | None = None,
              around: int | None = None, raw: bool = False, diff: str | None = None) -> list[Section]:
    """Read `path` until the selected example and build its view."""
    from nextedit.jsonl import read_examples

    ex = select_example(read_examples(path), example_id=example_id, index=index, file=str(path))
    return build_view(ex, around=around, raw=raw, diff=diff)
