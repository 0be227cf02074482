"""Fuzz targets: the parsers that take outside input, each with a hypothesis strategy and the errors it may raise.

Used by tests/test_fuzz.py (a few hundred inputs each, in CI) and bench/fuzz.py (a long campaign that
counts crashes). A crash is any exception outside a target's `allowed` domain errors, or, for the
server, any 5xx answer or a non-JSON error body.
"""

from __future__ import annotations

import copy
import gzip
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from nextedit import patch as P
from nextedit.record import Example, HistoryEvent, RecordError, Snapshot

# ---------------------------------------------------------------- generic strategies


def _lines(seed: str) -> list[str]:
    return seed.split("\n")


@st.composite
def mutated_text(draw: Any, seeds: list[str], fragments: list[str]) -> str:
    """A seed text with a few line-level and character-level mutations (delete, duplicate, insert a
    fragment or random text, splice characters, swap, truncate)."""
    lines = _lines(draw(st.sampled_from(seeds)))
    piece = st.sampled_from(fragments) | st.text(max_size=24)
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["del", "dup", "ins", "chars", "swap", "trunc"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "ins" or not lines:
            lines.insert(i, draw(piece))
        elif op == "del":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "chars":
            line = lines[i]
            a = draw(st.integers(0, len(line)))
            b = draw(st.integers(a, min(len(line), a + 6)))
            lines[i] = line[:a] + draw(st.text(max_size=6)) + line[b:]
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines = lines[:i]
    return "\n".join(lines)


def text_inputs(seeds: list[str], fragments: list[str]) -> st.SearchStrategy[str]:
    """Mostly mutated seeds; also fragment soups and arbitrary text."""
    soup = st.lists(st.sampled_from(fragments) | st.text(max_size=16), max_size=16).map("\n".join)
    return st.one_of(mutated_text(seeds, fragments), mutated_text(seeds, fragments), soup, st.text(max_size=200))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.integers(-3, 400)
    | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated_json(draw: Any, seeds: list[Any]) -> Any:
    """A seed document with 1-4 mutations: a value replaced (random JSON, a small or huge number, text,
    a mutated string), or a key / item deleted."""
    doc = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(doc))))
        if not path:
            if draw(st.booleans()):
                doc = draw(JSON_VALUES)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = draw(st.sampled_from(["json", "delete", "number", "text", "splice"]))
        if op == "delete":
            del parent[key]
        elif op == "json":
            parent[key] = draw(JSON_VALUES)
        elif op == "number":
            parent[key] = draw(st.integers(-5, 10 ** 6) | st.integers(2 ** 62, 2 ** 66) | st.floats(-1e3, 1e9))
        elif op == "splice" and isinstance(parent[key], str):
            s = parent[key]
            a = draw(st.integers(0, len(s)))
            parent[key] = s[:a] + draw(st.text(max_size=8)) + s[a + draw(st.integers(0, 8)):]
        else:
            parent[key] = draw(st.text(max_size=40))
    return doc


def json_bytes(doc: Any) -> bytes:
    """JSON text of a document (stdlib: big integers pass, which orjson then refuses to read)."""
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def jsonl_bytes(draw: Any, seeds: list[Any]) -> bytes:
    """A JSONL file: mutated or intact seed objects, junk lines, odd bytes, CRLF, blank lines."""
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["seed", "mutated", "mutated", "junk", "bytes"]))
        if kind == "seed":
            rows.append(json_bytes(draw(st.sampled_from(seeds))))
        elif kind == "mutated":
            rows.append(json_bytes(draw(mutated_json(seeds))))
        elif kind == "junk":
            rows.append(draw(st.text(max_size=40)).encode("utf-8", "surrogatepass"))
        else:
            rows.append(draw(st.binary(max_size=40)))
    sep = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"]))
    return sep.join(rows) + draw(st.sampled_from([b"", b"\n"]))


# ---------------------------------------------------------------- seeds (our own, generated by our code)

CODE = "def restock(item, qty):\n    item.count += amount\n    log(item, amount)\n\n\ndef total(items):\n    return 0\n"
NEW = CODE.replace("amount", "qty")
PATCH = P.make(CODE, NEW, path="stock.py")
HISTORY = "@@ -1,3 +1,3 @@\n-def restock(item, amount):\n+def restock(item, qty):\n     item.count += amount\n"


