"""Docs as tests: every offline `nextedit` command in README.md and docs/*.md runs as written.

Commands are the `nextedit ...` lines of ```bash / ```sh / ```shell and untagged ``` fences (and
`$ nextedit ...` lines of ```console fences), backslash continuations joined. They run in document order, one temporary
folder per document, seeded with a small git repository (so `nextedit mine .` works), a copy of
`examples/`, and the input files the docs name (see `_seed`). A command is not run when:
- its line carries a `[needs: WHAT]` marker in its comment (network, an API key, a GPU, a server
  that runs until stopped, a trained model, minutes of CPU), or the fence is preceded by the line
  `<!-- docs-test: skip WHY -->`;
- it is a synopsis: it shows optional arguments in brackets (`[--flag]`) or elisions (`...`).
The conventions are documented in README.md ("Docs as tests").
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from _mine_fixtures import scripted_repo
from typer.testing import CliRunner

from nextedit.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = ("bash", "sh", "shell", "console", "")
NEEDS = re.compile(r"\[needs: ([^\]]+)\]")
SKIP_BLOCK = re.compile(r"<!--\s*docs-test:\s*skip\b(.*?)-->")
SHELL = re.compile(r"[|<>;&`*]|\$\(")


@dataclass
class Command:
    """One documented command: where it is, its text, and why it is not run (None: it is run)."""

    doc: str
    line: int
    text: str
    skip: str | None


def _fences(text: str) -> list[tuple[str, int, list[str], str]]:
    """(language, first body line number, body lines, the line before the fence) per fenced block."""
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```([\w-]*)\s*$", lines[i])
        if m is None:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        before = next((x for x in reversed(lines[:i]) if x.strip()), "")
        out.append((m.group(1), i + 2, lines[i + 1:j], before))
        i = j + 1
    return out


def _logical_lines(lines: list[str], first: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        number, text = first + i, lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1] + " " + lines[i].strip()
        out.append((number, text))
        i += 1
    return out


def doc_commands(path: Path) -> list[Command]:
    """The `nextedit` commands of one Markdown file, in order."""
    found: list[Command] = []
    for lang, first, body, before in _fences(path.read_text(encoding="utf-8")):
        if lang not in LANGS:
            continue
        block = SKIP_BLOCK.search(before)
        for number, raw in _logical_lines(body, first):
            line = raw.strip()
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not line.startswith("nextedit "):
                continue
            code = line.split(" #", 1)[0]
            needs = NEEDS.search(line)
            skip = (f"skipped block:{block.group(1)}" if block else f"needs {needs.group(1)}" if needs
                    else "synopsis" if ("[-" in code or "..." in code) else None)
            found.append(Command(path.name, number, line, skip))
    return found


def _seed(tmp: Path) -> None:
    """The folder a newcomer would be in: a git repository, examples/, and the files the docs read."""
    scripted_repo(tmp)
    shutil.copytree(ROOT / "examples", tmp / "examples")
    from nextedit.serve.store import SQLiteStore

    SQLiteStore(tmp / "examples" / "events.db")  # what `nextedit serve examples/serve.toml` writes
    SQLiteStore(tmp / "events.db")
    runner = CliRunner()
    result = runner.invoke(app, ["mine", str(tmp), "-o", str(tmp / "mined.jsonl")])
    assert result.exit_code == 0, result.output
    for name in ("examples.jsonl", "raw.jsonl"):  # examples of this repository (context can read it)
        shutil.copy(tmp / "mined.jsonl", tmp / name)
    for name in ("data.jsonl", "test.jsonl", "in.jsonl"):
        shutil.copy(ROOT / "examples" / "examples.jsonl", tmp / name)
    (tmp / "evals").mkdir()
    for md in (ROOT / "examples" / "zed-evals").glob("*.md"):
        shutil.copy(md, tmp / "evals" / md.name)
    assert runner.invoke(app, ["export", "zed", str(tmp / "data.jsonl"), "-o", str(tmp / "more.jsonl")]).exit_code == 0
    (tmp / "logs").mkdir()
    shutil.copy(ROOT / "examples" / "traces.jsonl", tmp / "logs" / "day1.jsonl")
    bin_dir = tmp / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "nextedit"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m nextedit \"$@\"\n")
    shim.chmod(0o755)


def _run(command: Command, tmp: Path) -> tuple[int, str]:
    """Run one command in `tmp`: in this process when it is a plain command line, else through sh."""
    code = command.text.split(" #", 1)[0].strip()
    if SHELL.search(code):
        env = {**os.environ, "PATH": f"{tmp / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", code], cwd=tmp, env=env, capture_output=True, check=False,
                              text=True, timeout=300)
        return proc.returncode, proc.stdout + proc.stderr
    result = CliRunner().invoke(app, shlex.split(code)[1:])
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_docs_have_commands_and_markers_parse():
    commands = [c for doc in DOCS for c in doc_commands(doc)]
    assert len(commands) > 40
    run = [c for c in commands if c.skip is None]
    assert len(run) > 25  # most documented commands are offline and run here


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands_run_as_written(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    commands = [c for c in doc_commands(doc) if c.skip is None]
    if not commands:
        pytest.skip(f"{doc.name}: no offline commands")
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / ".nextedit" / "cache.sqlite"))
    monkeypatch.setenv("NEXTEDIT_LLM_CACHE", str(tmp_path / ".nextedit" / "llm.sqlite"))
    _seed(tmp_path)
    monkeypatch.chdir(tmp_path)
    failures = []
    for command in commands:
        status, output = _run(command, tmp_path)
        if status != 0:
            tail = "\n    ".join(output.strip().splitlines()[-6:])
            failures.append(f"{command.doc}:{command.line}: exit {status}: {command.text}\n    {tail}")
    assert not failures, "documented commands that fail:\n" + "\n".join(failures)
