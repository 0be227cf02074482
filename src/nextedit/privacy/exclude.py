"""Files whose text never leaves the editor: gitignore-style globs (keys, `.env`, credentials, secrets
files) matched against a document's path before any prediction is asked for or context is gathered."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

import pathspec

__all__ = ["DEFAULT_EXCLUDE", "ExcludeList"]

#: The default list (gitignore syntax: a pattern without `/` matches the file name at any depth; a
#: trailing `/` matches everything under a folder of that name; `!pattern` takes a path back).
DEFAULT_EXCLUDE: tuple[str, ...] = (
    # environment files: .env, .env.local, .env.production, .envrc
    ".env*", "*.env",
    # keys and certificates with private parts, key stores
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk", "*.kdbx", "*.gpg",
    # SSH private keys by their usual names (their .pub halves are not secret) and the .ssh folder
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk", ".ssh/",
    # credentials and token files of common tools
    "credentials", "credentials.*", ".git-credentials", ".netrc", "_netrc", ".pgpass", ".npmrc", ".pypirc",
    ".dockercfg", ".docker/config.json", ".aws/", ".gnupg/", "*.tfvars", "*.tfstate", "*.tfstate.*",
    # secrets files and folders
    "secrets", "secrets.*", "secret.*", "*.secret", "*.secrets", ".secrets", "secrets/", ".secrets/",
    "*-secrets.*", "*_secrets.*",
)


class ExcludeList:
    """A list of gitignore-style globs; `match(path)` names the pattern that excludes a path."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(p.strip() for p in patterns if p and p.strip() and not p.strip().startswith("#"))
        try:
            self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)
        except (ValueError, TypeError) as exc:  # pathspec raises GitWildMatchPatternError(ValueError)
            raise ValueError(f"exclude pattern: {exc}") from None

    @classmethod
    def configured(cls, exclude: Sequence[str] | None, extra: Sequence[str] = ()) -> ExcludeList:
        """`exclude` (None: the default list) followed by `extra` (later patterns win, `!` re-includes)."""
        return cls([*(DEFAULT_EXCLUDE if exclude is None else exclude), *extra])

    def match(self, *paths: str) -> str | None:
        """The pattern that excludes any of `paths` (relative or absolute, `/` or `\\` separated), or None.

        The last matching non-negated pattern is named, as git would report it."""
        for path in paths:
            if not path:
                continue
            rel = PurePosixPath(path.replace("\\", "/")).as_posix().lstrip("/")
            if not self._spec.match_file(rel):
                continue
            for pattern in reversed(self.patterns):
                if not pattern.startswith("!") and pathspec.GitIgnoreSpec.from_lines([pattern]).match_file(rel):
                    return pattern
            return self.patterns[-1] if self.patterns else None
        return None
