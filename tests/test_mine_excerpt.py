"""Editable region and excerpt selection (token budgets, line snapping, tree-sitter growth)."""

from __future__ import annotations

import pytest

from nextedit.mine.excerpt import (
    ExcerptError,
    choose_ranges,
    enclosing_rows,
    excerpt_around,
    line_cost,
    make_excerpt,
    parse_tree,
)
from nextedit.patch import split_lines


def _python_file() -> str:
    parts = ['"""Module."""\n', "\n"]
    for name in ("alpha", "beta", "gamma"):
        parts.append(f"def {name}(values, offset):\n")
        parts.append(f'    """Compute {name} of the values with an offset added."""\n')
        for i in range(10):
            parts.append(f"    values[{i}] = values[{i}] + offset * {i}  # step {i}\n")
        parts.append("    return values\n\n\n")
    return "".join(parts)


def _cost(lines: list[str], rows: tuple[int, int]) -> int:
    return sum(line_cost(line) for line in lines[rows[0]:rows[1]])


def test_editable_grows_to_the_enclosing_function_when_it_fits():
    text = _python_file()
    lines = split_lines(text)
    beta = next(i for i, line in enumerate(lines) if line.startswith("def beta"))
    beta_end = beta + 13  # def, docstring, 10 statements, return
    cursor = beta + 7  # off-centre: a symmetric window of the function's size misses its first line
    budget = _cost(lines, (beta, beta_end))
    with_tree = choose_ranges(lines, cursor, tree=parse_tree(text, "m.py"), editable_tokens=budget,
                              context_tokens=0)
    assert with_tree.editable == (beta, beta_end)
    plain = choose_ranges(lines, cursor, tree=None, editable_tokens=budget, context_tokens=0)
    assert _cost(lines, plain.editable) <= budget
    assert plain.editable[0] <= cursor < plain.editable[1]
    assert plain.editable[0] > beta


def test_context_contains_editable_and_respects_budget():
    text = _python_file()
    lines = split_lines(text)
    ranges = choose_ranges(lines, 20, tree=parse_tree(text, "m.py"), editable_tokens=60, context_tokens=100)
    (e0, e1), (c0, c1) = ranges.editable, ranges.context
    assert c0 <= e0 <= 20 < e1 <= c1
    assert _cost(lines, ranges.editable) <= 60
    assert _cost(lines, ranges.context) <= _cost(lines, ranges.editable) + 100
    assert (c0, c1) != (e0, e1)


def test_rows_that_must_be_editable_are_included_or_rejected():
    lines = [f"line {i}\n" for i in range(100)]
    ranges = choose_ranges(lines, 10, include=(30, 33), editable_tokens=100, context_tokens=0)
    assert ranges.editable[0] <= 10 and ranges.editable[1] >= 33
    with pytest.raises(ExcerptError, match="editable budget of 10"):
        choose_ranges(lines, 10, include=(30, 33), editable_tokens=10)


def test_make_excerpt_offsets():
    text = "a = 1\nb = 2\nc = 3\nd = 4\n"
    lines = split_lines(text)
    ranges = choose_ranges(lines, 2, editable_tokens=2, context_tokens=2)
    ex = make_excerpt(lines, ranges, (2, 3))
    assert ex.text == "".join(lines[ranges.context[0]:ranges.context[1]])
    assert ex.text[ex.cursor - 3:ex.cursor] == "c ="
    assert ex.text[ex.editable[0]:ex.editable[1]] == "".join(lines[ranges.editable[0]:ranges.editable[1]])
    assert ex.editable[0] <= ex.cursor <= ex.editable[1]


def test_empty_file_and_convenience_wrapper():
    assert choose_ranges([], 0).editable == (0, 0)
    ex = make_excerpt([], choose_ranges([], 0), (0, 0))
    assert (ex.text, ex.cursor, ex.editable) == ("", 0, (0, 0))
    text = _python_file()
    ex = excerpt_around(text, text.index("values[3] = values[3]"), "m.py", editable_tokens=40, context_tokens=40)
    assert ex.text in text
    assert ex.text[ex.cursor:].startswith("values[3] = values[3]")


def test_enclosing_rows_innermost_first():
    text = _python_file()
    tree = parse_tree(text, "m.py")
    rows = enclosing_rows(tree, (8, 9))
    assert rows
    sizes = [b - a for a, b in rows]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert all(a <= 8 and b >= 9 for a, b in rows)
    assert parse_tree(text, "notes.unknown-ext") is None


def test_syntax_rows_never_pass_the_last_line():
    # tree-sitter puts the module of "\n" at row 1, after the only line.
    lines = ["\n"]
    ranges = choose_ranges(lines, 0, tree=parse_tree("\n", "x.py"))
    assert ranges.editable == (0, 1) and ranges.context == (0, 1)


def _nodes(tree) -> list[tuple]:
    """Every node of a tree in document order: type, byte and point ranges, error flags."""
    out, cursor = [], tree.walk()
    while True:
        n = cursor.node
        out.append((n.type, n.start_byte, n.end_byte, n.start_point, n.end_point, n.is_error, n.is_missing))
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return out


def test_incremental_reparse_gives_the_tree_of_a_fresh_parse():
    from nextedit.languages import ts_parser

    base = _python_file()
    versions = [
        base,
        base.replace("values[3] = values[3] + offset * 3", "values[3] = values[3] - offs"),  # half-typed
        base.replace("def beta(values, offset):\n", "def beta(values, offset, scale=1):\n"),
        base.replace("    return values\n\n\n", "    return values\n\n\nclass Extra:\n    x = (1,\n", 1),  # unclosed
        "# é ü\n" + base,  # multi-byte characters before everything
        # changes far apart (one tree-sitter edit per changed run of lines), one with a syntax error
        "# é ü\n" + base.replace("def beta(", "def beta_2(").replace("    return values\n", "    return values[:]\n"),
        "# é\n" + base.replace("def beta(", "def beta_2(x, ").replace("    return values\n", "    return (values\n", 1),
        base[:len(base) // 2],
        "",
        base,
    ]
    fresh = ts_parser("python")
    if fresh is None:
        pytest.skip("no tree-sitter Python grammar")
    for text in versions:
        got = parse_tree(text, "pkg/incremental_check.py")
        assert _nodes(got) == _nodes(fresh.parse(text.encode("utf-8")))
