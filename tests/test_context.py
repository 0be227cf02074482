"""Tests for the context stage: tree-sitter definitions, BM25 chunks, budget and ranks, over real git repos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from nextedit.context.bm25 import BM25Index, chunk_ranges, tokenize, weighted_terms
from nextedit.context.definitions import definition_text, extract_definitions
from nextedit.context.index import IndexSettings, build_index, load_index
from nextedit.context.repo_files import (
    EMPTY_TREE,
    LRUCache,
    RepoError,
    list_tree,
    read_text_files,
    resolve,
)
from nextedit.context.retrieve import estimate_tokens, nearby_identifiers
from nextedit.context.stage import ContextConfig, ContextStage, add_context
from nextedit.pipeline.stage import StageError
from nextedit.record import Example, RelatedExcerpt

FILES_V1 = {
    "pkg/util.py": "import hashlib\n\n\ndef compute_checksum(data):\n    digest = hashlib.sha1(data)\n"
                   "    return digest.hexdigest()  # version one\n\n\nclass Ledger:\n"
                   "    def post(self, amount):\n        return amount\n",
    "pkg/main.py": "from pkg.util import compute_checksum, Ledger\n\n\ndef run(blob):\n"
                   "    value = compute_checksum(blob)\n    book = Ledger()\n    return book.post(value)\n\n\n"
                   "def local_helper():\n    return 1\n",
    "web/helpers.js": "export function formatPrice(cents) {\n  return `$${(cents / 100).toFixed(2)}`;\n}\n\n"
                      "export const TAX_RATE = 0.2;\n",
    "web/app.js": "import { formatPrice } from './helpers.js';\n\nfunction render(item) {\n"
                  "  return formatPrice(item.cents);\n}\n",
    "web/types.ts": "export interface CartLine {\n  sku: string;\n  qty: number;\n}\n\n"
                    "export type Sku = string;\n",
    "web/cart.ts": "import { CartLine } from './types';\n\nexport function total(lines: CartLine[]): number {\n"
                   "  return lines.length;\n}\n",
    "geo/src/shapes.rs": "pub struct Polygon {\n    pub points: Vec<(f64, f64)>,\n}\n\n"
                         "impl Polygon {\n    pub fn area(&self) -> f64 {\n        0.0\n    }\n}\n\n"
                         "pub trait Drawable {\n    fn draw(&self);\n}\n",
    "geo/src/main.rs": "mod shapes;\nuse shapes::Polygon;\n\nfn main() {\n"
                       "    let p = Polygon { points: vec![] };\n    println!(\"{}\", p.area());\n}\n",
    "svc/strutil/strutil.go": "package strutil\n\n// Reverse returns s backwards.\nfunc Reverse(s string) string {\n"
                              "\tr := []rune(s)\n\tfor i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {\n"
                              "\t\tr[i], r[j] = r[j], r[i]\n\t}\n\treturn string(r)\n}\n\n"
                              "type Token struct {\n\tText string\n}\n",
    "svc/main.go": "package main\n\nimport \"example.com/svc/strutil\"\n\nfunc main() {\n"
                   "\tprintln(strutil.Reverse(\"abc\"))\n}\n",
    "shop/Inventory.java": "package shop;\n\npublic class Inventory {\n"
                           "    public static final int MAX_STOCK = 500;\n\n"
                           "    public int restockItem(String sku, int qty) {\n        return qty;\n    }\n}\n",
    "shop/Shop.java": "package shop;\n\npublic class Shop {\n    void open(Inventory inv) {\n"
                      "        inv.restockItem(\"a\", 3);\n    }\n}\n",
    "docs/rotation.md": "\n".join(f"filler line {i} about nothing in particular" for i in range(60))
                        + "\nquaternion slerp interpolation keeps rotations smooth\n"
                        + "\n".join(f"more filler {i}" for i in range(30)) + "\n",
    "assets/logo.bin": "\0\1\2binary",
    "pkg/report.py": "class Report:\n    def line(self, text):\n        return text\n",
    "alpha/codec.py": "def encode(x):\n    return x\n",
    "beta/codec2.py": "def encode(x):\n    return -x\n",
    "misc/orphan.py": "def orphan_helper():\n    return 0\n",
}


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for path, text in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A repository with two commits: v1 (all FILES_V1) and v2 (compute_checksum's body changed)."""
    root = tmp_path_factory.mktemp("repo")
    _git(root, "init", "-q", "-b", "main")
    v1 = _commit(root, FILES_V1, "v1")
    changed = FILES_V1["pkg/util.py"].replace("version one", "version two")
    v2 = _commit(root, {"pkg/util.py": changed}, "v2")
    # An uncommitted change must never be seen: files are read at a revision.
    (root / "pkg/util.py").write_text(changed.replace("version two", "working tree"))
    return root, v1, v2


