"""What the language server can tell about the workspace it edits: the repository URL, revision and
license (sent with collectable requests only, so the server can check the code may be kept)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from nextedit.mine.license import detect_license, is_license_file

log = logging.getLogger("nextedit.lsp")

MAX_LICENSE_BYTES = 200_000


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5,
                             check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("git %s in %s: %s", " ".join(args), root, exc)
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def workspace_license(root: Path) -> str | None:
    """SPDX id of the license file at the workspace root (None when there is none we recognise)."""
    try:
        candidates = sorted(p for p in root.iterdir() if p.is_file() and is_license_file(p.name))
    except OSError:
        return None
    for path in candidates:
        try:
            with path.open("rb") as fh:
                text = fh.read(MAX_LICENSE_BYTES).decode("utf-8", "replace")
        except OSError:
            continue
        spdx = detect_license(text)
        if spdx:
            return spdx
    return None


def workspace_source(root: str | None) -> dict[str, str] | None:
    """{"repo", "revision", "license"} of the workspace (keys left out when unknown), or None."""
    if not root:
        return None
    path = Path(root)
    if not path.is_dir():
        return None
    source: dict[str, str] = {}
    repo = _git(path, "remote", "get-url", "origin")
    revision = _git(path, "rev-parse", "HEAD")
    spdx = workspace_license(path)
    if repo:
        source["repo"] = repo
    if revision:
        source["revision"] = revision
    if spdx:
        source["license"] = spdx
    return source or None
