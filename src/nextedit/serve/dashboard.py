"""The /dashboard page: the production report as one self-contained HTML page with inline SVG charts.

Every value from the store (arm names, model versions, reasons: client data) is escaped: the
templates autoescape, and the SVG charts are built from escaped parts (`Markup`), never `|safe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from nextedit.serve.config import ServeConfig
from nextedit.serve.production import ProductionReport, production_report
from nextedit.serve.store import EventStore

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "ms":
        return f"{value:.1f}"
    if kind == "signed_pct":
        return f"{100 * value:+.1f}%"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


_env.filters["fmt"] = _fmt


def bar_chart(rows: list[tuple[str, float | None, float | None, float | None]], *, width: int = 520,
              scale: float = 1.0, unit: str = "%", title: str = "") -> Markup:
    """A horizontal bar chart as SVG: one bar per (label, value, low, high), whiskers for the interval.
    Labels and title are escaped; the result is markup safe to put in a page as is."""
    bar_h, gap, left = 22, 10, 110
    height = len(rows) * (bar_h + gap) + 30
    top = max([scale] + [v for r in rows for v in r[1:] if v is not None])
    span = width - left - 60

    def x(v: float) -> float:
        return left + span * max(0.0, v) / top if top else left

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
              f'aria-label="{escape(title)}">')]
    for i, (label, value, low, high) in enumerate(rows):
        y = 10 + i * (bar_h + gap)
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{left}" y="{y + 15}" font-size="12" fill="#888">no data</text>')
            continue
        parts.append(f'<rect x="{left}" y="{y}" width="{x(value) - left:.1f}" height="{bar_h}" fill="#4c78a8"/>')
        if low is not None and high is not None:
            yc = y + bar_h / 2
            parts.append(f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{yc}" y2="{yc}" stroke="#222" stroke-width="2"/>')
            for v in (low, high):
                parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{y + 4}" y2="{y + bar_h - 4}" stroke="#222"/>')
        shown = f"{100 * value:.1f}%" if unit == "%" else f"{value:.1f} {unit}"
        parts.append(f'<text x="{x(max(value, high or 0)) + 6:.1f}" y="{y + 15}" font-size="12">{shown}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def render_report_html(report: ProductionReport) -> str:
    """The dashboard HTML for a report (also written by `nextedit report production --html`)."""
    live = [a for a in report.arms if not a.shadow]
    acceptance_svg = bar_chart([(a.name, a.acceptance.value, a.acceptance.low, a.acceptance.high) for a in live],
                               title="acceptance rate by arm")
    kept_svg = bar_chart([(a.name, a.kept.value, a.kept.low, a.kept.high) for a in live], title="kept rate by arm")
    latency_rows = []
    for a in report.arms:
        latency_rows += [(f"{a.name} p50", a.latency_p50, None, None), (f"{a.name} p99", a.latency_p99, None, None)]
    latency_svg = bar_chart(latency_rows, unit="ms", scale=300.0, title="latency by arm")
    return _env.get_template("dashboard.html.j2").render(
        report=report, acceptance_svg=acceptance_svg, kept_svg=kept_svg, latency_svg=latency_svg)


def render_login(error: str | None) -> str:
    """The /login page: a form that posts the admin token once and gets an HttpOnly session cookie."""
    return _env.get_template("login.html.j2").render(error=error)


def render_dashboard(store: EventStore, config: ServeConfig | None, since: str | None) -> str:
    """Build the report from the store and render it."""
    return render_report_html(production_report(store, config, since))
