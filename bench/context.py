"""Benchmark the context and diagnostics stages on a git repository built from installed packages.

Usage: .venv/bin/python bench/context.py [--n 200] [--packages rich,pydantic,typer,hypothesis] [--no-append]
Copies the packages' Python sources into a temporary git repository (one commit), makes N
snapshots (60-line excerpts, cursor in the middle), and times: building the per-revision index
(the baseline: what every example would pay without the LRU cache), indexing the next commit
(one file changed) with the shared per-file work, retrieval per example with the cached index, and the diagnostics stage per example against one ruff call on the excerpt alone.
Appends a section to BENCHMARKS.md.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--packages", default="rich,pydantic,typer,hypothesis")
    ap.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = ap.parse_args()
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
