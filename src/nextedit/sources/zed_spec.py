"""Zed ExampleSpec dicts (JSONL rows, parsed Markdown evals) <-> nextedit example records.

The mapping is documented in docs/zed.md. Whatever has no place in the record is kept verbatim
under the record's `zed` object, so `example_to_spec(spec_to_example(s))` gives `s` back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from pydantic import ValidationError

from nextedit.languages import line_comment
from nextedit.locations import patch_locations, same_path
from nextedit.patch import PatchError, apply, fit_to_excerpt, parse, split_lines
from nextedit.record import (
    Example,
    HistoryEvent,
    Prediction,
    RecordError,
    RelatedExcerpt,
    parse_example,
)
from nextedit.sources.zed_cursor import (
    Annotation,
    CursorError,
    cursor_annotation,
    cursor_from_annotation,
    decode_excerpt,
    encode_excerpt,
    is_cursor_annotation,
    join_annotations,
    split_annotations,
)
from nextedit.sources.zed_history import (
    RawEvent,
    canonical_headers,
    parse_edit_history,
    render_edit_history,
)

# ExampleSpec fields in the order Zed writes them, then the CLI's pipeline-state fields.
SPEC_FIELDS = (
    "name", "repository_url", "revision", "tags", "reasoning", "uncommitted_diff",
    "uncommitted_diff_contains_edit_history", "recently_opened_files", "recently_viewed_files",
    "cursor_path", "cursor_position", "edit_history", "expected_patches", "rejected_patch",
    "captured_prompt_input", "telemetry", "human_feedback", "rating",
)
PIPELINE_FIELDS = ("zed_version", "prompt_inputs", "prompt", "predictions", "score", "qa")
# Fields the record holds itself; every other key is kept verbatim in `zed.spec`.
_MAPPED = {"name", "repository_url", "revision", "tags", "cursor_path", "cursor_position", "edit_history",
           "expected_patches", "rejected_patch", "predictions", "nextedit"}
_PREDICTION_KEYS = {"actual_output", "actual_patch", "error", "provider"}


class _Where:
    """Turns a field name into the file line to blame (Markdown: the block; JSONL: the row)."""

    def __init__(self, file: str, lines: Mapping[str, int] | int | None):
        self.file, self.lines = file, lines

    def error(self, field: str, message: str, offset: int | None = None) -> RecordError:
        if isinstance(self.lines, Mapping):
            base = self.lines.get(field, self.lines.get(field.split("[")[0]))
            line = base + offset - 1 if base is not None and offset is not None else base
        else:
            line = self.lines
        return RecordError(message, file=self.file, line=line, field=field)


def _str(spec: Mapping[str, Any], key: str, where: _Where, default: str | None = "") -> str | None:
    value = spec.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, str):
        raise where.error(key, f"expected a string, got {type(value).__name__}")
    return value


def _same_path(a: str | None, b: str | None) -> bool:
    def norm(p: str) -> str:
        return p.strip().lstrip("./").replace("\\", "/")

    return a is not None and b is not None and norm(a) == norm(b)


# --------------------------------------------------------------------------- start line


def _align(side: list[str], excerpt: list[str]) -> int | None:
    """The unique shift d (excerpt index = side index + d) where the hunk side agrees with the
    excerpt on every overlapping line, with at least two non-blank lines (or the whole side) shared."""
    if not side or not excerpt:
        return None
    hunk = [line.rstrip("\n") for line in side]
    text = [line.rstrip("\n") for line in excerpt]
    need_blank = min(2, sum(1 for line in hunk if line.strip()))
    hits: list[int] = []
    for d in range(-(len(hunk) - 1), len(text)):
        lo, hi = max(0, -d), min(len(hunk), len(text) - d)
        if hi - lo < min(3, len(hunk)):
            continue
        if all(hunk[j] == text[j + d] for j in range(lo, hi)) and \
                sum(1 for j in range(lo, hi) if hunk[j].strip()) >= max(need_blank, 1):
            hits.append(d)
    return hits[0] if len(hits) == 1 else None


def _starts_from(patches: list[str], excerpt: list[str], path: str, side: str) -> set[int]:
    found: set[int] = set()
    for patch in patches:
        try:
            file_patches = parse(patch)
        except PatchError:
            continue
        for fp in file_patches:
            if fp.path is not None and not _same_path(fp.path, path):
                continue
            for hunk in fp.hunks:
                lines = hunk.new_lines if side == "new" else hunk.old_lines
                start = hunk.new_start if side == "new" else hunk.old_start
                d = _align(lines, excerpt)
                if d is not None and start - 1 - d >= 0:
                    found.add(start - 1 - d)
    return found


@dataclass
class Window:
    """A model-input window Zed stored beside the spec (`prompt_inputs`, older `captured_prompt_input`)."""

    field: str
    text: str
    offset_key: str
    offset: Any
    start_row: int | None
    path: str | None
    events: Any
    related: Any


def windows(spec: Mapping[str, Any]) -> list[Window]:
    """The windows in a spec row: `prompt_inputs` (`cursor_excerpt`, or the older CLI's `content`) and
    `captured_prompt_input` (the whole cursor file, so its first row is 0)."""
    out: list[Window] = []
    pi = spec.get("prompt_inputs")
    if isinstance(pi, dict):
        text = pi.get("cursor_excerpt", pi.get("content"))
        if isinstance(text, str):
            key = "cursor_offset_in_excerpt" if "cursor_offset_in_excerpt" in pi else "cursor_offset"
            row = pi.get("excerpt_start_row")
            out.append(Window("prompt_inputs", text, key, pi.get(key),
                              row if isinstance(row, int) and not isinstance(row, bool) and row >= 0 else None,
                              pi.get("cursor_path") if isinstance(pi.get("cursor_path"), str) else None,
                              pi.get("events", pi.get("edit_history")), pi.get("related_files")))
    cpi = spec.get("captured_prompt_input")
    if isinstance(cpi, dict) and isinstance(cpi.get("cursor_file_content"), str):
        out.append(Window("captured_prompt_input", cpi["cursor_file_content"], "cursor_offset",
                          cpi.get("cursor_offset"), 0, None, cpi.get("events"), cpi.get("related_files")))
    return out


def infer_start_line(text: str, path: str, history: list[HistoryEvent], expected: list[str],
                     inputs: list[Window] | None = None) -> tuple[int, str | None]:
    """The 0-based file line of the excerpt's first line, and where it was learnt: a stored model-input
    window with a known first row (`prompt_inputs`, `captured_prompt_input`), the newest history event
    on the cursor file (its new side), or the expected patches (their old side; the answer most
    patches agree on). (0, None) when nothing decides."""
    needle = text.rstrip("\n")
    for window in inputs or []:
        if window.start_row is None or not needle:
            continue
        at = window.text.find(needle)
        if at != -1 and window.text.find(needle, at + 1) == -1 and (at == 0 or window.text[at - 1] == "\n"):
            return window.start_row + window.text.count("\n", 0, at), window.field
    excerpt = split_lines(text)
    for event in reversed(history):
        if _same_path(event.path, path):
            found = _starts_from([event.diff], excerpt, path, "new")
            if len(found) == 1:
                return found.pop(), "history"
            break
    votes = Counter(found.pop() for patch in expected
                    if len(found := _starts_from([patch], excerpt, path, "old")) == 1)
    ranked = votes.most_common(2)
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return ranked[0][0], "expected"
    return 0, None


# --------------------------------------------------------------------------- expected patches


@dataclass
class ReadPatch:
    """One Zed patch as the record holds it."""

    clean: str  # annotation lines out; context from outside the excerpt trimmed when that made it apply
    notes: list[list[Any]]  # annotation lines kept: [number of `clean` lines before it, the line]
    cursor: int | None = None  # the cursor annotation as a char offset in the patched text
    cursor_line: str | None = None  # that annotation as written, when it is not the canonical one
    fitted: bool = False  # context lines were trimmed to make it apply
    applies: bool = True  # False: it does not apply to the excerpt even trimmed (kept verbatim)


def _moved(notes: list[Annotation], old: str, new: str) -> list[Annotation]:
    """Annotation positions (numbers of `old` lines before them) as positions in `new`, which is
    `old` with some lines dropped (and headers rewritten)."""
    a, b = split_lines(old), split_lines(new)
    where = list(range(len(a) + 1))
    for _tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for p in range(i1, i2 + 1):
            where[p] = j1 + min(p - i1, j2 - j1)
    return [(where[min(pos, len(a))], note) for pos, note in notes]


def _fit(clean: str, notes: list[Annotation], text: str, start_line: int,
         path: str) -> tuple[str, list[Annotation], bool | None]:
    """The patch made to apply to the excerpt: (patch, notes, fitted); fitted None: it does not apply."""
    try:
        apply(clean, text, start_line=start_line, path=path)
        return clean, notes, False
    except PatchError:
        pass
    try:
        fitted = fit_to_excerpt(clean, text, start_line=start_line)
        apply(fitted, text, start_line=start_line, path=path)
    except PatchError:
        return clean, notes, None
    return fitted, _moved(notes, clean, fitted), True


def read_patch(patch: str, text: str, *, start_line: int, path: str, cursor: bool = True) -> ReadPatch:
    """A Zed expected (or rejected) patch for a record whose excerpt is `text`: annotation lines taken
    out, the first cursor annotation turned into an offset (`cursor=True`), and hunk context from
    outside the excerpt trimmed (`nextedit.patch.fit_to_excerpt`) when the patch does not apply as
    written. A patch that does not apply even then (changed lines outside the excerpt) is kept."""
    clean, notes = split_annotations(patch)
    clean, notes, fitted = _fit(clean, notes, text, start_line, path)
    out = ReadPatch(clean, [], fitted=bool(fitted), applies=fitted is not None)
    for pos, note in notes:
        if cursor and out.cursor is None and is_cursor_annotation(note):
            at = cursor_from_annotation(clean, pos, note, text, start_line=start_line, path=path)
            if at is not None:
                canonical = cursor_annotation(clean, at, text, start_line=start_line, path=path)
                out.cursor, out.cursor_line = at, None if canonical == (pos, note) else note
                continue
        out.notes.append([pos, note])
    return out


def _as_written(written: str | None, clean: str, cursor: int | None, notes: list[list[Any]],
                snap: Any, *, with_cursor: bool = True) -> str | None:
    """The patch as Zed wrote it, when importing it again gives what the record holds (else None)."""
    if not isinstance(written, str):
        return None
    read = read_patch(written, snap.text, start_line=snap.start_line, path=snap.path, cursor=with_cursor)
    same = read.clean == clean and read.cursor == cursor and read.notes == [[int(p), str(n)] for p, n in notes]
    return written if same else None


# --------------------------------------------------------------------------- spec -> record


def _history_from_text(edit_history: str, cursor_path: str) -> list[HistoryEvent]:
    events: list[HistoryEvent] = []
    for raw in parse_edit_history(edit_history):
        path = raw.path if raw.path is not None else raw.old_path
        extra: dict[str, Any] = {}
        if raw.old_header is None:
            extra["zed_headers"] = []
            path = cursor_path
        elif (raw.old_header, raw.new_header) != canonical_headers(raw.old_path, path):
            extra["zed_headers"] = [raw.old_header, raw.new_header]
        events.append(HistoryEvent(path=path or cursor_path, old_path=raw.old_path, diff=raw.diff,
                                   predicted=raw.predicted, **extra))
    return events


def _history_from_events(events: Any, where: _Where, field: str) -> list[HistoryEvent]:
    if not isinstance(events, list):
        raise where.error(f"{field}.events", "expected a list")
    out: list[HistoryEvent] = []
    for k, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("path"), str):
            raise where.error(f"{field}.events[{k}]", "expected an object with a path")
        diff = event.get("diff") or ""
        out.append(HistoryEvent(path=event["path"], old_path=event.get("old_path"),
                                diff=diff if not diff or diff.endswith("\n") else diff + "\n",
                                predicted=bool(event.get("predicted", False))))
    return out


def _related(related_files: Any) -> list[RelatedExcerpt]:
    out: list[RelatedExcerpt] = []
    for rf in related_files if isinstance(related_files, list) else []:
        if not isinstance(rf, dict):
            continue
        for ex in rf.get("excerpts") or []:
            if not isinstance(ex, dict) or not isinstance(ex.get("text"), str):
                continue
            rows = ex.get("row_range") or {}
            out.append(RelatedExcerpt(path=str(rf.get("path", "")), start_line=int(rows.get("start", 0) or 0),
                                      text=ex["text"], source=str(ex.get("context_source") or "zed"),
                                      rank=int(ex.get("order", len(out)) or 0)))
    return out


def _predictions(spec: Mapping[str, Any], where: _Where) -> list[Prediction]:
    raw = spec.get("predictions")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise where.error("predictions", "expected a list")
    out: list[Prediction] = []
    for k, p in enumerate(raw):
        if not isinstance(p, dict):
            raise where.error(f"predictions[{k}]", "expected an object")
        extra = {key: value for key, value in p.items() if key not in _PREDICTION_KEYS}
        out.append(Prediction(provider=str(p.get("provider") or "zed"), sample=k, raw=p.get("actual_output"),
                              patch=p.get("actual_patch"), error=p.get("error"),
                              **({"zed": extra} if extra else {})))
    return out


def _byte_to_char(text: str, offset: int) -> int:
    return len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))


def spec_to_example(spec: Mapping[str, Any], *, file: str = "<string>", default_id: str = "zed",
                    lines: Mapping[str, int] | int | None = None) -> Example:
    """Turn one Zed ExampleSpec (with optional pipeline fields) into a record; raise RecordError
    naming file, line and the Zed field when something cannot be read."""
    where = _Where(file, lines)
    try:
        return _spec_to_example(spec, where, default_id)
    except RecordError:
        raise
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "record"
        raise where.error(field, first["msg"].removeprefix("Value error, ")) from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise where.error("record", f"{type(exc).__name__}: {exc}") from None


def _spec_to_example(spec: Mapping[str, Any], where: _Where, default_id: str) -> Example:
    file, lines = where.file, where.lines
    name = _str(spec, "name", where) or default_id
    cursor_path = _str(spec, "cursor_path", where) or ""
    marked = _str(spec, "cursor_position", where) or ""
    edit_history = _str(spec, "edit_history", where) or ""
    rejected = _str(spec, "rejected_patch", where, None)
    patches = spec.get("expected_patches") or []
    if not isinstance(patches, list) or not all(isinstance(p, str) for p in patches):
        raise where.error("expected_patches", "expected a list of strings")
    tags = spec.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise where.error("tags", "expected a list of strings")
    if spec.get("prompt_inputs") is not None and not isinstance(spec["prompt_inputs"], dict):
        raise where.error("prompt_inputs", "expected an object")
    inputs = windows(spec)
    zed: dict[str, Any] = {}

    # Snapshot text and cursor: the marked excerpt, else the first stored model-input window.
    if marked:
        try:
            decoded = decode_excerpt(marked, comment=line_comment(cursor_path))
        except CursorError as exc:
            raise where.error("cursor_position", str(exc), exc.line) from None
        text, cursor = decoded.text, decoded.cursor
        if decoded.style != "comment":
            zed["cursor_marker"] = decoded.style
        elif encode_excerpt(text, cursor, line_comment(cursor_path)) != marked:
            zed["cursor_marker_line"] = decoded.marker
    elif inputs:
        window = inputs[0]
        text, offset = window.text, window.offset
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= len(text.encode("utf-8")):
            raise where.error(f"{window.field}.{window.offset_key}", f"bad byte offset {offset!r}")
        cursor = _byte_to_char(text, offset)
        cursor_path = cursor_path or window.path or ""
    else:
        raise where.error("cursor_position", "missing (no marked excerpt, no prompt_inputs.cursor_excerpt)")
    if not cursor_path:
        raise where.error("cursor_path", "missing")

    # History.
    if edit_history.strip():
        history = _history_from_text(edit_history, cursor_path)
    elif source := next((w for w in inputs if w.events), None):
        history = _history_from_events(source.events, where, source.field)
        zed["history_from"] = source.field
    else:
        history = []

    start_line, learnt = infer_start_line(text, cursor_path, history,
                                          [split_annotations(p)[0] for p in patches], inputs)
    if learnt is not None:
        zed["start_line_from"] = learnt

    # Expected patches: annotation lines out, the cursor one turned into an offset, context from
    # outside the excerpt trimmed so they apply to the excerpt (the patch as written is kept).
    reads = [read_patch(p, text, start_line=start_line, path=cursor_path) for p in patches]
    expected = [r.clean for r in reads]
    cursors = [r.cursor for r in reads]
    if any(r.notes for r in reads):
        zed["expected_annotations"] = [r.notes for r in reads]
    if any(r.cursor_line is not None for r in reads):
        zed["expected_cursor_lines"] = [r.cursor_line for r in reads]
    if any(r.fitted for r in reads):
        zed["expected_as_written"] = [p if r.fitted else None for p, r in zip(patches, reads, strict=True)]
    if outside := [i for i, r in enumerate(reads) if not r.applies]:
        zed["expected_outside_excerpt"] = outside
    if rejected is not None:
        read = read_patch(rejected, text, start_line=start_line, path=cursor_path, cursor=False)
        if read.notes:
            zed["rejected_annotations"] = read.notes
        if read.fitted:
            zed["rejected_as_written"] = rejected
        if not read.applies:
            zed["rejected_outside_excerpt"] = True
        rejected = read.clean

    kept_spec = {k: v for k, v in spec.items() if k not in _MAPPED}
    if kept_spec:
        zed["spec"] = kept_spec
    ours = spec.get("nextedit") if isinstance(spec.get("nextedit"), dict) else {}
    markdown = ours.get("markdown")
    if markdown:
        zed["markdown"] = markdown

    record: dict[str, Any] = {
        "id": name,
        "source": {"kind": "zed", "repo": spec.get("repository_url") or None,
                   "revision": spec.get("revision") or None, "tags": tags},
        "snapshot": {"path": cursor_path, "text": text, "start_line": start_line, "cursor": cursor,
                     "history": [h.model_dump() for h in history],
                     "related": [r.model_dump() for r in
                                 _related(next((w.related for w in inputs if w.related), None))]},
        "expected": expected,
        "expected_cursors": cursors if any(c is not None for c in cursors) else [],
        "locations": (ours.get("locations") if isinstance(ours.get("locations"), list)
                      else zed_locations(expected, cursor_path)),
        "rejected": rejected,
        "predictions": [p.model_dump(exclude_none=True) for p in _predictions(spec, where)],
    }
    if zed:
        record["zed"] = zed
    try:
        return parse_example(record, file=file, line=lines if isinstance(lines, int) else None)
    except RecordError as exc:
        raise where.error(exc.field or "record", exc.reason) from None


def zed_locations(expected: list[str], cursor_path: str) -> list[dict[str, Any]]:
    """The locations a Zed example holds in its first expected patch when that patch also edits other files
    (a jump): one per hunk, the cursor file's first; [] for a single-file patch."""
    if not expected or not patch_locations(expected[0], cursor_path, only_other_files=True):
        return []
    found = patch_locations(expected[0], cursor_path)
    found.sort(key=lambda loc: not same_path(loc.path, cursor_path))
    return [loc.model_dump(exclude_none=True) for loc in found]


# --------------------------------------------------------------------------- record -> spec


def _render_history(history: list[HistoryEvent]) -> str:
    events: list[RawEvent] = []
    for event in history:
        headers = getattr(event, "zed_headers", None)
        if headers == []:
            events.append(RawEvent(None, None, None, None, event.diff, event.predicted))
            continue
        old, new = headers if headers else canonical_headers(event.old_path, event.path)
        events.append(RawEvent(old, new, event.old_path, event.path, event.diff, event.predicted))
    return render_edit_history(events)


def _export_predictions(example: Example) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in example.predictions:
        row: dict[str, Any] = {} if p.raw is None else {"actual_output": p.raw}
        if p.patch is not None:
            row["actual_patch"] = p.patch
        row.update(getattr(p, "zed", None) or {})
        if p.error is not None:
            row["error"] = p.error
        row["provider"] = p.provider
        out.append(row)
    return out


def example_to_spec(example: Example, *, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The Zed ExampleSpec (JSONL row) for a record; `warn(message)` hears about what cannot be kept."""
    zed: dict[str, Any] = dict(getattr(example, "zed", None) or {})
    kept: dict[str, Any] = dict(zed.get("spec") or {})
    snap = example.snapshot
    text = snap.text
    style = zed.get("cursor_marker") or "comment"
    spec: dict[str, Any] = {
        "name": example.id,
        "repository_url": example.source.repo or "",
        "revision": example.source.revision or "",
    }
    if example.source.tags:
        spec["tags"] = list(example.source.tags)
    spec["cursor_path"] = snap.path
    spec["cursor_position"] = encode_excerpt(text, snap.cursor, line_comment(snap.path), style,
                                             zed.get("cursor_marker_line"))
    if zed.get("history_from"):
        spec["edit_history"] = ""  # the history lives in the stored window's events
    else:
        spec["edit_history"] = _render_history(snap.history)
    notes_all = zed.get("expected_annotations") or []
    kept_lines = zed.get("expected_cursor_lines") or []
    as_written = zed.get("expected_as_written") or []
    patches: list[str] = []
    for i, clean in enumerate(example.expected):
        notes = [(int(pos), str(note)) for pos, note in (notes_all[i] if i < len(notes_all) else [])]
        cursor = example.expected_cursors[i] if i < len(example.expected_cursors) else None
        # A patch whose context was trimmed on import goes back as Zed wrote it, unless it was edited.
        if written_patch := _as_written(as_written[i] if i < len(as_written) else None,
                                        clean, cursor, notes, snap):
            patches.append(written_patch)
            continue
        if cursor is not None:
            note = cursor_annotation(clean, cursor, text, start_line=snap.start_line, path=snap.path)
            written = kept_lines[i] if i < len(kept_lines) else None
            if note is not None and written and cursor_from_annotation(
                    clean, note[0], written, text, start_line=snap.start_line, path=snap.path) == cursor:
                note = (note[0], written)
            if note is None:
                if warn is not None:
                    warn(f"{example.id}: expected_cursors[{i}] is not on a line the patch writes; left out")
            else:
                notes = [note, *notes]
        patches.append(join_annotations(clean, notes))
    spec["expected_patches"] = patches
    if example.rejected is not None:
        notes = [(int(p), str(n)) for p, n in zed.get("rejected_annotations") or []]
        spec["rejected_patch"] = _as_written(zed.get("rejected_as_written"), example.rejected, None, notes,
                                             snap, with_cursor=False) or join_annotations(example.rejected, notes)
    if example.predictions:
        spec["predictions"] = _export_predictions(example)
    spec.update({k: v for k, v in kept.items() if k not in spec})
    ours: dict[str, Any] = {}
    if zed.get("markdown"):
        ours["markdown"] = zed["markdown"]
    locations = [loc.model_dump(exclude_none=True) for loc in example.locations]
    if locations != zed_locations(example.expected, snap.path):  # Zed's patches cannot say where: keep ours
        ours["locations"] = locations
    if ours:
        spec["nextedit"] = ours
    order = {k: i for i, k in enumerate((*SPEC_FIELDS, *PIPELINE_FIELDS))}
    return dict(sorted(spec.items(), key=lambda kv: order.get(kv[0], len(order))))