def _example(repo: Path, rev: str, path: str, text: str, cursor_at: str, *, start_line: int = 0,
             history: list[dict] | None = None) -> Example:
    return Example.model_validate({
        "id": f"ex-{path}",
        "source": {"kind": "zed", "repo": str(repo), "revision": rev},
        "snapshot": {"path": path, "text": text, "start_line": start_line,
                     "cursor": text.index(cursor_at), "history": history or []},
    })


def _file_example(repo: Path, rev: str, path: str, cursor_at: str, **kw) -> Example:
    return _example(repo, rev, path, FILES_V1[path], cursor_at, **kw)


@pytest.mark.parametrize(("path", "cursor_at", "def_path", "def_start"), [
    ("pkg/main.py", "compute_checksum(blob)", "pkg/util.py", "def compute_checksum(data):"),
    ("web/app.js", "formatPrice(item", "web/helpers.js", "export function formatPrice(cents)"),
    ("web/cart.ts", "CartLine[]", "web/types.ts", "export interface CartLine {"),
    ("geo/src/main.rs", "Polygon {", "geo/src/shapes.rs", "pub struct Polygon {"),
    ("svc/main.go", "Reverse(", "svc/strutil/strutil.go", "func Reverse(s string) string {"),
    ("shop/Shop.java", "restockItem(", "shop/Inventory.java", "    public int restockItem(String sku"),
])
def test_definition_in_other_file_is_retrieved(repo, path, cursor_at, def_path, def_start):
    root, v1, _ = repo
    out = add_context(_file_example(root, v1, path, cursor_at))
    defs = [r for r in out.snapshot.related if r.source == "definition" and r.path == def_path]
    assert defs, [(r.path, r.source, r.text[:30]) for r in out.snapshot.related]
    hit = next(r for r in defs if r.text.startswith(def_start))
    file_lines = FILES_V1[def_path].splitlines(keepends=True)
    assert file_lines[hit.start_line].startswith(def_start)
    assert hit.text == "".join(file_lines[hit.start_line : hit.start_line + hit.text.count("\n")])


def test_files_are_read_at_the_revision_not_head_or_worktree(repo):
    root, v1, v2 = repo
    texts = {}
    for rev in (v1, v2):
        out = add_context(_file_example(root, rev, "pkg/main.py", "compute_checksum(blob)"))
        hit = next(r for r in out.snapshot.related
                   if r.source == "definition" and r.text.startswith("def compute_checksum"))
        texts[rev] = hit.text
    assert "version one" in texts[v1] and "version two" in texts[v2]
    assert not any("working tree" in t for t in texts.values())


def test_git_mined_examples_read_the_parent_commit(repo):
    root, v1, v2 = repo
    mined = _file_example(root, v2, "pkg/main.py", "compute_checksum(blob)")
    mined.source.kind = "git"  # revision = the commit being replayed: its files hold future edits
    hit = next(r for r in add_context(mined).snapshot.related if r.text.startswith("def compute_checksum"))
    assert "version one" in hit.text
    at_rev = add_context(mined, ContextConfig(at="revision"))
    assert any("version two" in r.text for r in at_rev.snapshot.related)
    # A root commit's parent state is the empty repository: nothing to retrieve, nothing failed.
    root_commit = _file_example(root, v1, "pkg/main.py", "run")
    root_commit.source.kind = "git"
    assert resolve(root, f"{v1}^")[1] == EMPTY_TREE and list_tree(root, EMPTY_TREE) == []
    assert ContextStage().process(root_commit).snapshot.related == []


