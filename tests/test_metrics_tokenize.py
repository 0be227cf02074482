"""Tokenizer (zed-ep.md 3.4) and signature parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextedit.metrics import (
    SIGNATURES,
    Signature,
    SignatureError,
    parse_signature,
    tokenize,
    units,
)


def test_classes_and_runs() -> None:
    assert tokenize("a  b\n\n\tc") == ["a", "  ", "b", "\n\n", "\t", "c"]
    assert tokenize("x\r\ny") == ["x", "\r\n", "y"]


def test_identifiers_split_at_underscores_and_case() -> None:
    assert tokenize("foo_bar") == ["foo", "_", "bar"]
    assert tokenize("__init__") == ["__", "init", "__"]
    assert tokenize("fooBarBaz") == ["foo", "Bar", "Baz"]
    assert tokenize("XMLHttpRequest") == ["XML", "Http", "Request"]
    assert tokenize("v2Beta") == ["v2", "Beta"]
    assert tokenize("HTTP2") == ["HTTP2"]


def test_operators_are_matched_greedily() -> None:
    assert tokenize("a>>>=b") == ["a", ">>>=", "b"]
    assert tokenize("x->y=>z") == ["x", "->", "y", "=>", "z"]
    assert tokenize("a::b?.c") == ["a", "::", "b", "?.", "c"]
    assert tokenize("f(x);") == ["f", "(", "x", ")", ";"]
    assert tokenize("/* c */") == ["/*", " ", "c", " ", "*/"]


def test_units_keep_identifiers_whole() -> None:
    assert units("fooBar_baz = qux2(1)") == ["fooBar_baz", " ", "=", " ", "qux2", "(", "1", ")"]


@given(st.text(max_size=60))
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert "".join(units(text)) == text
    assert all(tokenize(text)) and all(units(text))


def test_signatures_round_trip() -> None:
    for name, text in SIGNATURES.items():
        sig = parse_signature(text)
        assert isinstance(sig, Signature) and str(sig) == text, name
    assert parse_signature("delta_chrf:v3|n=6|beta=0.5|ws=collapse").params == {
        "n": "6", "beta": "0.5", "ws": "collapse"}
    with pytest.raises(SignatureError, match="name:version"):
        parse_signature("delta_chrf|n=6")
    with pytest.raises(SignatureError, match="not key=value"):
        parse_signature("delta_chrf:v3|n6")
