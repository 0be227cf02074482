"""Which changed files a git miner keeps: code files only, no vendored, generated, lock, minified or binary files."""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath

from nextedit.languages import language_for_path

# Languages known by extension that are not code a next-edit model should learn from.
NON_CODE_LANGUAGES = frozenset({"markdown", "yaml", "toml"})

VENDORED_DIRS = frozenset({
    "vendor", "vendored", "third_party", "third-party", "thirdparty", "node_modules", "bower_components",
    "external", "externals", "site-packages", ".venv", "venv", "dist", "build", "target", "out",
    "__pycache__", ".git", "Pods", "Carthage", "deps", ".yarn",
})

LOCK_FILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "Cargo.lock",
    "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock", "go.sum", "Gemfile.lock", "composer.lock",
    "mix.lock", "flake.lock", "Package.resolved", "packages.lock.json", "pubspec.lock", "gradle.lockfile",
})

GENERATED_NAME_PATTERNS = (
    "*_pb2.py", "*_pb2_grpc.py", "*_pb2.pyi", "*.pb.go", "*.pb.cc", "*.pb.h", "*.pb.rs", "*_generated.*",
    "*.generated.*", "*.g.dart", "*.freezed.dart", "*.designer.cs", "*_string.go", "zz_generated*",
)

MINIFIED_NAME_PATTERNS = ("*.min.js", "*.min.css", "*.min.mjs", "*-min.js", "*.bundle.js")

GENERATED_MARKER = re.compile(
    r"@generated|do not edit|code generated .* do not edit|auto-?generated|automatically generated",
    re.IGNORECASE,
)

# Each list of name patterns as one regex: a name matches it when `fnmatch.fnmatchcase` matches one pattern.
_MINIFIED_NAME = re.compile("|".join(fnmatch.translate(p) for p in MINIFIED_NAME_PATTERNS))
_GENERATED_NAME = re.compile("|".join(fnmatch.translate(p) for p in GENERATED_NAME_PATTERNS))

MAX_FILE_BYTES = 1_000_000
MINIFIED_MAX_LINE = 1000
MINIFIED_MEAN_LINE = 300


# The file kinds a miner can skip (all by default; see FilterConfig.skip_files).
FILE_KINDS = ("lock", "vendored", "generated", "minified")


def path_skip_reason(path: str, skip: tuple[str, ...] | list[str] = FILE_KINDS) -> str | None:
    """Why a changed file is skipped from its path alone ("lock", "vendored", ...), or None to keep it.
    Only the kinds in `skip` are skipped; files that are not code always are."""
    p = PurePosixPath(path)
    name = p.name
    if "lock" in skip and (name in LOCK_FILES or name.endswith(".lock")):
        return "lock"
    if "vendored" in skip and any(part in VENDORED_DIRS for part in p.parts[:-1]):
        return "vendored"
    if "minified" in skip and _MINIFIED_NAME.match(name):
        return "minified"
    if "generated" in skip and _GENERATED_NAME.match(name):
        return "generated"
    lang = language_for_path(path)
    if lang is None or lang.name in NON_CODE_LANGUAGES:
        return "not code"
    return None


def content_skip_reason(data: bytes, skip: tuple[str, ...] | list[str] = FILE_KINDS) -> str | None:
    """Why a file is skipped from its content ("binary", "generated", "minified", "too large"), or None.
    "generated" and "minified" count only when in `skip`."""
    if len(data) > MAX_FILE_BYTES:
        return "too large"
    if b"\0" in data[:8192]:
        return "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    if "generated" in skip and GENERATED_MARKER.search(text[:1024]):
        return "generated"
    lines = text.split("\n")
    if "minified" in skip and lines and (max(map(len, lines)) > MINIFIED_MAX_LINE or len(text) / len(lines) > MINIFIED_MEAN_LINE):
        return "minified"
    return None


def path_matches(path: str, globs: list[str] | tuple[str, ...]) -> bool:
    """True when `path` matches one of the globs; no globs = all. `*` stops at `/`, `**` crosses
    folders, and a glob without `/` matches the file name in any folder (like .gitignore)."""
    if not globs:
        return True
    name = PurePosixPath(path).name
    return any(_glob_match(path if "/" in g else name, g.removeprefix("./")) for g in globs)


def _glob_match(path: str, glob: str) -> bool:
    regex = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif glob.startswith("**", i):
            regex += ".*"
            i += 2
        elif glob[i] == "*":
            regex += "[^/]*"
            i += 1
        elif glob[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(glob[i])
            i += 1
    return re.fullmatch(regex, path) is not None