def test_definitions_rank_first_nearest_identifier_first(repo):
    root, v1, _ = repo
    # Cursor on the Ledger line: Ledger (distance 0) must outrank compute_checksum (distance 1).
    out = add_context(_file_example(root, v1, "pkg/main.py", "Ledger()"))
    related = out.snapshot.related
    assert [r.rank for r in related] == list(range(len(related)))
    sources = [r.source for r in related]
    assert sources == sorted(sources, key=lambda s: s != "definition")
    names = [r.text.split("\n")[0] for r in related if r.source == "definition"]
    assert names.index("class Ledger:") < names.index("def compute_checksum(data):")


def test_cursor_excerpt_itself_is_excluded_but_rest_of_file_kept(repo):
    root, v1, _ = repo
    text = FILES_V1["pkg/main.py"]
    excerpt = "".join(text.splitlines(keepends=True)[3:7])  # def run(...) body, lines 3..6
    example = _example(root, v1, "pkg/main.py", excerpt + "    local_helper()\n", "compute", start_line=3)
    out = add_context(example)
    own = [r for r in out.snapshot.related if r.path == "pkg/main.py"]
    assert all(not (3 <= r.start_line < 9) for r in own)
    assert any(r.source == "definition" and r.text.startswith("def local_helper") for r in own)


def test_members_match_attribute_uses_not_bare_names(repo):
    root, v1, _ = repo
    bare = add_context(_example(root, v1, "pkg/render.py", "for line in rows:\n    print(line)\n", "line"),
                       ContextConfig(sources=["definition"]))
    assert not any("def line" in r.text for r in bare.snapshot.related)
    attr = add_context(_example(root, v1, "pkg/render.py", "doc.line('x')\n", "line"),
                       ContextConfig(sources=["definition"]))
    assert [(r.path, r.start_line, r.text) for r in attr.snapshot.related] == [
        ("pkg/report.py", 1, "    def line(self, text):\n        return text\n")]
    # The class snippet already shows the method, so the method is not repeated.
    both = add_context(_example(root, v1, "pkg/render.py", "Report().line('x')\n", "line"),
                       ContextConfig(sources=["definition"]))
    assert [r.text.split("\n")[0] for r in both.snapshot.related] == ["class Report:"]


def test_imported_definition_preferred_over_same_name_elsewhere(repo):
    root, v1, _ = repo
    text = "from alpha.codec import encode\n\nvalue = encode(1)\n"
    out = add_context(_example(root, v1, "gamma/use.py", text, "encode(1)"),
                      ContextConfig(sources=["definition"]))
    assert [r.path for r in out.snapshot.related] == ["alpha/codec.py"]


def test_unimported_definitions_only_on_request(repo):
    root, v1, _ = repo
    example = _example(root, v1, "gamma/use.py", "value = orphan_helper()\n", "orphan")
    assert add_context(example, ContextConfig(sources=["definition"])).snapshot.related == []
    loose = add_context(example, ContextConfig(sources=["definition"], unreachable_unique=True))
    assert [r.path for r in loose.snapshot.related] == ["misc/orphan.py"]
    imported = _example(root, v1, "gamma/use.py", "from misc.orphan import orphan_helper\nvalue = orphan_helper()\n",
                        "value")
    assert [r.path for r in add_context(imported, ContextConfig(sources=["definition"])).snapshot.related] == [
        "misc/orphan.py"]


def test_history_added_lines_contribute_identifiers(repo):
    root, v1, _ = repo
    history = [{"path": "web/app.js", "diff": "@@ -1,1 +1,2 @@\n x\n+const r = TAX_RATE * 2;\n"}]
    example = _example(root, v1, "web/app.js", "function other() {}\n", "other", history=history)
    use = nearby_identifiers(example.snapshot, 20)["TAX_RATE"]
    assert use.distance == 21 and use.bare and not use.attribute
    out = add_context(example)
    assert any(r.source == "definition" and r.text.startswith("export const TAX_RATE") for r in out.snapshot.related)


