"""Teacher prompt option `jumps`: the instruction is added only when asked, and a jump answer becomes a location."""

from __future__ import annotations

from nextedit.formats.jump import JUMP_END, JUMP_START
from nextedit.record import Example, Snapshot
from nextedit.teacher.common import parse_to_prediction
from nextedit.teacher.prompt import JUMP_INSTRUCTION, PromptOptions, build_prompt

HUNK = "@@ -12,1 +12,1 @@\n-    restock(item, amount=5)\n+    restock(item, qty=5)\n"


def _example() -> Example:
    text = "def restock(item, qty):\n    item.count += qty\n"
    return Example.model_validate({"id": "t", "snapshot": {"path": "stock.py", "text": text, "cursor": 5}})


def test_jump_instruction_only_when_asked() -> None:
    assert JUMP_INSTRUCTION not in build_prompt(_example()).system
    prompt = build_prompt(_example(), PromptOptions(jumps=True))
    assert prompt.system.endswith(JUMP_INSTRUCTION) and JUMP_START in prompt.system
    assert prompt.user == build_prompt(_example()).user


def test_jump_answer_parses_into_a_location() -> None:
    snap = Snapshot(path="stock.py", text="x = 1\n", cursor=0)
    raw = f"The call site still passes amount.\n{JUMP_START}report.py:12-12\n{HUNK}{JUMP_END}"
    pred = parse_to_prediction(raw, provider="teacher:x", sample=0, snapshot=snap, scrubber=None)
    assert pred.error is None and pred.patch == ""
    [loc] = pred.locations
    assert (loc.path, loc.start_line, loc.end_line, loc.patch, loc.reason) == ("report.py", 11, 12, HUNK, "teacher")
    bad = parse_to_prediction(f"{JUMP_START}report.py\n{JUMP_END}", provider="teacher:x", sample=0, snapshot=snap,
                              scrubber=None)
    assert bad.error.startswith("unparseable jump:") and bad.patch is None


def test_teacher_stage_with_jumps_records_the_location(tmp_path) -> None:
    from llm_server import LLMServer
    from test_teacher_llm import Script, client_options, make_example, run

    from nextedit.teacher.stages import TeacherStage

    script = Script()
    script.set("pkg/mod0.py", "teacher", f"Next: the caller.\n{JUMP_START}pkg/report.py:12-12\n{HUNK}{JUMP_END}")
    with LLMServer(responder=script) as server:
        cfg = {"provider": "anthropic:claude-sonnet-4-6", "samples": 1, "prompt": {"jumps": True},
               "client": client_options(tmp_path, base_url=server.url, api_key="test-key")}
        summary, out = run(TeacherStage(cfg), [make_example(0)], tmp_path / "a.jsonl", tmp_path)
    assert summary.failed == 0
    system = "".join(b.get("text", "") for b in script.seen[0][2]["system"])
    assert JUMP_INSTRUCTION in system
    [pred] = out["ex0"].predictions
    assert pred.patch == "" and pred.error is None
    assert [(loc.path, loc.start_line, loc.end_line) for loc in pred.locations] == [("pkg/report.py", 11, 12)]
