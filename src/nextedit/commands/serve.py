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
        workers: Annotated[int, typer.Option(min=1, help="Worker processes sharing the port; they share "
                                             "cancellation, the kept-rate join, reloads and rate limits through "
                                             "the config's `shared` state (docs/serving.md, Scaling out).")] = 1,
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
            from nextedit.serve.shared import SharedStateError
            from nextedit.serve.store import StoreError
        except ImportError as exc:
            _err.print(f"[red]error[/red] serving needs the serve extra ({exc.name} missing): "
                       "pip install 'nextedit[serve]'")
            raise typer.Exit(2) from None
        try:
            cfg = load_config(config)
            if workers > 1 and cfg.shared == "memory":
                raise ServeConfigError(f"{config}: field shared: 'memory' is one process only; "
                                       f"--workers {workers} needs a SQLite file or a postgresql:// URL")
            app_ = create_app(cfg, config_path=config) if workers == 1 else None
            if app_ is None:  # the workers build their apps: check the store and the shared state here first
                from nextedit.serve.shared import open_shared, shared_url
                from nextedit.serve.store import open_store

                open_shared(shared_url(cfg.shared, open_store(cfg.store).url)).close()
        except (ServeConfigError, StoreError, SharedStateError, ValueError) as exc:
            _err.print(f"[red]error[/red] {exc}")
            raise typer.Exit(2) from None
        if not cfg.auth.keys():
            _err.print("[yellow]warning[/yellow] no API keys configured: every /v1 request will be refused")
        _err.print(f"nextedit serve: arms {', '.join(a.name for a in cfg.arms)}; store {cfg.store}; "
                   f"{workers} worker{'s' if workers > 1 else ''}; "
                   f"http://{host or cfg.host}:{port if port is not None else cfg.port}")
        bind = {"host": host or cfg.host, "port": port if port is not None else cfg.port,
                "log_level": log_level, "access_log": False}
        if app_ is not None:
            uvicorn.run(app_, **bind)
            return
        import os
        import secrets

        from nextedit.serve.config import WORKERS_ID_KEY_ENV
        from nextedit.serve.factory import CONFIG_ENV

        os.environ[CONFIG_ENV] = str(config.resolve())
        if not cfg.auth.id_key():  # every worker must verify the ids the others issue
            os.environ[WORKERS_ID_KEY_ENV] = secrets.token_hex(32)
        uvicorn.run("nextedit.serve.factory:app", factory=True, workers=workers, **bind)
