"""The server with a random tiny in-process model (local:) and an OpenAI-compatible upstream."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import httpx
import pytest

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from llm_server import LLMServer
from tiny_model import build_tiny_model

from nextedit.serve.config import parse_config
from nextedit.serve.testing import ServerThread

KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = "def order_total(price, amount):\n    return price * amount\n"
SNAP = {"path": "app.py", "text": TEXT, "cursor": 20,
        "history": [{"path": "app.py", "diff": "@@ -1,2 +1,2 @@\n-def order_total(price, qty):\n"
                                                "+def order_total(price, amount):\n     return price * amount\n"}]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def config_for(tmp_path: Path, arms: list[dict], **extra: object):
    return parse_config({"store": str(tmp_path / "ev.db"), "deadline_ms": 20_000, "auth": {"api_keys": [KEY]},
                         "arms": arms, **extra})


def test_tiny_model_predict_and_completions(tmp_path, tiny):
    arms = [{"name": "student", "backend": f"local:{tiny}", "format": "zeta1", "share": 1.0,
             "options": {"max_new_tokens": 24, "dtype": "float32"}},
            {"name": "baseline", "backend": "propagate", "shadow": True, "share": 0.0}]
    with ServerThread(config_for(tmp_path, arms)) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        body = client.post("/v1/predict", json={"snapshot": SNAP, "client_id": "c", "user_id": "u"}).json()
        assert body["arm"] == "student" and body["model_version"].startswith(f"local:{tiny}@v")
        # A random model writes noise: whatever it says, the answer is a prediction or a reason, never nothing.
        assert (body["prediction"] is None) == (body["reason"] is not None)
        assert body["reason"] in (None, "parse_failed", "empty", "filtered")
        assert body["tokens"]["input"] > 0 and body["tokens"]["output"] > 0

        comp = client.post("/v1/completions", json={"prompt": "def order_total(price", "max_tokens": 8})
        assert comp.status_code == 200, comp.text
        data = comp.json()
        assert data["object"] == "text_completion" and isinstance(data["choices"][0]["text"], str)
        assert 0 < data["usage"]["completion_tokens"] <= 8 and data["usage"]["prompt_tokens"] > 0
        assert comp.headers["x-nextedit-arm"] == "student"
        assert data["model"] == body["model_version"]

        chat = client.post("/v1/chat/completions", json={"model": "student", "max_tokens": 4,
                                                         "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["role"] == "assistant"
        assert client.post("/v1/completions", json={"model": "nope", "prompt": "x"}).status_code == 404
        assert client.post("/v1/completions", json={"prompt": "x", "stream": True}).status_code == 400
        models = client.get("/v1/models").json()
        assert [m["id"] for m in models["data"]] == ["student"]


def test_cancelled_generation_stops(tiny):
    from nextedit.predictors import get_predictor
    from nextedit.serve.local_model import local_complete, make_cancellable

    predictor = get_predictor(f"local:{tiny}", format="zeta1", dtype="float32", prompt_lookup=False)
    make_cancellable(predictor)
    free = local_complete(predictor, "def order", max_tokens=40, stop=None, temperature=0.0,
                          cancel=threading.Event())
    cancelled = threading.Event()
    cancelled.set()
    stopped = local_complete(predictor, "def order", max_tokens=40, stop=None, temperature=0.0, cancel=cancelled)
    assert stopped.finish_reason == "cancelled"
    assert stopped.output_tokens <= 1 < free.output_tokens


def test_chat_completions_through_an_openai_compatible_upstream(tmp_path):
    with LLMServer(responder=lambda api, body: "upstream says hi") as upstream:
        arms = [{"name": "remote", "backend": f"openai-compatible:{upstream.openai_url}#m", "format": "zeta1",
                 "share": 1.0, "options": {"endpoint": "chat"}},
                {"name": "base", "backend": "propagate", "shadow": True}]
        with ServerThread(config_for(tmp_path, arms)) as server, \
                httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
            resp = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "edit"}]})
            assert resp.status_code == 200, resp.text
            assert resp.json()["choices"][0]["message"]["content"] == "upstream says hi"
            assert resp.headers["x-nextedit-arm"] == "remote"
            (received,) = upstream.requests("/v1/chat/completions")
            assert received.body["model"] == "m" and received.body["messages"][0]["content"] == "edit"
            # The predict path through the same upstream renders the zeta1 prompt and parses the reply.
            body = client.post("/v1/predict", json={"snapshot": SNAP, "client_id": "c", "user_id": "u"}).json()
            assert body["arm"] == "remote" and body["reason"] in ("parse_failed", "empty", "filtered")


def test_propagate_arm_cannot_complete_raw_prompts(tmp_path):
    arms = [{"name": "prop", "backend": "propagate", "share": 1.0}]
    with ServerThread(config_for(tmp_path, arms)) as server, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        resp = client.post("/v1/completions", json={"prompt": "x"})
        assert resp.status_code == 400 and "cannot complete raw prompts" in resp.json()["error"]
