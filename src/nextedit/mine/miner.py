"""`nextedit mine` orchestration: stream commits, turn each into verified examples (in worker processes),
write them in commit order, and resume an interrupted run without losing or duplicating anything."""

from __future__ import annotations

import os
import random
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, BinaryIO, Self

import orjson

from nextedit.jsonl import failed_path, failed_row
from nextedit.mine.build import Sample, SampleError, build_sample
from nextedit.mine.config import MINER_VERSION, MineConfig
from nextedit.mine.edits import Edit, apply_edits, file_edits
from nextedit.mine.filters import content_skip_reason, path_matches, path_skip_reason
from nextedit.mine.gitlog import (
    Commit,
    FileChange,
    GitObjects,
    check_range,
    iter_commits,
    parse_diff_tree,
    remote_url,
    toplevel_files,
)
from nextedit.mine.license import (
    MANIFESTS,
    detect_license,
    is_license_file,
    manifest_license,
)
from nextedit.mine.ordering import typing_order
from nextedit.mine.quality import (
    NearDuplicates,
    example_filter_reason,
    file_filter_reason,
)
from nextedit.mine.split import split_points
from nextedit.mine.verify import verify_example
from nextedit.patch import split_lines
from nextedit.record import RecordError, parse_example


@dataclass(frozen=True)
class RepoInfo:
    """The repository being mined: local path, URL for the records, id slug and SPDX license."""

    path: str
    url: str
    slug: str
    license: str | None


@dataclass
class CommitResult:
    """What one commit gave: examples (record dicts), failed rows, or the reason it was skipped."""

    sha: str
    status: str = "mined"  # or "skipped"
    reason: str | None = None
    examples: list[dict[str, Any] | bytes] = field(default_factory=list)  # bytes: already JSON
    failed: list[dict[str, Any]] = field(default_factory=list)
    filtered: list[dict[str, Any]] = field(default_factory=list)  # {id, revision, filter, detail, example}
    skipped_files: dict[str, str] = field(default_factory=dict)
    units: int = 0


@dataclass
class MineSummary:
    """Counts of a mining run."""

    commits: int = 0
    mined: int = 0
    skipped: int = 0
    resumed: int = 0
    examples: int = 0
    failed: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    file_skips: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def repo_slug(url: str) -> str:
    """A short id-safe name for a repository: the last part of its URL or path, lowercase."""
    name = re.split(r"[/:]", url.rstrip("/"))[-1].removesuffix(".git").removesuffix(".bundle")
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "repo"


def _tip(rev_range: str | None) -> str:
    if not rev_range:
        return "HEAD"
    tip = re.split(r"\.\.\.?", rev_range)[-1]
    return tip or "HEAD"


def repo_license(repo: str | Path, rev: str = "HEAD") -> str | None:
    """SPDX id from the top-level LICENSE/COPYING files at `rev` ("A OR B" for dual licenses), else the
    license a top-level package manifest declares (pyproject.toml, Cargo.toml, package.json), or None."""
    ids: list[str] = []
    files = toplevel_files(repo, rev)
    with GitObjects(repo) as objects:
        for name in sorted(files):
            if is_license_file(name):
                found = detect_license(objects.blob(files[name]).decode("utf-8", "replace"))
                if found and found not in ids:
                    ids.append(found)
        if not ids:
            for name in MANIFESTS:
                if name in files:
                    found = manifest_license(name, objects.blob(files[name]).decode("utf-8", "replace"))
                    if found:
                        return found
    return " OR ".join(sorted(ids)) if ids else None


def repo_info(repo: str | Path, rev_range: str | None = None) -> RepoInfo:
    """Path, URL, slug and license of a repository (license read at the tip of `rev_range`)."""
    path = str(Path(repo).resolve())
    url = remote_url(path)
    return RepoInfo(path, url, repo_slug(url), repo_license(path, _tip(rev_range)))


def mine_commit_safely(repo: RepoInfo, commit: Commit, cfg: MineConfig, objects: GitObjects) -> CommitResult:
    """`mine_commit`, turning an unexpected error into a skipped commit ("error: ...") instead of a crash."""
    try:
        return mine_commit(repo, commit, cfg, objects)
    except Exception as exc:  # noqa: BLE001 (any bug in one commit must not stop a long run)
        return _skip(commit.sha, f"error: {type(exc).__name__}: {exc}", {})


