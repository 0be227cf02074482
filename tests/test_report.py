"""The HTML report: self-contained, and every number it shows matches the summary JSON."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
from eval_fixtures import dataset, predict_and_score, rename_example

from nextedit.evaluate.report import print_console, render_html, resolve, write_report
from nextedit.evaluate.summary import summarize_examples
from nextedit.record import Usage


class _Numbers(HTMLParser):
    """Collects (data-ptr, shown text) of every number, and the worst-example blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[tuple[str, str]] = []
        self._open: list[str | None] = []
        self._text: list[str] = []
        self.worst_ids: list[str] = []
        self.cursor_marks = 0
        self.attrs_seen: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.attrs_seen += [(k, v or "") for k, v in attrs]
        if (a.get("id") or "").startswith("worst-"):
            self.worst_ids.append(a["id"] or "")
        if a.get("class") == "cursor":
            self.cursor_marks += 1
        self._open.append(a.get("data-ptr"))
        if a.get("data-ptr"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        ptr = self._open.pop() if self._open else None
        if ptr:
            self.numbers.append((ptr, "".join(self._text).strip()))

    def handle_data(self, data: str) -> None:
        self._text.append(data)


@pytest.fixture(scope="module")
def summary() -> dict:
    examples = predict_and_score(dataset())
    for i, ex in enumerate(examples):  # serving cost of the propagate predictions
        ex.predictions[1].latency_ms = 20.0 + 3 * i
        ex.predictions[1].usage = Usage(input_tokens=100 + i, output_tokens=7, cost_usd=0.0005)
    return summarize_examples(examples, input_name="fixture", resamples=200)


def _parse(html: str) -> _Numbers:
    parser = _Numbers()
    parser.feed(html)
    return parser


def test_every_number_in_the_report_matches_the_summary_json(summary: dict) -> None:
    parsed = _parse(render_html(summary))
    assert len(parsed.numbers) > 100
    for ptr, shown in parsed.numbers:
        value = resolve(summary, ptr)
        assert isinstance(value, (int, float)), ptr
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        assert abs(float(shown) - value) <= 0.5 * 10 ** -decimals + 1e-9, (ptr, shown, value)


def test_headline_numbers_are_shown_for_each_provider(summary: dict) -> None:
    shown = dict(_parse(render_html(summary)).numbers)
    for provider in ("noop", "propagate"):
        assert float(shown[f"/providers/{provider}/means/delta_chrf"]) == pytest.approx(
            summary["providers"][provider]["means"]["delta_chrf"], abs=0.005)
        assert f"/providers/{provider}/ci/delta_chrf/0" in shown
        assert f"/providers/{provider}/micro/exact_lines/f1" in shown
    # per-language breakdown: python, rust and typescript rows for both providers
    for lang in ("python", "rust", "typescript"):
        assert f"/by_language/propagate/{lang}/means/delta_chrf" in shown
    # latency percentiles and usage sums of the provider that reports them
    assert shown["/providers/propagate/latency_ms/p50"] == "36"  # median of 20, 23, ..., 53 is 36.5
    assert shown["/providers/propagate/usage/output_tokens"] == "84"
    assert "/providers/noop/latency_ms/p50" not in shown
    # propagate solves every rename: its python mean is exactly 100
    assert shown["/by_language/propagate/python/means/delta_chrf"] == "100.00"


def test_histogram_bars_add_up_to_the_scored_predictions(summary: dict) -> None:
    shown = _parse(render_html(summary)).numbers
    for provider in ("noop", "propagate"):
        for metric in ("delta_chrf", "reversal_ratio", "kept_rate"):
            bars = [int(t) for p, t in shown if p.startswith(f"/histograms/{provider}/{metric}/counts/")]
            assert len(bars) == 10
            assert sum(bars) == summary["providers"][provider]["n"][metric] == 12


def test_worst_examples_are_capped_ordered_and_show_the_cursor() -> None:
    examples = predict_and_score([rename_example(i) for i in range(25)], providers=("noop",))
    summary = summarize_examples(examples, resamples=50)
    parsed = _parse(render_html(summary))
    assert len(parsed.worst_ids) == 20
    assert parsed.cursor_marks >= 20  # one per worst example (plus the legend)
    values = [e["values"]["delta_chrf"] for e in summary["worst"]["noop"]]
    assert values == sorted(values) and len(values) == 20


def test_report_is_self_contained(summary: dict, tmp_path) -> None:
    path = write_report(summary, tmp_path / "rep")
    html = path.read_text()
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 1 and html.lower().count("<script") == 1  # the example filter, inline
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html and "default-src 'none'" in html
    assert not [v for k, v in _parse(html).attrs_seen if k in ("src", "href")]
    # 3 histograms x 2 providers, the deltaChrF distribution, 4 paired-difference panels, latency
    assert html.count("<svg") == 6 + 1 + 4 + 1
    assert re.search(r"delta_chrf:v3\|n=6", html)


def test_paired_differences_and_outcomes_against_the_baseline(summary: dict) -> None:
    assert summary["paired"]["baseline"] == "propagate"  # preferred over noop when both ran
    d = summary["paired"]["differences"]["noop"]["delta_chrf"]
    # noop scores 0 on the 6 renames propagate solves (100), and the same on the other 6
    assert d["shared_examples"] == 12 and d["difference"] == pytest.approx(-50.0)
    assert d["run_lower"] == 6 and d["ties"] == 6 and d["ci"][1] < 0 and d["significant"]
    views = {v["id"]: v for v in summary["views"]["examples"]}
    assert len(views) == 12 == summary["views"]["total"]
    assert views["rename-0"]["predictions"]["noop"]["outcome"] == ["worse", "no-edit"]
    assert views["rename-0"]["predictions"]["propagate"]["outcome"] == ["baseline"]
    assert views["quiet-0"]["predictions"]["noop"]["outcome"] == ["same", "no-edit"]
    shown = dict(_parse(render_html(summary)).numbers)
    assert float(shown["/paired/differences/noop/delta_chrf/difference"]) == pytest.approx(-50.0)
    assert float(shown["/plots/delta_chrf/propagate/mean"]) == pytest.approx(
        summary["providers"]["propagate"]["means"]["delta_chrf"], abs=0.005)
    assert shown["/plots/latency_ms/n/propagate"] == "12"


def test_baseline_can_be_named_and_must_exist() -> None:
    from nextedit.evaluate.summary import choose_baseline

    assert choose_baseline(["local", "noop"]) == "noop"
    assert choose_baseline(["b", "a"]) == "a"
    assert choose_baseline(["noop", "propagate"], "noop") == "noop"
    with pytest.raises(ValueError, match="baseline 'x' is none of the providers: noop"):
        choose_baseline(["noop"], "x")


def test_region_view_marks_the_editable_region_and_the_cursor() -> None:
    from nextedit.evaluate.summary import _region_lines
    from nextedit.record import Snapshot

    text = "".join(f"line {i}\n" for i in range(100))
    start = text.index("line 50")
    snap = Snapshot(path="a.txt", text=text, cursor=start + 2, editable=(start, text.index("line 53")), start_line=10)
    region = _region_lines(snap)
    rows = {line["n"]: line for line in region["lines"]}
    assert (min(rows), max(rows)) == (10 + 47 + 1, 10 + 55 + 1)  # 3 lines of context either side
    assert rows[61]["parts"] == [["li", "ed"], ["▌", "cursor"], ["ne 50", "ed"]]
    assert [p[1] for p in rows[63]["parts"]] == ["ed"] and rows[64]["parts"] == [["line 53", ""]]
    long = Snapshot(path="a.txt", text=text, cursor=start)  # the whole excerpt is editable
    lines = _region_lines(long)["lines"]
    assert len(lines) == 40 and any(p[1] == "cursor" for line in lines for p in line["parts"])


def test_hostile_values_are_escaped_in_the_report() -> None:
    examples = predict_and_score(dataset(2, 0, 0))
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    for ex in examples:
        ex.snapshot.path = hostile + ".py"
        ex.predictions[0].provider = hostile
        ex.predictions[0].error = hostile
    html = render_html(summarize_examples(examples, resamples=20), title=hostile)
    assert "<img" not in html and html.lower().count("<script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_console_table_prints_providers_and_signature(summary: dict) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    print_console(summary, console)
    text = console.export_text()
    assert "propagate" in text and "noop" in text
    assert f"{summary['providers']['propagate']['means']['delta_chrf']:.2f}" in text
    assert "delta_chrf:v3|n=6|beta=0.5|ws=collapse" in text
