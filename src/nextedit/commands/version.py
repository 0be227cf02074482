"""`nextedit version`: print the installed version."""

import typer

import nextedit


def register(app: typer.Typer) -> None:
    """Add the `version` command."""

    @app.command("version")
    def version() -> None:
        """Print the nextedit version."""
        typer.echo(nextedit.__version__)