def seed_example(i: int = 0) -> Example:
    """A valid example (rename in progress) with history, editable region and an expected patch."""
    start = 0 if i % 2 == 0 else CODE.index("    item")
    return Example(id=f"seed-{i}", snapshot=Snapshot(
        path="pkg/stock.py", text=CODE, cursor=start + 4, start_line=10 * i, editable=(start, CODE.index("\n\n\n")),
        history=[HistoryEvent(path="pkg/stock.py", diff=HISTORY)]),
        expected=[P.make(CODE, NEW, path="pkg/stock.py", start_line=10 * i)])


PATCH_FRAGMENTS = ["--- a/stock.py", "+++ b/stock.py", "--- /dev/null", "+++ /dev/null", "@@ -1,3 +1,3 @@",
                   "@@ -0,0 +1 @@", "@@ -5 +5,2 @@ def f():", "@@ -1,2 +1,2", "+added", "-removed", " context", "",
                   "\\ No newline at end of file", "diff --git a/x b/x", "index 1234..5678 100644", "new file mode 100644",
                   "rename from a.py", "rename to b.py", "--- \"a/with space.py\"", "@@ -99999999999 +1 @@",
                   "Binary files a/x and b/x differ", "+++", "---", "@@", "-", "+"]


def _markdown_seeds() -> list[str]:
    from nextedit.sources.zed import to_markdown

    return [to_markdown(seed_example(i)) for i in range(2)]


MD_FRAGMENTS = ["+++", "---", "# name", "## Cursor Position", "## Edit History", "## Expected Patch",
                "## Uncommitted Diff", "## Related Excerpts", "```", "````", "```diff", "```stock.py", "<|user_cursor|>",
                "# Expected Patch", "repository_url = \"x\"", "revision = 3", "tags = [1]", "    indented",
                "### deeper", "<|editable_region_start|>", "<|editable_region_end|>", "// ^[CURSOR_POSITION]"]

TEACHER_SEEDS = [
    ("Here is the edit:\n```python\n<|editable_region_start|>\ndef restock(item, qty):\n"
     "    item.count += qty<|user_cursor|>\n    log(item, qty)\n<|editable_region_end|>\n```\n"),
    "NO_EDITS", "The user is done.\n\nNO_EDITS\n", "KEEP_PREVIOUS",
    "````\n```\n<|editable_region_start|>\nx\n<|editable_region_end|>\n```\n````",
]
TEACHER_FRAGMENTS = ["```", "````", "```python", "<|editable_region_start|>", "<|editable_region_end|>",
                     "<|user_cursor|>", "NO_EDITS", "KEEP_PREVIOUS", "", "    item.count += qty"]


def _trace_seeds() -> list[dict[str, Any]]:
    ex = seed_example(1)
    snap = ex.snapshot.model_dump(mode="json")
    start, end = ex.snapshot.editable or (0, 0)
    return [
        {"type": "request", "request_id": "r1", "snapshot": snap, "model_version": "m", "arm": "a", "client_id": "c1",
         "user_id": "u1", "collectable": True, "open_source": True, "at": 100.0, "document_offset": 0,
         "prediction": {"patch": ex.expected[0], "cursor": None}},
        {"type": "shown", "request_id": "r1", "at": 100.5},
        {"type": "accepted", "request_id": "r1", "at": 101},
        {"type": "rejected", "request_id": "r1", "reason": "discarded", "at": 101},
        {"type": "edit", "client_id": "c1", "path": "pkg/stock.py", "start": start + 3, "end": start + 5,
         "text": "xy", "at": 102.0},
        {"type": "settled", "request_id": "r1", "text": NEW[start:end], "quiet_s": 12.5, "at": "2026-11-22T00:00:00Z"},
    ]


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    """One parser under fuzz: inputs, a runner (opened once per campaign), the domain errors it may raise."""

    name: str
    what: str
    strategy: st.SearchStrategy[Any]
    open: Callable[[Path], Any]  # context manager factory: tmp dir -> callable(input)
    allowed: tuple[type[BaseException], ...]


@contextmanager
def _plain(fn: Callable[[Any], Any]) -> Iterator[Callable[[Any], Any]]:
    yield fn


def _patch_parse(text: str) -> None:
    for fp in P.parse(text):
        fp.render()


def _patch_apply(args: tuple[str, str, int]) -> None:
    patch, text, start_line = args
    P.apply(patch, text, start_line=start_line)
    P.to_region(patch, text, (0, len(text)), start_line=start_line)


