"""docs/feedback.md's rollout, run as written: its `kto.toml` trains a KTO student from a tiny SFT student, its
shadow-arm config serves it beside the student on a real uvicorn server, its 15%-arm config goes live through
`POST /admin/reload`, and `nextedit report production` compares the arms."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("fastapi")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
from eval_fixtures import dataset, rename_example
from feedback_fixtures import BAD, GOOD, TEXT, record
from tiny_model import build_tiny_model
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.feedback.simulate import Policy, drive, make_users
from nextedit.formats import get_format
from nextedit.jsonl import write_examples
from nextedit.serve.config import load_config as load_serve_config
from nextedit.serve.testing import ServerThread
from nextedit.train.export import METADATA_FILE, model_metadata

DOC = Path(__file__).parents[1] / "docs" / "feedback.md"
OPTIONS = {"editable_tokens": 64, "context_tokens": 32, "related_tokens": 0, "history_tokens": 64}
KEY, ADMIN = "k", "admin"


def doc_blocks() -> tuple[str, str, str]:
    """The page's TOML blocks: the KTO training config, the shadow-arm and the 15%-arm serve configs."""
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 3, "docs/feedback.md should hold kto.toml, the shadow stage and the 15% stage"
    return blocks[0], blocks[1], blocks[2]


def serve_config(block: str, student: Path, kto: Path, db: Path) -> str:
    """A documented arms block on the test's models (short answers), with a store and keys."""
    small = "\noptions = {max_new_tokens = 24, threads = 1}"
    arms = (block.replace('"local:runs/student/merged"', f'"local:{student}"{small}')
            .replace('"local:runs/kto/merged"', f'"local:{kto}"{small}'))
    assert arms != block
    return (f'store = "{db}"\nshared = "memory"\nsalt = "rollout"\n[auth]\napi_keys = ["{KEY}"]\n'
            f'admin_token = "{ADMIN}"\n\n{arms}')


def report(cfg: Path, out: Path) -> dict:
    result = CliRunner().invoke(app, ["report", "production", "--config", str(cfg), "--json", str(out)])
    assert result.exit_code == 0, result.output
    return {a["name"]: a for a in json.loads(out.read_text())["arms"]}


@pytest.fixture(scope="module")
def kto_student(tmp_path_factory) -> tuple[Path, Path]:
    """The docs' kto.toml, on a random tiny SFT student and a few feedback records (2 steps)."""
    root = tmp_path_factory.mktemp("rollout")
    student = build_tiny_model(root / "runs" / "student" / "merged")
    fmt = get_format("zeta1")
    meta = model_metadata(format_name=fmt.name, format_version=fmt.version, format_options=OPTIONS,
                          base_model="tiny", method="full", stop=list(fmt.stop))
    (student / METADATA_FILE).write_text(json.dumps(meta))
    records = [record(0, "accepted", GOOD, GOOD), record(1, "rejected", BAD, GOOD), record(2, "rejected", BAD, TEXT)]
    (root / "feedback.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records * 2))
    (root / "feedback.eval.jsonl").write_text(records[1].model_dump_json() + "\n")
    write_examples(root / "train.jsonl", dataset(2, 1, 1))
    toml = root / "kto.toml"
    # Relative paths resolve against the config's folder; only the step budget is cut for the test.
    toml.write_text(doc_blocks()[0].replace("max_steps = -1", "max_steps = 2"))
    result = CliRunner().invoke(app, ["train", str(toml)])
    assert result.exit_code == 0, result.output
    kto = root / "runs" / "kto" / "merged"
    assert json.loads((kto / METADATA_FILE).read_text())["method"] == "kto"
    return student, kto


def test_the_documented_rollout_shadow_then_15_percent_then_report(kto_student, tmp_path):
    student, kto = kto_student
    shadow_block, live_block = doc_blocks()[1:]
    cfg, db = tmp_path / "serve.toml", tmp_path / "events.db"
    cfg.write_text(serve_config(shadow_block, student, kto, db))
    policy = Policy(accept_threshold=0.0, noise=0.5, ignore=0.0)  # a random model: accept or reject at random
    with ServerThread(load_serve_config(cfg), config_path=str(cfg)) as server:
        # Stage 1: the KTO student runs as a shadow arm; every answer users see is the SFT student's. The shadow arm
        # samples 20% of requests by their random ids: 60 requests leave it none with odds of 0.8**60 (1.5e-6; with
        # 10 requests, 11% of runs failed here).
        first = make_users([rename_example(i) for i in range(60)], 10)
        seen = drive(server.url, first, policy, api_key=KEY)
        assert {it.arm for it in seen} == {"student-v3"}
        deadline = time.monotonic() + 20
        while True:  # shadow runs are logged after the live answer
            with sqlite3.connect(db) as conn:
                shadows = conn.execute("SELECT COUNT(*) FROM telemetry WHERE type = 'shadow'").fetchone()[0]
            if shadows > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        arms = report(cfg, tmp_path / "stage1.json")
        assert arms["student-v3-kto"]["verdict"] == "shadow" and arms["student-v3-kto"]["requests"] == shadows > 0
        assert arms["student-v3-kto"]["shown"] == 0  # never shown to anyone
        assert arms["student-v3"]["verdict"] == "control"
        assert arms["student-v3"]["shown"] == sum(it.shown for it in seen)

        # Stage 2: edit the file to the 15% arm and reload without a restart.
        cfg.write_text(serve_config(live_block, student, kto, db))
        reload = httpx.post(server.url + "/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"})
        assert reload.status_code == 200, reload.text
        second = make_users([rename_example(i) for i in range(60)], 60)
        live = drive(server.url, second, policy, api_key=KEY)
    served = Counter(it.arm for it in live)
    assert set(served) == {"student-v3", "student-v3-kto"} and served["student-v3-kto"] < served["student-v3"]

    arms = report(cfg, tmp_path / "stage2.json")
    new, control = arms["student-v3-kto"], arms["student-v3"]
    assert (new["share"], new["shadow"], control["share"]) == (0.15, False, 0.85)
    assert new["model_versions"] == ["student-v3-kto"]
    for name, arm in arms.items():
        mine = [it for it in (*seen, *live) if it.arm == name]
        assert arm["shown"] == sum(it.shown for it in mine)
        assert arm["accepted"] == sum(it.outcome == "accepted" for it in mine)
    # The comparison with the control: a difference with its interval, and a verdict.
    assert new["shown"] > 0 and control["shown"] > 0
    diff = new["acceptance_vs_control"]
    assert diff["low"] <= diff["diff"] <= diff["high"]
    assert new["verdict"] in ("better", "worse", "inconclusive") or new["verdict"].startswith("no verdict")
