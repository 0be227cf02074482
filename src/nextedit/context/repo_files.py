"""Files of a git repository at one revision, read with git plumbing (never a checkout), and an LRU cache."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

V = TypeVar("V")


class RepoError(RuntimeError):
    """The repository or revision cannot be read; the message says which and why, in one line."""


@dataclass(frozen=True)
class TreeEntry:
    """One blob in a tree: path, object id and size in bytes."""

    path: str
    sha: str
    size: int


def _git() -> str:
    git = shutil.which("git")
    if git is None:
        raise RepoError("git is not installed (install it, e.g. `apt-get install git`)")
    return git


# git's id of the empty tree (sha1 of the empty tree object): what a root commit's parent reads as.
EMPTY_TREE = hashlib.sha1(b"tree 0\x00").hexdigest()


def _run(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run([_git(), "-C", str(repo), *args], input=stdin, capture_output=True,
                          check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RepoError(f"git {args[0]} in {repo} failed: {err[-1] if err else proc.returncode}")
    return proc.stdout


def resolve(repo: str | Path, revision: str) -> tuple[Path, str]:
    """The repository's top folder and the full commit id of `revision`; RepoError when either is missing."""
    path = Path(repo).expanduser()
    if not path.is_dir():
        raise RepoError(f"repository {repo} is not a local folder")
    try:
        top = _run(path, "rev-parse", "--absolute-git-dir").decode().strip()
    except RepoError:
        raise RepoError(f"{repo} is not a git repository") from None
    git_dir = Path(top)
    root = git_dir.parent if git_dir.name == ".git" else git_dir
    try:
        sha = _run(path, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except RepoError:
        if revision.endswith("^") and _exists(path, revision[:-1]):
            return root, EMPTY_TREE  # the parent of a root commit: the repository before anything
        raise RepoError(f"revision {revision.removesuffix('^')} not found in repository {repo}") from None
    return root, sha.decode().strip()


def _exists(repo: Path, revision: str) -> bool:
    try:
        _run(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except RepoError:
        return False
    return True


def list_tree(repo: Path, commit: str) -> list[TreeEntry]:
    """Every blob (regular file) in the commit's tree, with its size."""
    out = _run(repo, "ls-tree", "-r", "-z", "--long", "--full-tree", commit)
    entries: list[TreeEntry] = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, sha, size = meta.split()
        if kind != b"blob" or mode == b"120000" or size == b"-":
            continue
        entries.append(TreeEntry(path.decode("utf-8", "replace"), sha.decode(), int(size)))
    return entries


def read_blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    """Contents of many blobs in one `git cat-file --batch` call, keyed by object id."""
    if not shas:
        return {}
    unique = list(dict.fromkeys(shas))
    out = _run(repo, "cat-file", "--batch", stdin=("\n".join(unique) + "\n").encode())
    blobs: dict[str, bytes] = {}
    pos = 0
    for sha in unique:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        pos = header_end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        blobs[sha] = out[pos : pos + size]
        pos += size + 1
    return blobs


def read_text_files(repo: Path, commit: str, *, max_bytes: int = 1_000_000,
                    keep: Callable[[str], bool] | None = None) -> dict[str, str]:
    """Text files (no NUL byte, at most `max_bytes`) of the commit, path -> content, in tree order."""
    entries = [e for e in list_tree(repo, commit)
               if e.size <= max_bytes and (keep is None or keep(e.path))]
    blobs = read_blobs(repo, [e.sha for e in entries])
    files: dict[str, str] = {}
    for entry in entries:
        data = blobs.get(entry.sha)
        if data is None or b"\0" in data[:8192]:
            continue
        files[entry.path] = data.decode("utf-8", "replace")
    return files


def read_file(repo: Path, commit: str, path: str) -> str | None:
    """One file's text at the commit, or None when the commit has no such file."""
    try:
        data = _run(repo, "cat-file", "blob", f"{commit}:{path}")
    except RepoError:
        return None
    return data.decode("utf-8", "replace")


def split_lines(text: str) -> list[str]:
    """Lines of `text` with their endings, split on "\\n" only (as git, tree-sitter and diffs count)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


class LRUCache(Generic[V]):
    """A small thread-safe least-recently-used cache (per process) for per-revision indexes."""

    def __init__(self, maxsize: int = 4):
        self.maxsize = max(1, maxsize)
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        """The cached value for `key`, building (and caching) it on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = build()
        with self._lock:
            self.misses += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
