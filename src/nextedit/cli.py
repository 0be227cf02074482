"""The one `nextedit` command: subcommands are registered by the modules in `nextedit.commands`."""

from __future__ import annotations

import importlib
import pkgutil

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


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
