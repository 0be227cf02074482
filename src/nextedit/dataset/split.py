"""Split an examples file into disjoint parts by repository, by time, or at random (seeded)."""

from __future__ import annotations

import random
import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from nextedit.record import Example, RecordError, parse_example

SplitBy = Literal["repo", "time", "random"]


@dataclass(frozen=True)
class SplitSpec:
    """One output of a split: a name, its path and its size (a fraction, a count, or the rest)."""

    name: str
    path: Path
    kind: Literal["percent", "count", "rest"]
    value: float = 0.0


@dataclass
class SplitPart:
    """What one output received."""

    spec: SplitSpec
    examples: int = 0
    groups: int = 0
    time_min: str | None = None
    time_max: str | None = None
    repos: list[str] = field(default_factory=list)  # by repo: the repositories it holds (source.repo)


@dataclass
class SplitSummary:
    """Result of a split: the parts in argument order and how many examples were left unassigned."""

    parts: list[SplitPart] = field(default_factory=list)
    total: int = 0
    unassigned: int = 0
    by: str = "repo"
    bad_lines: int = 0  # lines that are not valid records: quarantined, in no split
    failed: Path | None = None  # where they went
    note: str | None = None  # why the split was not done the way it was asked (repo fallback)


_SIZE = re.compile(r"^(?:(?P<pct>\d+(?:\.\d+)?)%|(?P<count>\d+)|(?P<rest>rest))$")


def _output_path(name: str, out_dir: Path) -> tuple[str, Path]:
    if name.endswith((".jsonl", ".jsonl.gz")) or "/" in name:
        path = Path(name)
        stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
        return stem, path
    return name, out_dir / f"{name}.jsonl"


def with_pinned_splits(specs: list[SplitSpec], pinned: dict[str, list[str]], out_dir: Path) -> list[SplitSpec]:
    """The specs plus, for each split named only by a pin, a split of size 0 (it gets its pinned
    repositories and nothing else) written to `out_dir/NAME.jsonl`."""
    names = {s.name for s in specs}
    extra = [SplitSpec(name, out_dir / f"{name}.jsonl", "count", 0.0) for name in pinned if name not in names]
    return specs + extra


def parse_specs(args: Iterable[str], out_dir: Path) -> list[SplitSpec]:
    """Parse `NAME=SIZE` arguments; SIZE is `N%`, a count `N`, or `rest` (at most one).

    NAME becomes `out_dir/NAME.jsonl`; a NAME ending in .jsonl / .jsonl.gz or containing a
    slash is used as the output path itself.
    """
    specs: list[SplitSpec] = []
    for arg in args:
        name, sep, size = arg.partition("=")
        if not sep or not name:
            raise ValueError(f"split spec {arg!r}: expected NAME=SIZE, e.g. train=80% or test=rest")
        m = _SIZE.match(size.strip())
        if m is None:
            raise ValueError(f"split spec {arg!r}: size must be N%, a count N, or rest")
        stem, path = _output_path(name, out_dir)
        if m["pct"] is not None:
            pct = float(m["pct"])
            if not 0 < pct <= 100:
                raise ValueError(f"split spec {arg!r}: percentage must be in (0, 100]")
            specs.append(SplitSpec(stem, path, "percent", pct / 100))
        elif m["count"] is not None:
            specs.append(SplitSpec(stem, path, "count", float(int(m["count"]))))
        else:
            specs.append(SplitSpec(stem, path, "rest"))
    if not specs:
        raise ValueError("give at least one NAME=SIZE split, e.g. train=80% test=rest")
    if len(specs) > 100:
        raise ValueError("at most 100 splits")
    if sum(s.kind == "rest" for s in specs) > 1:
        raise ValueError("at most one split may be `rest`")
    if sum(s.value for s in specs if s.kind == "percent") > 1 + 1e-9:
        raise ValueError("split percentages add up to more than 100%")
    paths = [s.path.resolve() for s in specs]
    if len(set(paths)) != len(paths):
        raise ValueError("two splits write the same file")
    return specs


def targets(specs: list[SplitSpec], total: int) -> list[int]:
    """Example counts wanted per split: N% -> round(total*N/100), N -> N, rest -> what remains.

    Each is capped by what remains; when the percentages add up to 100% (and there is no
    count and no rest) the last split absorbs rounding so that nothing is left over.
    """
    out = [0] * len(specs)
    remaining = total
    for i, spec in enumerate(specs):
        if spec.kind == "rest":
            continue
        want = round(total * spec.value) if spec.kind == "percent" else int(spec.value)
        out[i] = min(want, remaining)
        remaining -= out[i]
    rest = [i for i, s in enumerate(specs) if s.kind == "rest"]
    if rest:
        out[rest[0]] = remaining
    elif all(s.kind == "percent" for s in specs) and abs(sum(s.value for s in specs) - 1) < 1e-9:
        out[-1] += remaining
    return out


