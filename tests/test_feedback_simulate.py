"""The simulated feedback loop, CI-sized: scripted users drive a real uvicorn `nextedit serve` with a random
tiny SFT student, their events are exported split by user, KTO and DPO train for a few steps, and the new
students are evaluated offline and online on the held-out users."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("trl")
pytest.importorskip("fastapi")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eval_fixtures import RENAME_TEXT, rename_example
from tiny_model import build_tiny_model

from nextedit.feedback.records import read_feedback
from nextedit.feedback.simulate import (
    LoopConfig,
    Policy,
    decide,
    expected_region,
    make_users,
    run_loop,
)
from nextedit.formats import get_format
from nextedit.serve.store import open_store
from nextedit.train.export import METADATA_FILE, model_metadata

OPTIONS = {"editable_tokens": 64, "context_tokens": 32, "related_tokens": 0, "history_tokens": 64}


def examples() -> list:
    """Renames in progress: half expect the rename to be finished, half expect no edit."""
    out = []
    for i in range(8):
        ex = rename_example(i)
        if i % 2:
            ex = ex.model_copy(update={"id": f"keep-{i}", "expected": []})
        out.append(ex)
    return out


def test_scripted_users_accept_what_matches_the_mined_edit():
    rename, keep = examples()[0], examples()[1]
    finished = RENAME_TEXT.replace("amount", "qty")
    policy = Policy(noise=0.0, ignore=0.0)
    assert expected_region(rename) == finished and expected_region(keep) == RENAME_TEXT
    assert decide(policy, "u", rename, finished)[0] == "accepted"
    assert decide(policy, "u", keep, finished)[0] == "rejected"
    noisy = Policy(noise=0.5, ignore=0.0, seed=3)
    draws = [decide(noisy, f"u{i}", rename, finished)[0] for i in range(40)]
    assert 5 < draws.count("rejected") < 35  # flipped about half the time
    assert draws == [decide(noisy, f"u{i}", rename, finished)[0] for i in range(40)]  # the same draws again
    users = make_users(examples(), 3)
    assert sorted(ex.id for u in users for ex in u.examples) == sorted(ex.id for ex in examples())


def test_the_loop_runs_end_to_end_on_a_tiny_student(tmp_path):
    student = build_tiny_model(tmp_path / "student")
    fmt = get_format("zeta1")
    meta = model_metadata(format_name=fmt.name, format_version=fmt.version, format_options=OPTIONS,
                          base_model="tiny", method="full", stop=list(fmt.stop))
    (student / METADATA_FILE).write_text(json.dumps(meta))
    # A random model's answers match nothing: users accept everything, and half of the decisions are flipped.
    policy = Policy(accept_threshold=0.0, noise=0.5, ignore=0.0)
    loop = LoopConfig(users=6, eval_users=0.5, policy=policy, max_length=512,
                      predictor_options={"max_new_tokens": 24, "threads": 1}, resamples=200,
                      preference={"max_steps": 2, "batch_size": 2, "learning_rate": 1e-3})
    result = run_loop(examples(), student, tmp_path / "work", loop)
    # Collection went through the real server: every request and event is in its store.
    store = open_store(tmp_path / "work" / "events.db")
    assert store.count("requests") == 8
    shown = sum(1 for i in result.interactions[:8] if i["shown"])
    assert shown > 0 and store.count("events") == shown * 3  # shown, decision, settled
    # The export kept every user on one side; the held-out users are the simulation's held-out users.
    train = list(read_feedback(tmp_path / "work" / "feedback.jsonl"))
    held = list(read_feedback(tmp_path / "work" / "feedback.eval.jsonl"))
    assert not {r.user for r in train} & {r.user for r in held}
    assert len(train) + len(held) == shown
    outcomes = {r.request_id: r.outcome for r in (*train, *held)}
    assert set(outcomes.values()) == {"accepted", "rejected"}
    for method in ("kto", "dpo"):
        assert result.training[method]["steps"] == 2
        assert (tmp_path / "work" / method / "merged" / METADATA_FILE).is_file()
    assert set(result.offline["models"]) == {"sft (recorded)", "kto", "dpo"}
    online = result.online
    assert set(online["arms"]) == {"sft", "kto", "dpo"} and online["users"] == len(result.users["eval"])
    assert online["arms"]["kto"]["requests"] == online["arms"]["sft"]["requests"] > 0
    assert "accepted_per_request_diff_ci" in online["arms"]["dpo"]
    # The online phase also went through a server: one request per held-out example and arm.
    assert open_store(tmp_path / "work" / "eval-events.db").count("requests") == 2 * online["arms"]["sft"]["requests"]