def _skip(sha: str, reason: str, files: dict[str, str]) -> CommitResult:
    return CommitResult(sha, "skipped", reason, skipped_files=files)


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _file_skip_reason(change: FileChange, cfg: MineConfig) -> str | None:
    if not path_matches(change.path, cfg.paths):
        return "outside --paths"
    if cfg.filters.exclude and path_matches(change.path, cfg.filters.exclude):
        return "excluded"
    if change.status == "D":
        return "deleted"
    if change.mode in ("160000", "120000"):
        return "not a regular file"
    if change.binary:
        return "binary"
    reason = path_skip_reason(change.path, cfg.filters.skip_files)
    if reason is None and not change.hunks:
        return "no line changes"
    return reason


def select_files(changes: list[FileChange], cfg: MineConfig, objects: GitObjects
                 ) -> tuple[list[tuple[FileChange, list[str], list[str]]], dict[str, str]]:
    """The changed files worth mining, with their parent and new lines, and {path: reason} for the rest."""
    kept: list[tuple[FileChange, list[str], list[str]]] = []
    skipped: dict[str, str] = {}
    for change in changes:
        reason = _file_skip_reason(change, cfg)
        if reason is None:
            new_data = objects.blob(change.new_oid)
            reason = content_skip_reason(new_data, cfg.filters.skip_files)
            if reason is None:
                new_text, old_text = _decode(new_data), _decode(objects.blob(change.old_oid))
                if new_text is None or old_text is None:
                    reason = "binary"
                else:
                    old_lines, new_lines = split_lines(old_text), split_lines(new_text)
                    reason = file_filter_reason(old_lines, new_lines, change.removed_lines, cfg.filters)
                    if reason is None:
                        kept.append((change, old_lines, new_lines))
        if reason is not None:
            skipped[change.path] = reason
    return kept, skipped


# File skip reasons that come from the data-quality filters (not from what the file is).
QUALITY_FILE_REASONS = frozenset({"whitespace-only", "rewrite"})


def mine_commit(repo: RepoInfo, commit: Commit, cfg: MineConfig, objects: GitObjects) -> CommitResult:
    """All examples of one commit, each verified; failures carry their reason."""
    sha = commit.sha
    if commit.diff is None:
        return _skip(sha, "patch too large", {})
    kept, skipped = select_files(parse_diff_tree(commit.diff), cfg, objects)
    if not kept:
        if any(r in QUALITY_FILE_REASONS for r in skipped.values()):
            return _skip(sha, "only whitespace-only or rewritten code files", skipped)
        return _skip(sha, "no code files changed", skipped)
    changed = sum(change.changed_lines for change, _, _ in kept)
    if changed < cfg.min_changed_lines:
        return _skip(sha, f"too few changed lines ({changed} < {cfg.min_changed_lines})", skipped)
    if changed > cfg.max_changed_lines:
        return _skip(sha, f"too many changed lines ({changed} > {cfg.max_changed_lines})", skipped)

    edits: list[Edit] = []
    old_files: dict[str, list[str]] = {}
    for change, old_lines, new_lines in kept:
        units = file_edits(change.path, old_lines, new_lines, change.hunks, max_lines=cfg.max_unit_lines)
        if apply_edits(old_lines, units) != new_lines:
            skipped[change.path] = "hunks do not reproduce the file"
            continue
        old_files[change.path] = old_lines
        edits.extend(units)
    if not edits:
        return _skip(sha, "no code files changed", skipped)

    rng = random.Random(f"{cfg.seed}:{sha}")
    order = typing_order(edits, rng)
    result = CommitResult(sha, skipped_files=skipped, units=len(order))
    for index, k in enumerate(split_points(len(order), cfg.samples_per_commit, rng)):
        example_id = f"{repo.slug}-{sha[:8]}-{index}"
        record: dict[str, Any] | None = None
        try:
            sample = build_sample(order, k, old_files, cfg, random.Random(f"{cfg.seed}:{sha}:{index}"))
            record = _record(example_id, repo, commit, cfg, sample, k, len(order))
            example = parse_example(record)
            problem = verify_example(example, sample.base)
        except (SampleError, RecordError) as exc:
            problem = str(exc)
        except Exception as exc:  # noqa: BLE001 (a bug must not stop a long run: quarantine the example)
            problem = f"internal error: {type(exc).__name__}: {exc}"
        if problem is None:
            dropped = example_filter_reason(example, cfg.filters)
            if dropped is None:
                result.examples.append(example.to_dict())
            else:
                result.filtered.append(filtered_row(example.to_dict(), dropped[0], dropped[1]))
        else:
            result.failed.append(_failed(repo, sha, example_id, problem, record))
    return result


