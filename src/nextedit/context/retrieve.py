"""Related-code retrieval for one snapshot: definitions of nearby identifiers, then BM25 chunks, fit to a budget."""

from __future__ import annotations

import builtins
import keyword
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from nextedit.context.bm25 import tokenize
from nextedit.context.definitions import Definition, definition_text
from nextedit.context.index import RevisionIndex
from nextedit.context.overlay import Overlay, build_overlay
from nextedit.languages import language_name
from nextedit.record import RelatedExcerpt, Snapshot

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PYTHON_BUILTINS = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls"}


@dataclass(frozen=True)
class RetrieveSettings:
    """Knobs of retrieval (see ContextStage.Config for their meaning)."""

    sources: tuple[str, ...] = ("definition", "bm25")
    max_tokens: int = 2048
    max_snippets: int = 16
    max_per_file: int = 4
    identifier_window: int = 20
    max_definitions_per_identifier: int = 2
    max_definition_snippets: int = 8
    unreachable_unique: bool = False
    ambiguous_limit: int = 8
    definition_max_lines: int = 24
    query_window: int = 20
    max_history_queries: int = 8
    cursor_path_weight: float = 3.0
    cursor_weight: float = 1.0
    history_weight: float = 2.0
    bm25_top_k: int = 12
    bm25_max_per_file: int = 3


@dataclass(frozen=True)
class Candidate:
    """A snippet before budgeting: half-open file line range [start, end), text, source, score."""

    path: str
    start: int
    end: int
    text: str
    source: str
    score: float


def estimate_tokens(text: str) -> int:
    """Zed's token estimate: UTF-8 bytes / 3, rounded up."""
    return math.ceil(len(text.encode("utf-8")) / 3)


def _cursor_line(snapshot: Snapshot) -> int:
    return snapshot.text.count("\n", 0, snapshot.cursor)


def _added_lines(diff: str) -> list[str]:
    return [ln[1:] for ln in diff.split("\n") if ln.startswith("+") and not ln.startswith("+++")]


def _hunk_text(diff: str) -> str:
    keep = [ln[1:] for ln in diff.split("\n")
            if ln[:1] in (" ", "+", "-") and not ln.startswith(("+++", "---"))]
    return "\n".join(keep)


@dataclass
class Usage:
    """How an identifier is used near the cursor: line distance, bare (`name`) and/or as `obj.name`."""

    distance: int
    order: int
    bare: bool = False
    attribute: bool = False


def _scan(line: str, usage: dict[str, Usage], dist: int, order: int) -> int:
    for match in _IDENT.finditer(line):
        word = match.group()
        is_attr = line[: match.start()].rstrip().endswith(".")
        found = usage.get(word)
        if found is None:
            found = usage[word] = Usage(dist, order)
        elif dist < found.distance:
            found.distance = dist
        found.attribute |= is_attr
        found.bare |= not is_attr
        order += 1
    return order


def nearby_identifiers(snapshot: Snapshot, window: int = 20) -> dict[str, Usage]:
    """Identifiers near the cursor and in recent edits' added lines, nearest first.

    Distance is in lines from the cursor line; identifiers seen only in history get distance
    `window + 1 + k` for the k-th most recent event.
    """
    lines = snapshot.text.split("\n")
    cur = _cursor_line(snapshot)
    usage: dict[str, Usage] = {}
    order = 0
    for i in range(max(0, cur - window), min(len(lines), cur + window + 1)):
        order = _scan(lines[i], usage, abs(i - cur), order)
    for k, event in enumerate(reversed(snapshot.history)):
        for line in _added_lines(event.diff):
            order = _scan(line, usage, window + 1 + k, order)
    return dict(sorted(usage.items(), key=lambda kv: (kv[1].distance, kv[1].order)))


def _path_affinity(a: str, b: str) -> int:
    pa, pb = PurePosixPath(a).parent.parts, PurePosixPath(b).parent.parts
    common = 0
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            break
        common += 1
    return common - abs(len(pa) - len(pb))


