"""The settle report: summary JSON plus a self-contained HTML page (inline CSS and SVG histogram, no scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import orjson

from nextedit.evaluate.report import fmt
from nextedit.settle.band import sidecar

__all__ = ["histogram_svg", "render_html", "report_paths", "write_report"]

WIDTH, HEIGHT, PAD = 600, 180, 40
TITLES = {"kept": "kept (in the band)", "too_trivial": "too trivial (closest candidate too close)",
          "too_noisy": "too noisy (every candidate far)", "no_candidate": "no candidate applied"}


def histogram_svg(summary: dict[str, Any]) -> dict[str, Any]:
    """Geometry of the best-distance histogram: bars, axis ticks and the band's two lines (x from 0 to the
    last bin edge; the last bin also holds everything beyond it)."""
    counts: list[int] = summary["histogram"]["counts"]
    edges: list[float] = summary["histogram"]["edges"]
    top = max(counts, default=0) or 1
    n = len(counts) or 1
    bw = WIDTH / n
    right = edges[-1] if edges else 1.0

    def x(v: float) -> float:
        return PAD + max(0.0, min(1.0, v / right)) * WIDTH

    band = summary["band"]
    by = summary["histogram"].get("by_decision") or {"kept": counts}
    bars = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        y = PAD + HEIGHT
        # One segment per decision, stacked: a bin may hold exact zeros (too trivial) and kept ones.
        for key in ("too_trivial", "kept", "too_noisy"):
            k = by.get(key, [0] * n)[i]
            if not k:
                continue
            h = HEIGHT * k / top
            y -= h
            bars.append({"x": PAD + i * bw, "y": y, "w": max(bw - 1, 1), "h": h, "count": k, "total": c,
                         "lo": lo, "hi": hi, "cls": f"bar {key}", "decision": key})
    digits = 1 if right >= 0.5 else 2 if right >= 0.05 else 3
    ticks = [{"x": x(right * t / 10), "label": f"{right * t / 10:.{digits}f}"} for t in range(11)]
    low_x, high_x = x(band["low"]), x(band["high"])
    labels = [{"x": low_x + (3 if low_x < PAD + 90 else -3), "y": PAD - 16,
               "anchor": "start" if low_x < PAD + 90 else "end", "text": f"low {band['low']:.4g}"},
              {"x": high_x + (3 if high_x < WIDTH - 60 else -3), "y": PAD - 16 + (11 if high_x - low_x < 110 else 0),
               "anchor": "start" if high_x < WIDTH - 60 else "end", "text": f"high {band['high']:.4g}"}]
    return {"width": WIDTH + 2 * PAD + 40, "height": HEIGHT + 2 * PAD + 10, "bars": bars, "ticks": ticks,
            "base": PAD + HEIGHT, "low_x": low_x, "high_x": high_x, "top": top, "pad": PAD, "labels": labels}


def region_diff(original: str, settled: str, path: str = "") -> str:
    """The unified diff from the region at request time to the settled text ("" when they are equal)."""
    from nextedit import patch as patchlib

    return patchlib.make(original, settled, path=path or "file")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nextedit.settle", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.globals.update(titles=TITLES, region_diff=region_diff)
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
