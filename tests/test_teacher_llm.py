"""Teacher, judge, repair and distill stages against a real local HTTP server (OpenAI and Anthropic wire
formats) with scripted answers and injected faults; caches; privacy guard on what is sent."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from llm_server import Fault, LLMServer

from nextedit import patch as P
from nextedit.jsonl import read_examples, write_examples
from nextedit.pipeline.engine import run_stage
from nextedit.predictors.base import get_predictor
from nextedit.record import Example, HistoryEvent, Snapshot, Source
from nextedit.teacher.prompt import MARK_CURSOR, MARK_END, MARK_START
from nextedit.teacher.stages import (
    ChecksStage,
    DistillStage,
    JudgeStage,
    RepairStage,
    TeacherStage,
)

SECRET = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB"
HISTORY = "@@ -1,1 +1,1 @@\n-def restock(item, amount):\n+def restock(item, qty):\n"
REGION = "def restock(item, qty):\n    item.count += amount\n    log(item, amount)\n"
GOOD = REGION.replace("amount", "qty")
REVERT = REGION.replace("qty", "amount")


def make_example(i: int, *, secret: bool = False, license: str | None = "MIT") -> Example:
    """A rename in progress: `amount` became `qty` in the signature; the body still says `amount`."""
    head = f'TOKEN = "{SECRET}"\n' if secret else "import logging\n"
    text = head + REGION
    path = f"pkg/mod{i}.py"
    return Example(id=f"ex{i}", source=Source(kind="git", license=license),
                   snapshot=Snapshot(path=path, text=text, start_line=0, cursor=len(head) + 20,
                                     editable=(len(head), len(text)),
                                     history=[HistoryEvent(path=path, diff=HISTORY.replace("-1,1 +1,1",
                                                                                           "-2,1 +2,1"))]))


def answer(region: str, *, say: str = "The user renamed amount to qty.") -> str:
    cut = region.index("\n") + 1
    return f"{say}\n\n`````python\n{MARK_START}\n{region[:cut]}{MARK_CURSOR}{region[cut:]}{MARK_END}\n`````\n"


class Script:
    """Replies per example path and request kind; the last action of a list repeats."""

    def __init__(self) -> None:
        self.actions: dict[tuple[str, str], list] = {}
        self.seen: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

    def set(self, path: str, kind: str, *actions) -> None:
        self.actions[(path, kind)] = list(actions)

    def __call__(self, api: str, body: dict) -> str | Fault:
        if api == "anthropic":
            system = "".join(b.get("text", "") for b in body.get("system") or [])
            messages = body["messages"]
        else:
            msgs = body["messages"]
            system = msgs[0]["content"] if msgs[0]["role"] in ("system", "developer") else ""
            messages = [m for m in msgs if m["role"] not in ("system", "developer")]
        first = messages[0]["content"]
        m = re.search(r"Current file\n\n`````(\S+)\n", first)
        path = m.group(1) if m else "?"
        kind = "judge" if "You review predictions" in system else ("repair" if len(messages) > 1 else "teacher")
        with self.lock:
            self.seen.append((path, kind, body))
            queue = self.actions.get((path, kind), ["good"])
            action = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(action, Fault):
            return action
        return {"good": answer(GOOD), "revert": answer(REVERT, say="Fixing the typo."),
                "keep": "My prediction was right.\n\n```\nKEEP_PREVIOUS\n```",
                "no_edits": "Nothing to do.\n\n```\nNO_EDITS\n```",
                "unsure": "I am not sure what the user wants here.",
                "ok_verdict": '```json\n{"reasoning": "continues the rename", "reverts_edits": false, '
                              '"confidence": 5}\n```',
                "bad_verdict": '```json\n{"reasoning": "puts amount back", "reverts_edits": true, '
                               '"confidence": 1}\n```',
                }.get(action, action)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def server(script: Script) -> Iterator[LLMServer]:
    with LLMServer(responder=script) as s:
        yield s


def client_options(tmp_path: Path, **kw) -> dict:
    return {"cache_path": str(tmp_path / "llm.sqlite"), "backoff_s": 0.01, "timeout_s": 5.0, "max_retries": 2, **kw}


def spec(server: LLMServer, wire: str) -> tuple[str, dict]:
    """(provider spec, extra client options) for a wire format."""
    if wire == "anthropic":
        return "anthropic:claude-sonnet-4-6", {"base_url": server.url, "api_key": "test-key"}
    if wire == "openai":
        return "openai:gpt-5", {"base_url": server.openai_url, "api_key": "test-key"}
    return f"openai-compatible:{server.openai_url}#local-model", {}


def run(stage, examples_or_path, out: Path, tmp_path: Path):
    if isinstance(examples_or_path, Path):
        inp = examples_or_path
    else:
        inp = out.with_suffix(".in.jsonl")
        write_examples(inp, examples_or_path)
    summary = run_stage(stage, inp, out, cache_path=tmp_path / "stage.sqlite", progress=False)
    stage.close()
    return summary, {ex.id: ex for ex in read_examples(out)}


def applied(ex: Example, index: int = 0) -> str:
    return P.apply(ex.predictions[index].patch, ex.snapshot.text, start_line=ex.snapshot.start_line)


# --------------------------------------------------------------------------------- faults, retries, cache

def test_teacher_survives_faults_with_bounded_retries_and_reruns_from_cache(server, script, tmp_path) -> None:
    examples = [make_example(i) for i in range(8)]
    script.set("pkg/mod0.py", "teacher", Fault.rate_limit(0.01), "good")
    script.set("pkg/mod1.py", "teacher", Fault.server_error(), "good")
    script.set("pkg/mod2.py", "teacher", Fault.truncated(), "good")
    script.set("pkg/mod3.py", "teacher", Fault.garbage(), "good")
    script.set("pkg/mod4.py", "teacher", Fault.delay(1.0), "good")  # past the 0.4 s timeout
    script.set("pkg/mod5.py", "teacher", Fault.server_error())  # always fails
    script.set("pkg/mod6.py", "teacher", "unsure")
    script.set("pkg/mod7.py", "teacher", "no_edits")
    provider, extra = spec(server, "openai-compatible")
    cfg = {"provider": provider, "client": client_options(tmp_path, timeout_s=0.4, **extra)}
    summary, out = run(TeacherStage(cfg), examples, tmp_path / "t.jsonl", tmp_path)

    assert summary.failed == 1 and summary.written == 7
    failed = [orjson.loads(line) for line in (tmp_path / "t.failed.jsonl").read_bytes().splitlines()]
    assert [(r["id"], r["stage"]) for r in failed] == [("ex5", "teacher")]
    assert "HTTP 500" in failed[0]["reason"] and "after 3 attempts" in failed[0]["reason"]
    for i in range(5):
        pred = out[f"ex{i}"].predictions[0]
        assert pred.provider == f"teacher:{provider}" and pred.error is None
        assert applied(out[f"ex{i}"]) == "import logging\n" + GOOD
        assert pred.usage.output_tokens > 0 and pred.prompt_version.startswith("p1-")
    assert out["ex6"].predictions[0].error.startswith("unparseable answer")
    assert out["ex6"].predictions[0].raw == "I am not sure what the user wants here."
    assert out["ex7"].predictions[0].patch == "" and out["ex7"].predictions[0].error is None
    # each fault cost exactly one retry; the permanent failure stopped after 1 + max_retries attempts
    assert server.count("/v1/chat/completions") == 5 * 2 + 3 + 1 + 1

    server.reset()
    again, out2 = run(TeacherStage(cfg), tmp_path / "t.in.jsonl", tmp_path / "t2.jsonl", tmp_path)
    assert server.count() == 3  # only ex5 is tried again (and fails again, bounded); the rest is cached
    assert again.from_cache == 7 and again.failed == 1
    assert {k: v.predictions for k, v in out2.items()} == {k: v.predictions for k, v in out.items()}


@pytest.mark.parametrize("wire", ["anthropic", "openai", "openai-compatible"])
def test_second_run_makes_no_request_and_samples_come_back(server, script, tmp_path, wire) -> None:
    provider, extra = spec(server, wire)
    examples = [make_example(i) for i in range(3)]
    script.set("pkg/mod1.py", "teacher", "good", "revert", "no_edits")
    cfg = {"provider": provider, "samples": 3, "client": client_options(tmp_path, **extra)}
    summary, out = run(TeacherStage(cfg), examples, tmp_path / "a.jsonl", tmp_path)
    assert summary.failed == 0
    assert [p.sample for p in out["ex1"].predictions] == [0, 1, 2]
    texts = sorted(applied(out["ex1"], i) if out["ex1"].predictions[i].patch else "" for i in range(3))
    assert texts == sorted(["import logging\n" + GOOD, "import logging\n" + REVERT, ""])
    requests = server.count()
    assert requests == (9 if wire == "anthropic" else 3)  # Anthropic has no n: one request per sample
    server.reset()
    # new stage cache: only the LLM request cache can answer
    cfg2 = {**cfg, "client": client_options(tmp_path, **extra)}
    summary2 = run_stage(TeacherStage(cfg2), tmp_path / "a.in.jsonl", tmp_path / "b.jsonl",
                         cache_path=tmp_path / "other-stage.sqlite", progress=False)
    assert summary2.failed == 0 and server.count() == 0


# ------------------------------------------------------------------------------------------ privacy

def test_secrets_never_leave_and_come_back_in_the_patch(server, script, tmp_path) -> None:
    provider, extra = spec(server, "anthropic")
    ex = make_example(0, secret=True)
    cfg = {"provider": provider, "client": client_options(tmp_path, **extra)}
    _, out = run(TeacherStage(cfg), [ex], tmp_path / "s.jsonl", tmp_path)
    bodies = [r.body for r in server.requests("/v1/messages")]
    assert bodies and all(SECRET not in json.dumps(b) for b in bodies)
    assert "<SECRET_GITHUB_TOKEN_1>" in json.dumps(bodies[0])
    pred = out["ex0"].predictions[0]
    assert pred.secrets_scrubbed == 1
    assert applied(out["ex0"]) == f'TOKEN = "{SECRET}"\n' + GOOD


def test_secret_inside_the_editable_region_is_restored(server, script, tmp_path) -> None:
    provider, extra = spec(server, "openai")
    text = f'KEY = "{SECRET}"\nvalue = 1\n'
    ex = Example(id="k", snapshot=Snapshot(path="cfg.py", text=text, cursor=0))
    # The model echoes the placeholder it saw and changes the other line.
    script.set("cfg.py", "teacher", f"`````\n{MARK_START}\nKEY = \"<SECRET_GITHUB_TOKEN_1>\"\n"
                                    f"value = 2{MARK_CURSOR}\n{MARK_END}\n`````")
    cfg = {"provider": provider, "client": client_options(tmp_path, **extra)}
    _, out = run(TeacherStage(cfg), [ex], tmp_path / "r.jsonl", tmp_path)
    pred = out["k"].predictions[0]
    assert applied(out["k"]) == text.replace("value = 1", "value = 2")
    assert f' KEY = "{SECRET}"\n' in pred.patch  # the patch is against the real text (context line)
    assert "<SECRET_" in pred.raw
    assert pred.cursor == len(text.replace("value = 1", "value = 2")) - 1
    assert all(SECRET not in json.dumps(r.body) for r in server.requests())


def test_license_allow_list_refuses_before_any_request(server, script, tmp_path) -> None:
    provider, extra = spec(server, "openai-compatible")
    examples = [make_example(0, license="MIT"), make_example(1, license="GPL-3.0"), make_example(2, license=None)]
    cfg = {"provider": provider, "client": client_options(tmp_path, **extra),
           "privacy": {"licenses": ["mit", "Apache-2.0"]}}
    summary, out = run(TeacherStage(cfg), examples, tmp_path / "l.jsonl", tmp_path)
    assert list(out) == ["ex0"] and summary.failed == 2
    assert summary.stats["refused_license"] == 2
    reasons = (tmp_path / "l.failed.jsonl").read_text()
    assert "'GPL-3.0' is not in the allow-list" in reasons and "'none' is not in the allow-list" in reasons
    assert {p for p, _, _ in script.seen} == {"pkg/mod0.py"}


# ------------------------------------------------------------------------------ checks, judge, repair

def test_checks_judge_repair_distill_over_the_anthropic_wire(server, script, tmp_path) -> None:
    provider, extra = spec(server, "anthropic")
    examples = [make_example(i) for i in range(5)]
    for i in (0, 1, 2):
        script.set(f"pkg/mod{i}.py", "teacher", "revert")
    script.set("pkg/mod0.py", "repair", "good")
    script.set("pkg/mod1.py", "repair", "keep", "good")  # KEEP_PREVIOUS is checked again: still a revert
    script.set("pkg/mod2.py", "repair", "revert")  # never fixed
    script.set("pkg/mod4.py", "judge", "bad_verdict")
    script.set("pkg/mod4.py", "repair", "no_edits")
    for i in range(5):
        script.set(f"pkg/mod{i}.py", "judge", "bad_verdict" if i == 4 else "ok_verdict")
    llm = {"provider": provider, "client": client_options(tmp_path, **extra)}

    _, out = run(TeacherStage(llm), examples, tmp_path / "1.jsonl", tmp_path)
    s2, out = run(ChecksStage(), tmp_path / "1.jsonl", tmp_path / "2.jsonl", tmp_path)
    assert s2.stats["fail:reversal"] == 3 and s2.stats["passed"] == 2
    fails = {c.code for c in out["ex0"].checks if not c.passed}
    assert fails == {"reversal"}

    judge = JudgeStage(llm)
    s3, out = run(judge, tmp_path / "2.jsonl", tmp_path / "3.jsonl", tmp_path)
    assert s3.stats["judged"] == 5 and s3.stats["judge_reverts"] == 1
    assert out["ex4"].predictions[0].judge["confidence"] == 1
    assert {c.code for c in out["ex4"].checks if not c.passed} == {"judge_reverts", "judge_low_confidence"}

    server.reset()
    repair = RepairStage({**llm, "max_rounds": 2})
    s4, out = run(repair, tmp_path / "3.jsonl", tmp_path / "4.jsonl", tmp_path)
    assert s4.failed == 0
    rounds = {k: [(p.round, p.provider.split(":")[0]) for p in ex.predictions if p.provider.startswith("repair:")]
              for k, ex in out.items()}
    assert rounds == {"ex0": [(1, "repair")], "ex1": [(1, "repair"), (2, "repair")],
                      "ex2": [(1, "repair"), (2, "repair")], "ex3": [], "ex4": [(1, "repair")]}
    assert s4.stats == {"repair_rounds": 6, "repaired": 3, "repair_failed": 1}
    keep = out["ex1"].predictions[1]
    assert keep.keep_previous and keep.patch == out["ex1"].predictions[0].patch
    assert server.count("/v1/messages") == 6  # bounded by max_rounds
    # round 2 continues the same conversation: teacher answer, repair 1, its answer, repair 2
    convo = [b for p, k, b in script.seen if p == "pkg/mod1.py" and k == "repair"][-1]
    roles = [m["role"] for m in convo["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    first_repair = convo["messages"][2]["content"]
    assert "`reversal`" in first_repair and "[-qty-]{+amount+}" in first_repair
    assert "deleted 1 tokens and inserted 1 tokens" in first_repair
    judged = next(b for p, k, b in script.seen if p == "pkg/mod4.py" and k == "repair")
    assert "confidence that the user would accept it: 1/5" in judged["messages"][2]["content"]

    d = DistillStage()
    s5, out = run(d, tmp_path / "4.jsonl", tmp_path / "5.jsonl", tmp_path)
    assert sorted(out) == ["ex0", "ex1", "ex3", "ex4"]
    assert s5.stats == {"kept": 4, "kept_repair": 3, "kept_teacher": 1, "kept_no_edits": 1,
                        "dropped": 1, "dropped:reversal": 1}
    for k in ("ex0", "ex1", "ex3"):
        ex = out[k]
        assert P.apply(ex.expected[0], ex.snapshot.text) == "import logging\n" + GOOD
        assert ex.predictions == [] and ex.checks == []
    assert out["ex4"].expected == [] and out["ex4"].distill["target"] == "repair"
    assert out["ex1"].distill["round"] == 2


def test_teacher_predictor_for_nextedit_predict(server, script, tmp_path) -> None:
    import asyncio

    provider, extra = spec(server, "openai-compatible")
    predictor = get_predictor(f"teacher:{provider}", client=client_options(tmp_path, **extra))
    preds = asyncio.run(predictor.predict_async(make_example(3), samples=2))
    assert [p.provider for p in preds] == [f"teacher:{provider}"] * 2
    assert all(p.patch and p.error is None for p in preds)


def test_nextedit_teacher_command_runs_the_chain(server, script, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from nextedit.cli import app

    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "stage.sqlite"))
    monkeypatch.setenv("NEXTEDIT_LLM_CACHE", str(tmp_path / "llm.sqlite"))
    script.set("pkg/mod0.py", "teacher", "revert")
    script.set("pkg/mod0.py", "repair", "good")
    script.set("pkg/mod2.py", "teacher", "revert")
    script.set("pkg/mod2.py", "repair", "revert")
    inp = tmp_path / "in.jsonl"
    write_examples(inp, [make_example(i) for i in range(3)])
    conf = tmp_path / "teacher.toml"
    conf.write_text('[teacher.client]\nbackoff_s = 0.01\n[repair.client]\nbackoff_s = 0.01\n'
                    '[checks]\nmax_reversal_ratio = 0.9\n')
    out = tmp_path / "final.jsonl"
    provider, _ = spec(server, "openai-compatible")
    result = CliRunner().invoke(app, ["teacher", str(inp), "-o", str(out), "--provider", provider,
                                      "--max-rounds", "1", "--max-cost-usd", "1", "--config", str(conf),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    kept = {ex.id: ex for ex in read_examples(out)}
    assert sorted(kept) == ["ex0", "ex1"]
    assert kept["ex0"].distill["target"] == "repair" and kept["ex1"].distill["target"] == "teacher"
    for name in ("teacher", "checks", "repair"):
        assert (tmp_path / f"final.{name}.jsonl").exists()
    assert server.count() == 3 + 2  # three teacher calls, one repair round for each failing example
    bad = CliRunner().invoke(app, ["teacher", str(inp), "-o", str(out), "--config", str(inp)])
    assert bad.exit_code == 2


def test_teacher_command_batch_flag_queues_a_job_on_disk(script, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from nextedit.cli import app

    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "stage.sqlite"))
    monkeypatch.setenv("NEXTEDIT_LLM_CACHE", str(tmp_path / "llm.sqlite"))
    with LLMServer(responder=script, batch_polls_until_done=1) as server:
        inp = tmp_path / "in.jsonl"
        write_examples(inp, [make_example(i) for i in range(2)])
        conf = tmp_path / "teacher.toml"
        conf.write_text(f'[teacher.client]\nbase_url = "{server.url}"\napi_key = "test-key"\n')
        jobs = tmp_path / "jobs"
        result = CliRunner().invoke(app, ["teacher", str(inp), "-o", str(tmp_path / "out.jsonl"), "--provider",
                                          "anthropic:claude-sonnet-4-6", "--max-rounds", "0", "--config",
                                          str(conf), "--batch", str(jobs), "--no-progress"])
        assert result.exit_code == 0, result.output
        (job,) = jobs.glob("*.batch.json")
        assert orjson.loads(job.read_bytes())["status"] in ("submitted", "pending")
        assert "nextedit batch collect" in (tmp_path / "out.teacher.failed.jsonl").read_text()


def test_batch_mode_queues_then_reruns_from_the_collected_cache(script, tmp_path, monkeypatch) -> None:
    import asyncio

    from nextedit.llm.batch import collect_job

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")  # collect rebuilds the client from the job file
    with LLMServer(responder=script, batch_polls_until_done=1) as server:
        provider, extra = spec(server, "anthropic")
        examples = [make_example(i) for i in range(3)]
        jobs = tmp_path / "jobs"
        cfg = {"provider": provider, "client": client_options(tmp_path, batch_dir=str(jobs), **extra)}
        first, _ = run(TeacherStage(cfg), examples, tmp_path / "b1.jsonl", tmp_path)
        assert first.failed == 3 and first.stats["batch_queued"] == 3
        assert "nextedit batch collect" in (tmp_path / "b1.failed.jsonl").read_text()
        (job,) = jobs.glob("*.batch.json")
        assert asyncio.run(collect_job(job)).stored == 3
        server.reset()
        cfg2 = {"provider": provider, "client": client_options(tmp_path, **extra)}
        second, out = run(TeacherStage(cfg2), tmp_path / "b1.in.jsonl", tmp_path / "b2.jsonl", tmp_path)
        assert second.failed == 0 and server.count() == 0
        assert all(applied(ex) == "import logging\n" + GOOD for ex in out.values())


def test_text_holding_the_prompt_markers_is_refused(server, script, tmp_path) -> None:
    provider, extra = spec(server, "openai-compatible")
    text = f'MARK = "{MARK_START}"\nx = 1\n'
    ex = Example(id="m", snapshot=Snapshot(path="tok.py", text=text, cursor=0))
    summary, out = run(TeacherStage({"provider": provider, "client": client_options(tmp_path, **extra)}),
                       [ex, make_example(0)], tmp_path / "m.jsonl", tmp_path)
    assert list(out) == ["ex0"] and summary.stats["refused_markers"] == 1
    assert "field snapshot.text: contains <|editable_region_start|>" in (tmp_path / "m.failed.jsonl").read_text()
    assert server.count() == 1


def test_teacher_predictor_errors_name_the_option() -> None:
    from nextedit.predictors.base import PredictorError

    with pytest.raises(PredictorError, match="needs a model spec"):
        get_predictor("teacher")
    with pytest.raises(PredictorError, match="option samples: Input should be a valid integer"):
        get_predictor("teacher:anthropic:m", samples="many")


def test_repair_rejudges_a_round_that_passes_the_checks(server, script, tmp_path) -> None:
    provider, extra = spec(server, "openai")
    script.set("pkg/mod0.py", "teacher", "revert")
    script.set("pkg/mod0.py", "repair", "good", "no_edits")
    script.set("pkg/mod0.py", "judge", "bad_verdict")
    llm = {"provider": provider, "client": client_options(tmp_path, **extra)}
    run(TeacherStage(llm), [make_example(0)], tmp_path / "t.jsonl", tmp_path)
    summary, out = run(RepairStage({**llm, "rejudge": True, "max_rounds": 3}), tmp_path / "t.jsonl",
                       tmp_path / "j.jsonl", tmp_path)
    ex = out["ex0"]
    rounds = [p for p in ex.predictions if p.provider.startswith("repair:")]
    assert [p.round for p in rounds] == [1, 2]
    assert rounds[0].judge["reverts_edits"] is True and not hasattr(rounds[1], "judge")
    assert {c.code for c in ex.checks if c.prediction == 1 and not c.passed} == {"judge_reverts",
                                                                                 "judge_low_confidence"}
    second = [b for p, k, b in script.seen if k == "repair"][-1]["messages"][-1]["content"]
    assert "`judge_reverts`" in second and "Reviewer's reasoning: puts amount back" in second
    assert summary.stats["repaired"] == 1 and summary.stats["judged"] == 1