def _record(example_id: str, repo: RepoInfo, commit: Commit, cfg: MineConfig, sample: Sample, k: int,
            units: int) -> dict[str, Any]:
    """The example record of a built sample."""
    return {
        "id": example_id,
        "source": {"kind": "git", "repo": repo.url, "local_repo": repo.path, "revision": commit.sha, "time": commit.time,
                   "license": repo.license, "tags": sample.tags, "commit": commit.subject,
                   "split": {"history": k, "expected": sample.group_size, "units": units}},
        "snapshot": {
            "path": sample.path, "text": sample.excerpt.text, "start_line": sample.excerpt.start_line,
            "cursor": sample.excerpt.cursor, "editable": list(sample.excerpt.editable),
            "history": [{"path": p, "old_path": p, "diff": d, "predicted": False} for p, d in sample.history],
        },
        "expected": [sample.expected],
        "expected_cursors": [sample.expected_cursor],
        "lineage": [{"stage": "mine", "version": MINER_VERSION, "config": cfg.fingerprint(), "at": ""}],
    }


def filtered_row(example: dict[str, Any], name: str, detail: str) -> dict[str, Any]:
    """The row of `OUT.filtered.jsonl` for an example a data-quality filter dropped."""
    return {"id": example["id"], "revision": example["source"]["revision"], "filter": name, "detail": detail,
            "example": example}


def _failed(repo: RepoInfo, sha: str, example_id: str, reason: str, record: dict[str, Any] | None) -> dict[str, Any]:
    row = failed_row(file=repo.path, line=None, reason=reason, stage="mine", raw=record)
    row["id"] = example_id
    row["revision"] = sha
    return row


# ------------------------------------------------------------------ worker processes

_WORKER: tuple[RepoInfo, MineConfig, GitObjects] | None = None


def _init_worker(repo: RepoInfo, cfg: MineConfig) -> None:
    global _WORKER
    _WORKER = (repo, cfg, GitObjects(repo.path))


def _work(commits: list[Commit]) -> list[CommitResult]:
    assert _WORKER is not None
    repo, cfg, objects = _WORKER
    results = [mine_commit_safely(repo, commit, cfg, objects) for commit in commits]
    for result in results:  # serialised here: JSON bytes travel back cheaper than nested dicts
        result.examples = [orjson.dumps(e) for e in result.examples]
    return results


# Commits per task sent to a worker process (fewer round-trips; results still come back in order).
CHUNK = 8


def _in_order(commits: Iterator[Commit], repo: RepoInfo, cfg: MineConfig, workers: int) -> Iterator[CommitResult]:
    """Mine commits, in worker processes when workers > 1, yielding results in commit order."""
    if workers <= 1:
        with GitObjects(repo.path) as objects:
            for commit in commits:
                yield mine_commit_safely(repo, commit, cfg, objects)
        return
    window = workers * 4
    with ProcessPoolExecutor(workers, mp_context=get_context("forkserver"), initializer=_init_worker,
                             initargs=(repo, cfg)) as pool:
        pending: deque[Future[list[CommitResult]]] = deque()
        chunk: list[Commit] = []
        for commit in commits:
            chunk.append(commit)
            if len(chunk) >= CHUNK:
                pending.append(pool.submit(_work, chunk))
                chunk = []
            if len(pending) >= window:
                yield from pending.popleft().result()
        if chunk:
            pending.append(pool.submit(_work, chunk))
        while pending:
            yield from pending.popleft().result()


# ------------------------------------------------------------------ output files and resume


def state_path(out: str | Path) -> Path:
    """The per-commit log next to the output: `out.jsonl` -> `out.commits.jsonl` (what resume reads)."""
    failed = failed_path(out)
    return failed.with_name(failed.name.removesuffix(".failed.jsonl") + ".commits.jsonl")


def filtered_path(out: str | Path) -> Path:
    """Where the examples dropped by data-quality filters go: `out.jsonl` -> `out.filtered.jsonl`."""
    failed = failed_path(out)
    return failed.with_name(failed.name.removesuffix(".failed.jsonl") + ".filtered.jsonl")


