"""`nextedit mine`: git history as a source step (commits -> verified examples) run by the executor, which
writes them in commit order, in worker processes, and resumes an interrupted run without loss or duplicates."""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field

from nextedit.jsonl import failed_path, failed_row
from nextedit.mine.build import Sample, SampleError, Versions, build_sample
from nextedit.mine.config import MINER_VERSION, MineConfig
from nextedit.mine.edits import Edit, apply_edits, file_edits
from nextedit.mine.filters import content_skip_reason, path_matches, path_skip_reason
from nextedit.mine.finished import completes_commit, finished_example
from nextedit.mine.gitlog import (
    Commit,
    FileChange,
    GitObjects,
    check_range,
    iter_commits,
    parse_diff_tree,
    remote_url,
    resolve,
    toplevel_files,
)
from nextedit.mine.license import (
    MANIFESTS,
    detect_license,
    is_license_file,
    manifest_license,
)
from nextedit.mine.locations import jump_sample, remaining_locations
from nextedit.mine.ordering import typing_order
from nextedit.mine.quality import (
    NearDuplicates,
    example_filter_reason,
    file_filter_reason,
)
from nextedit.mine.split import split_points
from nextedit.mine.verify import verify_example
from nextedit.patch import split_lines
from nextedit.pipeline.engine import RunSummary, sidecar_paths
from nextedit.pipeline.stage import Emitted, SourceStage
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
    reasons = [_file_skip_reason(change, cfg) for change in changes]
    # Both sides of every file that may be mined, in one round-trip to git (most are read below).
    objects.prefetch(oid for change, reason in zip(changes, reasons, strict=True) if reason is None
                     for oid in (change.new_oid, change.old_oid))
    for change, reason in zip(changes, reasons, strict=True):
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
    versions = Versions(old_files)  # file versions and diffs the samples of this commit share
    for index, k in enumerate(split_points(len(order), cfg.samples_per_commit, rng)):
        example_id = f"{repo.slug}-{sha[:8]}-{index}"
        _add_sample(result, repo, commit, cfg, example_id, order, k, versions,
                    lambda k=k, index=index: build_sample(order, k, old_files, cfg,
                                                          random.Random(f"{cfg.seed}:{sha}:{index}"), versions))
        chance = random.Random(f"{cfg.seed}:{sha}:{index}:jump").random()
        if chance < cfg.jump_examples:
            _add_sample(result, repo, commit, cfg, f"{example_id}-jump", order, k, versions,
                        lambda k=k: jump_sample(order, k, old_files, cfg, versions), finished=False)
    return result


def _add_sample(result: CommitResult, repo: RepoInfo, commit: Commit, cfg: MineConfig, example_id: str,
                order: list[Edit], k: int, versions: Versions, build: Any, *,
                finished: bool = True) -> None:
    """Build, verify and filter one sample into `result` (`build()` returns a Sample, or None for none)."""
    sha = commit.sha
    index = example_id.removeprefix(f"{repo.slug}-{sha[:8]}-")
    record: dict[str, Any] | None = None
    try:
        sample = build()
        if sample is None:
            return
        record = _record(example_id, repo, commit, cfg, sample, k, len(order))
        record["locations"] = remaining_locations(order, k, sample.group_size, versions.old_files, cfg, versions)
        example = parse_example(record)
        problem = verify_example(example, sample.base)
    except (SampleError, RecordError) as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 (a bug must not stop a long run: quarantine the example)
        problem = f"internal error: {type(exc).__name__}: {exc}"
    if problem is not None:
        result.failed.append(_failed(repo, sha, example_id, problem, record))
        return
    dropped = example_filter_reason(example, cfg.filters)
    if dropped is not None:
        result.filtered.append(filtered_row(example.to_dict(), dropped[0], dropped[1]))
        return
    result.examples.append(example.to_dict())
    chance = random.Random(f"{cfg.seed}:{sha}:{index}:finished").random()
    if finished and chance < cfg.finished_examples and completes_commit(example):
        done = finished_example(example)
        if done is not None:
            result.examples.append(done.to_dict())


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
        "expected": [sample.expected] if sample.expected else [],
        "expected_cursors": [sample.expected_cursor] if sample.expected else [],
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


# ------------------------------------------------------------------ the source step


class MineStageConfig(MineConfig):
    """The mine step's options: the repository and what to mine from it (workers belong to the run)."""

    repo: str = Field(min_length=1, description="path of the git repository")


class MineStage(SourceStage):
    """Git history as a source step: each commit (newest first) becomes verified examples; a per-commit
    log goes to `OUT.commits.jsonl`. The executor runs commits inline or in worker processes, writes them
    in commit order and resumes an interrupted run after the last commit done."""

    name = "mine"
    version = MINER_VERSION
    Config = MineStageConfig
    side_output = "commits"

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._info: RepoInfo | None = None
        self._objects: GitObjects | None = None

    @property
    def info(self) -> RepoInfo:
        """The repository (path, URL, slug, license), read once per process."""
        if self._info is None:
            self._info = repo_info(self.config.repo, self.config.rev_range)
        return self._info

    def units(self) -> Iterator[Commit]:
        cfg = self.config
        return iter_commits(self.info.path, rev_range=cfg.rev_range, since=cfg.since, paths=cfg.paths,
                            max_commits=cfg.max_commits)

    def fingerprint(self) -> dict[str, Any]:
        """The repository and the commits its range names now (new commits start a new run)."""
        rev = self.config.rev_range or "HEAD"
        ends = [part for part in re.split(r"\.\.\.?", rev) if part] or ["HEAD"]
        return {"repo": self.info.path, "revisions": [resolve(self.info.path, e) for e in ends]}

    def describe(self) -> str:
        return self.info.path

    def emit(self, commit: Commit) -> Emitted:
        if self._objects is None:
            self._objects = GitObjects(self.info.path)
        result = mine_commit_safely(self.info, commit, self.config, self._objects)
        self.stats[result.status] += 1
        if result.status == "skipped":
            self.stats["skip:" + re.sub(r" \(.*\)$", "", result.reason or "")] += 1
        for reason in result.skipped_files.values():
            self.stats["file_skip:" + reason] += 1
        filtered = Counter(row["filter"] for row in result.filtered)
        for reason, n in filtered.items():
            self.stats["filtered:" + reason] += n
        return Emitted(records=result.examples, failed=result.failed, log={
            "revision": result.sha, "status": result.status, "reason": result.reason, "units": result.units,
            "examples": len(result.examples), "failed": len(result.failed), "filtered": dict(filtered),
            "filtered_examples": [{k: row[k] for k in ("id", "filter", "detail")} for row in result.filtered],
            "skipped_files": result.skipped_files})

    def close(self) -> None:
        if self._objects is not None:
            self._objects.close()
            self._objects = None