def assign_groups(group_sizes: list[int], wanted: list[int]) -> list[int]:
    """Give each group (in the given order) a split index, filling splits in order; -1 = unassigned.

    A group goes to the split whose cumulative target its midpoint falls in, so split sizes
    stay close to the targets even with groups of several examples.
    """
    bounds = []
    acc = 0
    for w in wanted:
        acc += w
        bounds.append(acc)
    out = []
    seen = 0
    split = 0
    for size in group_sizes:
        mid = seen + size / 2
        while split < len(bounds) and mid >= bounds[split]:
            split += 1
        out.append(split if split < len(bounds) else -1)
        seen += size
    return out


def normalize_repo(repo: str) -> str:
    """A repository URL in a form where `https://github.com/A/B.git/` and `.../a/b` match."""
    repo = repo.strip().rstrip("/").removesuffix(".git").lower()
    return re.sub(r"^(https?://|ssh://|git@)", "", repo).replace(":", "/")


def repo_matches(pattern: str, repo: str) -> bool:
    """Whether a `--test-repos`-style pattern names this repository: the whole normalised URL or path,
    or its tail after a `/` or `-` (`pallets/itsdangerous`, `itsdangerous`; a bundle clone's
    `.../pallets--itsdangerous.bundle` too)."""
    pat, name = normalize_repo(pattern).removesuffix(".bundle"), normalize_repo(repo).removesuffix(".bundle")
    return bool(pat) and (name == pat or (name.endswith(pat) and name[-len(pat) - 1] in "/-"))


def pinned_split(repo: str, pinned: dict[str, list[str]]) -> str | None:
    """The split a repository is pinned to, or None; ValueError when two splits claim it."""
    names = [name for name, patterns in pinned.items() if any(repo_matches(p, repo) for p in patterns)]
    if len(names) > 1:
        raise ValueError(f"repository {repo} is pinned to two splits: {' and '.join(names)}")
    return names[0] if names else None


