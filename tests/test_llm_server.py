"""The local LLM test server itself: wire formats, scripted faults, request counts, batches."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from llm_server import Fault, LLMServer


@pytest.fixture
def llm_server():
    """A started local server."""
    with LLMServer() as server:
        yield server


CHAT = {"model": "m", "messages": [{"role": "system", "content": "be short and precise always"},
                                   {"role": "user", "content": "hello"}]}


def _post(url: str, body: dict) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_openai_reply_echoes_and_counts(llm_server: LLMServer) -> None:
    status, _, body = _post(llm_server.openai_url + "/chat/completions", {**CHAT, "n": 2})
    data = json.loads(body)
    assert status == 200
    assert [c["message"]["content"] for c in data["choices"]] == ["echo: hello", "echo: hello"]
    assert data["usage"]["prompt_tokens"] == 6
    assert llm_server.count("/v1/chat/completions") == 1
    # the same system prefix again is reported as cached
    _, _, body = _post(llm_server.openai_url + "/chat/completions", CHAT)
    assert json.loads(body)["usage"]["prompt_tokens_details"]["cached_tokens"] == 5


def test_script_then_responder(llm_server: LLMServer) -> None:
    llm_server.script(Fault.rate_limit(1.5), Fault.server_error(503), "scripted", Fault.truncated(),
                      Fault.garbage())
    url = llm_server.url + "/v1/messages"
    status, headers, _ = _post(url, CHAT)
    assert (status, headers.get("Retry-After")) == (429, "1.5")
    assert _post(url, CHAT)[0] == 503
    assert json.loads(_post(url, CHAT)[2])["content"][0]["text"] == "scripted"
    status, _, body = _post(url, CHAT)
    assert status == 200
    try:
        json.loads(body)
        raise AssertionError("truncated body parsed")
    except json.JSONDecodeError:
        pass
    assert _post(url, CHAT)[2].startswith(b"<html>")
    assert json.loads(_post(url, CHAT)[2])["content"][0]["text"] == "echo: hello"
    assert llm_server.pending() == 0 and llm_server.count("/v1/messages") == 6


def test_anthropic_batch_finishes_after_polls() -> None:
    with LLMServer(batch_polls_until_done=2) as server:
        server.script(Fault.item_error("bad item"))
        status, _, body = _post(server.url + "/v1/messages/batches", {"requests": [
            {"custom_id": "a", "params": CHAT}, {"custom_id": "b", "params": CHAT}]})
        batch = json.loads(body)
        assert status == 200 and batch["processing_status"] == "in_progress"
        get = server.url + "/v1/messages/batches/" + batch["id"]
        assert json.loads(urllib.request.urlopen(get).read())["processing_status"] == "in_progress"
        done = json.loads(urllib.request.urlopen(get).read())
        assert done["processing_status"] == "ended"
        assert done["request_counts"]["succeeded"] == 1 and done["request_counts"]["errored"] == 1
        rows = [json.loads(x) for x in urllib.request.urlopen(done["results_url"]).read().splitlines()]
        assert [(r["custom_id"], r["result"]["type"]) for r in rows] == [("a", "errored"), ("b", "succeeded")]
