"""The Ray engine against the local engine, on real Ray in local mode (two CPUs): the same records as a
multiset, the same quarantine reasons, resume after a crashed task, a cluster-wide budget, pipeline files."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from llm_server import LLMServer
from runner_stages import AsyncTag, Tag
from test_runner import write_input

from nextedit.pipeline import Step, run_pipeline, run_stage
from nextedit.pipeline.engine import sidecar_paths
from nextedit.pipeline.pipeline_file import run_pipeline as run_pipeline_file

ray = pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


@pytest.fixture(scope="module")
def crash_flag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flags") / "crash-at"


@pytest.fixture(scope="module", autouse=True)
def ray_local(crash_flag: Path):
    """One local Ray (two CPUs) for the whole module: starting Ray costs seconds and ~1.5 GB."""
    path = os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "RUNNER_TEST_CRASH_FILE": str(crash_flag)}})
    yield
    ray.shutdown()


def _records(path: Path) -> list[bytes]:
    """The records of a file as a sorted multiset, without lineage (it carries run times)."""
    out = []
    for line in path.read_bytes().splitlines():
        d = orjson.loads(line)
        d.pop("lineage", None)
        out.append(orjson.dumps(d, option=orjson.OPT_SORT_KEYS))
    return sorted(out)


def _failures(path: Path) -> list[tuple[int, str]]:
    return sorted((r["line"], r["reason"]) for r in map(orjson.loads, path.read_bytes().splitlines()))


@pytest.mark.parametrize("stage", [Tag({"fail_every": 7, "drop_every": 11, "crash_every": 13}),
                                   AsyncTag({"fail_every": 9})], ids=["cpu", "io"])
def test_ray_gives_the_same_records_and_quarantine_as_local(tmp_path: Path, stage) -> None:
    src = write_input(tmp_path / "in.jsonl", 120, bad={4: b"{nope", 30: b'{"id": 3}'})
    local = run_stage(stage, src, tmp_path / "local.jsonl", cache=False, concurrency=1, progress=False)
    remote = run_stage(stage, src, tmp_path / "ray.jsonl", cache_path=tmp_path / "cache.d", engine="ray",
                       progress=False)
    assert remote.engine == "ray"
    assert _records(tmp_path / "ray.jsonl") == _records(tmp_path / "local.jsonl")
    assert _failures(tmp_path / "ray.failed.jsonl") == _failures(tmp_path / "local.failed.jsonl")
    assert (remote.processed, remote.failed, remote.dropped, remote.written) == (
        local.processed, local.failed, local.dropped, local.written)
    assert not (tmp_path / "ray.jsonl.parts").exists()  # the shards were joined and removed
    again = run_stage(stage, src, tmp_path / "again.jsonl", cache_path=tmp_path / "cache.d", engine="ray",
                      progress=False)
    assert again.from_cache == remote.processed  # every result came from the shared folder cache
    assert _records(tmp_path / "again.jsonl") == _records(tmp_path / "local.jsonl")


def test_a_crashed_task_is_resumed_from_the_finished_shards(tmp_path: Path, crash_flag: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTEDIT_RAY_SHARD_SIZE", "20")
    src = write_input(tmp_path / "in.jsonl", 100)
    out = tmp_path / "out.jsonl"
    crash_flag.write_text("77")
    try:
        with pytest.raises(Exception, match="SimulatedCrash"):
            run_stage(Tag(), src, out, cache=False, engine="ray", progress=False)
    finally:
        crash_flag.unlink()
    parts = out.with_name(out.name + ".parts")
    assert not out.exists() and len(list(parts.glob("*.done.json"))) >= 1
    summary = run_stage(Tag(), src, out, cache=False, engine="ray", progress=False)
    assert summary.resumed > 0 and summary.written == 100
    assert [r["id"] for r in map(orjson.loads, out.read_bytes().splitlines())] == [f"ex-{i}" for i in range(100)]
    assert summary.stats["calls"] == 100  # counters of the finished shards were kept, none counted twice


def _teacher(server: LLMServer, tmp_path: Path, **extra):
    from nextedit.teacher.stages import TeacherStage

    prices = tmp_path / "prices.toml"
    prices.write_text('[models."pricey"]\ninput = 1000.0\noutput = 1000.0\n')
    return TeacherStage({"provider": f"openai-compatible:{server.openai_url}#pricey", "max_tokens": 20,
                         "client": {"prices": str(prices), "cache": False, "max_retries": 0}, **extra})


def test_the_budget_holds_for_the_whole_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTEDIT_RAY_SHARD_SIZE", "10")
    src = write_input(tmp_path / "in.jsonl", 40)
    with LLMServer() as server:
        stage = _teacher(server, tmp_path)
        probe = run_stage(stage, write_input(tmp_path / "one.jsonl", 1), tmp_path / "one.out.jsonl", cache=False,
                          progress=False)
        per_request = probe.spent_usd
        assert per_request > 0
        limit = per_request * 6.5  # room for six requests, whichever worker sends them
        summary = run_stage(_teacher(server, tmp_path, max_cost_usd=limit), src, tmp_path / "out.jsonl",
                            cache=False, engine="ray", progress=False)
        sent = server.count("/v1/chat/completions") - 1
    assert summary.spent_usd <= limit
    assert sent <= 6 and summary.failed == 40 - sent
    reasons = {r["reason"] for r in map(orjson.loads, (tmp_path / "out.failed.jsonl").read_bytes().splitlines())}
    assert all("--max-cost-usd" in r for r in reasons)
    assert any("whole cluster" in r for r in reasons)  # refused by the one budget every worker consults


def test_pipeline_file_with_engine_ray_and_in_memory_steps(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", 30)
    (tmp_path / "p.toml").write_text(
        'input = "in.jsonl"\nengine = "ray"\ncache = "cache.d/"\n'
        '[[stage]]\nname = "runner_stages:Tag"\noutput = "a.jsonl"\nconfig = {tag = "x"}\n'
        '[[stage]]\nname = "validate"\noutput = "b.jsonl"\nconfig = {check_expected = false}\n')  # Tag changes the text
    summaries = run_pipeline_file(tmp_path / "p.toml")
    assert [s.engine for s in summaries] == ["ray", "ray"] and summaries[0].written == 30
    from nextedit.pipeline.validate import Validate

    local = run_pipeline([Step(Tag({"tag": "x"}), tmp_path / "la.jsonl"), Step(Validate({"check_expected": False}), tmp_path / "lb.jsonl")],
                         input=src, cache=False)
    assert [s.engine for s in local] == ["local", "local"]
    assert _records(tmp_path / "a.jsonl") == _records(tmp_path / "la.jsonl")
    assert _records(tmp_path / "b.jsonl") == _records(tmp_path / "lb.jsonl")
    assert (summaries[-1].written, summaries[-1].failed) == (local[-1].written, local[-1].failed) == (30, 0)
    assert (tmp_path / "cache.d").is_dir() and sidecar_paths(tmp_path / "b.jsonl")["manifest"].exists()
