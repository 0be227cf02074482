"""`local:PATH` and `openai-compatible:URL` predictors: a tiny trained model through the predict stage, and a
real local HTTP server speaking the OpenAI completions API (scripted replies, retries, errors)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from completions_server import completion_reply, completions_server
from eval_fixtures import dataset, rename_example
from tiny_model import build_tiny_model

from nextedit.evaluate.stages import PredictStage
from nextedit.formats import get_format
from nextedit.jsonl import read_examples, write_examples
from nextedit.pipeline.engine import run_stage
from nextedit.predictors import PredictorError, get_predictor
from nextedit.train.config import TrainConfig
from nextedit.train.sft import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    build_tiny_model(root / "tiny")
    write_examples(root / "train.jsonl", dataset(4, 2, 1))
    cfg = TrainConfig.model_validate({"base_model": str(root / "tiny"), "output_dir": str(root / "run"),
                                      "data": {"train": str(root / "train.jsonl")},
                                      "train": {"max_steps": 5, "batch_size": 2, "learning_rate": 5e-3}})
    return Path(train(cfg).exported["merged"])


def test_predict_stage_with_the_trained_model_records_patches_or_errors(trained, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_examples(src, dataset(2, 1, 1))
    stage = PredictStage({"provider": f"local:{trained}", "samples": 2, "options": {"max_new_tokens": 24}})
    summary = run_stage(stage, src, out, concurrency=1, cache=False, progress=False)
    assert summary.failed == 0
    examples = list(read_examples(out))
    assert len(examples) == 4
    for ex in examples:
        preds = [p for p in ex.predictions if p.provider == f"local:{trained}"]
        assert [p.sample for p in preds] == [0, 1]
        for p in preds:
            assert (p.patch is not None) != (p.error is not None)  # parseable output or a recorded error
            if p.error:
                assert p.error.startswith(("parse:", "render:"))
            assert p.latency_ms > 0 and p.usage.input_tokens > 0 and 0 < p.usage.output_tokens <= 24
            assert p.raw is not None


def test_prompt_lookup_gives_the_same_greedy_output(trained):
    ex = rename_example(0)
    with_lookup = get_predictor(f"local:{trained}", max_new_tokens=16).predict_sync(ex)[0]
    without = get_predictor(f"local:{trained}", max_new_tokens=16, prompt_lookup=False).predict_sync(ex)[0]
    assert with_lookup.raw == without.raw
    assert with_lookup.usage.output_tokens == without.usage.output_tokens


def test_local_needs_a_model_and_a_format(tmp_path):
    with pytest.raises(PredictorError, match="no such model folder"):
        get_predictor(f"local:{tmp_path / 'missing'}")
    build_tiny_model(tmp_path / "bare")  # an HF folder without nextedit.json
    with pytest.raises(PredictorError, match="format=NAME"):
        get_predictor(f"local:{tmp_path / 'bare'}")
    p = get_predictor(f"local:{tmp_path / 'bare'}", format="sweep", label="base")
    assert p.name == "base" and p.format.name == "sweep"


@pytest.fixture
def server():
    script: list = []
    with completions_server(lambda body: script.pop(0)) as httpd:
        httpd.script = script
        yield httpd


def _reply(*texts: str) -> dict:
    return completion_reply(*texts, prompt_tokens=321, completion_tokens=40)


def test_openai_compatible_samples_parse_into_patches(server):
    import asyncio

    ex = rename_example(0)
    fmt = get_format("zeta1")
    good = fmt.render(ex).target.removesuffix(fmt.stop[0])  # servers drop the stop string
    server.script += [(429, {"error": "slow down"}), (200, _reply(good, "no markers here"))]
    url = f"http://127.0.0.1:{server.server_port}/v1"
    p = get_predictor(f"openai-compatible:{url}#student", format="zeta1", api_key="k", temperature=0.7)
    preds = asyncio.run(p.predict_async(ex, samples=2))
    assert len(server.received) == 2  # the 429 was retried
    path, body, auth = server.received[-1]
    assert path == "/v1/completions" and auth == "Bearer k"
    assert body["model"] == "student" and body["n"] == 2 and body["stop"] == fmt.stop
    assert body["temperature"] == 0.7 and "<|user_cursor_is_here|>" in body["prompt"]
    assert preds[0].patch == ex.expected[0] and preds[0].error is None
    assert preds[0].usage.input_tokens == 321 and preds[1].usage.input_tokens == 0
    assert preds[1].patch is None and preds[1].error.startswith("parse:")


def test_openai_compatible_records_request_failures(server):
    import asyncio

    server.script += [(500, {"error": "boom"}), (500, {"error": "boom"}), (200, b"<html>not json")]
    url = f"http://127.0.0.1:{server.server_port}/v1"
    p = get_predictor(f"openai-compatible:{url}", format="zeta1", max_retries=1)
    preds = asyncio.run(p.predict_async(rename_example(0)))
    assert preds[0].error == 'request: HTTP 500: {"error": "boom"}'
    preds = asyncio.run(p.predict_async(rename_example(0)))
    assert preds[0].error.startswith("request: reply is not JSON")
    with pytest.raises(PredictorError, match="format"):
        get_predictor(f"openai-compatible:{url}")