def _markdown(text: str) -> None:
    from nextedit.sources.zed_markdown import parse_markdown
    from nextedit.sources.zed_spec import spec_to_example

    parsed = parse_markdown(text, file="fuzz.md")
    spec_to_example(parsed.spec, file="fuzz.md", default_id="fuzz", lines=parsed.lines)


def _zed_spec(doc: Any) -> None:
    from nextedit.sources.zed_spec import spec_to_example

    if not isinstance(doc, dict):
        doc = {"value": doc}
    spec_to_example(doc, file="fuzz.json")


@contextmanager
def _zed_files(tmp: Path) -> Iterator[Callable[[tuple[str, bytes]], None]]:
    from nextedit.sources.zed import read_zed_file

    def run(args: tuple[str, bytes]) -> None:
        suffix, data = args
        path = tmp / f"fuzz{suffix}"
        path.write_bytes(gzip.compress(data, mtime=0) if suffix.endswith(".gz") else data)
        failures: list[Any] = []
        list(read_zed_file(path, on_failure=failures.append))

    yield run


def _teacher(args: tuple[str, bool]) -> None:
    from nextedit.teacher.parse import parse_output, region_patch

    raw, keep = args
    parsed = parse_output(raw, allow_keep_previous=keep)
    snap = seed_example(1).snapshot
    patch, _cursor = region_patch(snap, parsed)
    if patch:  # what the parser hands on must be a patch that applies to the snapshot
        P.apply(patch, snap.text, start_line=snap.start_line)


@contextmanager
def _jsonl(tmp: Path) -> Iterator[Callable[[tuple[bool, bytes]], None]]:
    from nextedit.jsonl import read_examples

    def run(args: tuple[bool, bytes]) -> None:
        gz, data = args
        path = tmp / ("fuzz.jsonl.gz" if gz else "fuzz.jsonl")
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        reported: list[int] = []
        kept = list(read_examples(path, errors="skip", on_error=lambda line, raw, why: reported.append(line)))
        assert len(kept) + len(reported) <= data.count(b"\n") + 1
        list(read_examples(path))  # errors="raise": RecordError on the first bad line, nothing else

    yield run


@contextmanager
def _damaged_gzip(tmp: Path) -> Iterator[Callable[[tuple[int, int, bytes]], None]]:
    from nextedit.jsonl import read_examples

    body = b"".join(seed_example(i).to_json() + b"\n" for i in range(8))
    packed = gzip.compress(body, mtime=0)

    def run(args: tuple[int, int, bytes]) -> None:
        cut, at, junk = args
        data = bytearray(packed[:max(0, len(packed) - cut)])
        if junk and data:
            i = at % len(data)
            data[i:i + len(junk)] = junk
        path = tmp / "damaged.jsonl.gz"
        path.write_bytes(bytes(data))
        list(read_examples(path))

    yield run


@contextmanager
def _traces(tmp: Path) -> Iterator[Callable[[bytes], None]]:
    from nextedit.settle.traces import import_traces

    def run(data: bytes) -> None:
        path = tmp / "trace.jsonl"
        path.write_bytes(data)
        errors: list[str] = []
        list(import_traces([path], on_error=lambda file, line, reason, raw: errors.append(reason)))

    yield run


SERVE_KEY = "fuzz-key"


def _serve_seeds() -> list[Any]:
    snap = seed_example(1).snapshot.model_dump(mode="json")
    return [
        {"path": "/v1/predict", "body": {"snapshot": snap, "client_id": "c1", "user_id": "u1"}},
        {"path": "/v1/events", "body": {"type": "shown", "request_id": "r1"}},
        {"path": "/v1/events", "body": {"type": "settled", "request_id": "r1", "settled_text": "x"}},
        {"path": "/v1/completions", "body": {"model": "control", "prompt": "def f(", "max_tokens": 8}},
        {"path": "/v1/chat/completions", "body": {"model": "control", "messages": [{"role": "user", "content": "hi"}]}},
    ]


@contextmanager
def _serve(tmp: Path) -> Iterator[Callable[[tuple[str, Any, bytes | None]], None]]:
    from fastapi.testclient import TestClient

    from nextedit.serve.app import create_app
    from nextedit.serve.config import parse_config

    config = parse_config({"store": str(tmp / "events.db"), "deadline_ms": 2000,
                           "auth": {"api_keys": [SERVE_KEY], "admin_token": "admin"}, "arms": [
                               {"name": "control", "backend": "noop", "share": 0.5, "control": True},
                               {"name": "student", "backend": "propagate", "share": 0.5}]})
    with ExitStack() as stack:
        client = stack.enter_context(TestClient(create_app(config), raise_server_exceptions=True))
        headers = {"Authorization": f"Bearer {SERVE_KEY}", "Content-Type": "application/json"}

        def run(args: tuple[str, Any, bytes | None]) -> None:
            path, body, raw = args
            resp = client.post(path, content=raw if raw is not None else json_bytes(body), headers=headers)
            assert resp.status_code < 500, f"{path}: HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code >= 400:
                assert "error" in resp.json(), f"{path}: HTTP {resp.status_code} without a JSON error"

        yield run


