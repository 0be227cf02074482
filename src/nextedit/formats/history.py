"""Prompt sections shared by the formats: edit history, related code and diagnostics, each within its budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nextedit.formats.base import Frame
from nextedit.formats.budget import TokenCounter
from nextedit.patch import PatchError, from_region, parse
from nextedit.predictors.baselines import propagate_region
from nextedit.record import Diagnostic, HistoryEvent, RelatedExcerpt

__all__ = [
    "RelatedFile",
    "Sections",
    "candidate_hunks",
    "event_hunk_text",
    "event_hunks",
    "gather",
    "hunk_text",
    "render_diagnostics",
    "render_event_fenced",
    "render_event_unified",
    "render_related",
    "select_events",
    "select_related",
]


def _nl(text: str) -> str:
    """`text` ending with a newline (unless empty)."""
    return text if not text or text.endswith("\n") else text + "\n"


def hunk_text(diff: str) -> str:
    """A diff's hunks (headers "@@ ... @@" and bodies) without file headers; the raw diff when it does not
    parse."""
    try:
        file_patches = parse(diff)
    except PatchError:
        return _nl(diff)
    return "".join(h.render() for fp in file_patches for h in fp.hunks) or _nl(diff)


def event_hunk_text(event: HistoryEvent) -> str:
    """The event's hunks without file headers (`hunk_text`)."""
    return hunk_text(event.diff)


def event_hunks(event: HistoryEvent) -> list[tuple[str, str]]:
    """(old, new) text of each hunk that changes something, context lines included."""
    try:
        file_patches = parse(event.diff)
    except PatchError:
        return []
    return [(h.old_text, h.new_text) for fp in file_patches for h in fp.hunks if h.has_changes]


def render_event_unified(event: HistoryEvent) -> str:
    """An event as Zed writes it: an accepted-prediction note, `--- a/OLD` / `+++ b/NEW`, the hunks."""
    note = "// User accepted prediction:\n" if event.predicted else ""
    old = (event.old_path or event.path).replace("\\", "/")
    return f"{note}--- a/{old}\n+++ b/{event.path.replace(chr(92), '/')}\n{event_hunk_text(event)}"


def render_event_fenced(event: HistoryEvent) -> str:
    """An event in instruction style: "User edited PATH:" and a fenced diff."""
    verb = "accepted a prediction in" if event.predicted else "edited"
    return f"User {verb} {event.path}:\n```diff\n{event_hunk_text(event)}```\n"


def select_events(history: list[HistoryEvent], max_events: int, budget: int, count: TokenCounter,
                  render: Callable[[HistoryEvent], str]) -> list[str]:
    """Rendered events, newest first while at most `max_events` fit `budget`, returned oldest first."""
    chosen: list[str] = []
    used = 0
    for event in reversed(history):
        if len(chosen) >= max_events:
            break
        text = render(event)
        cost = count(text)
        if used + cost > budget:
            break
        chosen.append(text)
        used += cost
    chosen.reverse()
    return chosen


@dataclass(frozen=True)
class RelatedFile:
    """The related excerpts chosen from one file, in file order."""

    path: str
    excerpts: list[RelatedExcerpt]


def select_related(related: list[RelatedExcerpt], budget: int, count: TokenCounter,
                   header: Callable[[str], str], *, cursor_path: str,
                   shown_lines: tuple[int, int]) -> list[RelatedFile]:
    """Related excerpts by rank (then input order) while they fit `budget`, counting a file's header with
    its first excerpt; stops at the first that does not fit. Excerpts of the cursor file that lie inside
    the shown file lines [a, b) (0-based) are dropped as redundant. Grouped per file, files in order of
    their first chosen excerpt."""
    order = sorted(range(len(related)), key=lambda i: (related[i].rank, i))
    used = 0
    files: dict[str, list[RelatedExcerpt]] = {}
    for i in order:
        r = related[i]
        end = r.start_line + r.text.count("\n") + (0 if r.text.endswith("\n") else 1)
        if r.path == cursor_path and shown_lines[0] <= r.start_line and end <= shown_lines[1]:
            continue
        cost = count(_nl(r.text)) + (0 if r.path in files else count(header(r.path)))
        if used + cost > budget:
            break
        used += cost
        files.setdefault(r.path, []).append(r)
    return [RelatedFile(p, sorted(ex, key=lambda r: r.start_line)) for p, ex in files.items()]


def render_related(files: list[RelatedFile], header: Callable[[str], str]) -> str:
    """Each file's header and excerpts, with a "..." line where lines between excerpts are left out."""
    out: list[str] = []
    for f in files:
        out.append(header(f.path))
        if f.excerpts and f.excerpts[0].start_line > 0:
            out.append("...\n")
        next_line = None
        for r in f.excerpts:
            if next_line is not None and r.start_line > next_line:
                out.append("...\n")
            out.append(_nl(r.text))
            next_line = r.start_line + r.text.count("\n") + (0 if r.text.endswith("\n") else 1)
    return "".join(out)


def render_diagnostics(diagnostics: list[Diagnostic], path: str, budget: int, count: TokenCounter) -> str:
    """One line per diagnostic, "PATH:LINE: SEVERITY: MESSAGE" (1-based line), errors first, within budget."""
    order = {"error": 0, "warning": 1, "info": 2, "hint": 3}
    out: list[str] = []
    used = 0
    for d in sorted(diagnostics, key=lambda d: (order.get(d.severity, 4), d.start_line)):
        message = " ".join(d.message.split())
        line = f"{path}:{d.start_line + 1}: {d.severity}: {message}\n"
        cost = count(line)
        if used + cost > budget:
            break
        used += cost
        out.append(line)
    return "".join(out)


@dataclass(frozen=True)
class Sections:
    """The optional prompt sections of one example, rendered: events (oldest first), diagnostics, related, and
    the heuristic candidate (None when the option is off, "(none)" when the heuristic proposes nothing)."""

    events: list[str]
    diagnostics: str
    related: str
    candidate: str | None = None


def gather(frame: Frame, *, render_event: Callable[[HistoryEvent], str],
           related_header: Callable[[str], str]) -> Sections:
    """History (count and history_tokens), diagnostics (when on) and related code for a frame; diagnostics
    are charged to related_tokens first and related code gets what is left."""
    opts, snap = frame.options, frame.snapshot
    events = select_events(snap.history, opts.history_events, opts.history_tokens, frame.count, render_event)
    diagnostics = ""
    if opts.diagnostics and snap.diagnostics:
        diagnostics = render_diagnostics(snap.diagnostics, snap.path, opts.related_tokens, frame.count)
    remaining = max(opts.related_tokens - frame.count(diagnostics), 0)
    rows = frame.window.context_rows
    shown = (snap.start_line + rows[0], snap.start_line + rows[1])
    files = select_related(snap.related, remaining, frame.count, related_header, cursor_path=snap.path,
                           shown_lines=shown)
    candidate = (candidate_hunks(frame) or "(none)\n") if opts.candidate else None
    return Sections(events, diagnostics, render_related(files, related_header), candidate)


def candidate_hunks(frame: Frame) -> str:
    """The `propagate` heuristic's edit of the frame's editable region as hunks numbered as file lines, one line of
    context ("" when it proposes none): computed from the example alone, so training and serving show the same hint."""
    snap = frame.snapshot
    new_region = propagate_region(frame.example, frame.window.editable)
    if new_region is None:
        return ""
    return hunk_text(from_region(snap.text, frame.window.editable, new_region, path=snap.path,
                                 start_line=snap.start_line, context=1))
