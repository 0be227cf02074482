"""`nextedit recipe run FILE`: a whole experiment from one TOML file (see docs/recipes.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

recipe_app = typer.Typer(help="Run a whole experiment from one TOML recipe (docs/recipes.md).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `recipe` command group."""
    app.add_typer(recipe_app, name="recipe")


@recipe_app.command("run")
def run(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML, e.g. recipes/cpu-small.toml.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output folder (default: the recipe's "
                                                                 "out_dir, relative to the recipe).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop after this step: mine, validate, split, "
                                                              "train or report.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="What {data_dir} stands for in the "
                                                  "recipe's paths (default: $NEXTEDIT_DATA_DIR, else the "
                                                  "recipe's data_dir).")] = None,
) -> None:
    """Clone and mine the corpus, add context, split by repository, train, predict, score and compare.

    Every step is cached in the output folder: re-running resumes. The summary is printed at the end
    and kept in OUT/recipe.md and OUT/recipe.json; each eval set's HTML report is in OUT/eval/SET/.
    """
    from rich.console import Console

    from nextedit.recipe import (
        STEPS,
        RecipeError,
        RecipeRun,
        load_recipe,
        render_markdown,
    )

    if until is not None and until not in STEPS:
        typer.echo(f"error: --until {until}: one of {', '.join(STEPS)}", err=True)
        raise typer.Exit(2)
    try:
        loaded = load_recipe(recipe, out_dir=out, data_dir=data_dir)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    runner = RecipeRun(loaded, console=Console(stderr=True))
    try:
        result = runner.run(until=until)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(render_markdown(loaded.name, result))
    typer.echo(f"-> {result.out_dir / 'recipe.md'}")


@recipe_app.command("check")
def check(
    recipe: Annotated[Path, typer.Argument(help="The recipe TOML.")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="What {data_dir} stands for.")] = None,
) -> None:
    """Validate a recipe without running it: fields, corpus, held-out repositories, base model."""
    from nextedit.recipe import RecipeError, load_recipe, sources

    try:
        loaded = load_recipe(recipe, data_dir=data_dir)
    except RecipeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{recipe}: ok; corpus: " + ", ".join(s.name for s in sources(loaded))
               + f"; test: {', '.join(loaded.split.test_repos)}; out: {loaded.path(loaded.out_dir)}")
