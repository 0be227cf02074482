"""The settle report: summary JSON plus a self-contained HTML page (inline CSS and SVG histogram, no scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import orjson

from nextedit.evaluate.report import fmt
from nextedit.settle.band import sidecar

__all__ = ["histogram_svg", "render_html", "report_paths", "write_report"]

WIDTH, HEIGHT, PAD = 600, 180, 30
TITLES = {"kept": "kept (in the band)", "too_trivial": "too trivial (closest candidate too close)",
          "too_noisy": "too noisy (every candidate far)", "no_candidate": "no candidate applied"}


def histogram_svg(summary: dict[str, Any]) -> dict[str, Any]:
    """Geometry of the best-distance histogram: bars, axis ticks and the band's two lines (0..1 on x)."""
    counts: list[int] = summary["histogram"]["counts"]
    edges: list[float] = summary["histogram"]["edges"]
    top = max(counts, default=0) or 1
    n = len(counts) or 1
    bw = WIDTH / n

    def x(v: float) -> float:
        return PAD + max(0.0, min(1.0, v)) * WIDTH

    band = summary["band"]
    bars = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        inside = hi > band["low"] and lo < band["high"]
        h = HEIGHT * c / top
        bars.append({"x": PAD + i * bw, "y": PAD + HEIGHT - h, "w": max(bw - 1, 1), "h": h, "count": c,
                     "lo": lo, "hi": hi, "cls": "bar in" if inside else "bar out"})
    ticks = [{"x": x(t / 10), "label": f"{t / 10:.1f}"} for t in range(11)]
    return {"width": WIDTH + 2 * PAD, "height": HEIGHT + 2 * PAD + 10, "bars": bars, "ticks": ticks,
            "base": PAD + HEIGHT, "low_x": x(band["low"]), "high_x": x(band["high"]), "top": top, "pad": PAD}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nextedit.settle", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.globals.update(titles=TITLES)
    return env


def render_html(summary: dict[str, Any], *, title: str = "nextedit settle") -> str:
    """The report page of a settle summary."""
    return _environment().get_template("settle.html.j2").render(s=summary, svg=histogram_svg(summary), title=title)


def report_paths(out: str | Path) -> tuple[Path, Path]:
    """Where the report of output `out` goes: `OUT.report.html` and `OUT.summary.json` beside it."""
    return sidecar(out, ".report.html"), sidecar(out, ".summary.json")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_report(summary: dict[str, Any], out: str | Path, *, title: str = "nextedit settle") -> tuple[Path, Path]:
    """Write the HTML report and the summary JSON for output `out`; returns (html, json) paths."""
    html, js = report_paths(out)
    html.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(js, orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    _write_atomic(html, render_html(summary, title=title).encode("utf-8"))
    return html, js
