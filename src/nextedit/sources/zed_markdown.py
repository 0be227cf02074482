"""Zed Markdown eval files (`evals/*.md`) <-> Zed ExampleSpec dicts: TOML front matter, `##` sections,
fenced blocks. Parsing uses markdown-it for structure and slices the file's own lines for block text,
so tabs, trailing blanks and CRLF stay byte for byte."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

import tomli_w
from markdown_it import MarkdownIt

from nextedit.patch import split_lines
from nextedit.record import RecordError
from nextedit.sources.zed_cursor import ACCEPTED_MARKER
from nextedit.sources.zed_history import parse_edit_history, render_event

NO_HISTORY = "(No edit history)"
ROLLBACK_KEY = "uncommitted_diff_requires_edit_history_rollback"

# `## Heading` (lower case) -> ExampleSpec field.
SECTIONS = {
    "reasoning": "reasoning",
    "uncommitted diff": "uncommitted_diff",
    "recently opened files": "recently_opened_files",
    "recently viewed files": "recently_viewed_files",
    "edit history": "edit_history",
    "cursor position": "cursor_position",
    "expected patch": "expected_patches",
    "expected patches": "expected_patches",
    "rejected patch": "rejected_patch",
}
HEADINGS = {
    "reasoning": "Reasoning",
    "uncommitted_diff": "Uncommitted Diff",
    "recently_opened_files": "Recently Opened Files",
    "recently_viewed_files": "Recently Viewed Files",
    "edit_history": "Edit History",
    "cursor_position": "Cursor Position",
    "expected_patches": "Expected Patch",
    "rejected_patch": "Rejected Patch",
}
_FENCE_LINE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_LONE_CR = re.compile(r"\r(?!\n)")


@dataclass
class MarkdownSpec:
    """A parsed eval file: the ExampleSpec fields (JSON names) and the 1-based line of each field."""

    spec: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)


def _strip_blank_edges(lines: list[str]) -> str:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    text = "".join(lines)
    return text.removesuffix("\n")


def _front_matter(lines: list[str], file: str) -> tuple[dict[str, Any], int]:
    if not lines or lines[0].rstrip("\r\n") != "+++":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end].rstrip("\r\n") == "+++":
            break
    else:
        raise RecordError("no closing +++ line", file=file, line=1, field="front matter")
    try:
        data = tomllib.loads("".join(lines[1:end]).replace("\r\n", "\n"))
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"line (\d+)", msg)
        line = 1 + int(m.group(1)) if m else 1
        raise RecordError(f"bad TOML ({msg})", file=file, line=line, field="front matter") from None
    return data, end + 1


def _fence_text(block: list[str], closed: bool, indent: int) -> str:
    body = block[1:-1] if closed else block[1:]
    if indent:
        body = [re.sub(rf"^ {{0,{indent}}}", "", line) for line in body]
    return "".join(body)


def _recent_files(text: str, file: str, line: int, field_name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, raw in enumerate(text.splitlines()):
        if not raw.strip():
            continue
        path, _, offset = raw.partition("\t")
        entry: dict[str, Any] = {"path": path}
        if offset.strip():
            if not offset.strip().isdigit():
                raise RecordError(f"cursor offset {offset.strip()!r} is not a number", file=file,
                                  line=line + k + 1, field=field_name)
            entry["cursor_position"] = int(offset)
        out.append(entry)
    return out


def parse_markdown(text: str, *, file: str = "<string>") -> MarkdownSpec:
    """Parse one Zed Markdown eval; raise RecordError("file:line: field SECTION: why") when malformed."""
    lines = split_lines(text)
    front, skip = _front_matter(lines, file)
    body = lines[skip:]
    spec: dict[str, Any] = {"name": "", "repository_url": "", "revision": ""}
    where: dict[str, int] = {}
    layout: dict[str, Any] = {}
    notes: list[dict[str, str]] = []
    def key_line(key: str) -> int:
        return next((k + 1 for k in range(skip) if lines[k].lstrip().startswith(key)), 1)

    for key in ("repository_url", "revision"):
        if key in front:
            if not isinstance(front[key], str):
                raise RecordError(f"{key} must be a string", file=file, line=key_line(key),
                                  field=f"front matter.{key}")
            spec[key] = front.pop(key)
    if "tags" in front:
        tags = front.pop("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RecordError("tags must be a list of strings", file=file, line=key_line("tags"),
                              field="front matter.tags")
        spec["tags"] = tags
    if ROLLBACK_KEY in front:
        spec["uncommitted_diff_contains_edit_history"] = bool(front.pop(ROLLBACK_KEY))
    if front:
        layout["front_matter"] = front

    # markdown-it also ends a line at a lone "\r"; our lines end only at "\n", so a lone "\r" is hidden from
    # it (as U+240D) to keep its line map on our lines.
    tokens = MarkdownIt("commonmark").parse(_LONE_CR.sub("\u240d", "".join(body).replace("\r\n", "\n")))
    section = "start"
    raw_from: int | None = None  # first body line of a section kept as raw text (reasoning, unknown)
    history: list[str] = []
    expected: list[str] = []
    accepted_next = False
    heading = False

    def line_no(index: int) -> int:
        return skip + index + 1

    def flush_raw(until: int) -> None:
        nonlocal raw_from
        if raw_from is None:
            return
        raw = _strip_blank_edges(body[raw_from:until])
        if section == "reasoning":
            spec["reasoning"] = raw
        elif raw:
            notes.append({"section": "other", "text": raw})
        raw_from = None

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.level != 0 or tok.map is None:
            continue
        start, end = tok.map
        if tok.type == "heading_open":
            title = tokens[i].content.strip() if i < len(tokens) else ""
            level = int(tok.tag[1])
            if level in (3, 4):
                if raw_from is None:
                    notes.append({"section": section, "text": _strip_blank_edges(body[start:end])})
                continue
            if level > 2:
                raise RecordError(f"unexpected heading level {level} ({'#' * level} {title})", file=file,
                                  line=line_no(start), field="heading")
            if accepted_next:
                raise RecordError(f"'{ACCEPTED_MARKER}' is not followed by a diff block", file=file,
                                  line=line_no(start), field="Edit History")
            flush_raw(start)
            if level == 1:
                if heading:
                    raise RecordError("a second '# name' heading", file=file, line=line_no(start), field="name")
                heading = True
                spec["name"] = title
                where["name"] = line_no(start)
                continue
            key = SECTIONS.get(title.lower())
            if key is None:
                section, raw_from = "other", start
            else:
                section = key
                where.setdefault(key, line_no(start))
                if key == "reasoning":
                    raw_from = end
            continue
        if raw_from is not None:
            continue
        raw_lines = body[start:end]
        if tok.type == "code_block":
            raise RecordError("indented code block (use a ``` fenced block)", file=file, line=line_no(start),
                              field=HEADINGS.get(section, section))
        if tok.type == "fence":
            m = _FENCE_LINE.match(raw_lines[0].rstrip("\r\n"))
            assert m is not None
            indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
            last = raw_lines[-1].rstrip("\r\n").strip() if len(raw_lines) > 1 else ""
            closed = len(raw_lines) > 1 and set(last) == {fence[0]} and len(last) >= len(fence)
            content = _fence_text(raw_lines, closed, indent)
            block_line = line_no(start)
            if section == "edit_history":
                history.append((ACCEPTED_MARKER + "\n" if accepted_next else "") + content)
                accepted_next = False
                where.setdefault("edit_history", block_line)
            elif section == "cursor_position":
                if "cursor_position" in spec:
                    raise RecordError("a second cursor block", file=file, line=block_line, field="Cursor Position")
                if not info:
                    raise RecordError("the cursor block needs the file path as its info string (```path)",
                                      file=file, line=block_line, field="Cursor Position")
                spec["cursor_path"], spec["cursor_position"] = info, content
                where["cursor_position"] = block_line + 1
            elif section == "expected_patches":
                where[f"expected_patches[{len(expected)}]"] = block_line + 1
                expected.append(content)
            elif section in ("uncommitted_diff", "rejected_patch"):
                if section in spec:
                    raise RecordError("a second block", file=file, line=block_line, field=HEADINGS[section])
                spec[section] = content
                where[section] = block_line + 1
            elif section in ("recently_opened_files", "recently_viewed_files"):
                spec[section] = _recent_files(content, file, block_line, HEADINGS[section])
            else:
                notes.append({"section": section, "text": _strip_blank_edges(raw_lines)})
            continue
        if accepted_next:
            raise RecordError(f"'{ACCEPTED_MARKER}' is not followed by a diff block", file=file,
                              line=line_no(start), field="Edit History")
        if tok.type == "paragraph_open" and section == "edit_history":
            para = tokens[i].content.strip() if i < len(tokens) else ""
            if para == ACCEPTED_MARKER:
                accepted_next = True
                continue
            if para == NO_HISTORY:
                continue
        notes.append({"section": section, "text": _strip_blank_edges(raw_lines)})
    flush_raw(len(body))
    if accepted_next:
        raise RecordError(f"'{ACCEPTED_MARKER}' is not followed by a diff block", file=file,
                          line=line_no(len(body) - 1), field="Edit History")
    if "cursor_position" not in spec:
        raise RecordError("missing: a '## Cursor Position' section with one ```path block", file=file,
                          line=1, field="Cursor Position")
    spec["edit_history"] = "".join(h if h.endswith("\n") or not h else h + "\n" for h in history)
    spec["expected_patches"] = expected
    if heading:
        layout["heading"] = True
    if notes:
        layout["notes"] = notes
    if layout:
        spec["nextedit"] = {"markdown": layout}
    return MarkdownSpec(spec, where)


# --------------------------------------------------------------------------- writing


def _fence(info: str, content: str) -> str:
    char = "~" if "`" in info else "`"  # a backtick fence cannot carry backticks in its info string
    runs = [len(m.group(1)) for m in re.finditer(rf"^ {{0,3}}({re.escape(char)}{{3,}})", content, flags=re.MULTILINE)]
    ticks = char * max(3, max(runs, default=0) + 1)
    if content and not content.endswith("\n"):
        content += "\n"
    return f"{ticks}{info}\n{content}{ticks}\n"


def _history_blocks(edit_history: str) -> list[str]:
    """Group history events into blocks: accepted predictions get a block (and marker) of their own."""
    blocks: list[str] = []
    current = ""
    for event in parse_edit_history(edit_history):
        if event.predicted:
            if current:
                blocks.append(_fence("diff", current))
                current = ""
            event.predicted = False
            blocks.append(ACCEPTED_MARKER + "\n" + _fence("diff", render_event(event)))
            continue
        if current and not current.endswith("\n"):
            current += "\n"
        current += render_event(event)
    if current:
        blocks.append(_fence("diff", current))
    return blocks


def _notes(layout: dict[str, Any], section: str) -> list[str]:
    return [n["text"] + "\n" for n in layout.get("notes", []) if n.get("section") == section]


def write_markdown(spec: dict[str, Any], *, heading: bool | None = None) -> str:
    """Render an ExampleSpec dict as a Zed Markdown eval (the layout kept under spec["nextedit"]
    ["markdown"] -- H1, free-text notes, extra front matter -- is restored)."""
    layout: dict[str, Any] = (spec.get("nextedit") or {}).get("markdown") or {}
    front: dict[str, Any] = {"repository_url": spec.get("repository_url") or "",
                             "revision": spec.get("revision") or ""}
    if spec.get("tags"):
        front["tags"] = list(spec["tags"])
    if spec.get("uncommitted_diff_contains_edit_history"):
        front[ROLLBACK_KEY] = True
    front.update(layout.get("front_matter") or {})
    parts = ["+++\n" + tomli_w.dumps(front) + "+++\n"]
    if heading if heading is not None else layout.get("heading"):
        parts.append(f"# {spec.get('name', '')}\n")
    parts += _notes(layout, "start")

    def section(key: str, blocks: list[str]) -> None:
        parts.append(f"## {HEADINGS[key]}\n")
        parts.extend(_notes(layout, key))
        parts.extend(blocks)

    if spec.get("reasoning") is not None:
        section("reasoning", [spec["reasoning"] + "\n"] if spec["reasoning"] else [])
    if spec.get("uncommitted_diff"):
        section("uncommitted_diff", [_fence("diff", spec["uncommitted_diff"])])
    for key in ("recently_opened_files", "recently_viewed_files"):
        if spec.get(key):
            rows = "".join(f"{e['path']}\t{e['cursor_position']}\n" if e.get("cursor_position") is not None
                           else f"{e['path']}\n" for e in spec[key])
            section(key, [_fence("", rows)])
    history = _history_blocks(spec.get("edit_history") or "")
    section("edit_history", history or [NO_HISTORY + "\n"])
    section("cursor_position", [_fence(str(spec.get("cursor_path", "")), spec.get("cursor_position", ""))])
    section("expected_patches", [_fence("diff", p) for p in spec.get("expected_patches") or []])
    if spec.get("rejected_patch") is not None:
        section("rejected_patch", [_fence("diff", spec["rejected_patch"])])
    parts += _notes(layout, "other")
    return "\n".join(parts)
