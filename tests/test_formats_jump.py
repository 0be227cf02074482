"""The zeta1-jump format: a jump example's target names the location and its edit, and parses back to it."""

from __future__ import annotations

import pytest

from nextedit.formats import FormatError, get_format
from nextedit.formats.jump import JUMP_END, JUMP_START, parse_jump
from nextedit.record import Example, Location

HUNK = "@@ -40,1 +40,1 @@\n-    total = old_name(x)\n+    total = new_name(x)\n"


def _jump_example() -> Example:
    text = "def new_name(x):\n    return x + 1\n"
    return Example.model_validate({
        "id": "jump-1",
        "source": {"kind": "git", "tags": ["jump"]},
        "snapshot": {"path": "pkg/a.py", "text": text, "cursor": 4, "editable": [0, len(text)]},
        "expected": [],
        "locations": [{"path": "pkg/b.py", "start_line": 39, "end_line": 40, "patch": HUNK}],
    })


def test_jump_target_round_trips_to_the_location() -> None:
    fmt = get_format("zeta1-jump")
    example = _jump_example()
    rendered = fmt.render(example)
    assert rendered.target == f"{JUMP_START}pkg/b.py:40-40\n{HUNK}{JUMP_END}"
    assert JUMP_START in rendered.prompt and "<|user_cursor_is_here|>" in rendered.prompt
    location = parse_jump(rendered.target)
    assert (location.path, location.start_line, location.end_line, location.patch) == ("pkg/b.py", 39, 40, HUNK)
    # a jump leaves the excerpt unchanged; a stop-stripping server's answer parses the same way
    assert fmt.parse(rendered.target, example).patch == ""
    assert parse_jump(rendered.target.removesuffix(JUMP_END)) == location


def test_region_answers_are_not_jumps_and_bad_locations_are_refused() -> None:
    assert parse_jump("<|editable_region_start|>\nx = 1\n<|editable_region_end|>") is None
    with pytest.raises(FormatError, match="path:first-last"):
        parse_jump(f"{JUMP_START}pkg/b.py\n{JUMP_END}")
    with pytest.raises(FormatError, match="reversed"):
        parse_jump(f"{JUMP_START}pkg/b.py:9-3\n{JUMP_END}")
    assert Location(path="a", start_line=0, end_line=0).patch is None


def test_openai_compatible_predictor_returns_the_jump_location() -> None:
    import asyncio

    from completions_server import completion_reply, completions_server

    from nextedit.predictors import get_predictor

    example = _jump_example()
    answer = get_format("zeta1-jump").render(example).target.removesuffix(JUMP_END)  # servers drop the stop
    with completions_server(lambda body: (200, completion_reply(answer, prompt_tokens=10,
                                                                completion_tokens=5))) as httpd:
        url = f"http://127.0.0.1:{httpd.server_port}/v1"
        p = get_predictor(f"openai-compatible:{url}", format="zeta1-jump", max_retries=0)
        [pred] = asyncio.run(p.predict_async(example, samples=1))
        assert httpd.received[-1][1]["stop"] == ["<|editable_region_end|>", JUMP_END]
    assert pred.error is None and pred.patch == ""
    [loc] = pred.locations
    assert (loc.path, loc.start_line, loc.end_line, loc.patch) == ("pkg/b.py", 39, 40, HUNK)


def test_tiny_model_trains_on_jump_rows_and_predicts_through_the_format(tmp_path) -> None:
    import asyncio

    from eval_fixtures import dataset
    from tiny_model import build_tiny_model

    from nextedit.jsonl import write_examples
    from nextedit.predictors import get_predictor
    from nextedit.train.config import TrainConfig
    from nextedit.train.sft import train

    build_tiny_model(tmp_path / "tiny")
    write_examples(tmp_path / "train.jsonl", [*dataset(2, 1, 0), _jump_example(),
                                              _jump_example().model_copy(update={"id": "jump-2"})])
    cfg = TrainConfig.model_validate({"base_model": str(tmp_path / "tiny"), "output_dir": str(tmp_path / "run"),
                                      "format": "zeta1-jump", "data": {"train": str(tmp_path / "train.jsonl")},
                                      "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-3}})
    model = train(cfg).exported["merged"]
    predictor = get_predictor(f"local:{model}", max_new_tokens=16)
    assert predictor.format.name == "zeta1-jump"  # the format saved with the model
    [pred] = asyncio.run(predictor.predict(_jump_example(), samples=1))
    assert (pred.patch is not None) != (pred.error is not None)  # parseable output or a recorded error
    if pred.raw and JUMP_START in pred.raw and pred.error is None:
        assert pred.locations and pred.locations[0].reason == "zeta1-jump"
    else:
        assert pred.locations == []


@pytest.mark.parametrize("fmt_name", ["zeta1-jump", "zeta1"])
def test_sft_rows_train_a_jump_example_on_its_jump_and_plain_formats_on_the_unchanged_region(
        tmp_path, fmt_name: str) -> None:
    from eval_fixtures import no_edit_example
    from tiny_model import build_tokenizer

    from nextedit.jsonl import write_examples
    from nextedit.train.data import sft_rows

    tokenizer = build_tokenizer()
    write_examples(tmp_path / "rows.jsonl", [_jump_example(), no_edit_example(0)])
    fmt = get_format(fmt_name)
    rows, stats = sft_rows(tmp_path / "rows.jsonl", fmt, None, tokenizer, max_length=100_000)
    assert stats.rows == 2 and not stats.skipped
    jump_completion = tokenizer.decode([t for t, m in zip(rows[0]["input_ids"], rows[0]["completion_mask"]) if m])
    no_edit_completion = tokenizer.decode([t for t, m in zip(rows[1]["input_ids"], rows[1]["completion_mask"]) if m])
    assert (JUMP_START in jump_completion) == (fmt_name == "zeta1-jump")
    if fmt_name == "zeta1-jump":
        assert "pkg/b.py:40-40" in jump_completion and "new_name(x)" in jump_completion
    assert JUMP_START not in no_edit_completion
    assert no_edit_example(0).snapshot.text.splitlines()[0] in no_edit_completion
