"""`nextedit settle` drawing its candidates from an OpenAI-compatible endpoint (a real local HTTP server, n samples)."""

from __future__ import annotations

import pytest
from completions_server import completion_reply, completions_server
from eval_fixtures import RENAME_TEXT, rename_example
from typer.testing import CliRunner

from nextedit import patch as patchlib
from nextedit.cli import app
from nextedit.formats import get_format
from nextedit.jsonl import read_dicts, read_examples, write_examples
from nextedit.record import Settled
from nextedit.settle.stage import SettleStage, stage_for

runner = CliRunner()


@pytest.fixture
def server():
    texts: list[str] = []
    with completions_server(lambda body: (200, completion_reply(*texts[: body.get("n", 1)]))) as httpd:
        httpd.texts = texts
        yield httpd


def _output_for(new_text: str) -> str:
    """What a zeta1 student would answer to turn the snapshot into `new_text`."""
    ex = rename_example(0)
    ex.expected = [patchlib.make(RENAME_TEXT, new_text, path="stock.py")]
    fmt = get_format("zeta1")
    return fmt.render(ex).target.removesuffix(fmt.stop[0])


def test_settle_with_an_openai_compatible_endpoint(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    renamed = RENAME_TEXT.replace("amount", "qty")
    settled = renamed.replace("qty", "quantity", 1)  # the user went a little further than the rename
    server.texts[:] = [_output_for(renamed), "no markers here", _output_for(RENAME_TEXT.replace("def ", "async def "))]
    ex = rename_example(0)
    ex.settled = Settled(text=settled)
    src = tmp_path / "in.jsonl"
    write_examples(src, [ex])
    url = f"http://127.0.0.1:{server.server_port}/v1#student"
    assert isinstance(stage_for({"provider": f"openai-compatible:{url}", "options": {"format": "zeta1"}}),
                      SettleStage)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["settle", str(src), "-p", f"openai-compatible:{url}", "--option", "format=zeta1",
                                 "--option", "temperature=0.8", "-n", "3", "-o", str(out), "--high", "0.5"])
    assert result.exit_code == 0, result.output
    assert len(server.received) == 1 and server.received[0][1]["n"] == 3 and server.received[0][1]["temperature"] == 0.8
    [kept] = list(read_examples(out))
    info = kept.settle
    assert (info["samples"], info["valid"], info["best"]["index"]) == (3, 2, 0)
    assert info["distances"][1] is None and info["distances"][0] < info["distances"][2]
    assert patchlib.apply(kept.expected[0], RENAME_TEXT) == renamed  # the candidate, not the settled text
    assert kept.settled.text == settled
    [(_, row)] = list(read_dicts(tmp_path / "out.distances.jsonl"))
    assert row["settle"]["provider"] == f"openai-compatible:{url}"
