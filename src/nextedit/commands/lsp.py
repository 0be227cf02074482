"""`nextedit lsp`: run the next-edit language server on stdio for any editor with an LSP client."""

from __future__ import annotations

import logging
import sys

import typer


def register(app: typer.Typer) -> None:
    """Add the `lsp` command."""

    @app.command("lsp")
    def lsp(
        server: str = typer.Option(..., "--server", envvar="NEXTEDIT_SERVER",
                                   help="Base URL of `nextedit serve`, e.g. http://127.0.0.1:8765."),
        token: str = typer.Option(None, "--token", envvar="NEXTEDIT_TOKEN",
                                  help="API key sent as a bearer token (prefer the environment variable)."),
        collect: bool = typer.Option(False, "--collect/--no-collect",
                                     help="Consent to data collection: the server may keep the code of your "
                                          "requests and the settled text of predicted-for regions (without it, it "
                                          "keeps no code). Off by default."),
        settle_quiet_s: float = typer.Option(10.0, "--settle-quiet-s", min=0.01,
                                             help="Seconds a region must stay unedited to count as settled."),
        debounce_ms: int = typer.Option(100, "--debounce-ms", min=0,
                                        help="Wait this long after a keystroke before asking for a prediction."),
        timeout_s: float = typer.Option(2.0, "--timeout-s", min=0.01, help="Prediction request timeout."),
        user_id: str = typer.Option(None, "--user-id", help="User id sent to the server (default: a hash "
                                                            "of the OS user and host name)."),
        arm: str = typer.Option(None, "--arm", help="Ask the server for this experiment arm."),
        log_level: str = typer.Option("WARNING", "--log-level", help="Log level on stderr."),
    ) -> None:
        """Language server (stdio): next-edit predictions from `nextedit serve` as inline completions
        or an "Apply predicted edit" code action. See docs/lsp.md for editor setup."""
        from nextedit.lsp.server import serve_stdio
        from nextedit.lsp.settings import Settings

        level = getattr(logging, log_level.upper(), None)
        if not isinstance(level, int):
            raise typer.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
        logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        # pygls logs every message body at INFO (document text included): keep it quiet unless debugging.
        logging.getLogger("pygls").setLevel(max(level, logging.WARNING) if level > logging.DEBUG else level)
        fields: dict[str, object] = {"server": server, "token": token, "collectable": collect,
                                     "settle_quiet_s": settle_quiet_s, "debounce_ms": debounce_ms,
                                     "timeout_s": timeout_s, "arm": arm}
        if user_id:
            fields["user_id"] = user_id
        serve_stdio(Settings(**fields))