def _excerpt_range(snapshot: Snapshot) -> tuple[int, int]:
    return snapshot.start_line, snapshot.start_line + snapshot.text.count("\n") + 1


def _overlaps(path: str, start: int, end: int, snapshot: Snapshot) -> bool:
    lo, hi = _excerpt_range(snapshot)
    return path == snapshot.path and start < hi and end > lo


_IMPORT_LINE = re.compile(r"^\s*(?:import|from|use|pub\s+use|mod|pub\s+mod|require|#include|using|package)\b"
                          r"|\brequire\s*\(|\bimport\s*\(|^\s*(?:\w+\s+)?\"[^\"]+\"\s*$")


def import_words(lines: Iterable[str]) -> set[str]:
    """Identifiers on import-like lines (import/from/use/mod/require/#include, Go import-block paths)."""
    words: set[str] = set()
    for line in lines:
        if _IMPORT_LINE.search(line):
            words.update(_IDENT.findall(line))
    return words


def _ignored_names(path: str) -> frozenset[str]:
    if language_name(path) == "python":
        return _PYTHON_BUILTINS
    return frozenset()


# Languages where a member is also reached by its bare name inside its own class.
_BARE_MEMBERS = frozenset({"java", "csharp", "kotlin", "cpp", "scala", "swift"})


def _fits_usage(d: Definition, use: Usage, cursor_path: str) -> bool:
    """Members are reached as `obj.name` (or bare inside their own file in Java-like languages)."""
    if not d.member or use.attribute:
        return True
    return d.path == cursor_path and language_name(cursor_path) in _BARE_MEMBERS


def definition_candidates(index: RevisionIndex, snapshot: Snapshot, settings: RetrieveSettings,
                          overlay: Overlay | None = None) -> list[Candidate]:
    """Definitions of identifiers near the cursor, nearest identifier first.

    A definition is reachable when it is in the cursor file or its folder, or the cursor file's
    import lines mention its file or folder name. Reachable definitions come
    first (same file, same extension, nearby folders preferred). With `unreachable_unique`, a
    name with no reachable definition that is defined exactly once (not as a member) is used
    too, after all reachable ones. Files edited in the history are read as edited (`overlay`).
    """
    overlay = overlay or Overlay()
    out: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    suffix = PurePosixPath(snapshot.path).suffix
    ignored = _ignored_names(snapshot.path)
    cursor_words = import_words(snapshot.text.split("\n"))
    cursor_words |= import_words(overlay.file_lines(index, snapshot.path))
    cursor_dir = PurePosixPath(snapshot.path).parent

    def reachable(d: Definition) -> bool:
        p = PurePosixPath(d.path)
        return (d.path == snapshot.path or p.parent == cursor_dir or p.stem in cursor_words
                or p.parent.name in cursor_words)

    near: list[tuple[Definition, int]] = []
    far: list[tuple[Definition, int]] = []
    for name, use in nearby_identifiers(snapshot, settings.identifier_window).items():
        if name in ignored:
            continue
        defs = [d for d in overlay.lookup(index, name)
                if _fits_usage(d, use, snapshot.path)
                and not _overlaps(d.path, d.start_line, d.end_line + 1, snapshot)]
        if not defs or len(defs) > settings.ambiguous_limit:
            continue
        good = [d for d in defs if reachable(d)]
        if not good:
            if settings.unreachable_unique and len(defs) == 1 and not defs[0].member:
                far.append((defs[0], use.distance))
            continue
        good.sort(key=lambda d: (d.path != snapshot.path, PurePosixPath(d.path).suffix != suffix,
                                 -_path_affinity(d.path, snapshot.path), d.path, d.start_line))
        near.extend((d, use.distance) for d in good[: settings.max_definitions_per_identifier])
    for d, dist in near + far:
        if (d.path, d.start_line) in seen:
            continue
        seen.add((d.path, d.start_line))
        text = definition_text(d, overlay.file_lines(index, d.path),
                               max_lines=settings.definition_max_lines)
        end = d.start_line + min(d.end_line + 1 - d.start_line, settings.definition_max_lines)
        out.append(Candidate(d.path, d.start_line, end, text, "definition", -float(dist)))
        if len(out) >= settings.max_definition_snippets:
            break
    return out