def read_mining_log(out: str | Path) -> dict[str, Any] | None:
    """Totals of the mining log next to `out` (commits, skip reasons, skipped files, filtered examples),
    or None when `out` was not written by `nextedit mine`."""
    path = state_path(out)
    if not path.exists():
        return None
    commits = mined = examples = 0
    skips: Counter[str] = Counter()
    files: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    with open(path, "rb") as fh:
        for line in fh:
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            commits += 1
            examples += row.get("examples", 0)
            if row.get("status") == "skipped":
                skips[re.sub(r" \(.*\)$", "", row.get("reason") or "")] += 1
            else:
                mined += 1
            files.update((row.get("skipped_files") or {}).values())
            filtered.update(row.get("filtered") or {})
    return {"log": str(path), "commits": commits, "mined": mined, "examples": examples,
            "skipped_commits": dict(skips.most_common()), "skipped_files": dict(files.most_common()),
            "filtered": dict(filtered.most_common())}


def _revision(line: bytes) -> str | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if "revision" in data and isinstance(data["revision"], str):
        return data["revision"]
    source = data.get("source")
    return source.get("revision") if isinstance(source, dict) else None


def _truncate_unfinished(path: Path, done: set[str] | None) -> list[str]:
    """Cut a torn last line, and every line from the first one whose commit is not in `done` (when
    `done` is None, the lines of the file's last commit). Return the commits kept, in file order."""
    if not path.exists():
        return []
    kept: list[str] = []
    cut = 0
    last_start: int | None = None
    last_rev: str | None = None
    with open(path, "rb") as fh:
        offset = 0
        for line in fh:
            if not line.endswith(b"\n"):
                break
            rev = _revision(line)
            if done is not None and rev not in done:
                break
            if rev != last_rev:
                last_start, last_rev = offset, rev
                if rev is not None:
                    kept.append(rev)
            offset += len(line)
            cut = offset
    if done is None and last_start is not None:
        cut = last_start
        if kept:
            kept.pop()
    if cut != path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(cut)
    return kept