@st.composite
def _serve_inputs(draw: Any) -> tuple[str, Any, bytes | None]:
    seeds = _serve_seeds()
    seed = draw(st.sampled_from(seeds))
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw", "json"]))
    if kind == "raw":
        return seed["path"], None, draw(st.binary(max_size=64) | st.sampled_from([b"", b"{", b"[]", b"null", b"1e999"]))
    if kind == "json":
        return seed["path"], draw(JSON_VALUES), None
    return seed["path"], draw(mutated_json([seed["body"]])), None


def _example_rows() -> list[dict[str, Any]]:
    return [seed_example(i).to_dict() for i in range(2)]


def targets() -> list[Target]:
    """Every fuzz target (strategies are built here, seeds by our own code)."""
    from nextedit.patch import PatchError
    from nextedit.settle.traces import TraceError
    from nextedit.teacher.parse import ParseError

    md = _markdown_seeds()
    spec_seeds = [json.loads(json.dumps(_spec(i))) for i in range(2)]
    patch_text = text_inputs([PATCH, HISTORY, seed_example(1).expected[0]], PATCH_FRAGMENTS)
    code_text = st.one_of(st.just(CODE), st.just(NEW), mutated_text([CODE], ["    item.count += amount", ""]))
    return [
        Target("patch.parse", "nextedit.patch.parse on unified-diff-like text", patch_text,
               lambda _tmp: _plain(_patch_parse), (PatchError,)),
        Target("patch.apply", "nextedit.patch.apply and to_region: fuzzed patch on fuzzed code",
               st.tuples(patch_text, code_text, st.integers(0, 40)), lambda _tmp: _plain(_patch_apply),
               (PatchError,)),
        Target("zed.markdown", "Zed Markdown eval: parse_markdown + spec_to_example", text_inputs(md, MD_FRAGMENTS),
               lambda _tmp: _plain(_markdown), (RecordError,)),
        Target("zed.spec", "Zed ExampleSpec dict: spec_to_example", mutated_json(spec_seeds),
               lambda _tmp: _plain(_zed_spec), (RecordError,)),
        Target("zed.files", "Zed .json / .jsonl / .jsonl.gz files: read_zed_file (bad records reported, never raised)",
               st.tuples(st.sampled_from([".json", ".jsonl", ".jsonl.gz"]),
                         jsonl_bytes(spec_seeds) | mutated_json(spec_seeds).map(json_bytes)),
               _zed_files, ()),
        Target("teacher.answer", "teacher / repair answer: parse_output + region_patch",
               st.tuples(text_inputs(TEACHER_SEEDS, TEACHER_FRAGMENTS), st.booleans()),
               lambda _tmp: _plain(_teacher), (ParseError,)),
        Target("jsonl", "JSONL / .jsonl.gz example files: read_examples", st.tuples(st.booleans(),
               jsonl_bytes(_example_rows())), _jsonl, (RecordError,)),
        Target("jsonl.damaged-gz", "truncated or corrupted .jsonl.gz: read_examples",
               st.tuples(st.integers(0, 400), st.integers(0, 10 ** 6), st.binary(max_size=8)), _damaged_gzip,
               (RecordError,)),
        Target("traces", "trace logs (JSONL events): import_traces (bad events reported, never raised)",
               jsonl_bytes(_trace_seeds()), _traces, (TraceError,)),
        Target("serve", "server request bodies: /v1/predict, /v1/events, /v1/completions, /v1/chat/completions "
               "(FastAPI TestClient; a 5xx or a non-JSON error counts as a crash)", _serve_inputs(), _serve, ()),
    ]


def _spec(i: int) -> dict[str, Any]:
    from nextedit.sources.zed_spec import example_to_spec

    return example_to_spec(seed_example(i))


@contextmanager
def workdir() -> Iterator[Path]:
    """A scratch folder for targets that read files."""
    with tempfile.TemporaryDirectory(prefix="nextedit-fuzz-") as d:
        yield Path(d)