def bm25_query(snapshot: Snapshot, settings: RetrieveSettings) -> Counter[str]:
    """Weighted query terms: the cursor path, lines around the cursor, recent edits (Zed's weights)."""
    query: Counter[str] = Counter()
    for token in tokenize(snapshot.path):
        query[token] += settings.cursor_path_weight
    lines = snapshot.text.split("\n")
    cur = _cursor_line(snapshot)
    window = "\n".join(lines[max(0, cur - settings.query_window): cur + settings.query_window + 1])
    for token in tokenize(window):
        query[token] += settings.cursor_weight
    for event in list(reversed(snapshot.history))[: settings.max_history_queries]:
        for token in tokenize(_hunk_text(event.diff)):
            query[token] += settings.history_weight
    return query


def bm25_candidates(index: RevisionIndex, snapshot: Snapshot, settings: RetrieveSettings,
                    overlay: Overlay | None = None) -> list[Candidate]:
    """The best-scoring chunks (top k, at most a few per file), excluding the cursor excerpt itself.

    Chunks of files edited in the history are scored as indexed but shown as they are now
    (their line range mapped through the edits).
    """
    overlay = overlay or Overlay()
    if index.bm25 is None or not len(index.bm25):
        return []
    scores = index.bm25.scores(bm25_query(snapshot, settings))
    out: list[Candidate] = []
    per_file: Counter[str] = Counter()
    for i in np.argsort(-scores, kind="stable"):
        if len(out) >= settings.bm25_top_k or scores[i] <= 0:
            break
        path, start, end = index.chunks[int(i)]
        start, end = overlay.map_line(path, start), overlay.map_line(path, end)
        if end <= start:
            continue
        if per_file[path] >= settings.bm25_max_per_file or _overlaps(path, start, end, snapshot):
            continue
        per_file[path] += 1
        lines = overlay.file_lines(index, path)
        while start < end - 1 and not lines[start].strip():
            start += 1  # a chunk starting on blank lines shows from its first code line
        text = "".join(lines[start:end])
        out.append(Candidate(path, start, end, text, "bm25", float(scores[i])))
    return out


def fit_budget(candidates: list[Candidate], settings: RetrieveSettings) -> list[RelatedExcerpt]:
    """Keep candidates in priority order while they fit: tokens, snippet count, per-file cap, no repeats.

    A candidate whose lines are mostly (half or more) already shown by kept snippets is skipped.
    """
    kept: list[RelatedExcerpt] = []
    covered: dict[str, set[int]] = {}
    per_file: Counter[str] = Counter()
    budget = settings.max_tokens
    for cand in candidates:
        if len(kept) >= settings.max_snippets:
            break
        if per_file[cand.path] >= settings.max_per_file:
            continue
        rows = set(range(cand.start, cand.end))
        seen = covered.get(cand.path, set())
        if rows and len(rows & seen) * 2 >= len(rows):
            continue
        cost = estimate_tokens(cand.text)
        if cost > budget:
            continue
        budget -= cost
        per_file[cand.path] += 1
        covered.setdefault(cand.path, set()).update(rows)
        kept.append(RelatedExcerpt(path=cand.path, start_line=cand.start, text=cand.text,
                                   source=cand.source, rank=len(kept)))
    return kept


def retrieve(index: RevisionIndex, snapshot: Snapshot,
             settings: RetrieveSettings | None = None) -> list[RelatedExcerpt]:
    """Related excerpts for a snapshot: definitions first (nearest identifier first), then BM25 by score."""
    settings = settings or RetrieveSettings()
    overlay = build_overlay(index, snapshot)
    candidates: list[Candidate] = []
    if "definition" in settings.sources:
        candidates += definition_candidates(index, snapshot, settings, overlay)
    if "bm25" in settings.sources:
        candidates += bm25_candidates(index, snapshot, settings, overlay)
    return fit_budget(candidates, settings)
