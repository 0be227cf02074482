"""Tests for nextedit.jsonl: streaming read, gzip, atomic finish, quarantine of malformed lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from nextedit.jsonl import (
    FailedWriter,
    JsonlWriter,
    failed_path,
    iter_lines,
    read_dicts,
    read_examples,
    write_examples,
)
from nextedit.record import RecordError, parse_example


def record(i: int) -> dict:
    text = f"def f{i}():\n    return {i}\n"
    return {"id": f"ex-{i}", "snapshot": {"path": "a.py", "text": text, "cursor": 3}}


def test_roundtrip_plain_and_gz(tmp_path: Path) -> None:
    for name in ("out.jsonl", "out.jsonl.gz"):
        path = tmp_path / name
        n = write_examples(path, (parse_example(record(i)) for i in range(50)))
        assert n == 50
        got = list(read_examples(path))
        assert [e.id for e in got] == [f"ex-{i}" for i in range(50)]
        assert got[7].snapshot.text == "def f7():\n    return 7\n"
    # the .gz file really is gzip
    with gzip.open(tmp_path / "out.jsonl.gz", "rb") as fh:
        assert orjson.loads(fh.readline())["id"] == "ex-0"


def test_iter_lines_numbers_skip_blank_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a":1}\r\n\n   \n{"a":2}\n{"a":3}')
    assert list(iter_lines(path)) == [(1, b'{"a":1}'), (4, b'{"a":2}'), (5, b'{"a":3}')]
    assert [(n, d["a"]) for n, d in read_dicts(path)] == [(1, 1), (4, 2), (5, 3)]


def test_bad_line_raises_naming_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    bad = record(1)
    bad["snapshot"]["cursor"] = "x"
    path.write_bytes(orjson.dumps(record(0)) + b"\n" + orjson.dumps(bad) + b"\n")
    with pytest.raises(RecordError) as info:
        list(read_examples(path))
    msg = str(info.value)
    assert f"{path}:2:" in msg and "snapshot.cursor" in msg and "\n" not in msg
    path.write_bytes(b'{"id": "x", \n')
    with pytest.raises(RecordError, match=r":1: malformed JSON"):
        list(read_dicts(path))


def test_quarantine_malformed_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    bad_cursor = record(2)
    bad_cursor["snapshot"]["cursor"] = -1
    src.write_bytes(b"\n".join([
        orjson.dumps(record(0)), b"not json at all", orjson.dumps(bad_cursor), b"[1, 2]",
        orjson.dumps(record(4)),
    ]) + b"\n")
    out = tmp_path / "out.jsonl"
    with FailedWriter(out, stage="read") as failed:
        kept = list(read_examples(src, errors="skip", on_error=failed.on_error(str(src))))
    assert [e.id for e in kept] == ["ex-0", "ex-4"]
    rows = [orjson.loads(line) for _, line in iter_lines(failed_path(out))]
    assert [r["line"] for r in rows] == [2, 3, 4]
    assert rows[0]["record"] == "not json at all" and "malformed JSON" in rows[0]["reason"]
    assert rows[1]["id"] == "ex-2" and "snapshot.cursor" in rows[1]["reason"]
    assert rows[1]["record"]["snapshot"]["cursor"] == -1
    assert "expected a JSON object" in rows[2]["reason"]
    assert all(r["file"] == str(src) and r["stage"] == "read" for r in rows)


def test_no_failed_file_when_nothing_fails(tmp_path: Path) -> None:
    with FailedWriter(tmp_path / "out.jsonl"):
        pass
    assert not (tmp_path / "out.failed.jsonl").exists()


def test_failed_path_names() -> None:
    assert failed_path("d/out.jsonl") == Path("d/out.failed.jsonl")
    assert failed_path("d/out.jsonl.gz") == Path("d/out.failed.jsonl")
    assert failed_path("d/out") == Path("d/out.failed.jsonl")


def test_atomic_finish_keeps_old_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_examples(path, [record(0)])
    before = path.read_bytes()
    with pytest.raises(RuntimeError), JsonlWriter(path) as writer:
        writer.write(record(1))
        writer.write(record(2))
        raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no temp file left


def test_writer_target_absent_until_close(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.jsonl"
    writer = JsonlWriter(path)
    writer.write(record(0))
    assert not path.exists()
    writer.close()
    assert [d["id"] for _, d in read_dicts(path)] == ["ex-0"]


def test_copy_head_reads_gzip_and_rewrites_only_on_change(tmp_path):
    import gzip

    from nextedit.jsonl import copy_head

    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wb") as fh:
        fh.write(b'{"a": 1}\n\n{"a": 2}\n{"a": 3}')
    dst = tmp_path / "head.jsonl"
    assert copy_head(src, dst, 2) == 2
    assert dst.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    mtime = dst.stat().st_mtime_ns
    assert copy_head(src, dst, 2) == 2 and dst.stat().st_mtime_ns == mtime
    assert copy_head(src, dst, 10) == 3 and dst.read_bytes().endswith(b'{"a": 3}\n')


def test_copy_sample_spreads_over_the_file_is_seeded_and_rewrites_only_on_change(tmp_path):
    from nextedit.jsonl import copy_sample

    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"id": "e{i}"}}\n' for i in range(100)) + "\n")
    dst = tmp_path / "out.jsonl"
    assert copy_sample(src, dst, 10, seed=0) == 10
    ids = [int(line.split('"e')[1].split('"')[0]) for line in dst.read_text().splitlines()]
    assert ids == sorted(ids) and len(set(ids)) == 10 and ids != list(range(10))  # file order, not the head
    assert max(ids) >= 50  # reaches the second half of the file
    mtime = dst.stat().st_mtime_ns
    assert copy_sample(src, dst, 10, seed=0) == 10 and dst.stat().st_mtime_ns == mtime
    copy_sample(src, tmp_path / "other.jsonl", 10, seed=1)
    assert (tmp_path / "other.jsonl").read_text() != dst.read_text()
    assert copy_sample(src, dst, 500) == 100 and dst.read_text().count("\n") == 100