def test_bm25_finds_chunk_with_rare_terms(repo):
    root, v1, _ = repo
    text = "// TODO: quaternion slerp here\nangle = 0\n"
    out = add_context(_example(root, v1, "anim/rotate.kt", text, "angle"),
                      ContextConfig(sources=["bm25"]))
    assert out.snapshot.related and all(r.source == "bm25" for r in out.snapshot.related)
    top = out.snapshot.related[0]
    assert top.path == "docs/rotation.md" and "quaternion slerp" in top.text
    lines = FILES_V1["docs/rotation.md"].splitlines(keepends=True)
    assert top.text == "".join(lines[top.start_line : top.start_line + top.text.count("\n")])
    assert top.start_line > 0  # the rare terms are in a later chunk, not the file's first one


def test_budget_snippet_and_file_caps_respected(repo):
    root, v1, _ = repo
    example = _file_example(root, v1, "pkg/main.py", "compute_checksum(blob)")
    full = add_context(example, ContextConfig(max_tokens=100_000))
    full_cost = sum(estimate_tokens(r.text) for r in full.snapshot.related)
    budget = full_cost // 2
    small = add_context(example, ContextConfig(max_tokens=budget))
    assert 0 < len(small.snapshot.related) < len(full.snapshot.related)
    assert sum(estimate_tokens(r.text) for r in small.snapshot.related) <= budget
    capped = add_context(example, ContextConfig(max_snippets=2, max_per_file=1, max_tokens=100_000))
    assert len(capped.snapshot.related) == 2
    assert len({r.path for r in capped.snapshot.related}) == 2


def test_existing_related_from_other_sources_kept_and_ours_replaced(repo):
    root, v1, _ = repo
    example = _file_example(root, v1, "pkg/main.py", "compute_checksum(blob)")
    example.snapshot.related = [
        RelatedExcerpt(path="x.py", text="lsp\n", source="lsp", rank=0),
        RelatedExcerpt(path="y.py", text="old\n", source="bm25", rank=1),
    ]
    out = add_context(example)
    assert out.snapshot.related[0].source == "lsp"
    assert all(r.path != "y.py" for r in out.snapshot.related)
    assert [r.rank for r in out.snapshot.related] == list(range(len(out.snapshot.related)))
    again = add_context(out)
    assert again.snapshot.related == out.snapshot.related


def test_stage_fails_example_when_repo_or_revision_missing(repo, tmp_path):
    root, v1, _ = repo
    stage = ContextStage()
    with pytest.raises(StageError, match="not available locally"):
        stage.process(_file_example(tmp_path / "nope", v1, "pkg/main.py", "run"))
    with pytest.raises(StageError, match="revision deadbeef not found"):
        stage.process(_file_example(root, "deadbeef", "pkg/main.py", "run"))
    no_rev = _file_example(root, v1, "pkg/main.py", "run")
    no_rev.source.revision = None
    with pytest.raises(StageError, match="no revision"):
        stage.process(no_rev)
    # A configured default revision makes it work.
    out = ContextStage({"revision": v1}).process(no_rev)
    assert out.snapshot.related


def test_stage_via_repos_dir_for_remote_url(repo):
    root, v1, _ = repo
    example = _file_example(root, v1, "pkg/main.py", "compute_checksum(blob)")
    example.source.repo = f"https://example.com/acme/{root.name}.git"
    out = ContextStage({"repos_dir": str(root.parent)}).process(example)
    assert any(r.source == "definition" for r in out.snapshot.related)


def test_index_is_cached_per_revision(repo):
    root, v1, v2 = repo
    cache: LRUCache = LRUCache(maxsize=1)
    settings = IndexSettings()
    a = load_index(root, v1, settings, cache)
    b = load_index(str(root), v1[:10], settings, cache)
    assert a is b and cache.misses == 1 and cache.hits == 1
    c = load_index(root, v2, settings, cache)
    assert c is not a and len(cache) == 1
    assert load_index(root, v1, settings, cache) is not a  # evicted, rebuilt
    assert a.n_definitions > 10 and "Polygon" in a.definitions


def test_repo_files_skip_binary_and_resolve_errors(repo, tmp_path):
    root, v1, _ = repo
    paths = {e.path for e in list_tree(root, v1)}
    assert "assets/logo.bin" in paths
    files = read_text_files(root, v1)
    assert "assets/logo.bin" not in files and files["pkg/util.py"] == FILES_V1["pkg/util.py"]
    with pytest.raises(RepoError, match="not a git repository"):
        resolve(tmp_path, "HEAD")


