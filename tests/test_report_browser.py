"""The evaluation report in real headless Chromium: plots render, the example filter works, hostile values stay text."""

from __future__ import annotations

import pytest
from browser_support import CHROMIUM, FLAGS, HAVE_CHROMIUM, SKIP_REASON
from eval_fixtures import dataset, predict_and_score

from nextedit.evaluate.report import write_report
from nextedit.evaluate.summary import summarize_examples

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason=SKIP_REASON)
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[str, dict]:
    examples = predict_and_score(dataset())
    for i, ex in enumerate(examples):
        ex.predictions[0].latency_ms = 1.0 + i
        ex.predictions[1].latency_ms = 20.0 + 3 * i
    examples[-1].predictions[1].error = "parse error: " + HOSTILE  # one failed prediction, with a hostile reason
    examples[-1].snapshot.path = HOSTILE + ".ts"
    summary = summarize_examples(examples, input_name=HOSTILE, resamples=100, baseline="noop")
    path = write_report(summary, tmp_path_factory.mktemp("rep"), title="report " + HOSTILE)
    return path.as_uri(), summary


def _expected(summary: dict, provider: str, outcome: str) -> int:
    return sum(1 for v in summary["views"]["examples"]
               if outcome in v["predictions"].get(provider, {}).get("outcome", []))


def test_plots_render_and_the_filter_selects_examples(report) -> None:
    url, summary = report
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url) if r.url != url else None)
            page.goto(url)
            assert page.title() == "report " + HOSTILE  # shown as text
            # plots: the distribution has one box per provider, the latency plot has bars, all with a size
            dist = page.locator("#plot-distribution")
            assert dist.locator("rect.box").count() == 2
            assert dist.bounding_box()["width"] > 300 and dist.bounding_box()["height"] > 60
            bars = page.locator("#plot-latency rect.lat")
            assert bars.count() > 3
            assert sum(int(bars.nth(i).get_attribute("data-count")) for i in range(bars.count())) == 24
            assert page.locator("svg.paired circle").count() == 4  # propagate vs noop, 4 metrics
            assert page.locator("svg.paired circle.better").count() >= 1
            # the filter: every example at first, then only those whose chosen provider has the outcome
            examples = page.locator(".ex")
            assert examples.count() == 12 and page.locator("#f-count").inner_text() == "12"
            for provider, outcome in [("propagate", "better"), ("propagate", "same"), ("noop", "no-edit"),
                                      ("propagate", "error"), ("noop", "worse")]:
                page.select_option("#f-provider", provider)
                page.select_option("#f-outcome", outcome)
                want = _expected(summary, provider, outcome)
                assert page.locator(".ex:visible").count() == want, (provider, outcome)
                assert page.locator("#f-count").inner_text() == str(want)
                for i in range(page.locator(".ex:visible").count()):
                    tags = page.locator(".ex:visible").nth(i).locator(f'.pred.match[data-provider="{provider}"]')
                    assert outcome in tags.get_attribute("data-outcome").split()
            assert _expected(summary, "propagate", "error") == 1 and _expected(summary, "noop", "worse") == 0
            page.select_option("#f-provider", "*")
            page.select_option("#f-outcome", "*")
            assert page.locator(".ex:visible").count() == 12
            # the cursor and the editable region are marked in every example
            assert page.locator(".ex .region .cursor").count() == 12
            assert page.locator(".ex .region .ed").count() >= 12
            # hostile values are text: no handler ran, nothing was fetched, no CSP complaint
            assert page.evaluate("window.__pwned") is None
            assert HOSTILE in page.locator("#ex-11").inner_text()
            assert requests == [] and problems == []
        finally:
            browser.close()
