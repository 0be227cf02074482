"""`nextedit mine REPO -o examples.jsonl`: next-edit examples from a git repository's history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextedit.commands.run import EngineOption, RayAddressOption


def register(app: typer.Typer) -> None:
    """Add the `mine` command."""

    @app.command("mine")
    def mine_command(
        repo: Annotated[Path, typer.Argument(help="A git repository (working tree or bare).")],
        output: Annotated[Path, typer.Option("-o", "--output",
                                             help="Examples JSONL (written in commit order; re-run to resume).")],
        rev_range: Annotated[str | None, typer.Option("--rev-range", help="Revision range, e.g. v1.0..main.")] = None,
        since: Annotated[str | None, typer.Option("--since", help="Only commits after DATE (git syntax).")] = None,
        paths: Annotated[list[str] | None, typer.Option("--paths",
                                                        help="Only files matching GLOB (repeatable).")] = None,
        max_commits: Annotated[int | None, typer.Option("--max-commits", min=1,
                                                        help="Only the newest N non-merge commits.")] = None,
        samples: Annotated[int, typer.Option("--samples-per-commit", min=1, help="Examples per commit.")] = 3,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the ordering, split and typing heuristics.")] = 0,
        min_lines: Annotated[int, typer.Option("--min-lines", min=0,
                                               help="Skip commits changing fewer code lines.")] = 1,
        max_lines: Annotated[int, typer.Option("--max-lines", min=1,
                                               help="Skip commits changing more code lines.")] = 1000,
        half_typing: Annotated[float, typer.Option("--half-typing", min=0.0, max=1.0,
                                                   help="Chance to leave the next line half-typed.")] = 0.5,
        editable_tokens: Annotated[int, typer.Option("--editable-tokens", min=1,
                                                     help="Token budget of the editable region.")] = 350,
        context_tokens: Annotated[int, typer.Option("--context-tokens", min=0,
                                                    help="Token budget of the excerpt beyond it.")] = 1024,
        workers: Annotated[int, typer.Option("--workers", min=0, help="Processes (0: one per CPU).")] = 0,
        finished: Annotated[float, typer.Option("--finished-examples", min=0.0, max=1.0,
                                                help="Chance to also emit a no-edit example after a sample that "
                                                     "completes its commit.")] = 0.0,
        jumps: Annotated[float, typer.Option("--jump-examples", min=0.0, max=1.0,
                                             help="Chance to also emit a jump example per sample: cursor at "
                                                  "the last edit, the next edit elsewhere (docs/jumps.md).")] = 0.0,
        engine: EngineOption = None,
        ray_address: RayAddressOption = None,
        filters: Annotated[Path | None, typer.Option("--filters", help="Data-quality filter settings, a TOML "
                                                     "file (see docs/mining.md#data-quality-filters).")] = None,
        no_filters: Annotated[bool, typer.Option("--no-filters", help="Turn every data-quality filter off "
                                                 "(files that are not code are still skipped).")] = False,
    ) -> None:
        """Mine next-edit examples from git history (non-merge commits, code files only).

        Each commit's hunks are put in a plausible typing order; each sample takes the first k as edit
        history and the next group as the expected patch, sometimes with the next line half-typed.
        Every example is verified; failures go to OUT.failed.jsonl, a per-commit log to
        OUT.commits.jsonl. Re-running the same command resumes. See docs/mining.md.
        """
        from nextedit.mine.config import MineConfig, load_filters
        from nextedit.mine.gitlog import GitError
        from nextedit.mine.miner import mine
        from nextedit.pipeline.engine import RunError

        try:
            filter_cfg = load_filters(filters, off=no_filters)
            cfg = MineConfig(rev_range=rev_range, since=since, paths=paths or [], max_commits=max_commits,
                             samples_per_commit=samples, seed=seed, min_changed_lines=min_lines,
                             max_changed_lines=max_lines, half_typing=half_typing,
                             editable_tokens=editable_tokens, context_tokens=context_tokens, workers=workers,
                             finished_examples=finished, jump_examples=jumps,
                             filters=filter_cfg)
            s = mine(repo, output, cfg, engine=engine or "local", ray_address=ray_address)
        except (GitError, ValueError, OSError, RunError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        rate = (s.mined + s.skipped) / s.seconds if s.seconds else 0.0
        typer.echo(f"commits {s.commits}: mined {s.mined}, skipped {s.skipped}, already done {s.resumed}; "
                   f"examples {s.examples}, failed {s.failed} ({s.seconds:.1f} s, {rate:.1f} commits/s)")
        if s.skip_reasons:
            typer.echo("skipped commits: " + ", ".join(f"{r} {n}" for r, n in s.skip_reasons.most_common()))
        if s.file_skips:
            typer.echo("skipped files: " + ", ".join(f"{r} {n}" for r, n in s.file_skips.most_common()))
        if s.filtered:
            typer.echo("filtered examples: " + ", ".join(f"{r} {n}" for r, n in s.filtered.most_common())
                       + " (see OUT.filtered.jsonl)")
        typer.echo(f"-> {output}")
