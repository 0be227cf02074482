"""Train/serve parity: the prompt built at serve time from an editor's state equals the `nextedit format` training prompt.

Examples are mined from a real repository (itsdangerous), given related code and diagnostics by
the `context` and `diagnostics` stages and rendered by `nextedit format` in every student format.
The equivalent editor state is a checkout of the files the example was taken from, the edited
files open with their current text, the edit history and the cursor. The language server's code
(`build_snapshot`, `EditorContext.fill`) turns it into a predict request, a real `nextedit serve`
renders it for an OpenAI-compatible upstream, and the upstream sees the training prompt byte for byte.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from nextedit import patch as patchlib
from nextedit.cli import app
from nextedit.context.editor import EditorContext
from nextedit.context.workspace import WorkspaceIndex
from nextedit.lsp.documents import Document
from nextedit.lsp.history import EditHistory
from nextedit.lsp.snapshot import build_snapshot
from nextedit.record import Example
from tests.completions_server import completion_reply, completions_server

pytest.importorskip("uvicorn", reason="nextedit serve needs the serve extra")

FORMATS = ("zeta1", "seed-multi-region", "sweep", "chat")
# Arms (name -> format, `nextedit format` flags, the arm's format_options): every format, and zeta1 with the
# heuristic's candidate edit in the prompt.
ARMS = {**{fmt.replace("-", "_"): (fmt, (), {}) for fmt in FORMATS},
        "zeta1_candidate": ("zeta1", ("--candidate",), {"candidate": True})}
BUNDLE_NAME = "pallets--itsdangerous.bundle"


def _bundle() -> Path | None:
    env = os.environ.get("NEXTEDIT_REPOS")
    roots = [Path(env)] if env else []
    roots += [p / "shared" / "data" / "repos" for p in Path(__file__).resolve().parents]
    return next((r / BUNDLE_NAME for r in roots if (r / BUNDLE_NAME).is_file()), None)


def _cli(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory):
    """(repository clone, examples with context and diagnostics, {format: {id: row}}, work folder)."""
    bundle = _bundle()
    if bundle is None:
        pytest.skip(f"{BUNDLE_NAME} not found (set NEXTEDIT_REPOS to the folder of repository bundles)")
    work = tmp_path_factory.mktemp("parity")
    repo = work / "repo"
    subprocess.run(["git", "clone", "-q", str(bundle), str(repo)], check=True)
    _cli("mine", str(repo), "-o", str(work / "mined.jsonl"), "--max-commits", "6", "--samples-per-commit", "2",
         "--paths", "src/**/*.py", "--seed", "0")
    (work / "stage.toml").write_text(f'repo = "{repo}"\n')
    _cli("run", "context", str(work / "mined.jsonl"), "-o", str(work / "context.jsonl"),
         "--config", str(work / "stage.toml"))
    _cli("run", "diagnostics", str(work / "context.jsonl"), "-o", str(work / "examples.jsonl"),
         "--config", str(work / "stage.toml"))
    examples = [Example.model_validate(orjson.loads(line))
                for line in (work / "examples.jsonl").read_bytes().splitlines() if line.strip()]
    rows: dict[str, dict[str, dict]] = {}
    for arm, (fmt, flags, _) in ARMS.items():
        out = work / f"{arm}.jsonl"
        _cli("format", str(work / "examples.jsonl"), "--format", fmt, *flags, "-o", str(out))
        rows[arm] = {r["id"]: r for r in map(orjson.loads, out.read_bytes().splitlines())}
    assert len(examples) >= 4
    assert any(e.snapshot.related for e in examples) and any(e.snapshot.diagnostics for e in examples)
    return repo, examples, rows, work


def _editor_state(repo: Path, example: Example, work: Path):
    """The workspace (files at the example's base revision, checked out), the open documents' texts,
    the history's base texts, and the cursor document's text and cursor offset."""
    checkout = work / f"wt-{example.id}"
    if not checkout.exists():
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(checkout),
                        f"{example.source.revision}^"], check=True)
    snap = example.snapshot
    bases: dict[str, str] = {}
    open_docs: dict[str, str] = {}
    for event in snap.history:
        if event.path not in open_docs:
            disk = checkout / event.path
            bases[event.path] = disk.read_text() if disk.is_file() else ""
            open_docs[event.path] = bases[event.path]
        try:
            open_docs[event.path] = patchlib.apply(event.diff, open_docs[event.path], path=event.path)
        except patchlib.PatchError:
            return None  # the history does not start from the revision's files: no editor had this state
    if snap.path not in open_docs:
        open_docs[snap.path] = (checkout / snap.path).read_text()
    text = open_docs[snap.path]
    cursor = patchlib.line_offsets(text)[snap.start_line] + snap.cursor
    return checkout, open_docs, bases, text, cursor


def _serve_config(upstream: str):
    from nextedit.serve.config import parse_config

    arms = [{"name": arm, "backend": f"openai-compatible:{upstream}", "format": fmt, "share": 1.0 if i == 0 else 0.0,
             "options": {"max_retries": 0, **({"format_options": opts} if opts else {})}}
            for i, (arm, (fmt, _, opts)) in enumerate(ARMS.items())]
    return parse_config({"store": ":memory:", "deadline_ms": 20_000, "auth": {"api_keys": ["k"]}, "arms": arms})


def test_server_prompt_equals_training_prompt_for_every_format(mined) -> None:
    from nextedit.serve.testing import ServerThread

    repo, examples, rows, work = mined
    whole_path = skipped = candidates = 0
    with completions_server(lambda body: (200, completion_reply(""))) as upstream:
        url = f"http://127.0.0.1:{upstream.server_address[1]}/v1"
        with ServerThread(_serve_config(url)) as server, \
                httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}, timeout=30) as http:
            for example in examples:
                state = _editor_state(repo, example, work)
                if state is None:
                    skipped += 1
                    continue
                checkout, open_docs, bases, text, cursor = state
                built = build_snapshot(text, cursor, example.snapshot.path, example.snapshot.history).snapshot
                assert (built.text, built.start_line, built.cursor) == (
                    example.snapshot.text, example.snapshot.start_line, example.snapshot.cursor)
                if built.editable == example.snapshot.editable:
                    whole_path += 1
                else:
                    # The miner widens the editable region to hold the expected edit, which an editor
                    # cannot know; everything else is built from the editor's state.
                    built = built.model_copy(update={"editable": example.snapshot.editable})
                texts = {**open_docs, **bases}  # what the language server hands the index (editor_texts)
                snapshot = EditorContext(checkout).fill(built, texts)
                assert snapshot.related == example.snapshot.related, example.id
                assert snapshot.diagnostics == example.snapshot.diagnostics, example.id
                for arm in ARMS:
                    if example.id not in rows[arm]:
                        continue  # the format refused the training example too
                    upstream.received.clear()
                    answer = http.post("/v1/predict", json={
                        "snapshot": snapshot.model_dump(mode="json"), "client_id": "c", "user_id": "u",
                        "arm": arm})
                    assert answer.status_code == 200, answer.text
                    (_, body, _), = upstream.received
                    assert body["prompt"] == rows[arm][example.id]["prompt"], (example.id, arm)
                    candidates += "### Heuristic Suggestion:" in body["prompt"]
    assert skipped <= len(examples) // 4
    assert whole_path >= (len(examples) - skipped) // 2  # most requests need nothing from the training example
    assert candidates, "the candidate arm's format_options did not reach the served prompt"


def test_workspace_index_updated_file_by_file_equals_a_fresh_index(mined, tmp_path: Path) -> None:
    repo, examples, _rows, work = mined
    checkout, open_docs, _bases, _text, _cursor = next(s for s in (_editor_state(repo, e, work) for e in examples) if s)
    live = WorkspaceIndex(checkout)
    live.scan()
    live.set_texts(open_docs)  # the user's unsaved edits, then back to what the disk says
    live.set_texts({})
    target = next(p for p in sorted(live.view.lines) if p.endswith(".py"))
    (checkout / target).write_text((checkout / target).read_text() + "\n\ndef added_later():\n    pass\n")
    assert live.update_from_disk(target)
    fresh = WorkspaceIndex(checkout)
    fresh.scan()
    assert live.view.lines == fresh.view.lines
    assert {k: sorted((d.path, d.start_line) for d in v) for k, v in live.view.definitions.items()} == \
           {k: sorted((d.path, d.start_line) for d in v) for k, v in fresh.view.definitions.items()}
    query = {"signer": 1.0, "added": 2.0, "later": 1.0, "serializer": 1.0}
    a, b = live.view.bm25.scores(query), fresh.view.bm25.scores(query)
    got = sorted((live.view.chunks[i], round(float(a[i]), 9)) for i in range(len(a)) if a[i] > 0)
    want = sorted((fresh.view.chunks[i], round(float(b[i]), 9)) for i in range(len(b)) if b[i] > 0)
    assert got == want and any(c[0] == target for c, _ in got)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", "--", target], check=True)


def test_history_bases_are_the_text_each_file_had_before_its_oldest_kept_edit() -> None:
    history = EditHistory(max_events=2, grouping_s=0.0)
    doc = Document("file:///w/a.py", "a.py", "x = 1\n")
    texts = ["x = 1\n"]
    for i, new in enumerate(["x = 2\n", "x = 3\n", "x = 4\n"]):
        before = doc.text
        change = doc.replace(4, 5, new[4])
        history.record("a.py", before, change, doc.text, float(i))
        texts.append(doc.text)
    assert history.bases() == {"a.py": "x = 2\n"}  # the first edit fell out of the window
    replayed = history.bases()["a.py"]
    for event in history.events():
        replayed = patchlib.apply(event.diff, replayed, path="a.py")
    assert replayed == doc.text
