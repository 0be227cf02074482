"""`nextedit serve CONFIG.toml`: run the prediction server (A/B arms, events, metrics, dashboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""

    @app.command("serve")
    def serve_command(
        config: Annotated[Path, typer.Argument(help="Server config TOML (arms, deadline_ms, store, [auth]).")],
        host: Annotated[str | None, typer.Option(help="Bind address (default: the config's host, 127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default: the config's port; 0 picks a free one).")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    ) -> None:
        """Serve next-edit predictions over HTTP: POST /v1/predict, /v1/events; /metrics; /dashboard.

        Shares and arms change without a restart: edit the config and POST /admin/reload with the
        admin token. See docs/serving.md.
        """
        if port is not None and not 0 <= port <= 65535:
            _err.print(f"[red]error[/red] --port {port}: not a TCP port (0-65535; 0 picks a free one)")
            raise typer.Exit(2)
        try:
            import uvicorn

            from nextedit.serve.app import create_app
            from nextedit.serve.config import ServeConfigError, load_config
            from nextedit.serve.store import StoreError
        except ImportError as exc:
            _err.print(f"[red]error[/red] serving needs the serve extra ({exc.name} missing): "
                       "pip install 'nextedit[serve]'")
            raise typer.Exit(2) from None
        try:
            cfg = load_config(config)
            app_ = create_app(cfg, config_path=config)
        except (ServeConfigError, StoreError, ValueError) as exc:
            _err.print(f"[red]error[/red] {exc}")
            raise typer.Exit(2) from None
        if not cfg.auth.keys():
            _err.print("[yellow]warning[/yellow] no API keys configured: every /v1 request will be refused")
        _err.print(f"nextedit serve: arms {', '.join(a.name for a in cfg.arms)}; store {cfg.store}; "
                   f"http://{host or cfg.host}:{port if port is not None else cfg.port}")
        uvicorn.run(app_, host=host or cfg.host, port=port if port is not None else cfg.port,
                    log_level=log_level, access_log=False)
