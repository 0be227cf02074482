"""Streaming git history: non-merge commits with their zero-context patches (one `git log -p -U0` stream)
and blob contents (one long-lived `cat-file --batch`), all without checking anything out."""

from __future__ import annotations

import re
import subprocess
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self


class GitError(RuntimeError):
    """A git command failed; the message is git's own one-line error."""


@dataclass(frozen=True)
class Commit:
    """A commit to mine: sha, parents (none for a root commit), committer time (ISO 8601), subject, and
    git's zero-context patch of it (`diff` is None when the patch was larger than the stream cap)."""

    sha: str
    parents: tuple[str, ...] = ()
    time: str = ""
    subject: str = ""
    diff: bytes | None = field(default=b"", repr=False)


@dataclass(frozen=True)
class RawHunk:
    """One zero-context hunk as git numbers it: 1-based starts; a zero length means "after that line"."""

    old_start: int
    old_len: int
    new_start: int
    new_len: int

    @property
    def old_index(self) -> int:
        """0-based index of the first old line replaced (or of the line the insertion goes before)."""
        return self.old_start - 1 if self.old_len else self.old_start

    @property
    def new_index(self) -> int:
        """0-based index of the first new line (or of the line the deletion happened before)."""
        return self.new_start - 1 if self.new_len else self.new_start


@dataclass
class FileChange:
    """One changed file of a commit (no rename detection): status A/M/D, blob ids, hunks."""

    path: str
    status: str = "M"
    old_oid: str | None = None
    new_oid: str | None = None
    mode: str = "100644"
    binary: bool = False
    hunks: list[RawHunk] = field(default_factory=list)

    @property
    def changed_lines(self) -> int:
        """Added plus removed lines."""
        return sum(h.old_len + h.new_len for h in self.hunks)

    @property
    def removed_lines(self) -> int:
        """Removed lines."""
        return sum(h.old_len for h in self.hunks)


def _git(repo: str | Path, *args: str) -> list[str]:
    return ["git", "-C", str(repo), "-c", "core.quotePath=false", *args]


def _run(repo: str | Path, *args: str) -> bytes:
    proc = subprocess.run(_git(repo, *args), capture_output=True, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])}: {msg[0] if msg else f'exit {proc.returncode}'}")
    return proc.stdout


def pathspecs(globs: list[str] | tuple[str, ...]) -> list[str]:
    """git pathspecs for path globs (a glob without `/` matches the file name in any folder)."""
    return [f":(glob){g if '/' in g else '**/' + g}" for g in globs]


# A commit's patch larger than this is not kept in memory (the commit is skipped as too large).
MAX_DIFF_BYTES = 64 << 20

_LOG_FORMAT = "--format=%x00%H%x00%P%x00%cI%x00%s"
_PATCH_ARGS = ("-p", "-U0", "--root", "--full-index", "--no-renames", "--histogram", "--no-color", "--no-ext-diff",
               "--no-textconv")


