"""`nextedit schema`: print or write the JSON Schema of the example record."""

from pathlib import Path
from typing import Annotated

import orjson
import typer

from nextedit.record import json_schema


def register(app: typer.Typer) -> None:
    """Add the `schema` command."""

    @app.command("schema")
    def schema(output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
                                 ] = None) -> None:
        """Print the JSON Schema of the example record."""
        text = orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text)
