"""A throwaway PostgreSQL cluster for tests: Debian's `postgresql` binaries, initdb + pg_ctl in a temp dir.

Started as a non-root user (initdb refuses root; as root the cluster runs as `nobody`), listening on
127.0.0.1 with trust auth. Unavailable binaries skip the test with the reason, unless
NEXTEDIT_REQUIRE_POSTGRES=1 (CI, after `apt-get install postgresql`), where they fail it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nextedit.serve.testing import free_port


def _unavailable(reason: str) -> None:
    if os.environ.get("NEXTEDIT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (NEXTEDIT_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"{reason} (apt-get install postgresql; NEXTEDIT_REQUIRE_POSTGRES=1 makes this a failure)")


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A running cluster; yields the URL of a fresh database on it."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'nextedit[serve]')")
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        _unavailable("PostgreSQL's initdb/pg_ctl are not installed")
    root = Path(tempfile.mkdtemp(prefix="nextedit-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        os.chown(root, 65534, 65534)
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    data, port = root / "data", free_port()

    def run(*cmd: str) -> None:
        out = subprocess.run([*prefix, *cmd], check=False, capture_output=True, text=True, timeout=120,
                             cwd=root)
        if out.returncode != 0:
            _unavailable(f"{Path(cmd[0]).name} failed: {(out.stderr or out.stdout).strip()[-400:]}")

    started = False
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off",
            "start")
        started = True
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        yield f"postgresql://postgres@127.0.0.1:{port}/{name}"
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
