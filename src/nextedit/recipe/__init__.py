"""A recipe: one TOML file that is a whole experiment, run with `nextedit recipe run FILE`.

clone the corpus -> mine (with the data-quality filters) -> context -> diagnostics -> validate ->
split by repository (named repositories held out whole) -> format + train -> predict every eval set
(student, its base model, noop, propagate) -> checks -> score -> report with paired bootstrap
differences of the student against each other provider. Every step is cached in the output folder,
so a re-run resumes where the last one stopped and redoes only what changed. See docs/recipes.md.
"""

from nextedit.recipe.config import STEPS, Recipe, RecipeError, load_recipe, sources
from nextedit.recipe.report import render_markdown
from nextedit.recipe.run import RecipeResult, RecipeRun, run_recipe

__all__ = ["STEPS", "Recipe", "RecipeError", "RecipeResult", "RecipeRun", "load_recipe", "render_markdown",
           "run_recipe", "sources"]
