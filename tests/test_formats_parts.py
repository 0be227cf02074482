"""Student formats: registry, marker escaping, knobs (history, diagnostics, related, budgets, tokenizer), marker
blocks, and parsing of imperfect model outputs."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from nextedit.formats import FORMATS, FormatError, FormatOptions, get_format
from nextedit.formats.budget import choose_window, estimate_tokens, token_counter
from nextedit.formats.escape import SENTINEL
from nextedit.formats.multi_region import block_bounds, marker
from nextedit.patch import apply, make
from nextedit.record import Example, parse_example

os.environ.setdefault("HF_HUB_OFFLINE", "1")
NAMES = list(FORMATS)
PATH = "app/main.py"


def _text(n: int = 60) -> str:
    return "".join(f"def fn_{i}(value):\n    return value + {i}\n\n" for i in range(n))


def _example(text: str | None = None, *, cursor_line: int = 30, new: str | None = None, **snap) -> Example:
    text = _text() if text is None else text
    lines = text.splitlines(keepends=True)
    cursor = sum(len(x) for x in lines[:cursor_line]) + 4
    if new is None:  # rename on the cursor line's function
        new = text.replace(lines[cursor_line], lines[cursor_line].replace("value", "val"), 1)
    data = {"id": "t", "snapshot": {"path": PATH, "text": text, "start_line": 100, "cursor": cursor, **snap},
            "expected": [make(text, new, path=PATH, start_line=100)] if new != text else [""]}
    return parse_example(data)


# --------------------------------------------------------------------------- registry


def test_registry_names_aliases_and_unknown() -> None:
    assert NAMES == ["zeta1", "seed-multi-region", "sweep", "chat", "zeta1-jump"]
    for name in NAMES:
        fmt = get_format(name)
        assert fmt.name == name and fmt.version and fmt.stop and fmt.end_token in fmt.special_tokens
    assert get_format("Zeta2.1").name == "seed-multi-region"
    assert get_format("ZETA1").name == "zeta1"
    with pytest.raises(FormatError, match="unknown format 'zeta9'; known: zeta1, seed-multi-region"):
        get_format("zeta9")


def test_spec_lists_what_a_trainer_needs() -> None:
    spec = get_format("sweep").spec(FormatOptions(history_events=2))
    assert spec["stop"] == ["<|file_sep|>", "<|endoftext|>"] and spec["options"]["history_events"] == 2
    assert spec["format"] == "sweep" and spec["format_version"] == "1"


# --------------------------------------------------------------------------- refusals and targets


@pytest.mark.parametrize("name", NAMES)
def test_inputs_with_special_tokens_are_escaped(name: str) -> None:
    fmt = get_format(name)
    plain = [{"path": "lib/x.py", "text": "x = 'y'\n"}]
    clean = fmt.render(_example(_text(4) + "# y\n", cursor_line=1, related=plain)).prompt
    for token in fmt.special_tokens[:6]:
        related = [{"path": "lib/x.py", "text": f"x = '{token}'\n"}]
        prompt = fmt.render(_example(_text(4) + f"# {token}\n", cursor_line=1, related=related)).prompt
        assert prompt.count(token) == clean.count(token)
        assert f"# {token[0]}{SENTINEL}{token[1:]}" in prompt


def test_marker_like_text_is_escaped_in_seed_only() -> None:
    text = _text(4) + "s = '<|marker_999|>'\n"
    assert "<|marker_999|>" not in get_format("seed-multi-region").render(_example(text, cursor_line=1)).prompt
    assert "<|marker_999|>" in get_format("zeta1").render(_example(text, cursor_line=1)).prompt


@pytest.mark.parametrize("name", NAMES)
def test_no_expected_gives_no_target(name: str) -> None:
    ex = _example().model_copy(update={"expected": []})
    rendered = get_format(name).render(ex)
    assert rendered.target is None and rendered.prompt


@pytest.mark.parametrize("name", NAMES)
def test_expected_outside_the_window_is_refused_not_grown(name: str) -> None:
    text = _text()
    lines = text.splitlines(keepends=True)
    far = text.replace(lines[3], "    return None\n", 1)  # 27 lines above the cursor
    ex = _example(text, new=far)
    fmt = get_format(name)
    with pytest.raises(FormatError, match=r"outside the editable window \(file lines \d+-\d+\) chosen for "
                                          r"editable_tokens=60"):
        fmt.render(ex, FormatOptions(editable_tokens=60))
    wide = FormatOptions(editable_tokens=2000)
    rendered = fmt.render(ex, wide)
    assert apply(fmt.parse(rendered.target, ex, wide).patch, text, start_line=100) == far


def test_window_stays_inside_the_snapshot_editable_region() -> None:
    text = _text()
    lines = text.splitlines(keepends=True)
    start = sum(len(x) for x in lines[:28])
    end = sum(len(x) for x in lines[:33])
    ex = _example(text, editable=[start, end])
    for name in NAMES:
        rendered = get_format(name).render(ex)
        assert rendered.editable == (start, end)
        assert rendered.context[0] < start and rendered.context[1] > end


@pytest.mark.parametrize("name", NAMES)
def test_target_carries_the_expected_cursor(name: str) -> None:
    ex = _example()
    after = apply(ex.expected[0], ex.snapshot.text, start_line=100)
    at = after.index("val)") + 3
    ex = ex.model_copy(update={"expected_cursors": [at]})
    fmt = get_format(name)
    rendered = fmt.render(ex)
    assert fmt.cursor_token in rendered.target
    assert fmt.parse(rendered.target, ex).cursor == at


# --------------------------------------------------------------------------- knobs


HISTORY = [{"path": PATH, "diff": f"@@ -{101 + k},1 +{101 + k},1 @@\n-old_{k}\n+new_{k}\n"} for k in range(3)]


@pytest.mark.parametrize("name", NAMES)
def test_history_events_knob_keeps_the_newest(name: str) -> None:
    fmt = get_format(name)
    ex = _example(history=HISTORY)
    every = fmt.render(ex).prompt
    assert all(f"new_{k}" in every for k in range(3))
    assert every.index("new_0") < every.index("new_1") < every.index("new_2")  # oldest first
    one = fmt.render(ex, FormatOptions(history_events=1)).prompt
    assert "new_2" in one and "new_1" not in one and "new_0" not in one
    none = fmt.render(ex, FormatOptions(history_events=0)).prompt
    assert not any(f"new_{k}" in none for k in range(3))


@pytest.mark.parametrize("name", NAMES)
def test_history_budget(name: str) -> None:
    fmt = get_format(name)
    ex = _example(history=HISTORY)
    tight = fmt.render(ex, FormatOptions(history_tokens=30)).prompt
    assert "new_2" in tight and "new_0" not in tight


@pytest.mark.parametrize("name", NAMES)
def test_diagnostics_knob(name: str) -> None:
    fmt = get_format(name)
    ex = _example(diagnostics=[{"severity": "warning", "message": "unused   variable 'zz'", "start_line": 130,
                                "end_line": 130}])
    on = fmt.render(ex).prompt
    assert f"{PATH}:131: warning: unused variable 'zz'" in on
    off = fmt.render(ex, FormatOptions(diagnostics=False)).prompt
    assert "unused variable" not in off


@pytest.mark.parametrize("name", NAMES)
def test_candidate_knob_shows_the_propagate_edit_or_none(name: str) -> None:
    fmt = get_format(name)
    text = _text().replace("def fn_10(value):\n    return value", "def fn_10(total):\n    return amount")
    rename = {"path": PATH, "diff": "@@ -131,1 +131,1 @@\n-def fn_10(amount):\n+def fn_10(total):\n"}
    ex = _example(text, new=text.replace("return amount + 10", "return total + 10"), history=[rename])
    on = fmt.render(ex, FormatOptions(candidate=True))
    # The hint is the heuristic's hunk numbered as file lines: the rest of the rename, ready to copy.
    assert "@@ -131,3 +131,3 @@\n def fn_10(total):\n-    return amount + 10\n+    return total + 10\n \n" in on.prompt
    off = fmt.render(ex)
    assert "return total + 10" not in off.prompt and "(none)" not in off.prompt.replace("### User Edits:\n\n(none)", "")
    assert on.target == off.target  # the answer is the same: only the prompt gains the hint
    plain = fmt.render(_example(history=HISTORY), FormatOptions(candidate=True)).prompt
    assert "(none)" in plain.replace("### User Edits:\n\n(none)", "")  # the heuristic proposes nothing here
    assert fmt.parse(on.target.removesuffix(fmt.end_token) + fmt.end_token, ex,
                     FormatOptions(candidate=True)).patch == ex.expected[0]


@pytest.mark.parametrize("name", NAMES)
def test_related_budget_and_redundant_excerpts(name: str) -> None:
    fmt = get_format(name)
    related = [{"path": "lib/util.py", "start_line": 10, "text": "def helper_one():\n    pass\n", "rank": 1},
               {"path": "lib/util.py", "start_line": 40, "text": "def helper_two():\n    pass\n", "rank": 0},
               {"path": PATH, "start_line": 190, "text": "def fn_30(value):\n", "rank": 0}]
    ex = _example(related=related)
    prompt = fmt.render(ex).prompt
    assert prompt.index("helper_one") < prompt.index("helper_two")  # file order, not rank order
    assert "...\n" in prompt[prompt.index("helper_one"):prompt.index("helper_two")]
    assert prompt.count("def fn_30(value):") == 1  # the cursor file's own excerpt is already shown
    none = fmt.render(ex, FormatOptions(related_tokens=0)).prompt
    assert "helper_" not in none
    # A budget for one excerpt keeps the best-ranked one.
    one = fmt.render(ex, FormatOptions(related_tokens=20)).prompt
    assert "helper_two" in one and "helper_one" not in one


def test_context_budget_shrinks_the_context() -> None:
    ex = _example(cursor_line=90)
    fmt = get_format("zeta1")
    small = fmt.render(ex, FormatOptions(context_tokens=0))
    big = fmt.render(ex, FormatOptions(context_tokens=400))
    assert small.context == small.editable
    assert big.context[0] < big.editable[0] and big.context[1] > big.editable[1]
    assert estimate_tokens(ex.snapshot.text[big.context[0]:big.context[1]]) <= 400 + estimate_tokens(
        ex.snapshot.text[big.editable[0]:big.editable[1]]) + 60


# --------------------------------------------------------------------------- tokenizer budgets


def _word_tokenizer(text: str) -> Tokenizer:
    vocab = {"[UNK]": 0}
    for word in text.replace("(", " ").replace(")", " ").replace(":", " ").split():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_budgets_use_the_real_tokenizer_when_given() -> None:
    text = "".join(f"{'w' * 45}_{i} = {i}\n" for i in range(80))  # one line: w..w_40 = 40
    ex = _example(text, cursor_line=40, new=text.replace("w_40 = 40", "w_40 = 41"))
    tok = _word_tokenizer(text)
    count = token_counter(tok)
    assert count("aaa_1 = 1") == 3
    opts = FormatOptions(editable_tokens=60, context_tokens=0)
    by_bytes = choose_window(ex.snapshot, 60, 0)
    by_tokens = choose_window(ex.snapshot, 60, 0, count)
    n_bytes = by_bytes.editable_rows[1] - by_bytes.editable_rows[0]
    n_tokens = by_tokens.editable_rows[1] - by_tokens.editable_rows[0]
    assert n_bytes == 3 and n_tokens == 20  # 18 estimated tokens a line, 3 real
    fmt = get_format("seed-multi-region")
    rendered = fmt.render(ex, opts, tokenizer=tok)
    assert rendered.editable == by_tokens.editable
    parsed = fmt.parse(rendered.target, ex, opts, tokenizer=tok)
    assert apply(parsed.patch, text, start_line=100) == text.replace("w_40 = 40", "w_40 = 41")


def test_chat_prompt_uses_the_tokenizers_chat_template() -> None:
    transformers = pytest.importorskip("transformers")
    ex = _example()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=_word_tokenizer(ex.snapshot.text))
    tok.chat_template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    rendered = get_format("chat").render(ex, tokenizer=tok)
    assert rendered.prompt.startswith("<|system|>") and rendered.prompt.endswith("<|assistant|>")
    assert [m["role"] for m in rendered.messages] == ["system", "user"]
    plain = get_format("chat").render(ex)
    assert plain.prompt.startswith("### System:\n") and plain.prompt.endswith("### Assistant:\n")


# --------------------------------------------------------------------------- marker blocks


def test_blocks_split_after_blank_lines_within_6_to_16_lines() -> None:
    region = "".join(f"line {i}\n" + ("\n" if i % 7 == 6 else "") for i in range(60))
    bounds = block_bounds(region)
    sizes = [region[a:b].count("\n") for a, b in itertools.pairwise(bounds)]
    assert bounds[0] == 0 and bounds[-1] == len(region)
    assert all(6 <= s <= 16 for s in sizes[:-1]) and sum(sizes) == region.count("\n")
    assert all(region[b - 2:b] == "\n\n" for b in bounds[1:-1])  # every split follows a blank line
    dense = "".join(f"x{i}\n" for i in range(40))
    dense_sizes = [dense[a:b].count("\n") for a, b in zip(block_bounds(dense), block_bounds(dense)[1:],
                                                           strict=False)]
    assert dense_sizes == [16, 16, 8]


def test_block_split_moves_past_closing_lines() -> None:
    region = "".join(f"  a{i}\n" for i in range(16)) + "}\n)\n" + "".join(f"b{i}\n" for i in range(5))
    bounds = block_bounds(region)
    assert region[bounds[1]:].startswith("b0\n")  # "}" and ")" stay with the block they close


def test_seed_prompt_numbers_blocks_and_marks_the_cursor() -> None:
    ex = _example(_text(12), cursor_line=10)
    rendered = get_format("seed-multi-region").render(ex)
    prompt = rendered.prompt
    assert prompt.startswith("<[fim-suffix]>") and prompt.endswith("<[fim-middle]>")
    assert prompt.index("<[fim-prefix]>") < prompt.index(f"<filename>{PATH}\n") < prompt.index(marker(1))
    n = len(block_bounds(ex.snapshot.text[rendered.editable[0]:rendered.editable[1]]))
    assert all(marker(k) in prompt for k in range(1, n + 1)) and marker(n + 1) not in prompt
    assert prompt.count("<|user_cursor|>") == 1


# --------------------------------------------------------------------------- parsing model outputs


def test_zeta1_and_chat_parse_rules() -> None:
    ex = _example()
    for name in ("zeta1", "chat"):
        fmt = get_format(name)
        target = fmt.render(ex).target
        good = fmt.parse(target, ex)
        assert fmt.parse("Sure:\n" + target + "\ntrailing words", ex) == good
        assert fmt.parse(target.removesuffix("<|editable_region_end|>") + "<|endoftext|>", ex) == good
        with pytest.raises(FormatError, match="0 <\\|editable_region_start\\|> markers"):
            fmt.parse("no markers here", ex)
        with pytest.raises(FormatError, match="2 <\\|editable_region_start\\|> markers"):
            fmt.parse("<|editable_region_start|>\n<|editable_region_start|>\nx", ex)
        # several cursor markers: the code is kept, no cursor placed
        marker = "<|user_cursor_is_here|>"
        once = fmt.parse(target.replace("\n", "\n" + marker, 1), ex)
        assert once.patch == good.patch and once.cursor is not None
        twice = fmt.parse(target.replace("\n", "\n" + marker, 2), ex)
        assert twice.patch == good.patch and twice.cursor is None


def test_seed_parse_rules() -> None:
    fmt = get_format("seed-multi-region")
    ex = _example(_text(12), cursor_line=10)
    assert fmt.parse("<|marker_2|><|marker_2|><[end▁of▁sentence]>", ex).patch == ""
    assert fmt.parse("NO_EDITS\n", ex).patch == ""
    with pytest.raises(FormatError, match="no <\\|marker_N\\|> tags"):
        fmt.parse("just text", ex)
    with pytest.raises(FormatError, match="not in increasing order"):
        fmt.parse("<|marker_3|>a\n<|marker_2|>", ex)
    with pytest.raises(FormatError, match="marker 40 is not in the prompt"):
        fmt.parse("<|marker_1|>a\n<|marker_40|>", ex)
    rendered = fmt.render(ex)
    region = ex.snapshot.text[rendered.editable[0]:rendered.editable[1]]
    bounds = block_bounds(region)
    # Rewriting blocks 1-2 without the intermediate marker still splices the right span.
    new_blocks = "# replaced\n"
    out = f"{marker(1)}{new_blocks}{marker(3)}"
    after = apply(fmt.parse(out, ex).patch, ex.snapshot.text, start_line=100)
    assert after == (ex.snapshot.text[:rendered.editable[0]] + new_blocks + region[bounds[2]:]
                     + ex.snapshot.text[rendered.editable[1]:])


def test_sweep_parse_and_original_block() -> None:
    fmt = get_format("sweep")
    text = _text(12)
    before = text.replace("return value + 10", "return value - 10")
    hist = [{"path": PATH, "diff": make(before, text, path=PATH, start_line=100)}]
    ex = _example(text, cursor_line=31, history=hist)
    rendered = fmt.render(ex)
    original = rendered.prompt.split("<|file_sep|>original/")[1].split("<|file_sep|>")[0]
    current = rendered.prompt.split("<|file_sep|>current/")[1].split("<|file_sep|>")[0]
    assert "return value - 10" in original and "return value + 10" in current
    assert rendered.prompt.endswith("\n") and "<|file_sep|>updated/app/main.py:" in rendered.prompt
    assert f"<|file_sep|>{PATH}.diff\noriginal:\n" in rendered.prompt
    good = fmt.parse(rendered.target, ex)
    assert fmt.parse(rendered.target.removesuffix("<|endoftext|>") + "<|file_sep|>junk", ex) == good
    unchanged = fmt.parse(text[rendered.editable[0]:rendered.editable[1]], ex)
    assert unchanged.patch == "" and unchanged.cursor is None


def test_no_edit_target_round_trips() -> None:
    ex = _example(new=_text())
    for name in NAMES:
        fmt = get_format(name)
        rendered = fmt.render(ex)
        assert fmt.parse(rendered.target, ex).patch == ""
    assert get_format("seed-multi-region").render(ex).target in {
        f"{marker(k)}{marker(k)}<[end▁of▁sentence]>" for k in range(1, 20)}


def test_docs_show_what_the_formats_render() -> None:
    """docs/formats.md shows each format's current output for the ARCHITECTURE.md example (a change in
    rendering must update the docs, and bump the format's version)."""
    text = "def restock(item, qty):\n    item.count += amount\n    log(item)\n"
    diff = ("@@ -1,3 +1,3 @@\n-def restock(item, amount):\n+def restock(item, qty):\n     item.count += amount\n"
            "     log(item)\n")
    ex = parse_example({
        "id": "doc", "expected": [make(text, text.replace("+= amount", "+= qty"), path="inventory/stock.py")],
        "expected_cursors": [45],
        "snapshot": {"path": "inventory/stock.py", "text": text, "cursor": 42,
                     "history": [{"path": "inventory/stock.py", "diff": diff}],
                     "related": [{"path": "inventory/models.py", "start_line": 10,
                                  "text": "class Item:\n    count: int\n"}],
                     "diagnostics": [{"message": "name 'amount' is not defined", "start_line": 1,
                                      "end_line": 1}]}})
    doc = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
    for name in NAMES:
        rendered = get_format(name).render(ex)
        assert f"````text\n{rendered.prompt}\n````" in doc, name
        assert f"````text\n{rendered.target}\n````" in doc, name
