"""Small real git repositories with scripted commits, for the `nextedit mine` tests."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

MIT = """MIT License

Copyright (c) 2026 Test Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, subject to the following conditions:
"""

APP_V1 = '''"""Orders."""


def order_total(price, amount):
    """Total of an order line."""
    if amount <= 0:
        raise ValueError("amount must be positive")
    subtotal = price * amount
    log("ordered", amount)
    return subtotal


def log(event, amount):
    print(event, amount)


def recieve(message):
    """Handle a message we recieve from the queue."""
    return message.strip()
'''

UTIL_V1 = '''"""Helpers."""


def clamp(value, low, high):
    return max(low, min(high, value))
'''


class Repo:
    """A scratch repository; `commit` writes files and commits them with a fixed, increasing date."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def env(self) -> dict[str, str]:
        day = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=1))) + timedelta(days=self.count)
        date = day.isoformat()
        return {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "T",
                "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              env=self.env(), text=True).stdout

    def commit(self, message: str, files: dict[str, str | bytes | None]) -> str:
        for name, content in files.items():
            p = self.path / name
            if content is None:
                p.unlink()
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        self.count += 1
        return self.git("rev-parse", "HEAD").strip()


def scripted_repo(path: Path) -> tuple[Repo, dict[str, str]]:
    """The acceptance scenarios: a rename across several lines, a new function then its call site, a typo
    fix, a commit touching only lock files, and one mixing code with vendored/minified/binary/lock files."""
    repo = Repo(path)
    shas: dict[str, str] = {}
    shas["initial"] = repo.commit("Initial", {"LICENSE": MIT, "shop/app.py": APP_V1, "shop/util.py": UTIL_V1,
                                              "package-lock.json": '{"lockfileVersion": 3}\n'})
    renamed = APP_V1.replace("amount", "quantity")
    shas["rename"] = repo.commit("Rename amount to quantity", {"shop/app.py": renamed})
    util2 = UTIL_V1 + '''

def apply_discount(total, percent):
    """Total after a percentage discount."""
    return total * (100 - percent) / 100
'''
    app3 = renamed.replace("    return subtotal\n", "    return apply_discount(subtotal, 10)\n")
    app3 = app3.replace('"""Orders."""\n', '"""Orders."""\n\nfrom shop.util import apply_discount\n')
    shas["function"] = repo.commit("Add a discount", {"shop/util.py": util2, "shop/app.py": app3})
    app4 = app3.replace("we recieve from", "we receive from")
    shas["typo"] = repo.commit("Fix a typo", {"shop/app.py": app4})
    shas["lock"] = repo.commit("Bump dependencies", {"package-lock.json": '{"lockfileVersion": 3, "x": 1}\n',
                                                     "yarn.lock": "x@1:\n  version 1\n"})
    util5 = util2.replace("    return max(low, min(high, value))\n",
                          "    if low > high:\n        raise ValueError(\"low > high\")\n"
                          "    return max(low, min(high, value))\n")
    shas["mixed"] = repo.commit("Validate clamp bounds; vendor and assets", {
        "shop/util.py": util5,
        "vendor/left_pad.js": "module.exports = function leftPad(s) { return s; };\n",
        "static/app.min.js": "var a=1;" * 200 + "\n",
        "static/logo.png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)),
        "yarn.lock": "x@2:\n  version 2\n",
        "docs/notes.md": "# Notes\n",
    })
    return repo, shas
