"""The editor's exclude list: the safe defaults (keys, .env, credentials, secrets files), SSH key names
without every `id_*` file, configuration (replace, extend, `!` to take a file back), bad patterns."""

from __future__ import annotations

import pytest

from nextedit.privacy.exclude import DEFAULT_EXCLUDE, ExcludeList


@pytest.mark.parametrize("path", [
    ".env", "app/.env.local", ".env.production", ".envrc", "deploy/prod.env", "certs/server.pem", "tls.key",
    "id_rsa", "home/me/.ssh/id_ed25519", "home/me/.ssh/config", "store.p12", "keystore.jks",
    "config/secrets.yml", "secrets/db.txt", "app/secrets.json", ".aws/credentials", "credentials.json",
    ".git-credentials", ".netrc", ".npmrc", ".pypirc", "infra/prod.tfvars", "terraform.tfstate", "db.secret",
])
def test_the_default_list_excludes_secrets(path: str) -> None:
    assert ExcludeList.configured(None).match(path) is not None


@pytest.mark.parametrize("path", [
    "src/main.py", "id_map.py", "src/id_generator.go", "id_rsa.pub", "keys.py", "monkey.py", "env.py",
    "README.md", "docs/environment.md", "tests/test_secret_sharing.py", "src/key_value.rs",
])
def test_ordinary_files_are_not_excluded(path: str) -> None:
    assert ExcludeList.configured(None).match(path) is None


def test_configured_lists_replace_extend_and_take_back() -> None:
    extended = ExcludeList.configured(None, ["*.sql", "!.env.example"])
    assert extended.match("dump.sql") == "*.sql"
    assert extended.match(".env.example") is None and extended.match(".env") is not None
    replaced = ExcludeList.configured(["private/"])
    assert replaced.match("private/notes.md") == "private/" and replaced.match(".env") is None
    # Absolute paths and Windows separators work; any of several paths may match.
    assert ExcludeList.configured(None).match("notes.txt", "/home/me/.ssh/notes.txt") == ".ssh/"
    assert ExcludeList.configured(None).match("C:\\Users\\me\\.aws\\config") == ".aws/"
    assert "id_ed25519" in DEFAULT_EXCLUDE and not any(p.startswith("id_*") for p in DEFAULT_EXCLUDE)