def test_long_definition_is_truncated_to_signature_and_first_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(40))
    text = "def big(a, b):\n" + body
    (d,) = extract_definitions("m.py", text)
    out = definition_text(d, text.splitlines(keepends=True), max_lines=5)
    assert out.startswith("def big(a, b):\n    x0 = 0\n")
    assert out.count("\n") == 6 and out.endswith("    # ... (36 more lines)\n")


def test_local_variables_are_not_definitions():
    text = "LIMIT = 3\n\ndef f():\n    inner = 2\n    return inner\n"
    assert [d.name for d in extract_definitions("m.py", text)] == ["LIMIT", "f"]
    js = "const A = 1;\nfunction g() { const inner = 2; return inner; }\n"
    assert [d.name for d in extract_definitions("m.js", js)] == ["A", "g"]


def test_chunk_ranges_cover_overlap_and_snap_to_blank_lines():
    lines = [f"l{i}\n" for i in range(100)]
    ranges = chunk_ranges(lines, size=40, overlap=10, snap=0)
    assert ranges == [(0, 40), (30, 70), (60, 100)]
    lines[37] = "\n"
    snapped = chunk_ranges(lines, size=40, overlap=10, snap=5)
    assert snapped[0] == (0, 38) and snapped[1][0] == 28
    assert chunk_ranges([], size=40, overlap=10) == []


def test_tokenize_and_bm25_scoring():
    assert tokenize("parseHTTPRequest snake_case") == [
        "parsehttprequest", "parse", "http", "request", "snake_case", "snake", "case"]
    docs = [weighted_terms([("apple banana", 1)]), weighted_terms([("apple cherry cherry", 1)]),
            weighted_terms([("banana", 1)])]
    index = BM25Index.build(docs)
    scores = index.scores({"cherry": 1.0})
    assert scores[1] > 0 and scores[0] == 0 and scores[2] == 0
    both = index.scores({"apple": 1.0, "cherry": 1.0})
    assert both.argmax() == 1
    assert index.idf("cherry") > index.idf("apple")  # rarer term weighs more
    double = index.scores({"cherry": 2.0})
    assert double[1] == pytest.approx(2 * scores[1])


def test_registered_stages_run_through_the_engine(repo, tmp_path):
    from nextedit.jsonl import failed_path, read_dicts, read_examples, write_examples
    from nextedit.pipeline.engine import run_stage
    from nextedit.pipeline.registry import get_stage

    root, v1, _ = repo
    good = [_file_example(root, v1, "pkg/main.py", "compute_checksum(blob)"),
            _file_example(root, v1, "geo/src/main.rs", "Polygon {")]
    bad = _file_example(tmp_path / "gone", v1, "pkg/main.py", "run")
    for i, ex in enumerate([*good, bad]):
        ex.id = f"ex-{i}"
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_examples(src, [*good, bad])
    summary = run_stage(get_stage("context")(), src, out, concurrency=1, cache=False, progress=False)
    assert (summary.written, summary.failed) == (2, 1)
    results = {ex.id: ex for ex in read_examples(out)}
    assert any(r.source == "definition" and r.path == "geo/src/shapes.rs"
               for r in results["ex-1"].snapshot.related)
    (_, row), = list(read_dicts(failed_path(out)))
    assert row["id"] == "ex-2" and "not available locally" in row["reason"]
    diag = run_stage(get_stage("diagnostics")(), out, tmp_path / "diag.jsonl", concurrency=1,
                     cache=False, progress=False)
    assert (diag.written, diag.failed) == (2, 0)


def test_lines_split_on_newline_only():
    from nextedit.context.repo_files import split_lines

    text = "a\x0cb\r\nc\u2028d\ne"
    assert split_lines(text) == ["a\x0cb\r\n", "c\u2028d\n", "e"]
    assert split_lines("x\n") == ["x\n"] and split_lines("") == []
    (d,) = extract_definitions("m.py", "# \x0c form feed\ndef f():\n    pass\n")
    assert d.start_line == 1


