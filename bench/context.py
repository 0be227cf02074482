"""Benchmark the context and diagnostics stages on a git repository built from installed packages.

Usage: .venv/bin/python bench/context.py [--n 200] [--packages rich,pydantic,typer,hypothesis] [--no-append]
Copies the packages' Python sources into a temporary git repository (one commit), makes N
snapshots (60-line excerpts, cursor in the middle), and times: building the per-revision index
(the baseline: what every example would pay without the LRU cache), indexing the next commit
(one file changed) with the shared per-file work, retrieval per example with the cached index, and the diagnostics stage per example against one ruff call on the excerpt alone.
Appends a section to BENCHMARKS.md.

`--workspace-files 5000` instead times serve-time context (`EditorContext`, what `nextedit lsp` runs
per request) on a generated workspace of that many Python files: the first index of the folder
(the baseline: what rebuilding per request would cost), one request after a keystroke (the edited
file re-indexed, then retrieval), the linter per request, and a rescan with nothing changed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _report import append_section, markdown_table, print_rows

from nextedit.context.diagnostics import add_diagnostics
from nextedit.context.index import IndexSettings, RepoIndex
from nextedit.context.lint import lint_ruff
from nextedit.context.repo_files import resolve
from nextedit.context.retrieve import RetrieveSettings, retrieve
from nextedit.record import Example


def _make_repo(dest: Path, packages: list[str]) -> None:
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"package {name} is not installed")
        src = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        _git(dest, *args)


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)


def _make_workspace(dest: Path, n_files: int, rng: random.Random) -> list[str]:
    """`n_files` Python modules in 50 packages; functions call functions of imported modules."""
    words = ["signer", "token", "payload", "serialize", "encode", "decode", "header", "timestamp",
             "secret", "digest", "salt", "key", "value", "record", "cache", "session", "stream", "buffer"]
    paths = [f"pkg{i % 50}/mod_{i}.py" for i in range(n_files)]
    for i, path in enumerate(paths):
        others = rng.sample(range(n_files), 3)
        lines = [f'"""Module {i}."""\n', "\n"]
        lines += [f"from pkg{j % 50} import mod_{j}\n" for j in others] + ["\n"]
        for k in range(rng.randint(3, 8)):
            a, b = rng.sample(words, 2)
            j = rng.choice(others)
            lines += ["\n", f"def {a}_{b}_{i}_{k}(item, {b}):\n", f'    """{a.title()} the {b} of an item."""\n',
                      f"    result = mod_{j}.{rng.choice(words)}_{rng.choice(words)}_{j}_0(item, {b})\n",
                      f"    if result is None:\n        return {b}\n",
                      f"    return [{a} for {a} in result if {a}]\n"]
        lines += ["\n", f"class {words[i % len(words)].title()}Store{i}:\n", "    def get(self, key):\n",
                  "        return self.items[key]\n"]
        out = dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(lines))
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "workspace")
    return paths


def workspace_bench(n_files: int, n_requests: int, append: bool) -> None:
    """Serve-time retrieval on a generated workspace (see the module docstring)."""
    from nextedit.context.editor import EditorContext
    from nextedit.lsp.snapshot import build_snapshot

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = _make_workspace(root, n_files, rng)
        ctx = EditorContext(root, rescan_s=3600)
        t0 = time.perf_counter()
        ctx.scan()
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctx.scan()
        rescan_s = time.perf_counter() - t0
        request_s, sync_s, retrieve_s, lint_s, snippets = [], [], [], [], []
        for i in range(n_requests):
            path = rng.choice(paths)
            text = (root / path).read_text()
            cursor = text.index("    return [") + 4
            edited = text[:cursor] + f"x{i} = 1\n    " + text[cursor:]  # the user typed a line
            snap = build_snapshot(edited, cursor + 10, path, []).snapshot
            t0 = time.perf_counter()
            filled = ctx.fill(snap, {path: edited})
            request_s.append(time.perf_counter() - t0)
            sync_s.append(ctx.last.sync_ms / 1e3)
            retrieve_s.append(ctx.last.retrieve_ms / 1e3)
            lint_s.append(ctx.last.lint_ms / 1e3)
            snippets.append(len(filled.related))

    def p(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    index = ctx.index
    rows = [
        ("workspace", (f"{index.n_files} files, {index.view.n_definitions} definitions, "
                      f"{index.view.n_chunks} BM25 chunks")),
        ("first index of the folder (baseline: a rebuild per request)", f"{build_s:.2f} s"),
        ("rescan, nothing changed (git ls-files + stat)", f"{1e3 * rescan_s:.0f} ms"),
        (f"request p50 / p90 over {n_requests} (edited file re-indexed + retrieval + ruff)",
         f"{1e3 * p(request_s, 0.5):.1f} / {1e3 * p(request_s, 0.9):.1f} ms"),
        ("  re-index the edited file, p50", f"{1e3 * p(sync_s, 0.5):.1f} ms"),
        ("  retrieval, p50 / p90", f"{1e3 * p(retrieve_s, 0.5):.1f} / {1e3 * p(retrieve_s, 0.9):.1f} ms"),
        ("  diagnostics (ruff on the file), p50", f"{1e3 * p(lint_s, 0.5):.1f} ms"),
        ("related snippets per request", f"{sum(snippets) / len(snippets):.1f}"),
        ("request p50 / rebuild per request", f"{p(request_s, 0.5) / build_s:.4f}"),
    ]
    print_rows(rows)
    if append:
        append_section("context at serve time (nextedit lsp, EditorContext)", markdown_table(rows),
                       note=" (wall time, one process)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--packages", default="rich,pydantic,typer,hypothesis")
    ap.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    ap.add_argument("--workspace-files", type=int, default=0,
                    help="time serve-time context on a generated workspace of this many files instead")
    args = ap.parse_args()
    if args.workspace_files:
        workspace_bench(args.workspace_files, args.n, not args.no_append)
        return
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        _make_repo(repo, args.packages.split(","))
        root, commit = resolve(repo, "HEAD")
        shared = RepoIndex(root, IndexSettings())
        t0 = time.perf_counter()
        index = shared.revision(commit)
        build_s = time.perf_counter() - t0
        # The next commit changes one file: indexing it reuses every other file's work.
        first_py = next(p for p in sorted(index.lines) if p.endswith(".py"))
        (repo / first_py).write_text("".join(index.lines[first_py]) + "\n# edited\n")
        _git(repo, "commit", "-q", "-am", "next")
        t0 = time.perf_counter()
        shared.revision(resolve(repo, "HEAD")[1])
        next_s = time.perf_counter() - t0
        rng = random.Random(0)
        py = sorted(p for p, lines in index.lines.items() if p.endswith(".py") and len(lines) > 80)
        examples = []
        for i in range(args.n):
            path = rng.choice(py)
            lines = index.lines[path]
            start = rng.randrange(0, len(lines) - 60)
            text = "".join(lines[start : start + 60])
            examples.append(Example.model_validate({
                "id": f"b{i}", "source": {"kind": "git", "repo": str(repo), "revision": commit},
                "snapshot": {"path": path, "text": text, "start_line": start,
                             "cursor": len("".join(lines[start : start + 30]))}}))
        settings = RetrieveSettings()
        t0 = time.perf_counter()
        found = [retrieve(index, ex.snapshot, settings) for ex in examples]
        retrieve_s = (time.perf_counter() - t0) / len(examples)
        n_diag = min(len(examples), 50)
        t0 = time.perf_counter()
        for ex in examples[:n_diag]:
            add_diagnostics(ex)
        diag_s = (time.perf_counter() - t0) / n_diag
        t0 = time.perf_counter()
        for ex in examples[:n_diag]:
            lint_ruff(ex.snapshot.text, ex.snapshot.path)
        ruff_s = (time.perf_counter() - t0) / n_diag

    per_cached = retrieve_s + build_s / len(examples)
    rows = [
        ("repository", (f"{len(index.lines)} files, {index.n_definitions} definitions, "
                       f"{index.n_chunks} BM25 chunks")),
        ("index build (baseline: paid per example without the cache)", f"{build_s:.2f} s"),
        ("next revision, one file changed (shared per-file work)", f"{1e3 * next_s:.0f} ms"),
        ("next revision / full index build", f"{next_s / build_s:.3f}"),
        ("retrieval per example, cached index", f"{1e3 * retrieve_s:.1f} ms"),
        ("snippets per example (definition / bm25)",
         (f"{sum(r.source == 'definition' for x in found for r in x) / len(found):.1f} / "
         f"{sum(r.source == 'bm25' for x in found for r in x) / len(found):.1f}")),
        (f"time per example over {len(examples)} examples, cached / uncached",
         f"{per_cached / (build_s + retrieve_s):.4f}"),
        ("diagnostics per example (git read + splice + ruff)", f"{1e3 * diag_s:.1f} ms"),
        ("diagnostics / one ruff call on the excerpt alone", f"{diag_s / ruff_s:.2f}"),
    ]
    print_rows(rows)
    if not args.no_append:
        append_section("context", markdown_table(rows), note=" (wall time, one process)")


if __name__ == "__main__":
    main()
