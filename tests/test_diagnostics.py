"""Tests for the diagnostics stage: a real linter (ruff, pyflakes) on the reconstructed file state."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nextedit.context.diagnose import diagnose
from nextedit.context.diagnostics import DiagnosticsStage, add_diagnostics
from nextedit.context.file_state import splice_excerpt
from nextedit.context.lint import LintError, have_pyflakes, lint_python
from nextedit.record import Diagnostic, Example, HistoryEvent, Snapshot

FILE = (
    "import os\n"                       # 0
    "from json import dumps\n"          # 1
    "\n"                                # 2
    "\n"                                # 3
    "def save(record, path):\n"         # 4
    "    data = dumps(record)\n"        # 5
    "    with open(path, 'w') as fh:\n"  # 6
    "        fh.write(data)\n"          # 7
    "    return os.path.getsize(path)\n"  # 8
    "\n"                                # 9
    "\n"                                # 10
    "def load(path):\n"                 # 11
    "    return open(path).read()\n"    # 12
)


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("diagrepo")
    _git(root, "init", "-q", "-b", "main")
    (root / "store.py").write_text(FILE)
    _git(root, "add", "store.py")
    _git(root, "commit", "-q", "-m", "v1")
    return root, _git(root, "rev-parse", "HEAD")


def _excerpt_example(repo: Path | None, rev: str | None, excerpt: str, start_line: int,
                     cursor_at: str, path: str = "store.py") -> Example:
    return Example.model_validate({
        "id": "d1", "source": {"kind": "zed", "repo": str(repo) if repo else None, "revision": rev},
        "snapshot": {"path": path, "text": excerpt, "start_line": start_line,
                     "cursor": excerpt.index(cursor_at)},
    })


# The user renamed `data` to `payload` on the first line but not yet where it is used.
EDITED = ("def save(record, path):\n"
          "    payload = dumps(record)\n"
          "    with open(path, 'w') as fh:\n"
          "        fh.write(data)\n"
          "    return os.path.getsize(path)\n")


def test_undefined_name_near_cursor_on_the_right_file_line(repo):
    root, rev = repo
    out = add_diagnostics(_excerpt_example(root, rev, EDITED, 4, "payload"))
    diags = out.snapshot.diagnostics
    # `dumps` and `os` come from imports outside the excerpt: spliced into the file, they are defined.
    assert [(d.code, d.start_line, d.severity) for d in diags] == [
        ("F841", 5, "warning"), ("F821", 7, "error")]
    undefined = next(d for d in diags if d.code == "F821")
    assert "data" in undefined.message and undefined.end_line == 7


def test_excerpt_alone_when_repo_unavailable(tmp_path):
    example = _excerpt_example(tmp_path / "missing", "abc", EDITED, 4, "payload")
    diags = add_diagnostics(example).snapshot.diagnostics
    by_code = {(d.code, d.start_line) for d in diags}
    # Without the file, the imported names look undefined too; lines still map to file lines.
    assert ("F821", 7) in by_code and ("F821", 5) in by_code and ("F821", 8) in by_code


def test_syntax_error_is_an_error_with_file_line(repo):
    root, rev = repo
    broken = EDITED.replace("fh.write(data)", "fh.write(data")
    diags = add_diagnostics(_excerpt_example(root, rev, broken, 4, "fh.write")).snapshot.diagnostics
    syntax = [d for d in diags if d.code == "E999"]
    assert syntax and all(d.severity == "error" for d in syntax)
    assert 7 <= syntax[0].start_line <= 9


def test_only_diagnostics_within_window_are_kept():
    text = "x = undefined_far\n" + "\n" * 30 + "y = undefined_near\n"
    snap = Snapshot(path="m.py", text=text, start_line=10, cursor=text.index("undefined_near"))
    diags = diagnose(snap, None, window=5)
    assert [(d.start_line, d.code) for d in diags] == [(41, "F821")]
    wide = diagnose(snap, None, window=40)
    assert [d.start_line for d in wide] == [10, 41]


def test_other_languages_are_left_unchanged():
    example = Example.model_validate({
        "id": "js", "snapshot": {"path": "a.js", "text": "foo(\n", "cursor": 0,
                                 "diagnostics": [{"message": "kept", "start_line": 0, "end_line": 0}]}})
    out = DiagnosticsStage().process(example)
    assert out.snapshot.diagnostics == [Diagnostic(message="kept", start_line=0, end_line=0)]


@pytest.mark.skipif(not have_pyflakes(), reason="pyflakes not installed")
def test_pyflakes_fallback_agrees_on_undefined_name(repo):
    root, rev = repo
    example = _excerpt_example(root, rev, EDITED, 4, "payload")
    out = add_diagnostics(example, DiagnosticsStage.Config(linter="pyflakes"))
    assert ("F821", 7, "error") in {(d.code, d.start_line, d.severity) for d in out.snapshot.diagnostics}
    syntax = lint_python("def f(:\n", "x.py", linter="pyflakes")
    assert syntax and syntax[0].code == "E999" and syntax[0].severity == "error"


def test_unknown_linter_is_reported():
    with pytest.raises(LintError, match="unknown linter"):
        lint_python("x = 1\n", "x.py", linter="pylint")


def test_splice_aligns_excerpt_that_gained_lines():
    snap = Snapshot(path="store.py", text="def save(record, path):\n    # new comment\n"
                    "    data = dumps(record)\n", start_line=4, cursor=0)
    text, offset = splice_excerpt(FILE, snap)
    lines = text.splitlines()
    assert offset == 4 and lines[4:7] == ["def save(record, path):", "    # new comment",
                                         "    data = dumps(record)"]
    assert lines[7] == "    with open(path, 'w') as fh:" and len(lines) == len(FILE.splitlines()) + 1
    assert splice_excerpt(None, snap) == (snap.text, 0)


def test_history_edits_outside_the_excerpt_are_replayed(repo):
    root, rev = repo
    # The user first added `import sys` at the top (history), then used it in the excerpt.
    history = [{"path": "store.py", "diff": "--- a/store.py\n+++ b/store.py\n@@ -1,2 +1,3 @@\n"
                " import os\n+import sys\n from json import dumps\n"}]
    excerpt = "def load(path):\n    sys.exit(open(path).read())\n"
    example = _excerpt_example(root, rev, excerpt, 12, "sys.exit")
    example.snapshot.history = [HistoryEvent.model_validate(h) for h in history]
    assert add_diagnostics(example).snapshot.diagnostics == []
    # Without that history the same excerpt (one line higher in the unedited file) lacks the import.
    (undefined,) = add_diagnostics(_excerpt_example(root, rev, excerpt, 11, "sys.exit")).snapshot.diagnostics
    assert (undefined.code, undefined.start_line, undefined.severity) == ("F821", 12, "error")
