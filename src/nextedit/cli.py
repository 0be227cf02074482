"""The one `nextedit` command: subcommands are registered by the modules in `nextedit.commands`."""

from __future__ import annotations

import importlib
import os
import pkgutil
import signal

import typer

import nextedit.commands

app = typer.Typer(
    name="nextedit",
    help="Build your own next-edit-prediction model: data in, teacher, checks, train, evaluate, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """nextedit: next-edit prediction, end to end."""


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(nextedit.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"nextedit.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point of the console script. SIGTERM ends the command like Ctrl-C does (temp files
    removed, interrupted runs checkpointed) instead of killing it on the spot."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:
            # Cleaned up; now end the way a terminated process does (status -15 / 143 in a shell).
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        raise


if __name__ == "__main__":
    main()