def _cut_torn_line(path: Path) -> None:
    """Remove a last line left without its newline by a crash."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "r+b") as fh:
        data = fh.read()
        if not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def _load_done(out: Path) -> set[str]:
    """Commits finished by earlier runs; trailing output of an unfinished commit is removed. Without a
    commit log, the commits present in the output count as done except the last one, which is redone."""
    state = state_path(out)
    if state.exists():
        _cut_torn_line(state)
        done: set[str] = set()
        with open(state, "rb") as fh:
            for line in fh:
                rev = _revision(line)
                if rev:
                    done.add(rev)
    else:
        done = set(_truncate_unfinished(out, None))
    _truncate_unfinished(out, done)
    _truncate_unfinished(failed_path(out), done)
    _truncate_unfinished(filtered_path(out), done)
    return done


def _near_duplicates(out: Path, cfg: MineConfig) -> NearDuplicates:
    """The near-duplicate filter, primed with the examples of the commits already mined (on resume)."""
    near = NearDuplicates(cfg.filters)
    if near.enabled and out.exists():
        with open(out, "rb") as fh:
            for line in fh:
                ex = parse_example(orjson.loads(line))
                near.add(ex.id, near.signature(ex))
    return near


def _drop_near_duplicates(result: CommitResult, near: NearDuplicates) -> None:
    """Move the commit's examples that nearly duplicate an earlier commit's to `result.filtered`, then
    remember the rest (examples of one commit are not compared with each other)."""
    if not near.enabled or not result.examples:
        return
    kept: list[tuple[str, Any]] = []
    examples: list[dict[str, Any] | bytes] = []
    for raw in result.examples:
        data = orjson.loads(raw) if isinstance(raw, bytes) else raw
        ex = parse_example(data)
        m = near.signature(ex)
        match = near.match(m)
        if match is None:
            kept.append((ex.id, m))
            examples.append(raw)
        else:
            result.filtered.append(filtered_row(data, "near-duplicate",
                                                f"{match[1]:.2f} similar to {match[0]}"))
    for example_id, m in kept:
        near.add(example_id, m)
    result.examples = examples


def mine(repo: str | Path, out: str | Path, cfg: MineConfig, *, progress: bool | None = None) -> MineSummary:
    """Mine `repo` into `out` (JSONL, appended commit by commit), failures into `out.failed.jsonl`, and a
    per-commit log into `out.commits.jsonl`. Re-running the same command resumes: finished commits are
    skipped, the partial output of an interrupted commit is cut and redone."""
    started = time.perf_counter()
    out = Path(out)
    if str(out).endswith(".gz"):
        raise ValueError(f"{out}: mine writes plain JSONL (it appends and resumes); compress afterwards")
    check_range(repo, cfg.rev_range)
    info = repo_info(repo, cfg.rev_range)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _load_done(out)
    near = _near_duplicates(out, cfg)
    summary = MineSummary()
    workers = cfg.workers or os.cpu_count() or 1

    def todo() -> Iterator[Commit]:
        for commit in iter_commits(info.path, rev_range=cfg.rev_range, since=cfg.since, paths=cfg.paths,
                                   max_commits=cfg.max_commits):
            summary.commits += 1
            if commit.sha in done:
                summary.resumed += 1
                continue
            yield commit

    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(show)
    with (_Output(out) as output, bar):
        for result in _in_order(todo(), info, cfg, workers):
            _drop_near_duplicates(result, near)
            output.write(result)
            summary.examples += len(result.examples)
            summary.failed += len(result.failed)
            summary.filtered.update(row["filter"] for row in result.filtered)
            summary.file_skips.update(result.skipped_files.values())
            if result.status == "skipped":
                summary.skipped += 1
                summary.skip_reasons[re.sub(r" \(.*\)$", "", result.reason or "")] += 1
            else:
                summary.mined += 1
            bar.update(summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _dumps(record: dict[str, Any] | bytes) -> bytes:
    return record if isinstance(record, bytes) else orjson.dumps(record)


class _Output:
    """The three files of a run, appended to. A commit counts as done once its row is in the commit log,
    and log rows reach the disk only after the examples and failures written before them (checkpoints
    every CHECKPOINT_S seconds), so a crash anywhere is redone from the log on resume."""

    CHECKPOINT_S = 0.5

    def __init__(self, out: Path):
        self.out, self.failed, self.state = out, failed_path(out), state_path(out)
        self.filtered = filtered_path(out)
        self._rows: list[bytes] = []
        self._last = time.monotonic()

    def __enter__(self) -> Self:
        self._out_fh: BinaryIO = open(self.out, "ab")
        self._failed_fh: BinaryIO = open(self.failed, "ab")
        self._filtered_fh: BinaryIO = open(self.filtered, "ab")
        self._state_fh: BinaryIO = open(self.state, "ab")
        return self

    def write(self, result: CommitResult) -> None:
        """Append one commit's examples and failures; its log row follows at the next checkpoint."""
        if result.examples:
            self._out_fh.write(b"".join(_dumps(e) + b"\n" for e in result.examples))
        if result.failed:
            self._failed_fh.write(b"".join(orjson.dumps(f) + b"\n" for f in result.failed))
        if result.filtered:
            self._filtered_fh.write(b"".join(orjson.dumps(f) + b"\n" for f in result.filtered))
        self._rows.append(orjson.dumps({
            "revision": result.sha, "status": result.status, "reason": result.reason, "units": result.units,
            "examples": len(result.examples), "failed": len(result.failed),
            "filtered": dict(Counter(row["filter"] for row in result.filtered)),
            "skipped_files": result.skipped_files}) + b"\n")
        if time.monotonic() - self._last >= self.CHECKPOINT_S:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Flush examples and failures, then the log rows of the commits they belong to."""
        self._out_fh.flush()
        self._failed_fh.flush()
        self._filtered_fh.flush()
        if self._rows:
            self._state_fh.write(b"".join(self._rows))
            self._state_fh.flush()
            self._rows = []
        self._last = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        # Also on errors: what is finished is kept (and logged) for the next run to resume from.
        self.checkpoint()
        for fh in (self._out_fh, self._failed_fh, self._filtered_fh, self._state_fh):
            fh.close()
        for path in (self.failed, self.filtered):
            if path.stat().st_size == 0:
                path.unlink()


class _Progress:
    """A rich progress line (commits, examples, failures, rate) when attached to a terminal."""

    def __init__(self, show: bool):
        self.show = show
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Self:
        if self.show:
            from rich.progress import (
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      transient=True)
            self._progress.start()
            self._task = self._progress.add_task("mining", total=None)
        return self

    def update(self, s: MineSummary) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=(
                f"commits {s.mined + s.skipped} (skipped {s.skipped})  examples {s.examples}  failed {s.failed}"))

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
