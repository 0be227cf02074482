"""`nextedit report production --since DATE`: per-arm acceptance, kept rate, latency and verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

report_app = typer.Typer(help="Reports over production data (the serve event store).", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `report` command group."""
    app.add_typer(report_app, name="report")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _check_since(since: str | None) -> str | None:
    """`--since` as given when it is an ISO date or time; StoreError naming the option otherwise."""
    from datetime import datetime

    from nextedit.serve.store import StoreError

    if since is None:
        return None
    try:
        datetime.fromisoformat(since)
    except ValueError:
        raise StoreError(f"--since {since!r}: not an ISO date or time (e.g. 2026-11-01 or "
                         "2026-11-01T12:00:00Z)") from None
    return since


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


@report_app.command("production")
def production(
    since: Annotated[str | None, typer.Option(help="Only events at or after this ISO date/time (e.g. 2026-11-01).")] = None,
    config: Annotated[Path | None, typer.Option(help="Server config TOML: store, arms, shares, control.")] = None,
    store: Annotated[str | None, typer.Option(help="Event store (SQLite path or postgresql:// URL); "
                                                   "default: the config's store.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Also write the dashboard page (HTML) here.")] = None,
) -> None:
    """Per arm: acceptance rate with a cluster-robust 95% CI, kept rate, latency p50/p90/p99, tokens,
    no-edit and reversal rates, syntax-error delta, and a verdict against the control arm."""
    from nextedit.serve.config import ServeConfig, ServeConfigError, load_config
    from nextedit.serve.dashboard import render_report_html
    from nextedit.serve.production import production_report
    from nextedit.serve.store import StoreError, open_store

    try:
        since = _check_since(since)
        cfg = load_config(config) if config else None
        url = store or (cfg.store if cfg else None)
        if url is None:
            url = ServeConfig.model_fields["store"].default  # where `nextedit serve` writes by default
            if not Path(url).exists():
                raise StoreError(f"no event store: ./{url} (serve's default store) does not exist; "
                                 "give --store PATH or --config SERVE.toml")
        if "://" not in url and not Path(url).exists():
            raise StoreError(f"{url}: no such event store")
        ev_store = open_store(url)
    except (ServeConfigError, StoreError) as exc:
        _err.print(f"[red]error[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    report = production_report(ev_store, cfg, since)
    table = Table(title=f"production since {since or 'the beginning'} ({report.events} events)")
    for col in ("arm", "users", "shown", "accepted", "acceptance [95% CI]", "vs control [95% CI]", "kept",
                "p50/p90/p99 ms", "tok in/out", "no-edit", "reversal", "syntax Δ", "verdict"):
        table.add_column(col)
    for a in report.arms:
        acc = a.acceptance
        ci = f"{_pct(acc.value)} [{_pct(acc.low)}, {_pct(acc.high)}]" if acc.low is not None else _pct(acc.value)
        d = a.acceptance_vs_control
        dtxt = (f"{100 * d.diff:+.1f} pts [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"
                if d is not None and d.diff is not None and d.low is not None else "–")
        tokens = ("–" if a.input_tokens_per_request is None
                  else f"{a.input_tokens_per_request:.0f}/{a.output_tokens_per_request:.0f}")
        name = a.name + (" (control)" if a.control else "") + (" (shadow)" if a.shadow else "")
        table.add_row(name, str(a.users), str(a.shown), str(a.accepted), ci, dtxt, _pct(a.kept.value),
                      f"{_ms(a.latency_p50)}/{_ms(a.latency_p90)}/{_ms(a.latency_p99)}", tokens,
                      _pct(a.no_edit_rate), _pct(a.reversal_rate),
                      "–" if a.syntax_error_delta is None else f"{a.syntax_error_delta:+.2f}", a.verdict)
    from nextedit.tables import print_table

    print_table(table, _out)
    for a in report.arms:
        if a.jumps:
            j = a.jumps
            _out.print(f"jumps, arm {escape(a.name)}: {j.get('shown', 0)} shown, {j.get('taken', 0)} taken "
                       f"({_pct(a.jump_acceptance)}), {j.get('applied', 0)} edits applied there, "
                       f"{j.get('rejected', 0)} rejected")
    if report.srm_p is not None:
        status = "ok" if report.srm_ok else "MISMATCH: assignment broken, no verdicts"
        _out.print(f"sample ratio check: chi-square p = {report.srm_p:.3g} ({status})")
    _out.print(report.method)
    if json_out:
        json_out.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    if html_out:
        html_out.write_text(render_report_html(report), encoding="utf-8")
