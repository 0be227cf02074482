"""Finding the local git repository and revision an example's snapshot was taken from."""

from __future__ import annotations

from pathlib import Path

from nextedit.context.repo_files import RepoError
from nextedit.record import Example


def repo_candidates(source_repo: str | None, repos_dir: str | None) -> list[Path]:
    """Local folders that may hold the example's repository, most specific first."""
    out: list[Path] = []
    if not source_repo:
        return out
    local = source_repo.removeprefix("file://")
    if "://" not in local and not local.startswith("git@"):
        out.append(Path(local).expanduser())
    if repos_dir:
        name = local.rstrip("/").removesuffix(".git")
        name = name.split(":", 1)[-1] if local.startswith("git@") else name
        parts = [p for p in name.split("/") if p and not p.endswith(":")]
        if len(parts) >= 2:
            out.append(Path(repos_dir, parts[-2], parts[-1]))
        if parts:
            out.append(Path(repos_dir, parts[-1]))
    return out


def files_revision(example: Example, revision: str, at: str = "auto") -> str:
    """The revision whose files show the code as it was when the snapshot was taken.

    `at="revision"`: the example's revision itself (Zed specs: the base the user's edits sit on).
    `at="parent"`: its first parent. `at="auto"`: the parent for examples mined from git history
    (source.kind "git": the revision is the commit whose edits are replayed, so its files already
    hold edits the user has not made yet), the revision itself otherwise.
    """
    if at == "parent" or (at == "auto" and example.source.kind == "git"):
        return f"{revision}^"
    if at in ("revision", "auto"):
        return revision
    raise ValueError(f"unknown `at` {at!r} (use auto, revision or parent)")


def locate(example: Example, *, repo: str | None = None, revision: str | None = None,
           repos_dir: str | None = None, at: str = "auto") -> tuple[Path, str]:
    """(repository folder, revision) for an example; RepoError with a one-line reason when unknown.

    An explicit `repo` wins; otherwise `example.source.local_repo` (the clone it was mined from),
    `example.source.repo` when it is a local path, or its clone under `repos_dir`
    (`repos_dir/owner/name` or `repos_dir/name`). The revision is
    `example.source.revision`, else the `revision` given here, then moved by `at`
    (see `files_revision`).
    """
    rev = example.source.revision or revision
    if repo:
        candidates = [Path(repo).expanduser()]
    else:
        candidates = repo_candidates(example.source.repo, repos_dir)
        if example.source.local_repo:
            candidates.insert(0, Path(example.source.local_repo).expanduser())
    if not candidates:
        raise RepoError("no repository: the example has no source.repo and no `repo` is configured")
    found = next((c for c in candidates if c.is_dir()), None)
    if found is None:
        where = example.source.local_repo or example.source.repo or repo
        raise RepoError(f"repository {where} is not available locally "
                        f"(set `repo` or `repos_dir` in the stage config)")
    if not rev:
        raise RepoError("no revision: the example has no source.revision and no `revision` is configured")
    return found, files_revision(example, rev, at)