def test_history_edits_are_laid_over_the_revision(repo):
    root, v1, _ = repo
    util_diff = ("--- a/pkg/util.py\n+++ b/pkg/util.py\n@@ -1,4 +1,6 @@\n import hashlib\n+import zlib\n+\n \n \n"
                 "-def compute_checksum(data):\n+def compute_checksum(data, algo):\n")
    new_file = "--- /dev/null\n+++ b/pkg/extra.py\n@@ -0,0 +1,2 @@\n+def fresh_helper():\n+    return 2\n"
    history = [{"path": "pkg/util.py", "diff": util_diff}, {"path": "pkg/extra.py", "diff": new_file}]
    text = "from pkg.util import compute_checksum\nfrom pkg.extra import fresh_helper\n" \
           "x = compute_checksum(b, 'crc') + fresh_helper()\n"
    out = add_context(_example(root, v1, "pkg/caller.py", text, "compute_checksum(b", history=history),
                      ContextConfig(sources=["definition"]))
    by_path = {r.path: r for r in out.snapshot.related}
    assert by_path["pkg/util.py"].text.startswith("def compute_checksum(data, algo):\n")
    assert by_path["pkg/util.py"].start_line == 5  # two lines were inserted above it
    assert by_path["pkg/extra.py"].text == "def fresh_helper():\n    return 2\n"


def test_bm25_chunks_of_edited_files_are_shown_as_edited(repo):
    root, v1, _ = repo
    insert = "--- a/docs/rotation.md\n+++ b/docs/rotation.md\n@@ -1,1 +1,4 @@\n+new a\n+new b\n+new c\n filler line 0 about nothing in particular\n"
    text = "// TODO: quaternion slerp here\nangle = 0\n"
    plain = add_context(_example(root, v1, "anim/rotate.kt", text, "angle"), ContextConfig(sources=["bm25"]))
    edited = add_context(_example(root, v1, "anim/rotate.kt", text, "angle",
                                  history=[{"path": "docs/rotation.md", "diff": insert}]),
                         ContextConfig(sources=["bm25"]))
    before = next(r for r in plain.snapshot.related if "quaternion slerp" in r.text)
    # The same chunk, now 3 lines lower, with the same text (read from the edited file).
    assert any(r.text == before.text and r.start_line == before.start_line + 3
               for r in edited.snapshot.related)
    lines = FILES_V1["docs/rotation.md"].splitlines(keepends=True)
    assert all(r.text == "".join(lines[r.start_line - 3 : r.start_line - 3 + r.text.count("\n")])
               for r in edited.snapshot.related if r.start_line >= 3)


def test_revisions_share_work_and_score_only_their_own_chunks(repo):
    from nextedit.context.index import RepoIndex

    root, v1, v2 = repo
    shared = RepoIndex(root, IndexSettings())
    first = shared.revision(v1)
    read_v1 = shared.files_read
    second = shared.revision(v2)
    assert shared.files_read == read_v1 + 1  # only pkg/util.py changed between v1 and v2
    assert first.n_chunks == second.n_chunks and len(shared.chunks) > first.n_chunks
    # Each revision scores only its own chunks, exactly as an index built for it alone would.
    alone = build_index(root, v2, IndexSettings())
    query = {"version": 1.0, "two": 1.0, "checksum": 1.0}
    s_shared, s_alone = second.bm25.scores(query), alone.bm25.scores(query)
    by_chunk_shared = {shared.chunks[i]: s for i, s in enumerate(s_shared) if s > 0}
    by_chunk_alone = {alone.chunks[i]: s for i, s in enumerate(s_alone) if s > 0}
    assert by_chunk_shared.keys() == by_chunk_alone.keys()
    assert all(by_chunk_shared[k] == pytest.approx(by_chunk_alone[k]) for k in by_chunk_alone)
    # "two" occurs only in v2's pkg/util.py: v1 must not see that chunk, v2 must.
    assert not any("two" in text for text in FILES_V1.values())
    assert not first.bm25.scores({"two": 1.0}).any()
    assert {shared.chunks[i][0] for i in np.flatnonzero(second.bm25.scores({"two": 1.0}))} == {"pkg/util.py"}
