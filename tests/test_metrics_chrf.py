"""delta-chrF (zed-ep.md 3.1): worked cases, variants, and properties against a literal reference."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit.metrics import VARIANTS, delta_chrf, normalize_whitespace, parse_signature

ORIG = "def f(x):\n    return x + 1\n"
EXP = "def f(x):\n    return x + 2\n"


def literal_delta_chrf(o: str, e: str, a: str, variant: str) -> float:
    """The definition read literally: full texts, one bag per order with `¬g` deletion tokens."""
    v = VARIANTS[variant]
    if o == e == a:
        return 100.0
    o, e, a = (normalize_whitespace(t, v.ws) for t in (o, e, a))
    p_sum = r_sum = 0.0
    for n in range(1, v.n + 1):
        def grams(s: str, n: int = n) -> Counter[str]:
            return Counter(s[i:i + n] for i in range(len(s) - n + 1))

        def bag(x: str) -> Counter[str]:
            d = grams(x)
            d.subtract(grams(o))
            out: Counter[str] = Counter()
            for g, k in d.items():
                if k > 0:
                    out[g] += k
                elif k < 0:
                    out["¬" + g] += -k
            return out

        eb, ab = bag(e), bag(a)
        if not eb and not ab:
            p_sum, r_sum = p_sum + 1, r_sum + 1
            continue
        tp = sum((eb & ab).values())
        fp, fn = sum(ab.values()) - tp, sum(eb.values()) - tp
        p_sum += tp / (tp + fp) if tp + fp else 0.0
        r_sum += tp / (tp + fn) if tp + fn else 0.0
    p, r = p_sum / v.n, r_sum / v.n
    b2 = v.beta ** 2
    return 100 * (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0


def test_prediction_equal_to_expected_scores_100() -> None:
    r = delta_chrf(ORIG, EXP, EXP)
    assert r.score == 100.0 and r.precision == 1.0 and r.recall == 1.0
    assert r.fp == 0 and r.fn == 0 and r.tp > 0


def test_empty_prediction_when_reference_edits_scores_0() -> None:
    r = delta_chrf(ORIG, EXP, ORIG)
    assert r.score == 0.0 and r.tp == 0 and r.fn > 0


def test_empty_prediction_when_reference_is_empty_scores_100() -> None:
    assert delta_chrf(ORIG, ORIG, ORIG).score == 100.0


def test_edit_when_no_edit_expected_scores_0() -> None:
    assert delta_chrf(ORIG, ORIG, EXP).score == 0.0


def test_deleting_what_the_reference_keeps_is_a_false_positive() -> None:
    # Reference inserts "b"; prediction inserts "b" and deletes "z": the deletion tokens are FP.
    r = delta_chrf("a z c", "a b z c", "a b c")
    assert 0 < r.precision < 1 and r.fp > 0


def test_subset_of_reference_has_high_precision_lower_recall() -> None:
    o = "x = 1\n"
    e = "x = 1\ny = 2\nz = 3\n"
    a = "x = 1\ny = 2\n"
    r = delta_chrf(o, e, a)
    assert r.precision > r.recall
    assert r.precision > 0.8


def test_half_right_change_scores_50() -> None:
    # "1" -> "2" expected, "1" -> "3" predicted: deleting "1" is right, inserting "3" is wrong.
    r = delta_chrf(ORIG, EXP, ORIG.replace("+ 1", "+ 3"))
    assert r.score == pytest.approx(50.0)
    assert r.tp == r.fp == r.fn


def test_variants_and_signatures() -> None:
    assert delta_chrf(ORIG, EXP, EXP).signature == "delta_chrf:v3|n=6|beta=0.5|ws=collapse"
    assert delta_chrf(ORIG, EXP, EXP, variant="v2").signature == "delta_chrf:v2|n=6|beta=2|ws=collapse"
    v1 = delta_chrf(ORIG, EXP, EXP, variant="v1")
    assert v1.signature == "delta_chrf:v1|n=6|beta=2|ws=remove" and v1.beta == 2.0
    sig = parse_signature(v1.signature)
    assert sig.name == "delta_chrf" and sig.version == "v1" and sig.params["ws"] == "remove"
    with pytest.raises(ValueError, match="unknown delta_chrf variant 'v9'"):
        delta_chrf(ORIG, EXP, EXP, variant="v9")


def test_beta_weights_precision_in_v3_and_recall_in_v2() -> None:
    o, e, a = "x = 1\n", "x = 1\ny = 2\nz = 3\n", "x = 1\ny = 2\n"
    v3, v2 = delta_chrf(o, e, a, variant="v3"), delta_chrf(o, e, a, variant="v2")
    assert v3.precision == v2.precision and v3.recall == v2.recall
    assert v3.score > v2.score  # precision > recall here; beta 0.5 rewards it


def test_whitespace_modes() -> None:
    o = "a(b)\n"
    spaced = "a( b )\n"
    # Collapse: added spaces are a change; remove: they vanish entirely.
    assert delta_chrf(o, o, spaced, variant="v3").score == 0.0
    assert delta_chrf(o, o, spaced, variant="v1").score == 100.0
    # Collapse: a run of spaces equals one space, a run of newlines one newline.
    assert delta_chrf("a b\n", "a b\n", "a    b\n\n\n").score == 100.0
    assert normalize_whitespace("a \t b\r\n\n c", "collapse") == "a b\n c"
    assert normalize_whitespace("a \t b\r\n\n c", "remove") == "abc"


texts = st.text(alphabet="ab(x) \n\t", max_size=14)


@settings(max_examples=300, deadline=None)
@given(texts, texts, texts, st.sampled_from(["v1", "v2", "v3"]))
def test_matches_literal_definition_and_windowed_equals_full(o: str, e: str, a: str, variant: str) -> None:
    fast = delta_chrf(o, e, a, variant=variant)
    full = delta_chrf(o, e, a, variant=variant, windowed=False)
    assert fast == full
    assert fast.score == pytest.approx(literal_delta_chrf(o, e, a, variant))


@settings(max_examples=200, deadline=None)
@given(texts, texts, texts, st.text(alphabet="xyz \n", max_size=30), st.text(alphabet="xyz \n", max_size=30))
def test_text_outside_the_changed_span_does_not_change_the_score(o: str, e: str, a: str, pre: str, post: str) -> None:
    # Fixed 5-char fences keep n-grams of the edit from reaching into the added text.
    def wrap(t: str, left: str = "", right: str = "") -> str:
        return left + "#####" + t + "#####" + right

    base = delta_chrf(wrap(o), wrap(e), wrap(a))
    moved = delta_chrf(wrap(o, pre, post), wrap(e, pre, post), wrap(a, pre, post))
    assert moved.score == pytest.approx(base.score)
    assert (moved.tp, moved.fp, moved.fn) == (base.tp, base.fp, base.fn)


@settings(max_examples=100, deadline=None)
@given(texts, texts)
def test_prediction_equal_to_nonempty_expected_edit_scores_100(o: str, e: str) -> None:
    assert delta_chrf(o, e, e).score == 100.0


@settings(max_examples=100, deadline=None)
@given(texts, st.text(alphabet="ab(x)", min_size=1, max_size=5), st.integers(0, 20),
       st.sampled_from(["v1", "v2", "v3"]))
def test_empty_prediction_scores_0_whenever_the_reference_edits(o: str, x: str, at: int, variant: str) -> None:
    # Any insertion into a text of >= 6 chars changes n-grams of every order, so no order counts
    # as "both sides empty".
    o = "#####" + o + "#####"
    at = min(at, len(o))
    assert delta_chrf(o, o[:at] + x + o[at:], o, variant=variant).score == 0.0


def test_texts_shorter_than_the_orders_count_missing_orders_as_perfect() -> None:
    # As in Zed: an order in which neither side has any n-gram scores P = R = 1, so on a
    # 1-character text an empty prediction scores 5/6 (orders 2..6) rather than 0.
    assert delta_chrf("", "a", "", variant="v1").score == pytest.approx(100 * 5 / 6)


# Multi-line texts with edits scattered over many lines exercise the vectorized path (line diff,
# per-hunk windows, int64 n-gram keys); chars include tabs, CR and a high code point (> 10 bits,
# so the alphabet is remapped).
_line = st.text(alphabet="ab(x) \t\r\u00e9\u4e2d", max_size=8)
_lines = st.lists(_line, min_size=0, max_size=12)


@st.composite
def _edited(draw: st.DrawFn, base: list[str]) -> str:
    out = list(base)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        if kind == "insert" or not out or at == len(out):
            out.insert(at, draw(_line))
        elif kind == "delete":
            del out[at]
        else:
            out[at] = draw(_line)
    return "\n".join(out)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(["v1", "v2", "v3"]), st.booleans())
def test_vectorized_path_matches_full_texts_on_scattered_edits(data: st.DataObject, variant: str,
                                                                force: bool) -> None:
    from nextedit.metrics import chrf

    base = data.draw(_lines)
    o = "\n".join(base)
    e, a = data.draw(_edited(base)), data.draw(_edited(base))
    saved = chrf._NUMPY_MIN_CHARS
    chrf._NUMPY_MIN_CHARS = 0 if force else saved
    try:
        fast = delta_chrf(o, e, a, variant=variant)
    finally:
        chrf._NUMPY_MIN_CHARS = saved
    assert fast == delta_chrf(o, e, a, variant=variant, windowed=False)
    assert fast.score == pytest.approx(literal_delta_chrf(o, e, a, variant))


def test_too_many_distinct_chars_fall_back_to_counting_substrings() -> None:
    from nextedit.metrics import chrf

    o = "".join(chr(0x4E00 + i) for i in range(1500)) + "\nend\n"
    e = o.replace("end", "fin")
    a = o[:700] + "x" + o[701:]
    saved = chrf._NUMPY_MIN_CHARS
    try:
        for threshold in (saved, 0):  # small windows, then the whole-text path
            chrf._NUMPY_MIN_CHARS = threshold
            for texts in ((o, e, a), (o, e, e), (o, o, a), (o, e, o), (o, a, e), (e, o, a)):
                assert delta_chrf(*texts) == delta_chrf(*texts, windowed=False)
    finally:
        chrf._NUMPY_MIN_CHARS = saved


def reference_counts(o: str, e: str, a: str, variant: str) -> tuple[int, int, int]:
    """Summed TP/FP/FN read literally off the definition: full normalized texts, Counter per order."""
    v = VARIANTS[variant]
    o, e, a = (normalize_whitespace(t, v.ws) for t in (o, e, a))
    tp = fp = fn = 0
    for n in range(1, v.n + 1):
        def grams(s: str, n: int = n) -> Counter[str]:
            return Counter(s[i:i + n] for i in range(len(s) - n + 1))

        go = grams(o)
        de, da = grams(e), grams(a)
        de.subtract(go)
        da.subtract(go)
        for g in set(de) | set(da):
            x, y = de[g], da[g]
            t = min(abs(x), abs(y)) if x * y > 0 else 0
            tp, fp, fn = tp + t, fp + abs(y) - t, fn + abs(x) - t
    return tp, fp, fn


# Code-like ASCII lines (indentation runs, tabs, blank lines) for the edit shapes the metrics bench
# times: one hunk, several hunks, an edit on many lines, a whole rewrite; predictions that equal
# the expected text, the original, an edit of either, or another text altogether.
_code_line = st.text(alphabet="ab_(x)= \t:", max_size=12).map(lambda s: "    " * (len(s) % 3) + s)
_code = st.lists(_code_line, min_size=0, max_size=40)


@st.composite
def _shaped(draw: st.DrawFn, base: list[str]) -> list[str]:
    shape = draw(st.sampled_from(["same", "one", "several", "scattered", "rewrite"]))
    out = list(base)
    if shape == "rewrite":
        return draw(_code)
    count = {"same": 0, "one": 1, "several": 3, "scattered": max(1, len(out) // 3)}[shape]
    for _ in range(count):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "append"]))
        if kind == "insert" or at == len(out):
            out.insert(at, draw(_code_line))
        elif kind == "delete":
            del out[at]
        elif kind == "append":
            out[at] += draw(_code_line)
        else:
            out[at] = draw(_code_line)
    return out


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(["v1", "v3"]), st.sampled_from(["auto", "numpy", "numpy+spans"]))
def test_counts_match_a_reference_on_every_edit_shape(data: st.DataObject, variant: str, path: str) -> None:
    from nextedit.metrics import chrf

    base = data.draw(_code)
    expected = data.draw(_shaped(base))
    actual = data.draw(st.sampled_from(["expected", "original", "edit expected", "edit original", "other"]))
    if actual == "expected":
        lines = expected
    elif actual == "original":
        lines = base
    elif actual == "other":
        lines = data.draw(_code)
    else:
        lines = data.draw(_shaped(expected if actual == "edit expected" else base))
    o, e, a = "\n".join(base) + "\n", "\n".join(expected) + "\n", "\n".join(lines) + "\n"
    saved = chrf._NUMPY_MIN_CHARS, chrf._SPAN_MIN_CHARS
    if path != "auto":  # small texts: force the vectorized path, and its line-diff narrowing
        chrf._NUMPY_MIN_CHARS, chrf._SPAN_MIN_CHARS = 0, (0 if path == "numpy+spans" else saved[1])
    try:
        fast = delta_chrf(o, e, a, variant=variant)
    finally:
        chrf._NUMPY_MIN_CHARS, chrf._SPAN_MIN_CHARS = saved
    assert fast == delta_chrf(o, e, a, variant=variant, windowed=False)
    assert (fast.tp, fast.fp, fast.fn) == reference_counts(o, e, a, variant)
    assert fast.score == pytest.approx(literal_delta_chrf(o, e, a, variant))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \t\r\n\x0b\x0c\x1c\x1f", max_size=40), st.integers(1, 30), st.text(alphabet="é ", max_size=2))
def test_whitespace_normalization_matches_the_regex_definition(text: str, repeat: int, extra: str) -> None:
    import re

    text = text * repeat + extra  # long ASCII texts take the byte-array path, others the string one
    collapse = re.sub(r"[\r\n]+", "\n", re.sub(r"[^\S\r\n]+", " ", text))
    assert normalize_whitespace(text, "collapse") == collapse
    assert normalize_whitespace(text, "remove") == re.sub(r"\s+", "", text)


# Texts counted whole (`_sums_whole`: all three texts normalized as one byte array, one sort) and
# through the changed windows must agree with the definition on every shape, including texts that
# normalize to fewer than 6 chars (or to nothing under v1) and every kind of ASCII whitespace.
_ws_line = st.text(alphabet="ab_(x)= \t\r\x0b\x0c\x1c:", max_size=12).map(lambda s: "    " * (len(s) % 3) + s)


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(["v1", "v3"]), st.sampled_from(["whole", "windows", "windows+spans"]))
def test_whole_text_and_window_counting_match_a_reference(data: st.DataObject, variant: str, path: str) -> None:
    from nextedit.metrics import chrf

    code = st.lists(_ws_line, min_size=0, max_size=30)
    base = data.draw(code)
    expected = data.draw(st.one_of(_shaped(base), code))
    actual = data.draw(st.one_of(st.just(expected), st.just(base), _shaped(expected), _shaped(base), code))
    o, e, a = "\n".join(base), "\n".join(expected), "\n".join(actual)
    saved = chrf._NUMPY_MIN_CHARS, chrf._SPAN_MIN_CHARS, chrf._WHOLE_MIN_SHARE
    chrf._NUMPY_MIN_CHARS = 0
    chrf._WHOLE_MIN_SHARE = 0.0 if path == "whole" else float("inf")
    if path == "windows+spans":
        chrf._SPAN_MIN_CHARS = 0
    try:
        fast = delta_chrf(o, e, a, variant=variant)
    finally:
        chrf._NUMPY_MIN_CHARS, chrf._SPAN_MIN_CHARS, chrf._WHOLE_MIN_SHARE = saved
    assert fast == delta_chrf(o, e, a, variant=variant, windowed=False)
    assert (fast.tp, fast.fp, fast.fn) == reference_counts(o, e, a, variant)
