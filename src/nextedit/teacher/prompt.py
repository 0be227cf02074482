"""The teacher prompt: renders an example's snapshot into the versioned Jinja2 templates in templates/."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from nextedit.formats.jump import JUMP_END, JUMP_START
from nextedit.record import Example, HistoryEvent, Snapshot

__all__ = [
    "KEEP_PREVIOUS", "MARK_CURSOR", "MARK_END", "MARK_START", "NO_EDITS", "SENTINELS", "PromptOptions",
    "TeacherPrompt", "build_prompt", "prompt_version", "render_current_file", "render_diagnostics",
    "render_history", "render_related", "render_template",
]

MARK_START = "<|editable_region_start|>"
MARK_END = "<|editable_region_end|>"
MARK_CURSOR = "<|user_cursor|>"
NO_EDITS = "NO_EDITS"
KEEP_PREVIOUS = "KEEP_PREVIOUS"
#: Text that must never end up inside predicted code (unless the original region had it already).
SENTINELS = (MARK_START, MARK_END, MARK_CURSOR, NO_EDITS, KEEP_PREVIOUS, "<|selection_start|>")

TEMPLATES = ("teacher.md.j2", "repair.md.j2", "judge.md.j2")
FENCE = "`````"


#: Added to the system prompt with `jumps = true`; the answer syntax is the `zeta1-jump` student format's.
JUMP_INSTRUCTION = (
    "# Jumps\n\nIf the user's next edit is not in the current file's editable region but elsewhere (further down "
    "the file, or in another file), you may answer with a jump instead of the rewritten region: "
    f"`{JUMP_START}path:first-last` (1-based file lines of the place), a newline, the edit there as a unified "
    f"diff hunk (`@@ -a,b +c,d @@` numbered as file lines), and `{JUMP_END}`. Answer with the region when the "
    "next edit is in it."
)


class PromptOptions(BaseModel):
    """What goes into the teacher prompt (budgets follow Zed's teacher: 128 history lines, 1024 tokens)."""

    model_config = ConfigDict(extra="forbid")

    history_lines: int = Field(128, ge=1, description="keep the last N lines of edit history")
    related_tokens: int = Field(1024, ge=0, description="budget for related excerpts (tokens = bytes/3)")
    diagnostics: bool = Field(True, description="include diagnostics near the cursor")
    max_diagnostics: int = Field(10, ge=0, description="nearest N diagnostics to the cursor")
    jumps: bool = Field(False, description="let the teacher answer with a jump: where the next edit is, elsewhere")


@dataclass(frozen=True)
class TeacherPrompt:
    """A rendered teacher prompt: `system` (static, cacheable instructions) and `user` (the example)."""

    system: str
    user: str
    version: str


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nextedit.teacher", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


@functools.cache
def prompt_version() -> str:
    """`p1-<hash>`: a short hash of every template's text; keys caches so an edited prompt reruns."""
    h = hashlib.sha256()
    folder = resources.files("nextedit.teacher") / "templates"
    for name in TEMPLATES:
        h.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return "p1-" + h.hexdigest()[:10]


def render_template(name: str, block: str | None = None, **context: Any) -> str:
    """Render a template (or one of its blocks) from templates/ with `context`."""
    template = _environment().get_template(name)
    if block is None:
        return template.render(**context).strip() + "\n"
    ctx = template.new_context(context)
    return "".join(template.blocks[block](ctx)).strip() + "\n"


def _event_text(event: HistoryEvent) -> str:
    diff = event.diff if event.diff.endswith("\n") else event.diff + "\n"
    if diff.startswith("--- "):
        head = ""
    else:
        old = event.old_path or event.path
        head = f"--- a/{old}\n+++ b/{event.path}\n"
    note = "// User accepted prediction:\n" if event.predicted else ""
    return note + head + diff


def render_history(history: list[HistoryEvent], max_lines: int = 128) -> str:
    """The edit history as unified diffs with file headers, oldest first, cut to the last `max_lines`."""
    if not history:
        return "(No edit history)"
    lines = "".join(_event_text(ev) for ev in history).splitlines()
    if len(lines) > max_lines:
        lines = ["[...truncated...]", *lines[-max_lines:]]
    return "\n".join(lines)


def render_related(snapshot: Snapshot, budget_tokens: int = 1024) -> str:
    """Related excerpts by ascending rank, each in a fenced block tagged with its path, within a
    token budget (tokens ~ UTF-8 bytes / 3); `…` marks skipped lines between excerpts of a file."""
    budget = budget_tokens * 3
    by_path: dict[str, list[tuple[int, str]]] = {}
    used = 0
    for ex in sorted(snapshot.related, key=lambda r: r.rank):
        size = len(ex.text.encode()) + len(ex.path) + 16
        if used + size > budget:
            continue
        used += size
        by_path.setdefault(ex.path, []).append((ex.start_line, ex.text))
    if not by_path:
        return "(No context)"
    blocks = []
    for path, parts in by_path.items():
        parts.sort()
        body: list[str] = []
        next_line = 0
        for start, text in parts:
            if start > next_line or (body and start != next_line):
                body.append("…")
            body.append(text.rstrip("\n"))
            next_line = start + text.count("\n") + (0 if text.endswith("\n") else 1)
        blocks.append(f"{FENCE}{path}\n" + "\n".join(body) + f"\n{FENCE}")
    return "\n\n".join(blocks)


def render_current_file(snapshot: Snapshot) -> str:
    """The excerpt with the editable region between marker lines and the cursor marker inserted.

    The start marker sits on a line of its own before the region; the end marker on a line of its
    own after it (a region that does not end with a newline gets one added before the marker).
    """
    text = snapshot.text
    start, end = snapshot.editable or (0, len(text))
    cursor = snapshot.cursor
    before, region, after = text[:start], text[start:end], text[end:]
    ends_line = region.endswith("\n")
    shown = region[: cursor - start] + MARK_CURSOR + region[cursor - start:]
    out = before
    if before and not before.endswith("\n"):
        out += "\n"
    out += MARK_START + "\n" + shown
    if not ends_line:
        out += "\n"
    out += MARK_END
    if after:
        # The end marker owns its line: what follows the region starts on the next line.
        out += "\n" + (after if ends_line else after.removeprefix("\n"))
    return out.rstrip("\n")


def render_diagnostics(snapshot: Snapshot, max_n: int = 10) -> str:
    """The diagnostics nearest the cursor row (at most `max_n`), each with the lines it points at."""
    if not snapshot.diagnostics or max_n <= 0:
        return ""
    line0 = snapshot.start_line
    cursor_row = line0 + snapshot.text.count("\n", 0, snapshot.cursor)
    lines = snapshot.text.splitlines()
    nearest = sorted(snapshot.diagnostics, key=lambda d: (abs(d.start_line - cursor_row), d.start_line))[:max_n]
    out = []
    for d in sorted(nearest, key=lambda d: d.start_line):
        code = f" [{d.code}]" if d.code else ""
        out.append(f"- {d.severity} at line {d.start_line + 1}{code}: {d.message}")
        lo, hi = d.start_line - line0, min(d.end_line, d.start_line + 4) - line0
        snippet = [lines[i] for i in range(max(lo, 0), min(hi + 1, len(lines)))]
        if snippet:
            out.append("  ```\n" + "\n".join("  " + s for s in snippet) + "\n  ```")
    return "\n".join(out)


def build_prompt(example: Example, options: PromptOptions | None = None) -> TeacherPrompt:
    """The teacher prompt for an example (not yet scrubbed of secrets: see teacher.scrub)."""
    opts = options or PromptOptions()
    snap = example.snapshot
    context = {
        "history": render_history(snap.history, opts.history_lines),
        "related": render_related(snap, opts.related_tokens),
        "current_file": render_current_file(snap),
        "diagnostics": render_diagnostics(snap, opts.max_diagnostics) if opts.diagnostics else "",
        "path": snap.path,
    }
    system = render_template("teacher.md.j2", "system", **context)
    return TeacherPrompt(
        system=system + "\n\n" + JUMP_INSTRUCTION if opts.jumps else system,
        user=render_template("teacher.md.j2", "task", **context),
        version=prompt_version(),
    )
