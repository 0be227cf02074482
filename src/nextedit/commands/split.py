"""`nextedit split`: split an examples file into parts disjoint by repository, by time, or at random."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class By(str, Enum):
    """How examples are grouped before splitting."""

    repo = "repo"
    time = "time"
    random = "random"


def register(app: typer.Typer) -> None:
    """Add the `split` command."""

    @app.command("split")
    def split(
        file: Annotated[Path, typer.Argument(help="Examples JSONL file (.gz ok).")],
        specs: Annotated[list[str], typer.Argument(help="NAME=SIZE outputs: SIZE is N%, a count N, or rest "
                                                     "(at most one). NAME.jsonl goes in --out-dir; a NAME "
                                                     "ending in .jsonl is a path.")],
        by: Annotated[By, typer.Option("--by", help="repo: no repository in two splits (examples without "
                                                     "repo split one by one); time: oldest to the first "
                                                     "split, newest to the last; random.")] = By.repo,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the shuffle (repo and random).")] = 0,
        out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Folder for NAME.jsonl outputs "
                                                                      "(default: the input's folder).")] = None,
        test_repos: Annotated[str | None, typer.Option("--test-repos", help="Comma-separated repositories held "
                                                       "out whole in the `test` split (a URL, owner/name or "
                                                       "name).")] = None,
        dev_repos: Annotated[str | None, typer.Option("--dev-repos", help="The same for the `dev` split.")] = None,
        repos: Annotated[list[str] | None, typer.Option("--repos", help="NAME=REPO,REPO: pin repositories to "
                                                        "any split (repeatable).")] = None,
    ) -> None:
        """Split FILE into disjoint parts, e.g. `nextedit split data.jsonl train=80% test=rest`."""
        from nextedit.dataset.split import parse_specs, split_file, with_pinned_splits

        try:
            pinned = _pins(test_repos, dev_repos, repos or [])
            folder = out_dir if out_dir is not None else file.parent
            parsed = with_pinned_splits(parse_specs(specs, folder), pinned, folder)
            summary = split_file(file, parsed, by=by.value, seed=seed, pinned=pinned)
        except (ValueError, OSError) as exc:  # RecordError is a ValueError
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if summary.note:
            typer.echo(f"warning: {summary.note}", err=True)
        unit = {"repo": "repos/ids", "random": "ids"}.get(summary.by, "examples")
        for part in summary.parts:
            share = f"{100 * part.examples / summary.total:.1f}%" if summary.total else "-"
            line = f"{part.spec.name}: {part.examples} examples ({share}), {part.groups} {unit} -> {part.spec.path}"
            if summary.by == "time" and part.time_min:
                line += f"  [{part.time_min} .. {part.time_max}]"
            if part.spec.name in pinned:
                line += "  [" + ", ".join(part.repos) + "]"
            typer.echo(line)
        if summary.unassigned:
            typer.echo(f"unassigned (not written): {summary.unassigned} examples")
        typer.echo(f"total: {summary.total} examples, split by {summary.by}")
        if summary.bad_lines:
            typer.echo(f"warning: {summary.bad_lines} bad lines skipped (in no split) -> {summary.failed}",
                       err=True)


def _pins(test_repos: str | None, dev_repos: str | None, repos: list[str]) -> dict[str, list[str]]:
    """{split name: repository patterns} from --test-repos, --dev-repos and --repos NAME=A,B."""
    pinned: dict[str, list[str]] = {}
    items = [("test", test_repos), ("dev", dev_repos)]
    for arg in repos:
        name, sep, value = arg.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--repos {arg!r}: expected NAME=REPO,REPO")
        items.append((name.strip(), value))
    for name, value in items:
        if value is not None:
            pinned.setdefault(name, []).extend(p.strip() for p in value.split(",") if p.strip())
    return pinned