def state_path(out: str | Path) -> Path:
    """The per-commit log next to the output: `out.jsonl` -> `out.commits.jsonl`."""
    return sidecar_paths(out, MineStage.side_output)["log"]


def _mine_summary(run: RunSummary, *, reused: bool = False) -> MineSummary:
    """The counts of a mining run, from the executor's summary and the step's counters."""
    stats = run.stats
    commits = int(stats.get("mined", 0) + stats.get("skipped", 0))
    summary = MineSummary(commits=commits, mined=0 if reused else int(stats.get("mined", 0)),
                          skipped=0 if reused else int(stats.get("skipped", 0)),
                          resumed=commits if reused else run.resumed,
                          examples=0 if reused else run.written, failed=0 if reused else run.failed,
                          seconds=run.seconds)
    if not reused:
        for key, n in stats.items():
            kind, _, reason = key.partition(":")
            if kind == "skip":
                summary.skip_reasons[reason] += int(n)
            elif kind == "file_skip":
                summary.file_skips[reason] += int(n)
            elif kind == "filtered":
                summary.filtered[reason] += int(n)
    return summary


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
    near = filtered_path(out)
    if near.exists():  # the near-duplicate pass runs after the commits, so its drops are not in the log
        with open(near, "rb") as fh:
            n = sum(1 for line in fh if b'"near-duplicate"' in line)
        if n:
            filtered["near-duplicate"] += n
            examples -= n
    return {"log": str(path), "commits": commits, "mined": mined, "examples": examples,
            "skipped_commits": dict(skips.most_common()), "skipped_files": dict(files.most_common()),
            "filtered": dict(filtered.most_common())}


def drop_near_duplicates(out: Path, cfg: MineConfig) -> Counter[str]:
    """The near-duplicate filter as a pass over a finished output, in commit order: an example that nearly
    duplicates one of an earlier commit moves to `out.filtered.jsonl` (examples of one commit are not compared
    with each other). The output is rewritten atomically; returns the counts."""
    near = NearDuplicates(cfg.filters)
    dropped: Counter[str] = Counter()
    if not near.enabled or not out.exists():
        return dropped
    tmp = out.with_name(out.name + ".dedup.tmp")
    rows: list[dict[str, Any]] = []
    pending: list[tuple[str, Any]] = []
    revision: str | None = None
    with open(out, "rb") as fh, open(tmp, "wb") as dst:
        for line in fh:
            if not line.strip():
                continue
            data = orjson.loads(line)
            ex = parse_example(data)
            if ex.source is not None and ex.source.revision != revision:  # a new commit: remember the last one's
                for example_id, m in pending:
                    near.add(example_id, m)
                pending, revision = [], ex.source.revision
            m = near.signature(ex)
            match = near.match(m)
            if match is None:
                pending.append((ex.id, m))
                dst.write(line if line.endswith(b"\n") else line + b"\n")
            else:
                rows.append(filtered_row(data, "near-duplicate", f"{match[1]:.2f} similar to {match[0]}"))
                dropped["near-duplicate"] += 1
    if rows:
        with open(filtered_path(out), "ab") as fh:
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        tmp.replace(out)
    else:
        tmp.unlink()
    return dropped


def mine(repo: str | Path, out: str | Path, cfg: MineConfig, *, progress: bool | None = None,
         engine: str = "local", ray_address: str | None = None) -> MineSummary:
    """Mine `repo` into `out` (JSONL), failures into `out.failed.jsonl`, and a per-commit log into
    `out.commits.jsonl`, with the executor. Re-running the same command resumes an interrupted run
    (commits done are not redone) and reuses a finished one whose repository has not moved."""
    from nextedit.pipeline.engine import run_stage
    from nextedit.pipeline.runner import reused_summary, up_to_date

    out = Path(out)
    if str(out).endswith(".gz"):
        raise ValueError(f"{out}: mine writes plain JSONL (it resumes commit by commit); compress afterwards")
    check_range(repo, cfg.rev_range)
    stage = MineStage({**cfg.model_dump(exclude={"workers"}), "repo": str(Path(repo).resolve())})
    if up_to_date(stage, None, out)[0]:
        return _mine_summary(reused_summary(out), reused=True)
    run = run_stage(stage, None, out, concurrency=cfg.workers or os.cpu_count() or 1, cache=False,
                    progress=progress, engine=engine, ray_address=ray_address)
    summary = _mine_summary(run)
    near = drop_near_duplicates(out, cfg)
    summary.filtered.update(near)
    summary.examples -= sum(near.values())
    return summary
