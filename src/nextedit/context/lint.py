"""Running a real Python linter (ruff, else pyflakes) on source text and reading its messages."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

# Codes that mean the code cannot run as written (syntax, undefined names, misuse errors).
_ERROR_PREFIXES = ("E9", "F821", "F822", "F823", "F7", "F63", "F5")
_PYFLAKES_LINE = re.compile(r"^(?:<stdin>|[^:]+):(\d+):(?:(\d+):?)? (.*)$")


class LintError(RuntimeError):
    """No linter can be run, or the linter failed; the message says what to install or what broke."""


@dataclass(frozen=True)
class LintMessage:
    """One linter message; lines are 0-based lines of the linted text (inclusive end)."""

    start_line: int
    end_line: int
    code: str
    message: str

    @property
    def severity(self) -> str:
        """"error" for syntax errors, undefined names and similar; "warning" for the rest."""
        return "error" if self.code.startswith(_ERROR_PREFIXES) else "warning"


def find_ruff() -> str | None:
    """The ruff executable next to this Python (the venv's), else on PATH, else None."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file():
        return str(beside)
    return shutil.which("ruff")


def have_pyflakes() -> bool:
    """True when pyflakes can be imported by this Python."""
    return importlib.util.find_spec("pyflakes") is not None


def lint_ruff(text: str, path: str, *, select: tuple[str, ...] = ("E9", "F"),
              ruff: str | None = None) -> list[LintMessage]:
    """ruff's messages for `text` as if it were file `path` (project config ignored)."""
    exe = ruff or find_ruff()
    if exe is None:
        raise LintError("ruff not found (run `pip install ruff`)")
    cmd = [exe, "check", "--isolated", "--no-cache", "--output-format", "json",
           "--select", ",".join(select), "--stdin-filename", path, "-"]
    proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode not in (0, 1):
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LintError(f"ruff failed on {path}: {err[-1] if err else proc.returncode}")
    out: list[LintMessage] = []
    for item in orjson.loads(proc.stdout or b"[]"):
        code = item.get("code") or "E999"
        if code == "invalid-syntax":
            code = "E999"
        start = int(item["location"]["row"]) - 1
        end = int((item.get("end_location") or item["location"])["row"]) - 1
        out.append(LintMessage(start, max(start, end), code, str(item.get("message", ""))))
    return out


def _pyflakes_code(message: str, is_syntax: bool) -> str:
    if is_syntax:
        return "E999"
    if message.startswith("undefined name"):
        return "F821"
    if "imported but unused" in message:
        return "F401"
    if "assigned to but never used" in message:
        return "F841"
    return "F"


def lint_pyflakes(text: str, path: str) -> list[LintMessage]:
    """pyflakes' messages for `text` (run as `python -m pyflakes`, reading stdin)."""
    if not have_pyflakes():
        raise LintError("pyflakes not found (run `pip install pyflakes`)")
    proc = subprocess.run([sys.executable, "-m", "pyflakes"], input=text.encode("utf-8"),
                          capture_output=True, check=False)
    out: list[LintMessage] = []
    for stream, is_syntax in ((proc.stdout, False), (proc.stderr, True)):
        for line in stream.decode("utf-8", "replace").splitlines():
            match = _PYFLAKES_LINE.match(line)
            if match is None:
                continue
            row = int(match.group(1)) - 1
            message = match.group(3)
            out.append(LintMessage(row, row, _pyflakes_code(message, is_syntax), message))
    return out


def lint_python(text: str, path: str, *, linter: str = "auto",
                select: tuple[str, ...] = ("E9", "F")) -> list[LintMessage]:
    """Lint Python source with ruff (preferred) or pyflakes; `linter` is "auto", "ruff" or "pyflakes"."""
    if linter == "ruff" or (linter == "auto" and find_ruff() is not None):
        return lint_ruff(text, path, select=select)
    if linter in ("pyflakes", "auto"):
        if linter == "auto" and not have_pyflakes():
            raise LintError("no Python linter found (run `pip install ruff` or `pip install pyflakes`)")
        return lint_pyflakes(text, path)
    raise LintError(f"unknown linter {linter!r} (use auto, ruff or pyflakes)")
