"""The planted-secret corpus (tests/secret_corpus.py) through every path that sends or stores text: each
secret is looked for in the bytes a local provider receives (teacher, judge, repair, openai-compatible
predict), in every row the server stores, and in `format --scrub` rows; ordinary code passes unchanged."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from llm_server import LLMServer
from secret_corpus import CLEAN, HEX, PLANTED, PlantedFile, all_secrets, r, up
from typer.testing import CliRunner

from nextedit import patch as patchlib
from nextedit.cli import app
from nextedit.jsonl import read_dicts, write_examples
from nextedit.predictors import get_predictor
from nextedit.privacy.records import scrub_example
from nextedit.privacy.scrub import Scrubber, find_secrets
from nextedit.record import (
    Example,
    HistoryEvent,
    Prediction,
    RelatedExcerpt,
    Snapshot,
    Source,
)
from nextedit.serve.config import parse_config
from nextedit.serve.testing import ServerThread
from nextedit.teacher.checks import ChecksConfig
from nextedit.teacher.common import LLMConfig, PrivacyConfig, make_client
from nextedit.teacher.generate import teacher_predictions
from nextedit.teacher.judge import JudgeOptions, judge_prediction
from nextedit.teacher.prompt import PromptOptions
from nextedit.teacher.repair import RepairOptions, repair_example

SECRETS = [value for _, _, value in all_secrets()]
#: Tokens a predicted edit adds (in a line that fits any file): the judge and repair prompts show them.
ADDED = [f"ghp_{r(36)} sk_live_{r(24)} AKIA{up(16)} xoxp-{r(10, '0123456789')}-{r(12, '0123456789')}-{r(32, HEX)}"
         for _ in PLANTED]


def test_the_corpus_is_big_and_varied():
    kinds = {kind for _, kind, _ in all_secrets()}
    types = {ftype for ftype, _, _ in all_secrets()}
    assert len(SECRETS) >= 60 and len(set(SECRETS)) == len(SECRETS)
    assert len(kinds) >= 15 and len(types) >= 15
    assert {"env", "credentials", "yml", "yaml", "json", "sh", "xml", "config", "pem", "py", "properties"} <= types


def leaks(blob: str) -> list[str]:
    """Planted secrets found in a text, raw or as they look inside a JSON string."""
    tokens = SECRETS + [t for line in ADDED for t in line.split()]
    return [s for s in tokens if s in blob or json.dumps(s)[1:-1] in blob]


@pytest.mark.parametrize("planted", PLANTED, ids=[f.path for f in PLANTED])
def test_each_file_loses_every_secret_and_gets_them_back(planted: PlantedFile):
    scrubber = Scrubber()
    out = scrubber.scrub(planted.text, path=planted.path)
    assert [v for _, v in planted.secrets if v in out] == []
    assert out.count("\n") == planted.text.count("\n")  # line numbers survive
    assert scrubber.unscrub(out) == planted.text


@pytest.mark.parametrize(("path", "text"), CLEAN, ids=[p for p, _ in CLEAN])
def test_ordinary_code_and_config_pass_unchanged(path: str, text: str):
    assert find_secrets(text, path=path) == []
    assert Scrubber().scrub(text, path=path) == text


def corpus_examples() -> list[Example]:
    """Each planted file as the cursor file, with the next one as a related excerpt and the one after
    that added in the edit history (a diff), so every route into a prompt carries secrets."""
    out = []
    n = len(PLANTED)
    for i, f in enumerate(PLANTED):
        rel, hist = PLANTED[(i + 1) % n], PLANTED[(i + 2) % n]
        diff = patchlib.make("", hist.text, path=hist.path)
        cursor = f.text.index("\n") + 1
        snap = Snapshot(path=f.path, text=f.text, cursor=cursor,
                        related=[RelatedExcerpt(path=rel.path, text=rel.text, source="bm25")],
                        history=[HistoryEvent(path=hist.path, diff=diff)])
        out.append(Example(id=f"ex{i}", snapshot=snap, source=Source(license="MIT OR Apache-2.0")))
    return out


@pytest.fixture
def provider(tmp_path):
    with LLMServer() as server:
        llm = LLMConfig(provider=f"openai-compatible:{server.openai_url}#m",
                        client={"cache_path": str(tmp_path / "llm.sqlite"), "backoff_s": 0.01, "timeout_s": 10.0})
        yield server, llm


def test_no_planted_secret_reaches_the_provider_through_teacher_judge_and_repair(provider):
    server, llm = provider
    examples = corpus_examples()
    privacy = PrivacyConfig(licenses=["MIT"])  # an SPDX expression passes on one allowed side

    async def go() -> None:
        client = make_client(llm)
        for ex in examples:
            ex.predictions = await teacher_predictions(ex, client, llm, privacy=privacy)
            # A prediction that adds secrets of its own, for the judge and the repair conversation.
            added = f"rotated keys: {ADDED[int(ex.id[2:])]}\n"
            patch = patchlib.make(ex.snapshot.text, ex.snapshot.text + added, path=ex.snapshot.path)
            ex.predictions.append(Prediction(provider="teacher:x", raw="r", patch=patch))
            await judge_prediction(ex, len(ex.predictions) - 1, client, llm, options=JudgeOptions(), privacy=privacy)
        await repair_example(examples[0], client, llm, options=RepairOptions(max_rounds=1),
                             checks=ChecksConfig(),
                             prompt_options=PromptOptions(), privacy=privacy)
        await client.aclose()

    asyncio.run(go())
    bodies = [json.dumps(r.body, ensure_ascii=False) for r in server.requests() if r.method == "POST"]
    assert len(bodies) >= 2 * len(examples)
    found = sorted({s for b in bodies for s in leaks(b)})
    assert found == []
    assert sum("<SECRET_" in b for b in bodies) >= 2 * len(examples)


def test_no_planted_secret_reaches_a_remote_openai_compatible_predictor(provider):
    server, _ = provider
    predictor = get_predictor(f"openai-compatible:{server.openai_url}#m", format="zeta1", endpoint="chat", scrub=True)

    async def go() -> None:
        for ex in corpus_examples():
            await predictor.predict_async(ex)

    asyncio.run(go())
    bodies = [json.dumps(r.body, ensure_ascii=False) for r in server.requests() if r.method == "POST"]
    assert len(bodies) == len(PLANTED) and sorted({s for b in bodies for s in leaks(b)}) == []
    local = get_predictor(f"openai-compatible:{server.openai_url}#m", format="zeta1")
    assert local.scrub is False  # a server on this machine sees the real text (no train/serve skew)
    assert get_predictor("openai-compatible:https://api.example.com/v1#m", format="zeta1").scrub is True


def test_no_planted_secret_is_stored_by_the_server(tmp_path):
    db = tmp_path / "events.db"
    config = parse_config({"store": str(db), "auth": {"api_keys": ["k"], "admin_token": "a"},
                           "arms": [{"name": "p", "backend": "propagate"}]})
    with ServerThread(config) as srv, httpx.Client(base_url=srv.url, headers={"Authorization": "Bearer k"},
                                                   timeout=30) as client:
        for ex in corpus_examples():
            body = {"snapshot": ex.snapshot.model_dump(mode="json"), "client_id": "c", "user_id": "u",
                    "collectable": True, "open_source": True}
            rid = client.post("/v1/predict", json=body).json()["request_id"]
            resp = client.post("/v1/events", json={"type": "settled", "request_id": rid, "collectable": True,
                                                   "settled_text": ex.snapshot.text})
            assert resp.status_code == 200
    conn = sqlite3.connect(db)
    stored = [row for table in ("requests", "events", "telemetry")
              for (row,) in conn.execute(f"SELECT payload FROM {table}")]
    conn.close()
    assert len(stored) >= 3 * len(PLANTED)
    assert sorted({s for row in stored for s in leaks(row)}) == []


def test_format_scrub_writes_no_planted_secret(tmp_path: Path):
    examples = []
    for ex in corpus_examples():
        snap = ex.snapshot
        new = snap.text.replace("\n", "\n# reviewed\n", 1)
        ex.expected = [patchlib.make(snap.text, new, path=snap.path)]
        examples.append(ex)
    src, out = tmp_path / "in.jsonl", tmp_path / "rows.jsonl"
    write_examples(src, examples)
    result = CliRunner().invoke(app, ["format", str(src), "-f", "zeta1", "-o", str(out), "--scrub"])
    assert result.exit_code == 0, result.output
    rows = [json.dumps(r, ensure_ascii=False) for r in read_dicts(out)]
    assert len(rows) == len(examples)  # every row passed the round-trip check on scrubbed text
    assert sorted({s for r in rows for s in leaks(r)}) == []
    plain = tmp_path / "plain.jsonl"
    assert CliRunner().invoke(app, ["format", str(src), "-f", "zeta1", "-o", str(plain)]).exit_code == 0
    assert any(leaks(json.dumps(r, ensure_ascii=False)) for r in read_dicts(plain))  # off by default


def test_scrubbed_examples_keep_valid_offsets_and_patches():
    for ex in corpus_examples():
        snap = ex.snapshot
        ex.expected = [patchlib.make(snap.text, snap.text + "DONE=1\n", path=snap.path)]
        ex.expected_cursors = [len(snap.text) + 6]
        clean = scrub_example(ex)
        assert leaks(clean.to_json().decode()) == []
        s = clean.snapshot
        assert s.text[s.cursor:] == snap.text[snap.cursor:] or "<SECRET_" in s.text[s.cursor:]
        after = patchlib.apply(clean.expected[0], s.text, start_line=s.start_line)
        assert after.endswith("DONE=1\n") and clean.expected_cursors[0] == len(after) - 1