def iter_commits(repo: str | Path, *, rev_range: str | None = None, since: str | None = None,
                 paths: list[str] | tuple[str, ...] = (), max_commits: int | None = None,
                 patches: bool = True) -> Iterator[Commit]:
    """Stream the non-merge commits of `rev_range` (default HEAD), newest first, each with its zero-context
    patch against its first parent, from one `git log` process (no per-commit process, no checkout)."""
    args = ["log", "--no-merges", _LOG_FORMAT]
    if patches:
        args += _PATCH_ARGS
    if since:
        args.append(f"--since={since}")
    if max_commits is not None:
        args.append(f"--max-count={max_commits}")
    args.append(rev_range or "HEAD")
    args.append("--")
    args += pathspecs(paths)
    proc = subprocess.Popen(_git(repo, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    header: list[bytes] | None = None
    body: list[bytes] = []
    size = 0

    def finish() -> Commit:
        assert header is not None
        sha, parents, time, subject = (part.decode("utf-8", "replace") for part in header[1:5])
        diff = b"".join(body) if size <= MAX_DIFF_BYTES else None
        return Commit(sha, tuple(parents.split()), time, subject.rstrip("\n"), diff)

    try:
        for line in proc.stdout:
            if line.startswith(b"\0"):
                if header is not None:
                    yield finish()
                header, body, size = line.split(b"\0"), [], 0
            elif header is not None:
                size += len(line)
                if size <= MAX_DIFF_BYTES:
                    body.append(line)
        if header is not None:
            yield finish()
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        first = err.splitlines()[0] if err else f"exit {code}"
        raise GitError(f"git log {rev_range or 'HEAD'} in {repo}: {first}")


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX = re.compile(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)(?: (\d+))?")
_NULL_OID = re.compile(r"^0+$")


def _header_path(line: str) -> str | None:
    rest = line[len("diff --git "):]
    if rest.startswith('"'):
        return None  # a path git had to quote (control characters, quotes): not worth mining
    # Without renames both sides name the same path: "a/P b/P".
    half = (len(rest) - 1) // 2
    a, b = rest[:half], rest[half + 1:]
    if a.startswith("a/") and b.startswith("b/") and a[2:] == b[2:]:
        return a[2:]
    return None


# The lines of a patch that are not hunk body lines (" ", "-", "+", "\\" first) nor empty: only these can be
# file headers or hunk headers.
_HEADERISH = re.compile(r"^[^-+ \\\n].*", re.MULTILINE)


def parse_diff_tree(output: bytes) -> list[FileChange]:
    """Parse a `git log -p -U0 --full-index --no-renames` patch (one commit) into file changes.

    Hunk bodies are not read line by line: a body line starts with " ", "-", "+" or "\\", which no header
    does, so only the other lines are looked at (decoded in one go: UTF-8 with surrogateescape gives the
    same text decoded whole or line by line)."""
    files: list[FileChange] = []
    current: FileChange | None = None
    for m in _HEADERISH.finditer(output.decode("utf-8", "surrogateescape")):
        line = m.group()
        if line.startswith("diff --git "):
            path = _header_path(line)
            current = FileChange(path=path or "")
            if path is not None:
                files.append(current)
        elif current is None:
            continue
        elif line.startswith("new file mode"):
            current.status, current.mode = "A", line.split()[-1]
        elif line.startswith("deleted file mode"):
            current.status, current.mode = "D", line.split()[-1]
        elif line.startswith("new mode"):
            current.mode = line.split()[-1]
        elif m := _INDEX.match(line):
            old, new, mode = m.groups()
            current.old_oid = None if _NULL_OID.match(old) else old
            current.new_oid = None if _NULL_OID.match(new) else new
            if mode:
                current.mode = mode
        elif line.startswith(("Binary files ", "GIT binary patch")):
            current.binary = True
        elif m := _HUNK.match(line):
            o, ol, n, nl = m.groups()
            current.hunks.append(RawHunk(int(o), 1 if ol is None else int(ol), int(n), 1 if nl is None else int(nl)))
    return files


class GitObjects:
    """A long-lived `git cat-file --batch` process: read commits and blobs by id, one pipe round-trip each."""

    #: Blobs kept in memory: a commit's parent blob is often the next (older) commit's new blob of that file.
    CACHE_BLOBS = 64

    def __init__(self, repo: str | Path):
        self.repo = str(repo)
        self._proc = subprocess.Popen(_git(repo, "cat-file", "--batch"), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._blobs: OrderedDict[str, bytes] = OrderedDict()

    def prefetch(self, oids: Iterable[str | None]) -> None:
        """Read several blobs in one pipe round-trip into the blob cache (missing objects are left for `blob`
        to report)."""
        want = [o for o in dict.fromkeys(oids) if o is not None and o not in self._blobs][:self.CACHE_BLOBS]
        if not want:
            return
        stdin: IO[bytes] = self._proc.stdin  # type: ignore[assignment]
        stdout: IO[bytes] = self._proc.stdout  # type: ignore[assignment]
        # At most CACHE_BLOBS ids (~2.6 KB): the whole request fits the pipe before git answers.
        stdin.write(b"".join(o.encode("ascii") + b"\n" for o in want))
        stdin.flush()
        for oid in want:
            header = stdout.readline().split()
            if len(header) != 3:
                continue  # "<oid> missing" (or ambiguous): no content follows
            data = stdout.read(int(header[2]))
            stdout.read(1)
            if header[1] == b"blob":
                self._keep(oid, data)

    def _keep(self, oid: str, data: bytes) -> None:
        self._blobs[oid] = data
        self._blobs.move_to_end(oid)
        while len(self._blobs) > self.CACHE_BLOBS:
            self._blobs.popitem(last=False)

    def read(self, oid: str) -> tuple[str, bytes]:
        """(object type, content) of an object; raises GitError when it does not exist."""
        stdin: IO[bytes] = self._proc.stdin  # type: ignore[assignment]
        stdout: IO[bytes] = self._proc.stdout  # type: ignore[assignment]
        stdin.write(oid.encode("ascii") + b"\n")
        stdin.flush()
        header = stdout.readline().decode("ascii", "replace").split()
        if len(header) != 3:
            raise GitError(f"git cat-file in {self.repo}: object {oid} {' '.join(header[1:]) or 'unreadable'}")
        size = int(header[2])
        data = stdout.read(size)
        stdout.read(1)
        return header[1], data

    def blob(self, oid: str | None) -> bytes:
        """A blob's bytes (b"" for None, the side of an added or deleted file)."""
        if oid is None:
            return b""
        data = self._blobs.get(oid)
        if data is None:
            kind, data = self.read(oid)
            if kind == "blob":
                self._keep(oid, data)
        else:
            self._blobs.move_to_end(oid)
        return data

    def close(self) -> None:
        """Stop the cat-file process."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remote_url(repo: str | Path) -> str:
    """The `origin` remote URL of a repository, or its absolute path when it has none."""
    proc = subprocess.run(_git(repo, "remote", "get-url", "origin"), capture_output=True, check=False)
    url = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode == 0 and url:
        return url
    return str(Path(repo).resolve())


def toplevel_files(repo: str | Path, rev: str = "HEAD") -> dict[str, str]:
    """Top-level blobs of a revision: file name -> blob id (empty for an empty repository)."""
    try:
        out = _run(repo, "ls-tree", "-z", rev)
    except GitError:
        return {}
    files: dict[str, str] = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.decode("utf-8", "surrogateescape").partition("\t")
        _mode, kind, oid = meta.split()
        if kind == "blob":
            files[name] = oid
    return files


def check_range(repo: str | Path, rev_range: str | None) -> None:
    """Raise GitError (git's own message) unless `repo` is a git repository where `rev_range` resolves."""
    if not Path(repo).is_dir():
        raise GitError(f"{repo}: not a directory")
    try:
        _run(repo, "rev-parse", "--git-dir")
    except GitError:
        raise GitError(f"{repo}: not a git repository") from None
    try:
        _run(repo, "rev-list", "--max-count=1", rev_range or "HEAD", "--")
    except GitError as exc:
        if rev_range is None:
            raise GitError(f"{repo}: no commits to mine (HEAD does not resolve)") from None
        raise GitError(f"{repo}: revision range {rev_range}: {str(exc).split(': ', 1)[-1]}") from None


def resolve(repo: str | Path, rev: str) -> str:
    """The full sha a revision names; raises GitError for an unknown revision."""
    return _run(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