def _time_key(ex: Example, file: str, line: int) -> datetime:
    if not ex.source.time:
        raise RecordError("missing (needed by --by time)", file=file, line=line, field="source.time")
    try:
        t = datetime.fromisoformat(ex.source.time)
    except ValueError:
        raise RecordError(f"not an ISO 8601 time: {ex.source.time!r}", file=file, line=line,
                          field="source.time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _check_pins(pinned: dict[str, list[str]], specs: list[SplitSpec], by: str) -> None:
    if not pinned:
        return
    if by != "repo":
        raise ValueError("repositories can be pinned to a split only with --by repo")
    names = {s.name for s in specs}
    for name, patterns in pinned.items():
        if name not in names:
            raise ValueError(f"repositories are pinned to split {name!r}, which is not among the splits "
                             f"({', '.join(sorted(names))})")
        if not [p for p in patterns if p.strip()]:
            raise ValueError(f"split {name!r}: give at least one repository")


def plan_split(examples: Iterable[tuple[int, Example]], specs: list[SplitSpec], *,
               by: SplitBy = "repo", seed: int = 0, file: str = "input",
               pinned: dict[str, list[str]] | None = None) -> tuple[array, SplitSummary]:
    """Decide the split index of every example (first pass); keeps only keys, never records.

    `examples` yields (line number, example). `pinned` ({split name: repository patterns}, only
    with by="repo") sends whole repositories to a named split; the sizes then share out the other
    examples. Returns an array of split indices in input order (-1: unassigned) and a summary.
    """
    pinned = {k: v for k, v in (pinned or {}).items()}
    _check_pins(pinned, specs, by)
    group_of: list[int] = []
    group_ids: dict[str, int] = {}
    group_sizes: list[int] = []
    group_repo: dict[str, str] = {}
    times: list[tuple[datetime, int]] = []
    raw_times: list[str] = []
    for line, ex in examples:
        if by == "time":
            times.append((_time_key(ex, file, line), len(raw_times)))
            raw_times.append(ex.source.time or "")
            continue
        if by == "repo" and ex.source.repo:
            key = "repo:" + normalize_repo(ex.source.repo)
            group_repo.setdefault(key, ex.source.repo)
        else:
            key = "id:" + ex.id  # records sharing an id (duplicates) always land in the same split
        gid = group_ids.setdefault(key, len(group_ids))
        if gid == len(group_sizes):
            group_sizes.append(0)
        group_sizes[gid] += 1
        group_of.append(gid)

    total = len(raw_times) if by == "time" else len(group_of)
    index_of = {s.name: i for i, s in enumerate(specs)}
    pin_of: dict[str, int] = {}
    for key, repo in group_repo.items():
        name = pinned_split(repo, pinned) if pinned else None
        if name is not None:
            pin_of[key] = index_of[name]
    for name, patterns in pinned.items():
        for pattern in patterns:
            if pattern.strip() and not any(repo_matches(pattern, r) for r in group_repo.values()):
                raise ValueError(f"split {name!r}: no example comes from a repository matching {pattern!r}")
    free = total - sum(group_sizes[group_ids[k]] for k in pin_of)
    wanted = targets(specs, free)
    summary = SplitSummary(parts=[SplitPart(s) for s in specs], total=total, by=by)
    assignment = array("b", [-1]) * total
    if by == "time":
        times.sort()  # oldest first; ties keep file order (the index is the tie-breaker)
        for split, (_, i) in zip(assign_groups([1] * total, wanted), times, strict=True):
            assignment[i] = split
            if split >= 0:
                part = summary.parts[split]
                part.examples += 1
                part.groups += 1
                part.time_min = part.time_min or raw_times[i]
                part.time_max = raw_times[i]
    else:
        order = sorted(k for k in group_ids if k not in pin_of)  # independent of file order, then shuffled
        random.Random(seed).shuffle(order)
        splits = assign_groups([group_sizes[group_ids[k]] for k in order], wanted)
        pins = sorted(pin_of)
        split_of_group = [0] * len(group_sizes)
        for key, split in zip(order + pins, splits + [pin_of[k] for k in pins], strict=True):
            split_of_group[group_ids[key]] = split
            if split >= 0:
                summary.parts[split].groups += 1
                summary.parts[split].examples += group_sizes[group_ids[key]]
                if key in group_repo:
                    summary.parts[split].repos.append(group_repo[key])
        for i, gid in enumerate(group_of):
            assignment[i] = split_of_group[gid]
    summary.unassigned = total - sum(p.examples for p in summary.parts)
    return assignment, summary


def split_file(input_path: Path, specs: list[SplitSpec], *, by: SplitBy = "repo",
               seed: int = 0, pinned: dict[str, list[str]] | None = None) -> SplitSummary:
    """Split a JSONL file in two streaming passes: plan on keys, then copy records to their outputs.
    `pinned`: {split name: repository patterns} held out whole in that split (see `plan_split`).

    Records are written unchanged (unknown fields kept); outputs appear atomically, only after the
    whole input has been read. Lines that are not valid records are quarantined (see
    `INPUT.split.failed.jsonl` in the first split's folder) and counted, as the stages do. With `by="repo"`, when the repositories are
    too few to give every split with a non-zero size at least one example, the split falls back to
    `time` (every example has source.time) or `random` and says so in `summary.note`.
    """
    from contextlib import ExitStack

    from nextedit.jsonl import FailedWriter, JsonlWriter, iter_lines

    src = Path(input_path).resolve()
    for spec in specs:
        if spec.path.resolve() == src:
            raise ValueError(f"split {spec.name} would overwrite the input {input_path}")
    name = str(input_path)
    bad: set[int] = set()
    stem = Path(input_path).name.removesuffix(".gz").removesuffix(".jsonl")
    failed = FailedWriter(specs[0].path.parent / f"{stem}.split.jsonl", stage="split")
    timed = [True]

    def numbered(quarantine: bool) -> Iterable[tuple[int, Example]]:
        for line, raw in iter_lines(input_path):
            if line in bad:
                continue
            try:
                ex = parse_example(raw, file=name, line=line)
            except RecordError as exc:
                if quarantine:
                    bad.add(line)
                    failed.write(file=name, line=line, reason=str(exc), raw=raw)
                    continue
                raise
            timed[0] = timed[0] and bool(ex.source.time)
            yield line, ex

    _check_pins(pinned or {}, specs, by)
    with failed:
        assignment, summary = plan_split(numbered(True), specs, by=by, seed=seed, file=name, pinned=pinned)
    wanted = targets(specs, summary.total)
    starved = [p.spec.name for p, w in zip(summary.parts, wanted, strict=True) if w > 0 and p.examples == 0]
    if by == "repo" and starved and not pinned:
        repos = sum(p.groups for p in summary.parts)
        fallback: SplitBy = "time" if timed[0] else "random"
        assignment, summary = plan_split(numbered(False), specs, by=fallback, seed=seed, file=name)
        summary.note = (f"--by repo left {', '.join(starved)} empty ({repos} repositories/ids for "
                        f"{len(specs)} splits): split by {fallback} instead; pass --by time or --by random "
                        "to choose")
    summary.bad_lines = failed.count
    summary.failed = failed.path if failed.count else None
    with ExitStack() as stack:
        writers = [stack.enter_context(JsonlWriter(spec.path)) for spec in specs]
        i = 0
        for line, raw in iter_lines(input_path):
            if line in bad:
                continue
            split = assignment[i]
            i += 1
            if split >= 0:
                writers[split].write(raw)  # the line as it was: nothing re-serialised
    return summary

