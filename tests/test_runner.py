"""Tests for the local runner: quarantine, cache hits, drops, failures, concurrency, resume after kill -9."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from runner_stages import AsyncTag, Tag

from nextedit.jsonl import failed_path, iter_lines
from nextedit.pipeline import RunError, StageError, get_stage, run_stage
from nextedit.pipeline.engine import sidecar_paths

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def record(i: int) -> dict:
    text = f"def f{i}():\n    return {i}\n"
    expected = (f"--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n def f{i}():\n-    return {i}\n"
                f"+    return {i + 1}\n")
    return {"id": f"ex-{i}", "snapshot": {"path": "m.py", "text": text, "cursor": 4},
            "expected": [expected]}


def write_input(path: Path, n: int, bad: dict[int, bytes] | None = None) -> Path:
    """n records; `bad` maps a position (0-based, before that record) to a raw bad line."""
    bad = bad or {}
    with open(path, "wb") as fh:
        for i in range(n):
            if i in bad:
                fh.write(bad[i] + b"\n")
            fh.write(orjson.dumps(record(i)) + b"\n")
    return path


def rows(path: Path) -> list[dict]:
    return [orjson.loads(raw) for _, raw in iter_lines(path)]


def ids(path: Path) -> list[str]:
    return [r["id"] for r in rows(path)]


def test_validate_quarantines_malformed_lines(tmp_path: Path) -> None:
    bad_cursor = record(99)
    bad_cursor["snapshot"]["cursor"] = -5
    broken_patch = record(98)
    broken_patch["expected"] = ["@@ -1,1 +1,1 @@\n-nothing like this\n+x\n"]
    src = write_input(tmp_path / "in.jsonl", 20, bad={
        3: b'{"id": "torn", "snapshot": {"pa', 7: orjson.dumps(bad_cursor),
        12: orjson.dumps(broken_patch)})
    out = tmp_path / "out.jsonl"
    summary = run_stage(get_stage("validate")(), src, out, cache_path=tmp_path / "c.sqlite", progress=False)
    assert ids(out) == [f"ex-{i}" for i in range(20)]
    assert (summary.processed, summary.failed, summary.written) == (20, 3, 20)
    failed = rows(failed_path(out))
    assert [f["line"] for f in failed] == [4, 9, 15]
    assert "malformed JSON" in failed[0]["reason"] and failed[0]["record"].startswith('{"id": "torn"')
    assert failed[1]["id"] == "ex-99" and "snapshot.cursor" in failed[1]["reason"]
    assert failed[2]["id"] == "ex-98" and "expected[0]" in failed[2]["reason"]
    assert all(f["stage"] == "validate" and f["file"] == str(src) for f in failed)
    # normalised output: defaults filled in, lineage recorded
    first = rows(out)[0]
    assert first["snapshot"]["editable"] == [0, len(first["snapshot"]["text"])]
    assert first["lineage"][-1]["stage"] == "validate" and first["lineage"][-1]["config"].startswith("sha256:")
    # nothing left behind but the results and the manifest
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("c.sqlite")) == [
        "in.jsonl", "out.failed.jsonl", "out.jsonl", "out.jsonl.manifest.json"]


def test_cache_hits_on_rerun_make_no_calls(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", 50)
    cache = tmp_path / "cache.sqlite"
    cfg = {"drop_every": 5, "fail_every": 7}
    first = run_stage(Tag(cfg), src, tmp_path / "a.jsonl", cache_path=cache, concurrency=1, progress=False)
    assert first.from_cache == 0 and first.stats["calls"] == 50
    second = run_stage(Tag(cfg), src, tmp_path / "b.jsonl", cache_path=cache, concurrency=1, progress=False)
    # 10 dropped (0,5,...,45) are cached too; the 6 failures (7,14,...,42 not multiple of 5... ) are not
    failures = [i for i in range(50) if i % 7 == 0 and i % 5 != 0]
    assert second.failed == len(failures) == first.failed
    assert second.dropped == first.dropped == 10
    assert second.from_cache == 50 - len(failures)
    assert second.stats.get("calls", 0) == len(failures)  # only failures are retried

    def strip(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "lineage"}

    assert [strip(r) for r in rows(tmp_path / "a.jsonl")] == [strip(r) for r in rows(tmp_path / "b.jsonl")]
    assert rows(tmp_path / "b.jsonl")[0]["lineage"][-1]["cached"] is True
    assert rows(tmp_path / "b.jsonl")[0]["snapshot"]["text"].startswith("DEF F1")
    # another config is another cache entry
    third = run_stage(Tag({**cfg, "tag": "other"}), src, tmp_path / "c.jsonl", cache_path=cache,
                      concurrency=1, progress=False)
    assert third.from_cache == 0 and rows(tmp_path / "c.jsonl")[0]["source"]["tags"] == ["other"]
    # the key covers only the fields the stage reads: a new id with the same snapshot is a hit
    with open(tmp_path / "renamed.jsonl", "wb") as fh:
        for i in range(3):
            r = record(1 + i)
            r["id"] = f"renamed-{1 + i}"
            fh.write(orjson.dumps(r) + b"\n")
    fourth = run_stage(Tag(cfg), tmp_path / "renamed.jsonl", tmp_path / "d.jsonl", cache_path=cache,
                       concurrency=1, progress=False)
    assert fourth.from_cache == 3 and ids(tmp_path / "d.jsonl") == ["renamed-1", "renamed-2", "renamed-3"]
    # --no-cache computes everything again
    fifth = run_stage(Tag(cfg), src, tmp_path / "e.jsonl", cache=False, concurrency=1, progress=False)
    assert fifth.from_cache == 0 and fifth.stats["calls"] == 50


def test_stage_errors_are_quarantined_and_run_goes_on(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", 30)
    out = tmp_path / "out.jsonl"
    summary = run_stage(Tag({"fail_every": 10, "crash_every": 7}), src, out,
                        cache_path=tmp_path / "c.sqlite", concurrency=1, progress=False)
    failed = rows(failed_path(out))
    assert [f["id"] for f in failed] == ["ex-0", "ex-7", "ex-10", "ex-14", "ex-20", "ex-21", "ex-28"]
    assert failed[0]["reason"] == "example 0 is not liked"
    assert failed[1]["reason"] == "ZeroDivisionError: division by zero"
    assert failed[1]["line"] == 8 and failed[1]["record"] == record(7)
    assert summary.failed == 7 and summary.written == 23
    with pytest.raises(RunError, match="fail-fast.*example 0 is not liked"):
        run_stage(Tag({"fail_every": 10}), src, tmp_path / "ff.jsonl", cache=False, concurrency=1,
                  fail_fast=True, progress=False)


def test_process_pool_matches_inline(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", 400, bad={100: b"nope"})
    cfg = {"drop_every": 9, "fail_every": 13}
    inline = run_stage(Tag(cfg), src, tmp_path / "a.jsonl", cache=False, concurrency=1, progress=False)
    pooled = run_stage(Tag(cfg), src, tmp_path / "b.jsonl", cache=False, concurrency=2, progress=False)
    assert inline.stats == pooled.stats and inline.stats["calls"] == 400
    assert (inline.written, inline.dropped, inline.failed) == (pooled.written, pooled.dropped, pooled.failed)
    assert ids(tmp_path / "a.jsonl") == ids(tmp_path / "b.jsonl")
    assert rows(failed_path(tmp_path / "a.jsonl")) == rows(failed_path(tmp_path / "b.jsonl"))


def test_async_stage_keeps_input_order(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", 120)
    out = tmp_path / "out.jsonl"
    summary = run_stage(AsyncTag({"fail_every": 50}), src, out, cache_path=tmp_path / "c.sqlite",
                        concurrency=8, progress=False)
    assert ids(out) == [f"ex-{i}" for i in range(120) if i % 50]
    assert summary.failed == 3 and summary.stats["calls"] == 120
    again = run_stage(AsyncTag({"fail_every": 50}), src, out, cache_path=tmp_path / "c.sqlite",
                      concurrency=8, progress=False)
    assert again.from_cache == 117 and again.stats["calls"] == 3


def test_gzip_in_and_out(tmp_path: Path) -> None:
    import gzip

    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wb") as fh:
        for i in range(10):
            fh.write(orjson.dumps(record(i)) + b"\n")
    out = tmp_path / "out.jsonl.gz"
    run_stage(get_stage("validate")(), src, out, progress=False, cache=False)
    assert ids(out) == [f"ex-{i}" for i in range(10)]
    assert not sidecar_paths(out)["partial"].exists()


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_input(tmp_path / "in.jsonl", 200, bad={50: b"[not an object]"})
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "c.sqlite"
    stage = Tag({"fail_every": 40})
    monkeypatch.setenv("RUNNER_TEST_INTERRUPT_AT", "120")
    with pytest.raises(KeyboardInterrupt):
        run_stage(stage, src, out, cache_path=cache, concurrency=1, progress=False, checkpoint_every=0.0)
    paths = sidecar_paths(out)
    assert not out.exists() and paths["partial"].exists() and paths["checkpoint"].exists()
    done_before = len(ids(paths["partial"]))
    assert 0 < done_before < 200
    with open(paths["partial"], "ab") as fh:  # a torn last line, as if killed in the middle of a write
        fh.write(b'{"id": "ex-12')
    monkeypatch.delenv("RUNNER_TEST_INTERRUPT_AT")
    summary = run_stage(Tag({"fail_every": 40}), src, out, cache_path=cache, concurrency=1, progress=False)
    assert summary.resumed > 0
    expected_ids = [f"ex-{i}" for i in range(200) if i % 40]
    assert ids(out) == expected_ids
    assert [f["line"] for f in rows(failed_path(out))] == [1, 41, 51, 82, 122, 162]
    assert (summary.written, summary.failed) == (len(expected_ids), 6)
    assert not paths["partial"].exists() and not paths["checkpoint"].exists()


def test_second_run_on_same_output_is_refused(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", 5)
    out = tmp_path / "out.jsonl"
    partial = sidecar_paths(out)["partial"]
    with open(partial, "wb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # what a running engine holds
        with pytest.raises(RunError, match="another run is writing"):
            run_stage(Tag(), src, out, cache=False, progress=False)


def _run_cli(args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "nextedit", *args], env=env, **kw)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_resume_after_sigkill(tmp_path: Path, jobs: str) -> None:
    n = 300
    src = write_input(tmp_path / "in.jsonl", n, bad={77: b"{oops"})
    out = tmp_path / "out.jsonl"
    cfg = tmp_path / "slow.toml"
    cfg.write_text("delay = 0.005\nfail_every = 50\n")
    args = ["run", "runner_stages:Tag", str(src), "-o", str(out), "--config", str(cfg), "-j", jobs,
            "--cache", str(tmp_path / "c.sqlite"), "--no-progress", "--json", "--checkpoint-every", "0.1"]
    checkpoint = sidecar_paths(out)["checkpoint"]

    def progress() -> int:
        ck = checkpoint.exists() and orjson.loads(checkpoint.read_bytes() or b"{}") or {}
        return int(ck.get("line", 0))

    kills = 0
    # Kill twice at different points. Examples from `gate` on block (the stage sleeps; the gate is
    # an environment variable, not config, so the reruns resume), so a run cannot finish before
    # the kill however loaded the machine is; the kill lands while chunks are in flight.
    for target, gate in ((60, 150), (170, 260)):
        proc = _run_cli(args, env={"RUNNER_TEST_GATE_AT": str(gate)},
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while progress() < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 2 and not out.exists(), (kills, progress())
    proc = _run_cli(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()
    summary = orjson.loads(stdout)
    got = ids(out)
    want = [f"ex-{i}" for i in range(n) if i % 50]
    assert len(got) == len(set(got)), sorted(x for x in set(got) if got.count(x) > 1)  # nothing duplicated
    assert got == want, (sorted(set(want) - set(got)), summary)  # nothing lost, order kept
    failed = rows(failed_path(out))
    assert sorted(f["line"] for f in failed) == [1, 51, 78, 102, 152, 202, 252]
    assert summary["resumed"] > 0 and summary["failed"] == 7


def test_crash_while_finishing_is_completed_by_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nextedit.pipeline import engine

    src = write_input(tmp_path / "in.jsonl", 30, bad={3: b"x"})
    out = tmp_path / "out.jsonl"
    real = engine._write_manifest

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the renames, before the checkpoint is removed

    monkeypatch.setattr(engine, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        run_stage(Tag(), src, out, cache=False, concurrency=1, progress=False)
    paths = sidecar_paths(out)
    assert out.exists() and paths["checkpoint"].exists() and not paths["partial"].exists()
    monkeypatch.setattr(engine, "_write_manifest", real)
    summary = run_stage(Tag(), src, out, cache=False, concurrency=1, progress=False)
    assert summary.stats == {"calls": 30}  # the counts of the run that did the work
    assert summary.resumed == 31 and summary.processed == 30 and summary.failed == 1
    assert ids(out) == [f"ex-{i}" for i in range(30)]
    assert len(rows(failed_path(out))) == 1
    assert paths["manifest"].exists() and not paths["checkpoint"].exists() and not paths["partial"].exists()


def test_checkpoint_of_another_config_is_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = write_input(tmp_path / "in.jsonl", 40)
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("RUNNER_TEST_INTERRUPT_AT", "25")
    with pytest.raises(KeyboardInterrupt):
        run_stage(Tag({"tag": "a"}), src, out, cache=False, concurrency=1, progress=False, checkpoint_every=0.0)
    monkeypatch.delenv("RUNNER_TEST_INTERRUPT_AT")
    summary = run_stage(Tag({"tag": "b"}), src, out, cache=False, concurrency=1, progress=False)
    assert "differ; starting over" in capsys.readouterr().err
    assert summary.resumed == 0 and summary.stats == {"calls": 40}
    assert [r["source"]["tags"] for r in rows(out)] == [["b"]] * 40


def test_cached_delta_survives_in_place_mutation_of_unknown_fields(tmp_path: Path) -> None:
    from runner_stages import Extra

    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps({**record(i), "meta": {"k": i}}) for i in range(5)) + b"\n")
    cache = tmp_path / "c.sqlite"
    run_stage(Extra(), src, tmp_path / "a.jsonl", cache_path=cache, concurrency=1, progress=False)
    again = run_stage(Extra(), src, tmp_path / "b.jsonl", cache_path=cache, concurrency=1, progress=False)
    assert again.from_cache == 5
    assert [r["meta"] for r in rows(tmp_path / "b.jsonl")] == [{"k": i, "seen": 1} for i in range(5)]
    assert [r["meta"] for r in rows(tmp_path / "a.jsonl")] == [{"k": i, "seen": 1} for i in range(5)]


def test_validate_stage_options(tmp_path: Path) -> None:
    from nextedit.pipeline.validate import Validate
    from nextedit.record import parse_example

    base = record(1)
    exp = base["expected"][0]
    dup = parse_example({**base, "expected": [exp, exp, ""], "expected_cursors": [5, 6, None]})
    v = Validate()
    out = v.process(dup)
    assert out is not None and out.expected == [exp, ""] and out.expected_cursors == [5, None]
    assert v.stats == {"expected_deduped": 1, "valid": 1}

    bad_history = parse_example({**base, "snapshot": {**base["snapshot"], "history": [
        {"path": "m.py", "diff": "this is not a diff"}]}})
    with pytest.raises(StageError, match=r"field snapshot\.history\[0\]\.diff: line 1"):
        Validate().process(bad_history)
    assert Validate({"check_history": False}).process(bad_history) is not None
    assert Validate({"on_invalid": "drop", "max_text_chars": 5}).process(parse_example(base)) is None
    with pytest.raises(StageError, match="max_text_chars=5"):
        Validate({"max_text_chars": 5}).process(parse_example(base))
    wrong = parse_example({**base, "predictions": [{"provider": "p", "patch": "@@ -1,1 +1,1 @@\n-nope\n+x\n"}]})
    assert Validate().process(wrong) is not None  # predictions are not checked by default
    with pytest.raises(StageError, match=r"predictions\[0\]\.patch"):
        Validate({"check_predictions": True}).process(wrong)


def test_plain_progress_lines() -> None:
    import io

    from nextedit.pipeline.progress import PlainProgress

    stream = io.StringIO()
    p = PlainProgress(every=0.0, stream=stream)
    p.start("tag", 200)
    p.update(50, cached=10, failed=2, dropped=1)
    p.stop()
    line = stream.getvalue().strip()
    assert line.startswith("tag: 50/200 (25%), ") and "ex/s, ETA " in line
    assert line.endswith("cached 10, failed 2, dropped 1")


def test_stage_lookup_errors_and_missing_requirements(tmp_path: Path) -> None:
    from nextedit.pipeline import StageNotFound

    with pytest.raises(StageNotFound, match="has no 'Nope'"):
        get_stage("runner_stages:Nope")
    with pytest.raises(StageNotFound, match="not a nextedit.pipeline.Stage subclass"):
        get_stage("json:dumps")
    with pytest.raises(StageNotFound, match="cannot import module 'no_such_module_xyz'"):
        get_stage("no_such_module_xyz:Stage")
    with pytest.raises(StageNotFound, match=r"unknown stage 'nope' \(known: .*validate"):
        get_stage("nope")
    assert get_stage("runner_stages:Tag") is Tag

    class NeedsPackage(Tag):
        requires = (("no_such_package_xyz", "nextedit[extra]"),)

    src = write_input(tmp_path / "in.jsonl", 2)
    with pytest.raises(RunError, match=r"needs the Python package 'no_such_package_xyz': pip install 'nextedit\[extra\]'"):
        run_stage(NeedsPackage(), src, tmp_path / "out.jsonl", cache=False, progress=False)


def test_stage_close_runs_in_every_process(tmp_path: Path) -> None:
    from runner_stages import Closing

    src = write_input(tmp_path / "in.jsonl", 40)
    log = tmp_path / "closed.txt"
    # the tag doubles as the log path: each output also carries it
    run_stage(Closing({"tag": str(log)}), src, tmp_path / "a.jsonl", cache=False, concurrency=1, progress=False)
    assert log.read_text().splitlines() == [str(os.getpid())]
    log.unlink()
    run_stage(Closing({"tag": str(log)}), src, tmp_path / "b.jsonl", cache=False, concurrency=2, progress=False)
    pids = log.read_text().splitlines()
    assert len(pids) == 3 and str(os.getpid()) in pids  # the main process and both workers


def test_unordered_io_run_writes_each_result_once_and_resumes(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    n = 150
    src = write_input(tmp_path / "in.jsonl", n, bad={30: b"nope"})
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "c.sqlite"
    want = {f"ex-{i}" for i in range(n) if i % 50}
    # every 10th example is slow: unordered output lets the others overtake it
    full = run_stage(AsyncTag({"fail_every": 50}), src, tmp_path / "full.jsonl", cache=False,
                     concurrency=8, ordered=False, progress=False)
    got = ids(tmp_path / "full.jsonl")
    assert sorted(got) == sorted(want) and len(got) == len(want) and got != sorted(got, key=lambda x: int(x[3:]))
    assert full.failed == 4  # 0, 50, 100 and the bad line
    monkeypatch.setenv("RUNNER_TEST_INTERRUPT_AT", "97")
    with pytest.raises(KeyboardInterrupt):
        run_stage(AsyncTag({"fail_every": 50}), src, out, cache_path=cache, concurrency=8, ordered=False,
                  progress=False, checkpoint_every=0.0)
    ck = orjson.loads(sidecar_paths(out)["checkpoint"].read_bytes())
    assert ck["line"] > 0 and ck["done_after"]  # results beyond the watermark were already written
    monkeypatch.delenv("RUNNER_TEST_INTERRUPT_AT")
    summary = run_stage(AsyncTag({"fail_every": 50}), src, out, cache_path=cache, concurrency=8,
                        ordered=False, progress=False)
    got = ids(out)
    assert len(got) == len(set(got)) and set(got) == want
    assert sorted(f["line"] for f in rows(failed_path(out))) == [1, 31, 52, 102]
    assert summary.resumed > 0 and summary.failed == 4 and summary.written == len(want)
